//! The key encoding: round trips, exact lengths, and refusal (never a panic)
//! of truncated, padded, corrupted, mismatched and non-canonical input.

mod common;

use ariann_fss::{
    Dcf, DcfKeys, DecodeError, Dpf, DpfKeys, FssKeys, Kind, Party, Payload, Scheme, TreeParams, Z2,
};
use common::{payload_name, rand_nonzero, rand_roots};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

const HEADER: usize = 20;
const TRAILER: usize = 32;

/// The documented per-key size, computed here from the layout table:
/// `16 + 16 L + ceil(L/8) + [DCF, BITS > 1] L BITS/8 + ceil(2^nu BITS / 8)`.
fn formula_key_bytes(kind: Kind, bits: u32, n: u32, nu: u32) -> usize {
    let l = (n - nu) as usize;
    let bits = bits as usize;
    let v = if kind == Kind::Dcf && bits > 1 {
        l * bits / 8
    } else {
        0
    };
    16 + 16 * l + l.div_ceil(8) + v + ((1usize << nu) * bits).div_ceil(8)
}

/// Both parties' keys of a random batch, and random points in the domain.
fn batch<S: Scheme, P: Payload>(
    params: TreeParams,
    len: usize,
    rng: &mut ChaCha8Rng,
) -> (FssKeys<S, P>, FssKeys<S, P>, Vec<u64>) {
    let mask = params.domain_mask();
    let alphas: Vec<u64> = (0..len).map(|_| rng.random::<u64>() & mask).collect();
    let betas: Vec<P> = (0..len).map(|_| rand_nonzero(rng)).collect();
    let roots = rand_roots(rng, len);
    let (k0, k1) = FssKeys::<S, P>::gen_from_roots(params, &alphas, &betas, &roots).unwrap();
    // Half the points on alpha, so that DPF outputs are not all zero.
    let xs = alphas
        .iter()
        .enumerate()
        .map(|(i, &a)| {
            if i % 2 == 0 {
                a
            } else {
                rng.random::<u64>() & mask
            }
        })
        .collect();
    (k0, k1, xs)
}

/// [`batch`] from `generate` (root seeds expanded from root keys).
fn seeded_batch<S: Scheme, P: Payload>(
    params: TreeParams,
    len: usize,
    rng: &mut ChaCha8Rng,
) -> (FssKeys<S, P>, FssKeys<S, P>, Vec<u64>) {
    let mask = params.domain_mask();
    let alphas: Vec<u64> = (0..len).map(|_| rng.random::<u64>() & mask).collect();
    let betas: Vec<P> = (0..len).map(|_| rand_nonzero(rng)).collect();
    let (k0, k1) = FssKeys::<S, P>::generate(params, &alphas, &betas, rng).unwrap();
    let xs = alphas
        .iter()
        .enumerate()
        .map(|(i, &a)| {
            if i % 2 == 0 {
                a
            } else {
                rng.random::<u64>() & mask
            }
        })
        .collect();
    (k0, k1, xs)
}

/// Replaces the SHA-256 trailer by the checksum of the (edited) body.
fn reseal(bytes: &mut [u8]) {
    let body = bytes.len() - TRAILER;
    let digest = Sha256::digest(&bytes[..body]);
    bytes[body..].copy_from_slice(digest.as_slice());
}

fn decode_err<S: Scheme, P: Payload>(bytes: &[u8]) -> DecodeError {
    match FssKeys::<S, P>::decode(bytes) {
        Ok(_) => panic!("decoding accepted {} bytes it should refuse", bytes.len()),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------- round trips

fn roundtrip_one<S: Scheme, P: Payload>(keys: &FssKeys<S, P>, xs: &[u64], ctx: &str) {
    let params = keys.params();
    let enc = keys.encode();
    let kb = keys.key_bytes();
    assert_eq!(
        kb,
        formula_key_bytes(S::KIND, P::BITS, params.n(), params.nu()),
        "{ctx}: key_bytes"
    );
    assert_eq!(kb, params.key_bytes::<P>(S::KIND), "{ctx}");
    assert_eq!(
        enc.len(),
        HEADER + keys.len() * kb + TRAILER,
        "{ctx}: length"
    );
    assert_eq!(enc.len(), keys.encoded_len(), "{ctx}: encoded_len");
    // The same sizes from the shape alone, without keys.
    assert_eq!(kb, FssKeys::<S, P>::key_bytes_for(params), "{ctx}");
    assert_eq!(
        Some(enc.len()),
        FssKeys::<S, P>::encoded_len_for(params, keys.len()),
        "{ctx}: encoded_len_for"
    );

    // The header, field by field.
    assert_eq!(&enc[0..4], b"ARFS", "{ctx}");
    assert_eq!(&enc[4..6], &[1, 0], "{ctx}: version 1, little-endian");
    let kind_tag = match S::KIND {
        Kind::Dpf => 1,
        Kind::Dcf => 2,
    };
    let party = keys.party().index();
    let n = params.n() as u8;
    let nu = params.nu() as u8;
    assert_eq!(enc[6..12], [kind_tag, P::TAG, n, nu, party, 0], "{ctx}");
    assert_eq!(
        enc[12..20],
        (keys.len() as u64).to_le_bytes(),
        "{ctx}: count"
    );
    assert_eq!(
        enc[enc.len() - TRAILER..],
        Sha256::digest(&enc[..enc.len() - TRAILER])[..],
        "{ctx}: trailer is the SHA-256 of the rest"
    );

    let dec = FssKeys::<S, P>::decode(&enc).unwrap();
    assert_eq!(dec.len(), keys.len(), "{ctx}");
    assert_eq!(dec.party(), keys.party(), "{ctx}");
    assert_eq!(dec.params(), params, "{ctx}");
    assert!(dec.encode() == enc, "{ctx}: re-encoding differs");
    for i in 0..keys.len() {
        assert!(
            dec.key(i) == keys.key(i),
            "{ctx}: key {i} differs after decoding"
        );
    }
    assert_eq!(
        dec.eval_to_vec(xs).unwrap(),
        keys.eval_to_vec(xs).unwrap(),
        "{ctx}: outputs differ after decoding"
    );
    unchecked_roundtrip(keys, &enc, xs, ctx);
}

/// Format version 2 (no trailer, for containers that check integrity
/// themselves; the key material in memory order): the version-1 header with
/// the version field set to 2, the documented length, decoded only as
/// version 2, to the same keys, re-encoded to the same bytes.
fn unchecked_roundtrip<S: Scheme, P: Payload>(
    keys: &FssKeys<S, P>,
    checked: &[u8],
    xs: &[u64],
    ctx: &str,
) {
    let mut enc = vec![0xAAu8; 3];
    keys.encode_into_unchecked(&mut enc);
    assert_eq!(
        &enc[..3],
        &[0xAA; 3],
        "{ctx}: appends, keeps what was there"
    );
    let enc = enc.split_off(3);
    let mut header = checked[..HEADER].to_vec();
    header[4..6].copy_from_slice(&2u16.to_le_bytes());
    assert_eq!(enc[..HEADER], header[..], "{ctx}: version 2's header");
    // The documented length: per key the version-1 key bytes without their
    // own t_CW^R bytes, and all keys' t_CW^R bits packed together.
    let params = keys.params();
    let l = (params.n() - params.nu()) as usize;
    let kb = formula_key_bytes(S::KIND, P::BITS, params.n(), params.nu());
    assert_eq!(
        enc.len(),
        HEADER + keys.len() * (kb - l.div_ceil(8)) + (keys.len() * l).div_ceil(8),
        "{ctx}: version 2 length"
    );
    assert_eq!(enc.len(), keys.encoded_len_unchecked(), "{ctx}");
    // The same shape from `generate` (version 3): one root key instead of
    // the root seeds.
    assert_eq!(
        FssKeys::<S, P>::encoded_len_unchecked_for(keys.params(), keys.len()),
        Some(enc.len() - 16 * keys.len() + 16),
        "{ctx}"
    );
    decodes_canonically_and_refuses_bad_lengths(
        keys,
        &enc,
        xs,
        2,
        &[0, 1, HEADER - 1, HEADER],
        ctx,
    );
    assert!(
        matches!(
            FssKeys::<S, P>::decode_unchecked(checked),
            Err(DecodeError::UnsupportedVersion {
                found: 1,
                supported: 3
            })
        ),
        "{ctx}: v1 bytes through the unchecked decoder"
    );
}

/// An unchecked encoding `enc` (version `version`) of `keys`: decodes to the
/// same keys (party, shape, every key), re-encodes to the same bytes, gives
/// the same outputs at `xs`; the checked decoder refuses it; cut at each of
/// `cuts` or one byte short, or padded by one byte, it is refused.
fn decodes_canonically_and_refuses_bad_lengths<S: Scheme, P: Payload>(
    keys: &FssKeys<S, P>,
    enc: &[u8],
    xs: &[u64],
    version: u16,
    cuts: &[usize],
    ctx: &str,
) {
    let dec = FssKeys::<S, P>::decode_unchecked(enc).unwrap();
    assert_eq!(
        (dec.len(), dec.party(), dec.params()),
        (keys.len(), keys.party(), keys.params()),
        "{ctx}: v{version}"
    );
    for i in 0..keys.len() {
        assert!(
            dec.key(i) == keys.key(i),
            "{ctx}: key {i} differs (v{version})"
        );
    }
    let mut again = Vec::new();
    dec.encode_into_unchecked(&mut again);
    assert!(again == enc, "{ctx}: v{version} re-encoding differs");
    assert_eq!(
        dec.eval_to_vec(xs).unwrap(),
        keys.eval_to_vec(xs).unwrap(),
        "{ctx}: outputs differ after decoding (v{version})"
    );
    assert!(
        matches!(
            FssKeys::<S, P>::decode(enc),
            Err(DecodeError::UnsupportedVersion { found, supported: 1 }) if found == version
        ) || matches!(
            FssKeys::<S, P>::decode(enc),
            Err(DecodeError::TooShort { .. })
        ),
        "{ctx}: v{version} bytes through the checked decoder"
    );
    for &cut in cuts.iter().chain(&[enc.len().saturating_sub(1)]) {
        if cut < enc.len() {
            assert!(
                FssKeys::<S, P>::decode_unchecked(&enc[..cut]).is_err(),
                "{ctx}: v{version} cut at {cut}"
            );
        }
    }
    let mut padded = enc.to_vec();
    padded.push(0);
    assert!(
        FssKeys::<S, P>::decode_unchecked(&padded).is_err(),
        "{ctx}: v{version} padded"
    );
}

/// Root seed `i` of a batch with root key `key`, computed here with the
/// `aes` crate: AES-128 of the index as a little-endian block.
fn aes_ctr_seed(key: &[u8], i: u64) -> u128 {
    use aes::Aes128;
    use aes::cipher::{Array, BlockCipherEncrypt, KeyInit};
    let key: [u8; 16] = key.try_into().unwrap();
    let cipher = Aes128::new(&Array::from(key));
    let mut block = Array::from(u128::from(i).to_le_bytes());
    cipher.encrypt_block(&mut block);
    u128::from_le_bytes(block.0)
}

/// Format version 3 (a batch from `generate`, whose root seeds are the
/// AES-CTR expansion of one root key per party): the version-2 layout with
/// the root key in place of the seeds; the documented length; the seeds
/// are the expansion of the key written; decoded to the same keys,
/// re-encoded to the same bytes; refused by the checked decoder; the
/// checked encoding still carries every seed.
fn seeded_roundtrip<S: Scheme, P: Payload>(keys: &FssKeys<S, P>, xs: &[u64], ctx: &str) {
    let params = keys.params();
    let l = (params.n() - params.nu()) as usize;
    let kb = formula_key_bytes(S::KIND, P::BITS, params.n(), params.nu());
    let n = keys.len();
    assert_eq!(keys.key_bytes(), kb - 16, "{ctx}: key_bytes (seeded)");
    assert_eq!(
        FssKeys::<S, P>::key_bytes_seeded_for(params),
        kb - 16,
        "{ctx}"
    );
    let mut enc = Vec::new();
    keys.encode_into_unchecked(&mut enc);
    assert_eq!(&enc[0..4], b"ARFS", "{ctx}");
    assert_eq!(&enc[4..6], &[3, 0], "{ctx}: version 3, little-endian");
    assert_eq!(enc[12..20], (n as u64).to_le_bytes(), "{ctx}: count");
    assert_eq!(
        enc.len(),
        HEADER + 16 + n * (kb - 16 - l.div_ceil(8)) + (n * l).div_ceil(8),
        "{ctx}: version 3 length"
    );
    assert_eq!(enc.len(), keys.encoded_len_unchecked(), "{ctx}");
    assert_eq!(
        Some(enc.len()),
        FssKeys::<S, P>::encoded_len_unchecked_for(params, n),
        "{ctx}"
    );
    for i in 0..n {
        let key = keys.key(i).unwrap();
        assert_eq!(
            key.seed,
            aes_ctr_seed(&enc[HEADER..HEADER + 16], i as u64),
            "{ctx}: seed {i} is not AES(root key, {i})"
        );
    }
    decodes_canonically_and_refuses_bad_lengths(keys, &enc, xs, 3, &[0, HEADER, HEADER + 15], ctx);
    // Version 1 writes every seed; decoded, the batch has no root key and
    // its unchecked encoding is version 2, of the same keys.
    let checked = keys.encode();
    assert_eq!(checked.len(), HEADER + n * kb + TRAILER, "{ctx}: v1 length");
    let dec1 = FssKeys::<S, P>::decode(&checked).unwrap();
    for i in 0..n {
        assert!(dec1.key(i) == keys.key(i), "{ctx}: key {i} differs (v1)");
    }
    let mut v2 = Vec::new();
    dec1.encode_into_unchecked(&mut v2);
    assert_eq!(&v2[4..6], &[2, 0], "{ctx}: no root key, version 2");
    assert_eq!(v2.len(), enc.len() + 16 * n - 16, "{ctx}");
}

fn roundtrips<S: Scheme, P: Payload>(seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut configs: Vec<TreeParams> = Vec::new();
    for (n, nu) in [
        (1, 0),
        (1, 1),
        (5, 0),
        (5, 1),
        (5, 2),
        (9, 3),
        (13, 12),
        (64, 0),
        (64, 12),
    ] {
        configs.push(TreeParams::with_early_termination::<P>(n, nu).unwrap());
    }
    for n in [1, 8, 32, 64] {
        configs.push(TreeParams::new::<P>(n).unwrap());
    }
    for params in configs {
        for len in [0usize, 1, 3, 70] {
            let ctx = format!(
                "{:?} {} n={} nu={} len={len}",
                S::KIND,
                payload_name::<P>(),
                params.n(),
                params.nu()
            );
            let (k0, k1, xs) = batch::<S, P>(params, len, &mut rng);
            roundtrip_one(&k0, &xs, &ctx);
            roundtrip_one(&k1, &xs, &ctx);
            if len > 0 {
                assert_ne!(k0.encode(), k1.encode(), "{ctx}");
            }
            let (s0, s1, xs) = seeded_batch::<S, P>(params, len, &mut rng);
            seeded_roundtrip(&s0, &xs, &ctx);
            seeded_roundtrip(&s1, &xs, &ctx);
            let (mut e0, mut e1) = (Vec::new(), Vec::new());
            s0.encode_into_unchecked(&mut e0);
            s1.encode_into_unchecked(&mut e1);
            assert_ne!(
                e0[HEADER..HEADER + 16],
                e1[HEADER..HEADER + 16],
                "{ctx}: root keys"
            );
        }
    }
}

#[test]
fn roundtrip_dpf_z2() {
    roundtrips::<Dpf, Z2>(0xC0DE_0101);
}
#[test]
fn roundtrip_dpf_u32() {
    roundtrips::<Dpf, u32>(0xC0DE_0120);
}
#[test]
fn roundtrip_dpf_u64() {
    roundtrips::<Dpf, u64>(0xC0DE_0140);
}
#[test]
fn roundtrip_dpf_pair() {
    roundtrips::<Dpf, [u64; 2]>(0xC0DE_0180);
}
#[test]
fn roundtrip_dcf_z2() {
    roundtrips::<Dcf, Z2>(0xC0DE_0201);
}
#[test]
fn roundtrip_dcf_u32() {
    roundtrips::<Dcf, u32>(0xC0DE_0220);
}
#[test]
fn roundtrip_dcf_u64() {
    roundtrips::<Dcf, u64>(0xC0DE_0240);
}
#[test]
fn roundtrip_dcf_pair() {
    roundtrips::<Dcf, [u64; 2]>(0xC0DE_0280);
}

/// Sizes measured at n = 32 with the default early termination.
#[test]
fn key_bytes_at_n32() {
    fn kb<S: Scheme, P: Payload>() -> usize {
        let params = TreeParams::new::<P>(32).unwrap();
        let (k0, _, _) = batch::<S, P>(params, 1, &mut ChaCha8Rng::seed_from_u64(7));
        assert_eq!(k0.key_bytes(), params.key_bytes::<P>(S::KIND));
        assert_eq!(k0.encode().len(), HEADER + k0.key_bytes() + TRAILER);
        k0.key_bytes()
    }
    assert_eq!(kb::<Dcf, Z2>(), 436);
    assert_eq!(kb::<Dcf, u32>(), 636);
    assert_eq!(kb::<Dcf, u64>(), 780);
    assert_eq!(kb::<Dcf, [u64; 2]>(), 1060);
    assert_eq!(kb::<Dpf, Z2>(), 436);
    // The other DPF sizes follow the formula (no per-level payload words).
    assert_eq!(kb::<Dpf, u32>(), 16 + 16 * 30 + 4 + 16);
    assert_eq!(kb::<Dpf, u64>(), 16 + 16 * 31 + 4 + 16);
    assert_eq!(kb::<Dpf, [u64; 2]>(), 16 + 16 * 32 + 4 + 16);
}

/// `key_bytes` against the formula for every n, nu and group.
#[test]
fn key_bytes_formula_everywhere() {
    fn all<P: Payload>() {
        for n in 1..=64u32 {
            for nu in 0..=n.min(ariann_fss::MAX_NU) {
                let p = TreeParams::with_early_termination::<P>(n, nu).unwrap();
                for kind in [Kind::Dpf, Kind::Dcf] {
                    assert_eq!(
                        p.key_bytes::<P>(kind),
                        formula_key_bytes(kind, P::BITS, n, nu),
                        "{kind:?} {} n={n} nu={nu}",
                        P::NAME
                    );
                }
            }
        }
    }
    all::<Z2>();
    all::<u32>();
    all::<u64>();
    all::<[u64; 2]>();
}

#[test]
fn empty_batch_roundtrips() {
    fn one<S: Scheme, P: Payload>() {
        let params = TreeParams::new::<P>(20).unwrap();
        let (k0, k1) = FssKeys::<S, P>::gen_from_roots(params, &[], &[], &[]).unwrap();
        for k in [&k0, &k1] {
            let enc = k.encode();
            assert_eq!(enc.len(), HEADER + TRAILER);
            let dec = FssKeys::<S, P>::decode(&enc).unwrap();
            assert!(dec.is_empty());
            assert_eq!(dec.party(), k.party());
            assert_eq!(dec.params(), params);
            assert_eq!(dec.encode(), enc);
            assert_eq!(dec.eval_to_vec(&[]).unwrap(), Vec::<P>::new());
        }
    }
    one::<Dpf, Z2>();
    one::<Dpf, [u64; 2]>();
    one::<Dcf, u32>();
    one::<Dcf, u64>();
}

// ---------------------------------------------------------------- refusals

/// A small encoding (3 keys, n = 8) of party `party`.
fn small<S: Scheme, P: Payload>(params: TreeParams, party: Party) -> Vec<u8> {
    let (k0, k1, _) = batch::<S, P>(params, 3, &mut ChaCha8Rng::seed_from_u64(0x5A11));
    match party {
        Party::P0 => k0.encode(),
        Party::P1 => k1.encode(),
    }
}

fn truncations<S: Scheme, P: Payload>(params: TreeParams) {
    let enc = small::<S, P>(params, Party::P0);
    let full = enc.len();
    for cut in 0..full {
        let e = decode_err::<S, P>(&enc[..cut]);
        if cut < HEADER + TRAILER {
            assert_eq!(
                e,
                DecodeError::TooShort {
                    need: HEADER + TRAILER,
                    got: cut
                }
            );
        } else {
            assert_eq!(
                e,
                DecodeError::LengthMismatch {
                    expected: full as u128,
                    got: cut
                }
            );
        }
    }
    for pad in [1usize, 17] {
        for fill in [0u8, 0xA5] {
            let mut long = enc.clone();
            long.extend(std::iter::repeat_n(fill, pad));
            assert_eq!(
                decode_err::<S, P>(&long),
                DecodeError::LengthMismatch {
                    expected: full as u128,
                    got: full + pad
                }
            );
            // Even with a checksum that covers the padding.
            let mut sealed = enc[..full - TRAILER].to_vec();
            sealed.extend(std::iter::repeat_n(fill, pad));
            sealed.extend_from_slice(&[0; TRAILER]);
            reseal(&mut sealed);
            assert_eq!(sealed.len(), full + pad);
            assert!(matches!(
                decode_err::<S, P>(&sealed),
                DecodeError::LengthMismatch { .. }
            ));
        }
    }
}

#[test]
fn truncated_and_padded_input_is_refused() {
    truncations::<Dpf, Z2>(TreeParams::new::<Z2>(8).unwrap());
    truncations::<Dcf, u32>(TreeParams::new::<u32>(8).unwrap());
    truncations::<Dcf, [u64; 2]>(TreeParams::full_tree(8).unwrap());
    truncations::<Dcf, Z2>(TreeParams::with_early_termination::<Z2>(8, 2).unwrap());
}

/// The error each single-bit flip must give, from the layout alone.
fn flip_expectation<S: Scheme, P: Payload>(orig: &[u8], byte: usize, bit: u32) -> DecodeError {
    let flipped = orig[byte] ^ (1 << bit);
    let len = orig.len();
    match byte {
        0..=3 => DecodeError::BadMagic,
        4 | 5 => {
            let mut v = [orig[4], orig[5]];
            v[byte - 4] = flipped;
            DecodeError::UnsupportedVersion {
                found: u16::from_le_bytes(v),
                supported: 1,
            }
        }
        6 => DecodeError::WrongKind {
            expected: match S::KIND {
                Kind::Dpf => "DPF",
                Kind::Dcf => "DCF",
            },
            found: flipped,
        },
        7 => DecodeError::WrongPayload {
            expected: P::NAME,
            expected_tag: P::TAG,
            found: flipped,
        },
        8 | 9 => {
            let (n, nu) = if byte == 8 {
                (u32::from(flipped), u32::from(orig[9]))
            } else {
                (u32::from(orig[8]), u32::from(flipped))
            };
            if n == 0 || n > 64 || nu > n || nu > ariann_fss::MAX_NU {
                DecodeError::InvalidHeader(String::new())
            } else {
                let count = u64::from_le_bytes(orig[12..20].try_into().unwrap()) as u128;
                let expected = (HEADER + TRAILER) as u128
                    + count * formula_key_bytes(S::KIND, P::BITS, n, nu) as u128;
                if expected == len as u128 {
                    DecodeError::ChecksumMismatch
                } else {
                    DecodeError::LengthMismatch { expected, got: len }
                }
            }
        }
        // Party 0 <-> 1 is a valid header: only the checksum catches it.
        10 if flipped <= 1 => DecodeError::ChecksumMismatch,
        10 | 11 => DecodeError::InvalidHeader(String::new()),
        12..=19 => {
            let mut c: [u8; 8] = orig[12..20].try_into().unwrap();
            c[byte - 12] = flipped;
            let count = u64::from_le_bytes(c) as u128;
            let kb = formula_key_bytes(S::KIND, P::BITS, u32::from(orig[8]), u32::from(orig[9]));
            DecodeError::LengthMismatch {
                expected: (HEADER + TRAILER) as u128 + count * kb as u128,
                got: len,
            }
        }
        _ => DecodeError::ChecksumMismatch,
    }
}

fn bit_flips<S: Scheme, P: Payload>(params: TreeParams, party: Party) {
    let enc = small::<S, P>(params, party);
    assert!(FssKeys::<S, P>::decode(&enc).is_ok());
    let mut buf = enc.clone();
    for byte in 0..enc.len() {
        for bit in 0..8 {
            buf[byte] ^= 1 << bit;
            let got = decode_err::<S, P>(&buf);
            let want = flip_expectation::<S, P>(&enc, byte, bit);
            let ok = match (&got, &want) {
                // The message text is not part of the contract.
                (DecodeError::InvalidHeader(_), DecodeError::InvalidHeader(_)) => true,
                _ => got == want,
            };
            assert!(
                ok,
                "{:?} {} flip of byte {byte} bit {bit}: got {got:?}, want {want:?}",
                S::KIND,
                payload_name::<P>()
            );
            buf[byte] ^= 1 << bit;
        }
    }
    assert_eq!(buf, enc);
}

#[test]
fn every_single_bit_flip_is_refused() {
    bit_flips::<Dpf, Z2>(TreeParams::new::<Z2>(8).unwrap(), Party::P0);
    bit_flips::<Dpf, u64>(TreeParams::full_tree(8).unwrap(), Party::P1);
    bit_flips::<Dcf, Z2>(TreeParams::new::<Z2>(8).unwrap(), Party::P1);
    bit_flips::<Dcf, u32>(TreeParams::new::<u32>(8).unwrap(), Party::P0);
    bit_flips::<Dcf, [u64; 2]>(TreeParams::new::<[u64; 2]>(8).unwrap(), Party::P0);
}

#[test]
fn wrong_scheme_and_wrong_payload_are_refused() {
    let p8 = |nu| TreeParams::with_early_termination::<u32>(8, nu).unwrap();
    let dpf = small::<Dpf, u32>(p8(2), Party::P0);
    let dcf = small::<Dcf, u32>(p8(2), Party::P0);
    assert_eq!(
        DcfKeys::<u32>::decode(&dpf).unwrap_err(),
        DecodeError::WrongKind {
            expected: "DCF",
            found: 1
        }
    );
    assert_eq!(
        DpfKeys::<u32>::decode(&dcf).unwrap_err(),
        DecodeError::WrongKind {
            expected: "DPF",
            found: 2
        }
    );
    assert_eq!(
        DcfKeys::<u64>::decode(&dcf).unwrap_err(),
        DecodeError::WrongPayload {
            expected: "Z_2^64",
            expected_tag: 64,
            found: 32
        }
    );
    // Same length per key would not help: Z_2 bytes read as pairs, u64 as u32.
    let z2 = small::<Dpf, Z2>(p8(0), Party::P1);
    assert!(matches!(
        DpfKeys::<[u64; 2]>::decode(&z2).unwrap_err(),
        DecodeError::WrongPayload {
            expected_tag: 128,
            found: 1,
            ..
        }
    ));
    let w64 = small::<Dcf, u64>(p8(0), Party::P0);
    assert!(matches!(
        DcfKeys::<u32>::decode(&w64).unwrap_err(),
        DecodeError::WrongPayload {
            expected_tag: 32,
            found: 64,
            ..
        }
    ));
    assert!(matches!(
        DcfKeys::<Z2>::decode(&w64).unwrap_err(),
        DecodeError::WrongPayload {
            expected_tag: 1,
            found: 64,
            ..
        }
    ));
}

/// Header edits, each refused with the same error whether or not the
/// checksum is recomputed after the edit (so the header check itself refuses).
#[test]
fn bad_header_fields_are_refused() {
    let params = TreeParams::new::<u64>(8).unwrap();
    let enc = small::<Dcf, u64>(params, Party::P0);
    let check = |edit: &dyn Fn(&mut Vec<u8>), want: &dyn Fn(&DecodeError) -> bool, what: &str| {
        let mut raw = enc.clone();
        edit(&mut raw);
        let mut sealed = raw.clone();
        reseal(&mut sealed);
        for bytes in [raw, sealed] {
            let e = decode_err::<Dcf, u64>(&bytes);
            assert!(want(&e), "{what}: got {e:?}");
        }
    };
    let invalid = |e: &DecodeError| matches!(e, DecodeError::InvalidHeader(_));
    check(
        &|b| b[0..4].copy_from_slice(b"ARFT"),
        &|e| *e == DecodeError::BadMagic,
        "magic ARFT",
    );
    check(
        &|b| b[0..4].copy_from_slice(&[0; 4]),
        &|e| *e == DecodeError::BadMagic,
        "magic zero",
    );
    check(
        &|b| b[4..6].copy_from_slice(&2u16.to_le_bytes()),
        &|e| {
            *e == DecodeError::UnsupportedVersion {
                found: 2,
                supported: 1,
            }
        },
        "version 2",
    );
    check(
        &|b| b[4..6].copy_from_slice(&0u16.to_le_bytes()),
        &|e| matches!(e, DecodeError::UnsupportedVersion { found: 0, .. }),
        "version 0",
    );
    check(
        &|b| b[6] = 0,
        &|e| matches!(e, DecodeError::WrongKind { found: 0, .. }),
        "kind 0",
    );
    check(
        &|b| b[6] = 3,
        &|e| matches!(e, DecodeError::WrongKind { found: 3, .. }),
        "kind 3",
    );
    check(
        &|b| b[7] = 0,
        &|e| matches!(e, DecodeError::WrongPayload { found: 0, .. }),
        "payload 0",
    );
    check(&|b| b[10] = 2, &invalid, "party 2");
    check(&|b| b[10] = 0xFF, &invalid, "party 255");
    check(&|b| b[11] = 1, &invalid, "reserved 1");
    check(&|b| b[11] = 0x80, &invalid, "reserved 0x80");
    check(&|b| b[8] = 0, &invalid, "n = 0");
    check(&|b| b[8] = 65, &invalid, "n = 65");
    check(&|b| b[8] = 0xFF, &invalid, "n = 255");
    check(&|b| b[9] = 9, &invalid, "nu = 9 > n = 8");
    check(
        &|b| {
            b[8] = 64;
            b[9] = 13;
        },
        &invalid,
        "nu = 13 > MAX_NU",
    );
    // A valid but different shape announces another length.
    check(
        &|b| b[8] = 9,
        &|e| matches!(e, DecodeError::LengthMismatch { .. }),
        "n = 9",
    );
    check(
        &|b| b[9] = 0,
        &|e| matches!(e, DecodeError::LengthMismatch { .. }),
        "nu = 0",
    );
}

/// Huge counts are refused by the length check, before any allocation (an
/// allocation of 2^60 keys would abort the test process).
#[test]
fn huge_counts_are_refused_without_allocating() {
    let params = TreeParams::new::<u64>(8).unwrap();
    let enc = small::<Dcf, u64>(params, Party::P0);
    let kb = params.key_bytes::<u64>(Kind::Dcf) as u128;
    for count in [1u64 << 60, u64::MAX, 1 << 32, 4, 2] {
        let mut b = enc.clone();
        b[12..20].copy_from_slice(&count.to_le_bytes());
        reseal(&mut b);
        assert_eq!(
            decode_err::<Dcf, u64>(&b),
            DecodeError::LengthMismatch {
                expected: 52 + u128::from(count) * kb,
                got: enc.len()
            },
            "count {count}"
        );
    }
}

/// A count chosen so that `count * key_bytes` wraps around 2^64 to exactly
/// the real body length must still be refused.
#[test]
fn count_that_wraps_in_64_bits_is_refused() {
    let params = TreeParams::new::<Z2>(32).unwrap();
    let kb = params.key_bytes::<Z2>(Kind::Dpf) as u64;
    assert_eq!(kb, 436);
    let j = kb.trailing_zeros();
    assert!(j >= 1, "needs an even key size");
    let (k0, _, _) = batch::<Dpf, Z2>(params, 2, &mut ChaCha8Rng::seed_from_u64(3));
    let mut b = k0.encode();
    let bad = 2u64 + (1u64 << (64 - j));
    assert_eq!(bad.wrapping_mul(kb), 2 * kb, "the count wraps");
    b[12..20].copy_from_slice(&bad.to_le_bytes());
    reseal(&mut b);
    assert!(matches!(
        decode_err::<Dpf, Z2>(&b),
        DecodeError::LengthMismatch { got, .. } if got == b.len()
    ));
}

/// Padding bits (of the packed `t_CW^R` bits and of a partial last leaf
/// byte) must be zero; the checksum covers them, so the test recomputes it
/// after setting one, and the decoder must still refuse with `NonCanonical`.
fn padding_bits<S: Scheme, P: Payload>(n: u32, nu: u32) -> usize {
    let params = TreeParams::with_early_termination::<P>(n, nu).unwrap();
    let (k0, _, _) = batch::<S, P>(params, 2, &mut ChaCha8Rng::seed_from_u64(11));
    let enc = k0.encode();
    let kb = k0.key_bytes();
    let l = (n - nu) as usize;
    let v = if S::KIND == Kind::Dcf && P::BITS > 1 {
        l * P::BITS as usize / 8
    } else {
        0
    };
    let leaf_bits = (1usize << nu) * P::BITS as usize;
    let mut refused = 0;
    for key in 0..2 {
        let start = HEADER + key * kb;
        let tr_last = start + 16 + 16 * l + l.div_ceil(8) - 1;
        let leaf_last = start + kb - 1;
        assert_eq!(
            leaf_last,
            start + 16 + 16 * l + l.div_ceil(8) + v + leaf_bits.div_ceil(8) - 1
        );
        // (byte, first padding bit) of each partial byte.
        let mut spots = Vec::new();
        if !l.is_multiple_of(8) {
            spots.push((tr_last, l % 8));
        }
        if !leaf_bits.is_multiple_of(8) {
            spots.push((leaf_last, leaf_bits % 8));
        }
        for (byte, first) in spots {
            for bit in first..8 {
                let mut b = enc.clone();
                b[byte] ^= 1 << bit;
                reseal(&mut b);
                assert!(
                    matches!(decode_err::<S, P>(&b), DecodeError::NonCanonical(_)),
                    "{:?} {} n={n} nu={nu}: padding bit {bit} of byte {byte}",
                    S::KIND,
                    payload_name::<P>()
                );
                refused += 1;
            }
            // The last meaningful bit of the same byte is data: flipping it
            // (and resealing) decodes, so the refusals above are about padding.
            let mut b = enc.clone();
            b[byte] ^= 1 << (first - 1);
            reseal(&mut b);
            let dec = FssKeys::<S, P>::decode(&b).unwrap();
            assert!(dec.key(key) != k0.key(key), "the data bit changed the key");
            assert_eq!(dec.encode(), b, "a data-bit edit re-encodes as is");
        }
    }
    refused
}

#[test]
fn non_canonical_padding_is_refused() {
    // Z_2 leaves of 1, 2 and 4 bits; t_CW^R padding whenever L % 8 != 0.
    assert_eq!(padding_bits::<Dpf, Z2>(8, 0), 2 * 7);
    assert_eq!(padding_bits::<Dpf, Z2>(8, 1), 2 * (1 + 6));
    assert_eq!(padding_bits::<Dpf, Z2>(8, 2), 2 * (2 + 4));
    assert_eq!(padding_bits::<Dcf, Z2>(5, 0), 2 * (3 + 7));
    assert_eq!(padding_bits::<Dcf, Z2>(5, 1), 2 * (4 + 6));
    assert_eq!(padding_bits::<Dcf, Z2>(5, 2), 2 * (5 + 4));
    assert_eq!(padding_bits::<Dcf, u32>(13, 2), 2 * 5);
    assert_eq!(padding_bits::<Dcf, [u64; 2]>(64, 0), 0);
    assert_eq!(padding_bits::<Dpf, u64>(63, 1), 2 * 2);
}

#[test]
fn sizes_from_the_shape_refuse_overflow() {
    let params = TreeParams::new::<u64>(32).expect("valid");
    assert_eq!(
        FssKeys::<Dcf, u64>::encoded_len_for(params, usize::MAX),
        None
    );
    assert_eq!(
        FssKeys::<Dpf, u64>::encoded_len_for(params, 0),
        Some(HEADER + TRAILER)
    );
}

/// Versions 2 and 3 have no checksum: every single bit flip is either
/// refused (header, counts, padding bits) or decodes to keys that re-encode
/// to exactly the flipped bytes (no two encodings of the same keys; in
/// version 3 a flipped root key is another root key).
fn v2_flips<S: Scheme, P: Payload>(params: TreeParams, seeded: bool) -> (usize, usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let (k0, _, _) = if seeded {
        seeded_batch::<S, P>(params, 3, &mut rng)
    } else {
        batch::<S, P>(params, 3, &mut rng)
    };
    let mut enc = Vec::new();
    k0.encode_into_unchecked(&mut enc);
    let (mut refused, mut accepted) = (0, 0);
    for byte in 0..enc.len() {
        for bit in 0..8 {
            let mut bad = enc.clone();
            bad[byte] ^= 1 << bit;
            match FssKeys::<S, P>::decode_unchecked(&bad) {
                Err(_) => refused += 1,
                Ok(d) => {
                    let mut again = Vec::new();
                    d.encode_into_unchecked(&mut again);
                    assert!(again == bad, "flip at {byte}.{bit} decoded non-canonically");
                    accepted += 1;
                }
            }
        }
    }
    (refused, accepted)
}

#[test]
fn version_2_flips_are_refused_or_canonical() {
    for (r, a) in [false, true].into_iter().flat_map(|seeded| {
        [
            v2_flips::<Dcf, Z2>(TreeParams::new::<Z2>(13).expect("params"), seeded),
            v2_flips::<Dcf, u64>(TreeParams::new::<u64>(9).expect("params"), seeded),
            v2_flips::<Dcf, [u64; 2]>(TreeParams::new::<[u64; 2]>(5).expect("params"), seeded),
            v2_flips::<Dpf, u32>(
                TreeParams::with_early_termination::<u32>(7, 3).expect("params"),
                seeded,
            ),
        ]
    }) {
        // The header's fields and the padding bits are refused, the key
        // material is accepted (it carries no redundancy).
        assert!(r >= 8 * HEADER - 16 && a > 0, "refused {r}, accepted {a}");
    }
}

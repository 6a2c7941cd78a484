//! Known-answer tests.
//!
//! 1. Key and output vectors, stored in `tests/kat/vectors.txt`, one line per
//!    case: `scheme payload n sha_k0 sha_k1 sha_out`.
//!
//!    Cases run in this order, all drawing from ONE generator
//!    `ChaCha8Rng::seed_from_u64(0xA11A_2026)`: scheme `dpf`, `dcf`; inside,
//!    payload `z2`, `u32`, `u64`, `pair`; inside, n = 8, 32, 64, with the
//!    default early termination `TreeParams::new::<P>(n)`. Each case draws,
//!    in this order:
//!    - 16 alphas: `rng.random::<u64>() & (2^n - 1)`;
//!    - 16 betas: `P::from_block(rng.random::<u128>(), 0)`, redrawn while zero;
//!    - 16 root pairs: `[rng.random::<u128>(), rng.random::<u128>()]`
//!      (party 0, party 1);
//!    - 16 words `r_i = rng.random::<u64>()`, giving the points
//!      `x_i = alpha_i` if `i % 4 == 0`, `alpha_i - 1 (mod 2^n)` if
//!      `i % 4 == 1`, else `r_i & (2^n - 1)`.
//!
//!    Keys come from `gen_from_roots`. `sha_k0`/`sha_k1` are the SHA-256 (hex)
//!    of `encode()` of party 0 / party 1; `sha_out` is the SHA-256 of party
//!    0's 16 outputs followed by party 1's 16 outputs, each element in
//!    little-endian bytes (one byte 0/1 for `Z_2`, 4 for `u32`, 8 for `u64`,
//!    16 for a pair: element 0 then element 1). The test also checks that the
//!    outputs reconstruct to `reference::cleartext` and that the encodings
//!    equal those of the `reference::generate` keys packed with `from_keys`,
//!    so the vectors are right, not just stable.
//!
//!    `ARIANN_FSS_WRITE_KAT=1 cargo test --release -p ariann-fss --test kat`
//!    rewrites the file and then fails on purpose.
//!
//! 2. The PRG: `permute(0)` (fixed-key AES-128 of the zero block, as a
//!    little-endian u128) against a value computed with OpenSSL
//!    (`openssl enc -aes-128-ecb -nopad`) and against the `aes` crate called
//!    directly; `hash(seed, tweak)` for four fixed pairs against values
//!    computed with Python's `cryptography` package, and against an
//!    independent sigma-MMO built here on the `aes` crate.

mod common;

use aes::Aes128;
use aes::cipher::{Array, BlockCipherEncrypt, KeyInit};
use ariann_fss::prg::{FIXED_KEY, prg};
use ariann_fss::{Dcf, Dpf, FssKeys, Key, Party, Payload, Scheme, TreeParams, Z2, reference};
use common::{add_shares, kind_name, payload_le_bytes, payload_name};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

const SEED: u64 = 0xA11A_2026;
const KAT_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kat/vectors.txt");
const WRITE_VAR: &str = "ARIANN_FSS_WRITE_KAT";
const POINTS: usize = 16;

fn sha_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// One case: draws its inputs from `rng` (order in the module doc), checks
/// the outputs against the cleartext function and returns the vector line.
fn case<S: Scheme, P: Payload>(rng: &mut ChaCha8Rng, n: u32) -> String {
    let params = TreeParams::new::<P>(n).unwrap();
    let mask = params.domain_mask();
    let alphas: Vec<u64> = (0..POINTS).map(|_| rng.random::<u64>() & mask).collect();
    let betas: Vec<P> = (0..POINTS)
        .map(|_| {
            loop {
                let b = P::from_block(rng.random::<u128>(), 0);
                if b != P::default() {
                    break b;
                }
            }
        })
        .collect();
    let roots: Vec<[u128; 2]> = (0..POINTS)
        .map(|_| [rng.random::<u128>(), rng.random::<u128>()])
        .collect();
    let r: Vec<u64> = (0..POINTS).map(|_| rng.random::<u64>()).collect();
    let xs: Vec<u64> = (0..POINTS)
        .map(|i| match i % 4 {
            0 => alphas[i],
            1 => alphas[i].wrapping_sub(1) & mask,
            _ => r[i] & mask,
        })
        .collect();

    let (k0, k1) = FssKeys::<S, P>::gen_from_roots(params, &alphas, &betas, &roots).unwrap();
    // The vectors are those of the scalar reference too, not only of the fast path.
    let (r0, r1): (Vec<Key<P>>, Vec<Key<P>>) = (0..POINTS)
        .map(|i| reference::generate(S::KIND, params, alphas[i], betas[i], roots[i]))
        .unzip();
    let enc0 = k0.encode();
    let enc1 = k1.encode();
    assert!(
        FssKeys::<S, P>::from_keys(Party::P0, params, &r0)
            .unwrap()
            .encode()
            == enc0
    );
    assert!(
        FssKeys::<S, P>::from_keys(Party::P1, params, &r1)
            .unwrap()
            .encode()
            == enc1
    );
    let y0 = k0.eval_to_vec(&xs).unwrap();
    let y1 = k1.eval_to_vec(&xs).unwrap();
    let y = add_shares(&y0, &y1);
    let mut nonzero = 0;
    for i in 0..POINTS {
        let want = reference::cleartext(S::KIND, params, alphas[i], betas[i], xs[i]);
        assert_eq!(
            y[i],
            want,
            "{} {} n={n}: point {i} does not reconstruct",
            kind_name(S::KIND),
            payload_name::<P>()
        );
        nonzero += usize::from(want != P::default());
    }
    // At least the x = alpha (DPF) or x = alpha - 1 (DCF) points hit.
    assert!(nonzero >= 1, "degenerate case: every output is zero");

    let out: Vec<u8> = y0
        .iter()
        .chain(&y1)
        .flat_map(|v| payload_le_bytes(*v))
        .collect();
    assert_eq!(out.len(), 2 * POINTS * (P::BITS as usize / 8).max(1));
    format!(
        "{} {} {} {} {} {}",
        kind_name(S::KIND),
        payload_name::<P>(),
        n,
        sha_hex(&enc0),
        sha_hex(&enc1),
        sha_hex(&out)
    )
}

fn per_payload<S: Scheme, P: Payload>(rng: &mut ChaCha8Rng, lines: &mut Vec<String>) {
    for n in [8, 32, 64] {
        lines.push(case::<S, P>(rng, n));
    }
}

fn per_scheme<S: Scheme>(rng: &mut ChaCha8Rng, lines: &mut Vec<String>) {
    per_payload::<S, Z2>(rng, lines);
    per_payload::<S, u32>(rng, lines);
    per_payload::<S, u64>(rng, lines);
    per_payload::<S, [u64; 2]>(rng, lines);
}

fn all_lines() -> Vec<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let mut lines = Vec::new();
    per_scheme::<Dpf>(&mut rng, &mut lines);
    per_scheme::<Dcf>(&mut rng, &mut lines);
    lines
}

const FILE_HEADER: &str = "\
# ariann-fss known-answer vectors (generated by crates/fss/tests/kat.rs; see its doc
# comment for how every input is drawn from ChaCha8Rng::seed_from_u64(0xA11A_2026)).
# Regenerate with: ARIANN_FSS_WRITE_KAT=1 cargo test --release -p ariann-fss --test kat
# scheme payload n sha256(encode k0) sha256(encode k1) sha256(outputs k0 || outputs k1)
";

#[test]
fn key_and_output_vectors() {
    let lines = all_lines();
    assert_eq!(lines.len(), 2 * 4 * 3);
    if std::env::var(WRITE_VAR).as_deref() == Ok("1") {
        let mut text = String::from(FILE_HEADER);
        for l in &lines {
            text.push_str(l);
            text.push('\n');
        }
        std::fs::create_dir_all(std::path::Path::new(KAT_PATH).parent().unwrap()).unwrap();
        std::fs::write(KAT_PATH, text).unwrap();
        panic!(
            "{WRITE_VAR}=1: wrote {} vectors to {KAT_PATH}; this run checked nothing, \
             unset {WRITE_VAR} and run the test again",
            lines.len()
        );
    }
    let text = std::fs::read_to_string(KAT_PATH)
        .unwrap_or_else(|e| panic!("cannot read {KAT_PATH}: {e} (generate it with {WRITE_VAR}=1)"));
    let stored: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let mut mismatches = Vec::new();
    for (i, want) in stored.iter().enumerate() {
        match lines.get(i) {
            Some(got) if got == want => {}
            Some(got) => mismatches.push(format!("line {i}:\n  stored   {want}\n  computed {got}")),
            None => mismatches.push(format!("line {i}: stored {want}, nothing computed")),
        }
    }
    for (i, got) in lines.iter().enumerate().skip(stored.len()) {
        mismatches.push(format!("line {i}: computed {got}, nothing stored"));
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} known-answer vectors differ from {KAT_PATH}:\n{}",
        mismatches.len(),
        lines.len(),
        mismatches.join("\n")
    );
}

/// The fixed key is the first 128 bits of the fractional part of pi.
const FIXED_KEY_HEX: &str = "243f6a8885a308d313198a2e03707344";
/// `openssl enc -aes-128-ecb -nopad -K 243F6A8885A308D313198A2E03707344` of 16 zero bytes.
const AES_ZERO_CIPHERTEXT_HEX: &str = "2d89a57aea7ff675d95f27ea0da9f5d3";
/// The same, as the little-endian u128 that `permute` returns.
const PERMUTE_0: u128 = 0xd3f5_a90d_ea27_5fd9_75f6_7fea_7aa5_892d;

/// `H(seed, tweak) = AES(sigma(seed) ^ tweak) ^ sigma(seed) ^ tweak`, with
/// `sigma(hi || lo) = (hi ^ lo) || hi`, computed with Python `cryptography`.
const HASH_VECTORS: [(u128, u128, u128); 4] = [
    (0, 0, 0xd3f5_a90d_ea27_5fd9_75f6_7fea_7aa5_892d),
    (1, 1, 0x22f2_a99f_4d71_82ae_9de4_727f_f78a_7e11),
    (
        0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
        3,
        0x4e8e_97ce_acac_3f36_592f_387a_af8e_56bc,
    ),
    (
        u128::MAX,
        0xDEAD_BEEF,
        0xe5e9_ad4b_7fa5_5c09_4d11_d2d5_fe9a_e9fc,
    ),
];

/// Fixed-key AES of one block through the `aes` crate directly, with the
/// documented byte order (the u128 is the little-endian reading of the block).
fn aes_direct(x: u128) -> u128 {
    let cipher = Aes128::new(&Array::from(FIXED_KEY));
    let mut block = Array::from(x.to_le_bytes());
    cipher.encrypt_block(&mut block);
    u128::from_le_bytes(block.0)
}

fn sigma_here(x: u128) -> u128 {
    let hi = (x >> 64) as u64;
    let lo = x as u64;
    (u128::from(hi ^ lo) << 64) | u128::from(hi)
}

#[test]
fn prg_known_answers() {
    assert_eq!(hex::encode(FIXED_KEY), FIXED_KEY_HEX);

    // Raw permutation of the zero block: OpenSSL, the aes crate, the PRG.
    let cipher = Aes128::new(&Array::from(FIXED_KEY));
    let mut block = Array::from([0u8; 16]);
    cipher.encrypt_block(&mut block);
    assert_eq!(hex::encode(block.0), AES_ZERO_CIPHERTEXT_HEX);
    assert_eq!(u128::from_le_bytes(block.0), PERMUTE_0);
    assert_eq!(prg().permute(0), PERMUTE_0);

    // A few more blocks against the aes crate (byte order of non-symmetric inputs).
    for x in [
        1u128,
        1 << 127,
        0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10,
        u128::MAX,
    ] {
        assert_eq!(prg().permute(x), aes_direct(x), "permute({x:#x})");
    }

    // H on fixed (seed, tweak) pairs: stored values and an independent recomputation.
    for (seed, tweak, want) in HASH_VECTORS {
        let x = sigma_here(seed) ^ tweak;
        assert_eq!(
            aes_direct(x) ^ x,
            want,
            "independent H({seed:#x}, {tweak:#x})"
        );
        assert_eq!(prg().hash(seed, tweak), want, "H({seed:#x}, {tweak:#x})");
    }
    // sigma(0) = 0, so H(0, 0) is the permutation of zero.
    assert_eq!(prg().hash(0, 0), PERMUTE_0);
}

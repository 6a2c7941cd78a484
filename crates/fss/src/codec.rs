//! Compact, versioned, checksummed encoding of a batch of keys of one party.
//!
//! Layout (all integers little-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 4 | magic `ARFS` |
//! | 2 | format version: 1 = with the SHA-256 trailer, 2 and 3 = without (see below) |
//! | 1 | scheme: 1 = DPF, 2 = DCF |
//! | 1 | payload group tag: 1 = `Z_2`, 32 = `Z_2^32`, 64 = `Z_2^64`, 128 = `(Z_2^64)^2` |
//! | 1 | `n`, input width in bits (1..=64) |
//! | 1 | `nu`, early-termination depth (0..=min(n, 12)) |
//! | 1 | party (0 or 1) |
//! | 1 | reserved, must be 0 |
//! | 8 | key count |
//! | count x [`TreeParams::key_bytes`] | the keys, one after the other |
//! | 32 | SHA-256 of everything above (version 1 only) |
//!
//! Version 2 ([`crate::FssKeys::encode_into_unchecked`]) is for containers
//! that check the integrity of the bytes themselves: a key bundle travels
//! inside a key file whose chunks carry a signed SHA-256, or a TLS stream
//! (or a loopback one), so a second SHA-256 of the same bytes only cost
//! time (about half of encoding and decoding). It has the same header, no
//! trailer, and the same key material in the order it has in memory, which
//! both sides stream through instead of gathering each key's words across
//! the level-interleaved arrays:
//!
//! | bytes | field |
//! |---|---|
//! | 20 | the header, version 2 |
//! | 16 count | the root seeds |
//! | 16 count L | the seed correction words, bit 0 `t_CW^L` (and bit 1 `V_CW` for a one-bit DCF), in the batch's layout order (groups of 64 keys, level-major inside a group) |
//! | ceil(count L / 8) | `t_CW^R`, one bit per word in the same order, LSB first; padding bits zero |
//! | count L x BITS/8 | `V_CW` in the same order (DCF with payload wider than one bit only) |
//! | count x ceil(2^nu x BITS / 8) | each key's leaf correction vector, as in version 1 |
//!
//! Version 3 is version 2 for a batch made by [`crate::FssKeys::generate`],
//! whose root seeds are expanded from one 16-byte root key per party
//! (AES-128 in counter mode, [`crate::prg`]): the 16 count bytes of root
//! seeds are replaced by that key, and the decoder expands it again. For a
//! one-bit DCF on 23 bits this is 16 of 290 bytes per key.
//!
//! | bytes | field |
//! |---|---|
//! | 20 | the header, version 3 |
//! | 16 | the root key |
//! | ... | the rest of version 2's body, from the seed correction words on |
//!
//! [`crate::FssKeys::encode_into_unchecked`] writes version 3 when the batch
//! has a root key and version 2 otherwise (keys from explicit root seeds or
//! from standalone keys); [`crate::FssKeys::decode_unchecked`] reads both;
//! [`crate::FssKeys::decode`] reads version 1 only, and version 1 always
//! carries each key's root seed.
//!
//! One key, with `L = n - nu` levels:
//!
//! | bytes | field |
//! |---|---|
//! | 16 | root seed |
//! | 16 L | seed correction word of each level; bit 0 holds `t_CW^L`, and for a one-bit DCF bit 1 holds `V_CW` |
//! | ceil(L / 8) | `t_CW^R` of each level, one bit each, LSB first; padding bits zero |
//! | L x BITS/8 | `V_CW` of each level (DCF with payload wider than one bit only) |
//! | ceil(2^nu x BITS / 8) | leaf correction vector, elements packed LSB first; padding bits zero |
//!
//! Decoding checks the header, then that the input length is exactly what the
//! header announces (before allocating anything), then the checksum, then the
//! canonical form of every padding bit.

use crate::error::DecodeError;
use crate::keys::{Corrections, Kind, Party, TreeKeys, TreeParams, cw_index};
use crate::payload::Payload;
use crate::prg::ctr_blocks;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Magic bytes of a key encoding.
pub const MAGIC: [u8; 4] = *b"ARFS";
/// Format version with the SHA-256 trailer ([`crate::FssKeys::encode`]).
pub const VERSION: u16 = 1;
/// Format version without the trailer, root seeds written out
/// ([`crate::FssKeys::encode_into_unchecked`] of a batch without a root key).
pub const VERSION_UNCHECKED: u16 = 2;
/// Format version without the trailer, root seeds expanded from a root key
/// ([`crate::FssKeys::encode_into_unchecked`] of a batch from
/// [`crate::FssKeys::generate`]).
pub const VERSION_SEEDED: u16 = 3;
/// Bytes of a root key.
pub const ROOT_KEY_LEN: usize = 16;
/// Bytes of the fixed header.
pub const HEADER_LEN: usize = 20;
/// Bytes of the trailing checksum.
pub const CHECKSUM_LEN: usize = 32;

/// Whether an encoding ends with the SHA-256 trailer (version 1) or not
/// (versions 2 and 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Trailer {
    Sha256,
    None,
}

impl Trailer {
    fn len(self) -> usize {
        match self {
            Trailer::Sha256 => CHECKSUM_LEN,
            Trailer::None => 0,
        }
    }
}

/// The three layouts (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// Version 1: key-major, SHA-256 trailer.
    Checked,
    /// Version 2: memory order, root seeds written out.
    Unchecked,
    /// Version 3: version 2 with a root key instead of the root seeds.
    Seeded,
}

impl Format {
    fn version(self) -> u16 {
        match self {
            Format::Checked => VERSION,
            Format::Unchecked => VERSION_UNCHECKED,
            Format::Seeded => VERSION_SEEDED,
        }
    }

    fn trailer(self) -> Trailer {
        match self {
            Format::Checked => Trailer::Sha256,
            Format::Unchecked | Format::Seeded => Trailer::None,
        }
    }

    /// The format `keys` are written in with `trailer`.
    pub(crate) fn of<P: Payload>(keys: &TreeKeys<P>, trailer: Trailer) -> Self {
        match (trailer, keys.root_key.is_some()) {
            (Trailer::Sha256, _) => Format::Checked,
            (Trailer::None, false) => Format::Unchecked,
            (Trailer::None, true) => Format::Seeded,
        }
    }
}

/// Length of the encoding of `count` keys of `kind`, payload `P` and shape
/// `params`: header, keys, checksum if any; `None` if it overflows `usize`.
pub(crate) fn checked_encoded_len<P: Payload>(
    kind: Kind,
    params: TreeParams,
    count: usize,
    format: Format,
) -> Option<usize> {
    usize::try_from(encoded_len_u128::<P>(kind, params, count as u128, format)).ok()
}

/// The exact encoded length in `u128` (no overflow for any `u64` count):
/// version 1 packs each key's `t_CW^R` bits in `ceil(L / 8)` bytes, versions
/// 2 and 3 all keys' bits together in `ceil(count L / 8)`; version 3 has one
/// root key instead of a root seed per key.
fn encoded_len_u128<P: Payload>(
    kind: Kind,
    params: TreeParams,
    count: u128,
    format: Format,
) -> u128 {
    let kb = params.key_bytes::<P>(kind) as u128;
    let l = params.levels() as u128;
    let body = match format {
        Format::Checked => count * kb,
        Format::Unchecked => count * (kb - l.div_ceil(8)) + (count * l).div_ceil(8),
        Format::Seeded => {
            ROOT_KEY_LEN as u128 + count * (kb - 16 - l.div_ceil(8)) + (count * l).div_ceil(8)
        }
    };
    HEADER_LEN as u128 + body + format.trailer().len() as u128
}

/// [`checked_encoded_len`] of a batch held in memory (so it cannot overflow).
pub(crate) fn encoded_len<P: Payload>(
    kind: Kind,
    params: TreeParams,
    count: usize,
    format: Format,
) -> usize {
    checked_encoded_len::<P>(kind, params, count, format).unwrap_or(usize::MAX)
}

pub(crate) fn encode<P: Payload>(keys: &TreeKeys<P>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(keys, &mut out, Trailer::Sha256);
    out
}

/// Appends the encoding of `keys` to `out` (reserving exactly its length
/// first), with the checksum (if any) over the appended bytes only: no
/// temporary buffer, no copy.
pub(crate) fn encode_into<P: Payload>(keys: &TreeKeys<P>, out: &mut Vec<u8>, trailer: Trailer) {
    let kind = keys.kind;
    let params = keys.params;
    let len = keys.len();
    let l = params.levels();
    let lb = params.leaf_blocks::<P>();
    let one_bit_dcf = kind == Kind::Dcf && P::BITS == 1;
    let leaf_bytes = (params.leaf_len() * P::BITS as usize).div_ceil(8);
    let elem_bytes = P::BITS as usize / 8;

    let start = out.len();
    let format = Format::of(keys, trailer);
    out.reserve(encoded_len::<P>(kind, params, len, format));
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&format.version().to_le_bytes());
    out.push(kind.tag());
    out.push(P::TAG);
    out.push(params.n() as u8);
    out.push(params.nu() as u8);
    out.push(keys.party.index());
    out.push(0);
    out.extend_from_slice(&(len as u64).to_le_bytes());
    if trailer == Trailer::None {
        encode_body_in_layout_order(keys, out);
        return;
    }
    for i in 0..len {
        out.extend_from_slice(&keys.seeds[i].to_le_bytes());
        let at = |lvl: usize| cw_index(i, lvl, len, l);
        for lvl in 0..l {
            let mut w = keys.cw.cw_seed[at(lvl)] | u128::from(keys.cw.cw_t[at(lvl)] & 1);
            if one_bit_dcf {
                let mut vb = 0u128;
                keys.cw.cw_v[at(lvl)].put_in_block(&mut vb, 0);
                w |= (vb & 1) << 1;
            }
            out.extend_from_slice(&w.to_le_bytes());
        }
        for lvl0 in (0..l).step_by(8) {
            let mut b = 0u8;
            for j in 0..8.min(l - lvl0) {
                b |= ((keys.cw.cw_t[at(lvl0 + j)] >> 1) & 1) << j;
            }
            out.push(b);
        }
        if kind == Kind::Dcf && P::BITS > 1 {
            for lvl in 0..l {
                let mut blk = 0u128;
                keys.cw.cw_v[at(lvl)].put_in_block(&mut blk, 0);
                out.extend_from_slice(&blk.to_le_bytes()[..elem_bytes]);
            }
        }
        put_leaf(out, &keys.cw.leaf[i * lb..(i + 1) * lb], leaf_bytes);
    }
    if trailer == Trailer::Sha256 {
        let digest = Sha256::digest(&out[start..]);
        out.extend_from_slice(digest.as_slice());
    }
}

fn u128_at(bytes: &[u8], at: usize) -> u128 {
    u128_16(&bytes[at..at + 16])
}

/// The little-endian `u128` of exactly 16 bytes: a fixed-size copy, which
/// compiles to one load where [`u128_le`]'s variable length is a `memcpy`
/// call (5 % of a party's CPU on the key path in `perf`).
#[inline(always)]
fn u128_16(bytes: &[u8]) -> u128 {
    let mut b = [0u8; 16];
    b.copy_from_slice(&bytes[..16]);
    u128::from_le_bytes(b)
}

/// The little-endian `u128` of up to 16 bytes (missing high bytes zero).
#[inline]
fn u128_le(bytes: &[u8]) -> u128 {
    if bytes.len() == 16 {
        return u128_16(bytes);
    }
    let mut b = [0u8; 16];
    b[..bytes.len()].copy_from_slice(bytes);
    u128::from_le_bytes(b)
}

/// Appends one key's leaf: its blocks' bytes, cut to `leaf_bytes`.
fn put_leaf(out: &mut Vec<u8>, blocks: &[u128], leaf_bytes: usize) {
    let mut left = leaf_bytes;
    for blk in blocks {
        let take = left.min(16);
        out.extend_from_slice(&blk.to_le_bytes()[..take]);
        left -= take;
    }
}

/// Reads one key's leaf written by [`put_leaf`] into its blocks, refusing
/// non-zero padding bits.
fn read_leaf(lf: &[u8], leaf_bits: usize, blocks: &mut [u128]) -> Result<(), DecodeError> {
    check_leaf_padding(lf, leaf_bits)?;
    for (blk, chunk) in blocks.iter_mut().zip(lf.chunks(16)) {
        *blk = u128_le(chunk);
    }
    Ok(())
}

/// [`read_leaf`] appending the key's `lb` blocks to `leaf` instead.
fn push_leaf(
    lf: &[u8],
    leaf_bits: usize,
    lb: usize,
    leaf: &mut Vec<u128>,
) -> Result<(), DecodeError> {
    check_leaf_padding(lf, leaf_bits)?;
    let before = leaf.len();
    leaf.extend(lf.chunks(16).map(u128_le));
    // A leaf whose bytes end before its last block (never at lb = 1).
    leaf.resize(before + lb, 0);
    Ok(())
}

fn check_leaf_padding(lf: &[u8], leaf_bits: usize) -> Result<(), DecodeError> {
    if !leaf_bits.is_multiple_of(8) && lf[lf.len() - 1] >> (leaf_bits % 8) != 0 {
        return Err(DecodeError::NonCanonical(
            "padding bits of the leaf are not zero",
        ));
    }
    Ok(())
}

pub(crate) fn decode<P: Payload>(
    bytes: &[u8],
    kind: Kind,
    trailer: Trailer,
) -> Result<TreeKeys<P>, DecodeError> {
    let tl = trailer.len();
    if bytes.len() < HEADER_LEN + tl {
        return Err(DecodeError::TooShort {
            need: HEADER_LEN + tl,
            got: bytes.len(),
        });
    }
    if bytes[0..4] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    let format = match (trailer, version) {
        (Trailer::Sha256, VERSION) => Format::Checked,
        (Trailer::None, VERSION_UNCHECKED) => Format::Unchecked,
        (Trailer::None, VERSION_SEEDED) => Format::Seeded,
        (Trailer::Sha256, _) => {
            return Err(DecodeError::UnsupportedVersion {
                found: version,
                supported: VERSION,
            });
        }
        (Trailer::None, _) => {
            return Err(DecodeError::UnsupportedVersion {
                found: version,
                supported: VERSION_SEEDED,
            });
        }
    };
    if bytes[6] != kind.tag() {
        return Err(DecodeError::WrongKind {
            expected: kind.name(),
            found: bytes[6],
        });
    }
    if bytes[7] != P::TAG {
        return Err(DecodeError::WrongPayload {
            expected: P::NAME,
            expected_tag: P::TAG,
            found: bytes[7],
        });
    }
    let params = TreeParams::from_raw(bytes[8], bytes[9]).ok_or_else(|| {
        DecodeError::InvalidHeader(format!(
            "n = {} and nu = {} (need 1 <= n <= 64, nu <= min(n, 12))",
            bytes[8], bytes[9]
        ))
    })?;
    let party = Party::from_index(bytes[10])
        .ok_or_else(|| DecodeError::InvalidHeader(format!("party {} is not 0 or 1", bytes[10])))?;
    if bytes[11] != 0 {
        return Err(DecodeError::InvalidHeader(format!(
            "reserved byte is {}, must be 0",
            bytes[11]
        )));
    }
    let mut cnt = [0u8; 8];
    cnt.copy_from_slice(&bytes[12..20]);
    let count = u64::from_le_bytes(cnt);
    let expected = encoded_len_u128::<P>(kind, params, u128::from(count), format);
    if expected != bytes.len() as u128 {
        return Err(DecodeError::LengthMismatch {
            expected,
            got: bytes.len(),
        });
    }
    // From here on, count * kb < bytes.len() (version 3: count * (kb - 16)), so
    // allocations are bounded by the input (version 3's seeds: 16 bytes per key,
    // which takes at least one byte).
    let count = count as usize;
    let (body, sum) = bytes.split_at(bytes.len() - tl);
    if trailer == Trailer::Sha256 && Sha256::digest(body).as_slice() != sum {
        return Err(DecodeError::ChecksumMismatch);
    }

    if trailer == Trailer::None {
        let body = &body[HEADER_LEN..];
        let (root_key, body) = if format == Format::Seeded {
            let (key, rest) = body.split_at(ROOT_KEY_LEN);
            (Some(u128_16(key)), rest)
        } else {
            (None, body)
        };
        let (seeds, cw) = decode_body_in_layout_order::<P>(body, kind, params, count, root_key)?;
        return Ok(TreeKeys {
            kind,
            party,
            params,
            seeds,
            root_key,
            cw: Arc::new(cw),
        });
    }
    let l = params.levels();
    let lb = params.leaf_blocks::<P>();
    let one_bit_dcf = kind == Kind::Dcf && P::BITS == 1;
    let mask = TreeParams::seed_mask::<P>(kind);
    let elem_bytes = P::BITS as usize / 8;
    let leaf_bits = params.leaf_len() * P::BITS as usize;
    let leaf_bytes = leaf_bits.div_ceil(8);
    let mut seeds = vec![0u128; count];
    let mut cw = Corrections::<P>::empty(kind, params, count);
    let mut at = HEADER_LEN;
    for (i, seed) in seeds.iter_mut().enumerate() {
        *seed = u128_at(body, at);
        at += 16;
        for lvl in 0..l {
            let w = u128_at(body, at);
            at += 16;
            let idx = cw_index(i, lvl, count, l);
            cw.cw_seed[idx] = w & mask;
            cw.cw_t[idx] = (w & 1) as u8;
            if one_bit_dcf {
                cw.cw_v[idx] = P::from_block(w >> 1, 0);
            }
        }
        let tr = &body[at..at + l.div_ceil(8)];
        at += l.div_ceil(8);
        for lvl in 0..l {
            cw.cw_t[cw_index(i, lvl, count, l)] |= ((tr[lvl / 8] >> (lvl % 8)) & 1) << 1;
        }
        if !l.is_multiple_of(8) && tr[l / 8] >> (l % 8) != 0 {
            return Err(DecodeError::NonCanonical(
                "padding bits of t_CW^R are not zero",
            ));
        }
        if kind == Kind::Dcf && P::BITS > 1 {
            for lvl in 0..l {
                cw.cw_v[cw_index(i, lvl, count, l)] =
                    P::from_block(u128_le(&body[at..at + elem_bytes]), 0);
                at += elem_bytes;
            }
        }
        read_leaf(
            &body[at..at + leaf_bytes],
            leaf_bits,
            &mut cw.leaf[i * lb..(i + 1) * lb],
        )?;
        at += leaf_bytes;
    }
    debug_assert_eq!(at, body.len());
    Ok(TreeKeys {
        kind,
        party,
        params,
        seeds,
        root_key: None,
        cw: Arc::new(cw),
    })
}

/// Version 2's body: the arrays of [`TreeKeys`] one after the other, each in
/// its memory order (the correction words in the level-interleaved layout of
/// [`cw_index`]), so that both sides stream through memory instead of
/// gathering every word of a key across the arrays (in version 1's
/// key-major order, `perf` showed encoding and decoding bound by those
/// loads). Layout: the root seeds (16 bytes each); the `count L` words
/// (`cw_seed | t_CW^L`, and for a one-bit DCF `V_CW << 1`, 16 bytes each);
/// the `count L` bits `t_CW^R` packed LSB first (`ceil(count L / 8)` bytes,
/// padding bits zero); for a DCF with a wider payload the `count L` values
/// `V_CW` (`BITS / 8` bytes each); then each key's leaf as in version 1.
fn encode_body_in_layout_order<P: Payload>(keys: &TreeKeys<P>, out: &mut Vec<u8>) {
    let params = keys.params;
    let kind = keys.kind;
    let one_bit_dcf = kind == Kind::Dcf && P::BITS == 1;
    let elem_bytes = P::BITS as usize / 8;
    let leaf_bytes = (params.leaf_len() * P::BITS as usize).div_ceil(8);
    let cw = &keys.cw;
    match keys.root_key {
        Some(key) => out.extend_from_slice(&key.to_le_bytes()),
        None => {
            for s in &keys.seeds {
                out.extend_from_slice(&s.to_le_bytes());
            }
        }
    }
    if one_bit_dcf {
        for ((s, t), v) in cw.cw_seed.iter().zip(&cw.cw_t).zip(&cw.cw_v) {
            let mut vb = 0u128;
            v.put_in_block(&mut vb, 0);
            let w = s | u128::from(t & 1) | ((vb & 1) << 1);
            out.extend_from_slice(&w.to_le_bytes());
        }
    } else {
        for (s, t) in cw.cw_seed.iter().zip(&cw.cw_t) {
            out.extend_from_slice(&(s | u128::from(t & 1)).to_le_bytes());
        }
    }
    for ts in cw.cw_t.chunks(8) {
        let mut b = 0u8;
        for (j, t) in ts.iter().enumerate() {
            b |= ((t >> 1) & 1) << j;
        }
        out.push(b);
    }
    if kind == Kind::Dcf && P::BITS > 1 {
        for v in &cw.cw_v {
            let mut blk = 0u128;
            v.put_in_block(&mut blk, 0);
            out.extend_from_slice(&blk.to_le_bytes()[..elem_bytes]);
        }
    }
    let lb = params.leaf_blocks::<P>();
    if lb > 0 {
        for blocks in cw.leaf.chunks(lb) {
            put_leaf(out, blocks, leaf_bytes);
        }
    }
}

/// Parses [`encode_body_in_layout_order`]'s output; `body` has exactly the
/// announced length (checked by the caller) and, in version 3, starts after
/// the root key (`root_key`), whose expansion gives the seeds. Each array is
/// built by one pass over its bytes (no zero-filled arrays overwritten
/// afterwards).
fn decode_body_in_layout_order<P: Payload>(
    body: &[u8],
    kind: Kind,
    params: TreeParams,
    count: usize,
    root_key: Option<u128>,
) -> Result<(Vec<u128>, Corrections<P>), DecodeError> {
    let l = params.levels();
    let n = count * l;
    let one_bit_dcf = kind == Kind::Dcf && P::BITS == 1;
    let mask = TreeParams::seed_mask::<P>(kind);
    let elem_bytes = P::BITS as usize / 8;
    let leaf_bits = params.leaf_len() * P::BITS as usize;
    let leaf_bytes = leaf_bits.div_ceil(8);
    let lb = params.leaf_blocks::<P>();
    let seed_len = if root_key.is_some() { 0 } else { 16 * count };
    let (seed_bytes, rest) = body.split_at(seed_len);
    let (word_bytes, rest) = rest.split_at(16 * n);
    let (tr_bytes, rest) = rest.split_at(n.div_ceil(8));
    let v_len = if kind == Kind::Dcf && P::BITS > 1 {
        n * elem_bytes
    } else {
        0
    };
    let (v_bytes, leaf_all) = rest.split_at(v_len);
    debug_assert_eq!(leaf_all.len(), count * leaf_bytes);
    if !n.is_multiple_of(8) && tr_bytes[n / 8] >> (n % 8) != 0 {
        return Err(DecodeError::NonCanonical(
            "padding bits of t_CW^R are not zero",
        ));
    }

    let seeds: Vec<u128> = match root_key {
        Some(key) => ctr_blocks(key, count),
        None => seed_bytes.chunks_exact(16).map(u128_16).collect(),
    };
    let mut cw_seed = Vec::with_capacity(n);
    let mut cw_t = Vec::with_capacity(n);
    let mut cw_v: Vec<P> = Vec::with_capacity(if kind == Kind::Dcf { n } else { 0 });
    // Eight words share one byte of t_R bits.
    for (words, &tr) in word_bytes.chunks(128).zip(tr_bytes) {
        for (i, c) in words.chunks_exact(16).enumerate() {
            let w = u128_16(c);
            cw_seed.push(w & mask);
            cw_t.push(((w & 1) as u8) | (((tr >> i) & 1) << 1));
            if one_bit_dcf {
                cw_v.push(P::from_block(w >> 1, 0));
            }
        }
    }
    if kind == Kind::Dcf && !one_bit_dcf {
        cw_v.extend(
            v_bytes
                .chunks_exact(elem_bytes.max(1))
                .map(|c| P::from_block(u128_le(c), 0)),
        );
    }
    let mut leaf = Vec::with_capacity(count * lb);
    if leaf_bytes > 0 {
        for lf in leaf_all.chunks_exact(leaf_bytes) {
            push_leaf(lf, leaf_bits, lb, &mut leaf)?;
        }
    } else {
        leaf.resize(count * lb, 0);
    }
    debug_assert_eq!(
        (cw_seed.len(), cw_t.len(), cw_v.len(), leaf.len()),
        (n, n, if kind == Kind::Dcf { n } else { 0 }, count * lb)
    );
    Ok((
        seeds,
        Corrections {
            cw_seed,
            cw_t,
            cw_v,
            leaf,
        },
    ))
}

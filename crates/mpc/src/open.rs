//! Masked openings: both parties publish their share of a *masked* value and
//! add them up. Only values masked by dealer randomness may be opened.
//!
//! Values are sent modulo `2^bits` in `ceil(bits / 8)` little-endian bytes
//! each, so an opening on a `k`-bit comparison window costs `k` bits per
//! element, not a full ring element. XOR-shared bits ([`open_bits`]) are
//! packed eight to a byte.

use crate::error::MpcError;
use crate::transport::Transport;
use ariann_ring::Ring;

/// `2^bits - 1` as a `u64` (all ones for 64).
#[inline]
pub(crate) fn low_mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// Bytes per element of an opening of `bits`-bit values.
pub fn bytes_per_element(bits: u32) -> usize {
    bits.div_ceil(8) as usize
}

/// Serializes `vals` modulo `2^bits`.
pub(crate) fn pack<R: Ring>(vals: &[R], bits: u32) -> Vec<u8> {
    let w = bytes_per_element(bits);
    let m = low_mask(bits);
    let mut out = Vec::with_capacity(vals.len() * w);
    if w == 8 {
        // Whole words: a fixed-size copy per element (vectorized).
        for v in vals {
            out.extend_from_slice(&v.to_u64().to_le_bytes());
        }
    } else {
        for v in vals {
            out.extend_from_slice(&(v.to_u64() & m).to_le_bytes()[..w]);
        }
    }
    out
}

/// Parses `count` values of `bits` bits.
pub(crate) fn unpack<R: Ring>(bytes: &[u8], count: usize, bits: u32) -> Result<Vec<R>, MpcError> {
    let w = bytes_per_element(bits);
    if bytes.len() != count * w {
        return Err(MpcError::WrongLength {
            expected: count * w,
            got: bytes.len(),
        });
    }
    let m = low_mask(bits);
    Ok(bytes
        .chunks_exact(w)
        .map(|c| {
            let mut b = [0u8; 8];
            b[..w].copy_from_slice(c);
            R::from_u64(u64::from_le_bytes(b) & m)
        })
        .collect())
}

/// Opens `masked_share` (this party's share of a masked value) in one round:
/// returns `(share_0 + share_1) mod 2^bits` for every element.
pub fn open<R: Ring, T: Transport + ?Sized>(
    t: &mut T,
    masked_share: &[R],
    bits: u32,
) -> Result<Vec<R>, MpcError> {
    if bits == 0 || bits > R::BITS {
        return Err(MpcError::InvalidParameter(format!(
            "opening width {bits} bits for a {}-bit ring",
            R::BITS
        )));
    }
    let theirs = t.exchange(&pack(masked_share, bits))?;
    let w = bytes_per_element(bits);
    if theirs.len() != masked_share.len() * w {
        return Err(MpcError::WrongLength {
            expected: masked_share.len() * w,
            got: theirs.len(),
        });
    }
    // The peer's values are read and added in one pass (no unpacked copy).
    let m = low_mask(bits);
    Ok(masked_share
        .iter()
        .zip(theirs.chunks_exact(w))
        .map(|(a, c)| {
            let mut b = [0u8; 8];
            b[..w].copy_from_slice(c);
            R::from_u64(a.wadd(R::from_u64(u64::from_le_bytes(b))).to_u64() & m)
        })
        .collect())
}

/// Opens several masked vectors, each at its own width, in ONE exchange: the
/// runner's way to batch the openings of independent gates into one round
/// (call each gate's `mask`, open them together, then each gate's `finish`).
pub fn open_batch<R: Ring, T: Transport + ?Sized>(
    t: &mut T,
    parts: &[(&[R], u32)],
) -> Result<Vec<Vec<R>>, MpcError> {
    for (_, bits) in parts {
        if *bits == 0 || *bits > R::BITS {
            return Err(MpcError::InvalidParameter(format!(
                "opening width {bits} bits for a {}-bit ring",
                R::BITS
            )));
        }
    }
    let mut msg = Vec::new();
    for (vals, bits) in parts {
        msg.extend_from_slice(&pack(vals, *bits));
    }
    let theirs = t.exchange(&msg)?;
    let expected: usize = parts
        .iter()
        .map(|(v, b)| v.len() * bytes_per_element(*b))
        .sum();
    if theirs.len() != expected {
        return Err(MpcError::WrongLength {
            expected,
            got: theirs.len(),
        });
    }
    let mut at = 0;
    let mut out = Vec::with_capacity(parts.len());
    for (vals, bits) in parts {
        let n = vals.len() * bytes_per_element(*bits);
        let other: Vec<R> = unpack(&theirs[at..at + n], vals.len(), *bits)?;
        at += n;
        let m = low_mask(*bits);
        out.push(
            vals.iter()
                .zip(&other)
                .map(|(a, b)| R::from_u64(a.wadd(*b).to_u64() & m))
                .collect(),
        );
    }
    Ok(out)
}

/// Bytes of an opening of `n` XOR-shared bits ([`open_bits`]): `ceil(n / 8)`.
pub fn bit_bytes(n: usize) -> usize {
    n.div_ceil(8)
}

/// Packs bits (each `0` or `1`; only the lowest bit of each byte is read)
/// eight to a byte, lowest bit first, the last byte padded with zeros.
pub(crate) fn pack_bits(bits: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; bit_bytes(bits.len())];
    for (i, b) in bits.iter().enumerate() {
        out[i / 8] |= (b & 1) << (i % 8);
    }
    out
}

/// Unpacks `n` bits written by [`pack_bits`] from exactly `ceil(n / 8)`
/// bytes; `None` if the length is wrong or a padding bit is set.
pub(crate) fn unpack_bits(bytes: &[u8], n: usize) -> Option<Vec<u8>> {
    if bytes.len() != bit_bytes(n) {
        return None;
    }
    if !n.is_multiple_of(8) && bytes.last().is_some_and(|b| b >> (n % 8) != 0) {
        return None;
    }
    Some((0..n).map(|i| (bytes[i / 8] >> (i % 8)) & 1).collect())
}

/// Opens XOR-shared bits in one round: `shares[i]` is this party's share
/// (`0` or `1`) of a bit masked by dealer randomness; both parties send
/// their shares packed eight to a byte ([`bit_bytes`] bytes) and the result
/// is `share_0 XOR share_1` for every bit. A message of the wrong length is
/// [`MpcError::WrongLength`], one with a padding bit set
/// [`MpcError::Protocol`].
pub fn open_bits<T: Transport + ?Sized>(t: &mut T, shares: &[u8]) -> Result<Vec<u8>, MpcError> {
    let mine = pack_bits(shares);
    let theirs = t.exchange(&mine)?;
    if theirs.len() != mine.len() {
        return Err(MpcError::WrongLength {
            expected: mine.len(),
            got: theirs.len(),
        });
    }
    let theirs = unpack_bits(&theirs, shares.len())
        .ok_or_else(|| MpcError::Protocol("padding bits set in a bit opening".into()))?;
    Ok(shares
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a ^ b) & 1)
        .collect())
}

//! Additive two-party secret sharing over `Z_2^BITS`, and seed-compressed
//! shares.
//!
//! `x = x0 + x1 mod 2^BITS` with `x0` uniform, so each share alone is
//! uniformly distributed and independent of `x`.
//!
//! A dealer that hands a party a share which is pure randomness can send the
//! 32-byte [`ShareSeed`] it was expanded from instead of the share itself
//! ([`share_with_seed`]): the party expands it locally.

use crate::error::RingError;
use crate::ring::Ring;
use crate::tensor::{RingTensor, checked_len};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Additive shares `(x0, x1)` of `x`: `x0` uniform from `rng`, `x1 = x - x0`.
pub fn share<R: Ring, G: rand::Rng + rand::CryptoRng + ?Sized>(
    x: &RingTensor<R>,
    rng: &mut G,
) -> (RingTensor<R>, RingTensor<R>) {
    let x0 = RingTensor::random(x.shape(), rng);
    let x1 = RingTensor::from_vec(
        x.shape(),
        x.as_slice()
            .iter()
            .zip(x0.as_slice())
            .map(|(&v, &r)| v.wsub(r))
            .collect(),
    )
    .expect("same element count as x");
    (x0, x1)
}

/// `a + b`: the value of two additive shares;
/// [`RingError::ShapeMismatch`] if their shapes differ.
pub fn reconstruct<R: Ring>(
    a: &RingTensor<R>,
    b: &RingTensor<R>,
) -> Result<RingTensor<R>, RingError> {
    a.add(b)
}

/// A 32-byte seed from which a share tensor is expanded: the key of a
/// ChaCha20 stream (see [`expand`](Self::expand)).
///
/// Secret: zeroized on drop, and `Debug` does not print it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ShareSeed(pub [u8; 32]);

impl core::fmt::Debug for ShareSeed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ShareSeed(<redacted>)")
    }
}

/// Elements per rayon task of [`ShareSeed::expand`].
const EXPAND_CHUNK: usize = 1 << 14;

impl ShareSeed {
    /// A fresh uniformly random seed.
    pub fn random<G: rand::Rng + rand::CryptoRng + ?Sized>(rng: &mut G) -> Self {
        let mut s = [0u8; 32];
        rng.fill_bytes(&mut s);
        ShareSeed(s)
    }

    /// The tensor of `shape` expanded from the seed.
    ///
    /// Element `i` (row-major) is the `i`-th `BITS`-bit little-endian word
    /// of the ChaCha20 keystream keyed by the seed (nonce 0, block counter
    /// from 0), i.e. of `rand_chacha::ChaCha20Rng::from_seed(seed)`; this is
    /// the same as drawing the elements one by one with [`Ring::random`]
    /// from that generator, which is how the tests check it. The stream is
    /// split into chunks generated on rayon (seeking with `set_word_pos`),
    /// so the result does not depend on the thread count. A known-answer
    /// test pins this expansion: the dealer and the parties must agree on it
    /// bit for bit.
    ///
    /// # Panics
    /// If the element count of `shape` overflows `usize`.
    pub fn expand<R: Ring>(&self, shape: &[usize]) -> RingTensor<R> {
        let n = checked_len(shape).expect("ShareSeed::expand: element count overflows usize");
        let mut data = vec![R::ZERO; n];
        let words_per_elem = u128::from(R::BITS / 32);
        let fill = |(t, chunk): (usize, &mut [R])| {
            let mut rng = ChaCha20Rng::from_seed(self.0);
            rng.set_word_pos((t * EXPAND_CHUNK) as u128 * words_per_elem);
            let mut buf = [0u8; 512];
            let bytes_per_elem = (R::BITS / 8) as usize;
            for sub in chunk.chunks_mut(buf.len() / bytes_per_elem) {
                let bytes = &mut buf[..sub.len() * bytes_per_elem];
                rng.fill_bytes(bytes);
                for (d, b) in sub.iter_mut().zip(bytes.chunks_exact(bytes_per_elem)) {
                    *d = R::from_u64(le_u64(b));
                }
            }
            buf.zeroize();
        };
        if n > EXPAND_CHUNK {
            data.par_chunks_mut(EXPAND_CHUNK).enumerate().for_each(fill);
        } else {
            data.chunks_mut(EXPAND_CHUNK).enumerate().for_each(fill);
        }
        RingTensor::from_vec(shape, data).expect("n elements for shape")
    }
}

/// The little-endian integer of up to 8 bytes.
fn le_u64(b: &[u8]) -> u64 {
    b.iter()
        .rev()
        .fold(0u64, |acc, &byte| (acc << 8) | u64::from(byte))
}

/// Party 1's share of `x` when party 0's share is `seed.expand(x.shape())`:
/// returns `x - seed.expand(x.shape())`. The dealer sends party 0 only the
/// seed and party 1 the returned tensor.
pub fn share_with_seed<R: Ring>(x: &RingTensor<R>, seed: &ShareSeed) -> RingTensor<R> {
    let mut r = seed.expand::<R>(x.shape());
    for (d, &v) in r.as_mut_slice().iter_mut().zip(x.as_slice()) {
        *d = v.wsub(*d);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn le_u64_matches_std() {
        let b = [1u8, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(le_u64(&b), u64::from_le_bytes(b));
        assert_eq!(le_u64(&b[..4]), u64::from(u32::from_le_bytes([1, 2, 3, 4])));
    }

    #[test]
    fn debug_hides_seed() {
        let s = format!("{:?}", ShareSeed([0xab; 32]));
        assert!(!s.contains("171") && !s.contains("ab"), "{s}");
    }
}

//! The length-doubling PRG of the tree-based FSS schemes, from fixed-key AES-128.
//!
//! We model fixed-key AES `pi` as a random permutation and hash with the
//! tweaked sigma-MMO construction of Guo, Katz, Wang, Yu ("Efficient and Secure
//! Multiparty Computation from Fixed-Key Block Ciphers", S&P 2020):
//!
//! ```text
//! H(s, tweak) = pi(sigma(s) ^ tweak) ^ sigma(s) ^ tweak,
//! sigma(hi || lo) = (hi ^ lo) || hi
//! ```
//!
//! `sigma` is a linear orthomorphism, which makes `H` circular-correlation
//! robust; distinct tweaks give independent-looking outputs for the same seed,
//! so one seed expands into its left child, its right child, the payload words
//! of each side and the leaf blocks, each with one AES call, and evaluation
//! computes only the blocks of the side the path takes.
//!
//! AES comes from the RustCrypto `aes` crate, which picks AES-NI / VAES at run
//! time and falls back to a constant-time bitsliced implementation; nothing
//! here needs `target-cpu=native` or `unsafe`. Batches of blocks are handed to
//! `encrypt_blocks` in one call so the backend pipelines them (AES latency is
//! hidden only when several independent blocks are in flight).

use aes::Aes128;
use aes::cipher::{Array, BlockCipherEncrypt, KeyInit};
use std::sync::OnceLock;

/// The public fixed AES key: the first 128 bits of the fractional part of pi
/// (a nothing-up-my-sleeve constant).
pub const FIXED_KEY: [u8; 16] = 0x243F_6A88_85A3_08D3_1319_8A2E_0370_7344u128.to_be_bytes();

/// Tweak of the left (`0`) and right (`1`) child seed blocks.
pub(crate) const TWEAK_SEED: [u128; 2] = [0, 1];
/// Tweak of the left and right payload blocks (DCF with payloads wider than one bit).
pub(crate) const TWEAK_V: [u128; 2] = [2, 3];
/// Tweak of leaf block `i` is `TWEAK_LEAF + i`.
pub(crate) const TWEAK_LEAF: u128 = 4;

/// Largest number of blocks hashed in one call of the fast paths.
pub(crate) const MAX_BATCH: usize = 128;

/// Fixed-key AES and the hash `H` built on it.
pub struct Prg {
    cipher: Aes128,
}

impl core::fmt::Debug for Prg {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Prg(fixed-key AES-128, sigma-MMO)")
    }
}

/// The process-wide PRG instance (the key is public and fixed).
pub fn prg() -> &'static Prg {
    static PRG: OnceLock<Prg> = OnceLock::new();
    PRG.get_or_init(|| Prg {
        cipher: Aes128::new(&Array::from(FIXED_KEY)),
    })
}

/// The orthomorphism `sigma(hi || lo) = (hi ^ lo) || hi`.
#[inline(always)]
pub(crate) fn sigma(x: u128) -> u128 {
    let hi = x >> 64;
    let lo = x & u128::from(u64::MAX);
    ((hi ^ lo) << 64) | hi
}

impl Prg {
    /// `H(seed, tweak)` for one block (the scalar reference path).
    pub fn hash(&self, seed: u128, tweak: u128) -> u128 {
        let x = sigma(seed) ^ tweak;
        let mut block = Array::from(x.to_le_bytes());
        self.cipher.encrypt_block(&mut block);
        u128::from_le_bytes(block.0) ^ x
    }

    /// Raw fixed-key AES of one block (exposed for known-answer tests).
    pub fn permute(&self, x: u128) -> u128 {
        let mut block = Array::from(x.to_le_bytes());
        self.cipher.encrypt_block(&mut block);
        u128::from_le_bytes(block.0)
    }

    /// Batched `H`: on entry `inputs[i]` holds `sigma(seed_i) ^ tweak_i`, on exit
    /// it holds `H(seed_i, tweak_i)`. At most [`MAX_BATCH`] blocks per call.
    #[inline]
    pub(crate) fn hash_prepared(&self, inputs: &mut [u128]) {
        debug_assert!(inputs.len() <= MAX_BATCH);
        let mut buf = [[0u8; 16]; MAX_BATCH];
        let n = inputs.len().min(MAX_BATCH);
        for (b, x) in buf[..n].iter_mut().zip(inputs.iter()) {
            *b = x.to_le_bytes();
        }
        self.cipher
            .encrypt_blocks(Array::cast_slice_from_core_mut(&mut buf[..n]));
        for (x, b) in inputs[..n].iter_mut().zip(buf.iter()) {
            *x ^= u128::from_le_bytes(*b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_matches_fips197_vector() {
        // FIPS-197 Appendix C.1: key 000102..0f, plaintext 00112233..ff.
        let key: [u8; 16] = core::array::from_fn(|i| i as u8);
        let cipher = Aes128::new(&Array::from(key));
        let mut block = Array::from([
            0x00u8, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ]);
        cipher.encrypt_block(&mut block);
        assert_eq!(
            block.0,
            [
                0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30, 0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4,
                0xc5, 0x5a
            ]
        );
    }

    #[test]
    fn batched_hash_equals_scalar_hash() {
        let p = prg();
        let seeds: Vec<u128> = (0..100u128)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835))
            .collect();
        let mut buf: Vec<u128> = seeds
            .iter()
            .enumerate()
            .map(|(i, s)| sigma(*s) ^ (i as u128 % 7))
            .collect();
        p.hash_prepared(&mut buf);
        for (i, s) in seeds.iter().enumerate() {
            assert_eq!(buf[i], p.hash(*s, i as u128 % 7));
        }
    }

    #[test]
    fn sigma_is_a_bijection_on_samples() {
        // sigma^{-1}(a || b) = b || (a ^ b)
        for x in [0u128, 1, u128::MAX, 0x1234_5678_9abc_def0_0fed_cba9_8765_4321] {
            let y = sigma(x);
            let (a, b) = (y >> 64, y & u128::from(u64::MAX));
            assert_eq!((b << 64) | (a ^ b), x);
        }
        assert_ne!(prg().hash(5, 0), prg().hash(5, 1));
    }
}

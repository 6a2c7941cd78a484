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

use crate::aes_fast::FastAes;
use aes::Aes128;
use aes::cipher::consts::U16;
use aes::cipher::typenum::Unsigned;
use aes::cipher::{
    Array, Block, BlockCipherEncBackend, BlockCipherEncClosure, BlockCipherEncrypt, BlockSizeUser,
    KeyInit,
};
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

/// Largest number of blocks hashed in one call of [`Hasher::hash`].
pub(crate) const MAX_BATCH: usize = 256;

/// Fixed-key AES and the hash `H` built on it.
pub struct Prg {
    cipher: Aes128,
    /// The intrinsic batch path, when the CPU supports it.
    fast: Option<FastAes>,
}

/// [`Hasher`] over the intrinsic path of [`crate::aes_fast`].
struct FastHasher<'a>(&'a FastAes);

impl Hasher for FastHasher<'_> {
    #[inline(always)]
    fn hash(&mut self, inputs: &mut [u128]) {
        self.0.mmo(inputs);
    }
}

/// Something that hashes batches of prepared blocks: on entry `inputs[i]`
/// holds `sigma(seed_i) ^ tweak_i`, on exit `H(seed_i, tweak_i)`.
pub(crate) trait Hasher {
    /// Hashes `inputs` in place (any length).
    fn hash(&mut self, inputs: &mut [u128]);
}

/// A computation that needs many batched hashes. [`Prg::run`] hands it a
/// [`Hasher`] bound to the AES backend the CPU supports, set up once for the
/// whole job (the backend's key schedule broadcast is not redone per batch).
pub(crate) trait HashJob {
    /// Result of the job.
    type Output;
    /// Runs the job with the given hasher.
    fn run<H: Hasher>(self, hasher: &mut H) -> Self::Output;
}

/// [`Hasher`] over one AES backend `B`. The backend encrypts `ParBlocksSize`
/// blocks at a time in a pipelined way and a shorter tail one block at a time
/// (latency-bound), so a tail longer than 2 blocks is padded to a full batch.
struct BackendHasher<'a, B: BlockCipherEncBackend<BlockSize = U16>> {
    backend: &'a B,
    bytes: Vec<Block<B>>,
}

impl<B: BlockCipherEncBackend<BlockSize = U16>> Hasher for BackendHasher<'_, B> {
    #[inline]
    fn hash(&mut self, inputs: &mut [u128]) {
        let par = B::ParBlocksSize::USIZE;
        for piece in inputs.chunks_mut(MAX_BATCH) {
            let n = piece.len();
            let rem = n % par;
            let padded = if par > 1 && rem > 2 { n - rem + par } else { n };
            if self.bytes.len() < padded {
                self.bytes.resize(padded, Array::default());
            }
            let buf = &mut self.bytes[..padded];
            for (b, x) in buf.iter_mut().zip(piece.iter()) {
                *b = Array::from(x.to_le_bytes());
            }
            if par > 1 {
                let (chunks, tail) = Array::slice_as_chunks_mut(buf);
                for c in chunks {
                    self.backend.encrypt_par_blocks_inplace(c);
                }
                for b in tail {
                    self.backend.encrypt_block_inplace(b);
                }
            } else {
                for b in buf.iter_mut() {
                    self.backend.encrypt_block_inplace(b);
                }
            }
            for (x, b) in piece.iter_mut().zip(self.bytes.iter()) {
                *x ^= u128::from_le_bytes(b.0);
            }
        }
    }
}

impl<B: BlockCipherEncBackend<BlockSize = U16>> Drop for BackendHasher<'_, B> {
    fn drop(&mut self) {
        for b in self.bytes.iter_mut() {
            zeroize::Zeroize::zeroize(&mut b.0);
        }
    }
}

/// Adapter from a [`HashJob`] to the cipher crate's rank-2 backend closure.
struct JobClosure<'a, J: HashJob> {
    job: J,
    out: &'a mut Option<J::Output>,
}

impl<J: HashJob> BlockSizeUser for JobClosure<'_, J> {
    type BlockSize = U16;
}

impl<J: HashJob> BlockCipherEncClosure for JobClosure<'_, J> {
    #[inline(always)]
    fn call<B: BlockCipherEncBackend<BlockSize = U16>>(self, backend: &B) {
        let mut h = BackendHasher {
            backend,
            bytes: vec![Array::default(); MAX_BATCH + B::ParBlocksSize::USIZE],
        };
        *self.out = Some(self.job.run(&mut h));
    }
}

/// `len` blocks of AES-128 in counter mode under `key`: block `i` is
/// `AES-128_key(i)` (the index as a little-endian block).
///
/// The root seeds of a batch of keys of one party come from its 16-byte
/// root key this way: the dealer draws one root key per party and batch
/// from its CSPRNG ([`crate::FssKeys::generate`]), and a bundle carries
/// the 16-byte key instead of 16 bytes per key (format 3 in
/// [`crate::codec`]). The other party never sees it, so to it the seeds are
/// pseudorandom, which is all the schemes' security uses. The MPC gates
/// expand one party's shares of dealer values from a seed the same way.
pub fn ctr_blocks(key: u128, len: usize) -> Vec<u128> {
    const PIECE: usize = 256;
    let cipher = Aes128::new(&Array::from(key.to_le_bytes()));
    let mut out = Vec::with_capacity(len);
    let mut buf: Vec<Block<Aes128>> = vec![Array::default(); PIECE.min(len)];
    let mut i = 0u128;
    while out.len() < len {
        let n = PIECE.min(len - out.len());
        for b in buf[..n].iter_mut() {
            *b = Array::from(i.to_le_bytes());
            i += 1;
        }
        cipher.encrypt_blocks(&mut buf[..n]);
        out.extend(buf[..n].iter().map(|b| u128::from_le_bytes(b.0)));
    }
    for b in buf.iter_mut() {
        zeroize::Zeroize::zeroize(&mut b.0);
    }
    out
}

/// The process-wide PRG instance (the key is public and fixed).
pub fn prg() -> &'static Prg {
    static PRG: OnceLock<Prg> = OnceLock::new();
    PRG.get_or_init(|| Prg {
        cipher: Aes128::new(&Array::from(FIXED_KEY)),
        fast: FastAes::new(FIXED_KEY),
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

    /// Runs `job` with a [`Hasher`] on the best AES backend of this CPU.
    pub(crate) fn run<J: HashJob>(&self, job: J) -> J::Output {
        match &self.fast {
            Some(f) => job.run(&mut FastHasher(f)),
            None => self.run_portable(job),
        }
    }

    /// Name of the batch AES path in use (for reports).
    pub fn backend_name(&self) -> &'static str {
        #[cfg(target_arch = "x86_64")]
        if let Some(f) = &self.fast {
            return match f.isa() {
                crate::aes_fast::Isa::Vaes512 => "VAES-512 intrinsics",
                crate::aes_fast::Isa::AesNi => "AES-NI intrinsics",
            };
        }
        "RustCrypto aes crate (portable dispatch)"
    }

    /// Runs `job` on the `aes` crate's backend (the portable path).
    pub(crate) fn run_portable<J: HashJob>(&self, job: J) -> J::Output {
        let mut out = None;
        self.cipher
            .encrypt_with_backend(JobClosure { job, out: &mut out });
        // `encrypt_with_backend` always calls the closure exactly once.
        out.unwrap_or_else(|| unreachable!("cipher backend did not run the job"))
    }

    /// Batched `H` over prepared blocks (see [`Hasher`]), as one job.
    #[cfg(test)]
    pub(crate) fn hash_prepared(&self, inputs: &mut [u128]) {
        struct One<'a>(&'a mut [u128]);
        impl HashJob for One<'_> {
            type Output = ();
            fn run<H: Hasher>(self, h: &mut H) {
                h.hash(self.0);
            }
        }
        self.run(One(inputs));
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

    /// The intrinsic paths (VAES-512 and AES-NI, where present) and the
    /// portable `aes`-crate path agree on every batch length up to 300.
    #[test]
    fn fast_and_portable_paths_agree() {
        struct Job<'a>(&'a mut [u128]);
        impl HashJob for Job<'_> {
            type Output = ();
            fn run<H: Hasher>(self, h: &mut H) {
                h.hash(self.0);
            }
        }
        let p = prg();
        for len in 0..300usize {
            let input: Vec<u128> = (0..len as u128)
                .map(|i| (i + 1).wrapping_mul(0xD1B5_4A32_D192_ED03_AEF0_0E2C_4D8F_1B67))
                .collect();
            let mut a = input.clone();
            p.run_portable(Job(&mut a));
            for (x, y) in input.iter().zip(&a) {
                assert_eq!(*y, p.permute(*x) ^ x);
            }
            if let Some(f) = &p.fast {
                let mut b = input.clone();
                f.mmo(&mut b);
                assert_eq!(a, b, "len {len}");
                #[cfg(target_arch = "x86_64")]
                {
                    let mut c = input.clone();
                    f.clone().aesni_only().mmo(&mut c);
                    assert_eq!(a, c, "aesni len {len}");
                }
            }
        }
    }

    #[test]
    fn sigma_is_a_bijection_on_samples() {
        // sigma^{-1}(a || b) = b || (a ^ b)
        for x in [
            0u128,
            1,
            u128::MAX,
            0x1234_5678_9abc_def0_0fed_cba9_8765_4321,
        ] {
            let y = sigma(x);
            let (a, b) = (y >> 64, y & u128::from(u64::MAX));
            assert_eq!((b << 64) | (a ^ b), x);
        }
        assert_ne!(prg().hash(5, 0), prg().hash(5, 1));
    }
}

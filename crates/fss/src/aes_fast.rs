//! The one module with `unsafe`: fixed-key AES-128 in MMO mode over batches of
//! blocks with x86 AES intrinsics (AES-NI, and VAES on 512-bit registers
//! when the CPU has AVX-512F + VAES), selected by run-time feature detection.
//!
//! Why intrinsics: the FSS evaluators hash one block per key per tree level,
//! a few dozen blocks at a time. Through the `aes` crate's generic batch API
//! each such call pays for copying into its block type and for loading the
//! batch lane by lane; that overhead was measured at about a quarter of DCF
//! evaluation time. Here the blocks are loaded straight from the caller's
//! `u128` words (x86 is little-endian, so a `u128` in memory is exactly the
//! block `x.to_le_bytes()`), encrypted with the round keys held in registers,
//! and XORed with the input (MMO) before being stored back.
//!
//! Portable fallback: when this module reports no support (another
//! architecture, or a CPU without AES-NI), [`crate::prg`] uses the RustCrypto
//! `aes` crate. Both paths are tested against each other and against the
//! scalar reference. Nothing here requires `target-cpu=native`.
#![allow(unsafe_code)]

#[cfg(target_arch = "x86_64")]
mod imp {
    use core::arch::x86_64::*;

    /// Which instruction set the batch path uses.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum Isa {
        AesNi,
        Vaes512,
    }

    /// Expanded AES-128 key for the intrinsic paths. Constructible only after
    /// run-time detection succeeded, which is what makes the `unsafe` calls
    /// below sound.
    #[derive(Clone)]
    pub(crate) struct FastAes {
        rk: [u128; 11],
        isa: Isa,
    }

    impl FastAes {
        /// Expands `key` if the CPU has AES-NI (and SSE2, always present on x86-64).
        pub(crate) fn new(key: [u8; 16]) -> Option<Self> {
            if !std::arch::is_x86_feature_detected!("aes") {
                return None;
            }
            // SAFETY: AES-NI presence was checked just above.
            let rk = unsafe { expand(key) };
            let isa = if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("vaes")
            {
                Isa::Vaes512
            } else {
                Isa::AesNi
            };
            Some(Self { rk, isa })
        }

        /// Forces the 128-bit AES-NI path (for tests of both paths).
        #[cfg(test)]
        pub(crate) fn aesni_only(mut self) -> Self {
            self.isa = Isa::AesNi;
            self
        }

        /// The instruction set in use.
        pub(crate) fn isa(&self) -> Isa {
            self.isa
        }

        /// `data[i] <- AES(data[i]) ^ data[i]` for every block.
        #[inline]
        pub(crate) fn mmo(&self, data: &mut [u128]) {
            match self.isa {
                // SAFETY: `Isa::Vaes512` is only chosen after detecting
                // AVX-512F, VAES and AES-NI.
                Isa::Vaes512 => unsafe { mmo_vaes512(&self.rk, data) },
                // SAFETY: a `FastAes` exists only if AES-NI was detected.
                Isa::AesNi => unsafe { mmo_aesni(&self.rk, data) },
            }
        }
    }

    #[inline(always)]
    fn load(x: &u128) -> __m128i {
        // SAFETY: `x` is a valid 16-byte location; unaligned load.
        unsafe { _mm_loadu_si128((x as *const u128).cast()) }
    }

    #[inline(always)]
    fn store(x: &mut u128, v: __m128i) {
        // SAFETY: `x` is a valid, writable 16-byte location; unaligned store.
        unsafe { _mm_storeu_si128((x as *mut u128).cast(), v) }
    }

    #[target_feature(enable = "aes,sse2")]
    fn expand_step(k: __m128i, assist: __m128i) -> __m128i {
        let assist = _mm_shuffle_epi32::<0xff>(assist);
        let mut k = k;
        k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
        k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
        k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
        _mm_xor_si128(k, assist)
    }

    /// AES-128 key expansion (FIPS-197 section 5.2) with AESKEYGENASSIST.
    #[target_feature(enable = "aes,sse2")]
    fn expand(key: [u8; 16]) -> [u128; 11] {
        let mut rk = [_mm_setzero_si128(); 11];
        rk[0] = load(&u128::from_le_bytes(key));
        rk[1] = expand_step(rk[0], _mm_aeskeygenassist_si128::<0x01>(rk[0]));
        rk[2] = expand_step(rk[1], _mm_aeskeygenassist_si128::<0x02>(rk[1]));
        rk[3] = expand_step(rk[2], _mm_aeskeygenassist_si128::<0x04>(rk[2]));
        rk[4] = expand_step(rk[3], _mm_aeskeygenassist_si128::<0x08>(rk[3]));
        rk[5] = expand_step(rk[4], _mm_aeskeygenassist_si128::<0x10>(rk[4]));
        rk[6] = expand_step(rk[5], _mm_aeskeygenassist_si128::<0x20>(rk[5]));
        rk[7] = expand_step(rk[6], _mm_aeskeygenassist_si128::<0x40>(rk[6]));
        rk[8] = expand_step(rk[7], _mm_aeskeygenassist_si128::<0x80>(rk[7]));
        rk[9] = expand_step(rk[8], _mm_aeskeygenassist_si128::<0x1b>(rk[8]));
        rk[10] = expand_step(rk[9], _mm_aeskeygenassist_si128::<0x36>(rk[9]));
        let mut out = [0u128; 11];
        for (o, r) in out.iter_mut().zip(rk.iter()) {
            store(o, *r);
        }
        out
    }

    /// MMO over 8 blocks at a time with 128-bit AES-NI (8 blocks in flight
    /// cover the AESENC latency), then one at a time.
    #[target_feature(enable = "aes,sse2")]
    fn mmo_aesni(rk: &[u128; 11], data: &mut [u128]) {
        let k: [__m128i; 11] = core::array::from_fn(|i| load(&rk[i]));
        let mut chunks = data.chunks_exact_mut(8);
        for c in &mut chunks {
            let x: [__m128i; 8] = core::array::from_fn(|i| load(&c[i]));
            let mut y: [__m128i; 8] = core::array::from_fn(|i| _mm_xor_si128(x[i], k[0]));
            for r in &k[1..10] {
                for v in y.iter_mut() {
                    *v = _mm_aesenc_si128(*v, *r);
                }
            }
            for i in 0..8 {
                store(
                    &mut c[i],
                    _mm_xor_si128(_mm_aesenclast_si128(y[i], k[10]), x[i]),
                );
            }
        }
        for b in chunks.into_remainder() {
            let x = load(b);
            let mut y = _mm_xor_si128(x, k[0]);
            for r in &k[1..10] {
                y = _mm_aesenc_si128(y, *r);
            }
            store(b, _mm_xor_si128(_mm_aesenclast_si128(y, k[10]), x));
        }
    }

    #[inline(always)]
    fn load4(x: &[u128]) -> __m512i {
        debug_assert!(x.len() >= 4);
        // SAFETY: the caller passes at least 4 blocks (64 valid bytes).
        unsafe { _mm512_loadu_si512(x.as_ptr().cast()) }
    }

    #[inline(always)]
    fn store4(x: &mut [u128], v: __m512i) {
        debug_assert!(x.len() >= 4);
        // SAFETY: the caller passes at least 4 writable blocks.
        unsafe { _mm512_storeu_si512(x.as_mut_ptr().cast(), v) }
    }

    /// MMO with VAES on 512-bit registers: 32 blocks (8 registers) in flight,
    /// then 4 at a time, then the 128-bit path for the last 0..3 blocks.
    #[target_feature(enable = "avx512f,vaes,aes,sse2")]
    fn mmo_vaes512(rk: &[u128; 11], data: &mut [u128]) {
        let k: [__m512i; 11] = core::array::from_fn(|i| _mm512_broadcast_i32x4(load(&rk[i])));
        let mut chunks = data.chunks_exact_mut(32);
        for c in &mut chunks {
            let x: [__m512i; 8] = core::array::from_fn(|i| load4(&c[4 * i..]));
            let mut y: [__m512i; 8] = core::array::from_fn(|i| _mm512_xor_si512(x[i], k[0]));
            for r in &k[1..10] {
                for v in y.iter_mut() {
                    *v = _mm512_aesenc_epi128(*v, *r);
                }
            }
            for i in 0..8 {
                let o = _mm512_xor_si512(_mm512_aesenclast_epi128(y[i], k[10]), x[i]);
                store4(&mut c[4 * i..], o);
            }
        }
        let rest = chunks.into_remainder();
        let mut quads = rest.chunks_exact_mut(4);
        for c in &mut quads {
            let x = load4(c);
            let mut y = _mm512_xor_si512(x, k[0]);
            for r in &k[1..10] {
                y = _mm512_aesenc_epi128(y, *r);
            }
            store4(c, _mm512_xor_si512(_mm512_aesenclast_epi128(y, k[10]), x));
        }
        mmo_aesni(rk, quads.into_remainder());
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod imp {
    /// No intrinsic path on this architecture: always `None`.
    #[derive(Clone)]
    pub(crate) struct FastAes;

    impl FastAes {
        pub(crate) fn new(_key: [u8; 16]) -> Option<Self> {
            None
        }
        pub(crate) fn mmo(&self, _data: &mut [u128]) {}
    }
}

pub(crate) use imp::FastAes;
#[cfg(target_arch = "x86_64")]
pub(crate) use imp::Isa;

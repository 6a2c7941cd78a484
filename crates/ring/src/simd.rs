//! The one module of ariann-ring with `unsafe`: run-time selection of the
//! instruction set for the hot loops of the matrix product (and so of the
//! convolution, an im2col followed by a product).
//!
//! The default build targets the portable x86-64 baseline (SSE2), so that a
//! binary built on one machine runs on every party's and dealer's host. The
//! product's kernels (`tensor.rs`: the register-blocked micro-kernel, the
//! column-panel loop, the dot-product kernel of small convolutions) are
//! written once, generic and `#[inline(always)]`; here they are
//! instantiated inside functions compiled
//! with `#[target_feature(enable = ...)]`, so that the compiler vectorises
//! each clone for its instruction set:
//!
//! - [`Kernel::Avx512`] (AVX-512F + AVX-512DQ): 64-bit lane multiply
//!   `vpmullq`, 8 lanes;
//! - [`Kernel::Avx2`]: 4 lanes of u64, the 64x64->64 multiply emulated with
//!   three `vpmuludq` (u32 rings use `vpmulld`). The u64 product (from 4
//!   rows on) has a hand-written kernel instead (`x86::mm_u64_avx2`): the
//!   cross terms of the emulated multiply accumulate apart and are shifted
//!   once per output instead of once per product, `b`'s high halves are
//!   packed once per panel, and `a`'s halves are broadcast from memory (two
//!   instructions of inline assembly, so that the optimiser cannot turn
//!   them back into shuffles); 1.1-2.6x the generic AVX2 code at LeNet's
//!   training shapes and a 512^3 product (`ring_kernels`);
//! - [`Kernel::Scalar`]: the portable code as compiled for the target
//!   (the only path on other architectures).
//!
//! The kernel is chosen once per process ([`kernel`]): the best one the CPU
//! supports, unless the environment variable `ARIANN_SIMD` says otherwise
//! (`off` / `scalar`: the portable path; `avx2`: at most AVX2). Wrapping
//! arithmetic is exact and every path adds the same products, so all paths
//! give bit-for-bit identical results (tested against each other and against
//! [`crate::reference`]). Same pattern as `ariann-fss`'s `aes_fast` module;
//! no dependency beyond `std::arch`.
#![allow(unsafe_code)]

use crate::ring::Ring;
use std::sync::atomic::{AtomicU8, Ordering};

/// An instruction set for the ring products.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// Portable code, compiled for the build's target (no run-time feature).
    Scalar,
    /// x86-64 AVX2 (256-bit vectors).
    Avx2,
    /// x86-64 AVX-512F + AVX-512DQ (512-bit vectors, `vpmullq`).
    Avx512,
}

impl Kernel {
    /// A short lowercase name: `scalar`, `avx2`, `avx512`.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Scalar => "scalar",
            Kernel::Avx2 => "avx2",
            Kernel::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run the kernel.
    pub fn is_supported(self) -> bool {
        match self {
            Kernel::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512dq")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Kernel::Scalar => 1,
            Kernel::Avx2 => 2,
            Kernel::Avx512 => 3,
        }
    }

    fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Kernel::Scalar),
            2 => Some(Kernel::Avx2),
            3 => Some(Kernel::Avx512),
            _ => None,
        }
    }
}

/// Every kernel this CPU supports, the portable one first.
pub fn available_kernels() -> Vec<Kernel> {
    [Kernel::Scalar, Kernel::Avx2, Kernel::Avx512]
        .into_iter()
        .filter(|k| k.is_supported())
        .collect()
}

/// 0 = not chosen yet, else [`Kernel::to_u8`].
static SELECTED: AtomicU8 = AtomicU8::new(0);

/// The kernel the ring products use in this process: chosen on first use
/// from the CPU's features and the `ARIANN_SIMD` environment variable
/// (`off` or `scalar`: portable path; `avx2`: at most AVX2; unset, empty or
/// `auto`: the best supported), then fixed.
pub fn kernel() -> Kernel {
    if let Some(k) = Kernel::from_u8(SELECTED.load(Ordering::Relaxed)) {
        return k;
    }
    let k = choose(std::env::var("ARIANN_SIMD").ok().as_deref());
    // Two threads may race here; both compute the same choice.
    SELECTED.store(k.to_u8(), Ordering::Relaxed);
    k
}

fn choose(env: Option<&str>) -> Kernel {
    let best = available_kernels()
        .last()
        .copied()
        .unwrap_or(Kernel::Scalar);
    match env.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        Some("off" | "scalar" | "0" | "none") => Kernel::Scalar,
        Some("avx2") if Kernel::Avx2.is_supported() => Kernel::Avx2,
        Some("avx2") => Kernel::Scalar,
        _ => best,
    }
}

/// Rows `i0..i0 + rows` of `a (m x k) . b (k x n)` added into `out`
/// (`rows x n`), with kernel `kern` (which must be supported: the public
/// entry points pass [`kernel`] or a member of [`available_kernels`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_block<R: Ring>(
    kern: Kernel,
    a: &[R],
    b: &[R],
    out: &mut [R],
    i0: usize,
    rows: usize,
    k: usize,
    n: usize,
) {
    match kern {
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 if kern.is_supported() => {
            // SAFETY: AVX-512F and AVX-512DQ were detected just above.
            unsafe { x86::matmul_block_avx512(a, b, out, i0, rows, k, n) }
        }
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 if kern.is_supported() => {
            if rows >= U64_MIN_ROWS
                && let (Some(a), Some(b), Some(out)) = (as_u64(a), as_u64(b), as_u64_mut(out))
            {
                // SAFETY: AVX2 was detected just above.
                return unsafe { x86::mm_u64_avx2(a, b, out, i0, rows, k, n, 0, n) };
            }
            // SAFETY: AVX2 was detected just above.
            unsafe { x86::matmul_block_avx2(a, b, out, i0, rows, k, n) }
        }
        _ => crate::tensor::matmul_block::<R, 4, 16>(a, b, out, i0, rows, k, n),
    }
}

/// Columns `j0..j1` of `a (m x k) . b (k x n)` into `panel`
/// (`m x (j1 - j0)`), with kernel `kern` (as [`matmul_block`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_panel<R: Ring>(
    kern: Kernel,
    a: &[R],
    b: &[R],
    panel: &mut [R],
    m: usize,
    k: usize,
    n: usize,
    j0: usize,
    j1: usize,
) {
    match kern {
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 if kern.is_supported() => {
            // SAFETY: AVX-512F and AVX-512DQ were detected just above.
            unsafe { x86::matmul_panel_avx512(a, b, panel, m, k, n, j0, j1) }
        }
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 if kern.is_supported() => {
            if m >= U64_MIN_ROWS
                && let (Some(a), Some(b), Some(panel)) = (as_u64(a), as_u64(b), as_u64_mut(panel))
            {
                // SAFETY: AVX2 was detected just above.
                return unsafe { x86::mm_u64_avx2(a, b, panel, 0, m, k, n, j0, j1) };
            }
            // SAFETY: AVX2 was detected just above.
            unsafe { x86::matmul_panel_avx2(a, b, panel, m, k, n, j0, j1) }
        }
        _ => crate::tensor::matmul_panel(a, b, panel, m, k, n, j0, j1),
    }
}

/// Rows `j0..j0 + out_t.len() / m` of `w . a^T` into `out_t`
/// ([`crate::tensor::dot_rows`]), with kernel `kern` (as [`matmul_block`]).
pub(crate) fn dot_rows<R: Ring>(
    kern: Kernel,
    a: &[R],
    w: &[R],
    out_t: &mut [R],
    j0: usize,
    m: usize,
    k: usize,
) {
    match kern {
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 if kern.is_supported() => {
            // SAFETY: AVX-512F and AVX-512DQ were detected just above.
            unsafe { x86::dot_rows_avx512(a, w, out_t, j0, m, k) }
        }
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 if kern.is_supported() => {
            // SAFETY: AVX2 was detected just above.
            unsafe { x86::dot_rows_avx2(a, w, out_t, j0, m, k) }
        }
        _ => crate::tensor::dot_rows::<R, 4>(a, w, out_t, j0, m, k),
    }
}

/// Rows from which the u64 AVX2 kernel (which packs `b`'s panel with its
/// high halves) beats the generic one: with fewer rows the packing is most
/// of the work.
const U64_MIN_ROWS: usize = 4;

/// `v` as `&[u64]` when the ring is `Z_2^64` (the ring products have an
/// AVX2 kernel of their own for it), else `None`.
fn as_u64<R: Ring>(v: &[R]) -> Option<&[u64]> {
    if core::any::TypeId::of::<R>() == core::any::TypeId::of::<u64>() {
        // SAFETY: `R` is `u64` (same type id), so the slice is a `[u64]`.
        Some(unsafe { core::slice::from_raw_parts(v.as_ptr().cast::<u64>(), v.len()) })
    } else {
        None
    }
}

/// [`as_u64`] for a mutable slice.
fn as_u64_mut<R: Ring>(v: &mut [R]) -> Option<&mut [u64]> {
    if core::any::TypeId::of::<R>() == core::any::TypeId::of::<u64>() {
        // SAFETY: `R` is `u64` (same type id), so the slice is a `[u64]`.
        Some(unsafe { core::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u64>(), v.len()) })
    } else {
        None
    }
}

/// The generic kernels of [`crate::tensor`] compiled for each instruction
/// set. Nothing here is `unsafe` inside: the functions are only unsafe to
/// call, on a CPU without the features.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use crate::ring::Ring;
    use crate::tensor::{dot_rows, matmul_block, matmul_panel};
    use core::arch::x86_64::{
        __m256i, _mm256_add_epi64, _mm256_loadu_si256, _mm256_mul_epu32, _mm256_setzero_si256,
        _mm256_slli_epi64, _mm256_storeu_si256,
    };
    use zeroize::Zeroize;

    /// Columns of `b` per packed panel of the u64 AVX2 kernel: two vectors.
    const KC: usize = 8;
    /// Inner-dimension block: a packed block (`KB x 2 KC` words, 32 KiB)
    /// stays in the L1/L2 cache while every row tile goes over it.
    const KB: usize = 256;

    /// The u64 product with AVX2, `out += a[i0..i0 + rows] . b[.., j0..j1]`
    /// (`a`: `m x k`, `b`: `k x n`, `out`: `rows x (j1 - j0)`, all
    /// row-major).
    ///
    /// AVX2 has no 64-bit lane multiply; `vpmuludq` multiplies the low 32
    /// bits of each lane into 64. With `x = x_h 2^32 + x_l`,
    /// `a b mod 2^64 = a_l b_l + 2^32 (a_h b_l + a_l b_h) mod 2^64`, so the
    /// tile keeps two accumulators per output vector, `a_l b_l` and the
    /// cross terms `a_h b_l + a_l b_h` (three `vpmuludq` and three adds per
    /// four products, no shift), and combines them once at the end
    /// (`ll + (xx << 32)`): only the low 32 bits of the cross sum matter,
    /// and wrapping sums keep them exact. The panel of `b` is packed with its
    /// high halves next to it (`b >> 32`); `a`'s halves are broadcast to
    /// every lane. Column tails are packed with
    /// zeros and only the valid columns are written.
    #[target_feature(enable = "avx2")]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn mm_u64_avx2(
        a: &[u64],
        b: &[u64],
        out: &mut [u64],
        i0: usize,
        rows: usize,
        k: usize,
        n: usize,
        j0: usize,
        j1: usize,
    ) {
        let width = j1 - j0;
        if rows == 0 || width == 0 || k == 0 {
            return;
        }
        assert!(a.len() >= (i0 + rows) * k && b.len() >= k * n && j1 <= n);
        assert!(out.len() >= rows * width);
        let mut pk = vec![0u64; KB * 2 * KC];
        for p0 in (0..k).step_by(KB) {
            let kb = (p0 + KB).min(k) - p0;
            for jb in (j0..j1).step_by(KC) {
                let w = (j1 - jb).min(KC);
                for (p, dst) in pk.chunks_exact_mut(2 * KC).take(kb).enumerate() {
                    let src = &b[(p0 + p) * n + jb..(p0 + p) * n + jb + w];
                    let (lo, hi) = dst.split_at_mut(KC);
                    if let Ok(full) = <&[u64; KC]>::try_from(src) {
                        for c in 0..KC {
                            lo[c] = full[c];
                            hi[c] = full[c] >> 32;
                        }
                    } else {
                        for c in 0..KC {
                            let v = src.get(c).copied().unwrap_or(0);
                            lo[c] = v;
                            hi[c] = v >> 32;
                        }
                    }
                }
                let mut r = 0;
                while r + 2 <= rows {
                    tile::<2>(
                        a,
                        &pk,
                        kb,
                        (i0 + r) * k + p0,
                        k,
                        out,
                        r * width + jb - j0,
                        width,
                        w,
                    );
                    r += 2;
                }
                if r < rows {
                    tile::<1>(
                        a,
                        &pk,
                        kb,
                        (i0 + r) * k + p0,
                        k,
                        out,
                        r * width + jb - j0,
                        width,
                        w,
                    );
                }
            }
        }
        pk.zeroize();
    }

    /// One `KR x 8` tile of [`mm_u64_avx2`] over `kb` packed rows of the
    /// panel: rows `a[a_off + r lda ..][..kb]`, output at
    /// `out[o_off + r ldo ..][..w]`.
    #[target_feature(enable = "avx2")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn tile<const KR: usize>(
        a: &[u64],
        pk: &[u64],
        kb: usize,
        a_off: usize,
        lda: usize,
        out: &mut [u64],
        o_off: usize,
        ldo: usize,
        w: usize,
    ) {
        // Bounds are checked once here; the loop reads within them.
        assert!(pk.len() >= kb * 2 * KC && w <= KC);
        assert!(a.len() >= a_off + (KR - 1) * lda + kb);
        assert!(out.len() >= o_off + (KR - 1) * ldo + w);
        // SAFETY (whole block): AVX2 is enabled here (`#[target_feature]`,
        // callers are AVX2 functions of this module); every
        // load reads `pk[p * 16 .. p * 16 + 16]` with `p < kb` or
        // `a[a_off + r * lda + p]` with `r < KR`, `p < kb`, in bounds by the
        // asserts above; stores go to `out[o_off + r * ldo..][..w]`, in
        // bounds by the same asserts (whole vectors only when `w == KC`).
        unsafe {
            let zero = _mm256_setzero_si256();
            let mut ll = [[zero; 2]; KR];
            let mut xx = [[zero; 2]; KR];
            let pp = pk.as_ptr();
            let ap = a.as_ptr().add(a_off);
            for p in 0..kb {
                let q = pp.add(p * 2 * KC);
                let b0 = _mm256_loadu_si256(q.cast::<__m256i>());
                let b1 = _mm256_loadu_si256(q.add(4).cast::<__m256i>());
                let h0 = _mm256_loadu_si256(q.add(8).cast::<__m256i>());
                let h1 = _mm256_loadu_si256(q.add(12).cast::<__m256i>());
                for r in 0..KR {
                    // Both halves of `a` broadcast straight from memory
                    // (load-port broadcasts, no shuffle): `vpmuludq` reads
                    // the low 32 bits of each lane, so the whole word
                    // serves as `a_l` and its high 32-bit half, broadcast
                    // to every 32-bit lane, as `a_h`.
                    // (In assembly: the optimiser otherwise rewrites the
                    // broadcasts into shifts and blends of a scalar load.)
                    let at = ap.add(r * lda + p);
                    let al: __m256i;
                    let ah: __m256i;
                    core::arch::asm!(
                        "vpbroadcastq {al}, qword ptr [{p}]",
                        "vpbroadcastd {ah}, dword ptr [{p} + 4]",
                        p = in(reg) at,
                        al = out(ymm_reg) al,
                        ah = out(ymm_reg) ah,
                        options(pure, readonly, nostack, preserves_flags),
                    );
                    ll[r][0] = _mm256_add_epi64(ll[r][0], _mm256_mul_epu32(al, b0));
                    ll[r][1] = _mm256_add_epi64(ll[r][1], _mm256_mul_epu32(al, b1));
                    xx[r][0] = _mm256_add_epi64(
                        xx[r][0],
                        _mm256_add_epi64(_mm256_mul_epu32(ah, b0), _mm256_mul_epu32(al, h0)),
                    );
                    xx[r][1] = _mm256_add_epi64(
                        xx[r][1],
                        _mm256_add_epi64(_mm256_mul_epu32(ah, b1), _mm256_mul_epu32(al, h1)),
                    );
                }
            }
            // Opaque to the optimiser: otherwise it moves the final shift of
            // the cross sums back into the loop (one shift per product, as
            // the generic code does), undoing the point of the split.
            let xx = core::hint::black_box(xx);
            for r in 0..KR {
                let o = out.as_mut_ptr().add(o_off + r * ldo);
                let sums =
                    [0, 1].map(|v| _mm256_add_epi64(ll[r][v], _mm256_slli_epi64::<32>(xx[r][v])));
                if w == KC {
                    for (v, sv) in sums.iter().enumerate() {
                        let q = o.add(4 * v).cast::<__m256i>();
                        _mm256_storeu_si256(q, _mm256_add_epi64(_mm256_loadu_si256(q), *sv));
                    }
                } else {
                    let mut t = [0u64; KC];
                    for (v, sv) in sums.iter().enumerate() {
                        _mm256_storeu_si256(t.as_mut_ptr().add(4 * v).cast::<__m256i>(), *sv);
                    }
                    for (c, tc) in t.iter().take(w).enumerate() {
                        *o.add(c) = (*o.add(c)).wrapping_add(*tc);
                    }
                    t.zeroize();
                }
            }
        }
    }

    /// The 4 x 8 register tile: 8 accumulators of 4 u64 lanes (of the 16
    /// ymm registers), leaving room for the multiply's temporaries.
    #[target_feature(enable = "avx2")]
    pub(super) fn matmul_block_avx2<R: Ring>(
        a: &[R],
        b: &[R],
        out: &mut [R],
        i0: usize,
        rows: usize,
        k: usize,
        n: usize,
    ) {
        matmul_block::<R, 4, 8>(a, b, out, i0, rows, k, n)
    }

    /// The 4 x 16 register tile: 8 accumulators of 8 u64 lanes.
    #[target_feature(enable = "avx512f,avx512dq")]
    pub(super) fn matmul_block_avx512<R: Ring>(
        a: &[R],
        b: &[R],
        out: &mut [R],
        i0: usize,
        rows: usize,
        k: usize,
        n: usize,
    ) {
        matmul_block::<R, 4, 16>(a, b, out, i0, rows, k, n)
    }

    /// 4 accumulators of 4 u64 lanes per dot product.
    #[target_feature(enable = "avx2")]
    pub(super) fn dot_rows_avx2<R: Ring>(
        a: &[R],
        w: &[R],
        out_t: &mut [R],
        j0: usize,
        m: usize,
        k: usize,
    ) {
        dot_rows::<R, 4>(a, w, out_t, j0, m, k)
    }

    /// 4 accumulators of 8 u64 lanes per dot product.
    #[target_feature(enable = "avx512f,avx512dq")]
    pub(super) fn dot_rows_avx512<R: Ring>(
        a: &[R],
        w: &[R],
        out_t: &mut [R],
        j0: usize,
        m: usize,
        k: usize,
    ) {
        dot_rows::<R, 8>(a, w, out_t, j0, m, k)
    }

    #[target_feature(enable = "avx2")]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn matmul_panel_avx2<R: Ring>(
        a: &[R],
        b: &[R],
        panel: &mut [R],
        m: usize,
        k: usize,
        n: usize,
        j0: usize,
        j1: usize,
    ) {
        matmul_panel(a, b, panel, m, k, n, j0, j1)
    }

    #[target_feature(enable = "avx512f,avx512dq")]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn matmul_panel_avx512<R: Ring>(
        a: &[R],
        b: &[R],
        panel: &mut [R],
        m: usize,
        k: usize,
        n: usize,
        j0: usize,
        j1: usize,
    ) {
        matmul_panel(a, b, panel, m, k, n, j0, j1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_choice() {
        assert_eq!(choose(Some("off")), Kernel::Scalar);
        assert_eq!(choose(Some("scalar")), Kernel::Scalar);
        let best = *available_kernels().last().expect("scalar always");
        assert_eq!(choose(None), best);
        assert_eq!(choose(Some("auto")), best);
        let avx2 = choose(Some("AVX2"));
        assert!(avx2 == Kernel::Avx2 || (avx2 == Kernel::Scalar && !Kernel::Avx2.is_supported()));
        assert!(kernel().is_supported());
        assert_eq!(available_kernels()[0], Kernel::Scalar);
    }

    use crate::conv::conv2d_with;
    use crate::{Conv2dShape, RingTensor, reference};
    use rand::{Rng, SeedableRng};

    fn matmul_all_paths<R: Ring>(m: usize, k: usize, n: usize, rng: &mut rand_chacha::ChaCha8Rng) {
        let a = RingTensor::<R>::random(&[m, k], rng);
        let b = RingTensor::<R>::random(&[k, n], rng);
        let want = reference::matmul(&a, &b).expect("compatible shapes");
        for kern in available_kernels() {
            let got = a.matmul_with(kern, &b).expect("compatible shapes");
            assert!(
                got == want,
                "{} {m}x{k}x{n} ({} bits)",
                kern.name(),
                R::BITS
            );
        }
    }

    /// Every kernel of this CPU gives the reference's bits, on odd sizes
    /// (edges of the register tile), the parallel row path and the
    /// column-panel path (few rows, many columns).
    #[test]
    fn every_kernel_matches_reference_matmul() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let fixed = [
            (1, 1, 1),
            (3, 5, 7),
            (4, 16, 16),
            (5, 17, 33),
            (9, 31, 15),
            (130, 70, 50),
            (2, 300, 1000),
            (3, 129, 700),
            // the u64 AVX2 kernel: inner dimension over its 256-long block,
            // an odd row left, column tails of 1..7
            (7, 600, 37),
            (65, 513, 20),
            (4, 257, 9),
        ];
        for (m, k, n) in fixed {
            matmul_all_paths::<u64>(m, k, n, &mut rng);
            matmul_all_paths::<u32>(m, k, n, &mut rng);
        }
        for _ in 0..20 {
            let (m, k, n) = (
                rng.random_range(1..70),
                rng.random_range(1..90),
                rng.random_range(1..70),
            );
            matmul_all_paths::<u64>(m, k, n, &mut rng);
            matmul_all_paths::<u32>(m, k, n, &mut rng);
        }
    }

    #[test]
    fn every_kernel_matches_reference_conv2d() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12);
        let mut shapes = vec![
            Conv2dShape {
                n: 2,
                c: 3,
                h: 9,
                w: 7,
                oc: 5,
                kh: 3,
                kw: 3,
                stride: 1,
                pad: 1,
            },
            Conv2dShape {
                n: 1,
                c: 4,
                h: 11,
                w: 11,
                oc: 17,
                kh: 5,
                kw: 3,
                stride: 2,
                pad: 2,
            },
            Conv2dShape {
                n: 3,
                c: 2,
                h: 8,
                w: 8,
                oc: 16,
                kh: 1,
                kw: 1,
                stride: 2,
                pad: 0,
            },
            Conv2dShape {
                n: 1,
                c: 8,
                h: 4,
                w: 4,
                oc: 300,
                kh: 3,
                kw: 3,
                stride: 1,
                pad: 1,
            },
        ];
        for _ in 0..8 {
            let (kh, kw) = (rng.random_range(1..4), rng.random_range(1..4));
            shapes.push(Conv2dShape {
                n: rng.random_range(1..3),
                c: rng.random_range(1..6),
                h: rng.random_range(kh..12),
                w: rng.random_range(kw..12),
                oc: rng.random_range(1..20),
                kh,
                kw,
                stride: rng.random_range(1..3),
                pad: rng.random_range(0..2),
            });
        }
        for s in shapes {
            let x = RingTensor::<u64>::random(&s.input_shape(), &mut rng);
            let w = RingTensor::<u64>::random(&s.weight_shape(), &mut rng);
            let want = reference::conv2d(&x, &w, &s).expect("valid geometry");
            for kern in available_kernels() {
                let got = conv2d_with(kern, &x, &w, &s).expect("valid geometry");
                assert!(got == want, "{} {s:?}", kern.name());
            }
        }
    }
}

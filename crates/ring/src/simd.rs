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
//!   three `vpmuludq` (u32 rings use `vpmulld`);
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

/// The generic kernels of [`crate::tensor`] compiled for each instruction
/// set. Nothing here is `unsafe` inside: the functions are only unsafe to
/// call, on a CPU without the features.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use crate::ring::Ring;
    use crate::tensor::{dot_rows, matmul_block, matmul_panel};

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

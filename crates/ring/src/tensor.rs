//! Dense tensors of ring elements, with wrapping elementwise arithmetic and
//! a cache-blocked, rayon-parallel matrix product.

use crate::error::RingError;
use crate::ring::Ring;
use crate::simd::{self, Kernel};
use ndarray::{ArrayD, ArrayViewD, IxDyn};
use rayon::prelude::*;
use zeroize::Zeroize;

/// Elementwise operations on at least this many elements run on rayon.
pub(crate) const PAR_ELEMS: usize = 1 << 16;

/// [`RingTensor::matmul`] runs on rayon when `m * k * n` (the number of
/// multiply-adds) is at least this.
pub const MATMUL_PAR_THRESHOLD: usize = 1 << 18;

/// Rows of the output computed together (one rayon task; the B tile is
/// reused across them).
const MM_ROWS: usize = 64;
/// Rows of B (= columns of A) in one tile.
const MM_K: usize = 128;
/// Columns of B in one tile: `MM_K * MM_N` u64 = 256 KiB, an L2-sized tile.
const MM_N: usize = 256;

/// Number of elements of `shape`, or an error if it overflows `usize`.
pub(crate) fn checked_len(shape: &[usize]) -> Result<usize, RingError> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| RingError::InvalidShape(format!("element count of {shape:?} overflows")))
}

/// A dense tensor of ring elements in standard (row-major, C) layout.
///
/// The values are typically *shares* or masked values, so they are secret:
/// `Debug` prints only the shape, and the buffer is zeroized on drop.
///
/// Invariant: the inner array is always in standard layout and owns exactly
/// its elements (no offset, no spare capacity), so [`as_slice`] is total and
/// the whole buffer is wiped on drop.
///
/// [`as_slice`]: RingTensor::as_slice
#[derive(Clone, PartialEq, Eq)]
pub struct RingTensor<R: Ring> {
    a: ArrayD<R>,
}

impl<R: Ring> core::fmt::Debug for RingTensor<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RingTensor")
            .field("bits", &R::BITS)
            .field("shape", &self.a.shape())
            .finish_non_exhaustive()
    }
}

impl<R: Ring> Drop for RingTensor<R> {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl<R: Ring> Zeroize for RingTensor<R> {
    /// Sets every element to zero (the shape is kept).
    fn zeroize(&mut self) {
        // Volatile per-element writes (`Ring: Zeroize`), not optimised away.
        self.a.iter_mut().for_each(Zeroize::zeroize);
    }
}

impl<R: Ring> RingTensor<R> {
    /// Wraps a vector already checked to hold `shape`'s element count.
    fn from_checked_vec(shape: &[usize], data: Vec<R>) -> Self {
        // The callers computed `data.len()` as the product of `shape`.
        let a = ArrayD::from_shape_vec(IxDyn(shape), data)
            .expect("RingTensor: callers pass a vector of exactly shape's element count");
        RingTensor { a }
    }

    /// A tensor of zeros.
    ///
    /// # Panics
    /// If the element count of `shape` overflows `isize` (as ndarray does);
    /// use [`from_vec`](Self::from_vec) for shapes from untrusted input.
    pub fn zeros(shape: &[usize]) -> Self {
        RingTensor {
            a: ArrayD::from_elem(IxDyn(shape), R::ZERO),
        }
    }

    /// A tensor of `shape` holding `data` in row-major order.
    ///
    /// Errors with [`RingError::ShapeMismatch`] (`expected` = `shape`,
    /// `got` = `[data.len()]`) if the element count of `shape` is not
    /// `data.len()`, and with [`RingError::InvalidShape`] if it overflows.
    pub fn from_vec(shape: &[usize], data: Vec<R>) -> Result<Self, RingError> {
        let n = checked_len(shape)?;
        if n != data.len() {
            return Err(RingError::ShapeMismatch {
                expected: shape.to_vec(),
                got: vec![data.len()],
            });
        }
        Ok(Self::from_checked_vec(shape, data))
    }

    /// Takes an array of any layout; it is copied into standard layout if
    /// needed (and the original buffer wiped).
    pub fn from_array(a: ArrayD<R>) -> Self {
        let shape = a.shape().to_vec();
        let n = a.len();
        if a.is_standard_layout() {
            let (v, off) = a.into_raw_vec_and_offset();
            if off.unwrap_or(0) == 0 && v.len() == n {
                return Self::from_checked_vec(&shape, v);
            }
            let mut v = v;
            let start = off.unwrap_or(0);
            let data = v[start..start + n].to_vec();
            v.zeroize();
            Self::from_checked_vec(&shape, data)
        } else {
            let data: Vec<R> = a.iter().copied().collect();
            let (mut v, _) = a.into_raw_vec_and_offset();
            v.zeroize();
            Self::from_checked_vec(&shape, data)
        }
    }

    /// The inner array (standard layout); the tensor's wipe-on-drop no
    /// longer applies to it.
    pub fn into_array(mut self) -> ArrayD<R> {
        core::mem::replace(&mut self.a, ArrayD::from_elem(IxDyn(&[0]), R::ZERO))
    }

    /// Uniformly random elements drawn in row-major order, one
    /// [`Ring::random`] each.
    ///
    /// # Panics
    /// If the element count of `shape` overflows `usize`.
    pub fn random<G: rand::Rng + ?Sized>(shape: &[usize], rng: &mut G) -> Self {
        let n = checked_len(shape).expect("RingTensor::random: element count overflows usize");
        let data: Vec<R> = (0..n).map(|_| R::random(rng)).collect();
        Self::from_checked_vec(shape, data)
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        self.a.shape()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.a.len()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.a.is_empty()
    }

    /// The elements in row-major order.
    pub fn as_slice(&self) -> &[R] {
        self.a
            .as_slice()
            .expect("RingTensor invariant: always in standard layout")
    }

    /// The elements in row-major order, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [R] {
        self.a
            .as_slice_mut()
            .expect("RingTensor invariant: always in standard layout")
    }

    /// A copy of the elements in row-major order.
    pub fn to_vec(&self) -> Vec<R> {
        self.as_slice().to_vec()
    }

    /// An ndarray view.
    pub fn view(&self) -> ArrayViewD<'_, R> {
        self.a.view()
    }

    /// The same elements (row-major order) under another shape with the
    /// same element count, else [`RingError::InvalidShape`].
    pub fn reshape(&self, shape: &[usize]) -> Result<Self, RingError> {
        let n = checked_len(shape)?;
        if n != self.len() {
            return Err(RingError::InvalidShape(format!(
                "cannot reshape {:?} ({} elements) into {:?} ({} elements)",
                self.shape(),
                self.len(),
                shape,
                n
            )));
        }
        Ok(Self::from_checked_vec(shape, self.to_vec()))
    }

    fn check_same_shape(&self, o: &Self) -> Result<(), RingError> {
        if self.shape() == o.shape() {
            Ok(())
        } else {
            Err(RingError::ShapeMismatch {
                expected: self.shape().to_vec(),
                got: o.shape().to_vec(),
            })
        }
    }

    fn zip_with(&self, o: &Self, f: fn(R, R) -> R) -> Result<Self, RingError> {
        self.check_same_shape(o)?;
        let (a, b) = (self.as_slice(), o.as_slice());
        let data: Vec<R> = if a.len() >= PAR_ELEMS {
            a.par_iter()
                .zip(b.par_iter())
                .map(|(&x, &y)| f(x, y))
                .collect()
        } else {
            a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect()
        };
        Ok(Self::from_checked_vec(self.shape(), data))
    }

    fn zip_assign(&mut self, o: &Self, f: fn(R, R) -> R) -> Result<(), RingError> {
        self.check_same_shape(o)?;
        let b = o.as_slice();
        let a = self.as_mut_slice();
        if a.len() >= PAR_ELEMS {
            a.par_iter_mut()
                .zip(b.par_iter())
                .for_each(|(x, &y)| *x = f(*x, y));
        } else {
            a.iter_mut().zip(b).for_each(|(x, &y)| *x = f(*x, y));
        }
        Ok(())
    }

    /// Elementwise `self + o` (wrapping); [`RingError::ShapeMismatch`] if
    /// the shapes differ.
    pub fn add(&self, o: &Self) -> Result<Self, RingError> {
        self.zip_with(o, R::wadd)
    }

    /// Elementwise `self - o` (wrapping); [`RingError::ShapeMismatch`] if
    /// the shapes differ.
    pub fn sub(&self, o: &Self) -> Result<Self, RingError> {
        self.zip_with(o, R::wsub)
    }

    /// Elementwise (Hadamard) product (wrapping);
    /// [`RingError::ShapeMismatch`] if the shapes differ.
    pub fn mul_elem(&self, o: &Self) -> Result<Self, RingError> {
        self.zip_with(o, R::wmul)
    }

    /// Elementwise negation.
    pub fn neg(&self) -> Self {
        self.map(R::wneg)
    }

    /// `self += o` (wrapping); [`RingError::ShapeMismatch`] if the shapes
    /// differ (then `self` is unchanged).
    pub fn add_assign(&mut self, o: &Self) -> Result<(), RingError> {
        self.zip_assign(o, R::wadd)
    }

    /// `self -= o` (wrapping); [`RingError::ShapeMismatch`] if the shapes
    /// differ (then `self` is unchanged).
    pub fn sub_assign(&mut self, o: &Self) -> Result<(), RingError> {
        self.zip_assign(o, R::wsub)
    }

    /// Multiplies every element by the public constant `c`.
    pub fn scale(&self, c: R) -> Self {
        self.map(|x| x.wmul(c))
    }

    /// Adds the public constant `c` to every element.
    pub fn add_scalar(&self, c: R) -> Self {
        self.map(|x| x.wadd(c))
    }

    /// Applies `f` to every element.
    pub fn map(&self, f: impl Fn(R) -> R) -> Self {
        let data: Vec<R> = self.as_slice().iter().map(|&x| f(x)).collect();
        Self::from_checked_vec(self.shape(), data)
    }

    /// Elementwise arithmetic right shift by `k` ([`Ring::sar`]): the local
    /// truncation of a cleartext fixed-point value. (On *shares* this is
    /// only approximately a truncation; see the `mpc` crate.)
    pub fn sar(&self, k: u32) -> Self {
        self.map(|x| x.sar(k))
    }

    fn dims2(&self) -> Result<(usize, usize), RingError> {
        match *self.shape() {
            [m, n] => Ok((m, n)),
            _ => Err(RingError::InvalidShape(format!(
                "expected a 2-D tensor, got shape {:?}",
                self.shape()
            ))),
        }
    }

    /// The matrix product `(m x k) . (k x n) -> (m x n)` with wrapping
    /// arithmetic.
    ///
    /// Cache-blocked i-k-j loops (the innermost loop is a contiguous
    /// `out_row += a_ip * b_row` that the compiler vectorises), on rayon
    /// over row blocks (or over column blocks when there are few rows) once
    /// `m * k * n >= MATMUL_PAR_THRESHOLD`.
    /// [`reference::matmul`](crate::reference::matmul) is the plain
    /// triple loop it is tested against.
    ///
    /// Errors: [`RingError::InvalidShape`] if an operand is not 2-D,
    /// [`RingError::ShapeMismatch`] if the inner dimensions differ
    /// (`expected` = `[k, n]`, `got` = the right operand's shape).
    pub fn matmul(&self, o: &Self) -> Result<Self, RingError> {
        self.matmul_with(simd::kernel(), o)
    }

    /// The matrix product of `a` (`m x k`) and `b` (`k x n`), both given as
    /// row-major slices (no tensor to build first, e.g. for parts of an
    /// opened message); [`RingError::InvalidShape`] if a length does not
    /// match its dimensions.
    pub fn matmul_slices(
        a: &[R],
        b: &[R],
        m: usize,
        k: usize,
        n: usize,
    ) -> Result<Self, RingError> {
        for (what, got, dims) in [("left", a.len(), [m, k]), ("right", b.len(), [k, n])] {
            if checked_len(&dims)? != got {
                return Err(RingError::InvalidShape(format!(
                    "{what} operand of {got} elements for a {dims:?} matrix"
                )));
            }
        }
        let len = checked_len(&[m, n])?;
        let mut out = vec![R::ZERO; len];
        matmul_into(simd::kernel(), a, b, &mut out, m, k, n);
        Ok(Self::from_checked_vec(&[m, n], out))
    }

    /// [`matmul`](Self::matmul) with the kernel `kern` (tests of each path).
    pub(crate) fn matmul_with(&self, kern: Kernel, o: &Self) -> Result<Self, RingError> {
        let (m, k) = self.dims2()?;
        let (k2, n) = o.dims2()?;
        if k != k2 {
            return Err(RingError::ShapeMismatch {
                expected: vec![k, n],
                got: o.shape().to_vec(),
            });
        }
        let len = checked_len(&[m, n])?;
        let mut out = vec![R::ZERO; len];
        matmul_into(kern, self.as_slice(), o.as_slice(), &mut out, m, k, n);
        Ok(Self::from_checked_vec(&[m, n], out))
    }

    /// The transpose of a 2-D tensor; [`RingError::InvalidShape`] otherwise.
    pub fn transpose2d(&self) -> Result<Self, RingError> {
        let (m, n) = self.dims2()?;
        let a = self.as_slice();
        let mut out = vec![R::ZERO; a.len()];
        // 32x32 tiles keep both the reads and the writes in cache.
        const T: usize = 32;
        for i0 in (0..m).step_by(T) {
            for j0 in (0..n).step_by(T) {
                for i in i0..(i0 + T).min(m) {
                    for j in j0..(j0 + T).min(n) {
                        out[j * m + i] = a[i * n + j];
                    }
                }
            }
        }
        Ok(Self::from_checked_vec(&[n, m], out))
    }
}

/// `out (m x n) += a (m x k) . b (k x n)`, all row-major; `out` starts
/// zeroed. `kern` selects the instruction set ([`simd`]).
pub(crate) fn matmul_into<R: Ring>(
    kern: Kernel,
    a: &[R],
    b: &[R],
    out: &mut [R],
    m: usize,
    k: usize,
    n: usize,
) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let work = m.saturating_mul(k).saturating_mul(n);
    let row_tasks = m.div_ceil(MM_ROWS);
    if work < MATMUL_PAR_THRESHOLD {
        simd::matmul_block(kern, a, b, out, 0, m, k, n);
    } else if row_tasks >= 4 || n <= MM_N {
        out.par_chunks_mut(MM_ROWS * n)
            .enumerate()
            .for_each(|(t, blk)| {
                let i0 = t * MM_ROWS;
                let rows = blk.len() / n;
                simd::matmul_block(kern, a, b, blk, i0, rows, k, n);
            });
    } else {
        // Few rows (e.g. a batch-1 linear layer): split the columns instead;
        // each task fills an `m x width` panel, copied into place after.
        let panels: Vec<(usize, Vec<R>)> = (0..n.div_ceil(MM_N))
            .into_par_iter()
            .map(|t| {
                let j0 = t * MM_N;
                let j1 = (j0 + MM_N).min(n);
                let width = j1 - j0;
                let mut panel = vec![R::ZERO; m * width];
                simd::matmul_panel(kern, a, b, &mut panel, m, k, n, j0, j1);
                (j0, panel)
            })
            .collect();
        for (j0, mut panel) in panels {
            let width = panel.len() / m;
            for i in 0..m {
                out[i * n + j0..i * n + j0 + width]
                    .copy_from_slice(&panel[i * width..(i + 1) * width]);
            }
            panel.zeroize();
        }
    }
}

/// Rows `i0..i0 + rows` of the product into `out` (`rows x n`).
///
/// Column panels of `KC` columns of `b` are packed contiguously (`k x KC`),
/// then each `KR x KC` block of `out` is accumulated in registers over the
/// whole inner dimension: one load of `b` feeds `KR` rows, and `out` is
/// written once. Edges fall back to the plain loop. `KR x KC` is the
/// register tile (4 x 16 on the portable path and with AVX-512: two 512-bit
/// vectors of u64 per row; 4 x 8 with AVX2).
///
/// Generic and always inlined: [`simd`] compiles it once per instruction
/// set, inside `#[target_feature]` functions.
#[inline(always)]
pub(crate) fn matmul_block<R: Ring, const KR: usize, const KC: usize>(
    a: &[R],
    b: &[R],
    out: &mut [R],
    i0: usize,
    rows: usize,
    k: usize,
    n: usize,
) {
    let full_cols = n - n % KC;
    let full_rows = rows - rows % KR;
    let mut panel = vec![R::ZERO; k * KC];
    for jb in (0..full_cols).step_by(KC) {
        for p in 0..k {
            panel[p * KC..(p + 1) * KC].copy_from_slice(&b[p * n + jb..p * n + jb + KC]);
        }
        for r0 in (0..full_rows).step_by(KR) {
            let mut acc = [[R::ZERO; KC]; KR];
            let a_rows: [&[R]; KR] =
                core::array::from_fn(|rr| &a[(i0 + r0 + rr) * k..(i0 + r0 + rr + 1) * k]);
            for (p, bv) in panel.chunks_exact(KC).enumerate() {
                for rr in 0..KR {
                    let av = a_rows[rr][p];
                    for c in 0..KC {
                        acc[rr][c] = acc[rr][c].wadd(av.wmul(bv[c]));
                    }
                }
            }
            for (rr, row) in acc.iter().enumerate() {
                let o = &mut out[(r0 + rr) * n + jb..(r0 + rr) * n + jb + KC];
                for (oj, v) in o.iter_mut().zip(row) {
                    *oj = oj.wadd(*v);
                }
            }
        }
        // Leftover rows of this panel.
        for r in full_rows..rows {
            let a_row = &a[(i0 + r) * k..(i0 + r + 1) * k];
            let o = &mut out[r * n + jb..r * n + jb + KC];
            for (bv, &av) in panel.chunks_exact(KC).zip(a_row) {
                for (oj, &bj) in o.iter_mut().zip(bv) {
                    *oj = oj.wadd(av.wmul(bj));
                }
            }
        }
    }
    panel.zeroize();
    // Leftover columns.
    if full_cols < n {
        for r in 0..rows {
            let a_row = &a[(i0 + r) * k..(i0 + r + 1) * k];
            let o = &mut out[r * n + full_cols..(r + 1) * n];
            for (p, &av) in a_row.iter().enumerate() {
                let b_row = &b[p * n + full_cols..(p + 1) * n];
                for (oj, &bj) in o.iter_mut().zip(b_row) {
                    *oj = oj.wadd(av.wmul(bj));
                }
            }
        }
    }
}

/// Columns `j0..j1` of the full product into `panel` (`m x (j1 - j0)`).
/// Always inlined, like [`matmul_block`].
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn matmul_panel<R: Ring>(
    a: &[R],
    b: &[R],
    panel: &mut [R],
    m: usize,
    k: usize,
    n: usize,
    j0: usize,
    j1: usize,
) {
    let width = j1 - j0;
    for p0 in (0..k).step_by(MM_K) {
        let p1 = (p0 + MM_K).min(k);
        for i in 0..m {
            let a_row = &a[i * k + p0..i * k + p1];
            let o = &mut panel[i * width..(i + 1) * width];
            for (dp, &aip) in a_row.iter().enumerate() {
                let p = p0 + dp;
                let b_row = &b[p * n + j0..p * n + j1];
                for (oj, &bj) in o.iter_mut().zip(b_row) {
                    *oj = oj.wadd(aip.wmul(bj));
                }
            }
        }
    }
}

/// `out_t (n x m) = w (n x k) . a^T` for `a (m x k)`, all row-major:
/// `out_t[j][i]` is the dot product of row `j` of `w` and row `i` of `a`.
///
/// The product of [`crate::conv2d`] when the unrolled input has few rows
/// (batch 1, deep layers): the weight `(OC x C*KH*KW)` is used as stored,
/// with no transposed copy, and the result comes out in the output's
/// `(OC, pixels)` layout. On rayon over blocks of rows of `w` once the work
/// reaches [`MATMUL_PAR_THRESHOLD`].
pub(crate) fn matmul_abt_into<R: Ring>(
    kern: Kernel,
    a: &[R],
    w: &[R],
    out_t: &mut [R],
    m: usize,
    k: usize,
    n: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    let work = m.saturating_mul(k).saturating_mul(n);
    if work < MATMUL_PAR_THRESHOLD {
        simd::dot_rows(kern, a, w, out_t, 0, m, k);
    } else {
        // 16 rows of `w` per task (a multiple of the 4-row tile).
        out_t
            .par_chunks_mut(16 * m)
            .enumerate()
            .for_each(|(t, blk)| simd::dot_rows(kern, a, w, blk, 16 * t, m, k));
    }
}

/// Rows `j0..j0 + out_t.len() / m` of `w . a^T` into `out_t` (see
/// [`matmul_abt_into`]): tiles of 4 rows of `w` against one row of `a`,
/// each dot product accumulated in `L` lanes over the contiguous inner
/// dimension, then summed (wrapping addition is associative and
/// commutative, so the order does not change the result). Always inlined,
/// like [`matmul_block`].
#[inline(always)]
pub(crate) fn dot_rows<R: Ring, const L: usize>(
    a: &[R],
    w: &[R],
    out_t: &mut [R],
    j0: usize,
    m: usize,
    k: usize,
) {
    const JT: usize = 4;
    let jn = out_t.len() / m;
    let kv = k - k % L;
    let full = jn - jn % JT;
    for jj in (0..full).step_by(JT) {
        let wr: [&[R]; JT] = core::array::from_fn(|t| &w[(j0 + jj + t) * k..(j0 + jj + t + 1) * k]);
        for i in 0..m {
            let ar = &a[i * k..(i + 1) * k];
            let mut acc = [[R::ZERO; L]; JT];
            for p in (0..kv).step_by(L) {
                let av = &ar[p..p + L];
                for t in 0..JT {
                    let wv = &wr[t][p..p + L];
                    for l in 0..L {
                        acc[t][l] = acc[t][l].wadd(av[l].wmul(wv[l]));
                    }
                }
            }
            for t in 0..JT {
                let mut s = acc[t].iter().fold(R::ZERO, |s, &v| s.wadd(v));
                for p in kv..k {
                    s = s.wadd(ar[p].wmul(wr[t][p]));
                }
                out_t[(jj + t) * m + i] = s;
            }
        }
    }
    for jj in full..jn {
        let wr = &w[(j0 + jj) * k..(j0 + jj + 1) * k];
        for i in 0..m {
            let ar = &a[i * k..(i + 1) * k];
            out_t[jj * m + i] = ar
                .iter()
                .zip(wr)
                .fold(R::ZERO, |s, (&x, &y)| s.wadd(x.wmul(y)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, ShapeBuilder};

    #[test]
    fn debug_prints_only_the_shape() {
        let t = RingTensor::<u64>::from_vec(&[2], vec![0xdead_beef, 42]).expect("2 elements");
        let s = format!("{t:?}");
        assert!(s.contains("[2]"), "{s}");
        assert!(!s.contains("42") && !s.contains("3735928559"), "{s}");
    }

    #[test]
    fn from_array_normalises_layout() {
        // Column-major input.
        let a = Array2::<u32>::from_shape_vec((2, 3).f(), vec![1, 4, 2, 5, 3, 6])
            .expect("6 elements")
            .into_dyn();
        let t = RingTensor::from_array(a);
        assert_eq!(t.as_slice(), &[1, 2, 3, 4, 5, 6]);
        // Sliced owned array (offset into its buffer).
        let mut b = Array2::<u64>::from_shape_vec((3, 2), vec![1, 2, 3, 4, 5, 6])
            .expect("6 elements")
            .into_dyn();
        b.slice_axis_inplace(ndarray::Axis(0), ndarray::Slice::from(1..));
        let t = RingTensor::from_array(b);
        assert_eq!(t.shape(), &[2, 2]);
        assert_eq!(t.as_slice(), &[3, 4, 5, 6]);
        // Transposed view made owned.
        let c = Array2::<u64>::from_shape_vec((2, 3), vec![1, 2, 3, 4, 5, 6])
            .expect("6 elements")
            .reversed_axes()
            .into_dyn();
        let t = RingTensor::from_array(c);
        assert_eq!(t.as_slice(), &[1, 4, 2, 5, 3, 6]);
        assert_eq!(t.into_array().shape(), &[3, 2]);
    }

    #[test]
    fn zeroize_keeps_shape() {
        let mut t = RingTensor::<u32>::from_vec(&[3], vec![1, 2, 3]).expect("3 elements");
        t.zeroize();
        assert_eq!(t, RingTensor::zeros(&[3]));
    }

    #[test]
    fn column_panel_path_matches_reference() {
        // m = 2 rows, many columns: exercises the column-split branch.
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let (m, k, n) = (2, 300, 1000);
        assert!(m * k * n >= MATMUL_PAR_THRESHOLD);
        let a = RingTensor::<u64>::random(&[m, k], &mut rng);
        let b = RingTensor::<u64>::random(&[k, n], &mut rng);
        let fast = a.matmul(&b).expect("compatible shapes");
        let slow = crate::reference::matmul(&a, &b).expect("compatible shapes");
        assert_eq!(fast, slow);
    }
}

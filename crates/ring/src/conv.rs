//! 2-D convolution geometry, im2col / col2im, and convolution as im2col +
//! matrix product.
//!
//! Layouts follow PyTorch: input NCHW, weight OIHW (out channels, in
//! channels, kernel height, kernel width), output `(N, OC, OH, OW)`, with
//! symmetric zero padding and equal strides in both directions.
//!
//! In the unrolled (im2col) matrix, row `(n * OH + oy) * OW + ox` is the
//! receptive field of output pixel `(oy, ox)` of image `n`, and column
//! `(c * KH + ky) * KW + kx` is input channel `c` at kernel offset
//! `(ky, kx)`, i.e. the column order of a flattened OIHW weight row.

use crate::error::RingError;
use crate::ring::Ring;
use crate::tensor::{PAR_ELEMS, RingTensor, checked_len, matmul_abt_into};
use zeroize::Zeroize;

/// Below this many rows of the unrolled input (`N * OH * OW`),
/// [`conv2d`] computes `W . cols^T` with the weight as stored rather than
/// `cols . W^T` with a transposed copy of the weight.
const FEW_ROWS: usize = 64;
use rayon::prelude::*;

/// Convolution geometry (NCHW input, OIHW weight).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conv2dShape {
    /// Batch size.
    pub n: usize,
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub oc: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Stride (both directions).
    pub stride: usize,
    /// Zero padding on each side (both directions).
    pub pad: usize,
}

impl Conv2dShape {
    /// Output height and width, `(H + 2*pad - KH) / stride + 1` (and the
    /// same for W).
    ///
    /// Errors with [`RingError::InvalidShape`] if the stride is 0, the
    /// kernel is empty, or the kernel is larger than the padded input.
    pub fn out_hw(&self) -> Result<(usize, usize), RingError> {
        if self.stride == 0 {
            return Err(RingError::InvalidShape(format!(
                "convolution stride must be positive: {self:?}"
            )));
        }
        if self.kh == 0 || self.kw == 0 {
            return Err(RingError::InvalidShape(format!(
                "convolution kernel must be non-empty: {self:?}"
            )));
        }
        let side = |len: usize, k: usize| -> Result<usize, RingError> {
            let padded = self
                .pad
                .checked_mul(2)
                .and_then(|p| p.checked_add(len))
                .ok_or_else(|| {
                    RingError::InvalidShape(format!("padded input size overflows: {self:?}"))
                })?;
            if k > padded {
                return Err(RingError::InvalidShape(format!(
                    "kernel {k} larger than padded input {padded}: {self:?}"
                )));
            }
            Ok((padded - k) / self.stride + 1)
        };
        Ok((side(self.h, self.kh)?, side(self.w, self.kw)?))
    }

    /// `[N, C, H, W]`.
    pub fn input_shape(&self) -> [usize; 4] {
        [self.n, self.c, self.h, self.w]
    }

    /// `[OC, C, KH, KW]`.
    pub fn weight_shape(&self) -> [usize; 4] {
        [self.oc, self.c, self.kh, self.kw]
    }

    /// `[N, OC, OH, OW]`; errors as [`out_hw`](Self::out_hw).
    pub fn output_shape(&self) -> Result<[usize; 4], RingError> {
        let (oh, ow) = self.out_hw()?;
        Ok([self.n, self.oc, oh, ow])
    }

    /// Shape of the unrolled matrix, `[N * OH * OW, C * KH * KW]`; errors
    /// as [`out_hw`](Self::out_hw) or if a product overflows.
    pub fn cols_shape(&self) -> Result<[usize; 2], RingError> {
        let (oh, ow) = self.out_hw()?;
        let rows = checked_len(&[self.n, oh, ow])?;
        let cols = checked_len(&[self.c, self.kh, self.kw])?;
        checked_len(&[rows, cols])?;
        Ok([rows, cols])
    }
}

fn expect_shape(got: &[usize], expected: &[usize]) -> Result<(), RingError> {
    if got == expected {
        Ok(())
    } else {
        Err(RingError::ShapeMismatch {
            expected: expected.to_vec(),
            got: got.to_vec(),
        })
    }
}

/// im2col: `(N, C, H, W) -> (N*OH*OW, C*KH*KW)`, reading zeros in the
/// padding.
///
/// Errors: [`RingError::ShapeMismatch`] if `x` is not `s.input_shape()`,
/// [`RingError::InvalidShape`] for an invalid geometry.
pub fn im2col<R: Ring>(x: &RingTensor<R>, s: &Conv2dShape) -> Result<RingTensor<R>, RingError> {
    expect_shape(x.shape(), &s.input_shape())?;
    let [rows, ckk] = s.cols_shape()?;
    let (oh, ow) = s.out_hw()?;
    let mut out = vec![R::ZERO; rows * ckk];
    let row_len = ow * ckk; // one output row (n, oy): OW patches
    if out.is_empty() {
        return RingTensor::from_vec(&[rows, ckk], out);
    }
    let xs = x.as_slice();
    let Conv2dShape {
        c,
        h,
        w,
        kh,
        kw,
        stride,
        pad,
        ..
    } = *s;
    let fill = |(t, dst): (usize, &mut [R])| {
        let (ni, oy) = (t / oh, t % oh);
        for ox in 0..ow {
            let patch = &mut dst[ox * ckk..(ox + 1) * ckk];
            for ci in 0..c {
                let img = &xs[(ni * c + ci) * h * w..(ni * c + ci + 1) * h * w];
                for ky in 0..kh {
                    let py = oy * stride + ky;
                    if py < pad || py - pad >= h {
                        continue; // padding row: stays zero
                    }
                    let in_row = &img[(py - pad) * w..(py - pad + 1) * w];
                    let prow = &mut patch[(ci * kh + ky) * kw..(ci * kh + ky + 1) * kw];
                    for (kx, d) in prow.iter_mut().enumerate() {
                        let px = ox * stride + kx;
                        if px >= pad && px - pad < w {
                            *d = in_row[px - pad];
                        }
                    }
                }
            }
        }
    };
    if out.len() >= PAR_ELEMS {
        out.par_chunks_mut(row_len).enumerate().for_each(fill);
    } else {
        out.chunks_mut(row_len).enumerate().for_each(fill);
    }
    RingTensor::from_vec(&[rows, ckk], out)
}

/// col2im, the adjoint of [`im2col`]: `(N*OH*OW, C*KH*KW) -> (N, C, H, W)`,
/// adding up the entries of overlapping patches and dropping those in the
/// padding, so that `<im2col(x), y> == <x, col2im(y)>`.
///
/// Errors: [`RingError::ShapeMismatch`] if `cols` is not
/// `s.cols_shape()`, [`RingError::InvalidShape`] for an invalid geometry.
pub fn col2im<R: Ring>(cols: &RingTensor<R>, s: &Conv2dShape) -> Result<RingTensor<R>, RingError> {
    let [rows, ckk] = s.cols_shape()?;
    expect_shape(cols.shape(), &[rows, ckk])?;
    let (oh, ow) = s.out_hw()?;
    let in_shape = s.input_shape();
    let img_len = checked_len(&in_shape[1..])?;
    let mut out = vec![R::ZERO; checked_len(&in_shape)?];
    if out.is_empty() {
        return RingTensor::from_vec(&in_shape, out);
    }
    let cs = cols.as_slice();
    let Conv2dShape {
        h,
        w,
        c,
        kh,
        kw,
        stride,
        pad,
        ..
    } = *s;
    // One task per image: images are disjoint in the output.
    let acc = |(ni, img): (usize, &mut [R])| {
        for oy in 0..oh {
            for ox in 0..ow {
                let row = (ni * oh + oy) * ow + ox;
                let patch = &cs[row * ckk..(row + 1) * ckk];
                for ci in 0..c {
                    for ky in 0..kh {
                        let py = oy * stride + ky;
                        if py < pad || py - pad >= h {
                            continue;
                        }
                        let base = (ci * h + py - pad) * w;
                        let prow = &patch[(ci * kh + ky) * kw..(ci * kh + ky + 1) * kw];
                        for (kx, &v) in prow.iter().enumerate() {
                            let px = ox * stride + kx;
                            if px >= pad && px - pad < w {
                                let d = &mut img[base + px - pad];
                                *d = d.wadd(v);
                            }
                        }
                    }
                }
            }
        }
    };
    if cols.len() >= PAR_ELEMS {
        out.par_chunks_mut(img_len).enumerate().for_each(acc);
    } else {
        out.chunks_mut(img_len).enumerate().for_each(acc);
    }
    RingTensor::from_vec(&in_shape, out)
}

/// 2-D convolution (cross-correlation, as in PyTorch), no bias:
/// input `(N, C, H, W)`, weight `(OC, C, KH, KW)` -> `(N, OC, OH, OW)`,
/// computed as `im2col(x) . W^T` with [`RingTensor::matmul`].
/// [`reference::conv2d`](crate::reference::conv2d) is the direct 7-loop
/// version it is tested against.
///
/// Errors: [`RingError::ShapeMismatch`] if `x` or `w` does not match `s`,
/// [`RingError::InvalidShape`] for an invalid geometry.
pub fn conv2d<R: Ring>(
    x: &RingTensor<R>,
    w: &RingTensor<R>,
    s: &Conv2dShape,
) -> Result<RingTensor<R>, RingError> {
    conv2d_with(crate::simd::kernel(), x, w, s)
}

/// [`conv2d`] with the product's kernel `kern` (tests of each path).
pub(crate) fn conv2d_with<R: Ring>(
    kern: crate::simd::Kernel,
    x: &RingTensor<R>,
    w: &RingTensor<R>,
    s: &Conv2dShape,
) -> Result<RingTensor<R>, RingError> {
    expect_shape(w.shape(), &s.weight_shape())?;
    let cols = im2col(x, s)?; // checks x and the geometry
    let [rows, ckk] = s.cols_shape()?;
    let out_shape = s.output_shape()?;
    let ohw = rows.checked_div(s.n).unwrap_or(0);
    let mut out = vec![R::ZERO; checked_len(&out_shape)?];
    if rows < FEW_ROWS {
        // Few output pixels (batch 1, deep layers): `W . cols^T`, reading
        // the weight as stored, instead of transposing a weight that may be
        // much larger than the product's work.
        let mut prod_t = vec![R::ZERO; checked_len(&[s.oc, rows])?]; // (OC, N*OH*OW)
        matmul_abt_into(
            kern,
            cols.as_slice(),
            w.as_slice(),
            &mut prod_t,
            rows,
            ckk,
            s.oc,
        );
        // (oc, n, pixel) -> (n, oc, pixel)
        for (ni, img) in out.chunks_mut((s.oc * ohw).max(1)).enumerate() {
            for (oc, plane) in img.chunks_mut(ohw.max(1)).enumerate() {
                let src = oc * rows + ni * ohw;
                plane.copy_from_slice(&prod_t[src..src + plane.len()]);
            }
        }
        prod_t.zeroize();
        return RingTensor::from_vec(&out_shape, out);
    }
    let wt = w.reshape(&[s.oc, ckk])?.transpose2d()?;
    let prod = cols.matmul_with(kern, &wt)?; // (N*OH*OW, OC)
    let ps = prod.as_slice();
    // (n, pixel, oc) -> (n, oc, pixel)
    for (ni, img) in out.chunks_mut((s.oc * ohw).max(1)).enumerate() {
        for (oc, plane) in img.chunks_mut(ohw.max(1)).enumerate() {
            for (pix, d) in plane.iter_mut().enumerate() {
                *d = ps[(ni * ohw + pix) * s.oc + oc];
            }
        }
    }
    RingTensor::from_vec(&out_shape, out)
}

/// `dz` `(N, OC, OH, OW)` as the matrix `(N*OH*OW, OC)` of [`conv2d`]'s
/// product.
fn output_as_rows<R: Ring>(
    dz: &RingTensor<R>,
    s: &Conv2dShape,
) -> Result<RingTensor<R>, RingError> {
    let out_shape = s.output_shape()?;
    expect_shape(dz.shape(), &out_shape)?;
    let [rows, _] = s.cols_shape()?;
    let ohw = rows.checked_div(s.n).unwrap_or(0);
    let ds = dz.as_slice();
    let mut m = vec![R::ZERO; checked_len(&[rows, s.oc])?];
    for (ni, img) in ds.chunks((s.oc * ohw).max(1)).enumerate() {
        for (oc, plane) in img.chunks(ohw.max(1)).enumerate() {
            for (pix, v) in plane.iter().enumerate() {
                m[(ni * ohw + pix) * s.oc + oc] = *v;
            }
        }
    }
    RingTensor::from_vec(&[rows, s.oc], m)
}

/// The gradient of [`conv2d`] with respect to its input (the transposed
/// convolution): for an output gradient `dz` `(N, OC, OH, OW)` and the weight
/// `w` `(OC, C, KH, KW)`, the input gradient `(N, C, H, W)`, i.e. the
/// adjoint: `<conv2d(x, w), dz> == <x, conv2d_grad_input(dz, w)>`.
///
/// Errors: [`RingError::ShapeMismatch`] if `dz` or `w` does not match `s`.
pub fn conv2d_grad_input<R: Ring>(
    dz: &RingTensor<R>,
    w: &RingTensor<R>,
    s: &Conv2dShape,
) -> Result<RingTensor<R>, RingError> {
    expect_shape(w.shape(), &s.weight_shape())?;
    let [_, ckk] = s.cols_shape()?;
    let dm = output_as_rows(dz, s)?; // (rows, OC)
    let dcols = dm.matmul(&w.reshape(&[s.oc, ckk])?)?; // (rows, CKK)
    col2im(&dcols, s)
}

/// The gradient of [`conv2d`] with respect to its weight (the weight-gradient
/// correlation): for the input `x` `(N, C, H, W)` and an output gradient `dz`,
/// the weight gradient `(OC, C, KH, KW)`, summed over the batch:
/// `<conv2d(x, w), dz> == <w, conv2d_grad_weight(x, dz)>`.
///
/// Errors: [`RingError::ShapeMismatch`] if `x` or `dz` does not match `s`.
pub fn conv2d_grad_weight<R: Ring>(
    x: &RingTensor<R>,
    dz: &RingTensor<R>,
    s: &Conv2dShape,
) -> Result<RingTensor<R>, RingError> {
    let cols = im2col(x, s)?; // (rows, CKK), checks x
    let dm = output_as_rows(dz, s)?; // (rows, OC)
    dm.transpose2d()?.matmul(&cols)?.reshape(&s.weight_shape())
}

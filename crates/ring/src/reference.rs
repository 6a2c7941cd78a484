//! Plain, obviously-correct implementations that the fast paths are
//! property-tested against (CONVENTIONS.md, "Reference next to fast path").
//! Slow: for tests and debugging only.

use crate::conv::Conv2dShape;
use crate::error::RingError;
use crate::ring::Ring;
use crate::tensor::RingTensor;

/// Naive triple-loop matrix product `(m x k) . (k x n)`, wrapping.
///
/// Errors as [`RingTensor::matmul`].
pub fn matmul<R: Ring>(a: &RingTensor<R>, b: &RingTensor<R>) -> Result<RingTensor<R>, RingError> {
    let (&[m, k], &[k2, n]) = (a.shape(), b.shape()) else {
        return Err(RingError::InvalidShape(format!(
            "matmul of {:?} and {:?}: both must be 2-D",
            a.shape(),
            b.shape()
        )));
    };
    if k != k2 {
        return Err(RingError::ShapeMismatch {
            expected: vec![k, n],
            got: b.shape().to_vec(),
        });
    }
    let (x, y) = (a.as_slice(), b.as_slice());
    let mut out = Vec::with_capacity(m * n);
    for i in 0..m {
        for j in 0..n {
            let mut acc = R::ZERO;
            for p in 0..k {
                acc = acc.wadd(x[i * k + p].wmul(y[p * n + j]));
            }
            out.push(acc);
        }
    }
    RingTensor::from_vec(&[m, n], out)
}

/// Direct 7-loop convolution (NCHW input, OIHW weight, zero padding, no
/// bias), wrapping.
///
/// Errors: [`RingError::ShapeMismatch`] if `x` or `w` does not match `s`,
/// [`RingError::InvalidShape`] for an invalid geometry.
pub fn conv2d<R: Ring>(
    x: &RingTensor<R>,
    w: &RingTensor<R>,
    s: &Conv2dShape,
) -> Result<RingTensor<R>, RingError> {
    for (t, want) in [(x, s.input_shape()), (w, s.weight_shape())] {
        if t.shape() != want {
            return Err(RingError::ShapeMismatch {
                expected: want.to_vec(),
                got: t.shape().to_vec(),
            });
        }
    }
    let [_, _, oh, ow] = s.output_shape()?;
    let (xs, ws) = (x.as_slice(), w.as_slice());
    let mut out = Vec::new();
    for n in 0..s.n {
        for o in 0..s.oc {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = R::ZERO;
                    for c in 0..s.c {
                        for ky in 0..s.kh {
                            for kx in 0..s.kw {
                                let iy = (oy * s.stride + ky) as isize - s.pad as isize;
                                let ix = (ox * s.stride + kx) as isize - s.pad as isize;
                                if iy < 0 || ix < 0 || iy >= s.h as isize || ix >= s.w as isize {
                                    continue;
                                }
                                let (iy, ix) = (iy as usize, ix as usize);
                                let xv = xs[((n * s.c + c) * s.h + iy) * s.w + ix];
                                let wv = ws[((o * s.c + c) * s.kh + ky) * s.kw + kx];
                                acc = acc.wadd(xv.wmul(wv));
                            }
                        }
                    }
                    out.push(acc);
                }
            }
        }
    }
    RingTensor::from_vec(&[s.n, s.oc, oh, ow], out)
}

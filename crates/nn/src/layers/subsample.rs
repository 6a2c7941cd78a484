//! `SubsamplePad`: keep every `stride`-th row and column, then add `pad`
//! zero channels before and after — the "option A" shortcut of the CIFAR
//! ResNets of He et al. (PyTorch: `F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, p, p))`).
//!
//! Free on shares: both steps only select and place values (the shares of a
//! zero channel are zeros), so it costs no key, no round and no byte.

use super::{Ctx, FloatCtx, FloatGrads, LayerOp, Tape};
use crate::error::NnError;
use crate::params::Params;

/// Strided subsampling of the spatial axes, then `pad` zero channels on
/// each side of the channel axis. Input and output are `[c, h, w]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubsamplePad {
    /// Keep rows and columns `0, stride, 2 stride, ...` (at least 1).
    pub stride: usize,
    /// Zero channels added before and after the input's channels.
    pub pad: usize,
}

/// Checked output geometry `(c, h, w, oc, oh, ow)`.
fn geometry(s: &SubsamplePad, input: &[usize]) -> Option<[usize; 6]> {
    let [c, h, w] = *input else { return None };
    if s.stride == 0 {
        return None;
    }
    let oc = s.pad.checked_mul(2)?.checked_add(c)?;
    let (oh, ow) = (h.div_ceil(s.stride), w.div_ceil(s.stride));
    oc.checked_mul(oh)?.checked_mul(ow)?;
    Some([c, h, w, oc, oh, ow])
}

impl SubsamplePad {
    fn geometry_of(&self, shape: &[usize]) -> Result<[usize; 6], NnError> {
        geometry(self, shape).ok_or_else(|| NnError::LayerShape {
            path: String::new(),
            layer: format!("{self:?}"),
            expected: "[C, H, W] (and a stride of at least 1)".into(),
            shape: shape.to_vec(),
        })
    }

    /// Forward on any element type: `zero` fills the new channels.
    fn apply<T: Copy>(&self, x: &[T], shape: &[usize], zero: T) -> Result<Vec<T>, NnError> {
        let [c, h, w, oc, oh, ow] = self.geometry_of(shape)?;
        let per = c * h * w;
        if per == 0 || !x.len().is_multiple_of(per) {
            return Err(NnError::InputSize {
                expected: per,
                got: x.len(),
            });
        }
        let n = x.len() / per;
        let mut out = Vec::with_capacity(n * oc * oh * ow);
        for img in x.chunks_exact(per) {
            out.extend(std::iter::repeat_n(zero, self.pad * oh * ow));
            for plane in img.chunks_exact(h * w) {
                for i in (0..h).step_by(self.stride) {
                    out.extend(plane[i * w..(i + 1) * w].iter().step_by(self.stride));
                }
            }
            out.extend(std::iter::repeat_n(zero, self.pad * oh * ow));
        }
        Ok(out)
    }

    /// Backward (the adjoint): the gradient of each kept position goes back
    /// to it; dropped positions and the zero channels get nothing.
    fn adjoint<T: Copy>(&self, dy: &[T], shape: &[usize], zero: T) -> Result<Vec<T>, NnError> {
        let [c, h, w, oc, oh, ow] = self.geometry_of(shape)?;
        let per_out = oc * oh * ow;
        if per_out == 0 || !dy.len().is_multiple_of(per_out) {
            return Err(NnError::InputSize {
                expected: per_out,
                got: dy.len(),
            });
        }
        let n = dy.len() / per_out;
        let mut dx = vec![zero; n * c * h * w];
        for (b, g) in dy.chunks_exact(per_out).enumerate() {
            for ch in 0..c {
                let src = &g[(ch + self.pad) * oh * ow..(ch + self.pad + 1) * oh * ow];
                let dst = &mut dx[(b * c + ch) * h * w..(b * c + ch + 1) * h * w];
                for (oi, i) in (0..h).step_by(self.stride).enumerate() {
                    for (oj, j) in (0..w).step_by(self.stride).enumerate() {
                        dst[i * w + j] = src[oi * ow + oj];
                    }
                }
            }
        }
        Ok(dx)
    }
}

impl LayerOp for SubsamplePad {
    fn out_shape(&self, input: &[usize]) -> Option<Vec<usize>> {
        geometry(self, input).map(|[_, _, _, oc, oh, ow]| vec![oc, oh, ow])
    }

    fn forward_float(
        &self,
        _ctx: &FloatCtx<'_>,
        x: Vec<f64>,
        shape: &[usize],
    ) -> Result<Vec<f64>, NnError> {
        self.apply(&x, shape, 0.0)
    }

    fn forward(
        &self,
        _ctx: &mut Ctx<'_>,
        x: Vec<u64>,
        shape: &[usize],
    ) -> Result<Vec<u64>, NnError> {
        self.apply(&x, shape, 0)
    }

    fn forward_train(
        &self,
        _ctx: &mut Ctx<'_>,
        x: Vec<u64>,
        shape: &[usize],
        _need_dx: bool,
    ) -> Result<(Vec<u64>, Tape), NnError> {
        Ok((self.apply(&x, shape, 0)?, Tape::None))
    }

    fn backward(
        &self,
        _ctx: &mut Ctx<'_>,
        _tape: Tape,
        dy: Vec<u64>,
        shape: &[usize],
        _grads: &mut Params,
    ) -> Result<Option<Vec<u64>>, NnError> {
        self.adjoint(&dy, shape, 0).map(Some)
    }

    fn backward_float(
        &self,
        _ctx: &FloatCtx<'_>,
        _x: &[f64],
        shape: &[usize],
        dy: Vec<f64>,
        _grads: &mut FloatGrads,
    ) -> Result<Vec<f64>, NnError> {
        self.adjoint(&dy, shape, 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsamples_pads_and_its_backward_is_the_adjoint() {
        let s = SubsamplePad { stride: 2, pad: 1 };
        // Batch 2, 2 channels of 3x3 (odd sides keep ceil(3/2) = 2 rows).
        let x: Vec<i64> = (0..36).collect();
        let y = s.apply(&x, &[2, 3, 3], -1).expect("fits");
        assert_eq!(s.out_shape(&[2, 3, 3]), Some(vec![4, 2, 2]));
        let img0 = [
            -1, -1, -1, -1, // pad
            0, 2, 6, 8, // channel 0
            9, 11, 15, 17, // channel 1
            -1, -1, -1, -1, // pad
        ];
        assert_eq!(&y[..16], &img0);
        assert_eq!(y[20], 18);
        // <S x, g> = <x, S^T g> for random integer vectors.
        let g: Vec<i64> = (0..y.len() as i64).map(|i| i * 7 % 5 - 2).collect();
        let dx = s.adjoint(&g, &[2, 3, 3], 0).expect("fits");
        let sx = s.apply(&x, &[2, 3, 3], 0).expect("fits");
        let lhs: i64 = sx.iter().zip(&g).map(|(a, b)| a * b).sum();
        let rhs: i64 = x.iter().zip(&dx).map(|(a, b)| a * b).sum();
        assert_eq!(lhs, rhs);
        // Misfits are refused, not panics.
        assert!(s.out_shape(&[3, 3]).is_none());
        assert!(
            SubsamplePad { stride: 0, pad: 0 }
                .out_shape(&[1, 2, 2])
                .is_none()
        );
        assert!(s.apply(&x[..35], &[2, 3, 3], 0).is_err());
        assert!(s.adjoint(&g[..3], &[2, 3, 3], 0).is_err());
        assert!(
            SubsamplePad {
                stride: 1,
                pad: usize::MAX
            }
            .out_shape(&[1, 1, 1])
            .is_none()
        );
    }
}

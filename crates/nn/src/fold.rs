//! Batch-norm folding: a batch-norm right after a convolution becomes part
//! of that convolution's weight and bias (exact affine algebra in float).

use crate::error::NnError;
use crate::layers::{BatchNorm2d, Conv2d, Residual};
use crate::model::{BN_EPS, Layer, Model};
use crate::weights::{Weights, param};

impl Model {
    /// Folds every batch-norm that follows a convolution into that
    /// convolution's weight and bias (exact affine algebra in float:
    /// `W' = W g / sqrt(v + eps)`, `b' = (b - m) g / sqrt(v + eps) + beta`).
    /// A convolution without a bias (`bias: false`, PyTorch's `bias=False`)
    /// gets one: the folded convolution has `bias: true`.
    /// A batch-norm not preceded by a convolution stays: the fixed-point and
    /// private passes run it as the exact per-channel affine map
    /// `x * g / sqrt(v + eps) + (beta - m g / sqrt(v + eps))` (one Beaver
    /// product with the model owner's shared scale and one truncation).
    pub fn fold_batchnorm(&self, w: &Weights) -> Result<(Model, Weights), NnError> {
        let mut out = w.clone();
        let layers = fold_layers(&self.layers, w, &mut out)?;
        Ok((
            Model {
                name: self.name.clone(),
                input: self.input.clone(),
                layers,
            },
            out,
        ))
    }
}

/// The layers [`fold_layers`] gives, without weights.
pub(crate) fn fold_architecture(layers: &[Layer]) -> Vec<Layer> {
    let mut res: Vec<Layer> = Vec::with_capacity(layers.len());
    for l in layers {
        match l {
            Layer::BatchNorm2d(_) if matches!(res.last(), Some(Layer::Conv2d(_))) => {
                // The fold gives the convolution a bias.
                if let Some(Layer::Conv2d(c)) = res.last_mut() {
                    c.bias = true;
                }
            }
            Layer::Residual(Residual { body, shortcut }) => res.push(Layer::residual(
                fold_architecture(body),
                fold_architecture(shortcut),
            )),
            other => res.push(other.clone()),
        }
    }
    res
}

fn fold_layers(layers: &[Layer], w: &Weights, out: &mut Weights) -> Result<Vec<Layer>, NnError> {
    let mut res: Vec<Layer> = Vec::with_capacity(layers.len());
    for l in layers {
        match l {
            Layer::BatchNorm2d(BatchNorm2d { name, .. }) => {
                let Some(Layer::Conv2d(Conv2d {
                    name: conv,
                    oc,
                    bias: has_bias,
                    ..
                })) = res.last_mut()
                else {
                    // Not right after a convolution (e.g. after a ReLU or a
                    // max-pool, as in Falcon's AlexNet): it stays a layer and
                    // runs as a private per-channel affine map.
                    res.push(l.clone());
                    continue;
                };
                let conv = conv.clone();
                let oc = *oc;
                let had_bias = std::mem::replace(has_bias, true);
                let get = |t: &str| -> Result<Vec<f32>, NnError> {
                    let n = format!("{name}.{t}");
                    let (_, d) = w.get(&n).ok_or(NnError::MissingTensor(n))?;
                    Ok(d.to_vec())
                };
                let (g, beta, mean, var) = (
                    get("weight")?,
                    get("bias")?,
                    get("running_mean")?,
                    get("running_var")?,
                );
                let wn = format!("{conv}.weight");
                let (ws, wd) = w
                    .get(&wn)
                    .ok_or_else(|| NnError::MissingTensor(wn.clone()))?;
                let (ws, mut wd) = (ws.to_vec(), wd.to_vec());
                let bn = format!("{conv}.bias");
                // A bias-free convolution folds as one with a zero bias.
                let mut bias = if had_bias {
                    param(w, &bn)?.1.to_vec()
                } else {
                    vec![0.0; oc]
                };
                let per = wd.len() / oc;
                for o in 0..oc {
                    let scale = f64::from(g[o]) / (f64::from(var[o]) + BN_EPS).sqrt();
                    for v in wd[o * per..(o + 1) * per].iter_mut() {
                        *v = (f64::from(*v) * scale) as f32;
                    }
                    bias[o] = ((f64::from(bias[o]) - f64::from(mean[o])) * scale
                        + f64::from(beta[o])) as f32;
                }
                out.insert(&wn, ws, wd)?;
                out.insert(&bn, vec![oc], bias)?;
            }
            Layer::Residual(Residual { body, shortcut }) => res.push(Layer::residual(
                fold_layers(body, w, out)?,
                fold_layers(shortcut, w, out)?,
            )),
            other => res.push(other.clone()),
        }
    }
    Ok(res)
}

//! # ariann-nn: one model definition, run three ways
//!
//! A [`Model`] is a public architecture (a sequence of [`Layer`]s over an
//! input shape); [`Weights`] are its parameters by PyTorch state-dict names
//! (`fc1.weight`, `conv1.bias`, ...), loaded from and saved to safetensors.
//! The same model runs
//!
//! - in float ([`forward_float`], f64 arithmetic: the cleartext reference),
//! - in cleartext fixed point ([`forward_fixed`]: exactly the arithmetic of
//!   the private run, for debugging; the private output equals it bit for bit),
//! - privately ([`forward_private`]: both parties, keys from the dealer's
//!   [`plan`] consumed in order by a [`Session`]).
//!
//! Fixed point: `Z_2^64`, `f` fractional bits ([`Config`]); weights at `f`
//! bits, biases at `2f` (added to products before the exact truncation back
//! to `f`). Max-pool pads with `-inf` (padded positions never win), average
//! pooling divides by `k^2`.
//!
//! What this crate does not know: transports, files, threads. Training (the
//! backward pass) is a later issue; the private forward already keeps what a
//! backward pass needs in the gate outputs (DReLU bits, max-pool selections).
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]

use ariann_mpc::gates::beaver::Bilinear;
use ariann_mpc::gates::linear::{mul_public, window_sums};
use ariann_mpc::gates::pool::PoolShape;
use ariann_mpc::{GateDesc, Plan};
use ariann_mpc::{MpcError, PreprocessingSource, Session, Transport};
use ariann_ring::{Conv2dShape, FixedPoint, RingError, RingTensor, conv2d, share};
use rand::{CryptoRng, Rng};
use std::collections::BTreeMap;
use thiserror::Error;

/// Errors of model definition, weights and evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NnError {
    /// A parameter tensor is absent from the weights.
    #[error("missing parameter tensor `{0}`")]
    MissingTensor(String),
    /// A parameter tensor has another shape than the model needs.
    #[error("tensor `{name}` has shape {got:?}, the model needs {expected:?}")]
    TensorShape {
        /// Tensor name.
        name: String,
        /// Shape the model needs.
        expected: Vec<usize>,
        /// Shape found.
        got: Vec<usize>,
    },
    /// A layer does not fit the activation it receives.
    #[error("layer {index} ({layer}) cannot take an input of shape {shape:?}")]
    LayerShape {
        /// Layer index.
        index: usize,
        /// Layer description.
        layer: String,
        /// Incoming activation shape (without batch).
        shape: Vec<usize>,
    },
    /// The input does not have the model's size.
    #[error("input has {got} values, the model needs {expected} for this batch")]
    InputSize {
        /// Values needed.
        expected: usize,
        /// Values given.
        got: usize,
    },
    /// A safetensors file could not be read or written.
    #[error("safetensors: {0}")]
    Safetensors(String),
    /// A model description could not be parsed.
    #[error("model description: {0}")]
    Description(String),
    /// The dealer could not produce the keys of a plan.
    #[error("dealer: {0}")]
    Dealer(String),
    /// A value does not fit the fixed-point encoding.
    #[error(transparent)]
    Ring(#[from] RingError),
    /// A two-party protocol failed.
    #[error(transparent)]
    Mpc(#[from] MpcError),
}

/// One layer of a sequential model. Parameterised layers carry the prefix of
/// their PyTorch parameter names. Serialized as JSON with the layer kind in
/// `"type"` (see [`Model::from_json`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum Layer {
    /// `y = x W^T + b`; parameters `{name}.weight` `[out, inp]`, `{name}.bias` `[out]`.
    Linear {
        /// Parameter prefix.
        name: String,
        /// Input features.
        inp: usize,
        /// Output features.
        out: usize,
    },
    /// NCHW cross-correlation; parameters `{name}.weight` `[oc, c, k, k]`, `{name}.bias` `[oc]`.
    Conv2d {
        /// Parameter prefix.
        name: String,
        /// Input channels.
        c: usize,
        /// Output channels.
        oc: usize,
        /// Kernel side.
        k: usize,
        /// Stride.
        stride: usize,
        /// Zero padding.
        pad: usize,
    },
    /// `max(x, 0)`.
    Relu,
    /// Max-pooling (padding never wins).
    MaxPool2d {
        /// Window side.
        k: usize,
        /// Stride.
        stride: usize,
        /// Padding.
        pad: usize,
    },
    /// Average pooling over `k x k` windows (no padding).
    AvgPool2d {
        /// Window side.
        k: usize,
        /// Stride.
        stride: usize,
    },
    /// PyTorch's `AdaptiveAvgPool2d(out)` on square inputs whose side is a
    /// multiple of `out`: the average pool with window and stride
    /// `side / out` it amounts to (other sizes are refused).
    AdaptiveAvgPool2d {
        /// Output side.
        out: usize,
    },
    /// Flattens `[c, h, w]` to `[c h w]` (NCHW order, as `torch.flatten(x, 1)`).
    Flatten,
    /// Inference batch-norm; parameters `{name}.weight`, `.bias`,
    /// `.running_mean`, `.running_var` (`[c]`, eps = 1e-5). The float pass
    /// applies it; the fixed-point and private passes need it folded into the
    /// convolution before it ([`Model::fold_batchnorm`]): exact, no
    /// approximation (ARIANN's approximation broke pre-trained models).
    BatchNorm2d {
        /// Parameter prefix.
        name: String,
        /// Channels.
        c: usize,
    },
    /// Residual block: `body(x) + shortcut(x)` (an empty shortcut is the identity).
    Residual {
        /// Main branch.
        body: Vec<Layer>,
        /// Shortcut branch (e.g. a strided 1x1 convolution and its batch-norm).
        shortcut: Vec<Layer>,
    },
}

/// Epsilon of [`Layer::BatchNorm2d`] (PyTorch's default).
pub const BN_EPS: f64 = 1e-5;

/// A public model architecture.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// Name for reports.
    pub name: String,
    /// Shape of one input (without the batch): `[features]` or `[c, h, w]`.
    pub input: Vec<usize>,
    /// Layers in order.
    pub layers: Vec<Layer>,
}

/// Fixed-point and window parameters of the private run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Fractional bits.
    pub frac_bits: u32,
    /// Comparison window of ReLU and max-pool (activations satisfy `|v| < 2^(k-1-f)`).
    pub k_cmp: u32,
    /// Window of the truncations after products (`|x W| < 2^(k-1-2f)`).
    pub k_trunc: u32,
    /// Largest number of elements one ReLU, truncation or max-pool key
    /// bundle covers. Bigger layers are split into several bundles (one
    /// round each), which bounds the key memory a party holds at a time
    /// (about 0.75-1 KB per ReLU element).
    pub max_gate_elems: usize,
}

impl Default for Config {
    /// `f = 16`, comparisons on 32 bits (activations below 2^15), truncations
    /// on 56 bits, at most 2^18 elements per key bundle.
    fn default() -> Self {
        Config {
            frac_bits: 16,
            k_cmp: 32,
            k_trunc: 56,
            max_gate_elems: 1 << 18,
        }
    }
}

/// `0..len` in consecutive ranges of at most `max` (at least one element each).
fn chunks(len: usize, max: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let max = max.max(1);
    (0..len.div_ceil(max)).map(move |i| i * max..((i + 1) * max).min(len))
}

/// Max-pool geometries over groups of whole planes (windows never cross
/// planes), each with at most `max` input elements (or one plane): the
/// ranges of planes and their one-image pool shapes.
fn pool_chunks(p: &PoolShape, max: usize) -> Vec<(std::ops::Range<usize>, PoolShape)> {
    let plane = p.h * p.w;
    let per = (max / plane.max(1)).max(1);
    chunks(p.n * p.c, per)
        .map(|r| {
            let s = PoolShape {
                n: 1,
                c: r.len(),
                ..*p
            };
            (r, s)
        })
        .collect()
}

fn pool_shape(n: usize, s: &[usize], k: usize, stride: usize, pad: usize) -> PoolShape {
    PoolShape {
        n,
        c: s[0],
        h: s[1],
        w: s[2],
        k,
        stride,
        pad,
    }
}

fn conv_shape(n: usize, s: &[usize], l: &Layer) -> Option<Conv2dShape> {
    match *l {
        Layer::Conv2d {
            c,
            oc,
            k,
            stride,
            pad,
            ..
        } => Some(Conv2dShape {
            n,
            c,
            h: s[1],
            w: s[2],
            oc,
            kh: k,
            kw: k,
            stride,
            pad,
        }),
        _ => None,
    }
}

/// The shape after one layer (without batch), or `None` if it does not fit.
fn layer_out_shape(l: &Layer, cur: &[usize]) -> Option<Vec<usize>> {
    Some(match *l {
        Layer::Linear { inp, out, .. } => {
            if cur != [inp] {
                return None;
            }
            vec![out]
        }
        Layer::Conv2d { c, oc, .. } => {
            if cur.len() != 3 || cur[0] != c {
                return None;
            }
            let (h, w) = conv_shape(1, cur, l)?.out_hw().ok()?;
            vec![oc, h, w]
        }
        Layer::Relu => cur.to_vec(),
        Layer::MaxPool2d { k, stride, pad } => {
            if cur.len() != 3 {
                return None;
            }
            let (h, w) = pool_shape(1, cur, k, stride, pad).out_hw().ok()?;
            vec![cur[0], h, w]
        }
        Layer::AvgPool2d { .. } | Layer::AdaptiveAvgPool2d { .. } => {
            let (k, stride) = avg_window(l, cur)?;
            let (h, w) = pool_shape(1, cur, k, stride, 0).out_hw().ok()?;
            vec![cur[0], h, w]
        }
        Layer::Flatten => vec![cur.iter().product()],
        Layer::BatchNorm2d { c, .. } => {
            if cur.len() != 3 || cur[0] != c {
                return None;
            }
            cur.to_vec()
        }
        Layer::Residual {
            ref body,
            ref shortcut,
        } => {
            let run = |ls: &[Layer]| {
                ls.iter()
                    .try_fold(cur.to_vec(), |c, l| layer_out_shape(l, &c))
            };
            let (a, b) = (run(body)?, run(shortcut)?);
            if a != b {
                return None;
            }
            a
        }
    })
}

fn collect_params(layers: &[Layer], p: &mut Vec<(String, Vec<usize>)>) {
    for l in layers {
        match l {
            Layer::Linear { name, inp, out } => {
                p.push((format!("{name}.weight"), vec![*out, *inp]));
                p.push((format!("{name}.bias"), vec![*out]));
            }
            Layer::Conv2d { name, c, oc, k, .. } => {
                p.push((format!("{name}.weight"), vec![*oc, *c, *k, *k]));
                p.push((format!("{name}.bias"), vec![*oc]));
            }
            Layer::BatchNorm2d { name, c } => {
                for t in ["weight", "bias", "running_mean", "running_var"] {
                    p.push((format!("{name}.{t}"), vec![*c]));
                }
            }
            Layer::Residual { body, shortcut } => {
                collect_params(body, p);
                collect_params(shortcut, p);
            }
            _ => {}
        }
    }
}

impl Model {
    /// The activation shape (without batch) after each top-level layer;
    /// checks that every layer fits its input.
    pub fn shapes(&self) -> Result<Vec<Vec<usize>>, NnError> {
        let mut cur = self.input.clone();
        let mut out = Vec::with_capacity(self.layers.len());
        for (index, l) in self.layers.iter().enumerate() {
            cur = layer_out_shape(l, &cur).ok_or_else(|| NnError::LayerShape {
                index,
                layer: format!("{l:?}"),
                shape: cur.clone(),
            })?;
            out.push(cur.clone());
        }
        Ok(out)
    }

    /// `(name, shape)` of every parameter tensor, in layer order (residual
    /// blocks: body, then shortcut).
    pub fn parameters(&self) -> Vec<(String, Vec<usize>)> {
        let mut p = Vec::new();
        collect_params(&self.layers, &mut p);
        p
    }

    /// The same network with every `ReLU, MaxPool2d` pair swapped to
    /// `MaxPool2d, ReLU`: exact (`max` is monotone, so
    /// `ReLU(max(S)) = max(ReLU(S))`, padding included since padded positions
    /// never win), and the ReLU then runs on the pooled, smaller tensor. This
    /// is the permutation ARIANN and Falcon apply.
    pub fn permute_relu_maxpool(&self) -> Model {
        let mut layers = self.layers.clone();
        let mut i = 0;
        while i + 1 < layers.len() {
            if layers[i] == Layer::Relu && matches!(layers[i + 1], Layer::MaxPool2d { .. }) {
                layers.swap(i, i + 1);
                i += 2;
            } else {
                i += 1;
            }
        }
        Model {
            name: self.name.clone(),
            input: self.input.clone(),
            layers,
        }
    }

    /// Folds every batch-norm that follows a convolution into that
    /// convolution's weight and bias (exact affine algebra in float:
    /// `W' = W g / sqrt(v + eps)`, `b' = (b - m) g / sqrt(v + eps) + beta`).
    /// A convolution without a bias tensor (PyTorch `bias=False`) gets one.
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

    /// The architecture [`Model::fold_batchnorm`] gives, without weights
    /// (what the dealer needs: the plan depends on the architecture only).
    pub fn fold_batchnorm_architecture(&self) -> Model {
        fn fold(layers: &[Layer]) -> Vec<Layer> {
            let mut res: Vec<Layer> = Vec::with_capacity(layers.len());
            for l in layers {
                match l {
                    Layer::BatchNorm2d { .. }
                        if matches!(res.last(), Some(Layer::Conv2d { .. })) => {}
                    Layer::Residual { body, shortcut } => res.push(Layer::Residual {
                        body: fold(body),
                        shortcut: fold(shortcut),
                    }),
                    other => res.push(other.clone()),
                }
            }
            res
        }
        Model {
            name: self.name.clone(),
            input: self.input.clone(),
            layers: fold(&self.layers),
        }
    }

    /// Parses a model description in JSON, e.g.
    /// `{"name": "mlp", "input": [784], "layers": [{"type": "Linear", "name": "fc1", "inp": 784, "out": 10}]}`,
    /// and checks that its layers fit together.
    pub fn from_json(text: &str) -> Result<Model, NnError> {
        let m: Model =
            serde_json::from_str(text).map_err(|e| NnError::Description(e.to_string()))?;
        m.shapes()?;
        Ok(m)
    }

    /// The JSON description of the model (the inverse of [`Model::from_json`]).
    pub fn to_json(&self) -> String {
        // Serializing plain enums and structs of strings and integers cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Values in one input.
    pub fn input_len(&self) -> usize {
        self.input.iter().product()
    }
}

fn fold_layers(layers: &[Layer], w: &Weights, out: &mut Weights) -> Result<Vec<Layer>, NnError> {
    let mut res: Vec<Layer> = Vec::with_capacity(layers.len());
    for l in layers {
        match l {
            Layer::BatchNorm2d { name, .. } => {
                let Some(Layer::Conv2d { name: conv, oc, .. }) = res.last() else {
                    // Not right after a convolution (e.g. after a ReLU or a
                    // max-pool, as in Falcon's AlexNet): it stays a layer and
                    // runs as a private per-channel affine map.
                    res.push(l.clone());
                    continue;
                };
                let conv = conv.clone();
                let oc = *oc;
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
                let mut bias = w
                    .get(&bn)
                    .map(|(_, d)| d.to_vec())
                    .unwrap_or_else(|| vec![0.0; oc]);
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
            Layer::Residual { body, shortcut } => res.push(Layer::Residual {
                body: fold_layers(body, w, out)?,
                shortcut: fold_layers(shortcut, w, out)?,
            }),
            other => res.push(other.clone()),
        }
    }
    Ok(res)
}

/// Float parameters by PyTorch state-dict name.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Weights {
    tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
}

impl Weights {
    /// Empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a tensor.
    pub fn insert(&mut self, name: &str, shape: Vec<usize>, data: Vec<f32>) -> Result<(), NnError> {
        if shape.iter().product::<usize>() != data.len() {
            return Err(NnError::TensorShape {
                name: name.into(),
                expected: shape,
                got: vec![data.len()],
            });
        }
        self.tensors.insert(name.to_string(), (shape, data));
        Ok(())
    }

    /// A tensor by name.
    pub fn get(&self, name: &str) -> Option<(&[usize], &[f32])> {
        self.tensors
            .get(name)
            .map(|(s, d)| (s.as_slice(), d.as_slice()))
    }

    /// Kaiming-uniform-like random parameters for `model` (benchmarks, tests).
    pub fn random<G: Rng + ?Sized>(model: &Model, rng: &mut G) -> Self {
        let mut w = Weights::new();
        for (name, shape) in model.parameters() {
            let fan_in: usize = if shape.len() > 1 {
                shape[1..].iter().product()
            } else {
                1
            };
            let bound = 1.0 / (fan_in as f32).sqrt();
            // Batch-norm scales and variances stay positive and near 1.
            let bn_positive =
                name.ends_with(".running_var") || (name.ends_with(".weight") && shape.len() == 1);
            let (lo, hi) = if bn_positive {
                (0.5, 1.5)
            } else {
                (-bound, bound)
            };
            let data = (0..shape.iter().product())
                .map(|_| rng.random_range(lo..hi))
                .collect();
            w.tensors.insert(name, (shape, data));
        }
        w
    }

    /// Checks that every parameter of `model` is present with its shape.
    pub fn check(&self, model: &Model) -> Result<(), NnError> {
        for (name, shape) in model.parameters() {
            let (s, _) = self
                .get(&name)
                .ok_or_else(|| NnError::MissingTensor(name.clone()))?;
            if s != shape.as_slice() {
                return Err(NnError::TensorShape {
                    name,
                    expected: shape,
                    got: s.to_vec(),
                });
            }
        }
        Ok(())
    }

    /// Parses a safetensors file (F32 tensors only).
    pub fn from_safetensors(bytes: &[u8]) -> Result<Self, NnError> {
        let st = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| NnError::Safetensors(e.to_string()))?;
        let mut w = Weights::new();
        for (name, view) in st.tensors() {
            if view.dtype() != safetensors::Dtype::F32 {
                return Err(NnError::Safetensors(format!(
                    "tensor `{name}` is {:?}, only F32 is supported",
                    view.dtype()
                )));
            }
            let data = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            w.tensors.insert(name, (view.shape().to_vec(), data));
        }
        Ok(w)
    }

    /// Serializes to safetensors (F32, little-endian).
    pub fn to_safetensors(&self) -> Result<Vec<u8>, NnError> {
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = self
            .tensors
            .iter()
            .map(|(n, (s, d))| {
                (
                    n.clone(),
                    s.clone(),
                    d.iter().flat_map(|v| v.to_le_bytes()).collect(),
                )
            })
            .collect();
        let views = bytes
            .iter()
            .map(|(n, s, d)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d)
                    .map(|v| (n.clone(), v))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| NnError::Safetensors(e.to_string()))?;
        safetensors::serialize(views, None).map_err(|e| NnError::Safetensors(e.to_string()))
    }
}

fn param<'a>(w: &'a Weights, name: &str) -> Result<(&'a [usize], &'a [f32]), NnError> {
    w.get(name)
        .ok_or_else(|| NnError::MissingTensor(name.to_string()))
}

/// Window and stride of an average pool (adaptive: from the input side).
fn avg_window(l: &Layer, cur: &[usize]) -> Option<(usize, usize)> {
    if cur.len() != 3 {
        return None;
    }
    match *l {
        Layer::AvgPool2d { k, stride } => Some((k, stride)),
        Layer::AdaptiveAvgPool2d { out } => {
            let side = cur[1];
            (out > 0 && cur[2] == side && side.is_multiple_of(out))
                .then(|| (side / out, side / out))
        }
        _ => None,
    }
}

/// A layer that does not fit its input (normally caught by [`Model::shapes`]).
fn misfit(l: &Layer) -> NnError {
    NnError::LayerShape {
        index: 0,
        layer: format!("{l:?}: does not fit its input shape"),
        shape: vec![],
    }
}

/// Cleartext float forward pass of a batch (row-major, `batch x input_len`).
pub fn forward_float(
    model: &Model,
    w: &Weights,
    x: &[f32],
    batch: usize,
) -> Result<Vec<f64>, NnError> {
    w.check(model)?;
    model.shapes()?;
    if x.len() != batch * model.input_len() {
        return Err(NnError::InputSize {
            expected: batch * model.input_len(),
            got: x.len(),
        });
    }
    let cur: Vec<f64> = x.iter().map(|v| f64::from(*v)).collect();
    float_layers(&model.layers, w, cur, &model.input, batch).map(|(v, _)| v)
}

fn float_layers(
    layers: &[Layer],
    w: &Weights,
    mut cur: Vec<f64>,
    shape: &[usize],
    batch: usize,
) -> Result<(Vec<f64>, Vec<usize>), NnError> {
    let mut shape = shape.to_vec();
    for l in layers {
        let next = layer_out_shape(l, &shape).ok_or_else(|| misfit(l))?;
        cur = match l {
            Layer::Linear { name, inp, out } => {
                let (_, wt) = param(w, &format!("{name}.weight"))?;
                let (_, b) = param(w, &format!("{name}.bias"))?;
                let mut y = vec![0f64; batch * out];
                for n in 0..batch {
                    for o in 0..*out {
                        let row = &wt[o * inp..(o + 1) * inp];
                        let xs = &cur[n * inp..(n + 1) * inp];
                        y[n * out + o] = f64::from(b[o])
                            + row
                                .iter()
                                .zip(xs)
                                .map(|(a, v)| f64::from(*a) * v)
                                .sum::<f64>();
                    }
                }
                y
            }
            Layer::Conv2d { name, .. } => {
                let s = conv_shape(batch, &shape, l).ok_or_else(|| misfit(l))?;
                let (_, wt) = param(w, &format!("{name}.weight"))?;
                let (_, b) = param(w, &format!("{name}.bias"))?;
                let (oh, ow) = s.out_hw()?;
                // im2col in f64 then a plain product (fast enough for references).
                let kk = s.c * s.kh * s.kw;
                let mut y = vec![0f64; batch * s.oc * oh * ow];
                let mut col = vec![0f64; kk];
                for n in 0..batch {
                    for i in 0..oh {
                        for j in 0..ow {
                            for c in 0..s.c {
                                for di in 0..s.kh {
                                    for dj in 0..s.kw {
                                        let (yy, xx) = (i * s.stride + di, j * s.stride + dj);
                                        col[(c * s.kh + di) * s.kw + dj] = if yy < s.pad
                                            || xx < s.pad
                                            || yy - s.pad >= s.h
                                            || xx - s.pad >= s.w
                                        {
                                            0.0
                                        } else {
                                            cur[((n * s.c + c) * s.h + yy - s.pad) * s.w + xx
                                                - s.pad]
                                        };
                                    }
                                }
                            }
                            for o in 0..s.oc {
                                let wr = &wt[o * kk..(o + 1) * kk];
                                y[((n * s.oc + o) * oh + i) * ow + j] = f64::from(b[o])
                                    + wr.iter()
                                        .zip(&col)
                                        .map(|(a, v)| f64::from(*a) * v)
                                        .sum::<f64>();
                            }
                        }
                    }
                }
                y
            }
            Layer::Relu => cur.iter().map(|v| v.max(0.0)).collect(),
            Layer::MaxPool2d { k, stride, pad } => pool_shape(batch, &shape, *k, *stride, *pad)
                .windows()?
                .iter()
                .map(|w| w.iter().map(|i| cur[*i]).fold(f64::NEG_INFINITY, f64::max))
                .collect(),
            Layer::AvgPool2d { .. } | Layer::AdaptiveAvgPool2d { .. } => {
                let (k, stride) = avg_window(l, &shape).ok_or_else(|| misfit(l))?;
                pool_shape(batch, &shape, k, stride, 0)
                    .windows()?
                    .iter()
                    .map(|w| w.iter().map(|i| cur[*i]).sum::<f64>() / (k * k) as f64)
                    .collect()
            }
            Layer::Flatten => cur,
            Layer::BatchNorm2d { name, c } => {
                let get = |t: &str| param(w, &format!("{name}.{t}")).map(|(_, d)| d);
                let (g, b, m, v) = (
                    get("weight")?,
                    get("bias")?,
                    get("running_mean")?,
                    get("running_var")?,
                );
                let plane = shape[1] * shape[2];
                cur.iter()
                    .enumerate()
                    .map(|(i, x)| {
                        let ch = (i / plane) % c;
                        (x - f64::from(m[ch])) / (f64::from(v[ch]) + BN_EPS).sqrt()
                            * f64::from(g[ch])
                            + f64::from(b[ch])
                    })
                    .collect()
            }
            Layer::Residual { body, shortcut } => {
                let (a, _) = float_layers(body, w, cur.clone(), &shape, batch)?;
                let (b, _) = float_layers(shortcut, w, cur, &shape, batch)?;
                a.iter().zip(&b).map(|(x, y)| x + y).collect()
            }
        };
        shape = next;
    }
    Ok((cur, shape))
}

/// Fixed-point parameters, prepared for the private run: linear weights
/// transposed to `[inp, out]`, weights at `f` bits, biases at `2f`.
fn fixed_params(model: &Model, w: &Weights, cfg: &Config) -> Result<Vec<RingTensor<u64>>, NnError> {
    w.check(model)?;
    let mut out = Vec::new();
    fixed_params_rec(&model.layers, w, cfg, &mut out)?;
    Ok(out)
}

fn fixed_params_rec(
    layers: &[Layer],
    w: &Weights,
    cfg: &Config,
    out: &mut Vec<RingTensor<u64>>,
) -> Result<(), NnError> {
    let fp = FixedPoint::new(cfg.frac_bits);
    let fp2 = FixedPoint::new(2 * cfg.frac_bits);
    let enc = |fp: FixedPoint, shape: &[usize], v: &[f32]| -> Result<RingTensor<u64>, NnError> {
        let vals = v
            .iter()
            .map(|x| fp.encode::<u64>(f64::from(*x)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RingTensor::from_vec(shape, vals)?)
    };
    for l in layers {
        match l {
            Layer::Linear { name, inp, out: o } => {
                let (_, wt) = param(w, &format!("{name}.weight"))?;
                let mut t = vec![0f32; wt.len()];
                for r in 0..*o {
                    for c in 0..*inp {
                        t[c * o + r] = wt[r * inp + c];
                    }
                }
                out.push(enc(fp, &[*inp, *o], &t)?);
                let (bs, b) = param(w, &format!("{name}.bias"))?;
                out.push(enc(fp2, bs, b)?);
            }
            Layer::Conv2d { name, .. } => {
                let (ws, wt) = param(w, &format!("{name}.weight"))?;
                out.push(enc(fp, ws, wt)?);
                let (bs, b) = param(w, &format!("{name}.bias"))?;
                out.push(enc(fp2, bs, b)?);
            }
            Layer::BatchNorm2d { name, c } => {
                let (scale, shift) = bn_affine(w, name, *c)?;
                out.push(enc(fp, &[*c], &scale)?);
                out.push(enc(fp2, &[*c], &shift)?);
            }
            Layer::Residual { body, shortcut } => {
                fixed_params_rec(body, w, cfg, out)?;
                fixed_params_rec(shortcut, w, cfg, out)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// One party's shares of a model's fixed-point parameters.
#[derive(Debug, Clone)]
pub struct WeightShares(Vec<RingTensor<u64>>);

/// Shapes of the fixed-point parameter tensors, in [`WeightShares`] order.
fn fixed_param_shapes(layers: &[Layer], out: &mut Vec<Vec<usize>>) {
    for l in layers {
        match l {
            Layer::Linear { inp, out: o, .. } => {
                out.push(vec![*inp, *o]);
                out.push(vec![*o]);
            }
            Layer::Conv2d { c, oc, k, .. } => {
                out.push(vec![*oc, *c, *k, *k]);
                out.push(vec![*oc]);
            }
            Layer::BatchNorm2d { c, .. } => {
                out.push(vec![*c]);
                out.push(vec![*c]);
            }
            Layer::Residual { body, shortcut } => {
                fixed_param_shapes(body, out);
                fixed_param_shapes(shortcut, out);
            }
            _ => {}
        }
    }
}

impl WeightShares {
    /// Number of ring elements (all tensors).
    pub fn len(&self) -> usize {
        self.0.iter().map(|t| t.as_slice().len()).sum()
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Elements a share of `model`'s parameters has (what
    /// [`WeightShares::from_bytes`] expects: 8 bytes each).
    pub fn expected_len(model: &Model) -> usize {
        let mut shapes = Vec::new();
        fixed_param_shapes(&model.layers, &mut shapes);
        shapes.iter().map(|s| s.iter().product::<usize>()).sum()
    }

    /// Little-endian bytes of every element, tensor after tensor (to send a
    /// share to the other party).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len() * 8);
        for t in &self.0 {
            for v in t.as_slice() {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        out
    }

    /// The inverse of [`WeightShares::to_bytes`] for `model`; a length that
    /// does not fit the model is an error.
    pub fn from_bytes(model: &Model, bytes: &[u8]) -> Result<Self, NnError> {
        let mut shapes = Vec::new();
        fixed_param_shapes(&model.layers, &mut shapes);
        let total: usize = shapes.iter().map(|s| s.iter().product::<usize>()).sum();
        if bytes.len() != total * 8 {
            return Err(NnError::InputSize {
                expected: total * 8,
                got: bytes.len(),
            });
        }
        let mut vals = bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]));
        let mut out = Vec::with_capacity(shapes.len());
        for s in shapes {
            let n = s.iter().product::<usize>();
            out.push(RingTensor::from_vec(&s, vals.by_ref().take(n).collect())?);
        }
        Ok(WeightShares(out))
    }
}

/// The model owner secret-shares its weights: `(party 0's, party 1's)`.
pub fn share_weights<G: Rng + CryptoRng + ?Sized>(
    model: &Model,
    w: &Weights,
    cfg: &Config,
    rng: &mut G,
) -> Result<(WeightShares, WeightShares), NnError> {
    let mut a = Vec::new();
    let mut b = Vec::new();
    for t in fixed_params(model, w, cfg)? {
        let (x, y) = share(&t, rng);
        a.push(x);
        b.push(y);
    }
    Ok((WeightShares(a), WeightShares(b)))
}

/// Encodes a float input batch at `f` bits.
pub fn encode_input(x: &[f32], cfg: &Config) -> Result<Vec<u64>, NnError> {
    let fp = FixedPoint::new(cfg.frac_bits);
    Ok(x.iter()
        .map(|v| fp.encode::<u64>(f64::from(*v)))
        .collect::<Result<Vec<_>, _>>()?)
}

/// Decodes fixed-point outputs.
pub fn decode_output(y: &[u64], cfg: &Config) -> Vec<f64> {
    let fp = FixedPoint::new(cfg.frac_bits);
    y.iter().map(|v| fp.decode::<u64>(*v)).collect()
}

/// The dealer's plan for a private forward pass of `model` on `batch` inputs.
pub fn plan(model: &Model, batch: usize, cfg: &Config) -> Result<Plan, NnError> {
    model.shapes()?;
    let mut gates = Vec::new();
    plan_rec(&model.layers, &model.input, batch, cfg, &mut gates)?;
    Ok(Plan::new(64, gates))
}

fn plan_rec(
    layers: &[Layer],
    shape: &[usize],
    batch: usize,
    cfg: &Config,
    gates: &mut Vec<GateDesc>,
) -> Result<Vec<usize>, NnError> {
    let mut shape = shape.to_vec();
    for l in layers {
        let next = layer_out_shape(l, &shape).ok_or_else(|| misfit(l))?;
        let len = batch * next.iter().product::<usize>();
        let push_trunc = |gates: &mut Vec<GateDesc>| {
            for r in chunks(len, cfg.max_gate_elems) {
                gates.push(GateDesc::Trunc {
                    m: r.len(),
                    f: cfg.frac_bits,
                    k: cfg.k_trunc,
                });
            }
        };
        match l {
            Layer::Linear { inp, out, .. } => {
                gates.push(GateDesc::Triple(Bilinear::MatMul {
                    m: batch,
                    k: *inp,
                    n: *out,
                }));
                push_trunc(gates);
            }
            Layer::Conv2d { .. } => {
                let s = conv_shape(batch, &shape, l).ok_or_else(|| misfit(l))?;
                gates.push(GateDesc::Triple(Bilinear::Conv2d(s)));
                push_trunc(gates);
            }
            Layer::Relu => {
                for r in chunks(len, cfg.max_gate_elems) {
                    gates.push(GateDesc::Relu {
                        m: r.len(),
                        k: cfg.k_cmp,
                    });
                }
            }
            Layer::MaxPool2d { k, stride, pad } => {
                let p = pool_shape(batch, &shape, *k, *stride, *pad);
                for (_, shape) in pool_chunks(&p, cfg.max_gate_elems) {
                    gates.push(GateDesc::MaxPool {
                        shape,
                        k: cfg.k_cmp,
                    });
                }
            }
            Layer::AvgPool2d { .. } | Layer::AdaptiveAvgPool2d { .. } => push_trunc(gates),
            Layer::Flatten => {}
            Layer::BatchNorm2d { .. } => {
                gates.push(GateDesc::Triple(Bilinear::Mul { len }));
                push_trunc(gates);
            }
            Layer::Residual { body, shortcut } => {
                plan_rec(body, &shape, batch, cfg, gates)?;
                plan_rec(shortcut, &shape, batch, cfg, gates)?;
            }
        }
        shape = next;
    }
    Ok(shape)
}

/// The per-channel affine map of an inference batch-norm:
/// `scale = g / sqrt(v + eps)`, `shift = beta - m * scale`.
fn bn_affine(w: &Weights, name: &str, c: usize) -> Result<(Vec<f32>, Vec<f32>), NnError> {
    let get = |t: &str| param(w, &format!("{name}.{t}")).map(|(_, d)| d);
    let (g, beta, m, v) = (
        get("weight")?,
        get("bias")?,
        get("running_mean")?,
        get("running_var")?,
    );
    let scale: Vec<f64> = (0..c)
        .map(|i| f64::from(g[i]) / (f64::from(v[i]) + BN_EPS).sqrt())
        .collect();
    let shift = (0..c)
        .map(|i| (f64::from(beta[i]) - f64::from(m[i]) * scale[i]) as f32)
        .collect();
    Ok((scale.iter().map(|s| *s as f32).collect(), shift))
}

/// A per-channel vector broadcast over `len` values of NCHW activations of
/// `shape` (`[c, h, w]`).
fn per_channel<'a>(
    v: &'a [u64],
    shape: &[usize],
    c: usize,
    len: usize,
) -> impl Iterator<Item = u64> + 'a {
    let plane = shape.iter().skip(1).product::<usize>().max(1);
    (0..len).map(move |i| v[(i / plane) % c])
}

/// `1/k^2` at `f` bits (average pooling).
fn inv_area(k: usize, f: u32) -> u64 {
    ((1u64 << f) as f64 / (k * k) as f64).round() as u64
}

/// Adds a per-output bias (`i % out` for linear, per channel for conv).
fn add_bias(z: &mut [u64], b: &[u64], next: &[usize]) {
    if next.len() == 1 {
        let out = next[0];
        for (i, v) in z.iter_mut().enumerate() {
            *v = v.wrapping_add(b[i % out]);
        }
    } else {
        let plane = next[1] * next[2];
        for (i, v) in z.iter_mut().enumerate() {
            *v = v.wrapping_add(b[(i / plane) % next[0]]);
        }
    }
}

/// The cleartext fixed-point forward pass: the private run's arithmetic
/// (wrapping products, floor truncation), on plain values.
pub fn forward_fixed(
    model: &Model,
    w: &Weights,
    x: &[u64],
    batch: usize,
    cfg: &Config,
) -> Result<Vec<u64>, NnError> {
    let params = fixed_params(model, w, cfg)?;
    model.shapes()?;
    if x.len() != batch * model.input_len() {
        return Err(NnError::InputSize {
            expected: batch * model.input_len(),
            got: x.len(),
        });
    }
    let mut p = params.iter();
    fixed_rec(&model.layers, &mut p, x.to_vec(), &model.input, batch, cfg)
}

fn fixed_rec<'a>(
    layers: &[Layer],
    p: &mut impl Iterator<Item = &'a RingTensor<u64>>,
    mut cur: Vec<u64>,
    shape: &[usize],
    batch: usize,
    cfg: &Config,
) -> Result<Vec<u64>, NnError> {
    let f = cfg.frac_bits;
    let mut shape = shape.to_vec();
    let sar = |v: &u64| ((*v as i64) >> f) as u64;
    for l in layers {
        let next = layer_out_shape(l, &shape).ok_or_else(|| misfit(l))?;
        let mut take = || {
            p.next()
                .ok_or_else(|| NnError::MissingTensor("parameter".into()))
        };
        cur = match l {
            Layer::Linear { inp, .. } => {
                let (wt, b) = (take()?, take()?);
                let mut z = RingTensor::from_vec(&[batch, *inp], cur)?
                    .matmul(wt)?
                    .to_vec();
                add_bias(&mut z, b.as_slice(), &next);
                z.iter().map(sar).collect()
            }
            Layer::Conv2d { .. } => {
                let (wt, b) = (take()?, take()?);
                let s = conv_shape(batch, &shape, l).ok_or_else(|| misfit(l))?;
                let mut z = conv2d(&RingTensor::from_vec(&s.input_shape(), cur)?, wt, &s)?.to_vec();
                add_bias(&mut z, b.as_slice(), &next);
                z.iter().map(sar).collect()
            }
            Layer::Relu => cur
                .iter()
                .map(|v| if (*v as i64) < 0 { 0 } else { *v })
                .collect(),
            Layer::MaxPool2d { k, stride, pad } => pool_shape(batch, &shape, *k, *stride, *pad)
                .windows()?
                .iter()
                .map(|win| win.iter().map(|i| cur[*i] as i64).max().unwrap_or(0) as u64)
                .collect(),
            Layer::AvgPool2d { .. } | Layer::AdaptiveAvgPool2d { .. } => {
                let (k, stride) = avg_window(l, &shape).ok_or_else(|| misfit(l))?;
                let s = pool_shape(batch, &shape, k, stride, 0);
                mul_public(&window_sums(&cur, &s)?, inv_area(k, f))
                    .iter()
                    .map(sar)
                    .collect()
            }
            Layer::Flatten => cur,
            Layer::BatchNorm2d { c, .. } => {
                let (a, b) = (take()?, take()?);
                let mut z: Vec<u64> = cur
                    .iter()
                    .zip(per_channel(a.as_slice(), &shape, *c, cur.len()))
                    .map(|(x, s)| x.wrapping_mul(s))
                    .collect();
                add_bias(&mut z, b.as_slice(), &next);
                z.iter().map(sar).collect()
            }
            Layer::Residual { body, shortcut } => {
                let a = fixed_rec(body, p, cur.clone(), &shape, batch, cfg)?;
                let b = fixed_rec(shortcut, p, cur, &shape, batch, cfg)?;
                a.iter().zip(&b).map(|(x, y)| x.wrapping_add(*y)).collect()
            }
        };
        shape = next;
    }
    Ok(cur)
}

/// One party's private forward pass: `x` is its share of the encoded input
/// batch, `params` its share of the weights; keys come from `session`'s
/// source, generated from [`plan`]. Returns its share of the output.
pub fn forward_private<T: Transport + ?Sized, S: PreprocessingSource<u64> + ?Sized>(
    session: &mut Session<'_, T, S, u64>,
    model: &Model,
    params: &WeightShares,
    x: &[u64],
    batch: usize,
    cfg: &Config,
) -> Result<Vec<u64>, NnError> {
    model.shapes()?;
    if x.len() != batch * model.input_len() {
        return Err(NnError::InputSize {
            expected: batch * model.input_len(),
            got: x.len(),
        });
    }
    let mut p = params.0.iter();
    private_rec(
        session,
        &model.layers,
        &mut p,
        x.to_vec(),
        &model.input,
        batch,
        cfg,
    )
}

fn private_rec<'a, T: Transport + ?Sized, S: PreprocessingSource<u64> + ?Sized>(
    session: &mut Session<'_, T, S, u64>,
    layers: &[Layer],
    p: &mut impl Iterator<Item = &'a RingTensor<u64>>,
    mut cur: Vec<u64>,
    shape: &[usize],
    batch: usize,
    cfg: &Config,
) -> Result<Vec<u64>, NnError> {
    let (f, kt, kc) = (cfg.frac_bits, cfg.k_trunc, cfg.k_cmp);
    let max = cfg.max_gate_elems;
    // Truncations of large tensors in bundles of at most `max` elements.
    let truncate = |session: &mut Session<'_, T, S, u64>, z: &[u64]| -> Result<Vec<u64>, NnError> {
        let mut out = Vec::with_capacity(z.len());
        for r in chunks(z.len(), max) {
            out.extend(session.truncate(&z[r], f, kt)?);
        }
        Ok(out)
    };
    let mut shape = shape.to_vec();
    for l in layers {
        let next = layer_out_shape(l, &shape).ok_or_else(|| misfit(l))?;
        let mut take = || {
            p.next()
                .ok_or_else(|| NnError::MissingTensor("parameter share".into()))
        };
        cur = match l {
            Layer::Linear { inp, out, .. } => {
                let (wt, b) = (take()?, take()?);
                let map = Bilinear::MatMul {
                    m: batch,
                    k: *inp,
                    n: *out,
                };
                let mut z = session
                    .bilinear(map, &RingTensor::from_vec(&[batch, *inp], cur)?, wt)?
                    .to_vec();
                add_bias(&mut z, b.as_slice(), &next);
                truncate(session, &z)?
            }
            Layer::Conv2d { .. } => {
                let (wt, b) = (take()?, take()?);
                let s = conv_shape(batch, &shape, l).ok_or_else(|| misfit(l))?;
                let mut z = session
                    .bilinear(
                        Bilinear::Conv2d(s),
                        &RingTensor::from_vec(&s.input_shape(), cur)?,
                        wt,
                    )?
                    .to_vec();
                add_bias(&mut z, b.as_slice(), &next);
                truncate(session, &z)?
            }
            Layer::Relu => {
                let mut out = Vec::with_capacity(cur.len());
                for r in chunks(cur.len(), max) {
                    out.extend(session.relu(&cur[r], kc)?.relu);
                }
                out
            }
            Layer::MaxPool2d { k, stride, pad } => {
                let p = pool_shape(batch, &shape, *k, *stride, *pad);
                let plane = p.h * p.w;
                let mut out = Vec::new();
                for (r, s) in pool_chunks(&p, max) {
                    out.extend(
                        session
                            .max_pool(&cur[r.start * plane..r.end * plane], s, kc)?
                            .max,
                    );
                }
                out
            }
            Layer::AvgPool2d { .. } | Layer::AdaptiveAvgPool2d { .. } => {
                let (k, stride) = avg_window(l, &shape).ok_or_else(|| misfit(l))?;
                let s = pool_shape(batch, &shape, k, stride, 0);
                let sums = mul_public(&window_sums(&cur, &s)?, inv_area(k, f));
                truncate(session, &sums)?
            }
            Layer::Flatten => cur,
            Layer::BatchNorm2d { c, .. } => {
                let (a, b) = (take()?, take()?);
                let len = cur.len();
                let scale: Vec<u64> = per_channel(a.as_slice(), &shape, *c, len).collect();
                let mut z = session
                    .bilinear(
                        Bilinear::Mul { len },
                        &RingTensor::from_vec(&[len], cur)?,
                        &RingTensor::from_vec(&[len], scale)?,
                    )?
                    .to_vec();
                add_bias(&mut z, b.as_slice(), &next);
                truncate(session, &z)?
            }
            Layer::Residual { body, shortcut } => {
                let a = private_rec(session, body, p, cur.clone(), &shape, batch, cfg)?;
                let b = private_rec(session, shortcut, p, cur, &shape, batch, cfg)?;
                a.iter().zip(&b).map(|(x, y)| x.wrapping_add(*y)).collect()
            }
        };
        shape = next;
    }
    Ok(cur)
}

/// The models of ARIANN's zoo that this crate defines so far.
pub mod zoo {
    use super::{Layer, Model};

    fn linear(name: &str, inp: usize, out: usize) -> Layer {
        Layer::Linear {
            name: name.into(),
            inp,
            out,
        }
    }

    fn conv(name: &str, c: usize, oc: usize, k: usize, stride: usize, pad: usize) -> Layer {
        Layer::Conv2d {
            name: name.into(),
            c,
            oc,
            k,
            stride,
            pad,
        }
    }

    fn bn(name: &str, c: usize) -> Layer {
        Layer::BatchNorm2d {
            name: name.into(),
            c,
        }
    }

    /// torchvision's ResNet18 (state-dict names `conv1`, `bn1`,
    /// `layer{1..4}.{0,1}.{conv1,bn1,conv2,bn2,downsample.0,downsample.1}`,
    /// `fc`) on `hw x hw` RGB inputs (`hw` a multiple of 32; 224 for
    /// ImageNet), `classes` outputs, ending with `AdaptiveAvgPool2d(1)`. Convolutions have bias
    /// tensors here (zero in torchvision, which has `bias=False`): fold the
    /// batch-norms ([`Model::fold_batchnorm`]) to run it in fixed point or
    /// privately.
    pub fn resnet18(hw: usize, classes: usize) -> Model {
        let mut layers = vec![
            conv("conv1", 3, 64, 7, 2, 3),
            bn("bn1", 64),
            Layer::Relu,
            Layer::MaxPool2d {
                k: 3,
                stride: 2,
                pad: 1,
            },
        ];
        let mut c = 64;
        for (i, oc) in [64usize, 128, 256, 512].into_iter().enumerate() {
            for b in 0..2 {
                let stride = if i > 0 && b == 0 { 2 } else { 1 };
                let p = format!("layer{}.{b}", i + 1);
                let body = vec![
                    conv(&format!("{p}.conv1"), c, oc, 3, stride, 1),
                    bn(&format!("{p}.bn1"), oc),
                    Layer::Relu,
                    conv(&format!("{p}.conv2"), oc, oc, 3, 1, 1),
                    bn(&format!("{p}.bn2"), oc),
                ];
                let shortcut = if stride != 1 || c != oc {
                    vec![
                        conv(&format!("{p}.downsample.0"), c, oc, 1, stride, 0),
                        bn(&format!("{p}.downsample.1"), oc),
                    ]
                } else {
                    vec![]
                };
                layers.push(Layer::Residual { body, shortcut });
                layers.push(Layer::Relu);
                c = oc;
            }
        }
        layers.push(Layer::AdaptiveAvgPool2d { out: 1 });
        layers.push(Layer::Flatten);
        layers.push(linear("fc", 512, classes));
        Model {
            name: format!("ResNet18 {hw}x{hw}"),
            input: vec![3, hw, hw],
            layers,
        }
    }

    /// Network-1 (SecureML): 784-128-128-10 with ReLUs.
    pub fn network1() -> Model {
        Model {
            name: "Network-1".into(),
            input: vec![784],
            layers: vec![
                linear("fc1", 784, 128),
                Layer::Relu,
                linear("fc2", 128, 128),
                Layer::Relu,
                linear("fc3", 128, 10),
            ],
        }
    }

    /// LeNet5 as trained by advertorch (`mnist_lenet5_clntrained`): 3x3
    /// convolutions with 32 and 64 channels (padding 1), 2x2 max-pools, a
    /// 3136-200-10 head; parameter names `conv1`, `conv2`, `linear1`, `linear2`.
    pub fn lenet5_advertorch() -> Model {
        Model {
            name: "LeNet5 (advertorch)".into(),
            input: vec![1, 28, 28],
            layers: vec![
                conv("conv1", 1, 32, 3, 1, 1),
                Layer::Relu,
                Layer::MaxPool2d {
                    k: 2,
                    stride: 2,
                    pad: 0,
                },
                conv("conv2", 32, 64, 3, 1, 1),
                Layer::Relu,
                Layer::MaxPool2d {
                    k: 2,
                    stride: 2,
                    pad: 0,
                },
                Layer::Flatten,
                linear("linear1", 3136, 200),
                Layer::Relu,
                linear("linear2", 200, 10),
            ],
        }
    }

    /// Network-2 (MiniONN): two 5x5 convolutions with max-pools, two linear
    /// layers, as in Falcon's MNIST MiniONN (final ReLU included).
    pub fn network2() -> Model {
        Model {
            name: "Network-2".into(),
            input: vec![1, 28, 28],
            layers: vec![
                conv("conv1", 1, 16, 5, 1, 0),
                Layer::Relu,
                Layer::MaxPool2d {
                    k: 2,
                    stride: 2,
                    pad: 0,
                },
                conv("conv2", 16, 16, 5, 1, 0),
                Layer::Relu,
                Layer::MaxPool2d {
                    k: 2,
                    stride: 2,
                    pad: 0,
                },
                Layer::Flatten,
                linear("fc1", 256, 100),
                Layer::Relu,
                linear("fc2", 100, 10),
                Layer::Relu,
            ],
        }
    }

    fn pool(k: usize, stride: usize) -> Layer {
        Layer::MaxPool2d { k, stride, pad: 0 }
    }

    /// Falcon's "Sarda" (Chameleon) MNIST network: a 2x2 stride-2
    /// convolution with 5 channels, then 980-100-10.
    pub fn sarda() -> Model {
        Model {
            name: "Sarda".into(),
            input: vec![1, 28, 28],
            layers: vec![
                conv("conv1", 1, 5, 2, 2, 0),
                Layer::Relu,
                Layer::Flatten,
                linear("fc1", 980, 100),
                Layer::Relu,
                linear("fc2", 100, 10),
            ],
        }
    }

    /// LeNet as in Falcon/ARIANN: 5x5 convolutions with 20 and 50 channels,
    /// 2x2 max-pools, 800-500-10 and a final ReLU (Falcon's trained model
    /// and C++ configuration have it). Names `conv1`, `conv2`, `fc1`, `fc2`.
    pub fn lenet() -> Model {
        Model {
            name: "LeNet".into(),
            input: vec![1, 28, 28],
            layers: vec![
                conv("conv1", 1, 20, 5, 1, 0),
                Layer::Relu,
                pool(2, 2),
                conv("conv2", 20, 50, 5, 1, 0),
                Layer::Relu,
                pool(2, 2),
                Layer::Flatten,
                linear("fc1", 800, 500),
                Layer::Relu,
                linear("fc2", 500, 10),
                Layer::Relu,
            ],
        }
    }

    /// Falcon's AlexNet for CIFAR-10 (the version with batch-norms, which
    /// ARIANN kept): images zero-padded to 33x33 as in Falcon,
    /// conv 11x11/4 (pad 9) 96 ch, max-pool 3/2, ReLU, BN, conv 5x5 (pad 1)
    /// 256 ch, max-pool 3/2, ReLU, BN, three 3x3 convs (384, 384, 256),
    /// 256-256-10 and a final ReLU. Written in PyTorch order (ReLU before
    /// max-pool); [`Model::permute_relu_maxpool`] gives Falcon's order. The
    /// batch-norms follow a ReLU, so they cannot be folded into a
    /// convolution: they run as a private per-channel affine map.
    /// State-dict names `features.N`, `classifier.N`.
    pub fn alexnet_cifar10() -> Model {
        Model {
            name: "AlexNet".into(),
            input: vec![3, 33, 33],
            layers: vec![
                conv("features.0", 3, 96, 11, 4, 9),
                Layer::Relu,
                pool(3, 2),
                bn("features.3", 96),
                conv("features.4", 96, 256, 5, 1, 1),
                Layer::Relu,
                pool(3, 2),
                bn("features.7", 256),
                conv("features.8", 256, 384, 3, 1, 1),
                Layer::Relu,
                conv("features.10", 384, 384, 3, 1, 1),
                Layer::Relu,
                conv("features.12", 384, 256, 3, 1, 1),
                Layer::Relu,
                Layer::Flatten,
                linear("classifier.0", 256, 256),
                Layer::Relu,
                linear("classifier.2", 256, 256),
                Layer::Relu,
                linear("classifier.4", 256, 10),
                Layer::Relu,
            ],
        }
    }

    /// AlexNet for 64x64 Tiny ImageNet (ARIANN Figure 5): torchvision's
    /// AlexNet features, no batch-norm, classifier 256-4096-4096-200.
    pub fn alexnet_tiny() -> Model {
        Model {
            name: "AlexNet".into(),
            input: vec![3, 64, 64],
            layers: vec![
                conv("features.0", 3, 64, 11, 4, 2),
                Layer::Relu,
                pool(3, 2),
                conv("features.3", 64, 192, 5, 1, 2),
                Layer::Relu,
                pool(3, 2),
                conv("features.6", 192, 384, 3, 1, 1),
                Layer::Relu,
                conv("features.8", 384, 256, 3, 1, 1),
                Layer::Relu,
                conv("features.10", 256, 256, 3, 1, 1),
                Layer::Relu,
                pool(3, 2),
                Layer::Flatten,
                linear("classifier.0", 256, 4096),
                Layer::Relu,
                linear("classifier.2", 4096, 4096),
                Layer::Relu,
                linear("classifier.4", 4096, 200),
            ],
        }
    }

    /// VGG16 as Falcon/ARIANN adapt it: the 13 3x3 convolutions of VGG16
    /// (torchvision names `features.N`) on `hw x hw` inputs, then
    /// `fc, fc, classes` with a ReLU after each (Falcon's configuration).
    /// CIFAR-10: `vgg16(32, 4096, 10)` (Falcon's code has 1000 outputs; 10
    /// is the number of classes); 64x64 Tiny ImageNet: `vgg16(64, 2048, 200)`.
    /// Classifier names follow torchvision (`classifier.0/3/6`).
    pub fn vgg16(hw: usize, fc: usize, classes: usize) -> Model {
        let mut layers = Vec::new();
        let mut c = 3;
        let mut i = 0;
        for (n, oc) in [(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)] {
            for _ in 0..n {
                layers.push(conv(&format!("features.{i}"), c, oc, 3, 1, 1));
                layers.push(Layer::Relu);
                c = oc;
                i += 2;
            }
            layers.push(pool(2, 2));
            i += 1;
        }
        let flat = 512 * (hw / 32) * (hw / 32);
        layers.extend([
            Layer::Flatten,
            linear("classifier.0", flat, fc),
            Layer::Relu,
            linear("classifier.3", fc, fc),
            Layer::Relu,
            linear("classifier.6", fc, classes),
            Layer::Relu,
        ]);
        Model {
            name: "VGG16".into(),
            input: vec![3, hw, hw],
            layers,
        }
    }

    /// The AlexNet-like CIFAR-10 network of the max-pool note (Figure 3):
    /// five 3x3 convolutions (64, 96, 96, 64, 64 ch), max-pools 2, 2 and 3/2,
    /// 1024-128-256-10. Names are the `nn.Sequential` indices (`0`, `3`, ...).
    pub fn alexnet_note() -> Model {
        Model {
            name: "AlexNet-like (note)".into(),
            input: vec![3, 32, 32],
            layers: vec![
                conv("0", 3, 64, 3, 1, 2),
                Layer::Relu,
                pool(2, 2),
                conv("3", 64, 96, 3, 1, 2),
                Layer::Relu,
                pool(2, 2),
                conv("6", 96, 96, 3, 1, 1),
                Layer::Relu,
                conv("8", 96, 64, 3, 1, 1),
                Layer::Relu,
                conv("10", 64, 64, 3, 1, 1),
                Layer::Relu,
                pool(3, 2),
                Layer::Flatten,
                linear("14", 1024, 128),
                Layer::Relu,
                linear("16", 128, 256),
                Layer::Relu,
                linear("18", 256, 10),
            ],
        }
    }

    /// A zoo model by its short name, with its dataset and ARIANN Table 2's
    /// batch size: `network1`, `network2`, `sarda`, `lenet`, `lenet5`
    /// (advertorch), `alexnet` (CIFAR-10), `alexnet_64`, `alexnet_note`,
    /// `vgg16` (CIFAR-10), `vgg16_64`, `resnet18` (224x224), `resnet18_64`.
    pub fn by_name(name: &str) -> Option<(Model, &'static str, usize)> {
        Some(match name {
            "network1" => (network1(), "MNIST", 128),
            "network2" => (network2(), "MNIST", 128),
            "sarda" => (sarda(), "MNIST", 128),
            "lenet" => (lenet(), "MNIST", 128),
            "lenet5" => (lenet5_advertorch(), "MNIST", 128),
            "alexnet" => (alexnet_cifar10(), "CIFAR-10", 128),
            "alexnet_64" => (alexnet_tiny(), "64x64 Tiny ImageNet", 128),
            "alexnet_note" => (alexnet_note(), "CIFAR-10", 128),
            "vgg16" => (vgg16(32, 4096, 10), "CIFAR-10", 32),
            "vgg16_64" => (vgg16(64, 2048, 200), "64x64 Tiny ImageNet", 16),
            "resnet18" => (resnet18(224, 1000), "224x224 ImageNet", 4),
            "resnet18_64" => (resnet18(64, 200), "64x64 Tiny ImageNet", 16),
            _ => return None,
        })
    }

    /// The names [`by_name`] knows, in ARIANN Table 2's order.
    pub const NAMES: [&str; 12] = [
        "network1",
        "network2",
        "sarda",
        "lenet",
        "lenet5",
        "alexnet",
        "alexnet_64",
        "alexnet_note",
        "vgg16",
        "vgg16_64",
        "resnet18",
        "resnet18_64",
    ];
}

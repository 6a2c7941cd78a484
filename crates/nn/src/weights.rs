//! Float parameters by PyTorch state-dict name ([`Weights`]), read from and
//! written to safetensors.

use crate::error::NnError;
use crate::model::Model;
use rand::Rng;
use std::collections::BTreeMap;

/// Initialisation rule of [`Weights::init`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    /// He (Kaiming) uniform for ReLU networks: `sqrt(6 / fan_in)`.
    He,
    /// Glorot (Xavier) uniform: `sqrt(6 / (fan_in + fan_out))`.
    Glorot,
    /// PyTorch's default for `Linear` and `Conv2d` weights: `1 / sqrt(fan_in)`.
    PyTorch,
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

    /// Every tensor in name order: its name, shape and values.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[usize], &[f32])> {
        self.tensors
            .iter()
            .map(|(n, (s, d))| (n.as_str(), s.as_slice(), d.as_slice()))
    }

    /// The tensor named `name`: its shape and values.
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

    /// Initial parameters for training from a seeded generator: weights
    /// uniform in `[-bound, bound]` by the rule `init` (fan-in of a linear
    /// weight `[out, in]` is `in`, of a convolution `[oc, c, k, k]` `c k k`),
    /// biases zero.
    pub fn init<G: Rng + ?Sized>(model: &Model, init: Init, rng: &mut G) -> Self {
        let mut w = Weights::new();
        for (name, shape) in model.parameters() {
            let n: usize = shape.iter().product();
            let data = if shape.len() > 1 {
                let field: usize = shape[2..].iter().product();
                let (fan_in, fan_out) = (shape[1] * field, shape[0] * field);
                let bound = match init {
                    Init::He => (6.0 / fan_in as f64).sqrt(),
                    Init::Glorot => (6.0 / (fan_in + fan_out) as f64).sqrt(),
                    Init::PyTorch => 1.0 / (fan_in as f64).sqrt(),
                } as f32;
                (0..n).map(|_| rng.random_range(-bound..bound)).collect()
            } else if name.ends_with(".running_var") || name.ends_with(".weight") {
                // Batch-norm scales and variances.
                vec![1.0; n]
            } else {
                vec![0.0; n]
            };
            w.tensors.insert(name, (shape, data));
        }
        w
    }

    /// Checks that every parameter of `model` is present with its shape, and
    /// that no layer without a bias (`bias: false`) has a bias tensor here
    /// (it would be silently left out otherwise).
    pub fn check(&self, model: &Model) -> Result<(), NnError> {
        if let Some(name) = model
            .absent_biases()
            .into_iter()
            .find(|n| self.get(n).is_some())
        {
            return Err(NnError::UnexpectedTensor(name));
        }
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

/// A tensor by name, or [`NnError::MissingTensor`].
pub(crate) fn param<'a>(w: &'a Weights, name: &str) -> Result<(&'a [usize], &'a [f32]), NnError> {
    w.get(name)
        .ok_or_else(|| NnError::MissingTensor(name.to_string()))
}

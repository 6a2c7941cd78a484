//! The parameter store: fixed-point tensors (or one party's shares of them)
//! by PyTorch state-dict name.
//!
//! A [`Params`] holds what the layers read on the gate backend: for
//! `Linear` and `Conv2d`, `{name}.weight` at `f` fractional bits in
//! PyTorch's layout and `{name}.bias` at `2f` (added to the product before
//! its truncation); for a batch-norm that is not folded, its affine map
//! (`{name}.weight` = scale at `f`, `{name}.bias` = shift at `2f`).
//! A training store ([`Params::train_spec`]) holds a batch-norm's PyTorch
//! tensors instead (gamma, beta and the running statistics).
//! [`Params::spec`] lists the names and shapes a model needs;
//! [`Params::check`] refuses a store with a missing, extra or misshapen
//! tensor. Stores are saved to and loaded from safetensors by name (`U64`
//! tensors, little-endian), which is also how the model owner sends the
//! other party its share: a share is never a positional vector.
//! Values are zeroized on drop (shares are secrets).

use crate::error::NnError;
use crate::model::{Config, Model};
use crate::weights::Weights;
use ariann_ring::{RingTensor, reconstruct, share};
use rand::{CryptoRng, Rng};
use std::collections::BTreeMap;
use zeroize::Zeroize;

/// Fixed-point parameters, or one party's shares of them, by name.
#[derive(Clone, PartialEq, Default)]
pub struct Params {
    tensors: BTreeMap<String, RingTensor<u64>>,
}

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names and shapes only: the values may be shares.
        f.debug_map()
            .entries(self.tensors.iter().map(|(n, t)| (n, t.shape())))
            .finish()
    }
}

impl Drop for Params {
    fn drop(&mut self) {
        for t in self.tensors.values_mut() {
            t.as_mut_slice().zeroize();
        }
    }
}

impl Params {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a tensor.
    pub fn insert(&mut self, name: &str, t: RingTensor<u64>) {
        self.tensors.insert(name.to_string(), t);
    }

    /// A tensor by name.
    pub fn get(&self, name: &str) -> Result<&RingTensor<u64>, NnError> {
        self.tensors
            .get(name)
            .ok_or_else(|| NnError::MissingTensor(name.to_string()))
    }

    /// A tensor by name, mutable (optimisers update in place).
    pub fn get_mut(&mut self, name: &str) -> Result<&mut RingTensor<u64>, NnError> {
        self.tensors
            .get_mut(name)
            .ok_or_else(|| NnError::MissingTensor(name.to_string()))
    }

    /// `(name, tensor)` in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &RingTensor<u64>)> {
        self.tensors.iter().map(|(n, t)| (n.as_str(), t))
    }

    /// Number of ring elements over all tensors.
    pub fn len(&self) -> usize {
        self.tensors.values().map(|t| t.len()).sum()
    }

    /// Whether the store holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `(name, shape)` of every fixed-point tensor `model` reads, in layer order.
    pub fn spec(model: &Model) -> Vec<(String, Vec<usize>)> {
        let mut p = Vec::new();
        for l in &model.layers {
            l.op().fixed_parameters(&mut p);
        }
        p
    }

    /// Elements a store of `model` holds.
    pub fn expected_len(model: &Model) -> usize {
        Self::spec(model)
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }

    /// Checks that the store holds exactly the tensors of `model` with
    /// their shapes.
    pub fn check(&self, model: &Model) -> Result<(), NnError> {
        self.check_spec(&Self::spec(model))
    }

    fn check_spec(&self, spec: &[(String, Vec<usize>)]) -> Result<(), NnError> {
        for (name, shape) in spec {
            let t = self.get(name)?;
            if t.shape() != shape.as_slice() {
                return Err(NnError::TensorShape {
                    name: name.clone(),
                    expected: shape.clone(),
                    got: t.shape().to_vec(),
                });
            }
        }
        if let Some(extra) = self
            .tensors
            .keys()
            .find(|n| !spec.iter().any(|(s, _)| s == *n))
        {
            return Err(NnError::UnexpectedTensor(extra.clone()));
        }
        Ok(())
    }

    /// The fixed-point parameters of `model` from its float weights
    /// (`cfg.frac_bits` fractional bits; biases at twice that).
    pub fn encode(model: &Model, w: &Weights, cfg: &Config) -> Result<Params, NnError> {
        w.check(model)?;
        let mut out = Params::new();
        for (i, l) in model.layers.iter().enumerate() {
            l.op()
                .encode_parameters(w, cfg, &mut out)
                .map_err(|e| e.at(&l.path("", i)))?;
        }
        out.check(model)?;
        Ok(out)
    }

    /// Zero tensors of `model`'s shapes (placeholders: planning needs the
    /// shapes, not the values).
    pub fn zeros(model: &Model) -> Result<Params, NnError> {
        let mut out = Params::new();
        for (name, shape) in Self::spec(model) {
            crate::layers::checked_len(&shape)?;
            out.insert(&name, RingTensor::zeros(&shape));
        }
        Ok(out)
    }

    /// `(name, shape)` of every fixed-point tensor of a training store of
    /// `model`: [`Params::spec`], except that a batch-norm holds its PyTorch
    /// tensors (`weight` = gamma at `f` bits, `bias` = beta at `2f`,
    /// `running_mean` and `running_var` at `f`) instead of its affine map.
    /// The same as [`Params::spec`] for a model without batch-norm.
    pub fn train_spec(model: &Model) -> Vec<(String, Vec<usize>)> {
        let mut p = Vec::new();
        for l in &model.layers {
            l.op().train_parameters(&mut p);
        }
        p
    }

    /// [`Params::check`] against [`Params::train_spec`].
    pub fn check_train(&self, model: &Model) -> Result<(), NnError> {
        self.check_spec(&Self::train_spec(model))
    }

    /// [`Params::encode`] for training ([`Params::train_spec`]).
    pub fn encode_train(model: &Model, w: &Weights, cfg: &Config) -> Result<Params, NnError> {
        w.check(model)?;
        let mut out = Params::new();
        for (i, l) in model.layers.iter().enumerate() {
            l.op()
                .encode_train_parameters(w, cfg, &mut out)
                .map_err(|e| e.at(&l.path("", i)))?;
        }
        out.check_train(model)?;
        Ok(out)
    }

    /// Drops a store of public values without wiping them: for the zero
    /// tensors of [`Params::zeros`] that a plan's trace runs on. Their
    /// memory was never written (the allocator hands out zero pages), so
    /// the wipe on drop made the kernel fault in and clear every page of
    /// it just to write zeros over zeros: VGG16's 33.6 M weights are 269 MB,
    /// and a party traces its plan more than once.
    pub fn discard_public(mut self) {
        for (_, t) in std::mem::take(&mut self.tensors) {
            drop(t.into_array());
        }
    }

    /// [`Params::zeros`] for training ([`Params::train_spec`]).
    pub fn zeros_train(model: &Model) -> Result<Params, NnError> {
        let mut out = Params::new();
        for (name, shape) in Self::train_spec(model) {
            crate::layers::checked_len(&shape)?;
            out.insert(&name, RingTensor::zeros(&shape));
        }
        Ok(out)
    }

    /// Additive shares `(party 0's, party 1's)` of every tensor.
    pub fn share<G: Rng + CryptoRng + ?Sized>(&self, rng: &mut G) -> (Params, Params) {
        let (mut a, mut b) = (Params::new(), Params::new());
        for (n, t) in &self.tensors {
            let (x, y) = share(t, rng);
            a.insert(n, x);
            b.insert(n, y);
        }
        (a, b)
    }

    /// The values of two shares (tests, and the party a result is revealed to).
    pub fn reconstruct(a: &Params, b: &Params) -> Result<Params, NnError> {
        let mut out = Params::new();
        for (n, x) in &a.tensors {
            let y = b
                .tensors
                .get(n)
                .ok_or_else(|| NnError::MissingTensor(n.clone()))?;
            out.insert(n, reconstruct(x, y)?);
        }
        if let Some(extra) = b.tensors.keys().find(|n| !a.tensors.contains_key(*n)) {
            return Err(NnError::UnexpectedTensor(extra.clone()));
        }
        Ok(out)
    }

    /// Serializes to safetensors (`U64` tensors by name).
    pub fn to_safetensors(&self) -> Result<Vec<u8>, NnError> {
        let bytes: Vec<(String, Vec<usize>, zeroize::Zeroizing<Vec<u8>>)> = self
            .tensors
            .iter()
            .map(|(n, t)| {
                let d = t.as_slice().iter().flat_map(|v| v.to_le_bytes()).collect();
                (n.clone(), t.shape().to_vec(), zeroize::Zeroizing::new(d))
            })
            .collect();
        let views = bytes
            .iter()
            .map(|(n, s, d)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::U64, s.clone(), d)
                    .map(|v| (n.clone(), v))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| NnError::Safetensors(e.to_string()))?;
        safetensors::serialize(views, None).map_err(|e| NnError::Safetensors(e.to_string()))
    }

    /// Parses a safetensors store (`U64` tensors only). Check it against a
    /// model with [`Params::check`].
    pub fn from_safetensors(bytes: &[u8]) -> Result<Params, NnError> {
        let st = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| NnError::Safetensors(e.to_string()))?;
        let mut out = Params::new();
        for (name, view) in st.tensors() {
            if view.dtype() != safetensors::Dtype::U64 {
                return Err(NnError::Safetensors(format!(
                    "tensor `{name}` is {:?}, a parameter store holds U64",
                    view.dtype()
                )));
            }
            let data = view
                .data()
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect();
            out.insert(&name, RingTensor::from_vec(view.shape(), data)?);
        }
        Ok(out)
    }
}

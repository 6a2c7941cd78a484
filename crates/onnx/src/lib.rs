//! # ariann-onnx: ONNX import
//!
//! Reads an ONNX file (as `torch.onnx.export` writes it) and gives, apart:
//!
//! - the **architecture**, an [`ariann_nn::Model`] (public: the dealer and
//!   the data owner need only this; [`architecture`]);
//! - the **weights**, the model owner's initializers as an
//!   [`ariann_nn::Weights`] under the parameter names the model reads
//!   (`conv1.weight`, `conv1.bias`, `bn1.running_var`, ...; [`import`],
//!   [`Imported::weights_safetensors`]).
//!
//! The model is as the graph describes it: a convolution followed by a
//! batch-norm gives a [`Layer::Conv2d`](ariann_nn::Layer::Conv2d) and a
//! [`Layer::BatchNorm2d`](ariann_nn::Layer::BatchNorm2d), which the party
//! folds ([`ariann_nn::Model::fold_batchnorm`]) exactly as for a model
//! described in JSON; a batch-norm elsewhere runs as its exact affine map.
//!
//! ## Supported operators
//!
//! Domain `ai.onnx` (the default domain), float32 tensors, batch on the first
//! axis, activations `[N, C, H, W]` or `[N, F]`:
//!
//! | ONNX | becomes | conditions |
//! |---|---|---|
//! | `Conv` | `Conv2d` | weight an initializer, bias optional (without one a bias-free layer, `"bias": false`), `group = 1`, `dilations = 1`, square kernel, equal strides, equal pads on all sides (`auto_pad` `NOTSET` or `VALID`) |
//! | `Gemm` | `Linear` | `B` (and `C`; without `C` a bias-free layer) initializers, `transA = 0`, `transB` 0 or 1, `alpha`, `beta` folded into the weights |
//! | `MatMul` (+ `Add`) | `Linear` | `x @ W` with `W [in, out]` an initializer; an `Add` of a constant `[out]` right after it is the bias (without one, a bias-free layer) |
//! | `Relu` | `Relu` | |
//! | `MaxPool` | `MaxPool2d` | square kernel, equal strides and pads, `ceil_mode = 0`, `dilations = 1`, `Indices` output unused |
//! | `AveragePool` | `AvgPool2d` | square kernel, equal strides, no padding, `ceil_mode = 0` |
//! | `GlobalAveragePool`, `ReduceMean` over `H, W` | `AdaptiveAvgPool2d(1)` (+ `Flatten` if `keepdims = 0`) | square input |
//! | `BatchNormalization` | `BatchNorm2d` (folded into a `Conv` right before it by the party) | inference mode; on a `[N, F]` activation it must follow a `Gemm`/`MatMul` and is folded into it here; an `epsilon` other than `1e-5` is moved into the running variance |
//! | `Flatten`, `Reshape` | `Flatten` | to `[N, features]` only (`axis = 1`; a shape `[N, F]`, `[-1, F]`, `[0, F]` or `[N, -1]`) |
//! | `Add` of two activations | `Residual` | the two branches of one fork (identity, `Conv`/`BatchNormalization` or option-A shortcut) |
//! | `Slice` (+ `Slice`) (+ `Pad`) | `SubsamplePad` | `x[:, :, ::s, ::s]`, then zero channels padded evenly (the option-A shortcut; free on shares) |
//! | `Pad` | `SubsamplePad` | constant zero padding of the channel axis, the same before and after |
//! | `Identity`, `Dropout` | nothing | `Dropout` in inference mode (`training_mode` absent or false), mask output unused |
//! | `Constant` | a constant | read when the graph is imported (shapes, pads, slice bounds) |
//!
//! Anything else is refused with [`OnnxError::UnsupportedOp`] (the operator,
//! the node's name, this list) or, for a supported operator used in another
//! form, [`OnnxError::UnsupportedUse`] (what is not supported).
//!
//! ## Why prost + protox on the ONNX schema
//!
//! ONNX is a protobuf file; this crate decodes it with `prost` from a subset
//! of the official schema (`proto/onnx_subset.proto`: the messages and field
//! numbers it reads), compiled at build time by `protox` (pure Rust, no
//! system `protoc`), exactly as the workspace's `proto/` crate builds its gRPC
//! messages. Both crates are already in the dependency tree, so the importer
//! adds no new dependency. `tract-onnx` and burn's `onnx-ir` were set aside:
//! each brings a full inference or IR stack (tract's `ndarray`-based
//! operators and its own protobuf layer; burn's IR with its type inference
//! and code generation dependencies) whose compile time would weigh on a
//! 2-core CI already near its limit, for a job that is mostly mapping a
//! dozen node types onto the layers `ariann-nn` already has. The graph walk
//! here is small and is tested on files written by `torch.onnx.export`.
//!
//! ## Robustness
//!
//! Input is untrusted: a malformed protobuf, inconsistent shapes or absurd
//! dimensions give an [`OnnxError`], never a panic; tensor sizes are
//! computed with checked arithmetic and checked against the bytes present
//! before anything is allocated for them; tensors in external data files are
//! refused.
//!
//! What this crate does not know: files (it reads bytes), the fixed-point
//! encoding, parties, keys.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]

mod convert;
mod error;
mod tensor;

/// The prost messages of `proto/onnx_subset.proto`.
#[allow(missing_docs, unreachable_pub, clippy::all)]
mod proto {
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}

pub use error::OnnxError;

use ariann_nn::{Model, Weights};

/// ONNX operators the importer maps onto layers (see the crate docs for the
/// conditions on each).
pub const SUPPORTED_OPS: &[&str] = &[
    "Conv",
    "Gemm",
    "MatMul",
    "Add",
    "Relu",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "ReduceMean",
    "BatchNormalization",
    "Flatten",
    "Reshape",
    "Slice",
    "Pad",
    "Identity",
    "Dropout",
    "Constant",
];

/// An imported ONNX model: the public architecture and the model owner's
/// weights.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The architecture (not folded: batch-norms are layers).
    pub model: Model,
    /// The initializers, by the parameter names `model` reads.
    pub weights: Weights,
}

impl Imported {
    /// The weights as a safetensors file (F32, by parameter name): what
    /// `ariann-party --weights` reads.
    pub fn weights_safetensors(&self) -> Result<Vec<u8>, OnnxError> {
        Ok(self.weights.to_safetensors()?)
    }
}

/// Imports an ONNX model: architecture and weights. The model's name is the
/// graph's name (or `onnx` if it has none).
pub fn import(bytes: &[u8]) -> Result<Imported, OnnxError> {
    convert::import(bytes)
}

/// The architecture of an ONNX model only (what the dealer and the data
/// owner need). The initializers are still read for their shapes and for
/// the constants the graph uses (reshape targets, pads), and they are
/// checked, but their values are dropped.
pub fn architecture(bytes: &[u8]) -> Result<Model, OnnxError> {
    Ok(convert::import(bytes)?.model)
}

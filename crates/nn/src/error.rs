//! Typed errors of model definitions, weights and evaluation.

use ariann_mpc::{Fault, MpcError};
use ariann_ring::RingError;
use thiserror::Error;

/// Errors of model definition, weights and evaluation.
///
/// What the caller got wrong (a description, a weight file, an input of the
/// wrong size) is apart from what a protocol or the peer did wrong
/// ([`NnError::Mpc`]); an error inside a layer names the layer by its path
/// ([`NnError::InLayer`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum NnError {
    /// A parameter tensor is absent from the weights (or from a parameter store).
    #[error("missing parameter tensor `{0}`")]
    MissingTensor(String),
    /// A tensor that the model does not have (in a parameter store or share).
    #[error("unexpected parameter tensor `{0}` (the model has no such parameter)")]
    UnexpectedTensor(String),
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
    #[error("layer {path} ({layer}) takes an input of shape {expected}, not {shape:?}")]
    LayerShape {
        /// Path of the layer: its parameter prefix (`layer1.0.conv2`), or its
        /// position (`5.body.2`) for layers without parameters.
        path: String,
        /// Layer kind and settings.
        layer: String,
        /// The input shape the layer takes (without batch), e.g. `[27]` or
        /// `[3, H, W] with H and W at least 3`.
        expected: String,
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
    /// A size computation overflows (a description with absurd dimensions).
    #[error("size overflow: {0}")]
    Overflow(String),
    /// A safetensors file could not be read or written.
    #[error("safetensors: {0}")]
    Safetensors(String),
    /// A model description could not be parsed.
    #[error("model description: {0}")]
    Description(String),
    /// An error inside one layer. The message includes the cause, which is
    /// therefore not also chained as `source()` (a printed error chain
    /// names each cause once).
    #[error("layer {path}: {cause}")]
    InLayer {
        /// Path of the layer (see [`NnError::LayerShape`]).
        path: String,
        /// What went wrong there.
        cause: Box<NnError>,
    },
    /// A layer kind has no backward pass yet (training refuses the model).
    #[error("{0} layers cannot be trained yet (no backward pass)")]
    Untrainable(String),
    /// Training was asked to run on a backend that reuses weight masks
    /// (inference only: weights change every step and need a fresh mask).
    #[error(
        "training on a backend that reuses weight masks: weights change every step and need a fresh mask"
    )]
    WeightReuseInTraining,
    /// A training setting or input is invalid.
    #[error("training: {0}")]
    Training(String),
    /// A value does not fit the fixed-point encoding.
    #[error(transparent)]
    Ring(#[from] RingError),
    /// A two-party protocol failed (or the peer or a key source misbehaved).
    #[error(transparent)]
    Mpc(#[from] MpcError),
}

impl NnError {
    /// This error, located in the layer at `path` (an error already located
    /// in a nested layer keeps its inner, more precise path).
    pub fn at(self, path: &str) -> NnError {
        match self {
            e @ (NnError::InLayer { .. } | NnError::LayerShape { .. }) => e,
            e => NnError::InLayer {
                path: path.to_string(),
                cause: Box::new(e),
            },
        }
    }

    /// Who is at fault: the caller for a model, weights or inputs that do
    /// not fit; otherwise the protocol's classification ([`MpcError::fault`]).
    pub fn fault(&self) -> Fault {
        match self {
            NnError::Mpc(e) => e.fault(),
            NnError::InLayer { cause, .. } => cause.fault(),
            NnError::MissingTensor(_)
            | NnError::UnexpectedTensor(_)
            | NnError::TensorShape { .. }
            | NnError::LayerShape { .. }
            | NnError::InputSize { .. }
            | NnError::Overflow(_)
            | NnError::Safetensors(_)
            | NnError::Description(_)
            | NnError::Untrainable(_)
            | NnError::Training(_)
            | NnError::WeightReuseInTraining
            | NnError::Ring(_) => Fault::Caller,
        }
    }

    /// The innermost cause (under any [`NnError::InLayer`] wrappers).
    pub fn root(&self) -> &NnError {
        match self {
            NnError::InLayer { cause, .. } => cause.root(),
            e => e,
        }
    }
}

//! Typed errors of the ONNX import.

use ariann_nn::NnError;
use thiserror::Error;

/// Why an ONNX model cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum OnnxError {
    /// The bytes are not a protobuf `ModelProto`.
    #[error("not an ONNX model (protobuf decoding failed: {0})")]
    Decode(String),
    /// An operator the importer does not support.
    #[error(
        "unsupported ONNX operator {op_type} (node `{node}`{domain}); supported: {list} (see the ariann-onnx crate docs)",
        list = crate::SUPPORTED_OPS.join(", ")
    )]
    UnsupportedOp {
        /// The node's `op_type`.
        op_type: String,
        /// The node's name (or its position and output when it has none).
        node: String,
        /// `, domain d` for an operator outside the default domain, else empty.
        domain: String,
    },
    /// A supported operator used in a form the importer does not support
    /// (an attribute value, a shape, a pattern).
    #[error(
        "node `{node}` ({op_type}): {reason} (see the ariann-onnx crate docs for the supported forms)"
    )]
    UnsupportedUse {
        /// The node's `op_type`.
        op_type: String,
        /// The node's name.
        node: String,
        /// What is not supported.
        reason: String,
    },
    /// The graph's structure: inputs, outputs, dangling values, forks.
    #[error("ONNX graph: {0}")]
    Graph(String),
    /// An initializer or constant that cannot be read.
    #[error("ONNX tensor `{name}`: {reason}")]
    Tensor {
        /// Tensor name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A layer built from a node does not fit its input.
    #[error("node `{node}` ({op_type}) gives a layer that cannot take an input of shape {shape:?}")]
    Shape {
        /// The node's `op_type`.
        op_type: String,
        /// The node's name.
        node: String,
        /// The incoming activation shape (without batch).
        shape: Vec<usize>,
    },
    /// The model or weights are refused by `ariann-nn`.
    #[error(transparent)]
    Nn(#[from] NnError),
}

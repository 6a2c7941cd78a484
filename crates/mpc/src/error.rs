//! Typed errors of the two-party protocols.

use ariann_fss::FssError;
use ariann_ring::RingError;
use thiserror::Error;

/// Errors of gate generation and evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MpcError {
    /// The peer did not answer within the transport's deadline.
    #[error("peer did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// The peer is gone (its end of the transport was dropped or closed).
    #[error("peer disconnected")]
    PeerGone,
    /// The peer broke the link protocol (another protocol version or session,
    /// frames out of order, a message over the size limit).
    #[error("link protocol error: {0}")]
    Protocol(String),
    /// The link to the peer could not be set up (TLS refusal, handshake refused).
    #[error("cannot connect to the peer: {0}")]
    Connect(String),
    /// The peer sent a message of the wrong length for this opening.
    #[error("peer sent {got} bytes where {expected} were expected")]
    WrongLength {
        /// Bytes expected.
        expected: usize,
        /// Bytes received.
        got: usize,
    },
    /// An input or key has the wrong number of elements.
    #[error("size mismatch for {what}: expected {expected}, got {got}")]
    SizeMismatch {
        /// What was compared.
        what: &'static str,
        /// Expected count.
        expected: usize,
        /// Actual count.
        got: usize,
    },
    /// A key belongs to the other party.
    #[error("key of party {key} used by party {me}")]
    WrongParty {
        /// Party of the key.
        key: u8,
        /// Party evaluating.
        me: u8,
    },
    /// The next key bundle is not the one the gate about to run needs.
    #[error("key bundle mismatch: the gate needs {expected}, the next bundle is {got}")]
    BundleMismatch {
        /// The gate about to run.
        expected: String,
        /// The bundle found.
        got: String,
    },
    /// No key bundle is left for the gate about to run.
    #[error("keys exhausted at plan index {index}")]
    KeysExhausted {
        /// Plan index of the gate that found no key.
        index: u64,
    },
    /// A gate parameter is out of range.
    #[error("invalid gate parameter: {0}")]
    InvalidParameter(String),
    /// An error of the FSS layer.
    #[error(transparent)]
    Fss(#[from] FssError),
    /// An error of the ring layer.
    #[error(transparent)]
    Ring(#[from] RingError),
}

//! Typed errors of the two-party protocols.

use ariann_fss::FssError;
use ariann_ring::RingError;
use thiserror::Error;

/// Errors of gate generation and evaluation.
///
/// [`MpcError::fault`] tells who is at fault: the peer or the link, the key
/// material (a key file or stream), or the caller.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
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
    /// A serialized key bundle could not be decoded (garbled, truncated,
    /// inconsistent or of another format version).
    #[error("key bundle encoding: {0}")]
    Codec(String),
    /// The source of key bundles (a key file, a stream) failed at a plan index.
    #[error("key source failed at bundle {index}: {fault}")]
    KeySource {
        /// Plan index (= chunk of a key file) of the bundle that failed.
        index: u64,
        /// What went wrong.
        fault: SourceFault,
    },
    /// A plan is for another ring width than the keys requested.
    #[error("plan is for Z_2^{plan} but keys for Z_2^{requested} were requested")]
    RingMismatch {
        /// Ring bits of the plan.
        plan: u32,
        /// Ring bits requested.
        requested: u32,
    },
    /// A gate of a plan could not be generated.
    #[error("gate {index} ({kind}) of the plan: {cause}")]
    Gate {
        /// Plan index.
        index: u64,
        /// Its kind.
        kind: crate::table::GateKind,
        /// Cause (in the message, so not also chained as `source()`).
        cause: Box<MpcError>,
    },
    /// A `triple_reuse` gate ran without the weight opening of the gate it
    /// names (that gate did not run in this session, or ran without
    /// keeping it).
    #[error("no kept weight opening of gate {from} for a triple_reuse gate")]
    WeightOpeningMissing {
        /// Plan index of the gate whose opening was needed.
        from: u64,
    },
    /// A `triple_reuse` gate's right operand has another shape than the
    /// weight opening it reuses.
    #[error(
        "the weight opening kept from gate {from} has shape {kept:?}, the product's right operand {got:?}"
    )]
    WeightOpeningShape {
        /// Plan index of the gate whose opening is reused.
        from: u64,
        /// Shape of the kept opening.
        kept: Vec<usize>,
        /// Shape of the right operand.
        got: Vec<usize>,
    },
    /// A `triple_reuse` gate's right operand is not the weight share the
    /// reused opening was made with (changed weights need a fresh mask).
    #[error(
        "the weight share differs from the one gate {from} opened: changed weights need a fresh mask"
    )]
    WeightChanged {
        /// Plan index of the gate whose opening was to be reused.
        from: u64,
    },
    /// An error of the FSS layer.
    #[error(transparent)]
    Fss(#[from] FssError),
    /// An error of the ring layer.
    #[error(transparent)]
    Ring(#[from] RingError),
}

/// Why a [`PreprocessingSource`](crate::PreprocessingSource) reading
/// serialized bundles could not hand out the next one.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SourceFault {
    /// The integrity check failed: bit flips, or a chunk of another key
    /// file, party or session.
    #[error("checksum mismatch (corrupted, or a chunk of another key file, party or session)")]
    Checksum,
    /// The input ends inside this bundle (or its length field is corrupted
    /// and points past the end).
    #[error("truncated (the input ends inside this bundle, or its length field is corrupted)")]
    Truncated,
    /// The trailer after the last bundle is missing or wrong.
    #[error("bad trailer: {0}")]
    Trailer(String),
    /// The bytes passed the integrity check but do not decode.
    #[error("undecodable bundle: {0}")]
    Decode(String),
    /// Reading failed.
    #[error("I/O error: {0}")]
    Io(String),
    /// The use-once journal could not be updated, so the bundle is withheld.
    #[error("journal update failed: {0}")]
    Journal(String),
    /// The dealer's signature on the bytes does not verify under the pinned
    /// dealer key (tampered, or signed by another key), or is missing.
    #[error("bad dealer signature: {0}")]
    Signature(String),
}

/// Who is at fault for an error: what a caller branches on (an exit code,
/// a retry, a message to the operator).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The peer or the link: no answer in time, gone, a protocol violation,
    /// a refused connection or TLS handshake, a message of the wrong length.
    Link,
    /// The key material: a key file or stream that is damaged, undecodable,
    /// exhausted, or of another party, plan or gate.
    Keys,
    /// The caller: invalid gate parameters or inputs of the wrong size (a
    /// bug or a bad request; nothing the peer or a file did).
    Caller,
}

impl MpcError {
    /// Who is at fault (every variant is classified here, so a new variant
    /// cannot be left unclassified).
    pub fn fault(&self) -> Fault {
        match self {
            MpcError::Timeout(_)
            | MpcError::PeerGone
            | MpcError::Protocol(_)
            | MpcError::Connect(_)
            | MpcError::WrongLength { .. } => Fault::Link,
            MpcError::WrongParty { .. }
            | MpcError::BundleMismatch { .. }
            | MpcError::KeysExhausted { .. }
            | MpcError::Codec(_)
            | MpcError::KeySource { .. } => Fault::Keys,
            MpcError::Fss(FssError::IncompatibleKey { .. }) => Fault::Keys,
            MpcError::Gate { cause, .. } => cause.fault(),
            MpcError::SizeMismatch { .. }
            | MpcError::RingMismatch { .. }
            | MpcError::InvalidParameter(_)
            | MpcError::WeightOpeningMissing { .. }
            | MpcError::WeightOpeningShape { .. }
            | MpcError::WeightChanged { .. }
            | MpcError::Fss(_)
            | MpcError::Ring(_) => Fault::Caller,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Peer and link faults, key faults and caller misuse fall apart.
    #[test]
    fn faults_are_classified() {
        use std::time::Duration;
        for e in [
            MpcError::Timeout(Duration::from_secs(1)),
            MpcError::PeerGone,
            MpcError::Protocol("x".into()),
            MpcError::Connect("TLS".into()),
            MpcError::WrongLength {
                expected: 8,
                got: 7,
            },
        ] {
            assert_eq!(e.fault(), Fault::Link, "{e}");
        }
        for e in [
            MpcError::KeysExhausted { index: 3 },
            MpcError::Codec("garbled".into()),
            MpcError::WrongParty { key: 1, me: 0 },
            MpcError::KeySource {
                index: 2,
                fault: SourceFault::Checksum,
            },
            MpcError::Fss(FssError::IncompatibleKey { index: 0 }),
        ] {
            assert_eq!(e.fault(), Fault::Keys, "{e}");
        }
        for e in [
            MpcError::InvalidParameter("k = 0".into()),
            MpcError::SizeMismatch {
                what: "x",
                expected: 2,
                got: 3,
            },
            MpcError::Fss(FssError::InvalidWidth { n: 65 }),
        ] {
            assert_eq!(e.fault(), Fault::Caller, "{e}");
        }
    }
}

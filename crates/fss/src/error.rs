//! Typed errors of the FSS crate.

use thiserror::Error;

/// Errors of key generation and evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FssError {
    /// The input width is not in `1..=64`.
    #[error("input width n = {n} is outside 1..=64")]
    InvalidWidth {
        /// Requested width.
        n: u32,
    },
    /// The early-termination depth is larger than allowed.
    #[error("early termination depth nu = {nu} is invalid for n = {n} (must be <= n and <= {max})")]
    InvalidEarlyTermination {
        /// Requested depth.
        nu: u32,
        /// Input width.
        n: u32,
        /// Largest supported depth.
        max: u32,
    },
    /// Two slices that must have equal lengths do not.
    #[error("length mismatch for {what}: expected {expected}, got {got}")]
    LengthMismatch {
        /// What was being compared.
        what: &'static str,
        /// Expected length.
        expected: usize,
        /// Actual length.
        got: usize,
    },
    /// A key handed to `from_keys` has another scheme, party or shape than the batch.
    #[error(
        "key {index} does not match the batch (scheme, party, tree shape or correction-word count)"
    )]
    IncompatibleKey {
        /// Position of the offending key.
        index: usize,
    },
    /// A special point or an evaluation point does not fit in `n` bits.
    #[error("{what} at index {index} does not fit in n = {n} bits")]
    OutOfDomain {
        /// `"alpha"` or `"x"`.
        what: &'static str,
        /// Position in the batch.
        index: usize,
        /// Input width.
        n: u32,
    },
}

/// Errors of key decoding. Decoding never panics and never allocates more
/// than the input length justifies.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Fewer bytes than the fixed header.
    #[error("encoding too short: need at least {need} bytes, got {got}")]
    TooShort {
        /// Minimum length.
        need: usize,
        /// Actual length.
        got: usize,
    },
    /// The magic bytes are not `ARFS`.
    #[error("bad magic: not an ariann FSS key encoding")]
    BadMagic,
    /// A format version this build cannot read.
    #[error("unsupported format version {found} (this build reads version {supported})")]
    UnsupportedVersion {
        /// Version in the header.
        found: u16,
        /// Version this build reads.
        supported: u16,
    },
    /// The keys are of another scheme (DPF vs DCF).
    #[error("wrong scheme: expected {expected}, found tag {found}")]
    WrongKind {
        /// Expected scheme name.
        expected: &'static str,
        /// Tag in the header.
        found: u8,
    },
    /// The keys have another output group.
    #[error("wrong payload group: expected {expected} (tag {expected_tag}), found tag {found}")]
    WrongPayload {
        /// Expected group name.
        expected: &'static str,
        /// Expected tag.
        expected_tag: u8,
        /// Tag in the header.
        found: u8,
    },
    /// A header field is out of range.
    #[error("invalid header field: {0}")]
    InvalidHeader(String),
    /// The total length does not match the header (truncated or padded input).
    #[error("length mismatch: header announces {expected} bytes, input has {got}")]
    LengthMismatch {
        /// Length implied by the header.
        expected: u128,
        /// Actual length.
        got: usize,
    },
    /// The SHA-256 checksum does not match (corrupted input).
    #[error("checksum mismatch: the key encoding is corrupted")]
    ChecksumMismatch,
    /// Padding bits that must be zero are not.
    #[error("non-canonical encoding: {0}")]
    NonCanonical(&'static str),
}

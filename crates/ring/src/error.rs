//! Typed errors of the ring layer.

use thiserror::Error;

/// Errors of ring tensors, fixed-point encoding and convolution geometry.
///
/// Every fallible operation of the crate returns this type instead of
/// panicking, so shapes and values that come from a peer, a file or a user
/// can be checked with `?`.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum RingError {
    /// Two shapes that must agree do not (or a buffer's length does not
    /// match the number of elements of a shape).
    #[error("shape mismatch: expected {expected:?}, got {got:?}")]
    ShapeMismatch {
        /// The shape the operation required.
        expected: Vec<usize>,
        /// The shape it was given.
        got: Vec<usize>,
    },
    /// A real number does not fit the fixed-point encoding: it is NaN or
    /// infinite, or `|round(value * 2^frac_bits)| >= 2^(bits - 1)`.
    #[error(
        "value {value} is out of range for fixed point with {frac_bits} fractional bits in a {bits}-bit ring"
    )]
    OutOfRange {
        /// The offending value.
        value: f64,
        /// Fractional bits of the encoding.
        frac_bits: u32,
        /// Width of the ring.
        bits: u32,
    },
    /// A shape or a geometry is invalid on its own (wrong number of
    /// dimensions, zero stride, kernel larger than the padded input, element
    /// count overflowing `usize`, ...).
    #[error("invalid shape: {0}")]
    InvalidShape(String),
}

// `f64` is not `Eq`, so `PartialEq` is written by hand: the diagnostic copy
// of the rejected value is compared by its bit pattern, which is reflexive
// (a NaN error equals itself), so `Eq` is sound and errors of other crates
// that embed `RingError` can keep deriving `Eq`.
impl PartialEq for RingError {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (
                RingError::ShapeMismatch { expected, got },
                RingError::ShapeMismatch {
                    expected: e2,
                    got: g2,
                },
            ) => expected == e2 && got == g2,
            (
                RingError::OutOfRange {
                    value,
                    frac_bits,
                    bits,
                },
                RingError::OutOfRange {
                    value: v2,
                    frac_bits: f2,
                    bits: b2,
                },
            ) => value.to_bits() == v2.to_bits() && frac_bits == f2 && bits == b2,
            (RingError::InvalidShape(a), RingError::InvalidShape(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for RingError {}

#[cfg(test)]
mod tests {
    use super::RingError;

    #[test]
    fn nan_error_equals_itself() {
        let e = RingError::OutOfRange {
            value: f64::NAN,
            frac_bits: 16,
            bits: 64,
        };
        assert_eq!(e, e.clone());
        assert_ne!(
            e,
            RingError::OutOfRange {
                value: f64::INFINITY,
                frac_bits: 16,
                bits: 64
            }
        );
        assert_ne!(e, RingError::InvalidShape(String::new()));
    }
}

//! Linear operations with public values: local, no communication, no keys.
//!
//! Shares are additive, so adding shares, multiplying by a public constant
//! and summing windows (the numerator of average pooling) act on each share
//! alone; a public constant is added by party 0 only. After multiplying by a
//! public fixed-point constant the result carries the sum of the fractional
//! bits and needs a truncation gate.

use crate::error::MpcError;
use crate::gates::pool::PoolShape;
use ariann_fss::Party;
use ariann_ring::Ring;

/// This party's share of `x + c` for a public `c` (party 0 adds it).
pub fn add_public<R: Ring>(party: Party, x: &[R], c: &[R]) -> Result<Vec<R>, MpcError> {
    if x.len() != c.len() {
        return Err(MpcError::SizeMismatch {
            what: "public addend",
            expected: x.len(),
            got: c.len(),
        });
    }
    Ok(if party == Party::P0 {
        x.iter().zip(c).map(|(a, b)| a.wadd(*b)).collect()
    } else {
        x.to_vec()
    })
}

/// This party's share of `c * x` for a public scalar `c`.
pub fn mul_public<R: Ring>(x: &[R], c: R) -> Vec<R> {
    x.iter().map(|v| v.wmul(c)).collect()
}

/// Shares of the window sums of a pooling geometry (the numerator of average
/// pooling; padded positions contribute nothing), one per output position.
pub fn window_sums<R: Ring>(x: &[R], shape: &PoolShape) -> Result<Vec<R>, MpcError> {
    if x.len() != shape.input_len() {
        return Err(MpcError::SizeMismatch {
            what: "pooling input",
            expected: shape.input_len(),
            got: x.len(),
        });
    }
    Ok(shape
        .windows()?
        .iter()
        .map(|w| w.iter().fold(R::ZERO, |acc, i| acc.wadd(x[*i])))
        .collect())
}

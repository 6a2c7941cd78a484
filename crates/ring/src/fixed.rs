//! Fixed-point encoding of real numbers into the ring.
//!
//! A real `x` is encoded as the ring element `round(x * 2^f) mod 2^BITS`
//! (two's complement) and decoded as the signed interpretation divided by
//! `2^f`, where `f` is the number of fractional bits.

use crate::error::RingError;
use crate::ring::Ring;
use crate::tensor::RingTensor;
use ndarray::{ArrayD, IxDyn};

/// `2^e` as an `f64`, exactly (built from the exponent bits, so no libm
/// rounding); `+inf` past the largest finite power.
fn pow2(e: u32) -> f64 {
    if e <= 1023 {
        f64::from_bits((1023 + u64::from(e)) << 52)
    } else {
        f64::INFINITY
    }
}

/// A binary fixed-point encoding with `frac_bits` fractional bits.
///
/// Encoding rounds to nearest (ties away from zero), never floors: on the
/// Falcon fixture, floor encoding at 13 fractional bits gives logit errors of
/// 0.16 and flips a prediction where rounding gives 4e-3 (DESIGN.md,
/// "Fixed-point lessons").
///
/// `frac_bits` should leave room for the integer part *and* for the double
/// scale of a product before truncation: with `f` fractional bits in
/// `Z_2^BITS`, encoded values must satisfy `|x| < 2^(BITS-1-f)` and products
/// of two encoded values `|x*y| < 2^(BITS-1-2f)` until they are truncated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedPoint {
    /// Number of fractional bits `f`: the encoding of `x` is `round(x * 2^f)`.
    pub frac_bits: u32,
}

impl FixedPoint {
    /// The default encoding for `Z_2^64`, the ring the project computes in:
    /// 16 fractional bits.
    ///
    /// Why 16: the resolution `2^-16 ~ 1.5e-5` is finer than ARIANN's 3-4
    /// decimal digits and than the 13 bits at which rounding already kept
    /// LeNet/Falcon logit errors at 4e-3; and it leaves a large range:
    /// values up to `2^47` (fresh encodings) and products up to `2^31`
    /// before truncation (the double-scale product carries 32 fractional
    /// bits), far above the logits (~35) and activations of the supported
    /// networks, with slack for sums of thousands of products in a matmul
    /// and for share-local truncation, whose failure probability grows with
    /// `|x| / 2^BITS`. See [`default_for`](Self::default_for) for `Z_2^32`.
    pub const DEFAULT: FixedPoint = FixedPoint { frac_bits: 16 };

    /// The default for `Z_2^32`: 12 fractional bits. In 32 bits every
    /// fractional bit is paid twice in the range of a product before
    /// truncation, which carries `2f` fractional bits: `|x*y| < 2^(31-2f)`,
    /// i.e. 32 at `f = 13` (where LeNet logits of 34.5 wrapped, DESIGN.md)
    /// and 128 at `f = 12`. Prefer `Z_2^64`; 12 bits is the most precision
    /// that keeps LeNet-sized pre-truncation outputs in a 32-bit ring.
    pub const DEFAULT_32: FixedPoint = FixedPoint { frac_bits: 12 };

    /// An encoding with `frac_bits` fractional bits. Useful values are
    /// `frac_bits < BITS - 1` of the ring used; larger ones make every
    /// nonzero encoding overflow.
    pub const fn new(frac_bits: u32) -> Self {
        FixedPoint { frac_bits }
    }

    /// The default encoding for the ring `R`: [`DEFAULT`](Self::DEFAULT)
    /// (16 bits) for `Z_2^64`, [`DEFAULT_32`](Self::DEFAULT_32) (12 bits)
    /// for `Z_2^32`.
    pub fn default_for<R: Ring>() -> Self {
        if R::BITS >= 64 {
            Self::DEFAULT
        } else {
            Self::DEFAULT_32
        }
    }

    /// `round(x * 2^f)` (to nearest, ties away from zero) as a ring element.
    ///
    /// Errors with [`RingError::OutOfRange`] if `x` is NaN or infinite or
    /// `|round(x * 2^f)| >= 2^(BITS-1)` (the range is symmetric, so the
    /// negation of every encoding is also an encoding).
    pub fn encode<R: Ring>(&self, x: f64) -> Result<R, RingError> {
        let err = || RingError::OutOfRange {
            value: x,
            frac_bits: self.frac_bits,
            bits: R::BITS,
        };
        if !x.is_finite() {
            return Err(err());
        }
        // Scaling by a power of two is exact (or overflows to inf, caught
        // below), so the only rounding is the intended one.
        let y = (x * pow2(self.frac_bits)).round();
        // Checked after rounding: in 32 bits, 2^31 - 0.25 rounds up out of
        // range.
        // NaN only arises as 0 * inf for an absurd `frac_bits`.
        if y.is_nan() || y.abs() >= pow2(R::BITS - 1) {
            return Err(err());
        }
        // |y| < 2^(BITS-1) <= 2^63 and y is an integer: the cast is exact.
        Ok(R::from_i64(y as i64))
    }

    /// The signed interpretation of `x` divided by `2^f`.
    pub fn decode<R: Ring>(&self, x: R) -> f64 {
        // Exact for |x| < 2^53; beyond, the nearest double.
        x.to_i64() as f64 / pow2(self.frac_bits)
    }

    /// [`encode`](Self::encode) of every element; the first out-of-range
    /// element's error otherwise.
    pub fn encode_tensor<R: Ring>(&self, x: &ArrayD<f64>) -> Result<RingTensor<R>, RingError> {
        let data = x
            .iter()
            .map(|&v| self.encode::<R>(v))
            .collect::<Result<Vec<R>, RingError>>()?;
        RingTensor::from_vec(x.shape(), data)
    }

    /// [`decode`](Self::decode) of every element.
    pub fn decode_tensor<R: Ring>(&self, x: &RingTensor<R>) -> ArrayD<f64> {
        let data: Vec<f64> = x.as_slice().iter().map(|&v| self.decode(v)).collect();
        ArrayD::from_shape_vec(IxDyn(x.shape()), data)
            .expect("one decoded value per element of a valid tensor")
    }

    /// The ring element `2^f` (`0` if `f >= BITS`): multiplying an encoding
    /// by it adds `f` fractional bits.
    pub fn scale<R: Ring>(&self) -> R {
        R::from_u64(1u64.checked_shl(self.frac_bits).unwrap_or(0))
    }
}

impl Default for FixedPoint {
    /// [`FixedPoint::DEFAULT`].
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pow2_is_exact() {
        assert_eq!(pow2(0), 1.0);
        assert_eq!(pow2(16), 65536.0);
        assert_eq!(pow2(63), 9_223_372_036_854_775_808.0);
        assert_eq!(pow2(1023), 2f64.powi(1023));
        assert!(pow2(1024).is_infinite());
    }

    #[test]
    fn defaults() {
        assert_eq!(FixedPoint::default_for::<u64>().frac_bits, 16);
        assert_eq!(FixedPoint::default_for::<u32>().frac_bits, 12);
        assert_eq!(FixedPoint::default(), FixedPoint::DEFAULT);
        assert_eq!(FixedPoint::new(16).scale::<u64>(), 65536);
        assert_eq!(FixedPoint::new(32).scale::<u32>(), 0);
        assert_eq!(FixedPoint::new(70).scale::<u64>(), 0);
    }

    #[test]
    fn huge_frac_bits_errors_instead_of_panicking() {
        let fp = FixedPoint::new(5000);
        assert!(fp.encode::<u64>(1.0).is_err());
        assert!(fp.encode::<u64>(0.0).is_err());
        assert_eq!(fp.decode::<u64>(1), 0.0);
    }
}

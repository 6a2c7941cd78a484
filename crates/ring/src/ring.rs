//! The rings `Z_2^32` and `Z_2^64`: unsigned machine words with wrapping
//! arithmetic.

use core::fmt::Debug;
use core::hash::Hash;
use zeroize::Zeroize;

/// An element of the ring `Z_2^BITS` (`BITS` is 32 or 64), stored as an
/// unsigned machine word; every operation wraps modulo `2^BITS`.
///
/// Signed values are represented in two's complement: `to_i64` reads the
/// top bit as the sign (the *signed interpretation* fixed-point decoding and
/// comparisons use), `from_i64` reduces modulo `2^BITS`.
///
/// The methods are prefixed (`wadd`, `sar`, ...) so they never collide with
/// the inherent methods of `u32`/`u64`. `shr` shares its name with
/// [`core::ops::Shr::shr`]; when both traits are in scope, call it as
/// `Ring::shr(x, k)`.
pub trait Ring:
    Copy + Default + PartialEq + Eq + PartialOrd + Ord + Hash + Debug + Send + Sync + 'static + Zeroize
{
    /// Width of the ring in bits: 32 or 64.
    const BITS: u32;
    /// The additive identity.
    const ZERO: Self;
    /// The multiplicative identity.
    const ONE: Self;
    /// `self + o mod 2^BITS`.
    fn wadd(self, o: Self) -> Self;
    /// `self - o mod 2^BITS`.
    fn wsub(self, o: Self) -> Self;
    /// `self * o mod 2^BITS`.
    fn wmul(self, o: Self) -> Self;
    /// `-self mod 2^BITS`.
    fn wneg(self) -> Self;
    /// `x mod 2^BITS` (keeps the low `BITS` bits).
    fn from_u64(x: u64) -> Self;
    /// The element as an integer in `0..2^BITS` (zero-extending).
    fn to_u64(self) -> u64;
    /// `x mod 2^BITS` for a signed `x` (two's complement, truncating).
    fn from_i64(x: i64) -> Self;
    /// The signed interpretation, in `-2^(BITS-1)..2^(BITS-1)`
    /// (sign-extending from bit `BITS - 1`).
    fn to_i64(self) -> i64;
    /// A uniformly random element: one `next_u32` (32-bit ring) or one
    /// `next_u64` (64-bit ring) of `rng`.
    fn random<G: rand::Rng + ?Sized>(rng: &mut G) -> Self;
    /// Arithmetic (sign-preserving) right shift by `k < BITS` of the signed
    /// interpretation. For `k >= BITS` the result is all sign bits
    /// (`0` or `-1`), the limit of shifting further.
    fn sar(self, k: u32) -> Self;
    /// Logical right shift by `k < BITS`. For `k >= BITS` the result is `0`.
    fn shr(self, k: u32) -> Self;
}

macro_rules! impl_ring {
    ($u:ty, $i:ty, $next:ident) => {
        impl Ring for $u {
            const BITS: u32 = <$u>::BITS;
            const ZERO: Self = 0;
            const ONE: Self = 1;

            #[inline(always)]
            fn wadd(self, o: Self) -> Self {
                self.wrapping_add(o)
            }

            #[inline(always)]
            fn wsub(self, o: Self) -> Self {
                self.wrapping_sub(o)
            }

            #[inline(always)]
            fn wmul(self, o: Self) -> Self {
                self.wrapping_mul(o)
            }

            #[inline(always)]
            fn wneg(self) -> Self {
                self.wrapping_neg()
            }

            #[inline(always)]
            fn from_u64(x: u64) -> Self {
                // Truncation is the documented semantics (reduction mod 2^BITS).
                x as $u
            }

            #[inline(always)]
            fn to_u64(self) -> u64 {
                u64::from(self)
            }

            #[inline(always)]
            fn from_i64(x: i64) -> Self {
                // Two's complement truncation = reduction mod 2^BITS.
                x as $u
            }

            #[inline(always)]
            fn to_i64(self) -> i64 {
                // Reinterpret as signed of the same width, then sign-extend.
                i64::from(self as $i)
            }

            #[inline]
            fn random<G: rand::Rng + ?Sized>(rng: &mut G) -> Self {
                rng.$next()
            }

            #[inline(always)]
            fn sar(self, k: u32) -> Self {
                let s = self as $i;
                // `k >= BITS` saturates to the sign, the limit of the shift.
                (if k < Self::BITS {
                    s >> k
                } else {
                    s >> (Self::BITS - 1)
                }) as $u
            }

            #[inline(always)]
            fn shr(self, k: u32) -> Self {
                self.checked_shr(k).unwrap_or(0)
            }
        }
    };
}

impl_ring!(u32, i32, next_u32);
impl_ring!(u64, i64, next_u64);

#[cfg(test)]
mod tests {
    use super::Ring;

    #[test]
    fn constants() {
        assert_eq!(<u32 as Ring>::BITS, 32);
        assert_eq!(<u64 as Ring>::BITS, 64);
        assert_eq!(<u64 as Ring>::ZERO.wsub(<u64 as Ring>::ONE), u64::MAX);
    }

    #[test]
    fn shifts_saturate_past_width() {
        assert_eq!(0x8000_0000u32.sar(40), u32::MAX);
        assert_eq!(0x7fff_ffffu32.sar(32), 0);
        assert_eq!(Ring::shr(u64::MAX, 64), 0);
        assert_eq!(Ring::shr(u64::MAX, 63), 1);
        assert_eq!(u64::MAX.sar(63), u64::MAX);
    }
}

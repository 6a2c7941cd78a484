//! Output groups of the FSS schemes (the "payload" beta and the output shares).
//!
//! Every scheme here outputs *additive* shares in a finite abelian group `G`:
//! `eval(0, k0, x) + eval(1, k1, x) = f(x)` in `G`. The groups provided are
//! `Z_2` ([`Z2`], XOR shares), `Z_2^32` (`u32`), `Z_2^64` (`u64`) and the pair
//! `(Z_2^64)^2` (`[u64; 2]`, used by the one-round ReLU gate which needs two
//! output words from a single comparison key).
//!
//! A group element can be read out of a pseudorandom 128-bit block ("Convert"
//! in Boyle et al. 2021): the block holds `128 / BITS` elements side by side,
//! lowest bits first.

use core::fmt::Debug;
use zeroize::Zeroize;

/// An element of `Z_2`: XOR-shared bit.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Zeroize)]
pub struct Z2(pub bool);

impl Debug for Z2 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Z2({})", u8::from(self.0))
    }
}

impl From<bool> for Z2 {
    fn from(b: bool) -> Self {
        Z2(b)
    }
}

/// A finite abelian group usable as FSS output (payload) group.
///
/// Implementations must be wrapping (modular) so that no operation can panic.
pub trait Payload:
    Copy + Default + PartialEq + Eq + Debug + Send + Sync + Zeroize + 'static
{
    /// Bit length of one element: 1, 32, 64 or 128.
    const BITS: u32;
    /// Tag stored in serialized key headers.
    const TAG: u8;
    /// Human-readable name of the group.
    const NAME: &'static str;

    /// Group operation.
    fn add(self, rhs: Self) -> Self;
    /// Inverse of the group operation.
    fn sub(self, rhs: Self) -> Self;
    /// Additive inverse.
    fn neg(self) -> Self;
    /// Element number `index` of the `128 / BITS` elements packed in `block`
    /// (lowest bits first). `index` is reduced modulo `128 / BITS`.
    fn from_block(block: u128, index: usize) -> Self;
    /// Writes `self` at slot `index` of `block` (inverse of [`Payload::from_block`]).
    fn put_in_block(self, block: &mut u128, index: usize);
    /// `-self` if `negate`, else `self` (the `(-1)^b` factor of the schemes).
    /// Branch-free: the control bits are secret and unpredictable.
    fn cond_neg(self, negate: bool) -> Self;
    /// `self` if `bit`, else zero. Branch-free.
    fn select(self, bit: bool) -> Self;
}

/// Number of group elements that fit in one 128-bit block.
pub(crate) const fn per_block<P: Payload>() -> usize {
    (128 / P::BITS) as usize
}

impl Payload for Z2 {
    const BITS: u32 = 1;
    const TAG: u8 = 1;
    const NAME: &'static str = "Z_2";
    #[inline(always)]
    fn add(self, rhs: Self) -> Self {
        Z2(self.0 ^ rhs.0)
    }
    #[inline(always)]
    fn sub(self, rhs: Self) -> Self {
        Z2(self.0 ^ rhs.0)
    }
    #[inline(always)]
    fn neg(self) -> Self {
        self
    }
    #[inline(always)]
    fn cond_neg(self, _negate: bool) -> Self {
        self
    }
    #[inline(always)]
    fn select(self, bit: bool) -> Self {
        Z2(self.0 & bit)
    }
    #[inline(always)]
    fn from_block(block: u128, index: usize) -> Self {
        Z2((block >> (index % 128)) & 1 == 1)
    }
    #[inline(always)]
    fn put_in_block(self, block: &mut u128, index: usize) {
        let i = index % 128;
        *block = (*block & !(1u128 << i)) | (u128::from(self.0) << i);
    }
}

impl Payload for u32 {
    const BITS: u32 = 32;
    const TAG: u8 = 32;
    const NAME: &'static str = "Z_2^32";
    #[inline(always)]
    fn add(self, rhs: Self) -> Self {
        self.wrapping_add(rhs)
    }
    #[inline(always)]
    fn sub(self, rhs: Self) -> Self {
        self.wrapping_sub(rhs)
    }
    #[inline(always)]
    fn neg(self) -> Self {
        self.wrapping_neg()
    }
    #[inline(always)]
    fn cond_neg(self, negate: bool) -> Self {
        let m = u32::from(negate).wrapping_neg();
        (self ^ m).wrapping_sub(m)
    }
    #[inline(always)]
    fn select(self, bit: bool) -> Self {
        self & u32::from(bit).wrapping_neg()
    }
    #[inline(always)]
    fn from_block(block: u128, index: usize) -> Self {
        (block >> (32 * (index % 4))) as u32
    }
    #[inline(always)]
    fn put_in_block(self, block: &mut u128, index: usize) {
        let sh = 32 * (index % 4);
        *block = (*block & !(u128::from(u32::MAX) << sh)) | (u128::from(self) << sh);
    }
}

impl Payload for u64 {
    const BITS: u32 = 64;
    const TAG: u8 = 64;
    const NAME: &'static str = "Z_2^64";
    #[inline(always)]
    fn add(self, rhs: Self) -> Self {
        self.wrapping_add(rhs)
    }
    #[inline(always)]
    fn sub(self, rhs: Self) -> Self {
        self.wrapping_sub(rhs)
    }
    #[inline(always)]
    fn neg(self) -> Self {
        self.wrapping_neg()
    }
    #[inline(always)]
    fn cond_neg(self, negate: bool) -> Self {
        let m = u64::from(negate).wrapping_neg();
        (self ^ m).wrapping_sub(m)
    }
    #[inline(always)]
    fn select(self, bit: bool) -> Self {
        self & u64::from(bit).wrapping_neg()
    }
    #[inline(always)]
    fn from_block(block: u128, index: usize) -> Self {
        (block >> (64 * (index % 2))) as u64
    }
    #[inline(always)]
    fn put_in_block(self, block: &mut u128, index: usize) {
        let sh = 64 * (index % 2);
        *block = (*block & !(u128::from(u64::MAX) << sh)) | (u128::from(self) << sh);
    }
}

impl Payload for [u64; 2] {
    const BITS: u32 = 128;
    const TAG: u8 = 128;
    const NAME: &'static str = "(Z_2^64)^2";
    #[inline(always)]
    fn add(self, rhs: Self) -> Self {
        [self[0].wrapping_add(rhs[0]), self[1].wrapping_add(rhs[1])]
    }
    #[inline(always)]
    fn sub(self, rhs: Self) -> Self {
        [self[0].wrapping_sub(rhs[0]), self[1].wrapping_sub(rhs[1])]
    }
    #[inline(always)]
    fn neg(self) -> Self {
        [self[0].wrapping_neg(), self[1].wrapping_neg()]
    }
    #[inline(always)]
    fn cond_neg(self, negate: bool) -> Self {
        [self[0].cond_neg(negate), self[1].cond_neg(negate)]
    }
    #[inline(always)]
    fn select(self, bit: bool) -> Self {
        [self[0].select(bit), self[1].select(bit)]
    }
    #[inline(always)]
    fn from_block(block: u128, _index: usize) -> Self {
        [block as u64, (block >> 64) as u64]
    }
    #[inline(always)]
    fn put_in_block(self, block: &mut u128, _index: usize) {
        *block = u128::from(self[0]) | (u128::from(self[1]) << 64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_roundtrip<P: Payload>(vals: &[P]) {
        let mut b = 0u128;
        for (i, v) in vals.iter().enumerate() {
            v.put_in_block(&mut b, i);
        }
        for (i, v) in vals.iter().enumerate() {
            assert_eq!(P::from_block(b, i), *v);
        }
    }

    #[test]
    fn blocks_roundtrip() {
        block_roundtrip(&[Z2(true), Z2(false), Z2(true)]);
        block_roundtrip(&[1u32, u32::MAX, 7, 0x8000_0000]);
        block_roundtrip(&[u64::MAX, 3u64]);
        block_roundtrip(&[[5u64, u64::MAX]]);
    }

    #[test]
    fn group_laws() {
        let a = [3u64, u64::MAX];
        let b = [u64::MAX, 9];
        assert_eq!(a.add(b).sub(b), a);
        assert_eq!(a.add(a.neg()), [0, 0]);
        assert_eq!(5u32.cond_neg(true), 5u32.wrapping_neg());
        assert_eq!(Z2(true).add(Z2(true)), Z2(false));
        assert_eq!(7u64.select(false), 0);
        assert_eq!(7u64.select(true), 7);
        assert_eq!(7u32.select(true), 7);
        assert_eq!(7u64.cond_neg(true), 7u64.wrapping_neg());
        assert_eq!(7u64.cond_neg(false), 7);
        assert_eq!([1u64, 2].cond_neg(true), [u64::MAX, u64::MAX - 1]);
        assert_eq!(Z2(true).select(false), Z2(false));
    }
}

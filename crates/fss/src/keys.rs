//! Parameters and in-memory layout of tree-based FSS keys (shared by DPF and DCF).

use crate::error::FssError;
use crate::payload::{Payload, per_block};
use std::sync::Arc;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Which of the two evaluating parties holds a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Party {
    /// Party 0 (starts with control bit 0, outputs `+share`).
    P0,
    /// Party 1 (starts with control bit 1, outputs `-share`).
    P1,
}

impl Party {
    /// 0 or 1.
    pub fn index(self) -> u8 {
        match self {
            Party::P0 => 0,
            Party::P1 => 1,
        }
    }
    /// The party with index `i`, if `i` is 0 or 1.
    pub fn from_index(i: u8) -> Option<Party> {
        match i {
            0 => Some(Party::P0),
            1 => Some(Party::P1),
            _ => None,
        }
    }
    /// True for party 1 (whose outputs carry the factor `-1`).
    #[inline(always)]
    pub(crate) fn is_one(self) -> bool {
        matches!(self, Party::P1)
    }
}

/// The scheme a key belongs to (stored in encodings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Distributed point function: `f(x) = beta if x == alpha else 0`.
    Dpf,
    /// Distributed comparison function: `f(x) = beta if x < alpha else 0`.
    Dcf,
}

impl Kind {
    pub(crate) fn tag(self) -> u8 {
        match self {
            Kind::Dpf => 1,
            Kind::Dcf => 2,
        }
    }
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Dpf => "DPF",
            Kind::Dcf => "DCF",
        }
    }
}

/// Largest supported early-termination depth (a leaf of `2^12` elements).
pub const MAX_NU: u32 = 12;

/// Shape of a key tree: input width `n` and early-termination depth `nu`.
///
/// The tree has `n - nu` levels of seed expansion; each leaf covers the last
/// `nu` input bits with a correction vector of `2^nu` group elements
/// (Boyle-Gilboa-Ishai 2016, section 3.2.1 "early termination").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TreeParams {
    n: u8,
    nu: u8,
}

impl TreeParams {
    /// Parameters for `n`-bit inputs with the size-optimal early termination for
    /// payload `P`: the leaf holds one AES block of outputs (`2^nu * BITS <= 128`),
    /// i.e. `nu = 7` for `Z_2`, 2 for `Z_2^32`, 1 for `Z_2^64`, 0 for pairs.
    pub fn new<P: Payload>(n: u32) -> Result<Self, FssError> {
        let nu = (per_block::<P>() as u32).trailing_zeros().min(n);
        Self::with_early_termination::<P>(n, nu)
    }

    /// Parameters without early termination (`nu = 0`: a full binary tree).
    pub fn full_tree(n: u32) -> Result<Self, FssError> {
        Self::check_n(n)?;
        Ok(Self { n: n as u8, nu: 0 })
    }

    /// Parameters with an explicit early-termination depth `nu <= min(n, 12)`.
    pub fn with_early_termination<P: Payload>(n: u32, nu: u32) -> Result<Self, FssError> {
        Self::check_n(n)?;
        if nu > n || nu > MAX_NU {
            return Err(FssError::InvalidEarlyTermination { nu, n, max: MAX_NU });
        }
        Ok(Self {
            n: n as u8,
            nu: nu as u8,
        })
    }

    fn check_n(n: u32) -> Result<(), FssError> {
        if (1..=64).contains(&n) {
            Ok(())
        } else {
            Err(FssError::InvalidWidth { n })
        }
    }

    pub(crate) fn from_raw(n: u8, nu: u8) -> Option<Self> {
        if (1..=64).contains(&n) && nu <= n && u32::from(nu) <= MAX_NU {
            Some(Self { n, nu })
        } else {
            None
        }
    }

    /// Input width in bits.
    pub fn n(&self) -> u32 {
        u32::from(self.n)
    }
    /// Early-termination depth.
    pub fn nu(&self) -> u32 {
        u32::from(self.nu)
    }
    /// Number of seed-expansion levels, `n - nu`.
    pub fn levels(&self) -> usize {
        usize::from(self.n - self.nu)
    }
    /// Number of group elements in a leaf, `2^nu`.
    pub fn leaf_len(&self) -> usize {
        1usize << self.nu
    }
    /// Number of 128-bit blocks that hold a leaf of payload `P`.
    pub fn leaf_blocks<P: Payload>(&self) -> usize {
        self.leaf_len().div_ceil(per_block::<P>())
    }
    /// `2^n - 1` (all ones in the low `n` bits).
    pub fn domain_mask(&self) -> u64 {
        if self.n == 64 {
            u64::MAX
        } else {
            (1u64 << self.n) - 1
        }
    }
    /// Bytes of one serialized key of scheme `kind` with payload `P`:
    ///
    /// `16 + 16 L + ceil(L/8) + [DCF and BITS > 1] L * BITS/8 + ceil(2^nu * BITS / 8)`
    ///
    /// with `L = n - nu` levels: the root seed, one 128-bit seed correction word
    /// per level (its low bit carries the left control-bit correction and, for
    /// a one-bit DCF, bit 1 carries the payload correction), the right
    /// control-bit corrections packed, the per-level payload corrections of a
    /// wider DCF, and the leaf correction vector.
    pub fn key_bytes<P: Payload>(&self, kind: Kind) -> usize {
        let l = self.levels();
        let v = if kind == Kind::Dcf && P::BITS > 1 {
            l * (P::BITS as usize / 8)
        } else {
            0
        };
        16 + 16 * l + l.div_ceil(8) + v + (self.leaf_len() * P::BITS as usize).div_ceil(8)
    }

    /// Mask clearing the seed bits that carry metadata: bit 0 is the control
    /// bit, and for a one-bit DCF bit 1 is the per-level payload bit.
    #[inline(always)]
    pub(crate) fn seed_mask<P: Payload>(kind: Kind) -> u128 {
        if kind == Kind::Dcf && P::BITS == 1 {
            !3
        } else {
            !1
        }
    }
}

/// Keys per layout group of [`TreeKeys`]: within a group the per-level
/// correction words are stored level-major, so the fast evaluator, which walks
/// a group of keys level by level, reads memory sequentially.
pub(crate) const GROUP: usize = 64;

/// Position of the level-`level` correction word of key `key` in a batch of
/// `len` keys with `levels` levels: groups of [`GROUP`] keys one after the
/// other; inside a group of `c` keys, entry `level * c + (key - group start)`.
#[inline(always)]
pub(crate) fn cw_index(key: usize, level: usize, len: usize, levels: usize) -> usize {
    let base = key - key % GROUP;
    let c = GROUP.min(len - base);
    base * levels + level * c + (key - base)
}

/// The correction words of a batch of keys, shared by both parties' batches
/// (they are identical; only the root seeds differ). Struct-of-arrays; the
/// per-level words in the grouped layout of [`cw_index`]. Wiped on drop
/// ([`wipe`]).
pub(crate) struct Corrections<P: Payload> {
    /// `len * levels` seed correction words (metadata bits cleared).
    pub(crate) cw_seed: Vec<u128>,
    /// `len * levels` control-bit corrections: bit 0 left, bit 1 right.
    pub(crate) cw_t: Vec<u8>,
    /// `len * levels` payload corrections (DCF only, else empty).
    pub(crate) cw_v: Vec<P>,
    /// `len * leaf_blocks` leaf correction blocks (key-major).
    pub(crate) leaf: Vec<u128>,
}

/// Overwrites `v` with zeros (every payload's and word's default is all
/// zero bits) at memory speed: `fill` is a `memset`, and
/// [`std::hint::black_box`] keeps the compiler from treating the stores as
/// dead. `zeroize`'s derive wrote one volatile store per element, which
/// `perf` put at 2-4 % of a training step's and of the key path's CPU for
/// the correction words alone. Best effort, like `zeroize`: copies the
/// allocator or the kernel made are not reached.
fn wipe<T: Copy + Default>(v: &mut [T]) {
    v.fill(T::default());
    std::hint::black_box(&*v);
}

impl<P: Payload> Zeroize for Corrections<P> {
    fn zeroize(&mut self) {
        wipe(&mut self.cw_seed);
        wipe(&mut self.cw_t);
        wipe(&mut self.cw_v);
        wipe(&mut self.leaf);
    }
}

impl<P: Payload> Drop for Corrections<P> {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl<P: Payload> ZeroizeOnDrop for Corrections<P> {}

impl<P: Payload> Corrections<P> {
    pub(crate) fn empty(kind: Kind, params: TreeParams, len: usize) -> Self {
        let l = params.levels();
        Self {
            cw_seed: vec![0; len * l],
            cw_t: vec![0; len * l],
            cw_v: if kind == Kind::Dcf {
                vec![P::default(); len * l]
            } else {
                Vec::new()
            },
            leaf: vec![0; len * params.leaf_blocks::<P>()],
        }
    }
}

/// A batch of keys of one party: root seeds plus the (shared) corrections.
///
/// Secret material: no `Debug` that prints it; zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct TreeKeys<P: Payload> {
    #[zeroize(skip)]
    pub(crate) kind: Kind,
    #[zeroize(skip)]
    pub(crate) party: Party,
    #[zeroize(skip)]
    pub(crate) params: TreeParams,
    /// Root seed of each key.
    pub(crate) seeds: Vec<u128>,
    /// The root key the seeds were expanded from
    /// ([`crate::prg::ctr_blocks`]), if they were: an encoding then
    /// carries it instead of the seeds (format 3).
    pub(crate) root_key: Option<u128>,
    /// Correction words (zeroized when the last batch sharing them drops).
    #[zeroize(skip)]
    pub(crate) cw: Arc<Corrections<P>>,
}

impl<P: Payload> TreeKeys<P> {
    pub(crate) fn len(&self) -> usize {
        self.seeds.len()
    }

    /// The key at position `i` as a standalone [`Key`].
    pub(crate) fn key(&self, i: usize) -> Option<Key<P>> {
        if i >= self.len() {
            return None;
        }
        let l = self.params.levels();
        let lb = self.params.leaf_blocks::<P>();
        let pb = per_block::<P>();
        let len = self.len();
        let at = |lvl: usize| cw_index(i, lvl, len, l);
        let cw_t = (0..l)
            .map(|lvl| {
                let b = self.cw.cw_t[at(lvl)];
                [b & 1 == 1, b & 2 == 2]
            })
            .collect();
        let leaf_blocks = &self.cw.leaf[i * lb..(i + 1) * lb];
        Some(Key {
            kind: self.kind,
            party: self.party,
            params: self.params,
            seed: self.seeds[i],
            cw_seed: (0..l).map(|lvl| self.cw.cw_seed[at(lvl)]).collect(),
            cw_t,
            cw_v: if self.kind == Kind::Dcf {
                (0..l).map(|lvl| self.cw.cw_v[at(lvl)]).collect()
            } else {
                Vec::new()
            },
            leaf: (0..self.params.leaf_len())
                .map(|j| P::from_block(leaf_blocks[j / pb], j % pb))
                .collect(),
        })
    }

    /// Packs standalone keys (all of this kind, party and shape) into a batch.
    pub(crate) fn from_keys(
        kind: Kind,
        party: Party,
        params: TreeParams,
        keys: &[Key<P>],
    ) -> Result<Self, FssError> {
        let mut cw = Corrections::<P>::empty(kind, params, keys.len());
        let mut seeds = vec![0u128; keys.len()];
        let l = params.levels();
        let lb = params.leaf_blocks::<P>();
        let pb = per_block::<P>();
        for (i, k) in keys.iter().enumerate() {
            if k.kind != kind
                || k.party != party
                || k.params != params
                || k.cw_seed.len() != l
                || k.cw_t.len() != l
                || k.leaf.len() != params.leaf_len()
                || k.cw_v.len() != if kind == Kind::Dcf { l } else { 0 }
            {
                return Err(FssError::IncompatibleKey { index: i });
            }
            seeds[i] = k.seed;
            for lvl in 0..l {
                let at = cw_index(i, lvl, keys.len(), l);
                cw.cw_seed[at] = k.cw_seed[lvl];
                cw.cw_t[at] = u8::from(k.cw_t[lvl][0]) | (u8::from(k.cw_t[lvl][1]) << 1);
                if kind == Kind::Dcf {
                    cw.cw_v[at] = k.cw_v[lvl];
                }
            }
            for (j, v) in k.leaf.iter().enumerate() {
                v.put_in_block(&mut cw.leaf[i * lb + j / pb], j % pb);
            }
        }
        Ok(Self {
            kind,
            party,
            params,
            seeds,
            root_key: None,
            cw: Arc::new(cw),
        })
    }
}

/// One standalone key, in the plain layout of the papers. Used by the scalar
/// reference implementation ([`crate::reference`]) and to inspect batches.
///
/// Secret material: `Debug` prints only the shape; zeroized on drop.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Key<P: Payload> {
    /// Scheme.
    #[zeroize(skip)]
    pub kind: Kind,
    /// Holder.
    #[zeroize(skip)]
    pub party: Party,
    /// Tree shape.
    #[zeroize(skip)]
    pub params: TreeParams,
    /// Root seed `s^(0)`.
    pub seed: u128,
    /// Seed correction word of each level (metadata bits cleared).
    pub cw_seed: Vec<u128>,
    /// Control-bit corrections `[t_CW^L, t_CW^R]` of each level.
    pub cw_t: Vec<[bool; 2]>,
    /// Payload correction `V_CW` of each level (DCF only).
    pub cw_v: Vec<P>,
    /// Leaf correction vector (`2^nu` elements; `CW^(n+1)` of the papers when `nu = 0`).
    pub leaf: Vec<P>,
}

impl<P: Payload> core::fmt::Debug for Key<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Key")
            .field("kind", &self.kind)
            .field("party", &self.party)
            .field("params", &self.params)
            .field("payload", &P::NAME)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::Z2;

    /// The wipe run on drop clears every array of the corrections.
    #[test]
    fn corrections_are_wiped() {
        let params = TreeParams::new::<Z2>(20).expect("params");
        let mut cw = Corrections::<Z2>::empty(Kind::Dcf, params, 70);
        cw.cw_seed.iter_mut().for_each(|w| *w = u128::MAX);
        cw.cw_t.iter_mut().for_each(|t| *t = 3);
        cw.cw_v.iter_mut().for_each(|v| *v = Z2(true));
        cw.leaf.iter_mut().for_each(|b| *b = 7);
        assert!(!cw.cw_seed.is_empty() && !cw.cw_v.is_empty() && !cw.leaf.is_empty());
        cw.zeroize();
        assert!(cw.cw_seed.iter().all(|w| *w == 0));
        assert!(cw.cw_t.iter().all(|t| *t == 0));
        assert!(cw.cw_v.iter().all(|v| *v == Z2(false)));
        assert!(cw.leaf.iter().all(|b| *b == 0));
    }
}

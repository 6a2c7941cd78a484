//! Max-pooling and argmax from the one-round ReLU and equality gates.
//!
//! **Max-pool** (k x k window, stride, zero or more padding): a tree of
//! pairwise maxima, `max(a, b) = b + ReLU(a - b)`. All the pairs of one tree
//! level, over every window, go through one batched ReLU gate, so a `k x k`
//! pool takes `ceil(log2 k^2)` rounds (2 for 2x2, 4 for 3x3) and `k^2 - 1`
//! comparisons per window (ARIANN: 3 rounds but about `k^4` comparisons).
//! Padded positions are left out of their windows (max-pool pads with
//! `-inf`, so they can never win). The DReLU share of every comparison is
//! kept: it says which side won, i.e. the arg-max selection that the
//! backward pass routes the gradient through (to the arg-max, not to a
//! window corner: the bug of the secure quantized training note).
//!
//! **Max-pool in 3 rounds** ([`MaxPoolOneHotKey`], for windows larger than
//! 2x2 where the tree needs 4+ rounds): round 1 compares all pairs of each
//! window (DReLU), round 2 turns each element's win count into a one-hot
//! arg-max (equality gate, as for argmax below), round 3 multiplies the
//! one-hot vector with the window values (Beaver) and sums locally. More
//! comparisons (`k^2 (k^2 - 1) / 2` per window, about half of ARIANN's) but
//! ARIANN's 3 rounds, and the one-hot arg-max comes out for the backward pass.
//!
//! **Argmax** over the last axis of a `(rows, n)` tensor in 2 rounds (after
//! ARIANN): round 1 computes `c_ij = [x_i >= x_j]` for all `i < j` with DReLU
//! gates; then `score_i = sum_{j>i} c_ij + sum_{j<i} (1 - c_ji)` counts the
//! elements `i` beats under the strict order "larger, or equal and earlier",
//! so exactly one element has `score = n - 1`; round 2 is an equality gate on
//! `score_i - (n - 1)`, giving a one-hot share vector (ties go to the first).
//!
//! **Small-key variants** ([`MaxPoolSmallKey`], [`ArgmaxSmallKey`]): the
//! same trees and scores with the comparisons of [`crate::gates::small`]
//! (a DCF with a 1-bit payload, one more round to turn its XOR-shared bit
//! into arithmetic shares): a max-pool level is a two-round `relu_small`
//! (`2 ceil(log2 k^2)` rounds in all), the argmax comparisons a two-round
//! DReLU (3 rounds in all); about half the key bytes, the same outputs. The
//! tree is written once, over a crate-internal trait of its level gate.

use crate::bundle::GateDesc;
use crate::codec::{Reader, put_usize};
use crate::cost::{self, GateCost, POOL_SHAPE, U64};
use crate::error::MpcError;
use crate::gates::beaver::{Bilinear, TripleKey};
use crate::gates::cmp::{DreluKey, EqZeroKey, ReluKey, ReluOutput};
use crate::gates::small::{DreluSmallKey, ReluSmallKey};
use crate::gates::util::{check_len, check_party, public_share};
use crate::table::{GateKind, KindKeys, body_mismatch, other_kind};
use crate::transport::Transport;
use ariann_fss::Party;
use ariann_ring::{Ring, RingTensor};
use rand::{CryptoRng, Rng};

/// Geometry of a 2-D max-pool over an `(n, c, h, w)` tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolShape {
    /// Batch.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Window side.
    pub k: usize,
    /// Stride.
    pub stride: usize,
    /// Padding on each side (padded positions never win).
    pub pad: usize,
}

impl PoolShape {
    /// Appends the shape's binary encoding: `n, c, h, w, k, stride, pad`
    /// (`u64` LE each).
    pub fn encode(&self, out: &mut Vec<u8>) {
        for v in [
            self.n,
            self.c,
            self.h,
            self.w,
            self.k,
            self.stride,
            self.pad,
        ] {
            put_usize(out, v);
        }
    }

    /// Reads a shape written by [`PoolShape::encode`].
    pub(crate) fn read(rd: &mut Reader<'_>) -> Result<Self, MpcError> {
        let mut v = [0usize; 7];
        for x in &mut v {
            *x = rd.usize("pool shape")?;
        }
        let [n, c, h, w, k, stride, pad] = v;
        Ok(PoolShape {
            n,
            c,
            h,
            w,
            k,
            stride,
            pad,
        })
    }

    /// Output `(height, width)`.
    pub fn out_hw(&self) -> Result<(usize, usize), MpcError> {
        let bad = || MpcError::InvalidParameter(format!("invalid max-pool geometry {self:?}"));
        if self.k == 0 || self.stride == 0 || self.pad >= self.k {
            return Err(bad());
        }
        let (hp, wp) = (self.h + 2 * self.pad, self.w + 2 * self.pad);
        if hp < self.k || wp < self.k {
            return Err(bad());
        }
        Ok((
            (hp - self.k) / self.stride + 1,
            (wp - self.k) / self.stride + 1,
        ))
    }

    /// Number of input elements.
    pub fn input_len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }

    /// For every output position (row-major `n, c, oh, ow`), the flat indices
    /// of the input elements in its window (padding left out).
    pub fn windows(&self) -> Result<Vec<Vec<usize>>, MpcError> {
        let (oh, ow) = self.out_hw()?;
        let mut out = Vec::with_capacity(self.n * self.c * oh * ow);
        for plane in 0..self.n * self.c {
            for i in 0..oh {
                for j in 0..ow {
                    let mut win = Vec::with_capacity(self.k * self.k);
                    for di in 0..self.k {
                        for dj in 0..self.k {
                            let (y, x) = (i * self.stride + di, j * self.stride + dj);
                            if y >= self.pad
                                && x >= self.pad
                                && y - self.pad < self.h
                                && x - self.pad < self.w
                            {
                                win.push(
                                    plane * self.h * self.w
                                        + (y - self.pad) * self.w
                                        + (x - self.pad),
                                );
                            }
                        }
                    }
                    if win.is_empty() {
                        return Err(MpcError::InvalidParameter(format!(
                            "max-pool window with no input element in {self:?}"
                        )));
                    }
                    out.push(win);
                }
            }
        }
        Ok(out)
    }
}

/// Largest number of distinct (row count, column count) pairs
/// [`PoolShape::window_sizes`] combines (far beyond any real pool: a 7x7
/// window has at most 8 distinct counts per axis).
const MAX_SIZE_PAIRS: usize = 1 << 20;

impl PoolShape {
    /// The sizes of the windows of [`PoolShape::windows`] (padding left
    /// out) with their multiplicities, `(size, windows of that size)`, sizes
    /// increasing; computed per axis, without building the windows, so it
    /// takes no memory even for huge shapes. Errors as [`PoolShape::out_hw`],
    /// and on sizes that overflow.
    pub fn window_sizes(&self) -> Result<Vec<(u64, u64)>, MpcError> {
        let rows = self.axis_counts(self.h)?;
        let cols = self.axis_counts(self.w)?;
        if rows.len().saturating_mul(cols.len()) > MAX_SIZE_PAIRS {
            return Err(MpcError::InvalidParameter(format!(
                "max-pool window too large to cost: {self:?}"
            )));
        }
        let what = "max-pool windows";
        let planes = cost::mul(cost::size(self.n)?, cost::size(self.c)?, what)?;
        let mut sizes = std::collections::BTreeMap::<u64, u64>::new();
        for (rc, rm) in &rows {
            for (cc, cm) in &cols {
                let mult = cost::product(&[*rm, *cm, planes], what)?;
                let e = sizes.entry(cost::mul(*rc, *cc, what)?).or_default();
                *e = cost::add(*e, mult, what)?;
            }
        }
        Ok(sizes.into_iter().filter(|(_, m)| *m > 0).collect())
    }

    /// Along one axis of input length `len`: for each output position, the
    /// number of window positions inside the input, as `(count, positions)`.
    fn axis_counts(&self, len: usize) -> Result<Vec<(u64, u64)>, MpcError> {
        let bad = || MpcError::InvalidParameter(format!("invalid max-pool geometry {self:?}"));
        let (k, s, pad) = (self.k, self.stride, self.pad);
        if k == 0 || s == 0 || pad >= k {
            return Err(bad());
        }
        let padded = pad
            .checked_mul(2)
            .and_then(|p| p.checked_add(len))
            .ok_or_else(bad)?;
        if padded < k {
            return Err(bad());
        }
        let out = (padded - k) / s + 1;
        // Window `i` covers [i s, i s + k) of the padded axis, the input is
        // [pad, pad + len). Full windows: i s >= pad and i s + k <= pad + len,
        // i.e. i in [lo, hi); at most about 2 k windows lie outside.
        let lo = pad.div_ceil(s).min(out);
        let hi = (pad + len).checked_sub(k).map_or(0, |d| d / s + 1).min(out);
        let mut counts = std::collections::BTreeMap::<u64, u64>::new();
        if lo < hi {
            counts.insert(cost::size(k)?, cost::size(hi - lo)?);
        }
        if lo + (out - lo.max(hi)) > MAX_SIZE_PAIRS {
            return Err(MpcError::InvalidParameter(format!(
                "max-pool window too large to cost: {self:?}"
            )));
        }
        for i in (0..lo).chain(lo.max(hi)..out) {
            // i < out, so i s + k <= padded: no overflow.
            let start = i * s;
            let c = (start + k).min(pad + len).saturating_sub(start.max(pad));
            if c == 0 {
                return Err(MpcError::InvalidParameter(format!(
                    "max-pool window with no input element in {self:?}"
                )));
            }
            *counts.entry(cost::size(c)?).or_default() += 1;
        }
        Ok(counts.into_iter().collect())
    }
}

/// Comparisons at each level of the max tree, from the window sizes of
/// [`PoolShape::window_sizes`] (as [`level_sizes`] from the windows).
pub(crate) fn tree_levels(sizes: &[(u64, u64)]) -> Result<Vec<u64>, MpcError> {
    let mut cur = sizes.to_vec();
    let mut levels = Vec::new();
    while cur.iter().any(|(l, _)| *l > 1) {
        let mut pairs = 0u64;
        for (l, mult) in cur.iter_mut() {
            pairs = cost::add(pairs, cost::mul(*mult, *l / 2, "max-pool")?, "max-pool")?;
            *l = l.div_ceil(2);
        }
        levels.push(pairs);
    }
    Ok(levels)
}

/// Bits of the equality window on shifted scores of groups of at most
/// `max_group` values (scores lie in `[-(max_group - 1), 0]`).
fn score_bits<R: Ring>(max_group: u64) -> u32 {
    (u64::BITS - max_group.leading_zeros() + 1).min(R::BITS)
}

/// `v_i - v_j` for `i < j` inside each group of consecutive values (group
/// sizes `lens`), groups one after the other.
pub(crate) fn pairwise_diffs<R: Ring>(vals: &[R], lens: &[usize]) -> Vec<R> {
    let mut diffs = Vec::with_capacity(lens.iter().map(|n| n * n.saturating_sub(1) / 2).sum());
    let mut at = 0;
    for n in lens {
        let v = &vals[at..at + n];
        for i in 0..*n {
            for j in i + 1..*n {
                diffs.push(v[i].wsub(v[j]));
            }
        }
        at += n;
    }
    diffs
}

/// From shares of `c_ij = [v_i >= v_j]` (`i < j`, in [`pairwise_diffs`]
/// order), each element's number of wins under "larger, or equal and
/// earlier", minus `(group size - 1)`: zero exactly at the group's first
/// maximum.
pub(crate) fn shifted_scores<R: Ring>(c: &[R], lens: &[usize], party: Party) -> Vec<R> {
    let one = public_share(party, R::ONE);
    let mut scores = vec![R::ZERO; lens.iter().sum()];
    let (mut at, mut ci) = (0, 0);
    for n in lens {
        let sc = &mut scores[at..at + n];
        for i in 0..*n {
            for j in i + 1..*n {
                sc[i] = sc[i].wadd(c[ci]);
                sc[j] = sc[j].wadd(one.wsub(c[ci]));
                ci += 1;
            }
        }
        let target = public_share(party, R::from_u64(n.saturating_sub(1) as u64));
        for s in sc.iter_mut() {
            *s = s.wsub(target);
        }
        at += n;
    }
    scores
}

/// Number of pairwise comparisons at each level of the max tree.
fn level_sizes(mut lens: Vec<usize>) -> Vec<usize> {
    let mut sizes = Vec::new();
    while lens.iter().any(|l| *l > 1) {
        sizes.push(lens.iter().map(|l| l / 2).sum());
        for l in lens.iter_mut() {
            *l = l.div_ceil(2);
        }
    }
    sizes
}

/// One party's keys for a max-pool: one batched ReLU key per tree level.
#[derive(Debug, Clone)]
pub struct MaxPoolKey<R: Ring> {
    pub(crate) party: Party,
    pub(crate) shape: PoolShape,
    pub(crate) levels: Vec<ReluKey<R>>,
}

/// Output of a max-pool: shares of the pooled tensor (row-major
/// `n, c, oh, ow`) and, per tree level, the DReLU shares of each comparison
/// (`1` where the left operand won), in the order the pairs were formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaxPoolOutput<R: Ring> {
    /// Shares of the maxima.
    pub max: Vec<R>,
    /// Shares of the selection bits, level by level.
    pub selections: Vec<Vec<R>>,
}

/// A batched ReLU gate that can be a level of the max tree: the one-round
/// [`ReluKey`] or the two-round [`ReluSmallKey`]. The tree's code
/// ([`tree_generate`], [`tree_cost`], [`tree_eval`], [`tree_read`]) is
/// written once over it.
pub(crate) trait TreeLevel<R: Ring>: Sized {
    /// Dealer: both parties' keys for `m` ReLUs on a `k`-bit window.
    fn generate_level<G: Rng + CryptoRng + ?Sized>(
        k: u32,
        m: usize,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError>;
    /// The cost of [`TreeLevel::generate_level`]'s keys and their run.
    fn level_cost(k: u32, m: usize) -> Result<GateCost, MpcError>;
    /// Number of ReLUs.
    fn level_len(&self) -> usize;
    /// Window bits.
    fn level_window(&self) -> u32;
    /// The ReLUs over a transport.
    fn eval_level<T: Transport + ?Sized>(
        &self,
        t: &mut T,
        x: &[R],
    ) -> Result<ReluOutput<R>, MpcError>;
    /// Appends the key body.
    fn write_level(&self, out: &mut Vec<u8>);
    /// Reads a key body (internally consistent).
    fn read_level(rd: &mut Reader<'_>, party: Party) -> Result<Self, MpcError>;
}

impl<R: Ring> TreeLevel<R> for ReluKey<R> {
    fn generate_level<G: Rng + CryptoRng + ?Sized>(
        k: u32,
        m: usize,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        Self::generate(k, m, rng)
    }
    fn level_cost(k: u32, m: usize) -> Result<GateCost, MpcError> {
        Self::cost(k, m)
    }
    fn level_len(&self) -> usize {
        self.len()
    }
    fn level_window(&self) -> u32 {
        self.k
    }
    fn eval_level<T: Transport + ?Sized>(
        &self,
        t: &mut T,
        x: &[R],
    ) -> Result<ReluOutput<R>, MpcError> {
        self.eval(t, x)
    }
    fn write_level(&self, out: &mut Vec<u8>) {
        self.write(out);
    }
    fn read_level(rd: &mut Reader<'_>, party: Party) -> Result<Self, MpcError> {
        Self::read(rd, party)
    }
}

impl<R: Ring> TreeLevel<R> for ReluSmallKey<R> {
    fn generate_level<G: Rng + CryptoRng + ?Sized>(
        k: u32,
        m: usize,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        Self::generate(k, m, rng)
    }
    fn level_cost(k: u32, m: usize) -> Result<GateCost, MpcError> {
        Self::cost(k, m)
    }
    fn level_len(&self) -> usize {
        self.len()
    }
    fn level_window(&self) -> u32 {
        self.k
    }
    fn eval_level<T: Transport + ?Sized>(
        &self,
        t: &mut T,
        x: &[R],
    ) -> Result<ReluOutput<R>, MpcError> {
        self.eval(t, x)
    }
    fn write_level(&self, out: &mut Vec<u8>) {
        self.write(out);
    }
    fn read_level(rd: &mut Reader<'_>, party: Party) -> Result<Self, MpcError> {
        Self::read(rd, party)
    }
}

/// Dealer: one batched key per level of the max tree of `shape`.
fn tree_generate<R: Ring, L: TreeLevel<R>, G: Rng + CryptoRng + ?Sized>(
    shape: PoolShape,
    k: u32,
    rng: &mut G,
) -> Result<(Vec<L>, Vec<L>), MpcError> {
    let lens = shape.windows()?.iter().map(Vec::len).collect();
    let mut l0 = Vec::new();
    let mut l1 = Vec::new();
    for m in level_sizes(lens) {
        let (a, b) = L::generate_level(k, m, rng)?;
        l0.push(a);
        l1.push(b);
    }
    Ok((l0, l1))
}

/// Cost of the max tree of `shape` with levels `L`: the shape, the number
/// of levels and one level body per level.
fn tree_cost<R: Ring, L: TreeLevel<R>>(shape: PoolShape, k: u32) -> Result<GateCost, MpcError> {
    let mut c = GateCost {
        encoded_bytes: POOL_SHAPE + U64,
        ..GateCost::default()
    };
    for m in tree_levels(&shape.window_sizes()?)? {
        c = c.then(L::level_cost(k, cost::count(m)?)?)?;
    }
    Ok(c)
}

/// The max tree over a transport (see the module docs).
fn tree_eval<R: Ring, L: TreeLevel<R>, T: Transport + ?Sized>(
    shape: &PoolShape,
    levels: &[L],
    t: &mut T,
    x_share: &[R],
) -> Result<MaxPoolOutput<R>, MpcError> {
    check_len("max-pool input", shape.input_len(), x_share.len())?;
    let mut cur: Vec<Vec<R>> = shape
        .windows()?
        .iter()
        .map(|w| w.iter().map(|i| x_share[*i]).collect())
        .collect();
    let mut selections = Vec::with_capacity(levels.len());
    for key in levels {
        let mut diffs = Vec::with_capacity(key.level_len());
        for win in &cur {
            for pair in win.chunks_exact(2) {
                diffs.push(pair[0].wsub(pair[1]));
            }
        }
        let out = key.eval_level(t, &diffs)?;
        let mut it = out.relu.iter();
        for win in cur.iter_mut() {
            let mut next = Vec::with_capacity(win.len().div_ceil(2));
            for pair in win.chunks(2) {
                match pair {
                    [_, b] => {
                        // Same count as the key, by construction of `level_sizes`.
                        let r = it.next().ok_or(MpcError::SizeMismatch {
                            what: "max-pool level",
                            expected: key.level_len(),
                            got: key.level_len() + 1,
                        })?;
                        next.push(b.wadd(*r));
                    }
                    [a] => next.push(*a),
                    _ => {}
                }
            }
            *win = next;
        }
        selections.push(out.drelu);
    }
    Ok(MaxPoolOutput {
        max: cur.into_iter().map(|w| w[0]).collect(),
        selections,
    })
}

/// Writes the shape, the number of levels and each level's body.
fn tree_write<R: Ring, L: TreeLevel<R>>(shape: &PoolShape, levels: &[L], out: &mut Vec<u8>) {
    shape.encode(out);
    put_usize(out, levels.len());
    for l in levels {
        l.write_level(out);
    }
}

/// Reads a body written by [`tree_write`] for `desc` (shape `shape`,
/// window `k`): the levels' count, windows and sizes must be the tree's.
fn tree_read<R: Ring, L: TreeLevel<R>>(
    rd: &mut Reader<'_>,
    party: Party,
    desc: &GateDesc,
    shape: PoolShape,
    k: u32,
) -> Result<Vec<L>, MpcError> {
    if PoolShape::read(rd)? != shape {
        return Err(body_mismatch(desc, "pool shape"));
    }
    let want = shape
        .window_sizes()
        .and_then(|sizes| tree_levels(&sizes))
        .map_err(|e| body_mismatch(desc, &e.to_string()))?;
    // Each level holds at least a ReLU header.
    let n = rd.count(12, "max-pool levels")?;
    if n != want.len() {
        return Err(body_mismatch(desc, "number of levels"));
    }
    let mut levels = Vec::with_capacity(n);
    for m in want {
        let l = L::read_level(rd, party)?;
        if l.level_window() != k {
            return Err(body_mismatch(desc, "window of a level"));
        }
        if u64::try_from(l.level_len()).ok() != Some(m) {
            return Err(body_mismatch(desc, "size of a level"));
        }
        levels.push(l);
    }
    Ok(levels)
}

impl<R: Ring> MaxPoolKey<R> {
    /// Dealer: keys for a max-pool of `shape` on values in a `k`-bit window
    /// (differences of two inputs must fit it too).
    pub fn generate<G: Rng + CryptoRng + ?Sized>(
        shape: PoolShape,
        k: u32,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        let (l0, l1) = tree_generate::<R, ReluKey<R>, G>(shape, k, rng)?;
        Ok((
            Self {
                party: Party::P0,
                shape,
                levels: l0,
            },
            Self {
                party: Party::P1,
                shape,
                levels: l1,
            },
        ))
    }

    /// Online rounds of this pool.
    pub fn rounds(&self) -> usize {
        self.levels.len()
    }

    /// Key bytes held by this party.
    pub fn key_bytes(&self) -> usize {
        self.levels.iter().map(ReluKey::key_bytes).sum()
    }

    /// Cost of a max-pool of `shape` on a `k`-bit window, without generating
    /// keys (see [`crate::cost`]): one ReLU gate per tree level; the key body
    /// is the shape, the number of levels and one ReLU body per level.
    pub fn cost(shape: PoolShape, k: u32) -> Result<GateCost, MpcError> {
        tree_cost::<R, ReluKey<R>>(shape, k)
    }

    /// Evaluates the pool on this party's share of the `(n, c, h, w)` input (flat, row-major).
    pub fn eval<T: Transport + ?Sized>(
        &self,
        t: &mut T,
        x_share: &[R],
    ) -> Result<MaxPoolOutput<R>, MpcError> {
        check_party(self.party, t.party())?;
        tree_eval(&self.shape, &self.levels, t, x_share)
    }
}

/// One party's keys for a max-pool whose tree levels are two-round
/// [`ReluSmallKey`]s (`max_pool_small`): `2 ceil(log2 k^2)` rounds, about
/// half the key bytes of [`MaxPoolKey`]; same output (the selection bits
/// are the levels' DReLU shares).
#[derive(Debug, Clone)]
pub struct MaxPoolSmallKey<R: Ring> {
    pub(crate) party: Party,
    pub(crate) shape: PoolShape,
    pub(crate) levels: Vec<ReluSmallKey<R>>,
}

impl<R: Ring> MaxPoolSmallKey<R> {
    /// Dealer: keys for a max-pool of `shape` on values in a `k`-bit window
    /// (differences of two inputs must fit it too).
    pub fn generate<G: Rng + CryptoRng + ?Sized>(
        shape: PoolShape,
        k: u32,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        let (l0, l1) = tree_generate::<R, ReluSmallKey<R>, G>(shape, k, rng)?;
        Ok((
            Self {
                party: Party::P0,
                shape,
                levels: l0,
            },
            Self {
                party: Party::P1,
                shape,
                levels: l1,
            },
        ))
    }

    /// Online rounds of this pool (two per tree level).
    pub fn rounds(&self) -> usize {
        2 * self.levels.len()
    }

    /// Key bytes held by this party.
    pub fn key_bytes(&self) -> usize {
        self.levels.iter().map(ReluSmallKey::key_bytes).sum()
    }

    /// Cost of a max-pool of `shape` on a `k`-bit window, without generating
    /// keys (see [`crate::cost`]): one `relu_small` gate per tree level; the
    /// key body is the shape, the number of levels and one `relu_small` body
    /// per level.
    pub fn cost(shape: PoolShape, k: u32) -> Result<GateCost, MpcError> {
        tree_cost::<R, ReluSmallKey<R>>(shape, k)
    }

    /// Evaluates the pool on this party's share of the `(n, c, h, w)` input (flat, row-major).
    pub fn eval<T: Transport + ?Sized>(
        &self,
        t: &mut T,
        x_share: &[R],
    ) -> Result<MaxPoolOutput<R>, MpcError> {
        check_party(self.party, t.party())?;
        tree_eval(&self.shape, &self.levels, t, x_share)
    }
}

/// One party's keys for a 3-round max-pool (see the module docs).
#[derive(Debug, Clone)]
pub struct MaxPoolOneHotKey<R: Ring> {
    pub(crate) party: Party,
    pub(crate) shape: PoolShape,
    pub(crate) cmp: DreluKey<R>,
    pub(crate) eq: EqZeroKey<R>,
    pub(crate) mul: crate::gates::beaver::TripleKey<R>,
}

impl<R: Ring> MaxPoolOneHotKey<R> {
    /// Dealer: keys for a 3-round max-pool of `shape` on a `k`-bit window.
    pub fn generate<G: Rng + CryptoRng + ?Sized>(
        shape: PoolShape,
        k: u32,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        let wins = shape.windows()?;
        let pairs: usize = wins.iter().map(|w| w.len() * (w.len() - 1) / 2).sum();
        let total: usize = wins.iter().map(Vec::len).sum();
        let maxw = wins.iter().map(Vec::len).max().unwrap_or(1);
        let eq_bits = (usize::BITS - maxw.leading_zeros() + 1).min(R::BITS);
        let (c0, c1) = DreluKey::generate(k, pairs, rng)?;
        let (e0, e1) = EqZeroKey::generate(eq_bits, total, rng)?;
        let map = crate::gates::beaver::Bilinear::Mul { len: total };
        let (m0, m1) = crate::gates::beaver::TripleKey::generate(map, rng)?;
        Ok((
            Self {
                party: Party::P0,
                shape,
                cmp: c0,
                eq: e0,
                mul: m0,
            },
            Self {
                party: Party::P1,
                shape,
                cmp: c1,
                eq: e1,
                mul: m1,
            },
        ))
    }

    /// Key bytes held by this party.
    pub fn key_bytes(&self) -> usize {
        self.cmp.key_bytes() + self.eq.key_bytes() + self.mul.key_bytes()
    }

    /// Cost of a 3-round max-pool of `shape` on a `k`-bit window, without
    /// generating keys (see [`crate::cost`]): DReLU on all pairs of each
    /// window, equality on every window element, one Beaver product per
    /// window element; the key body is the shape and those three bodies.
    pub fn cost(shape: PoolShape, k: u32) -> Result<GateCost, MpcError> {
        let what = "max-pool";
        let (mut pairs, mut total, mut maxw) = (0u64, 0u64, 1u64);
        for (l, mult) in shape.window_sizes()? {
            // l (l - 1) is even.
            let p = cost::mul(l, l - 1, what)? / 2;
            pairs = cost::add(pairs, cost::mul(p, mult, what)?, what)?;
            total = cost::add(total, cost::mul(l, mult, what)?, what)?;
            maxw = maxw.max(l);
        }
        let total = cost::count(total)?;
        let head = GateCost {
            encoded_bytes: POOL_SHAPE,
            ..GateCost::default()
        };
        head.then(DreluKey::<R>::cost(k, cost::count(pairs)?)?)?
            .then(EqZeroKey::<R>::cost(score_bits::<R>(maxw), total)?)?
            .then(crate::gates::beaver::TripleKey::<R>::cost(
                crate::gates::beaver::Bilinear::Mul { len: total },
            )?)
    }

    /// Evaluates the pool in 3 rounds; `selections` holds one vector: the
    /// one-hot arg-max of every window, windows one after the other.
    pub fn eval<T: Transport + ?Sized>(
        &self,
        t: &mut T,
        x_share: &[R],
    ) -> Result<MaxPoolOutput<R>, MpcError> {
        check_party(self.party, t.party())?;
        check_len("max-pool input", self.shape.input_len(), x_share.len())?;
        let wins = self.shape.windows()?;
        let vals: Vec<R> = wins.iter().flatten().map(|i| x_share[*i]).collect();
        let lens: Vec<usize> = wins.iter().map(Vec::len).collect();
        // Round 1: all pairwise comparisons inside each window.
        let c = self.cmp.eval(t, &pairwise_diffs(&vals, &lens))?;
        // Local: win counts minus (window size - 1); round 2: equality with zero.
        let scores = shifted_scores(&c, &lens, self.party);
        let onehot = self.eq.eval(t, &scores)?;
        // Round 3: select the maxima.
        let len = vals.len();
        let prod = self.mul.eval(
            t,
            &RingTensor::from_vec(&[len], onehot.clone())?,
            &RingTensor::from_vec(&[len], vals)?,
        )?;
        let prod = prod.as_slice();
        let mut max = Vec::with_capacity(wins.len());
        let mut at = 0;
        for w in &wins {
            max.push(
                prod[at..at + w.len()]
                    .iter()
                    .fold(R::ZERO, |a, b| a.wadd(*b)),
            );
            at += w.len();
        }
        Ok(MaxPoolOutput {
            max,
            selections: vec![onehot],
        })
    }
}

/// One party's keys for argmax over the last axis of a `(rows, n)` tensor.
#[derive(Debug, Clone)]
pub struct ArgmaxKey<R: Ring> {
    pub(crate) party: Party,
    pub(crate) rows: usize,
    pub(crate) n: usize,
    pub(crate) cmp: DreluKey<R>,
    pub(crate) eq: EqZeroKey<R>,
}

impl<R: Ring> ArgmaxKey<R> {
    /// Dealer: keys for `rows` argmaxes over `n >= 1` values each, in a
    /// `k`-bit window (pairwise differences must fit it).
    pub fn generate<G: Rng + CryptoRng + ?Sized>(
        rows: usize,
        n: usize,
        k: u32,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        if n == 0 {
            return Err(MpcError::InvalidParameter("argmax over 0 values".into()));
        }
        let pairs = rows * n * (n - 1) / 2;
        let (c0, c1) = DreluKey::generate(k, pairs, rng)?;
        // Scores lie in [0, n - 1]; score - (n - 1) in [-(n-1), 0].
        let eq_bits = (usize::BITS - n.leading_zeros() + 1).min(R::BITS);
        let (e0, e1) = EqZeroKey::generate(eq_bits, rows * n, rng)?;
        Ok((
            Self {
                party: Party::P0,
                rows,
                n,
                cmp: c0,
                eq: e0,
            },
            Self {
                party: Party::P1,
                rows,
                n,
                cmp: c1,
                eq: e1,
            },
        ))
    }

    /// Key bytes held by this party.
    pub fn key_bytes(&self) -> usize {
        self.cmp.key_bytes() + self.eq.key_bytes()
    }

    /// Cost of `rows` argmaxes over `n` values on a `k`-bit window, without
    /// generating keys (see [`crate::cost`]): DReLU on all pairs of a row,
    /// then equality on every element; the key body is `rows`, `n` and
    /// those two bodies.
    pub fn cost(rows: usize, n: usize, k: u32) -> Result<GateCost, MpcError> {
        if n == 0 {
            return Err(MpcError::InvalidParameter("argmax over 0 values".into()));
        }
        let what = "argmax";
        let (r, nn) = (cost::size(rows)?, cost::size(n)?);
        let pairs = cost::product(&[r, nn, nn - 1], what)? / 2;
        let head = GateCost {
            encoded_bytes: 2 * U64,
            ..GateCost::default()
        };
        head.then(DreluKey::<R>::cost(k, cost::count(pairs)?)?)?
            .then(EqZeroKey::<R>::cost(
                score_bits::<R>(nn),
                cost::count(cost::mul(r, nn, what)?)?,
            )?)
    }

    /// Shares of the one-hot argmax of each row (ties to the first index), in 2 rounds.
    pub fn eval<T: Transport + ?Sized>(
        &self,
        t: &mut T,
        x_share: &[R],
    ) -> Result<Vec<R>, MpcError> {
        let n = self.n;
        check_party(self.party, t.party())?;
        check_len("argmax input", self.rows * n, x_share.len())?;
        let lens = vec![n; self.rows];
        let c = self.cmp.eval(t, &pairwise_diffs(x_share, &lens))?;
        let shifted = shifted_scores(&c, &lens, self.party);
        self.eq.eval(t, &shifted)
    }
}

/// One party's keys for argmax over the last axis of a `(rows, n)` tensor
/// with two-round DReLUs from 1-bit-payload DCFs (`argmax_small`, see
/// [`crate::gates::small`]): 3 rounds (the pairwise comparisons, the
/// conversion of their XOR-shared bits, the equality gate) for about half
/// the key bytes of [`ArgmaxKey`]; same output.
#[derive(Debug, Clone)]
pub struct ArgmaxSmallKey<R: Ring> {
    pub(crate) party: Party,
    pub(crate) rows: usize,
    pub(crate) n: usize,
    pub(crate) cmp: DreluSmallKey<R>,
    pub(crate) eq: EqZeroKey<R>,
}

/// Pairs and elements of `rows` argmaxes over `n >= 1` values.
fn argmax_counts(rows: usize, n: usize) -> Result<(usize, usize), MpcError> {
    if n == 0 {
        return Err(MpcError::InvalidParameter("argmax over 0 values".into()));
    }
    let what = "argmax";
    let (r, nn) = (cost::size(rows)?, cost::size(n)?);
    let pairs = cost::product(&[r, nn, nn - 1], what)? / 2;
    Ok((cost::count(pairs)?, cost::count(cost::mul(r, nn, what)?)?))
}

impl<R: Ring> ArgmaxSmallKey<R> {
    /// Dealer: keys for `rows` argmaxes over `n >= 1` values each, in a
    /// `k`-bit window (pairwise differences must fit it).
    pub fn generate<G: Rng + CryptoRng + ?Sized>(
        rows: usize,
        n: usize,
        k: u32,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        let (pairs, total) = argmax_counts(rows, n)?;
        let (c0, c1) = DreluSmallKey::generate(k, pairs, rng)?;
        // Scores lie in [0, n - 1]; score - (n - 1) in [-(n-1), 0].
        let (e0, e1) = EqZeroKey::generate(score_bits::<R>(n as u64), total, rng)?;
        Ok((
            Self {
                party: Party::P0,
                rows,
                n,
                cmp: c0,
                eq: e0,
            },
            Self {
                party: Party::P1,
                rows,
                n,
                cmp: c1,
                eq: e1,
            },
        ))
    }

    /// Key bytes held by this party.
    pub fn key_bytes(&self) -> usize {
        self.cmp.key_bytes() + self.eq.key_bytes()
    }

    /// Cost of `rows` argmaxes over `n` values on a `k`-bit window, without
    /// generating keys (see [`crate::cost`]): two-round DReLU on all pairs
    /// of a row, then equality on every element; the key body is `rows`,
    /// `n`, a DReLU (small) body and an equality body.
    pub fn cost(rows: usize, n: usize, k: u32) -> Result<GateCost, MpcError> {
        let (pairs, total) = argmax_counts(rows, n)?;
        let head = GateCost {
            encoded_bytes: 2 * U64,
            ..GateCost::default()
        };
        head.then(DreluSmallKey::<R>::cost(k, pairs)?)?
            .then(EqZeroKey::<R>::cost(score_bits::<R>(n as u64), total)?)
    }

    /// Shares of the one-hot argmax of each row (ties to the first index), in 3 rounds.
    pub fn eval<T: Transport + ?Sized>(
        &self,
        t: &mut T,
        x_share: &[R],
    ) -> Result<Vec<R>, MpcError> {
        let n = self.n;
        check_party(self.party, t.party())?;
        check_len("argmax input", self.rows * n, x_share.len())?;
        let lens = vec![n; self.rows];
        let c = self.cmp.eval(t, &pairwise_diffs(x_share, &lens))?;
        let shifted = shifted_scores(&c, &lens, self.party);
        self.eq.eval(t, &shifted)
    }
}

// ------------------------------------------------ gate table: dispatch and codec

impl<R: Ring> KindKeys<R> for MaxPoolKey<R> {
    fn deal<G: Rng + CryptoRng + ?Sized>(
        desc: &GateDesc,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        let GateDesc::MaxPool { shape, k } = *desc else {
            return Err(other_kind(desc, GateKind::MaxPool));
        };
        Self::generate(shape, k, rng)
    }

    fn cost(desc: &GateDesc) -> Result<GateCost, MpcError> {
        let GateDesc::MaxPool { shape, k } = *desc else {
            return Err(other_kind(desc, GateKind::MaxPool));
        };
        Self::cost(shape, k)
    }

    fn key_size(&self) -> usize {
        self.key_bytes()
    }

    /// The shape, the number of levels, one ReLU body per level.
    fn write_body(&self, out: &mut Vec<u8>) {
        tree_write(&self.shape, &self.levels, out);
    }

    fn read_body(rd: &mut Reader<'_>, party: Party, desc: &GateDesc) -> Result<Self, MpcError> {
        let GateDesc::MaxPool { shape, k } = *desc else {
            return Err(other_kind(desc, GateKind::MaxPool));
        };
        Ok(MaxPoolKey {
            party,
            shape,
            levels: tree_read(rd, party, desc, shape, k)?,
        })
    }
}

impl<R: Ring> KindKeys<R> for MaxPoolSmallKey<R> {
    fn deal<G: Rng + CryptoRng + ?Sized>(
        desc: &GateDesc,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        let GateDesc::MaxPoolSmall { shape, k } = *desc else {
            return Err(other_kind(desc, GateKind::MaxPoolSmall));
        };
        Self::generate(shape, k, rng)
    }

    fn cost(desc: &GateDesc) -> Result<GateCost, MpcError> {
        let GateDesc::MaxPoolSmall { shape, k } = *desc else {
            return Err(other_kind(desc, GateKind::MaxPoolSmall));
        };
        Self::cost(shape, k)
    }

    fn key_size(&self) -> usize {
        self.key_bytes()
    }

    /// The shape, the number of levels, one `relu_small` body per level.
    fn write_body(&self, out: &mut Vec<u8>) {
        tree_write(&self.shape, &self.levels, out);
    }

    fn read_body(rd: &mut Reader<'_>, party: Party, desc: &GateDesc) -> Result<Self, MpcError> {
        let GateDesc::MaxPoolSmall { shape, k } = *desc else {
            return Err(other_kind(desc, GateKind::MaxPoolSmall));
        };
        Ok(MaxPoolSmallKey {
            party,
            shape,
            levels: tree_read(rd, party, desc, shape, k)?,
        })
    }
}

impl<R: Ring> KindKeys<R> for MaxPoolOneHotKey<R> {
    fn deal<G: Rng + CryptoRng + ?Sized>(
        desc: &GateDesc,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        let GateDesc::MaxPoolOneHot { shape, k } = *desc else {
            return Err(other_kind(desc, GateKind::MaxPoolOneHot));
        };
        Self::generate(shape, k, rng)
    }

    fn cost(desc: &GateDesc) -> Result<GateCost, MpcError> {
        let GateDesc::MaxPoolOneHot { shape, k } = *desc else {
            return Err(other_kind(desc, GateKind::MaxPoolOneHot));
        };
        Self::cost(shape, k)
    }

    fn key_size(&self) -> usize {
        self.key_bytes()
    }

    /// The shape, a DReLU body, an equality body, a triple body.
    fn write_body(&self, out: &mut Vec<u8>) {
        self.shape.encode(out);
        self.cmp.write(out);
        self.eq.write(out);
        self.mul.write(out);
    }

    fn read_body(rd: &mut Reader<'_>, party: Party, desc: &GateDesc) -> Result<Self, MpcError> {
        let GateDesc::MaxPoolOneHot { shape, k } = *desc else {
            return Err(other_kind(desc, GateKind::MaxPoolOneHot));
        };
        if PoolShape::read(rd)? != shape {
            return Err(body_mismatch(desc, "pool shape"));
        }
        let cmp = DreluKey::<R>::read(rd, party)?;
        if cmp.k != k {
            return Err(body_mismatch(desc, "comparison window"));
        }
        let eq = EqZeroKey::<R>::read(rd, party)?;
        let mul = TripleKey::<R>::read(rd, party)?;
        if !matches!(mul.map, Bilinear::Mul { len } if len == eq.r.len()) {
            return Err(body_mismatch(desc, "selection triple"));
        }
        Ok(MaxPoolOneHotKey {
            party,
            shape,
            cmp,
            eq,
            mul,
        })
    }
}

impl<R: Ring> KindKeys<R> for ArgmaxKey<R> {
    fn deal<G: Rng + CryptoRng + ?Sized>(
        desc: &GateDesc,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        let GateDesc::Argmax { rows, n, k } = *desc else {
            return Err(other_kind(desc, GateKind::Argmax));
        };
        Self::generate(rows, n, k, rng)
    }

    fn cost(desc: &GateDesc) -> Result<GateCost, MpcError> {
        let GateDesc::Argmax { rows, n, k } = *desc else {
            return Err(other_kind(desc, GateKind::Argmax));
        };
        Self::cost(rows, n, k)
    }

    fn key_size(&self) -> usize {
        self.key_bytes()
    }

    /// `rows`, `n`, a DReLU body, an equality body.
    fn write_body(&self, out: &mut Vec<u8>) {
        put_usize(out, self.rows);
        put_usize(out, self.n);
        self.cmp.write(out);
        self.eq.write(out);
    }

    fn read_body(rd: &mut Reader<'_>, party: Party, desc: &GateDesc) -> Result<Self, MpcError> {
        let GateDesc::Argmax { rows, n, k } = *desc else {
            return Err(other_kind(desc, GateKind::Argmax));
        };
        if rd.usize("argmax rows")? != rows || rd.usize("argmax n")? != n {
            return Err(body_mismatch(desc, "rows or n"));
        }
        let cmp = DreluKey::<R>::read(rd, party)?;
        if cmp.k != k {
            return Err(body_mismatch(desc, "comparison window"));
        }
        let eq = EqZeroKey::<R>::read(rd, party)?;
        Ok(ArgmaxKey {
            party,
            rows,
            n,
            cmp,
            eq,
        })
    }
}

impl<R: Ring> KindKeys<R> for ArgmaxSmallKey<R> {
    fn deal<G: Rng + CryptoRng + ?Sized>(
        desc: &GateDesc,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        let GateDesc::ArgmaxSmall { rows, n, k } = *desc else {
            return Err(other_kind(desc, GateKind::ArgmaxSmall));
        };
        Self::generate(rows, n, k, rng)
    }

    fn cost(desc: &GateDesc) -> Result<GateCost, MpcError> {
        let GateDesc::ArgmaxSmall { rows, n, k } = *desc else {
            return Err(other_kind(desc, GateKind::ArgmaxSmall));
        };
        Self::cost(rows, n, k)
    }

    fn key_size(&self) -> usize {
        self.key_bytes()
    }

    /// `rows`, `n`, a DReLU (small) body, an equality body.
    fn write_body(&self, out: &mut Vec<u8>) {
        put_usize(out, self.rows);
        put_usize(out, self.n);
        self.cmp.write(out);
        self.eq.write(out);
    }

    fn read_body(rd: &mut Reader<'_>, party: Party, desc: &GateDesc) -> Result<Self, MpcError> {
        let GateDesc::ArgmaxSmall { rows, n, k } = *desc else {
            return Err(other_kind(desc, GateKind::ArgmaxSmall));
        };
        if rd.usize("argmax rows")? != rows || rd.usize("argmax n")? != n {
            return Err(body_mismatch(desc, "rows or n"));
        }
        let (pairs, total) =
            argmax_counts(rows, n).map_err(|e| body_mismatch(desc, &e.to_string()))?;
        let cmp = DreluSmallKey::<R>::read(rd, party)?;
        if cmp.k != k || cmp.len() != pairs {
            return Err(body_mismatch(desc, "comparison window or count"));
        }
        let eq = EqZeroKey::<R>::read(rd, party)?;
        if eq.k != score_bits::<R>(n as u64) || eq.len() != total {
            return Err(body_mismatch(desc, "equality window or count"));
        }
        Ok(ArgmaxSmallKey {
            party,
            rows,
            n,
            cmp,
            eq,
        })
    }
}

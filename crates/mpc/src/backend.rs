//! Gate backends: the one interface a layer's code runs on.
//!
//! A layer (in `ariann-nn`) is written once, against [`Gates`]. Three
//! backends run it:
//!
//! - [`Session`]: the private two-party run (keys from the dealer, masked
//!   openings over a [`Transport`]);
//! - [`Clear`]: cleartext fixed point, the arithmetic of the private run on
//!   plain values (for debugging and for the bit-exact tests: inside the
//!   documented windows the private output reconstructs to exactly the clear
//!   backend's output);
//! - [`Recorder`]: returns placeholder (zero) shares of the right sizes and
//!   records the [`GateDesc`] of every call. The protocols never branch on
//!   secret values, so running the parties' code on a recorder yields exactly
//!   the plan the dealer must serve: there is no second walk to keep in step.
//!
//! Local linear operations (adding shares, adding a public constant,
//! multiplying by a public constant, window sums) need no keys and no
//! communication; the provided methods of [`Gates`] use the party to decide
//! who adds a public constant ([`Clear`] acts as party 0 holding the whole
//! value).

use crate::bundle::{BundleTag, GateDesc, GateKey, PreprocessingSource};
use crate::error::MpcError;
use crate::gates::batchnorm::{
    BN_FRAC_BITS, BatchNormOutput, BatchNormShape, PM, PV, inv_sqrt_spline,
};
use crate::gates::beaver::Bilinear;
use crate::gates::cmp::ReluOutput;
use crate::gates::linear;
use crate::gates::pool::{MaxPoolOutput, PoolShape, pairwise_diffs, shifted_scores, tree_levels};
use crate::gates::spline::SplineFn;
use crate::gates::train::Backward;
use crate::gates::util::check_len;
use crate::session::Session;
use crate::transport::{CommStats, Transport};
use ariann_fss::Party;
use ariann_ring::{Ring, RingTensor};
use std::time::Duration;

/// A snapshot of a backend's counters ([`Gates::probe`]), for profiling a
/// run: the difference of two snapshots is what ran in between.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Gates of the plan run (or recorded) so far: the next gate's index.
    pub gates: u64,
    /// The transport's counters (zero off a session).
    pub comm: CommStats,
    /// Time spent inside the transport's exchanges, if it counts it
    /// ([`crate::TimedTransport`]; [`crate::Transport::exchange_time`]).
    pub exchange_time: Duration,
    /// Time spent waiting for key bundles, if the session counts it
    /// ([`Session::with_key_timing`]).
    pub key_wait: Duration,
    /// Time spent in product gates (triples: masking, the opening and the
    /// ring products), if the session counts it ([`Session::product_time`]).
    pub product_time: Duration,
    /// The part of [`Probe::product_time`] inside the transport's exchanges.
    pub product_exchange_time: Duration,
}

/// The operations a layer calls, on shares (or on clear values, or on
/// placeholders). Every method with a key runs exactly one gate of the plan.
pub trait Gates<R: Ring> {
    /// The party this backend plays (the clear backend and the recorder play
    /// party 0).
    fn party(&self) -> Party;

    /// `x * y` for a bilinear map (elementwise, matmul, conv2d): one
    /// [`GateDesc::Triple`].
    fn bilinear(
        &mut self,
        map: Bilinear,
        x: &RingTensor<R>,
        y: &RingTensor<R>,
    ) -> Result<RingTensor<R>, MpcError>;

    /// `x * w` where `w` is the model weight named `name` (PyTorch name),
    /// the same for the whole job. Without weight-mask reuse (the default
    /// of every backend) exactly [`Gates::bilinear`]. With it
    /// ([`Session::with_weight_reuse`], [`Recorder::with_weight_reuse`];
    /// inference only), the first product with `name` is a
    /// [`GateDesc::Triple`] whose opening of `w - b` both parties keep, and
    /// every later one a [`GateDesc::TripleReuse`] naming that gate, which
    /// opens only `x - a` ([`crate::gates::reuse`]).
    fn bilinear_weight(
        &mut self,
        name: &str,
        map: Bilinear,
        x: &RingTensor<R>,
        w: &RingTensor<R>,
    ) -> Result<RingTensor<R>, MpcError> {
        let _ = name;
        self.bilinear(map, x, w)
    }

    /// Whether [`Gates::bilinear_weight`] reuses weight masks on this
    /// backend (training refuses a backend that does).
    fn reuses_weight_masks(&self) -> bool {
        false
    }

    /// Training forward of `x * y`: the product, as [`Gates::bilinear`], and
    /// what [`Gates::bilinear_backward`] needs. Privately the masked openings
    /// `x - a` and `y - b` of this product serve the backward products too
    /// (mask reuse): the key carries the backward's correlated masks, so the
    /// backward pass opens only its output gradient. `need_dx: false` (the
    /// first layer) skips the input gradient. One [`GateDesc::TrainTriple`]
    /// (it serves the backward too).
    fn bilinear_train(
        &mut self,
        map: Bilinear,
        x: &RingTensor<R>,
        y: &RingTensor<R>,
        need_dx: bool,
    ) -> Result<(RingTensor<R>, BilinearTape<R>), MpcError>;

    /// Backward of a training product: `(dx, dy)` for the output gradient
    /// `dz` and this party's share of the right operand `y` (the same as in
    /// the forward pass); `dx` is `None` unless the forward asked for it.
    /// `dx = map.back_x(dz, y)`, `dy = map.back_y(x, dz)`, with the sum of the
    /// inputs' fractional bits (truncate afterwards). One round, no new key.
    /// The tape must come from this backend's [`Gates::bilinear_train`].
    fn bilinear_backward(
        &mut self,
        tape: BilinearTape<R>,
        dz: &RingTensor<R>,
        y: &RingTensor<R>,
    ) -> Result<(Option<RingTensor<R>>, RingTensor<R>), MpcError>;

    /// Exact `x >> f` (floor) for `x` in a `k`-bit window: one [`GateDesc::Trunc`].
    fn truncate(&mut self, x: &[R], f: u32, k: u32) -> Result<Vec<R>, MpcError>;

    /// Exact `x >> f` (floor) for `x` in a `k`-bit window with small keys (a
    /// 1-bit-payload DCF for the borrow), in 2 rounds: one
    /// [`GateDesc::TruncSmall`]. The same outputs as [`Gates::truncate`].
    fn truncate_small(&mut self, x: &[R], f: u32, k: u32) -> Result<Vec<R>, MpcError>;

    /// Stochastic `x >> f` for `x` in a `k`-bit window: `floor(x / 2^f)`
    /// plus 1 with probability `(x mod 2^f) / 2^f` (unbiased), in one round
    /// with no FSS key: one [`GateDesc::TruncStoch`]. Privately the coin is
    /// the carry of the dealer's mask; [`Clear`] draws it from its seeded
    /// generator ([`Clear::stochastic`]).
    fn truncate_stochastic(&mut self, x: &[R], f: u32, k: u32) -> Result<Vec<R>, MpcError>;

    /// ReLU and its DReLU bits on a `k`-bit window: one [`GateDesc::Relu`].
    fn relu(&mut self, x: &[R], k: u32) -> Result<ReluOutput<R>, MpcError>;

    /// `[x >= 0]` on a `k`-bit window: one [`GateDesc::Drelu`].
    fn drelu(&mut self, x: &[R], k: u32) -> Result<Vec<R>, MpcError>;

    /// `[x == 0]` on a `k`-bit window: one [`GateDesc::EqZero`].
    fn eq_zero(&mut self, x: &[R], k: u32) -> Result<Vec<R>, MpcError>;

    /// Max-pool (tree of ReLUs, `ceil(log2 k^2)` rounds): one [`GateDesc::MaxPool`].
    fn max_pool(&mut self, x: &[R], shape: PoolShape, k: u32)
    -> Result<MaxPoolOutput<R>, MpcError>;

    /// Max-pool in 3 rounds with a one-hot selection: one [`GateDesc::MaxPoolOneHot`].
    fn max_pool_one_hot(
        &mut self,
        x: &[R],
        shape: PoolShape,
        k: u32,
    ) -> Result<MaxPoolOutput<R>, MpcError>;

    /// Batch normalisation with batch statistics (training forward, 9
    /// rounds): one [`GateDesc::BatchNorm`].
    fn batch_norm(
        &mut self,
        x: &[R],
        shape: BatchNormShape,
        gamma: &[R],
        beta: &[R],
        eps: f64,
    ) -> Result<BatchNormOutput<R>, MpcError>;

    /// One-hot argmax of each of `rows` rows of `n` values (ties to the first):
    /// one [`GateDesc::Argmax`].
    fn argmax(&mut self, x: &[R], rows: usize, n: usize, k: u32) -> Result<Vec<R>, MpcError>;

    /// The public function `func` (e.g. `e^u`, `1/s`) of each element of `x`
    /// (`f` fractional bits, `|x| < 2^(k-2)`) by a one-round spline; the
    /// output has `2 f` fractional bits: one [`GateDesc::Spline`].
    fn spline(&mut self, func: SplineFn, x: &[R], k: u32) -> Result<Vec<R>, MpcError>;

    /// ReLU and its DReLU bits on a `k`-bit window with small keys (a DCF
    /// with a 1-bit payload), in 2 rounds: one [`GateDesc::ReluSmall`]. The
    /// same outputs as [`Gates::relu`].
    fn relu_small(&mut self, x: &[R], k: u32) -> Result<ReluOutput<R>, MpcError>;

    /// Exact `max(x >> f, 0)` (floor truncation, then ReLU) for
    /// `|x >> f| < 2^(k-1)`, in 2 rounds: one [`GateDesc::TruncRelu`]. No
    /// DReLU bits: for inference.
    fn trunc_relu(&mut self, x: &[R], f: u32, k: u32) -> Result<Vec<R>, MpcError>;

    /// Max-pool (tree of `relu_small`, `2 ceil(log2 k^2)` rounds): one
    /// [`GateDesc::MaxPoolSmall`]. The same outputs as [`Gates::max_pool`].
    fn max_pool_small(
        &mut self,
        x: &[R],
        shape: PoolShape,
        k: u32,
    ) -> Result<MaxPoolOutput<R>, MpcError>;

    /// One-hot argmax with small comparison keys, in 3 rounds: one
    /// [`GateDesc::ArgmaxSmall`]. The same output as [`Gates::argmax`].
    fn argmax_small(&mut self, x: &[R], rows: usize, n: usize, k: u32) -> Result<Vec<R>, MpcError>;

    /// Local: this party's share of `x + c` for a public `c`.
    fn add_public(&self, x: &[R], c: &[R]) -> Result<Vec<R>, MpcError> {
        linear::add_public(self.party(), x, c)
    }

    /// Local: this party's share of `c * x` for a public scalar `c`.
    fn mul_public(&self, x: &[R], c: R) -> Vec<R> {
        linear::mul_public(x, c)
    }

    /// Local: shares of the window sums of a pooling geometry.
    fn window_sums(&self, x: &[R], shape: &PoolShape) -> Result<Vec<R>, MpcError> {
        linear::window_sums(x, shape)
    }

    /// The counters so far (for profiling; reading them changes nothing).
    /// All zero on [`Clear`]; the gate count on the [`Recorder`].
    fn probe(&self) -> Probe {
        Probe::default()
    }
}

/// What a training product keeps for its backward pass
/// ([`Gates::bilinear_train`]); consumed by [`Gates::bilinear_backward`] of
/// the same backend (another backend's tape is refused with
/// [`MpcError::InvalidParameter`]). Private tapes hold secret shares and key
/// material: zeroized on drop, never printed by `Debug`.
pub struct BilinearTape<R: Ring> {
    pub(crate) map: Bilinear,
    pub(crate) need_dx: bool,
    /// This party's share of the left operand (the value itself on [`Clear`],
    /// an empty placeholder on the [`Recorder`]).
    pub(crate) x: RingTensor<R>,
    /// The backend that made the tape, with the private backward material.
    pub(crate) origin: TapeOrigin<R>,
}

/// The backend a [`BilinearTape`] comes from.
pub(crate) enum TapeOrigin<R: Ring> {
    /// [`Clear`].
    Clear,
    /// [`Recorder`].
    Recorder,
    /// [`Session`]: the opened masks and the backward key material.
    Session(Box<Backward<R>>),
}

impl<R: Ring> TapeOrigin<R> {
    fn name(&self) -> &'static str {
        match self {
            TapeOrigin::Clear => "cleartext",
            TapeOrigin::Recorder => "recorder",
            TapeOrigin::Session(_) => "private",
        }
    }
}

/// The error of a tape handed to another backend than the one that made it.
pub(crate) fn foreign_tape<R: Ring>(tape: &BilinearTape<R>, backend: &str) -> MpcError {
    MpcError::InvalidParameter(format!(
        "the tape of a training product {:?} comes from the {} backend and cannot run on the {backend} backend",
        tape.map,
        tape.origin.name()
    ))
}

impl<R: Ring> core::fmt::Debug for BilinearTape<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BilinearTape")
            .field("map", &self.map)
            .field("need_dx", &self.need_dx)
            .field("backend", &self.origin.name())
            .finish_non_exhaustive()
    }
}

impl<R: Ring> BilinearTape<R> {
    /// The map of the product.
    pub fn map(&self) -> Bilinear {
        self.map
    }

    /// Whether the backward pass computes the input gradient.
    pub fn need_dx(&self) -> bool {
        self.need_dx
    }
}

/// Checks the backward operands against the tape's map.
fn check_backward<R: Ring>(
    tape: &BilinearTape<R>,
    dz: &RingTensor<R>,
    y: &RingTensor<R>,
) -> Result<(), MpcError> {
    let (_, sy, sz) = tape.map.shapes()?;
    for (what, want, got) in [
        ("output gradient", sz, dz.shape()),
        ("right operand", sy, y.shape()),
    ] {
        if want.iter().product::<usize>() != got.iter().product::<usize>() {
            return Err(MpcError::SizeMismatch {
                what,
                expected: want.iter().product(),
                got: got.iter().product(),
            });
        }
    }
    Ok(())
}

/// A count of elements that the pool's input length bounds.
fn count(v: u64) -> Result<usize, MpcError> {
    usize::try_from(v).map_err(|_| MpcError::InvalidParameter(format!("{v} elements")))
}

/// Checks the operands of `map` (exact shapes); the output's shape.
pub(crate) fn check_bilinear<R: Ring>(
    map: &Bilinear,
    x: &RingTensor<R>,
    y: &RingTensor<R>,
) -> Result<Vec<usize>, MpcError> {
    let (sx, sy, sz) = map.shapes()?;
    for (what, want, got) in [
        ("left operand", sx, x.shape()),
        ("right operand", sy, y.shape()),
    ] {
        if want.as_slice() != got {
            return Err(MpcError::SizeMismatch {
                what,
                expected: want.iter().product(),
                got: got.iter().product(),
            });
        }
    }
    Ok(sz)
}

// ------------------------------------------------------------- the session

impl<T: Transport + ?Sized, S: PreprocessingSource<R> + ?Sized, R: Ring> Gates<R>
    for Session<'_, T, S, R>
{
    fn party(&self) -> Party {
        self.transport().party()
    }
    fn probe(&self) -> Probe {
        Probe {
            gates: self.position(),
            comm: self.transport().stats(),
            exchange_time: self.transport().exchange_time(),
            key_wait: self.key_wait(),
            product_time: self.product_time().0,
            product_exchange_time: self.product_time().1,
        }
    }
    fn bilinear(
        &mut self,
        map: Bilinear,
        x: &RingTensor<R>,
        y: &RingTensor<R>,
    ) -> Result<RingTensor<R>, MpcError> {
        Session::bilinear(self, map, x, y)
    }
    fn bilinear_weight(
        &mut self,
        name: &str,
        map: Bilinear,
        x: &RingTensor<R>,
        w: &RingTensor<R>,
    ) -> Result<RingTensor<R>, MpcError> {
        Session::bilinear_weight(self, name, map, x, w)
    }
    fn reuses_weight_masks(&self) -> bool {
        Session::reuses_weight_masks(self)
    }
    fn bilinear_train(
        &mut self,
        map: Bilinear,
        x: &RingTensor<R>,
        y: &RingTensor<R>,
        need_dx: bool,
    ) -> Result<(RingTensor<R>, BilinearTape<R>), MpcError> {
        Session::bilinear_train(self, map, x, y, need_dx)
    }
    fn bilinear_backward(
        &mut self,
        tape: BilinearTape<R>,
        dz: &RingTensor<R>,
        y: &RingTensor<R>,
    ) -> Result<(Option<RingTensor<R>>, RingTensor<R>), MpcError> {
        Session::bilinear_backward(self, tape, dz, y)
    }
    fn truncate(&mut self, x: &[R], f: u32, k: u32) -> Result<Vec<R>, MpcError> {
        Session::truncate(self, x, f, k)
    }
    fn truncate_small(&mut self, x: &[R], f: u32, k: u32) -> Result<Vec<R>, MpcError> {
        Session::truncate_small(self, x, f, k)
    }
    fn truncate_stochastic(&mut self, x: &[R], f: u32, k: u32) -> Result<Vec<R>, MpcError> {
        Session::truncate_stochastic(self, x, f, k)
    }
    fn relu(&mut self, x: &[R], k: u32) -> Result<ReluOutput<R>, MpcError> {
        Session::relu(self, x, k)
    }
    fn drelu(&mut self, x: &[R], k: u32) -> Result<Vec<R>, MpcError> {
        Session::drelu(self, x, k)
    }
    fn eq_zero(&mut self, x: &[R], k: u32) -> Result<Vec<R>, MpcError> {
        Session::eq_zero(self, x, k)
    }
    fn max_pool(
        &mut self,
        x: &[R],
        shape: PoolShape,
        k: u32,
    ) -> Result<MaxPoolOutput<R>, MpcError> {
        Session::max_pool(self, x, shape, k)
    }
    fn max_pool_one_hot(
        &mut self,
        x: &[R],
        shape: PoolShape,
        k: u32,
    ) -> Result<MaxPoolOutput<R>, MpcError> {
        Session::max_pool_one_hot(self, x, shape, k)
    }
    fn batch_norm(
        &mut self,
        x: &[R],
        shape: BatchNormShape,
        gamma: &[R],
        beta: &[R],
        eps: f64,
    ) -> Result<BatchNormOutput<R>, MpcError> {
        Session::batch_norm(self, x, shape, gamma, beta, eps)
    }
    fn argmax(&mut self, x: &[R], rows: usize, n: usize, k: u32) -> Result<Vec<R>, MpcError> {
        Session::argmax(self, x, rows, n, k)
    }
    fn spline(&mut self, func: SplineFn, x: &[R], k: u32) -> Result<Vec<R>, MpcError> {
        Session::spline(self, func, x, k)
    }
    fn relu_small(&mut self, x: &[R], k: u32) -> Result<ReluOutput<R>, MpcError> {
        Session::relu_small(self, x, k)
    }
    fn trunc_relu(&mut self, x: &[R], f: u32, k: u32) -> Result<Vec<R>, MpcError> {
        Session::trunc_relu(self, x, f, k)
    }
    fn max_pool_small(
        &mut self,
        x: &[R],
        shape: PoolShape,
        k: u32,
    ) -> Result<MaxPoolOutput<R>, MpcError> {
        Session::max_pool_small(self, x, shape, k)
    }
    fn argmax_small(&mut self, x: &[R], rows: usize, n: usize, k: u32) -> Result<Vec<R>, MpcError> {
        Session::argmax_small(self, x, rows, n, k)
    }
}

// ------------------------------------------------------- cleartext backend

/// Cleartext fixed point: each gate's function on plain ring values, with
/// the private run's arithmetic (wrapping products, floor truncation, the
/// same comparison trees and tie rules). Inside the gates' windows a private
/// run reconstructs to exactly this backend's output. Outside them the
/// private gates see `x mod 2^k` while this backend sees the whole ring
/// element (the documented value bounds exclude that case).
///
/// The stochastic truncation ([`Gates::truncate_stochastic`]) needs coins:
/// [`Clear::stochastic`] draws them from a seeded generator (the same
/// distribution as the private gate's, not the same bits); [`Clear::new`]
/// refuses that gate.
#[derive(Debug, Default, Clone)]
pub struct Clear {
    coins: Option<rand_chacha::ChaCha12Rng>,
}

impl Clear {
    /// The cleartext backend (every gate but the stochastic truncation).
    pub fn new() -> Self {
        Clear { coins: None }
    }

    /// The cleartext backend whose stochastic truncations round up with
    /// coins from a generator seeded with `seed`.
    pub fn stochastic(seed: u64) -> Self {
        use rand::SeedableRng;
        Clear {
            coins: Some(rand_chacha::ChaCha12Rng::seed_from_u64(seed)),
        }
    }
}

fn ge0<R: Ring>(v: R) -> bool {
    v.to_i64() >= 0
}

fn bit<R: Ring>(b: bool) -> R {
    if b { R::ONE } else { R::ZERO }
}

impl<R: Ring> Gates<R> for Clear {
    fn party(&self) -> Party {
        Party::P0
    }
    fn bilinear(
        &mut self,
        map: Bilinear,
        x: &RingTensor<R>,
        y: &RingTensor<R>,
    ) -> Result<RingTensor<R>, MpcError> {
        check_bilinear(&map, x, y)?;
        map.apply(x, y)
    }
    fn bilinear_train(
        &mut self,
        map: Bilinear,
        x: &RingTensor<R>,
        y: &RingTensor<R>,
        need_dx: bool,
    ) -> Result<(RingTensor<R>, BilinearTape<R>), MpcError> {
        check_bilinear(&map, x, y)?;
        let z = map.apply(x, y)?;
        Ok((
            z,
            BilinearTape {
                map,
                need_dx,
                x: x.clone(),
                origin: TapeOrigin::Clear,
            },
        ))
    }
    fn bilinear_backward(
        &mut self,
        tape: BilinearTape<R>,
        dz: &RingTensor<R>,
        y: &RingTensor<R>,
    ) -> Result<(Option<RingTensor<R>>, RingTensor<R>), MpcError> {
        if !matches!(tape.origin, TapeOrigin::Clear) {
            return Err(foreign_tape(&tape, TapeOrigin::<R>::Clear.name()));
        }
        check_backward(&tape, dz, y)?;
        let dx = if tape.need_dx {
            Some(tape.map.back_x(dz, y)?)
        } else {
            None
        };
        Ok((dx, tape.map.back_y(&tape.x, dz)?))
    }
    fn truncate(&mut self, x: &[R], f: u32, _k: u32) -> Result<Vec<R>, MpcError> {
        Ok(x.iter().map(|v| v.sar(f)).collect())
    }
    fn truncate_small(&mut self, x: &[R], f: u32, _k: u32) -> Result<Vec<R>, MpcError> {
        Ok(x.iter().map(|v| v.sar(f)).collect())
    }
    fn truncate_stochastic(&mut self, x: &[R], f: u32, _k: u32) -> Result<Vec<R>, MpcError> {
        use rand::Rng;
        let Some(coins) = self.coins.as_mut() else {
            return Err(MpcError::InvalidParameter(
                "the stochastic truncation needs a cleartext backend with coins \
                 (Clear::stochastic(seed))"
                    .into(),
            ));
        };
        if !(1..R::BITS).contains(&f) {
            return Err(MpcError::InvalidParameter(format!(
                "truncation needs 1 <= f < {} (got f = {f})",
                R::BITS
            )));
        }
        let low = (1u64 << f) - 1;
        Ok(x.iter()
            .map(|v| {
                // The private gate's coin: the carry of x's low bits and a
                // uniform f-bit value.
                let u = coins.random::<u64>() & low;
                let carry = (v.to_u64() & low) + u > low;
                v.sar(f).wadd(if carry { R::ONE } else { R::ZERO })
            })
            .collect())
    }
    fn relu(&mut self, x: &[R], _k: u32) -> Result<ReluOutput<R>, MpcError> {
        Ok(ReluOutput {
            relu: x
                .iter()
                .map(|v| if ge0(*v) { *v } else { R::ZERO })
                .collect(),
            drelu: x.iter().map(|v| bit(ge0(*v))).collect(),
        })
    }
    fn drelu(&mut self, x: &[R], _k: u32) -> Result<Vec<R>, MpcError> {
        Ok(x.iter().map(|v| bit(ge0(*v))).collect())
    }
    fn eq_zero(&mut self, x: &[R], _k: u32) -> Result<Vec<R>, MpcError> {
        Ok(x.iter().map(|v| bit(*v == R::ZERO)).collect())
    }
    fn max_pool(
        &mut self,
        x: &[R],
        shape: PoolShape,
        _k: u32,
    ) -> Result<MaxPoolOutput<R>, MpcError> {
        clear_max_pool(x, shape)
    }
    fn max_pool_one_hot(
        &mut self,
        x: &[R],
        shape: PoolShape,
        _k: u32,
    ) -> Result<MaxPoolOutput<R>, MpcError> {
        check_len("max-pool input", shape.input_len(), x.len())?;
        let wins = shape.windows()?;
        let vals: Vec<R> = wins.iter().flatten().map(|i| x[*i]).collect();
        let lens: Vec<usize> = wins.iter().map(Vec::len).collect();
        let c: Vec<R> = pairwise_diffs(&vals, &lens)
            .into_iter()
            .map(|d| bit(ge0(d)))
            .collect();
        let onehot: Vec<R> = shifted_scores(&c, &lens, Party::P0)
            .into_iter()
            .map(|s| bit(s == R::ZERO))
            .collect();
        let mut max = Vec::with_capacity(wins.len());
        let mut at = 0;
        for w in &wins {
            max.push((at..at + w.len()).fold(R::ZERO, |acc, i| acc.wadd(onehot[i].wmul(vals[i]))));
            at += w.len();
        }
        Ok(MaxPoolOutput {
            max,
            selections: vec![onehot],
        })
    }
    fn batch_norm(
        &mut self,
        x: &[R],
        s: BatchNormShape,
        gamma: &[R],
        beta: &[R],
        eps: f64,
    ) -> Result<BatchNormOutput<R>, MpcError> {
        // The private gate's steps (see `gates::batchnorm`), on clear values.
        let (c, len, f) = (s.c, s.len(), BN_FRAC_BITS);
        check_len("input", len, x.len())?;
        check_len("gamma", c, gamma.len())?;
        check_len("beta", c, beta.len())?;
        let e = s.log2_m();
        let cm = s.inv_m::<R>(PM);
        let mu: Vec<R> = s
            .channel_sums(x)
            .iter()
            .map(|v| v.wmul(cm).sar(e + PM))
            .collect();
        let xc: Vec<R> = x
            .iter()
            .enumerate()
            .map(|(i, v)| v.wsub(mu[s.channel_of(i)]))
            .collect();
        let sq: Vec<R> = xc.iter().map(|v| v.wmul(*v).sar(f)).collect();
        let cv = s.inv_m::<R>(PV);
        let eps_fp = R::from_u64((eps * f64::from(1u32 << f)).round().max(0.0) as u64);
        let var: Vec<R> = s
            .channel_sums(&sq)
            .iter()
            .map(|v| v.wmul(cv).sar(e + PV).wadd(eps_fp))
            .collect();
        let spline = inv_sqrt_spline(f);
        let inv_std: Vec<R> = var.iter().map(|v| spline.eval_clear(*v)).collect();
        let g: Vec<R> = gamma
            .iter()
            .zip(&inv_std)
            .map(|(a, b)| a.wmul(*b).sar(2 * f))
            .collect();
        let y = xc
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let ch = s.channel_of(i);
                g[ch].wmul(*v).sar(f).wadd(beta[ch])
            })
            .collect();
        Ok(BatchNormOutput {
            y,
            centered: xc,
            inv_std,
        })
    }
    fn argmax(&mut self, x: &[R], rows: usize, n: usize, _k: u32) -> Result<Vec<R>, MpcError> {
        clear_argmax(x, rows, n)
    }
    fn spline(&mut self, func: SplineFn, x: &[R], k: u32) -> Result<Vec<R>, MpcError> {
        // The gate's spline, checked as the dealer checks it.
        let spline = func.gate_spline::<R>(k)?;
        Ok(x.iter().map(|v| spline.eval_clear(*v)).collect())
    }
    fn relu_small(&mut self, x: &[R], k: u32) -> Result<ReluOutput<R>, MpcError> {
        Gates::<R>::relu(self, x, k)
    }
    fn trunc_relu(&mut self, x: &[R], f: u32, _k: u32) -> Result<Vec<R>, MpcError> {
        // Floor truncation (arithmetic shift), then max(., 0).
        Ok(x.iter()
            .map(|v| {
                let t = v.sar(f);
                if ge0(t) { t } else { R::ZERO }
            })
            .collect())
    }
    fn max_pool_small(
        &mut self,
        x: &[R],
        shape: PoolShape,
        _k: u32,
    ) -> Result<MaxPoolOutput<R>, MpcError> {
        clear_max_pool(x, shape)
    }
    fn argmax_small(
        &mut self,
        x: &[R],
        rows: usize,
        n: usize,
        _k: u32,
    ) -> Result<Vec<R>, MpcError> {
        clear_argmax(x, rows, n)
    }
}

/// The max tree on clear values: at each level, pairs `(a, b)` become
/// `b + ReLU(a - b)`, the selection bit is `[a - b >= 0]` (both max-pool
/// gates, whatever their level keys).
fn clear_max_pool<R: Ring>(x: &[R], shape: PoolShape) -> Result<MaxPoolOutput<R>, MpcError> {
    check_len("max-pool input", shape.input_len(), x.len())?;
    // The same tree as the private gate: at each level, pairs (a, b)
    // become b + ReLU(a - b), the selection bit is [a - b >= 0].
    let mut cur: Vec<Vec<R>> = shape
        .windows()?
        .iter()
        .map(|w| w.iter().map(|i| x[*i]).collect())
        .collect();
    let mut selections = Vec::new();
    while cur.iter().any(|w| w.len() > 1) {
        let mut sel = Vec::new();
        for win in cur.iter_mut() {
            let mut next = Vec::with_capacity(win.len().div_ceil(2));
            for pair in win.chunks(2) {
                match *pair {
                    [a, b] => {
                        let d = a.wsub(b);
                        let up = ge0(d);
                        sel.push(bit(up));
                        next.push(b.wadd(if up { d } else { R::ZERO }));
                    }
                    [a] => next.push(a),
                    _ => {}
                }
            }
            *win = next;
        }
        selections.push(sel);
    }
    Ok(MaxPoolOutput {
        max: cur.into_iter().map(|w| w[0]).collect(),
        selections,
    })
}
/// One-hot argmax on clear values, ties to the first (both argmax gates).
fn clear_argmax<R: Ring>(x: &[R], rows: usize, n: usize) -> Result<Vec<R>, MpcError> {
    if n == 0 {
        return Err(MpcError::InvalidParameter("argmax over 0 values".into()));
    }
    check_len("argmax input", rows * n, x.len())?;
    let lens = vec![n; rows];
    let c: Vec<R> = pairwise_diffs(x, &lens)
        .into_iter()
        .map(|d| bit(ge0(d)))
        .collect();
    Ok(shifted_scores(&c, &lens, Party::P0)
        .into_iter()
        .map(|s| bit(s == R::ZERO))
        .collect())
}

// ---------------------------------------------------------------- recorder

/// Records the gate of every call and returns zero placeholders of the
/// right sizes: running the parties' code on a recorder yields the plan.
/// It checks sizes as the private gates do, so a plan that records cleanly
/// is a plan the parties can run.
#[derive(Debug, Default, Clone)]
pub struct Recorder {
    gates: Vec<GateDesc>,
    /// Whether products with named weights reuse their masks.
    reuse: bool,
    /// The plan index of the first product with each named weight.
    weight_gates: std::collections::BTreeMap<String, u64>,
}

impl Recorder {
    /// An empty trace.
    pub fn new() -> Self {
        Self::default()
    }
    /// An empty trace of code run with weight masks reused: the trace of
    /// a [`Session::with_weight_reuse`] (see [`Gates::bilinear_weight`]).
    pub fn with_weight_reuse() -> Self {
        Self {
            reuse: true,
            ..Self::default()
        }
    }
    /// The gates recorded so far, in order.
    pub fn gates(&self) -> &[GateDesc] {
        &self.gates
    }
    /// The recorded gates.
    pub fn into_gates(self) -> Vec<GateDesc> {
        self.gates
    }
}

impl<R: Ring> Gates<R> for Recorder {
    fn party(&self) -> Party {
        Party::P0
    }
    fn probe(&self) -> Probe {
        Probe {
            gates: self.gates.len() as u64,
            ..Probe::default()
        }
    }
    fn bilinear(
        &mut self,
        map: Bilinear,
        x: &RingTensor<R>,
        y: &RingTensor<R>,
    ) -> Result<RingTensor<R>, MpcError> {
        let out = check_bilinear(&map, x, y)?;
        self.gates.push(GateDesc::Triple(map));
        Ok(RingTensor::zeros(&out))
    }
    fn bilinear_weight(
        &mut self,
        name: &str,
        map: Bilinear,
        x: &RingTensor<R>,
        w: &RingTensor<R>,
    ) -> Result<RingTensor<R>, MpcError> {
        let out = check_bilinear(&map, x, w)?;
        let index = self.gates.len() as u64;
        match self.weight_gates.get(name) {
            Some(&from) if self.reuse => self.gates.push(GateDesc::TripleReuse { map, from }),
            _ => {
                self.gates.push(GateDesc::Triple(map));
                if self.reuse {
                    self.weight_gates.insert(name.to_string(), index);
                }
            }
        }
        Ok(RingTensor::zeros(&out))
    }
    fn reuses_weight_masks(&self) -> bool {
        self.reuse
    }
    fn bilinear_train(
        &mut self,
        map: Bilinear,
        x: &RingTensor<R>,
        y: &RingTensor<R>,
        need_dx: bool,
    ) -> Result<(RingTensor<R>, BilinearTape<R>), MpcError> {
        let out = check_bilinear(&map, x, y)?;
        self.gates.push(GateDesc::TrainTriple { map, dx: need_dx });
        Ok((
            RingTensor::zeros(&out),
            BilinearTape {
                map,
                need_dx,
                // The backward returns placeholders: no copy of `x` kept.
                x: RingTensor::zeros(&[0]),
                origin: TapeOrigin::Recorder,
            },
        ))
    }
    fn bilinear_backward(
        &mut self,
        tape: BilinearTape<R>,
        dz: &RingTensor<R>,
        y: &RingTensor<R>,
    ) -> Result<(Option<RingTensor<R>>, RingTensor<R>), MpcError> {
        // The backward reuses the forward's key: nothing to record.
        if !matches!(tape.origin, TapeOrigin::Recorder) {
            return Err(foreign_tape(&tape, TapeOrigin::<R>::Recorder.name()));
        }
        check_backward(&tape, dz, y)?;
        let (sx, sy, _) = tape.map.shapes()?;
        let dx = tape.need_dx.then(|| RingTensor::zeros(&sx));
        Ok((dx, RingTensor::zeros(&sy)))
    }
    fn truncate(&mut self, x: &[R], f: u32, k: u32) -> Result<Vec<R>, MpcError> {
        self.gates.push(GateDesc::Trunc { m: x.len(), f, k });
        Ok(vec![R::ZERO; x.len()])
    }
    fn truncate_small(&mut self, x: &[R], f: u32, k: u32) -> Result<Vec<R>, MpcError> {
        self.gates.push(GateDesc::TruncSmall { m: x.len(), f, k });
        Ok(vec![R::ZERO; x.len()])
    }
    fn truncate_stochastic(&mut self, x: &[R], f: u32, k: u32) -> Result<Vec<R>, MpcError> {
        self.gates.push(GateDesc::TruncStoch { m: x.len(), f, k });
        Ok(vec![R::ZERO; x.len()])
    }
    fn relu(&mut self, x: &[R], k: u32) -> Result<ReluOutput<R>, MpcError> {
        self.gates.push(GateDesc::Relu { m: x.len(), k });
        Ok(ReluOutput {
            relu: vec![R::ZERO; x.len()],
            drelu: vec![R::ZERO; x.len()],
        })
    }
    fn drelu(&mut self, x: &[R], k: u32) -> Result<Vec<R>, MpcError> {
        self.gates.push(GateDesc::Drelu { m: x.len(), k });
        Ok(vec![R::ZERO; x.len()])
    }
    fn eq_zero(&mut self, x: &[R], k: u32) -> Result<Vec<R>, MpcError> {
        self.gates.push(GateDesc::EqZero { m: x.len(), k });
        Ok(vec![R::ZERO; x.len()])
    }
    fn max_pool(
        &mut self,
        x: &[R],
        shape: PoolShape,
        k: u32,
    ) -> Result<MaxPoolOutput<R>, MpcError> {
        let out = tree_placeholders(x, &shape)?;
        self.gates.push(GateDesc::MaxPool { shape, k });
        Ok(out)
    }
    fn max_pool_one_hot(
        &mut self,
        x: &[R],
        shape: PoolShape,
        k: u32,
    ) -> Result<MaxPoolOutput<R>, MpcError> {
        check_len("max-pool input", shape.input_len(), x.len())?;
        let sizes = shape.window_sizes()?;
        let outputs = count(sizes.iter().map(|(_, m)| *m).sum())?;
        let total = count(sizes.iter().map(|(l, m)| l * m).sum())?;
        self.gates.push(GateDesc::MaxPoolOneHot { shape, k });
        Ok(MaxPoolOutput {
            max: vec![R::ZERO; outputs],
            selections: vec![vec![R::ZERO; total]],
        })
    }
    fn batch_norm(
        &mut self,
        x: &[R],
        shape: BatchNormShape,
        gamma: &[R],
        beta: &[R],
        _eps: f64,
    ) -> Result<BatchNormOutput<R>, MpcError> {
        check_len("input", shape.len(), x.len())?;
        check_len("gamma", shape.c, gamma.len())?;
        check_len("beta", shape.c, beta.len())?;
        self.gates.push(GateDesc::BatchNorm(shape));
        Ok(BatchNormOutput {
            y: vec![R::ZERO; x.len()],
            centered: vec![R::ZERO; x.len()],
            inv_std: vec![R::ZERO; shape.c],
        })
    }
    fn argmax(&mut self, x: &[R], rows: usize, n: usize, k: u32) -> Result<Vec<R>, MpcError> {
        if n == 0 {
            return Err(MpcError::InvalidParameter("argmax over 0 values".into()));
        }
        check_len("argmax input", rows * n, x.len())?;
        self.gates.push(GateDesc::Argmax { rows, n, k });
        Ok(vec![R::ZERO; x.len()])
    }
    fn spline(&mut self, func: SplineFn, x: &[R], k: u32) -> Result<Vec<R>, MpcError> {
        func.gate_spline::<R>(k)?;
        self.gates.push(GateDesc::Spline {
            func,
            m: x.len(),
            k,
        });
        Ok(vec![R::ZERO; x.len()])
    }
    fn relu_small(&mut self, x: &[R], k: u32) -> Result<ReluOutput<R>, MpcError> {
        self.gates.push(GateDesc::ReluSmall { m: x.len(), k });
        Ok(ReluOutput {
            relu: vec![R::ZERO; x.len()],
            drelu: vec![R::ZERO; x.len()],
        })
    }
    fn trunc_relu(&mut self, x: &[R], f: u32, k: u32) -> Result<Vec<R>, MpcError> {
        self.gates.push(GateDesc::TruncRelu { m: x.len(), f, k });
        Ok(vec![R::ZERO; x.len()])
    }
    fn max_pool_small(
        &mut self,
        x: &[R],
        shape: PoolShape,
        k: u32,
    ) -> Result<MaxPoolOutput<R>, MpcError> {
        let out = tree_placeholders(x, &shape)?;
        self.gates.push(GateDesc::MaxPoolSmall { shape, k });
        Ok(out)
    }
    fn argmax_small(&mut self, x: &[R], rows: usize, n: usize, k: u32) -> Result<Vec<R>, MpcError> {
        if n == 0 {
            return Err(MpcError::InvalidParameter("argmax over 0 values".into()));
        }
        check_len("argmax input", rows * n, x.len())?;
        self.gates.push(GateDesc::ArgmaxSmall { rows, n, k });
        Ok(vec![R::ZERO; x.len()])
    }
}

/// The recorder's output of a max tree: zeros of the sizes the private
/// gate returns, from the histogram of window sizes (the same counts as
/// the tree, without building the windows).
fn tree_placeholders<R: Ring>(x: &[R], shape: &PoolShape) -> Result<MaxPoolOutput<R>, MpcError> {
    check_len("max-pool input", shape.input_len(), x.len())?;
    let sizes = shape.window_sizes()?;
    let outputs = count(sizes.iter().map(|(_, m)| *m).sum())?;
    let levels = tree_levels(&sizes)?;
    Ok(MaxPoolOutput {
        max: vec![R::ZERO; outputs],
        selections: levels
            .into_iter()
            .map(|m| count(m).map(|m| vec![R::ZERO; m]))
            .collect::<Result<_, _>>()?,
    })
}

/// A [`PreprocessingSource`] that also records: what a [`Session`] asks
/// for. Used by tests to compare a recorder's plan with the gates a private
/// run actually consumes.
#[derive(Debug)]
pub struct Tracing<'a, S: ?Sized> {
    inner: &'a mut S,
    seen: Vec<GateDesc>,
}

impl<'a, S: ?Sized> Tracing<'a, S> {
    /// Wraps `inner`.
    pub fn new(inner: &'a mut S) -> Self {
        Self {
            inner,
            seen: Vec::new(),
        }
    }
    /// The gates handed out so far, in order.
    pub fn seen(&self) -> &[GateDesc] {
        &self.seen
    }
}

impl<R: Ring, S: PreprocessingSource<R> + ?Sized> PreprocessingSource<R> for Tracing<'_, S> {
    fn next_bundle(&mut self, party: Party, expected: &BundleTag) -> Result<GateKey<R>, MpcError> {
        let k = self.inner.next_bundle(party, expected)?;
        self.seen.push(expected.gate);
        Ok(k)
    }
}

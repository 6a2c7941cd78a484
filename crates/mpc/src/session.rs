//! A party's view of a running job: its transport, its source of key bundles
//! and the position in the plan. Each call runs one gate of the plan: it
//! fetches the gate's bundle (checking kind, shape, index and party before
//! anything is opened), then masks, opens and finishes.
//!
//! A session also holds the weight openings it keeps for reuse
//! ([`crate::gates::reuse`]): with [`Session::with_weight_reuse`], the first
//! product with each named weight ([`Gates::bilinear_weight`](crate::Gates::bilinear_weight)) keeps the
//! opened `W - B`, and later products with it run `triple_reuse` gates. The
//! store lives as long as the session (one job) and is dropped with it.

use crate::backend::{BilinearTape, check_bilinear};
use crate::bundle::{BundleTag, GateDesc, GateKey, PreprocessingSource};
use crate::error::MpcError;
use crate::gates::beaver::Bilinear;
use crate::gates::cmp::ReluOutput;
use crate::gates::pool::{MaxPoolOutput, PoolShape};
use crate::gates::reuse::{WeightMasks, eval_keeping};
use crate::gates::spline::SplineFn;
use crate::gates::train;
use crate::transport::Transport;
use ariann_ring::{Ring, RingTensor};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One party's side of a job in progress.
#[derive(Debug)]
pub struct Session<'a, T: Transport + ?Sized, S: PreprocessingSource<R> + ?Sized, R: Ring> {
    transport: &'a mut T,
    source: &'a mut S,
    next: u64,
    /// Whether products with named weights reuse their masks.
    reuse: bool,
    /// The plan index of the first product with each named weight.
    weight_gates: BTreeMap<String, u64>,
    /// The weight openings kept for reuse, by plan index.
    weights: WeightMasks<R>,
    /// Times for a profile, if counted ([`Session::with_key_timing`]).
    timing: Option<Timing>,
}

/// What a timed session counts ([`Session::with_key_timing`]).
#[derive(Debug, Default, Clone, Copy)]
struct Timing {
    /// Waiting for key bundles.
    key_wait: Duration,
    /// Evaluating product gates (after their key arrived).
    products: Duration,
    /// The transport's exchange time during product gates.
    product_exchanges: Duration,
}

impl<'a, T: Transport + ?Sized, S: PreprocessingSource<R> + ?Sized, R: Ring> Session<'a, T, S, R> {
    /// A session at the start of a plan.
    pub fn new(transport: &'a mut T, source: &'a mut S) -> Self {
        Self {
            transport,
            source,
            next: 0,
            reuse: false,
            weight_gates: BTreeMap::new(),
            weights: WeightMasks::new(),
            timing: None,
        }
    }

    /// This session, counting for a profile the time spent waiting for key
    /// bundles ([`Session::key_wait`]) and in product gates
    /// ([`Session::product_time`]): two clock reads per gate.
    pub fn with_key_timing(mut self) -> Self {
        self.timing = Some(Timing::default());
        self
    }

    /// Time spent waiting for key bundles so far (zero unless
    /// [`Session::with_key_timing`]).
    pub fn key_wait(&self) -> Duration {
        self.timing.map(|t| t.key_wait).unwrap_or_default()
    }

    /// Time spent evaluating product gates (`triple`, `triple_reuse`; from
    /// their key's arrival to their output) so far, and the transport's
    /// exchange time within it (zero unless [`Session::with_key_timing`]).
    pub fn product_time(&self) -> (Duration, Duration) {
        self.timing
            .map(|t| (t.products, t.product_exchanges))
            .unwrap_or_default()
    }

    /// Starts timing a product gate, if timed.
    fn product_start(&self) -> Option<(Instant, Duration)> {
        self.timing
            .map(|_| (Instant::now(), self.transport.exchange_time()))
    }

    /// Ends timing a product gate.
    fn product_end(&mut self, start: Option<(Instant, Duration)>) {
        if let (Some(t), Some((at, ex))) = (self.timing.as_mut(), start) {
            t.products += at.elapsed();
            t.product_exchanges += self.transport.exchange_time().saturating_sub(ex);
        }
    }

    /// This session with weight masks reused across products
    /// ([`crate::gates::reuse`]): the first product with each named weight
    /// ([`Gates::bilinear_weight`](crate::Gates::bilinear_weight)) keeps its opening, later ones reuse
    /// it. The plan must have been traced the same way
    /// ([`crate::Recorder::with_weight_reuse`]). Inference only: weights
    /// that change need a fresh mask.
    pub fn with_weight_reuse(mut self) -> Self {
        self.reuse = true;
        self
    }

    /// Whether products with named weights reuse their masks.
    pub fn reuses_weight_masks(&self) -> bool {
        self.reuse
    }

    /// The weight openings this session keeps.
    pub fn weight_masks(&self) -> &WeightMasks<R> {
        &self.weights
    }

    /// Index of the next gate of the plan.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// The transport (for its counters).
    pub fn transport(&self) -> &T {
        self.transport
    }

    /// The transport, mutable: for messages of the job between gates (a
    /// training job's per-step input shares cross the link inside one
    /// session, which must consume the whole job's plan in one sequence).
    /// An exchange made here uses no bundle and leaves the position alone;
    /// both parties must make the same exchanges at the same point of the
    /// plan, or the link's lock-step breaks.
    pub fn transport_mut(&mut self) -> &mut T {
        self.transport
    }

    fn key(&mut self, gate: GateDesc) -> Result<GateKey<R>, MpcError> {
        let tag = BundleTag {
            index: self.next,
            gate,
        };
        let party = self.transport.party();
        let key = match &mut self.timing {
            None => self.source.next_bundle(party, &tag)?,
            Some(timing) => {
                let start = Instant::now();
                let key = self.source.next_bundle(party, &tag);
                timing.key_wait += start.elapsed();
                key?
            }
        };
        self.next += 1;
        Ok(key)
    }

    fn wrong(gate: GateDesc) -> MpcError {
        MpcError::BundleMismatch {
            expected: format!("{gate}"),
            got: "a bundle of another kind under the same tag".into(),
        }
    }

    /// ReLU (and its DReLU bits) of `x` on a `k`-bit window.
    pub fn relu(&mut self, x: &[R], k: u32) -> Result<ReluOutput<R>, MpcError> {
        let gate = GateDesc::Relu { m: x.len(), k };
        match self.key(gate)? {
            GateKey::Relu(key) => key.eval(self.transport, x),
            _ => Err(Self::wrong(gate)),
        }
    }

    /// `[x >= 0]` on a `k`-bit window.
    pub fn drelu(&mut self, x: &[R], k: u32) -> Result<Vec<R>, MpcError> {
        let gate = GateDesc::Drelu { m: x.len(), k };
        match self.key(gate)? {
            GateKey::Drelu(key) => key.eval(self.transport, x),
            _ => Err(Self::wrong(gate)),
        }
    }

    /// `[x == 0]` on a `k`-bit window.
    pub fn eq_zero(&mut self, x: &[R], k: u32) -> Result<Vec<R>, MpcError> {
        let gate = GateDesc::EqZero { m: x.len(), k };
        match self.key(gate)? {
            GateKey::EqZero(key) => key.eval(self.transport, x),
            _ => Err(Self::wrong(gate)),
        }
    }

    /// Exact `x >> f` for `x` in a `k`-bit window.
    pub fn truncate(&mut self, x: &[R], f: u32, k: u32) -> Result<Vec<R>, MpcError> {
        let gate = GateDesc::Trunc { m: x.len(), f, k };
        match self.key(gate)? {
            GateKey::Trunc(key) => key.eval(self.transport, x),
            _ => Err(Self::wrong(gate)),
        }
    }

    /// Exact `x >> f` for `x` in a `k`-bit window, with small keys (2 rounds).
    pub fn truncate_small(&mut self, x: &[R], f: u32, k: u32) -> Result<Vec<R>, MpcError> {
        let gate = GateDesc::TruncSmall { m: x.len(), f, k };
        match self.key(gate)? {
            GateKey::TruncSmall(key) => key.eval(self.transport, x),
            _ => Err(Self::wrong(gate)),
        }
    }

    /// Stochastic `x >> f` for `x` in a `k`-bit window: `floor(x / 2^f)`
    /// plus 1 with probability `(x mod 2^f) / 2^f` (1 round, no FSS key).
    pub fn truncate_stochastic(&mut self, x: &[R], f: u32, k: u32) -> Result<Vec<R>, MpcError> {
        let gate = GateDesc::TruncStoch { m: x.len(), f, k };
        match self.key(gate)? {
            GateKey::TruncStoch(key) => key.eval(self.transport, x),
            _ => Err(Self::wrong(gate)),
        }
    }

    /// `x * y` for a bilinear map (elementwise, matmul, conv2d).
    pub fn bilinear(
        &mut self,
        map: Bilinear,
        x: &RingTensor<R>,
        y: &RingTensor<R>,
    ) -> Result<RingTensor<R>, MpcError> {
        let gate = GateDesc::Triple(map);
        match self.key(gate)? {
            GateKey::Triple(key) => {
                let start = self.product_start();
                let z = key.eval(self.transport, x, y);
                self.product_end(start);
                z
            }
            _ => Err(Self::wrong(gate)),
        }
    }

    /// `x * y` for a bilinear map whose right operand `y` is a weight: one
    /// [`GateDesc::Triple`], as [`Session::bilinear`], whose opening of
    /// `y - b` this session keeps under the gate's plan index for later
    /// [`Session::bilinear_reuse`] products. Returns the product and that
    /// index.
    pub fn bilinear_keeping(
        &mut self,
        map: Bilinear,
        x: &RingTensor<R>,
        y: &RingTensor<R>,
    ) -> Result<(RingTensor<R>, u64), MpcError> {
        let gate = GateDesc::Triple(map);
        let index = self.next;
        match self.key(gate)? {
            GateKey::Triple(key) => {
                let start = self.product_start();
                let z = eval_keeping(&key, self.transport, x, y, index, &mut self.weights);
                self.product_end(start);
                let z = z?;
                Ok((z, index))
            }
            _ => Err(Self::wrong(gate)),
        }
    }

    /// `x * y` for a bilinear map whose right operand `y` is the weight
    /// whose opening the product at plan index `from` kept
    /// ([`Session::bilinear_keeping`]): one [`GateDesc::TripleReuse`],
    /// opening only `x - a`. Refused before anything is opened if there
    /// is no such opening ([`MpcError::WeightOpeningMissing`]), if `y` has
    /// another shape ([`MpcError::WeightOpeningShape`]) or another value
    /// ([`MpcError::WeightChanged`]).
    pub fn bilinear_reuse(
        &mut self,
        map: Bilinear,
        from: u64,
        x: &RingTensor<R>,
        y: &RingTensor<R>,
    ) -> Result<RingTensor<R>, MpcError> {
        check_bilinear(&map, x, y)?;
        let gate = GateDesc::TripleReuse { map, from };
        match self.key(gate)? {
            GateKey::TripleReuse(key) => {
                let start = self.product_start();
                let z = key.eval(self.transport, x, y, &self.weights);
                self.product_end(start);
                z
            }
            _ => Err(Self::wrong(gate)),
        }
    }

    /// `x * w` for the weight named `name`: [`Session::bilinear`] without
    /// weight reuse; with it, [`Session::bilinear_keeping`] for the first
    /// product with `name` and [`Session::bilinear_reuse`] of that one's
    /// opening for every later product.
    pub fn bilinear_weight(
        &mut self,
        name: &str,
        map: Bilinear,
        x: &RingTensor<R>,
        w: &RingTensor<R>,
    ) -> Result<RingTensor<R>, MpcError> {
        if !self.reuse {
            return self.bilinear(map, x, w);
        }
        if let Some(&from) = self.weight_gates.get(name) {
            return self.bilinear_reuse(map, from, x, w);
        }
        let (z, index) = self.bilinear_keeping(map, x, w)?;
        self.weight_gates.insert(name.to_string(), index);
        Ok(z)
    }

    /// Training forward of `x * y` for a bilinear map: this party's share of
    /// the product and the tape for [`Session::bilinear_backward`]. One
    /// [`GateDesc::TrainTriple`] bundle (its key serves the backward too),
    /// one round. Operand shapes are checked before the bundle is fetched.
    pub fn bilinear_train(
        &mut self,
        map: Bilinear,
        x: &RingTensor<R>,
        y: &RingTensor<R>,
        need_dx: bool,
    ) -> Result<(RingTensor<R>, BilinearTape<R>), MpcError> {
        check_bilinear(&map, x, y)?;
        let gate = GateDesc::TrainTriple { map, dx: need_dx };
        match self.key(gate)? {
            GateKey::TrainTriple(key) => key.forward(self.transport, x, y),
            _ => Err(Self::wrong(gate)),
        }
    }

    /// Backward of a training product made by [`Session::bilinear_train`]:
    /// this party's shares of `dx` (if the forward asked for it) and `dy`
    /// for its shares of the output gradient `dz` and of the forward's right
    /// operand `y`. One round, no bundle (see [`train::backward`]).
    pub fn bilinear_backward(
        &mut self,
        tape: BilinearTape<R>,
        dz: &RingTensor<R>,
        y: &RingTensor<R>,
    ) -> Result<(Option<RingTensor<R>>, RingTensor<R>), MpcError> {
        train::backward(self.transport, tape, dz, y)
    }

    /// Max-pool of `x` (flat `n, c, h, w`) on a `k`-bit window.
    pub fn max_pool(
        &mut self,
        x: &[R],
        shape: PoolShape,
        k: u32,
    ) -> Result<MaxPoolOutput<R>, MpcError> {
        let gate = GateDesc::MaxPool { shape, k };
        match self.key(gate)? {
            GateKey::MaxPool(key) => key.eval(self.transport, x),
            _ => Err(Self::wrong(gate)),
        }
    }

    /// Max-pool of `x` in 3 rounds (one-hot arg-max selection kept).
    pub fn max_pool_one_hot(
        &mut self,
        x: &[R],
        shape: PoolShape,
        k: u32,
    ) -> Result<MaxPoolOutput<R>, MpcError> {
        let gate = GateDesc::MaxPoolOneHot { shape, k };
        match self.key(gate)? {
            GateKey::MaxPoolOneHot(key) => key.eval(self.transport, x),
            _ => Err(Self::wrong(gate)),
        }
    }

    /// Batch normalisation (training forward) of `x` with shares of the
    /// per-channel `gamma`, `beta`; 9 rounds.
    pub fn batch_norm(
        &mut self,
        x: &[R],
        shape: crate::gates::batchnorm::BatchNormShape,
        gamma: &[R],
        beta: &[R],
        eps: f64,
    ) -> Result<crate::gates::batchnorm::BatchNormOutput<R>, MpcError> {
        let gate = GateDesc::BatchNorm(shape);
        match self.key(gate)? {
            GateKey::BatchNorm(key) => key.eval(self.transport, x, gamma, beta, eps),
            _ => Err(Self::wrong(gate)),
        }
    }

    /// The public function `func` of each element of `x` (`f` fractional
    /// bits, `|x| < 2^(k-2)`) by a one-round spline, with `2 f` fractional
    /// bits: one [`GateDesc::Spline`].
    pub fn spline(&mut self, func: SplineFn, x: &[R], k: u32) -> Result<Vec<R>, MpcError> {
        let gate = GateDesc::Spline {
            func,
            m: x.len(),
            k,
        };
        match self.key(gate)? {
            GateKey::Spline(key) => key.eval(self.transport, x),
            _ => Err(Self::wrong(gate)),
        }
    }

    /// ReLU (and its DReLU bits) of `x` on a `k`-bit window with small keys,
    /// in 2 rounds: one [`GateDesc::ReluSmall`].
    pub fn relu_small(&mut self, x: &[R], k: u32) -> Result<ReluOutput<R>, MpcError> {
        let gate = GateDesc::ReluSmall { m: x.len(), k };
        match self.key(gate)? {
            GateKey::ReluSmall(key) => key.eval(self.transport, x),
            _ => Err(Self::wrong(gate)),
        }
    }

    /// Exact `max(x >> f, 0)` for `|x >> f| < 2^(k-1)`, in 2 rounds: one
    /// [`GateDesc::TruncRelu`].
    pub fn trunc_relu(&mut self, x: &[R], f: u32, k: u32) -> Result<Vec<R>, MpcError> {
        let gate = GateDesc::TruncRelu { m: x.len(), f, k };
        match self.key(gate)? {
            GateKey::TruncRelu(key) => key.eval(self.transport, x),
            _ => Err(Self::wrong(gate)),
        }
    }

    /// Max-pool of `x` (flat `n, c, h, w`) on a `k`-bit window with
    /// `relu_small` tree levels: one [`GateDesc::MaxPoolSmall`].
    pub fn max_pool_small(
        &mut self,
        x: &[R],
        shape: PoolShape,
        k: u32,
    ) -> Result<MaxPoolOutput<R>, MpcError> {
        let gate = GateDesc::MaxPoolSmall { shape, k };
        match self.key(gate)? {
            GateKey::MaxPoolSmall(key) => key.eval(self.transport, x),
            _ => Err(Self::wrong(gate)),
        }
    }

    /// One-hot argmax of each row of `x` with small comparison keys, in 3
    /// rounds: one [`GateDesc::ArgmaxSmall`].
    pub fn argmax_small(
        &mut self,
        x: &[R],
        rows: usize,
        n: usize,
        k: u32,
    ) -> Result<Vec<R>, MpcError> {
        let gate = GateDesc::ArgmaxSmall { rows, n, k };
        match self.key(gate)? {
            GateKey::ArgmaxSmall(key) => key.eval(self.transport, x),
            _ => Err(Self::wrong(gate)),
        }
    }

    /// One-hot argmax of each row of `x` (`rows x n`, flat) on a `k`-bit window.
    pub fn argmax(&mut self, x: &[R], rows: usize, n: usize, k: u32) -> Result<Vec<R>, MpcError> {
        let gate = GateDesc::Argmax { rows, n, k };
        match self.key(gate)? {
            GateKey::Argmax(key) => key.eval(self.transport, x),
            _ => Err(Self::wrong(gate)),
        }
    }
}

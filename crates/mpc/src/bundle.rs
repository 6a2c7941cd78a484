//! Key bundles and the preprocessing source they come from.
//!
//! A job's key material is consumed strictly in order. Every bundle carries a
//! [`BundleTag`]: the gate's descriptor (kind and shape parameters) and its
//! index in the plan. A party asks its [`PreprocessingSource`] for the bundle
//! of the gate it is about to run, and any mismatch (another gate, another
//! shape, an index out of order, another party's bundle, exhausted keys) is an
//! error *before* anything is masked or opened, never a wrong answer.

use crate::codec::{Reader, put_u32, put_usize};
use crate::error::MpcError;
use crate::gates::batchnorm::BatchNormShape;
use crate::gates::beaver::Bilinear;
use crate::gates::pool::PoolShape;
use crate::gates::spline::SplineFn;
pub use crate::table::GateKey;
use crate::table::GateKind;
use ariann_fss::Party;
use ariann_ring::Ring;
use rand::{CryptoRng, Rng};
use std::collections::VecDeque;

/// A gate of a plan: its kind and the public parameters its keys depend on.
///
/// Its kind's number and name are in the [gate table](crate::table). Binary
/// encoding: [`GateDesc::encode`]. Serialized (serde) with the kind's name
/// under `"gate"` beside the fields (a newtype's fields inline), e.g.
/// `{"gate": "trunc", "m": 256, "f": 16, "k": 56}` or
/// `{"gate": "triple", "map": "matmul", "m": 2, "k": 784, "n": 128}`, or
/// for a training product the map as an object:
/// `{"gate": "train_triple", "map": {"map": "matmul", "m": 2, "k": 3, "n": 4}, "dx": true}`,
/// or `{"gate": "spline", "func": {"fn": "exp", "f": 16}, "m": 40, "k": 40}`;
/// unknown fields are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(tag = "gate", rename_all = "snake_case", deny_unknown_fields)]
pub enum GateDesc {
    /// `m` DReLU gates on a `k`-bit window.
    Drelu {
        /// Elements.
        m: usize,
        /// Window bits.
        k: u32,
    },
    /// `m` one-round ReLU gates on a `k`-bit window.
    Relu {
        /// Elements.
        m: usize,
        /// Window bits.
        k: u32,
    },
    /// `m` equality-with-zero gates on a `k`-bit window.
    EqZero {
        /// Elements.
        m: usize,
        /// Window bits.
        k: u32,
    },
    /// `m` exact truncations by `f` bits of values in a `k`-bit window.
    Trunc {
        /// Elements.
        m: usize,
        /// Fractional bits removed.
        f: u32,
        /// Window bits.
        k: u32,
    },
    /// A bilinear map (elementwise, matrix or convolution product).
    Triple(Bilinear),
    /// A max-pool on a `k`-bit window.
    MaxPool {
        /// Geometry.
        shape: PoolShape,
        /// Window bits.
        k: u32,
    },
    /// A max-pool in 3 rounds (all-pairs comparisons, one-hot selection).
    MaxPoolOneHot {
        /// Geometry.
        shape: PoolShape,
        /// Window bits.
        k: u32,
    },
    /// Batch normalisation (training forward, 9 rounds, 64-bit ring only).
    BatchNorm(BatchNormShape),
    /// Argmax over `rows` rows of `n` values on a `k`-bit window.
    Argmax {
        /// Rows.
        rows: usize,
        /// Values per row.
        n: usize,
        /// Window bits.
        k: u32,
    },
    /// `m` evaluations of a named public function by a one-round spline
    /// ([`SplineFn`]: input with `f` fractional bits, output with `2 f`) on
    /// a `k`-bit window (inputs `|x| < 2^(k-2)`).
    Spline {
        /// The function.
        func: SplineFn,
        /// Elements.
        m: usize,
        /// Window bits.
        k: u32,
    },
    /// A training product with mask reuse: the forward `x * y` of a bilinear
    /// map and, from the same key, its backward products (2 rounds in all;
    /// see [`crate::gates::train`]).
    TrainTriple {
        /// The map.
        map: Bilinear,
        /// Whether the backward computes the input gradient `dx` too (not
        /// for a network's first layer).
        dx: bool,
    },
    /// `m` two-round ReLU gates on a `k`-bit window with small keys (a DCF
    /// with a 1-bit payload; see [`crate::gates::small`]).
    ReluSmall {
        /// Elements.
        m: usize,
        /// Window bits.
        k: u32,
    },
    /// `m` exact fused truncations by `f` bits and ReLUs, `max(x >> f, 0)`,
    /// for `|x >> f| < 2^(k-1)` (2 rounds, inference only; see
    /// [`crate::gates::small`]).
    TruncRelu {
        /// Elements.
        m: usize,
        /// Fractional bits removed.
        f: u32,
        /// Window bits of the truncated value.
        k: u32,
    },
    /// `m` exact truncations by `f` bits of values in a `k`-bit window, in
    /// 2 rounds with small keys (a DCF with a 1-bit payload for the borrow;
    /// see [`crate::gates::trunc`]); the same outputs as [`GateDesc::Trunc`].
    TruncSmall {
        /// Elements.
        m: usize,
        /// Fractional bits removed.
        f: u32,
        /// Window bits.
        k: u32,
    },
    /// `m` stochastic truncations by `f` bits of values in a `k`-bit window
    /// (`floor(x / 2^f)` plus 1 with probability `(x mod 2^f) / 2^f`), in one
    /// round with no FSS key (see [`crate::gates::trunc`]).
    TruncStoch {
        /// Elements.
        m: usize,
        /// Fractional bits removed.
        f: u32,
        /// Window bits.
        k: u32,
    },
    /// A max-pool on a `k`-bit window whose tree levels are `relu_small`
    /// gates (2 rounds per level).
    MaxPoolSmall {
        /// Geometry.
        shape: PoolShape,
        /// Window bits.
        k: u32,
    },
    /// Argmax over `rows` rows of `n` values on a `k`-bit window with small
    /// comparison keys (3 rounds).
    ArgmaxSmall {
        /// Rows.
        rows: usize,
        /// Values per row.
        n: usize,
        /// Window bits.
        k: u32,
    },
    /// A bilinear map whose right operand (a model weight, the same for the
    /// whole job) reuses the mask the `triple` gate at plan index `from`
    /// opened: one round opening the left operand only (see
    /// [`crate::gates::reuse`]). Its keys come from the plan's bundle
    /// stream, which keeps that gate's mask.
    TripleReuse {
        /// The map (its right operand has the shape of gate `from`'s).
        map: Bilinear,
        /// Plan index of the `triple` gate whose weight opening is reused.
        from: u64,
    },
}

/// A map's parameters as `Display` writes them: `len=9`, `m=2, k=3, n=4`, ...
fn map_params(map: &Bilinear) -> String {
    match map {
        Bilinear::Mul { len } => format!("len={len}"),
        Bilinear::MatMul { m, k, n } => format!("m={m}, k={k}, n={n}"),
        Bilinear::Conv2d(s) => format!(
            "n={}, c={}, h={}, w={}, oc={}, kh={}, kw={}, stride={}, pad={}",
            s.n, s.c, s.h, s.w, s.oc, s.kh, s.kw, s.stride, s.pad
        ),
    }
}

impl core::fmt::Display for GateDesc {
    /// The kind's name from the gate table, then the parameters, e.g.
    /// `trunc(m=384, f=12, k=40)`, `triple/matmul(m=2, k=48, n=10)` or
    /// `train_triple/matmul(m=2, k=48, n=10, dx=true)` or
    /// `spline/recip(f=16, max=10, m=32, k=40)`.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let name = self.kind().name();
        match *self {
            GateDesc::Drelu { m, k }
            | GateDesc::Relu { m, k }
            | GateDesc::EqZero { m, k }
            | GateDesc::ReluSmall { m, k } => {
                write!(f, "{name}(m={m}, k={k})")
            }
            GateDesc::Trunc { m, f: bits, k }
            | GateDesc::TruncRelu { m, f: bits, k }
            | GateDesc::TruncSmall { m, f: bits, k }
            | GateDesc::TruncStoch { m, f: bits, k } => {
                write!(f, "{name}(m={m}, f={bits}, k={k})")
            }
            GateDesc::Triple(map) => {
                write!(f, "{name}/{}({})", map.kind().name(), map_params(&map))
            }
            GateDesc::TrainTriple { map, dx } => write!(
                f,
                "{name}/{}({}, dx={dx})",
                map.kind().name(),
                map_params(&map)
            ),
            GateDesc::TripleReuse { map, from } => write!(
                f,
                "{name}/{}({}, from={from})",
                map.kind().name(),
                map_params(&map)
            ),
            GateDesc::MaxPool { shape: s, k }
            | GateDesc::MaxPoolOneHot { shape: s, k }
            | GateDesc::MaxPoolSmall { shape: s, k } => write!(
                f,
                "{name}(n={}, c={}, h={}, w={}, size={}, stride={}, pad={}, k={k})",
                s.n, s.c, s.h, s.w, s.k, s.stride, s.pad
            ),
            GateDesc::Argmax { rows, n, k } | GateDesc::ArgmaxSmall { rows, n, k } => {
                write!(f, "{name}(rows={rows}, n={n}, k={k})")
            }
            GateDesc::BatchNorm(s) => {
                write!(f, "{name}(n={}, c={}, h={}, w={})", s.n, s.c, s.h, s.w)
            }
            GateDesc::Spline { func, m, k } => {
                let sub = func.kind().name();
                match func {
                    SplineFn::Exp { f: bits } | SplineFn::InvSqrt { f: bits } => {
                        write!(f, "{name}/{sub}(f={bits}, m={m}, k={k})")
                    }
                    SplineFn::Recip { f: bits, max } => {
                        write!(f, "{name}/{sub}(f={bits}, max={max}, m={m}, k={k})")
                    }
                    SplineFn::RecipSqrt { eps } => {
                        write!(f, "{name}/{sub}(eps={eps}, m={m}, k={k})")
                    }
                }
            }
        }
    }
}

/// The label every bundle carries: which gate of which plan position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BundleTag {
    /// Position of the gate in the plan (0-based).
    pub index: u64,
    /// The gate.
    pub gate: GateDesc,
}

impl core::fmt::Display for BundleTag {
    /// E.g. `relu(m=6, k=32) at plan index 4`.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} at plan index {}", self.gate, self.index)
    }
}

/// A tagged key for one gate, held by one party.
#[derive(Debug, Clone)]
pub struct KeyBundle<R: Ring> {
    /// The party the bundle is for.
    pub party: Party,
    /// What it is for.
    pub tag: BundleTag,
    /// The keys.
    pub key: GateKey<R>,
}

impl GateDesc {
    /// The gate's kind (its row of the [gate table](crate::table)).
    pub fn kind(&self) -> GateKind {
        match self {
            GateDesc::Drelu { .. } => GateKind::Drelu,
            GateDesc::Relu { .. } => GateKind::Relu,
            GateDesc::EqZero { .. } => GateKind::EqZero,
            GateDesc::Trunc { .. } => GateKind::Trunc,
            GateDesc::Triple(_) => GateKind::Triple,
            GateDesc::MaxPool { .. } => GateKind::MaxPool,
            GateDesc::Argmax { .. } => GateKind::Argmax,
            GateDesc::MaxPoolOneHot { .. } => GateKind::MaxPoolOneHot,
            GateDesc::BatchNorm(_) => GateKind::BatchNorm,
            GateDesc::Spline { .. } => GateKind::Spline,
            GateDesc::TrainTriple { .. } => GateKind::TrainTriple,
            GateDesc::ReluSmall { .. } => GateKind::ReluSmall,
            GateDesc::TruncRelu { .. } => GateKind::TruncRelu,
            GateDesc::TruncSmall { .. } => GateKind::TruncSmall,
            GateDesc::TruncStoch { .. } => GateKind::TruncStoch,
            GateDesc::MaxPoolSmall { .. } => GateKind::MaxPoolSmall,
            GateDesc::ArgmaxSmall { .. } => GateKind::ArgmaxSmall,
            GateDesc::TripleReuse { .. } => GateKind::TripleReuse,
        }
    }

    /// Appends the descriptor's binary encoding to `out`: the kind's number
    /// (one byte, from the [gate table](crate::table)), then its parameters
    /// in declaration order, little-endian, sizes as `u64` and windows and
    /// bit counts (`k`, `f`) as `u32`, flags (`dx`) as one byte 0 or 1 and
    /// plan indices (`from`) as `u64`;
    /// a [`Bilinear`] map is its kind's number then its dimensions, a
    /// [`PoolShape`] is `n, c, h, w, k, stride, pad`, a
    /// [`BatchNormShape`] `n, c, h, w` and a [`SplineFn`] its kind's number
    /// then its parameters ([`SplineFn::encode`]).
    ///
    /// This is the one encoding of a gate: the key bundle header
    /// ([`crate::codec`]) and the plan hash ([`crate::Plan::hash`]) both use it.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.kind().number());
        match *self {
            GateDesc::Drelu { m, k }
            | GateDesc::Relu { m, k }
            | GateDesc::EqZero { m, k }
            | GateDesc::ReluSmall { m, k } => {
                put_usize(out, m);
                put_u32(out, k);
            }
            GateDesc::Trunc { m, f, k }
            | GateDesc::TruncRelu { m, f, k }
            | GateDesc::TruncSmall { m, f, k }
            | GateDesc::TruncStoch { m, f, k } => {
                put_usize(out, m);
                put_u32(out, f);
                put_u32(out, k);
            }
            GateDesc::Triple(map) => map.encode(out),
            GateDesc::MaxPool { shape, k }
            | GateDesc::MaxPoolOneHot { shape, k }
            | GateDesc::MaxPoolSmall { shape, k } => {
                shape.encode(out);
                put_u32(out, k);
            }
            GateDesc::Argmax { rows, n, k } | GateDesc::ArgmaxSmall { rows, n, k } => {
                put_usize(out, rows);
                put_usize(out, n);
                put_u32(out, k);
            }
            GateDesc::BatchNorm(s) => s.encode(out),
            GateDesc::Spline { func, m, k } => {
                func.encode(out);
                put_usize(out, m);
                put_u32(out, k);
            }
            GateDesc::TrainTriple { map, dx } => {
                map.encode(out);
                out.push(u8::from(dx));
            }
            GateDesc::TripleReuse { map, from } => {
                map.encode(out);
                crate::codec::put_u64(out, from);
            }
        }
    }

    /// Parses exactly one descriptor written by [`GateDesc::encode`].
    /// Refuses (never panics on) truncated, padded or unknown input with
    /// [`MpcError::Codec`]; reads at most `bytes.len()` bytes and allocates
    /// nothing.
    pub fn decode(bytes: &[u8]) -> Result<Self, MpcError> {
        let mut rd = Reader::new(bytes);
        let g = Self::read(&mut rd)?;
        if rd.left() != 0 {
            return Err(MpcError::Codec(format!(
                "{} trailing bytes after the gate descriptor",
                rd.left()
            )));
        }
        Ok(g)
    }

    /// Reads one descriptor written by [`GateDesc::encode`].
    pub(crate) fn read(rd: &mut Reader<'_>) -> Result<Self, MpcError> {
        let t = rd.u8("gate kind")?;
        let kind = GateKind::from_number(t)
            .ok_or_else(|| MpcError::Codec(format!("unknown gate kind {t}")))?;
        let what = kind.name();
        Ok(match kind {
            GateKind::Drelu => GateDesc::Drelu {
                m: rd.usize(what)?,
                k: rd.u32(what)?,
            },
            GateKind::Relu => GateDesc::Relu {
                m: rd.usize(what)?,
                k: rd.u32(what)?,
            },
            GateKind::EqZero => GateDesc::EqZero {
                m: rd.usize(what)?,
                k: rd.u32(what)?,
            },
            GateKind::Trunc => GateDesc::Trunc {
                m: rd.usize(what)?,
                f: rd.u32(what)?,
                k: rd.u32(what)?,
            },
            GateKind::Triple => GateDesc::Triple(Bilinear::read(rd)?),
            GateKind::MaxPool => GateDesc::MaxPool {
                shape: PoolShape::read(rd)?,
                k: rd.u32(what)?,
            },
            GateKind::Argmax => GateDesc::Argmax {
                rows: rd.usize(what)?,
                n: rd.usize(what)?,
                k: rd.u32(what)?,
            },
            GateKind::MaxPoolOneHot => GateDesc::MaxPoolOneHot {
                shape: PoolShape::read(rd)?,
                k: rd.u32(what)?,
            },
            GateKind::BatchNorm => GateDesc::BatchNorm(BatchNormShape::read(rd)?),
            GateKind::Spline => GateDesc::Spline {
                func: SplineFn::read(rd)?,
                m: rd.usize(what)?,
                k: rd.u32(what)?,
            },
            GateKind::ReluSmall => GateDesc::ReluSmall {
                m: rd.usize(what)?,
                k: rd.u32(what)?,
            },
            GateKind::TruncRelu => GateDesc::TruncRelu {
                m: rd.usize(what)?,
                f: rd.u32(what)?,
                k: rd.u32(what)?,
            },
            GateKind::TruncSmall => GateDesc::TruncSmall {
                m: rd.usize(what)?,
                f: rd.u32(what)?,
                k: rd.u32(what)?,
            },
            GateKind::TruncStoch => GateDesc::TruncStoch {
                m: rd.usize(what)?,
                f: rd.u32(what)?,
                k: rd.u32(what)?,
            },
            GateKind::MaxPoolSmall => GateDesc::MaxPoolSmall {
                shape: PoolShape::read(rd)?,
                k: rd.u32(what)?,
            },
            GateKind::ArgmaxSmall => GateDesc::ArgmaxSmall {
                rows: rd.usize(what)?,
                n: rd.usize(what)?,
                k: rd.u32(what)?,
            },
            GateKind::TrainTriple => GateDesc::TrainTriple {
                map: Bilinear::read(rd)?,
                dx: match rd.u8(what)? {
                    0 => false,
                    1 => true,
                    v => {
                        return Err(MpcError::Codec(format!(
                            "{what}: dx flag {v} is not 0 or 1"
                        )));
                    }
                },
            },
            GateKind::TripleReuse => GateDesc::TripleReuse {
                map: Bilinear::read(rd)?,
                from: rd.u64(what)?,
            },
        })
    }

    /// Dealer: both parties' keys for this gate.
    pub fn generate<R: Ring, G: Rng + CryptoRng + ?Sized>(
        &self,
        rng: &mut G,
    ) -> Result<(GateKey<R>, GateKey<R>), MpcError> {
        GateKey::deal(self, rng)
    }
}

/// Dealer: both parties' bundles for gate `index` of a plan. A
/// [`GateDesc::TripleReuse`] is refused: its keys depend on another gate's
/// mask and come from the plan's stream ([`crate::Plan::bundles`]).
pub fn generate_bundles<R: Ring, G: Rng + CryptoRng + ?Sized>(
    index: u64,
    gate: GateDesc,
    rng: &mut G,
) -> Result<(KeyBundle<R>, KeyBundle<R>), MpcError> {
    let (k0, k1) = gate.generate(rng)?;
    Ok(tag_bundles(index, gate, k0, k1))
}

/// Both parties' keys for gate `index`, tagged.
pub(crate) fn tag_bundles<R: Ring>(
    index: u64,
    gate: GateDesc,
    k0: GateKey<R>,
    k1: GateKey<R>,
) -> (KeyBundle<R>, KeyBundle<R>) {
    let tag = BundleTag { index, gate };
    (
        KeyBundle {
            party: Party::P0,
            tag,
            key: k0,
        },
        KeyBundle {
            party: Party::P1,
            tag,
            key: k1,
        },
    )
}

/// Where a party's key bundles come from (memory, a key file, a dealer stream).
pub trait PreprocessingSource<R: Ring> {
    /// The next bundle, which must be exactly `expected` for `party`;
    /// otherwise an error and nothing is consumed beyond it.
    fn next_bundle(&mut self, party: Party, expected: &BundleTag) -> Result<GateKey<R>, MpcError>;
}

/// Checks that `got` is the bundle `expected` for `party`.
pub fn check_bundle<R: Ring>(
    bundle: &KeyBundle<R>,
    party: Party,
    expected: &BundleTag,
) -> Result<(), MpcError> {
    if bundle.party != party {
        return Err(MpcError::WrongParty {
            key: bundle.party.index(),
            me: party.index(),
        });
    }
    if bundle.tag != *expected {
        return Err(MpcError::BundleMismatch {
            expected: expected.to_string(),
            got: bundle.tag.to_string(),
        });
    }
    Ok(())
}

/// An in-memory source: bundles in a queue, consumed in order.
#[derive(Debug, Default)]
pub struct VecSource<R: Ring> {
    queue: VecDeque<KeyBundle<R>>,
}

impl<R: Ring> VecSource<R> {
    /// A source over `bundles`, in order.
    pub fn new(bundles: impl IntoIterator<Item = KeyBundle<R>>) -> Self {
        Self {
            queue: bundles.into_iter().collect(),
        }
    }
    /// Bundles left.
    pub fn remaining(&self) -> usize {
        self.queue.len()
    }
}

impl<R: Ring> PreprocessingSource<R> for VecSource<R> {
    fn next_bundle(&mut self, party: Party, expected: &BundleTag) -> Result<GateKey<R>, MpcError> {
        let front = self.queue.front().ok_or(MpcError::KeysExhausted {
            index: expected.index,
        })?;
        check_bundle(front, party, expected)?;
        // Checked just above that the queue is not empty.
        self.queue
            .pop_front()
            .map(|b| b.key)
            .ok_or(MpcError::KeysExhausted {
                index: expected.index,
            })
    }
}

/// A source fed by a dealer running concurrently (another thread, or a
/// network stream): bundles arrive over a bounded channel, so a party holds
/// at most the channel's capacity of bundles beyond the gate it is running,
/// never a whole job's keys.
#[derive(Debug)]
pub struct ChannelSource<R: Ring> {
    rx: std::sync::mpsc::Receiver<KeyBundle<R>>,
    timeout: std::time::Duration,
}

impl<R: Ring> ChannelSource<R> {
    /// A source reading from `rx`, waiting at most `timeout` for each bundle.
    pub fn new(rx: std::sync::mpsc::Receiver<KeyBundle<R>>, timeout: std::time::Duration) -> Self {
        Self { rx, timeout }
    }
}

impl<R: Ring> PreprocessingSource<R> for ChannelSource<R> {
    fn next_bundle(&mut self, party: Party, expected: &BundleTag) -> Result<GateKey<R>, MpcError> {
        let b = self.rx.recv_timeout(self.timeout).map_err(|e| match e {
            std::sync::mpsc::RecvTimeoutError::Timeout => MpcError::Timeout(self.timeout),
            std::sync::mpsc::RecvTimeoutError::Disconnected => MpcError::KeysExhausted {
                index: expected.index,
            },
        })?;
        check_bundle(&b, party, expected)?;
        Ok(b.key)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ariann_ring::Conv2dShape;

    /// One descriptor of every kind (and every bilinear sub-kind).
    pub(crate) fn one_of_each() -> Vec<GateDesc> {
        let pool = PoolShape {
            n: 2,
            c: 3,
            h: 8,
            w: 8,
            k: 2,
            stride: 2,
            pad: 0,
        };
        vec![
            GateDesc::Drelu { m: 5, k: 16 },
            GateDesc::Relu { m: 6, k: 32 },
            GateDesc::EqZero { m: 7, k: 8 },
            GateDesc::Trunc { m: 8, f: 12, k: 40 },
            GateDesc::Triple(Bilinear::Mul { len: 9 }),
            GateDesc::Triple(Bilinear::MatMul { m: 2, k: 3, n: 4 }),
            GateDesc::Triple(Bilinear::Conv2d(Conv2dShape {
                n: 1,
                c: 2,
                h: 5,
                w: 6,
                oc: 3,
                kh: 3,
                kw: 2,
                stride: 1,
                pad: 1,
            })),
            GateDesc::MaxPool { shape: pool, k: 24 },
            GateDesc::Argmax {
                rows: 2,
                n: 10,
                k: 32,
            },
            GateDesc::MaxPoolOneHot { shape: pool, k: 20 },
            GateDesc::BatchNorm(BatchNormShape {
                n: 4,
                c: 3,
                h: 2,
                w: 2,
            }),
            GateDesc::Spline {
                func: SplineFn::Exp { f: 16 },
                m: 12,
                k: 40,
            },
            GateDesc::Spline {
                func: SplineFn::Recip { f: 16, max: 10 },
                m: 3,
                k: 40,
            },
            GateDesc::Spline {
                func: SplineFn::RecipSqrt { eps: 43 },
                m: 2,
                k: 40,
            },
            GateDesc::TrainTriple {
                map: Bilinear::MatMul { m: 2, k: 3, n: 4 },
                dx: true,
            },
            GateDesc::TrainTriple {
                map: Bilinear::Conv2d(Conv2dShape {
                    n: 2,
                    c: 1,
                    h: 6,
                    w: 5,
                    oc: 2,
                    kh: 3,
                    kw: 3,
                    stride: 2,
                    pad: 1,
                }),
                dx: false,
            },
            GateDesc::TrainTriple {
                map: Bilinear::Mul { len: 5 },
                dx: true,
            },
            GateDesc::ReluSmall { m: 6, k: 32 },
            GateDesc::TruncRelu { m: 8, f: 16, k: 32 },
            GateDesc::TruncSmall { m: 7, f: 12, k: 40 },
            GateDesc::TruncStoch { m: 9, f: 20, k: 60 },
            GateDesc::MaxPoolSmall { shape: pool, k: 24 },
            GateDesc::ArgmaxSmall {
                rows: 2,
                n: 10,
                k: 32,
            },
            GateDesc::TripleReuse {
                map: Bilinear::MatMul { m: 3, k: 3, n: 4 },
                from: 5,
            },
        ]
    }

    #[test]
    fn every_kind_is_covered_and_round_trips() {
        let all = one_of_each();
        for &kind in GateKind::ALL {
            assert!(all.iter().any(|g| g.kind() == kind), "{kind} missing");
        }
        for g in all {
            let mut buf = Vec::new();
            g.encode(&mut buf);
            assert_eq!(buf[0], g.kind().number());
            assert_eq!(GateDesc::decode(&buf), Ok(g));
            assert!(g.to_string().starts_with(g.kind().name()));
            // Every truncation and any padding is refused, never a panic.
            for cut in 0..buf.len() {
                assert!(matches!(
                    GateDesc::decode(&buf[..cut]),
                    Err(MpcError::Codec(_))
                ));
            }
            let mut padded = buf.clone();
            padded.push(0);
            assert!(GateDesc::decode(&padded).is_err());
        }
    }

    #[test]
    fn unknown_kinds_are_refused() {
        for t in [0u8, 19, 255] {
            let mut buf = vec![t];
            buf.extend_from_slice(&[0; 64]);
            let e = GateDesc::decode(&buf).expect_err("unknown kind");
            assert!(e.to_string().contains("unknown gate kind"), "{e}");
        }
        let mut buf = vec![GateKind::Triple.number(), 4];
        buf.extend_from_slice(&[0; 64]);
        assert!(GateDesc::decode(&buf).is_err());
        for t in [0u8, 5, 255] {
            let mut buf = vec![GateKind::Spline.number(), t];
            buf.extend_from_slice(&[0; 64]);
            let e = GateDesc::decode(&buf).expect_err("unknown spline function");
            assert!(
                e.to_string().contains("unknown spline function kind"),
                "{e}"
            );
        }
        // A training product's dx flag is 0 or 1.
        let mut buf = Vec::new();
        GateDesc::TrainTriple {
            map: Bilinear::Mul { len: 3 },
            dx: true,
        }
        .encode(&mut buf);
        let last = buf.len() - 1;
        assert_eq!(buf[last], 1);
        for v in [2u8, 255] {
            buf[last] = v;
            let e = GateDesc::decode(&buf).expect_err("bad flag");
            assert!(e.to_string().contains("dx flag"), "{e}");
        }
    }

    #[test]
    fn layout_is_the_codec_s() {
        // u64 sizes, u32 windows and bit counts, little-endian.
        let mut buf = Vec::new();
        GateDesc::Trunc { m: 3, f: 12, k: 40 }.encode(&mut buf);
        let mut want = vec![4u8];
        want.extend_from_slice(&3u64.to_le_bytes());
        want.extend_from_slice(&12u32.to_le_bytes());
        want.extend_from_slice(&40u32.to_le_bytes());
        assert_eq!(buf, want);
        let mut buf = Vec::new();
        GateDesc::Spline {
            func: SplineFn::Recip { f: 16, max: 10 },
            m: 3,
            k: 40,
        }
        .encode(&mut buf);
        let mut want = vec![11u8, 2];
        want.extend_from_slice(&16u32.to_le_bytes());
        want.extend_from_slice(&10u32.to_le_bytes());
        want.extend_from_slice(&3u64.to_le_bytes());
        want.extend_from_slice(&40u32.to_le_bytes());
        assert_eq!(buf, want);
        // A training product: kind 10, the map, the dx flag.
        let mut buf = Vec::new();
        GateDesc::TrainTriple {
            map: Bilinear::Mul { len: 3 },
            dx: false,
        }
        .encode(&mut buf);
        let mut want = vec![10u8, 1];
        want.extend_from_slice(&3u64.to_le_bytes());
        want.push(0);
        assert_eq!(buf, want);
    }
}

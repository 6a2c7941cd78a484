//! The gate table: every kind of [`GateDesc`] with its
//! number and its name, defined here and nowhere else.
//!
//! The number is the kind byte of the binary encoding of a gate descriptor
//! ([`GateDesc::encode`]), which the key bundle
//! header and the plan hash both use; the name is the `"gate"` value of the
//! JSON plan (serde, checked against this table by a test) and the name
//! error messages use. The numbers are part of the key and plan formats:
//! never reuse or renumber one.
//!
//! | number | name | descriptor |
//! |---|---|---|
//! | 1 | `drelu` | `Drelu { m, k }` |
//! | 2 | `relu` | `Relu { m, k }` |
//! | 3 | `eq_zero` | `EqZero { m, k }` |
//! | 4 | `trunc` | `Trunc { m, f, k }` |
//! | 5 | `triple` | `Triple(Bilinear)`, sub-kind [`MapKind`]: 1 `mul`, 2 `matmul`, 3 `conv2d` |
//! | 6 | `max_pool` | `MaxPool { shape, k }` |
//! | 7 | `argmax` | `Argmax { rows, n, k }` |
//! | 8 | `max_pool_one_hot` | `MaxPoolOneHot { shape, k }` |
//! | 9 | `batch_norm` | `BatchNorm(BatchNormShape)` |
//! | 10 | `train_triple` | `TrainTriple { map: Bilinear, dx: bool }` (sub-kind of `map`: [`MapKind`]) |
//! | 11 | `spline` | `Spline { func, m, k }`, sub-kind [`SplineKind`]: 1 `exp`, 2 `recip`, 3 `recip_sqrt`, 4 `inv_sqrt` |
//! | 12 | `relu_small` | `ReluSmall { m, k }` |
//! | 13 | `trunc_relu` | `TruncRelu { m, f, k }` |
//! | 14 | `max_pool_small` | `MaxPoolSmall { shape, k }` |
//! | 15 | `argmax_small` | `ArgmaxSmall { rows, n, k }` |
//! | 16 | `triple_reuse` | `TripleReuse { map: Bilinear, from: u64 }` (a product reusing the weight mask opened by the `triple` gate at plan index `from`) |
//! | 17 | `trunc_small` | `TruncSmall { m, f, k }` |
//! | 18 | `trunc_stoch` | `TruncStoch { m, f, k }` |
//!
//! The table (`gate_table!` below) also names each kind's key type: it
//! generates [`GateKind`], [`GateKey`] (one variant per row) and the
//! per-kind dispatch of key generation ([`GateDesc::generate`]), key size
//! ([`GateKey::key_bytes`]) and the key codec body (read and write, used by
//! [`crate::codec`]), each of which goes to the kind's key type through the
//! crate-internal trait `KindKeys`, implemented in the gate's module.
//!
//! # How to add a gate kind
//!
//! The compiler finds every exhaustive `match` on [`GateDesc`], [`GateKind`]
//! and [`GateKey`]; this is the complete list of what to touch.
//!
//! 1. `crates/mpc/src/table.rs`: a row of `gate_table!` (variant, a number
//!    never used before, the snake_case name, the key type; `Box` it if it
//!    is much larger than the others). The row defines `GateKind::X`,
//!    `GateKey::X` and the dispatch.
//! 2. `crates/mpc/src/bundle.rs`: the `GateDesc::X` variant and its arms in
//!    `GateDesc::kind`, `GateDesc::encode`, `GateDesc::read` (the
//!    descriptor's binary layout, shared by the key bundle header and the
//!    plan hash) and `Display`. serde names the variant by its snake_case
//!    spelling: if that is not the table's name, add
//!    `#[serde(rename = "...")]`. Add a descriptor of the kind to
//!    `one_of_each` in that file's tests; the tests then check that it
//!    round-trips, that serde's name is the table's (`plan.rs`), and fail if
//!    a kind is missing.
//! 3. The gate's module, `crates/mpc/src/gates/<gate>.rs` (and a `pub mod`
//!    line in `gates/mod.rs` for a new file): the key type with its
//!    generation (dealer side) next to its evaluation, and
//!    `impl KindKeys<R>` for it: `deal` (from the descriptor), `key_size`,
//!    `cost` (rounds, bytes sent, key bytes and body size from the
//!    descriptor alone; [`crate::cost`] adds the framing), `write_body` /
//!    `read_body` (the key body; `read_body` must check every count against
//!    the bytes left, the result against the descriptor, and never panic).
//!    List the body's layout in the [`crate::codec`] module docs.
//! 4. The backends: a method of [`Session`](crate::Session)
//!    (`crates/mpc/src/session.rs`: build the descriptor, fetch the bundle,
//!    match `GateKey::X`, evaluate), and in `crates/mpc/src/backend.rs` the
//!    method of the [`Gates`](crate::Gates) trait with its three
//!    implementations: forwarding to the session, the cleartext function
//!    ([`Clear`](crate::Clear), with the gate's exact tie and rounding
//!    rules) and the recorder's ([`Recorder`](crate::Recorder): push the
//!    descriptor, return zeros of the output's sizes).
//! 5. Tests: the kind's descriptor in `one_of_each` (`bundle.rs`), a call of
//!    the new method in the program of `crates/mpc/tests/backend.rs` (the
//!    three backends must agree), sizes in `crates/mpc/tests/cost.rs`.
//! 6. More tests: `crates/mpc/tests/codec.rs` (`all_gates`: bundle round trip,
//!    corruption, evaluation), a protocol test of the gate against
//!    cleartext in `crates/mpc/tests/`.
//! 7. Docs: the field table of the JSON plan in `dealer/src/plan_json.rs`.
//!
//! Nothing else: the plan hash (`crate::plan`), the costs (`crate::cost`),
//! the bundle codec, key files
//! and key streams, the JSON plan and the `ariann-dealer` command pick the
//! kind up from the table and [`GateDesc`]. Existing encodings do not change
//! (no format version bump); older builds refuse bundles and plans with the
//! new kind ("unknown gate kind", "unknown variant").

use crate::bundle::GateDesc;
use crate::codec::Reader;
use crate::cost::GateCost;
use crate::error::MpcError;
use crate::gates::batchnorm::BatchNormKey;
use crate::gates::beaver::TripleKey;
use crate::gates::cmp::{DreluKey, EqZeroKey, ReluKey};
use crate::gates::pool::{
    ArgmaxKey, ArgmaxSmallKey, MaxPoolKey, MaxPoolOneHotKey, MaxPoolSmallKey,
};
use crate::gates::reuse::ReuseTripleKey;
use crate::gates::small::{ReluSmallKey, TruncReluKey};
use crate::gates::spline::SplineKey;
use crate::gates::train::TrainTripleKey;
use crate::gates::trunc::{TruncKey, TruncSmallKey, TruncStochKey};
use ariann_fss::Party;
use ariann_ring::Ring;
use rand::{CryptoRng, Rng};

macro_rules! kind_table {
    (
        $(#[$meta:meta])*
        pub enum $Kind:ident {
            $( $(#[$vmeta:meta])* $V:ident = $num:literal, $name:literal; )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum $Kind {
            $( $(#[$vmeta])* $V = $num, )*
        }

        impl $Kind {
            /// Every kind, in table order.
            pub const ALL: &'static [$Kind] = &[$($Kind::$V),*];

            /// The kind's number (its byte in binary encodings).
            pub const fn number(self) -> u8 {
                self as u8
            }

            /// The kind's name (JSON, error messages).
            pub const fn name(self) -> &'static str {
                match self {
                    $($Kind::$V => $name,)*
                }
            }

            /// The kind numbered `n`, if any.
            pub const fn from_number(n: u8) -> Option<Self> {
                match n {
                    $($num => Some($Kind::$V),)*
                    _ => None,
                }
            }

            /// The kind named `name`, if any.
            pub fn from_name(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|k| k.name() == name)
            }
        }

        impl core::fmt::Display for $Kind {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

/// The gate table proper: for each kind its variant, number, name and key
/// type. Generates [`GateKind`] (with [`kind_table!`]), [`GateKey`] and the
/// per-kind dispatch of key generation, key size and the key codec, which
/// each kind implements in its gate module ([`KindKeys`]).
macro_rules! gate_table {
    (
        $( $(#[$vmeta:meta])* $V:ident = $num:literal, $name:literal, $Key:ty; )*
    ) => {
        kind_table! {
            /// The kind of a gate: one row of the gate table.
            pub enum GateKind {
                $( $(#[$vmeta])* $V = $num, $name; )*
            }
        }

        /// One party's keys for one gate: one variant per row of the gate
        /// table, holding that kind's key type.
        #[derive(Debug, Clone)]
        pub enum GateKey<R: Ring> {
            $(
                #[doc = concat!("Keys of a `", $name, "` gate.")]
                $V($Key),
            )*
        }

        impl<R: Ring> GateKey<R> {
            /// The kind of gate these keys are for.
            pub fn kind(&self) -> GateKind {
                match self {
                    $(GateKey::$V(_) => GateKind::$V,)*
                }
            }

            /// Key bytes held by this party for this gate.
            pub fn key_bytes(&self) -> usize {
                match self {
                    $(GateKey::$V(k) => KindKeys::<R>::key_size(k),)*
                }
            }

            /// Dealer: both parties' keys for `desc`.
            pub(crate) fn deal<G: Rng + CryptoRng + ?Sized>(
                desc: &GateDesc,
                rng: &mut G,
            ) -> Result<(Self, Self), MpcError> {
                Ok(match desc.kind() {
                    $(GateKind::$V => {
                        let (a, b) = <$Key as KindKeys<R>>::deal(desc, rng)?;
                        (GateKey::$V(a), GateKey::$V(b))
                    })*
                })
            }

            /// The cost of `desc`'s keys and online phase (the key body's
            /// encoded size, without the bundle header and descriptor).
            pub(crate) fn body_cost(desc: &GateDesc) -> Result<GateCost, MpcError> {
                match desc.kind() {
                    $(GateKind::$V => <$Key as KindKeys<R>>::cost(desc),)*
                }
            }

            /// Appends the key body (see [`crate::codec`]).
            pub(crate) fn write_body(&self, out: &mut Vec<u8>) {
                match self {
                    $(GateKey::$V(k) => KindKeys::<R>::write_body(k, out),)*
                }
            }

            /// Reads a key body for `desc`, checked against it.
            pub(crate) fn read_body(
                rd: &mut Reader<'_>,
                party: Party,
                desc: &GateDesc,
            ) -> Result<Self, MpcError> {
                Ok(match desc.kind() {
                    $(GateKind::$V => GateKey::$V(<$Key as KindKeys<R>>::read_body(rd, party, desc)?),)*
                })
            }
        }
    };
}

gate_table! {
    /// DReLU (`[x >= 0]`) on a window.
    Drelu = 1, "drelu", DreluKey<R>;
    /// One-round ReLU on a window.
    Relu = 2, "relu", ReluKey<R>;
    /// Equality with zero on a window.
    EqZero = 3, "eq_zero", EqZeroKey<R>;
    /// Exact truncation.
    Trunc = 4, "trunc", TruncKey<R>;
    /// A bilinear map from a triple (sub-kind: [`MapKind`]).
    Triple = 5, "triple", Box<TripleKey<R>>;
    /// Max-pool in `ceil(log2 k^2)` rounds.
    MaxPool = 6, "max_pool", MaxPoolKey<R>;
    /// One-hot argmax per row.
    Argmax = 7, "argmax", ArgmaxKey<R>;
    /// Max-pool in 3 rounds with its one-hot selection.
    MaxPoolOneHot = 8, "max_pool_one_hot", Box<MaxPoolOneHotKey<R>>;
    /// Batch normalisation (training forward).
    BatchNorm = 9, "batch_norm", Box<BatchNormKey<R>>;
    /// A training product with mask reuse: a bilinear map's forward triple
    /// and its backward's masks in one key.
    TrainTriple = 10, "train_triple", Box<TrainTripleKey<R>>;
    /// A named public function by a one-round spline (sub-kind: [`SplineKind`]).
    Spline = 11, "spline", SplineKey<R>;
    /// Two-round ReLU from a 1-bit-payload DCF (smaller keys).
    ReluSmall = 12, "relu_small", ReluSmallKey<R>;
    /// Exact fused truncation + ReLU in 2 rounds (inference).
    TruncRelu = 13, "trunc_relu", TruncReluKey<R>;
    /// Max-pool whose tree levels are `relu_small` gates.
    MaxPoolSmall = 14, "max_pool_small", MaxPoolSmallKey<R>;
    /// One-hot argmax in 3 rounds with small comparison keys.
    ArgmaxSmall = 15, "argmax_small", ArgmaxSmallKey<R>;
    /// A product whose right operand (a weight) reuses the mask opened by
    /// an earlier `triple` gate of the plan: opens only the left operand.
    TripleReuse = 16, "triple_reuse", Box<ReuseTripleKey<R>>;
    /// Exact truncation in 2 rounds from a 1-bit-payload DCF (smaller keys).
    TruncSmall = 17, "trunc_small", TruncSmallKey<R>;
    /// Stochastic truncation in one round, no FSS key (training).
    TruncStoch = 18, "trunc_stoch", TruncStochKey<R>;
}

/// One gate kind's keys, as the table dispatches to them. Each gate module
/// implements it for its key type, next to the key's generation and
/// evaluation.
pub(crate) trait KindKeys<R: Ring>: Sized {
    /// Dealer: both parties' keys for `desc`, a descriptor of this kind
    /// (any other is an [`MpcError::InvalidParameter`]).
    fn deal<G: Rng + CryptoRng + ?Sized>(
        desc: &GateDesc,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError>;

    /// Key bytes held by this party.
    fn key_size(&self) -> usize;

    /// Rounds, bytes sent and key bytes per party of `desc`, and the key
    /// body's encoded size, from the descriptor alone (no keys generated).
    fn cost(desc: &GateDesc) -> Result<GateCost, MpcError>;

    /// Appends the key body (the layout is listed in [`crate::codec`]).
    fn write_body(&self, out: &mut Vec<u8>);

    /// Reads a key body written by [`KindKeys::write_body`], checked for
    /// internal consistency and against `desc` ([`MpcError::Codec`]).
    fn read_body(rd: &mut Reader<'_>, party: Party, desc: &GateDesc) -> Result<Self, MpcError>;
}

/// Large keys are boxed in [`GateKey`]; the box dispatches to its content.
impl<R: Ring, K: KindKeys<R>> KindKeys<R> for Box<K> {
    fn deal<G: Rng + CryptoRng + ?Sized>(
        desc: &GateDesc,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        let (a, b) = K::deal(desc, rng)?;
        Ok((Box::new(a), Box::new(b)))
    }

    fn key_size(&self) -> usize {
        (**self).key_size()
    }

    fn cost(desc: &GateDesc) -> Result<GateCost, MpcError> {
        K::cost(desc)
    }

    fn write_body(&self, out: &mut Vec<u8>) {
        (**self).write_body(out)
    }

    fn read_body(rd: &mut Reader<'_>, party: Party, desc: &GateDesc) -> Result<Self, MpcError> {
        K::read_body(rd, party, desc).map(Box::new)
    }
}

/// The error of a [`KindKeys`] handed a descriptor of another kind (the
/// table's dispatch never does).
pub(crate) fn other_kind(desc: &GateDesc, kind: GateKind) -> MpcError {
    MpcError::InvalidParameter(format!("{desc} is not a {kind} gate"))
}

/// The error of a key body that does not match its tag.
pub(crate) fn body_mismatch(desc: &GateDesc, what: &str) -> MpcError {
    MpcError::Codec(format!("key body does not match its tag {desc}: {what}"))
}

kind_table! {
    /// The kind of a triple's bilinear map ([`Bilinear`](crate::gates::beaver::Bilinear)).
    pub enum MapKind {
        /// Elementwise product.
        Mul = 1, "mul";
        /// Matrix product.
        MatMul = 2, "matmul";
        /// 2-D convolution.
        Conv2d = 3, "conv2d";
    }
}

kind_table! {
    /// The function of a spline gate ([`SplineFn`](crate::gates::spline::SplineFn)).
    pub enum SplineKind {
        /// `e^u` for `u <= 0`.
        Exp = 1, "exp";
        /// `1/s` on `[1, max]`.
        Recip = 2, "recip";
        /// `1/(sqrt(v) + eps)` on `[2^-30, 16]` (Adam).
        RecipSqrt = 3, "recip_sqrt";
        /// `1/sqrt(v)` on `[2^-8, 2^8]` (training batch-norm).
        InvSqrt = 4, "inv_sqrt";
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn check_unique(numbers: Vec<u8>, names: Vec<&'static str>) {
        let n = numbers.len();
        assert_eq!(numbers.iter().collect::<HashSet<_>>().len(), n);
        assert_eq!(names.iter().collect::<HashSet<_>>().len(), n);
        assert!(!numbers.contains(&0), "0 is never a kind");
    }

    #[test]
    fn numbers_and_names_are_unique_and_round_trip() {
        check_unique(
            GateKind::ALL.iter().map(|k| k.number()).collect(),
            GateKind::ALL.iter().map(|k| k.name()).collect(),
        );
        check_unique(
            MapKind::ALL.iter().map(|k| k.number()).collect(),
            MapKind::ALL.iter().map(|k| k.name()).collect(),
        );
        check_unique(
            SplineKind::ALL.iter().map(|k| k.number()).collect(),
            SplineKind::ALL.iter().map(|k| k.name()).collect(),
        );
        for &k in GateKind::ALL {
            assert_eq!(GateKind::from_number(k.number()), Some(k));
            assert_eq!(GateKind::from_name(k.name()), Some(k));
        }
        for &k in MapKind::ALL {
            assert_eq!(MapKind::from_number(k.number()), Some(k));
            assert_eq!(MapKind::from_name(k.name()), Some(k));
        }
        for &k in SplineKind::ALL {
            assert_eq!(SplineKind::from_number(k.number()), Some(k));
            assert_eq!(SplineKind::from_name(k.name()), Some(k));
        }
        assert_eq!(GateKind::from_number(0), None);
        assert_eq!(GateKind::from_number(19), None);
    }

    #[test]
    fn numbers_are_the_format_s() {
        // The numbers are part of the key and plan formats: pinned.
        let pinned = [
            (GateKind::Drelu, 1, "drelu"),
            (GateKind::Relu, 2, "relu"),
            (GateKind::EqZero, 3, "eq_zero"),
            (GateKind::Trunc, 4, "trunc"),
            (GateKind::Triple, 5, "triple"),
            (GateKind::MaxPool, 6, "max_pool"),
            (GateKind::Argmax, 7, "argmax"),
            (GateKind::MaxPoolOneHot, 8, "max_pool_one_hot"),
            (GateKind::BatchNorm, 9, "batch_norm"),
            (GateKind::TrainTriple, 10, "train_triple"),
            (GateKind::Spline, 11, "spline"),
            (GateKind::ReluSmall, 12, "relu_small"),
            (GateKind::TruncRelu, 13, "trunc_relu"),
            (GateKind::MaxPoolSmall, 14, "max_pool_small"),
            (GateKind::ArgmaxSmall, 15, "argmax_small"),
            (GateKind::TripleReuse, 16, "triple_reuse"),
            (GateKind::TruncSmall, 17, "trunc_small"),
            (GateKind::TruncStoch, 18, "trunc_stoch"),
        ];
        assert_eq!(pinned.len(), GateKind::ALL.len());
        for (k, n, name) in pinned {
            assert_eq!((k.number(), k.name()), (n, name));
        }
        let pinned = [
            (MapKind::Mul, 1, "mul"),
            (MapKind::MatMul, 2, "matmul"),
            (MapKind::Conv2d, 3, "conv2d"),
        ];
        assert_eq!(pinned.len(), MapKind::ALL.len());
        for (k, n, name) in pinned {
            assert_eq!((k.number(), k.name()), (n, name));
        }
        let pinned = [
            (SplineKind::Exp, 1, "exp"),
            (SplineKind::Recip, 2, "recip"),
            (SplineKind::RecipSqrt, 3, "recip_sqrt"),
            (SplineKind::InvSqrt, 4, "inv_sqrt"),
        ];
        assert_eq!(pinned.len(), SplineKind::ALL.len());
        for (k, n, name) in pinned {
            assert_eq!((k.number(), k.name()), (n, name));
        }
    }
}

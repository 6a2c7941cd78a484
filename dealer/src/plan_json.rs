//! Plans as JSON, for the `ariann-dealer` command line (`--plan FILE`,
//! `ariann-dealer plan`).
//!
//! ```json
//! {
//!   "format": "ariann-plan/1",
//!   "ring_bits": 64,
//!   "gates": [
//!     {"gate": "matmul", "m": 2, "k": 784, "n": 128},
//!     {"gate": "trunc", "m": 256, "f": 16, "k": 56},
//!     {"gate": "relu", "m": 256, "k": 32}
//!   ]
//! }
//! ```
//!
//! Gates (`"gate"` and its fields; every field is required, unknown fields
//! are refused; `k` is always the comparison or truncation window in bits):
//!
//! | `gate` | fields |
//! |---|---|
//! | `drelu`, `relu`, `eq_zero` | `m`, `k` |
//! | `trunc` | `m`, `f`, `k` |
//! | `mul` | `len` |
//! | `matmul` | `m`, `k`, `n` (matrix dimensions: `(m x k) . (k x n)`) |
//! | `conv2d` | `n`, `c`, `h`, `w`, `oc`, `kh`, `kw`, `stride`, `pad` |
//! | `max_pool`, `max_pool_one_hot` | `n`, `c`, `h`, `w`, `size`, `stride`, `pad`, `k` |
//! | `batch_norm` | `n`, `c`, `h`, `w` |
//! | `argmax` | `rows`, `n`, `k` |
//!
//! (`matmul`'s `k` is the inner dimension, not a window.) The JSON form is
//! for people and tools; the plan hash is computed from the canonical binary
//! encoding ([`Plan::hash`]), so reformatting the JSON does not change it.

use crate::{DealerError, Plan};
use ariann_mpc::GateDesc;
use ariann_mpc::gates::batchnorm::BatchNormShape;
use ariann_mpc::gates::beaver::Bilinear;
use ariann_mpc::gates::pool::PoolShape;
use ariann_ring::Conv2dShape;
use serde::{Deserialize, Serialize};

/// The `format` value of this version.
pub const PLAN_FORMAT: &str = "ariann-plan/1";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanJson {
    format: String,
    ring_bits: u32,
    gates: Vec<GateJson>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "gate", rename_all = "snake_case", deny_unknown_fields)]
enum GateJson {
    Drelu {
        m: usize,
        k: u32,
    },
    Relu {
        m: usize,
        k: u32,
    },
    EqZero {
        m: usize,
        k: u32,
    },
    Trunc {
        m: usize,
        f: u32,
        k: u32,
    },
    Mul {
        len: usize,
    },
    Matmul {
        m: usize,
        k: usize,
        n: usize,
    },
    Conv2d {
        n: usize,
        c: usize,
        h: usize,
        w: usize,
        oc: usize,
        kh: usize,
        kw: usize,
        stride: usize,
        pad: usize,
    },
    MaxPool {
        n: usize,
        c: usize,
        h: usize,
        w: usize,
        size: usize,
        stride: usize,
        pad: usize,
        k: u32,
    },
    MaxPoolOneHot {
        n: usize,
        c: usize,
        h: usize,
        w: usize,
        size: usize,
        stride: usize,
        pad: usize,
        k: u32,
    },
    BatchNorm {
        n: usize,
        c: usize,
        h: usize,
        w: usize,
    },
    Argmax {
        rows: usize,
        n: usize,
        k: u32,
    },
}

fn to_json(g: &GateDesc) -> GateJson {
    match *g {
        GateDesc::Drelu { m, k } => GateJson::Drelu { m, k },
        GateDesc::Relu { m, k } => GateJson::Relu { m, k },
        GateDesc::EqZero { m, k } => GateJson::EqZero { m, k },
        GateDesc::Trunc { m, f, k } => GateJson::Trunc { m, f, k },
        GateDesc::Triple(Bilinear::Mul { len }) => GateJson::Mul { len },
        GateDesc::Triple(Bilinear::MatMul { m, k, n }) => GateJson::Matmul { m, k, n },
        GateDesc::Triple(Bilinear::Conv2d(s)) => GateJson::Conv2d {
            n: s.n,
            c: s.c,
            h: s.h,
            w: s.w,
            oc: s.oc,
            kh: s.kh,
            kw: s.kw,
            stride: s.stride,
            pad: s.pad,
        },
        GateDesc::MaxPool { shape: s, k } => GateJson::MaxPool {
            n: s.n,
            c: s.c,
            h: s.h,
            w: s.w,
            size: s.k,
            stride: s.stride,
            pad: s.pad,
            k,
        },
        GateDesc::MaxPoolOneHot { shape: s, k } => GateJson::MaxPoolOneHot {
            n: s.n,
            c: s.c,
            h: s.h,
            w: s.w,
            size: s.k,
            stride: s.stride,
            pad: s.pad,
            k,
        },
        GateDesc::BatchNorm(s) => GateJson::BatchNorm {
            n: s.n,
            c: s.c,
            h: s.h,
            w: s.w,
        },
        GateDesc::Argmax { rows, n, k } => GateJson::Argmax { rows, n, k },
    }
}

fn from_json(g: GateJson) -> GateDesc {
    match g {
        GateJson::Drelu { m, k } => GateDesc::Drelu { m, k },
        GateJson::Relu { m, k } => GateDesc::Relu { m, k },
        GateJson::EqZero { m, k } => GateDesc::EqZero { m, k },
        GateJson::Trunc { m, f, k } => GateDesc::Trunc { m, f, k },
        GateJson::Mul { len } => GateDesc::Triple(Bilinear::Mul { len }),
        GateJson::Matmul { m, k, n } => GateDesc::Triple(Bilinear::MatMul { m, k, n }),
        GateJson::Conv2d {
            n,
            c,
            h,
            w,
            oc,
            kh,
            kw,
            stride,
            pad,
        } => GateDesc::Triple(Bilinear::Conv2d(Conv2dShape {
            n,
            c,
            h,
            w,
            oc,
            kh,
            kw,
            stride,
            pad,
        })),
        GateJson::MaxPool {
            n,
            c,
            h,
            w,
            size,
            stride,
            pad,
            k,
        } => GateDesc::MaxPool {
            shape: PoolShape {
                n,
                c,
                h,
                w,
                k: size,
                stride,
                pad,
            },
            k,
        },
        GateJson::MaxPoolOneHot {
            n,
            c,
            h,
            w,
            size,
            stride,
            pad,
            k,
        } => GateDesc::MaxPoolOneHot {
            shape: PoolShape {
                n,
                c,
                h,
                w,
                k: size,
                stride,
                pad,
            },
            k,
        },
        GateJson::BatchNorm { n, c, h, w } => GateDesc::BatchNorm(BatchNormShape { n, c, h, w }),
        GateJson::Argmax { rows, n, k } => GateDesc::Argmax { rows, n, k },
    }
}

impl Plan {
    /// The plan as pretty-printed JSON (see [`crate::plan_json`]).
    pub fn to_json(&self) -> String {
        let p = PlanJson {
            format: PLAN_FORMAT.into(),
            ring_bits: self.ring_bits,
            gates: self.gates.iter().map(to_json).collect(),
        };
        // Serializing plain structs of integers and strings cannot fail.
        serde_json::to_string_pretty(&p).unwrap_or_default()
    }

    /// Parses a plan written by [`Plan::to_json`] (or by hand). Gate
    /// parameters are checked when keys are generated.
    pub fn from_json(text: &str) -> Result<Plan, DealerError> {
        let p: PlanJson =
            serde_json::from_str(text).map_err(|e| DealerError::PlanJson(e.to_string()))?;
        if p.format != PLAN_FORMAT {
            return Err(DealerError::PlanJson(format!(
                "format is {:?}, this build reads {PLAN_FORMAT:?}",
                p.format
            )));
        }
        if p.ring_bits != 32 && p.ring_bits != 64 {
            return Err(DealerError::PlanJson(format!(
                "ring_bits is {}, must be 32 or 64",
                p.ring_bits
            )));
        }
        Ok(Plan::new(
            p.ring_bits,
            p.gates.into_iter().map(from_json).collect(),
        ))
    }
}

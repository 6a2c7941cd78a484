//! Plans as JSON, for the `ariann-dealer` command line (`--plan FILE`,
//! `ariann-dealer plan`): [`to_json`] and [`from_json`].
//!
//! The document is the `serde` serialization of [`Plan`] (see
//! `ariann_mpc::plan`) with a `format` string in front:
//!
//! ```json
//! {
//!   "format": "ariann-plan/2",
//!   "ring_bits": 64,
//!   "gates": [
//!     {"gate": "triple", "map": "matmul", "m": 2, "k": 784, "n": 128},
//!     {"gate": "trunc", "m": 256, "f": 16, "k": 56},
//!     {"gate": "relu", "m": 256, "k": 32},
//!     {"gate": "max_pool", "shape": {"n": 1, "c": 6, "h": 24, "w": 24, "k": 2, "stride": 2, "pad": 0}, "k": 32},
//!     {"gate": "spline", "func": {"fn": "exp", "f": 16}, "m": 320, "k": 40},
//!     {"gate": "spline", "func": {"fn": "recip", "f": 16, "max": 10}, "m": 32, "k": 40}
//!   ]
//! }
//! ```
//!
//! Gates: `"gate"` is the kind's name in the gate table
//! (`ariann_mpc::table`), next to the fields of that
//! [`GateDesc`](crate::GateDesc) variant. Every field is required and unknown
//! fields are refused (inside a `train_triple`'s `map` object too); `k` is
//! the comparison, truncation or spline window in bits, except in `matmul` (the
//! inner dimension) and in a pool `shape` (the window side).
//!
//! | `gate` | fields |
//! |---|---|
//! | `drelu`, `relu`, `eq_zero`, `relu_small` | `m`, `k` |
//! | `trunc`, `trunc_small`, `trunc_stoch`, `trunc_relu` | `m`, `f`, `k` (for `trunc_relu`, `k` is the window of the truncated value: `-2^(k-1) < x >> f < 2^(k-1)`) |
//! | `triple` | `map` (`mul`, `matmul` or `conv2d`) and that map's fields: |
//! | &nbsp;&nbsp;`"map": "mul"` | `len` |
//! | &nbsp;&nbsp;`"map": "matmul"` | `m`, `k`, `n` (matrix dimensions: `(m x k) . (k x n)`) |
//! | &nbsp;&nbsp;`"map": "conv2d"` | `n`, `c`, `h`, `w`, `oc`, `kh`, `kw`, `stride`, `pad` |
//! | `max_pool`, `max_pool_one_hot`, `max_pool_small` | `shape` (an object: `n`, `c`, `h`, `w`, `k`, `stride`, `pad`), `k` |
//! | `batch_norm` | `n`, `c`, `h`, `w` |
//! | `argmax`, `argmax_small` | `rows`, `n`, `k` |
//! | `spline` | `func` (an object: `"fn"` and that function's fields, below), `m`, `k` |
//! | &nbsp;&nbsp;`"fn": "exp"` | `f` (`e^u` for `u <= 0`, input with `f` fractional bits) |
//! | &nbsp;&nbsp;`"fn": "recip"` | `f`, `max` (`1/s` for `s` in `[1, max]`) |
//! | `train_triple` | `map` (an object: a `triple`'s `map` and its fields, e.g. `{"map": "matmul", "m": 64, "k": 800, "n": 500}`), `dx` (`true` or `false`: whether the backward computes the input gradient) |
//! | `triple_reuse` | `map` (an object, as `train_triple`'s), `from` (the plan index of an earlier `triple` gate with the same right operand's shape, whose weight mask this product reuses: a later batch of a multi-batch inference job; the dealer keeps that gate's mask until its last reuse) |
//!
//! Version 1 (`ariann-plan/1`: flat `matmul`/`mul`/`conv2d` gates, a pool's
//! window as `size`) is refused with a request to regenerate the plan. The
//! JSON form is for people and tools; the plan hash is computed from the
//! canonical binary encoding ([`Plan::hash`]), so reformatting the JSON does
//! not change it.

use crate::{DealerError, Plan};
use serde::Serialize;
use serde_json::Value;

/// The `format` value of this version.
pub const PLAN_FORMAT: &str = "ariann-plan/2";

/// Formats this build refuses because an older `ariann-dealer` wrote them.
const OLDER_FORMATS: &[&str] = &["ariann-plan/1"];

#[derive(Serialize)]
struct Document<'a> {
    format: &'static str,
    #[serde(flatten)]
    plan: &'a Plan,
}

/// The plan as pretty-printed JSON.
pub fn to_json(plan: &Plan) -> String {
    // Serializing plain structs of integers and strings cannot fail.
    serde_json::to_string_pretty(&Document {
        format: PLAN_FORMAT,
        plan,
    })
    .unwrap_or_default()
}

/// Parses a plan written by [`to_json`] (or by hand). Gate parameters are
/// checked when keys are generated.
pub fn from_json(text: &str) -> Result<Plan, DealerError> {
    let bad = |m: String| DealerError::PlanJson(m);
    let mut doc: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let obj = doc
        .as_object_mut()
        .ok_or_else(|| bad("a plan is a JSON object".into()))?;
    match obj.remove("format") {
        None => return Err(bad(format!("missing field `format` ({PLAN_FORMAT:?})"))),
        Some(Value::String(f)) if f == PLAN_FORMAT => {}
        Some(Value::String(f)) if OLDER_FORMATS.contains(&f.as_str()) => {
            return Err(bad(format!(
                "plan format {f} was written by an older ariann-dealer; regenerate the plan \
                 with this version (it reads and writes {PLAN_FORMAT})"
            )));
        }
        Some(f) => {
            return Err(bad(format!(
                "format is {f}, this build reads {PLAN_FORMAT:?}"
            )));
        }
    }
    let plan: Plan = serde_json::from_value(doc).map_err(|e| bad(e.to_string()))?;
    if plan.ring_bits != 32 && plan.ring_bits != 64 {
        return Err(bad(format!(
            "ring_bits is {}, must be 32 or 64",
            plan.ring_bits
        )));
    }
    Ok(plan)
}

//! Online cost of every gate, measured: each gate runs with both parties on
//! threads over the in-memory transport, and its rounds and bytes come from
//! the transport's counters (not from formulas). Key bytes per party come
//! from the gate description (`GateDesc::cost`, no key generated to size
//! them), and the run fails if that prediction's rounds or bytes differ from
//! the measured ones. Next to them: ARIANN's
//! Table 1 (rounds and number of values, which ARIANN sends as 4-byte values)
//! and Falcon's where ARIANN gives it.
//!
//! Then the savings of mask reuse in training: for the products of LeNet's
//! training at batch 64, one training product (`train_triple`: the forward
//! triple's openings serve the backward, whose masks come in the same key)
//! against a forward triple plus two fresh triples for the backward products
//! (`dx` on `(dz, y)`, `dy` on `(x, dz)`). Key and online bytes per party
//! come from `GateDesc::cost`; the training product is also run and its
//! measured rounds and bytes must match the prediction.
//!
//! Then the small-key variants (`relu_small`, `trunc_relu`, `trunc_small`,
//! `max_pool_small`, `argmax_small`: one more round, or none for the fused
//! truncation + ReLU, for about half the key) against the gates they
//! replace: key bytes per party per element (per pooled output, per argmax
//! row) and rounds, from `GateDesc::cost`; the small gates are also run in
//! the first table (measured rows, checked against the prediction).
//!
//! The `conv2d, reused W` row is a later batch's product of a
//! multi-batch inference job (`triple_reuse`): the weight's opening is the
//! first batch's, so only the input is opened and the key has no `b`.
//!
//! ```text
//! cargo run --release --example op_costs            # table
//! cargo run --release --example op_costs -- --json  # JSON array
//! ```

use ariann::mpc::bundle::generate_bundles;
use ariann::mpc::gates::beaver::{Bilinear, TripleKey};
use ariann::mpc::gates::cmp::{DreluKey, EqZeroKey, ReluKey};
use ariann::mpc::gates::pool::{
    ArgmaxKey, ArgmaxSmallKey, MaxPoolKey, MaxPoolOneHotKey, MaxPoolSmallKey, PoolShape,
};
use ariann::mpc::gates::small::{ReluSmallKey, TruncReluKey};
use ariann::mpc::gates::trunc::{TruncKey, TruncSmallKey};
use ariann::mpc::{
    CommStats, GateCost, GateDesc, MpcError, Session, Transport, VecSource, run_two_party,
};
use ariann::ring::{Conv2dShape, RingTensor, share};
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;
use serde_json::json;

/// Comparison window used for every comparison-based gate.
const K: u32 = 32;

struct Row {
    gate: &'static str,
    shape: String,
    rounds: u64,
    bytes: u64,
    key_bytes: usize,
    ariann_rounds: Option<u64>,
    ariann_values: Option<u64>,
    falcon_rounds: Option<String>,
    falcon_values: Option<String>,
}

impl Row {
    /// A measured row with ARIANN's Table-1 figures and no Falcon figures.
    fn new(
        gate: &'static str,
        shape: String,
        s: CommStats,
        key_bytes: usize,
        ariann_rounds: u64,
        ariann_values: u64,
    ) -> Row {
        Row {
            gate,
            shape,
            rounds: s.rounds,
            bytes: s.bytes_sent,
            key_bytes,
            ariann_rounds: Some(ariann_rounds),
            ariann_values: Some(ariann_values),
            falcon_rounds: None,
            falcon_values: None,
        }
    }

    /// Adds Falcon's figures (as the paper states them).
    fn falcon(mut self, rounds: String, values: String) -> Row {
        self.falcon_rounds = Some(rounds);
        self.falcon_values = Some(values);
        self
    }
}

/// Runs `f0`/`f1` as the two parties and returns party 0's counters (the
/// protocol is symmetric; both parties send the same amount).
fn measure<F0, F1>(f0: F0, f1: F1) -> Result<CommStats, MpcError>
where
    F0: FnOnce(&mut ariann::mpc::MemTransport) -> Result<(), MpcError> + Send,
    F1: FnOnce(&mut ariann::mpc::MemTransport) -> Result<(), MpcError> + Send,
{
    let ((r0, s0), (r1, s1)) = run_two_party(
        |t| {
            let r = f0(t);
            (r, t.stats())
        },
        |t| {
            let r = f1(t);
            (r, t.stats())
        },
    );
    r0?;
    r1?;
    assert_eq!(s0.bytes_sent, s1.bytes_sent, "asymmetric protocol");
    Ok(s0)
}

/// Key bytes per party of `gate` on `Z_2^64`, predicted from its
/// description; errors if the predicted rounds or bytes are not `measured`.
fn key_bytes(gate: GateDesc, measured: CommStats) -> Result<usize, Box<dyn std::error::Error>> {
    let c = gate.cost(64)?;
    if (c.rounds, c.bytes_sent) != (measured.rounds, measured.bytes_sent) {
        return Err(format!(
            "{gate:?}: predicted {} rounds and {} bytes, measured {} and {}",
            c.rounds, c.bytes_sent, measured.rounds, measured.bytes_sent
        )
        .into());
    }
    Ok(usize::try_from(c.key_bytes)?)
}

fn zeros(m: usize) -> Vec<u64> {
    vec![0; m]
}

/// The two backward products of `map` as bilinear maps of their own, for
/// fresh triples: `dx = back_x(dz, y)` on `(dz, y)` and `dy = back_y(x, dz)`
/// on `(x, dz)`. A matrix product's are matrix products; a convolution's
/// (stride 1, square kernel) are convolutions: `dx` the full convolution of
/// `dz` with the transposed, flipped weight, `dy` the correlation of `x`
/// with `dz` with batch and channels swapped. Checked: each operates on
/// operands and gives an output of the sizes of the tensors it stands for.
fn backward_maps(map: Bilinear) -> Result<(Bilinear, Bilinear), Box<dyn std::error::Error>> {
    let (dx, dy) = match map {
        Bilinear::MatMul { m, k, n } => (
            Bilinear::MatMul { m, k: n, n: k },
            Bilinear::MatMul { m: k, k: m, n },
        ),
        Bilinear::Conv2d(s) if s.stride == 1 && s.kh == s.kw && s.pad < s.kh => {
            let (oh, ow) = s.out_hw()?;
            (
                Bilinear::Conv2d(Conv2dShape {
                    n: s.n,
                    c: s.oc,
                    h: oh,
                    w: ow,
                    oc: s.c,
                    kh: s.kh,
                    kw: s.kw,
                    stride: 1,
                    pad: s.kh - 1 - s.pad,
                }),
                Bilinear::Conv2d(Conv2dShape {
                    n: s.c,
                    c: s.n,
                    h: s.h,
                    w: s.w,
                    oc: s.oc,
                    kh: oh,
                    kw: ow,
                    stride: 1,
                    pad: s.pad,
                }),
            )
        }
        other => return Err(format!("no backward triples written for {other:?}").into()),
    };
    let len = |s: &[usize]| s.iter().product::<usize>();
    let (sx, sy, sz) = map.shapes()?;
    let (a, b, c) = dx.shapes()?;
    let (d, e, f) = dy.shapes()?;
    let want = [&sz, &sy, &sx, &sx, &sz, &sy];
    let got = [&a, &b, &c, &d, &e, &f];
    if want.iter().zip(got).any(|(w, g)| len(w) != len(g)) {
        return Err(format!("backward maps of {map:?} do not match its sizes").into());
    }
    Ok((dx, dy))
}

/// A training product's figures: with mask reuse (measured, and checked
/// against the prediction) and with three triples (predicted).
struct TrainRow {
    name: &'static str,
    /// The `gate` of the JSON rows: mask reuse, three triples.
    json_names: [&'static str; 2],
    shape: String,
    dx: bool,
    reuse: GateCost,
    triples: GateCost,
}

/// Runs the forward and backward of a training product with zero inputs;
/// the measured counters.
fn measure_train(map: Bilinear, dx: bool, rng: &mut ChaCha12Rng) -> Result<CommStats, MpcError> {
    let (b0, b1) = generate_bundles::<u64, _>(0, GateDesc::TrainTriple { map, dx }, rng)?;
    let (sx, sy, sz) = map.shapes()?;
    let run = |b, t: &mut ariann::mpc::MemTransport| -> Result<(), MpcError> {
        let mut src = VecSource::new([b]);
        let mut s = Session::new(t, &mut src);
        let y = RingTensor::<u64>::zeros(&sy);
        let (_, tape) = s.bilinear_train(map, &RingTensor::zeros(&sx), &y, dx)?;
        s.bilinear_backward(tape, &RingTensor::zeros(&sz), &y)?;
        Ok(())
    };
    measure(|t| run(b0, t), |t| run(b1, t))
}

/// LeNet's training products at batch 64: mask reuse against three triples.
fn training_rows(rng: &mut ChaCha12Rng) -> Result<Vec<TrainRow>, Box<dyn std::error::Error>> {
    let conv = |c, hw, oc| Conv2dShape {
        n: 64,
        c,
        h: hw,
        w: hw,
        oc,
        kh: 5,
        kw: 5,
        stride: 1,
        pad: 0,
    };
    let products = [
        // The first layer needs no input gradient.
        ("conv2d", Bilinear::Conv2d(conv(1, 28, 20)), false),
        ("conv2d", Bilinear::Conv2d(conv(20, 12, 50)), true),
        (
            "matmul",
            Bilinear::MatMul {
                m: 64,
                k: 800,
                n: 500,
            },
            true,
        ),
        (
            "matmul",
            Bilinear::MatMul {
                m: 64,
                k: 500,
                n: 10,
            },
            true,
        ),
    ];
    let mut rows = Vec::new();
    for (name, map, dx) in products {
        let json_names = if name == "matmul" {
            ["matmul (train, mask reuse)", "matmul (train, 3 triples)"]
        } else {
            ["conv2d (train, mask reuse)", "conv2d (train, 3 triples)"]
        };
        let reuse = GateDesc::TrainTriple { map, dx }.cost(64)?;
        let measured = measure_train(map, dx, rng)?;
        if (reuse.rounds, reuse.bytes_sent) != (measured.rounds, measured.bytes_sent) {
            return Err(format!(
                "{map:?}: predicted {} rounds and {} bytes, measured {} and {}",
                reuse.rounds, reuse.bytes_sent, measured.rounds, measured.bytes_sent
            )
            .into());
        }
        let (dx_map, dy_map) = backward_maps(map)?;
        let mut triples = GateDesc::Triple(map)
            .cost(64)?
            .then(GateDesc::Triple(dy_map).cost(64)?)?;
        if dx {
            triples = triples.then(GateDesc::Triple(dx_map).cost(64)?)?;
        }
        let shape = match map {
            Bilinear::MatMul { m, k, n } => format!("{m}x{k} . {k}x{n}"),
            Bilinear::Conv2d(s) => format!(
                "{}x{}x{}x{}, {} filters {}x{}",
                s.n, s.c, s.h, s.w, s.oc, s.kh, s.kw
            ),
            Bilinear::Mul { len } => format!("{len}"),
        };
        rows.push(TrainRow {
            name,
            json_names,
            shape,
            dx,
            reuse,
            triples,
        });
    }
    Ok(rows)
}

/// The percentage of `triples` that mask reuse saves.
fn saved(reuse: u64, triples: u64) -> f64 {
    100.0 * (1.0 - reuse as f64 / triples as f64)
}

/// A small-key gate against the gate(s) it replaces (costs per party).
struct SmallRow {
    name: &'static str,
    /// The `gate` of the JSON rows: replaced, small-key.
    json_names: [&'static str; 2],
    shape: String,
    /// What the key bytes are counted per.
    unit: &'static str,
    base: GateCost,
    small: GateCost,
    base_per: f64,
    small_per: f64,
}

/// relu vs relu_small, trunc + relu vs trunc_relu (and trunc + relu_small),
/// max-pool 2x2 and 3x3 vs max_pool_small, argmax vs argmax_small over 10
/// classes, from `GateDesc::cost` on `Z_2^64`.
fn small_key_rows() -> Result<Vec<SmallRow>, Box<dyn std::error::Error>> {
    let m = 10_000usize;
    let cost = |g: GateDesc| g.cost(64);
    let mut rows = Vec::new();
    let mut push =
        |name, json_names, shape: String, unit, units: usize, base: GateCost, small: GateCost| {
            rows.push(SmallRow {
                name,
                json_names,
                shape,
                unit,
                base,
                small,
                base_per: base.key_bytes as f64 / units as f64,
                small_per: small.key_bytes as f64 / units as f64,
            });
        };
    push(
        "relu -> relu_small",
        ["relu", "relu_small"],
        format!("m={m}, k={K}"),
        "element",
        m,
        cost(GateDesc::Relu { m, k: K })?,
        cost(GateDesc::ReluSmall { m, k: K })?,
    );
    // x in a 48-bit window, truncated by 16 to a 32-bit window.
    let trunc = cost(GateDesc::Trunc {
        m,
        f: 16,
        k: K + 16,
    })?;
    let fused = cost(GateDesc::TruncRelu { m, f: 16, k: K })?;
    push(
        "trunc+relu -> trunc_relu",
        ["trunc+relu", "trunc_relu"],
        format!("m={m}, f=16, k={K}"),
        "element",
        m,
        trunc.then(cost(GateDesc::Relu { m, k: K })?)?,
        fused,
    );
    push(
        "trunc+relu_small -> trunc_relu",
        ["trunc+relu_small", "trunc_relu"],
        format!("m={m}, f=16, k={K}"),
        "element",
        m,
        trunc.then(cost(GateDesc::ReluSmall { m, k: K })?)?,
        fused,
    );
    // The exact truncation with a 1-bit borrow DCF (training's truncations
    // with small keys). The key depends on f (the DCF's width), not on the
    // window k (which only sets the offset): f = 20 on k = 56 (training's
    // default) and on k = 36 cost the same.
    for (f, k) in [(16u32, 48u32), (20, 56), (20, 36)] {
        push(
            "trunc -> trunc_small",
            ["trunc", "trunc (small key)"],
            format!("m={m}, f={f}, k={k}"),
            "element",
            m,
            cost(GateDesc::Trunc { m, f, k })?,
            cost(GateDesc::TruncSmall { m, f, k })?,
        );
    }
    for (kk, st) in [(2usize, 2usize), (3, 1), (3, 2)] {
        let shape = PoolShape {
            n: 1,
            c: 1,
            h: 24,
            w: 24,
            k: kk,
            stride: st,
            pad: 0,
        };
        let (oh, ow) = shape.out_hw()?;
        push(
            "max_pool -> max_pool_small",
            ["maxpool (tree)", "maxpool (small key)"],
            format!("24x24, {kk}x{kk}, s={st}"),
            "output",
            oh * ow,
            cost(GateDesc::MaxPool { shape, k: K })?,
            cost(GateDesc::MaxPoolSmall { shape, k: K })?,
        );
    }
    push(
        "argmax -> argmax_small",
        ["argmax", "argmax (small key)"],
        "64 rows x 10 classes".into(),
        "row",
        64,
        cost(GateDesc::Argmax {
            rows: 64,
            n: 10,
            k: K,
        })?,
        cost(GateDesc::ArgmaxSmall {
            rows: 64,
            n: 10,
            k: K,
        })?,
    );
    Ok(rows)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let json_out = std::env::args().any(|a| a == "--json");
    let mut rng = ChaCha12Rng::seed_from_u64(1);
    let mut rows = Vec::new();
    let m = 10_000usize;

    // Equality.
    let (k0, k1) = EqZeroKey::<u64>::generate(K, m, &mut rng)?;
    let s = measure(
        |t| k0.eval(t, &zeros(m)).map(|_| ()),
        |t| k1.eval(t, &zeros(m)).map(|_| ()),
    )?;
    rows.push(Row::new(
        "equality",
        format!("m={m}, k={K}"),
        s,
        key_bytes(GateDesc::EqZero { m, k: K }, s)?,
        1,
        m as u64,
    ));

    // Comparison (DReLU).
    let (k0, k1) = DreluKey::<u64>::generate(K, m, &mut rng)?;
    let s = measure(
        |t| k0.eval(t, &zeros(m)).map(|_| ()),
        |t| k1.eval(t, &zeros(m)).map(|_| ()),
    )?;
    rows.push(
        Row::new(
            "comparison",
            format!("m={m}, k={K}"),
            s,
            key_bytes(GateDesc::Drelu { m, k: K }, s)?,
            1,
            m as u64,
        )
        .falcon("7".into(), format!("{}", 2 * m)),
    );

    // ReLU.
    let (k0, k1) = ReluKey::<u64>::generate(K, m, &mut rng)?;
    let s = measure(
        |t| k0.eval(t, &zeros(m)).map(|_| ()),
        |t| k1.eval(t, &zeros(m)).map(|_| ()),
    )?;
    rows.push(
        Row::new(
            "relu",
            format!("m={m}, k={K}"),
            s,
            key_bytes(GateDesc::Relu { m, k: K }, s)?,
            2,
            3 * m as u64,
        )
        .falcon("10".into(), format!("{}", 4 * m)),
    );

    // Truncation (ARIANN truncates locally, with errors; no Table-1 row).
    let (k0, k1) = TruncKey::<u64>::generate(16, 48, m, &mut rng)?;
    let s = measure(
        |t| k0.eval(t, &zeros(m)).map(|_| ()),
        |t| k1.eval(t, &zeros(m)).map(|_| ()),
    )?;
    rows.push(Row::new(
        "truncation (exact)",
        format!("m={m}, f=16, k=48"),
        s,
        key_bytes(GateDesc::Trunc { m, f: 16, k: 48 }, s)?,
        0,
        0,
    ));

    // MatMul.
    let (m1, m2, m3) = (128usize, 784usize, 128usize);
    let map = Bilinear::MatMul {
        m: m1,
        k: m2,
        n: m3,
    };
    let (k0, k1) = TripleKey::<u64>::generate(map, &mut rng)?;
    let x = RingTensor::<u64>::zeros(&[m1, m2]);
    let y = RingTensor::<u64>::zeros(&[m2, m3]);
    let ((x0, x1), (y0, y1)) = (share(&x, &mut rng), share(&y, &mut rng));
    let s = measure(
        |t| k0.eval(t, &x0, &y0).map(|_| ()),
        |t| k1.eval(t, &x1, &y1).map(|_| ()),
    )?;
    rows.push(
        Row::new(
            "matmul",
            format!("{m1}x{m2} . {m2}x{m3}"),
            s,
            key_bytes(GateDesc::Triple(map), s)?,
            1,
            (m1 * m2 + m2 * m3) as u64,
        )
        .falcon("1".into(), format!("{}", m1 * m3)),
    );

    // Convolutions: ARIANN's single-channel m x m with {k, s}, and a real layer.
    for (n, c, hw, oc, kk, st, pad) in [
        (1usize, 1usize, 28usize, 1usize, 5usize, 1usize, 0usize),
        (1, 1, 32, 1, 3, 2, 0),
        (1, 64, 32, 64, 3, 1, 1),
    ] {
        let cs = Conv2dShape {
            n,
            c,
            h: hw,
            w: hw,
            oc,
            kh: kk,
            kw: kk,
            stride: st,
            pad,
        };
        let map = Bilinear::Conv2d(cs);
        let (k0, k1) = TripleKey::<u64>::generate(map, &mut rng)?;
        let x = RingTensor::<u64>::zeros(&cs.input_shape());
        let w = RingTensor::<u64>::zeros(&cs.weight_shape());
        let ((x0, x1), (w0, w1)) = (share(&x, &mut rng), share(&w, &mut rng));
        let s = measure(
            |t| k0.eval(t, &x0, &w0).map(|_| ()),
            |t| k1.eval(t, &x1, &w1).map(|_| ()),
        )?;
        let (oh, ow) = cs.out_hw()?;
        // ARIANN unrolls the input: (OH * OW) * C k^2 values, plus the weights.
        let ariann = (n * oh * ow * c * kk * kk + oc * c * kk * kk) as u64;
        rows.push(
            Row::new(
                "conv2d",
                format!("{n}x{c}x{hw}x{hw}, {oc} filters {kk}x{kk}, s={st}, p={pad}"),
                s,
                key_bytes(GateDesc::Triple(map), s)?,
                1,
                ariann,
            )
            .falcon("1".into(), format!("~{}", n * c * hw * hw * kk * kk)),
        );
    }

    // The same real layer in a later batch of a multi-batch inference job:
    // a `triple_reuse` gate reuses the first batch's opening of the weight
    // (`ariann::mpc::gates::reuse`) and opens only the input. Measured as
    // the first product plus the reuse, minus the first product's
    // (measured above, equal to its prediction).
    {
        let cs = Conv2dShape {
            n: 1,
            c: 64,
            h: 32,
            w: 32,
            oc: 64,
            kh: 3,
            kw: 3,
            stride: 1,
            pad: 1,
        };
        let map = Bilinear::Conv2d(cs);
        let reuse = GateDesc::TripleReuse { map, from: 0 };
        let p = ariann::mpc::Plan::new(64, vec![GateDesc::Triple(map), reuse]);
        let (mut b0, mut b1) = (vec![], vec![]);
        for pair in p.bundles_from_os::<u64>()? {
            let (a, b) = pair?;
            b0.push(a);
            b1.push(b);
        }
        let x = RingTensor::<u64>::zeros(&cs.input_shape());
        let w = RingTensor::<u64>::zeros(&cs.weight_shape());
        let ((x0, x1), (w0, w1)) = (share(&x, &mut rng), share(&w, &mut rng));
        let run = |t: &mut ariann::mpc::MemTransport, b, x: &RingTensor<u64>, w| {
            let mut src = VecSource::new(b);
            let mut s = Session::new(t, &mut src);
            s.bilinear_keeping(map, x, w)?;
            s.bilinear_reuse(map, 0, x, w).map(|_| ())
        };
        let both = measure(|t| run(t, b0, &x0, &w0), |t| run(t, b1, &x1, &w1))?;
        let first = GateDesc::Triple(map).cost(64)?;
        let s = CommStats {
            rounds: both.rounds - first.rounds,
            bytes_sent: both.bytes_sent - first.bytes_sent,
            bytes_received: both.bytes_received - first.bytes_sent,
        };
        let mut row = Row::new(
            "conv2d, reused W",
            "1x64x32x32, 64 filters 3x3, s=1, p=1".into(),
            s,
            key_bytes(reuse, s)?,
            1,
            0,
        );
        // ARIANN has no reuse across batches.
        row.ariann_rounds = None;
        row.ariann_values = None;
        rows.push(row);
    }

    // Argmax over m = 10 values.
    let am = 10usize;
    let (k0, k1) = ArgmaxKey::<u64>::generate(1, am, K, &mut rng)?;
    let s = measure(
        |t| k0.eval(t, &zeros(am)).map(|_| ()),
        |t| k1.eval(t, &zeros(am)).map(|_| ()),
    )?;
    rows.push(Row::new(
        "argmax",
        format!("m={am}"),
        s,
        key_bytes(
            GateDesc::Argmax {
                rows: 1,
                n: am,
                k: K,
            },
            s,
        )?,
        2,
        (am * am) as u64,
    ));

    // Max-pool m x m, {k, s}.
    for (mm, kk, st) in [(24usize, 2usize, 2usize), (24, 3, 1), (32, 3, 2)] {
        let ps = PoolShape {
            n: 1,
            c: 1,
            h: mm,
            w: mm,
            k: kk,
            stride: st,
            pad: 0,
        };
        let (k0, k1) = MaxPoolKey::<u64>::generate(ps, K, &mut rng)?;
        let len = ps.input_len();
        let s = measure(
            |t| k0.eval(t, &zeros(len)).map(|_| ()),
            |t| k1.eval(t, &zeros(len)).map(|_| ()),
        )?;
        let o = ((mm - kk) / st + 1) as u64;
        if kk > 2 {
            let (q0, q1) = MaxPoolOneHotKey::<u64>::generate(ps, K, &mut rng)?;
            let s3 = measure(
                |t| q0.eval(t, &zeros(len)).map(|_| ()),
                |t| q1.eval(t, &zeros(len)).map(|_| ()),
            )?;
            rows.push(
                Row::new(
                    "maxpool (3-round)",
                    format!("{mm}x{mm}, k={kk}, s={st}"),
                    s3,
                    key_bytes(GateDesc::MaxPoolOneHot { shape: ps, k: K }, s3)?,
                    3,
                    o * o * ((kk * kk * kk * kk) as u64 + 2),
                )
                .falcon(
                    format!("{}", 12 * (kk * kk - 1)),
                    format!("~{}", 5 * mm * mm),
                ),
            );
        }
        rows.push(
            Row::new(
                "maxpool (tree)",
                format!("{mm}x{mm}, k={kk}, s={st}"),
                s,
                key_bytes(GateDesc::MaxPool { shape: ps, k: K }, s)?,
                3,
                o * o * ((kk * kk * kk * kk) as u64 + 2),
            )
            .falcon(
                format!("{}", 12 * (kk * kk - 1)),
                format!("~{}", 5 * mm * mm),
            ),
        );
    }

    // Batch-norm (training forward) on a 32x32 map, 16 channels, batch 8.
    let bs = ariann::mpc::gates::batchnorm::BatchNormShape {
        n: 8,
        c: 16,
        h: 32,
        w: 32,
    };
    let (k0, k1) = ariann::mpc::gates::batchnorm::BatchNormKey::<u64>::generate(bs, &mut rng)?;
    let (len, c) = (bs.len(), bs.c);
    let s = measure(
        |t| {
            k0.eval(t, &zeros(len), &zeros(c), &zeros(c), 1e-5)
                .map(|_| ())
        },
        |t| {
            k1.eval(t, &zeros(len), &zeros(c), &zeros(c), 1e-5)
                .map(|_| ())
        },
    )?;
    rows.push(
        Row::new(
            "batchnorm (train)",
            format!("{}x{}x{}x{}", bs.n, bs.c, bs.h, bs.w),
            s,
            key_bytes(GateDesc::BatchNorm(bs), s)?,
            9,
            18 * len as u64,
        )
        .falcon("335".into(), format!("~{}", 56 * len)),
    );

    // The small-key gates, measured (ARIANN's figures of the gates they replace).
    let (k0, k1) = ReluSmallKey::<u64>::generate(K, m, &mut rng)?;
    let s = measure(
        |t| k0.eval(t, &zeros(m)).map(|_| ()),
        |t| k1.eval(t, &zeros(m)).map(|_| ()),
    )?;
    rows.push(Row::new(
        "relu (small key)",
        format!("m={m}, k={K}"),
        s,
        key_bytes(GateDesc::ReluSmall { m, k: K }, s)?,
        2,
        3 * m as u64,
    ));
    let (k0, k1) = TruncReluKey::<u64>::generate(16, K, m, &mut rng)?;
    let s = measure(
        |t| k0.eval(t, &zeros(m)).map(|_| ()),
        |t| k1.eval(t, &zeros(m)).map(|_| ()),
    )?;
    rows.push(Row {
        ariann_rounds: None,
        ariann_values: None,
        ..Row::new(
            "trunc+relu (fused)",
            format!("m={m}, f=16, k={K}"),
            s,
            key_bytes(GateDesc::TruncRelu { m, f: 16, k: K }, s)?,
            0,
            0,
        )
    });
    let (k0, k1) = TruncSmallKey::<u64>::generate(16, 48, m, &mut rng)?;
    let s = measure(
        |t| k0.eval(t, &zeros(m)).map(|_| ()),
        |t| k1.eval(t, &zeros(m)).map(|_| ()),
    )?;
    rows.push(Row {
        ariann_rounds: None,
        ariann_values: None,
        ..Row::new(
            "truncation (exact, small key)",
            format!("m={m}, f=16, k=48"),
            s,
            key_bytes(GateDesc::TruncSmall { m, f: 16, k: 48 }, s)?,
            0,
            0,
        )
    });
    let (k0, k1) = ArgmaxSmallKey::<u64>::generate(1, am, K, &mut rng)?;
    let s = measure(
        |t| k0.eval(t, &zeros(am)).map(|_| ()),
        |t| k1.eval(t, &zeros(am)).map(|_| ()),
    )?;
    rows.push(Row::new(
        "argmax (small key)",
        format!("m={am}"),
        s,
        key_bytes(
            GateDesc::ArgmaxSmall {
                rows: 1,
                n: am,
                k: K,
            },
            s,
        )?,
        2,
        (am * am) as u64,
    ));
    for (mm, kk, st) in [(24usize, 2usize, 2usize), (24, 3, 1)] {
        let ps = PoolShape {
            n: 1,
            c: 1,
            h: mm,
            w: mm,
            k: kk,
            stride: st,
            pad: 0,
        };
        let (k0, k1) = MaxPoolSmallKey::<u64>::generate(ps, K, &mut rng)?;
        let len = ps.input_len();
        let s = measure(
            |t| k0.eval(t, &zeros(len)).map(|_| ()),
            |t| k1.eval(t, &zeros(len)).map(|_| ()),
        )?;
        let o = ((mm - kk) / st + 1) as u64;
        rows.push(Row::new(
            "maxpool (small key)",
            format!("{mm}x{mm}, k={kk}, s={st}"),
            s,
            key_bytes(GateDesc::MaxPoolSmall { shape: ps, k: K }, s)?,
            3,
            o * o * ((kk * kk * kk * kk) as u64 + 2),
        ));
    }
    let small = small_key_rows()?;

    let train = training_rows(&mut rng)?;
    if json_out {
        // The training rows in the same schema: one object per variant.
        for t in &train {
            for (gate, c) in [(t.json_names[0], t.reuse), (t.json_names[1], t.triples)] {
                rows.push(Row {
                    gate,
                    shape: format!("{}, dx={}", t.shape, t.dx),
                    rounds: c.rounds,
                    bytes: c.bytes_sent,
                    key_bytes: usize::try_from(c.key_bytes)?,
                    ariann_rounds: None,
                    ariann_values: None,
                    falcon_rounds: None,
                    falcon_values: None,
                });
            }
        }
        for r in &small {
            for (gate, rounds, per) in [
                (r.json_names[0], r.base.rounds, r.base_per),
                (r.json_names[1], r.small.rounds, r.small_per),
            ] {
                rows.push(Row {
                    gate,
                    shape: format!("{} (key bytes per {})", r.shape, r.unit),
                    rounds,
                    bytes: 0,
                    key_bytes: per.round() as usize,
                    ariann_rounds: None,
                    ariann_values: None,
                    falcon_rounds: None,
                    falcon_values: None,
                });
            }
        }
        let arr: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({
                    "gate": r.gate, "shape": r.shape, "rounds": r.rounds,
                    "bytes_per_party": r.bytes, "key_bytes_per_party": r.key_bytes,
                    "values_per_party": r.bytes.div_ceil(8),
                    "ariann_rounds": r.ariann_rounds, "ariann_values": r.ariann_values,
                    "ariann_bytes": r.ariann_values.map(|v| 4 * v),
                    "falcon_rounds": r.falcon_rounds, "falcon_values": r.falcon_values,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(arr));
    } else {
        println!(
            "Online cost per party, measured over the in-memory transport (Z_2^64, k = {K}-bit comparison window)."
        );
        println!(
            "'values' = bytes / 8 (64-bit ring elements); ARIANN's Table 1 counts values, which it sends as 4 bytes ('ARIANN B').\n"
        );
        println!(
            "{:<19} {:<40} {:>6} {:>10} {:>10} {:>12} {:>6} {:>10} {:>10} {:>6} {:>10}",
            "gate",
            "shape",
            "rounds",
            "bytes",
            "values",
            "key bytes",
            "ARIANN",
            "values",
            "ARIANN B",
            "Falcon",
            "values"
        );
        for r in &rows {
            println!(
                "{:<19} {:<40} {:>6} {:>10} {:>10} {:>12} {:>6} {:>10} {:>10} {:>6} {:>10}",
                r.gate,
                r.shape,
                r.rounds,
                r.bytes,
                r.bytes.div_ceil(8),
                r.key_bytes,
                r.ariann_rounds.map_or("-".into(), |v| v.to_string()),
                r.ariann_values.map_or("-".into(), |v| v.to_string()),
                r.ariann_values.map_or("-".into(), |v| (4 * v).to_string()),
                r.falcon_rounds.clone().unwrap_or_else(|| "-".into()),
                r.falcon_values.clone().unwrap_or_else(|| "-".into()),
            );
        }
        println!(
            "\nSmall-key variants (Z_2^64, k = {K}; per party, from GateDesc::cost): key bytes per unit and rounds of"
        );
        println!(
            "the gate(s) replaced and of the small-key gate (a DCF with a 1-bit payload, one more round to convert its bit).\n"
        );
        println!(
            "{:<31} {:<22} {:<8} {:>6} {:>10} {:>6} {:>10} {:>6}",
            "gates", "shape", "unit", "rounds", "key B", "small", "key B", "saved"
        );
        for r in &small {
            println!(
                "{:<31} {:<22} {:<8} {:>6} {:>10.1} {:>6} {:>10.1} {:>5.1}%",
                r.name,
                r.shape,
                r.unit,
                r.base.rounds,
                r.base_per,
                r.small.rounds,
                r.small_per,
                100.0 * (1.0 - r.small_per / r.base_per),
            );
        }
        println!(
            "\nTraining products with mask reuse (LeNet, batch 64; Z_2^64, per party): one train_triple key, 2 rounds"
        );
        println!(
            "(forward opens x - a and y - b, backward opens dz - d) against a forward triple and fresh triples for the"
        );
        println!(
            "backward products (dy on (x, dz), and dx on (dz, y) where dx is needed; one round each, run one after the other)."
        );
        println!(
            "From GateDesc::cost; the mask-reuse rounds and bytes are also measured and checked.\n"
        );
        println!(
            "{:<8} {:<30} {:>5} {:>6} {:>6} {:>12} {:>12} {:>6} {:>12} {:>12} {:>6}",
            "product",
            "shape",
            "dx",
            "rounds",
            "(trip)",
            "key bytes",
            "(triples)",
            "saved",
            "online B",
            "(triples)",
            "saved"
        );
        for t in &train {
            println!(
                "{:<8} {:<30} {:>5} {:>6} {:>6} {:>12} {:>12} {:>5.1}% {:>12} {:>12} {:>5.1}%",
                t.name,
                t.shape,
                t.dx,
                t.reuse.rounds,
                t.triples.rounds,
                t.reuse.key_bytes,
                t.triples.key_bytes,
                saved(t.reuse.key_bytes, t.triples.key_bytes),
                t.reuse.bytes_sent,
                t.triples.bytes_sent,
                saved(t.reuse.bytes_sent, t.triples.bytes_sent),
            );
        }
    }
    Ok(())
}

//! Costs predicted from the gate description ([`GateDesc::cost`]) against
//! the real thing: for every gate kind, both rings and many shapes, the keys
//! are generated with a seeded RNG and the gate runs through a [`Session`]
//! on an in-memory transport pair; the predicted rounds and bytes must equal
//! both parties' transport counters, the predicted key bytes both parties'
//! [`GateKey::key_bytes`](ariann_mpc::GateKey::key_bytes), and the predicted
//! encoded length both bundles' [`KeyBundle::encode`] length.

use ariann_mpc::bundle::generate_bundles;
use ariann_mpc::gates::batchnorm::BatchNormShape;
use ariann_mpc::gates::beaver::Bilinear;
use ariann_mpc::gates::pool::PoolShape;
use ariann_mpc::gates::spline::SplineFn;
use ariann_mpc::{
    CommStats, GateCost, GateDesc, KeyBundle, MemTransport, MpcError, Session, Transport,
    VecSource, plan_cost, run_two_party,
};
use ariann_ring::{Conv2dShape, Ring, RingTensor};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Runs `gate` with this party's only bundle through a session; the
/// transport's counters after the run.
fn run_gate<R: Ring>(gate: GateDesc, bundle: KeyBundle<R>, t: &mut MemTransport) -> CommStats {
    let mut src = VecSource::new([bundle]);
    let mut s = Session::new(t, &mut src);
    run_in_session(&mut s, gate).expect("the gate runs");
    s.transport().stats()
}

/// Runs one gate on all-zero input shares (costs do not depend on values).
fn run_in_session<R: Ring, S: ariann_mpc::PreprocessingSource<R>>(
    s: &mut Session<'_, MemTransport, S, R>,
    gate: GateDesc,
) -> Result<(), MpcError> {
    let z = |n: usize| vec![R::ZERO; n];
    match gate {
        GateDesc::Drelu { m, k } => s.drelu(&z(m), k).map(drop),
        GateDesc::Relu { m, k } => s.relu(&z(m), k).map(drop),
        GateDesc::EqZero { m, k } => s.eq_zero(&z(m), k).map(drop),
        GateDesc::Trunc { m, f, k } => s.truncate(&z(m), f, k).map(drop),
        GateDesc::TruncSmall { m, f, k } => s.truncate_small(&z(m), f, k).map(drop),
        GateDesc::TruncStoch { m, f, k } => s.truncate_stochastic(&z(m), f, k).map(drop),
        GateDesc::Triple(map) => {
            let (sa, sb, _) = map.shapes()?;
            s.bilinear(map, &RingTensor::zeros(&sa), &RingTensor::zeros(&sb))
                .map(drop)
        }
        GateDesc::MaxPool { shape, k } => s.max_pool(&z(shape.input_len()), shape, k).map(drop),
        GateDesc::MaxPoolOneHot { shape, k } => s
            .max_pool_one_hot(&z(shape.input_len()), shape, k)
            .map(drop),
        GateDesc::BatchNorm(shape) => s
            .batch_norm(&z(shape.len()), shape, &z(shape.c), &z(shape.c), 1e-5)
            .map(drop),
        GateDesc::Argmax { rows, n, k } => s.argmax(&z(rows * n), rows, n, k).map(drop),
        GateDesc::Spline { func, m, k } => s.spline(func, &z(m), k).map(drop),
        GateDesc::ReluSmall { m, k } => s.relu_small(&z(m), k).map(drop),
        GateDesc::TruncRelu { m, f, k } => s.trunc_relu(&z(m), f, k).map(drop),
        GateDesc::MaxPoolSmall { shape, k } => {
            s.max_pool_small(&z(shape.input_len()), shape, k).map(drop)
        }
        GateDesc::ArgmaxSmall { rows, n, k } => s.argmax_small(&z(rows * n), rows, n, k).map(drop),
        GateDesc::TrainTriple { map, dx } => {
            // Forward, then backward: the backward consumes no bundle.
            let (sa, sb, sc) = map.shapes()?;
            let y = RingTensor::zeros(&sb);
            let (_, tape) = s.bilinear_train(map, &RingTensor::zeros(&sa), &y, dx)?;
            let (gx, _) = s.bilinear_backward(tape, &RingTensor::zeros(&sc), &y)?;
            assert_eq!(gx.is_some(), dx, "dx returned iff asked");
            Ok(())
        }
        // Needs the opening of an earlier gate: costed against a run in
        // `tests/reuse.rs`.
        GateDesc::TripleReuse { .. } => Err(MpcError::InvalidParameter(
            "a triple_reuse gate does not run alone".into(),
        )),
    }
}

/// Generates, runs and compares; returns the prediction.
fn check<R: Ring>(gate: GateDesc, seed: u64) -> GateCost {
    let predicted = gate
        .cost(R::BITS)
        .unwrap_or_else(|e| panic!("{gate:?} on Z_2^{}: {e}", R::BITS));
    assert_eq!(predicted, gate.cost_in::<R>().expect("same"), "{gate:?}");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (b0, b1) = generate_bundles::<R, _>(0, gate, &mut rng).expect("valid gate");
    let ctx = format!("{gate:?} on Z_2^{}", R::BITS);
    for b in [&b0, &b1] {
        assert_eq!(
            b.key.key_bytes() as u64,
            predicted.key_bytes,
            "{ctx}: key bytes"
        );
        assert_eq!(
            b.encode().len() as u64,
            predicted.encoded_bytes,
            "{ctx}: encoded bundle"
        );
    }
    let (s0, s1) = run_two_party(|t| run_gate(gate, b0, t), |t| run_gate(gate, b1, t));
    assert_eq!(s0, predicted.comm_stats(), "{ctx}: party 0 counters");
    assert_eq!(s1, predicted.comm_stats(), "{ctx}: party 1 counters");
    predicted
}

/// `check` on both rings where `gate` is valid on `Z_2^32` too.
fn check_both(gate: GateDesc, seed: u64) {
    check::<u64>(gate, seed);
    if gate.cost(32).is_ok() {
        check::<u32>(gate, seed.wrapping_add(1));
    }
}

/// Windows: 8/32/48/64 and odd ones, where valid for the ring.
const WINDOWS: [u32; 7] = [2, 8, 13, 24, 32, 48, 64];

#[test]
fn comparisons_and_equality() {
    let mut seed = 0;
    for k in WINDOWS {
        for m in [0usize, 1, 2, 7, 100] {
            seed += 3;
            check_both(GateDesc::Drelu { m, k }, seed);
            check_both(GateDesc::Relu { m, k }, seed + 1);
            check_both(GateDesc::EqZero { m, k }, seed + 2);
            check_both(GateDesc::ReluSmall { m, k }, seed + 1000);
        }
    }
    for m in [1usize, 5] {
        check_both(GateDesc::EqZero { m, k: 1 }, 900 + m as u64);
    }
    // Windows only the 32-bit ring refuses.
    assert!(GateDesc::Drelu { m: 1, k: 48 }.cost(32).is_err());
    assert!(GateDesc::Drelu { m: 1, k: 33 }.cost(32).is_err());
}

#[test]
fn truncations() {
    for (i, (f, k)) in [
        (1u32, 2u32),
        (8, 24),
        (12, 31),
        (16, 32),
        (16, 48),
        (30, 63),
    ]
    .into_iter()
    .enumerate()
    {
        for m in [0usize, 1, 3, 64] {
            check_both(GateDesc::Trunc { m, f, k }, 100 + 10 * i as u64 + m as u64);
            check_both(
                GateDesc::TruncSmall { m, f, k },
                700 + 10 * i as u64 + m as u64,
            );
            check_both(
                GateDesc::TruncStoch { m, f, k },
                900 + 10 * i as u64 + m as u64,
            );
        }
    }
}

#[test]
fn fused_truncation_relus() {
    for (i, (f, k)) in [
        (1u32, 2u32),
        (8, 16),
        (12, 19),
        (16, 15),
        (16, 32),
        (16, 47),
        (1, 62),
    ]
    .into_iter()
    .enumerate()
    {
        for m in [0usize, 1, 3, 9, 64] {
            check_both(
                GateDesc::TruncRelu { m, f, k },
                1100 + 10 * i as u64 + m as u64,
            );
        }
    }
    // Two rounds: a ring element, then two bits per element.
    let c = GateDesc::TruncRelu { m: 9, f: 16, k: 32 }
        .cost(64)
        .expect("valid");
    assert_eq!((c.rounds, c.bytes_sent), (2, 9 * 8 + 3));
    let c = GateDesc::ReluSmall { m: 9, k: 32 }.cost(64).expect("valid");
    assert_eq!((c.rounds, c.bytes_sent), (2, 9 * 8 + 2));
}

fn conv(
    n: usize,
    c: usize,
    (h, w): (usize, usize),
    oc: usize,
    kk: (usize, usize),
    st: usize,
    pad: usize,
) -> Bilinear {
    Bilinear::Conv2d(Conv2dShape {
        n,
        c,
        h,
        w,
        oc,
        kh: kk.0,
        kw: kk.1,
        stride: st,
        pad,
    })
}

#[test]
fn triples() {
    let maps = [
        Bilinear::Mul { len: 0 },
        Bilinear::Mul { len: 1 },
        Bilinear::Mul { len: 37 },
        Bilinear::MatMul { m: 1, k: 1, n: 1 },
        Bilinear::MatMul { m: 3, k: 5, n: 2 },
        Bilinear::MatMul { m: 8, k: 16, n: 4 },
        conv(1, 1, (5, 5), 1, (3, 3), 1, 0),
        conv(2, 3, (7, 6), 4, (3, 2), 2, 1),
        conv(1, 2, (8, 8), 3, (5, 5), 3, 2),
        conv(1, 1, (1, 1), 1, (1, 1), 1, 0),
    ];
    for (i, map) in maps.into_iter().enumerate() {
        check_both(GateDesc::Triple(map), 200 + i as u64);
    }
}

#[test]
fn training_products() {
    let maps = [
        Bilinear::Mul { len: 0 },
        Bilinear::Mul { len: 1 },
        Bilinear::Mul { len: 37 },
        Bilinear::MatMul { m: 1, k: 1, n: 1 },
        Bilinear::MatMul { m: 3, k: 5, n: 2 },
        Bilinear::MatMul { m: 8, k: 16, n: 4 },
        conv(1, 1, (5, 5), 1, (3, 3), 1, 0),
        conv(2, 3, (7, 6), 4, (3, 2), 2, 1),
        conv(1, 2, (8, 8), 3, (5, 5), 3, 2),
        conv(1, 1, (1, 1), 1, (1, 1), 1, 0),
    ];
    for (i, map) in maps.into_iter().enumerate() {
        let with = check_both_cost(GateDesc::TrainTriple { map, dx: true }, 250 + 2 * i as u64);
        let without = check_both_cost(GateDesc::TrainTriple { map, dx: false }, 251 + 2 * i as u64);
        let triple = GateDesc::Triple(map).cost(64).expect("valid");
        let (sx, sy, sz) = map.shapes().expect("valid");
        let (lx, ly, lz) = (
            sx.iter().product::<usize>() as u64,
            sy.iter().product::<usize>() as u64,
            sz.iter().product::<usize>() as u64,
        );
        // Forward and backward: 2 rounds, |x| + |y| + |z| elements sent.
        assert_eq!(with.rounds, 2);
        assert_eq!(with.bytes_sent, 8 * (lx + ly + lz), "{map:?}");
        assert_eq!(with.bytes_sent, without.bytes_sent);
        // Seeded halves: the triple's a, b, c (|x| + |y| + |z| elements)
        // as a seed and half of them, then d (|z|), cw (|y|) and cx (|x|)
        // the same way.
        let half = |n: u64| 16 + 8 * n.div_ceil(2);
        assert_eq!(triple.key_bytes, half(lx + ly + lz), "{map:?}");
        assert_eq!(with.key_bytes, triple.key_bytes + half(lz + ly + lx));
        assert_eq!(without.key_bytes, triple.key_bytes + half(lz + ly));
    }
}

/// `check_both`, returning the prediction on `Z_2^64`.
fn check_both_cost(gate: GateDesc, seed: u64) -> GateCost {
    let c = check::<u64>(gate, seed);
    check::<u32>(gate, seed.wrapping_add(1));
    c
}

fn pool(n: usize, c: usize, h: usize, w: usize, k: usize, stride: usize, pad: usize) -> PoolShape {
    PoolShape {
        n,
        c,
        h,
        w,
        k,
        stride,
        pad,
    }
}

#[test]
fn max_pools() {
    let shapes = [
        pool(1, 1, 4, 4, 2, 2, 0),
        pool(1, 1, 5, 5, 3, 1, 0),
        pool(2, 3, 6, 6, 3, 2, 1),
        pool(1, 2, 5, 7, 3, 2, 1),
        pool(1, 1, 7, 5, 2, 3, 0),
        pool(1, 1, 3, 3, 1, 1, 0),
        pool(1, 1, 1, 2, 4, 1, 3),
        pool(0, 2, 4, 4, 2, 2, 0),
        pool(1, 1, 9, 9, 4, 3, 2),
    ];
    let mut seed = 300;
    for shape in shapes {
        for k in [8u32, 24, 32, 48, 64] {
            seed += 2;
            check_both(GateDesc::MaxPool { shape, k }, seed);
            check_both(GateDesc::MaxPoolOneHot { shape, k }, seed + 1);
            check_both(GateDesc::MaxPoolSmall { shape, k }, seed + 1000);
        }
    }
    // A 1x1 window has no comparison: zero rounds, nothing sent.
    let c = check::<u64>(
        GateDesc::MaxPool {
            shape: pool(1, 1, 3, 3, 1, 1, 0),
            k: 24,
        },
        1,
    );
    assert_eq!((c.rounds, c.bytes_sent, c.key_bytes), (0, 0, 0));
    let c = check::<u64>(
        GateDesc::MaxPoolSmall {
            shape: pool(1, 1, 3, 3, 1, 1, 0),
            k: 24,
        },
        1,
    );
    assert_eq!((c.rounds, c.bytes_sent, c.key_bytes), (0, 0, 0));
    // Two rounds per tree level.
    let shape = pool(1, 1, 6, 6, 3, 3, 0);
    let (a, b) = (
        GateDesc::MaxPool { shape, k: 32 }.cost(64).expect("valid"),
        GateDesc::MaxPoolSmall { shape, k: 32 }
            .cost(64)
            .expect("valid"),
    );
    assert_eq!((a.rounds, b.rounds), (4, 8));
    assert!(2 * b.key_bytes < a.key_bytes);
}

#[test]
fn argmaxes() {
    let mut seed = 500;
    for (rows, n) in [(0usize, 3usize), (1, 1), (1, 2), (3, 10), (2, 17)] {
        for k in [8u32, 32, 48, 64] {
            seed += 1;
            check_both(GateDesc::Argmax { rows, n, k }, seed);
            check_both(GateDesc::ArgmaxSmall { rows, n, k }, seed + 1000);
        }
    }
}

#[test]
fn batch_norms() {
    for (i, (n, c, h, w)) in [(1usize, 1usize, 1usize, 1usize), (2, 3, 4, 4), (4, 2, 3, 5)]
        .into_iter()
        .enumerate()
    {
        let gate = GateDesc::BatchNorm(BatchNormShape { n, c, h, w });
        let cost = check::<u64>(gate, 600 + i as u64);
        assert_eq!(cost.rounds, 9);
        // 64-bit ring only, as key generation.
        assert!(gate.cost(32).is_err());
    }
}

#[test]
fn splines() {
    let funcs = [
        SplineFn::Exp { f: 6 },
        SplineFn::Exp { f: 12 },
        SplineFn::Exp { f: 16 },
        SplineFn::Recip { f: 6, max: 2 },
        SplineFn::Recip { f: 12, max: 16 },
        SplineFn::Recip { f: 16, max: 10 },
    ];
    let mut seed = 800;
    for func in funcs {
        for k in [16u32, 24, 32, 40, 64] {
            for m in [0usize, 1, 5] {
                seed += 1;
                let gate = GateDesc::Spline { func, m, k };
                if gate.cost(64).is_err() {
                    // Knots outside the window: refused on both rings.
                    assert!(gate.cost(32).is_err(), "{gate}");
                    continue;
                }
                check_both(gate, seed);
                let c = gate.cost(64).expect("valid");
                assert_eq!((c.rounds, c.bytes_sent), (1, 8 * m as u64));
            }
        }
    }
    // Per element, the key grows with the knots: one DCF on k - 1 bits and
    // two ring elements per knot, and the mask.
    let per = |func, k| {
        let c = |m| GateDesc::Spline { func, m, k }.cost(64).expect("valid");
        c(2).key_bytes - c(1).key_bytes
    };
    for k in [32u32, 40] {
        let (e, r) = (
            per(SplineFn::Exp { f: 16 }, k),
            per(SplineFn::Recip { f: 16, max: 10 }, k),
        );
        eprintln!(
            "spline key bytes per element on Z_2^64, k = {k}: exp(f=16) {e}, recip(f=16, max=10) {r}"
        );
        assert_eq!((e - 8) % 19, 0);
        assert_eq!((r - 8) % 21, 0);
        assert_eq!((e - 8) / 19, (r - 8) / 21);
    }
}

/// A plan run in one session: the totals of `plan_cost` are the counters.
#[test]
fn plan_totals_match_one_session() {
    let plan = [
        GateDesc::Triple(Bilinear::MatMul { m: 4, k: 20, n: 10 }),
        GateDesc::TrainTriple {
            map: Bilinear::MatMul { m: 4, k: 20, n: 10 },
            dx: true,
        },
        GateDesc::Trunc {
            m: 40,
            f: 16,
            k: 48,
        },
        GateDesc::Relu { m: 40, k: 32 },
        GateDesc::MaxPool {
            shape: pool(1, 1, 4, 10, 2, 2, 0),
            k: 32,
        },
        GateDesc::Argmax {
            rows: 2,
            n: 5,
            k: 32,
        },
        GateDesc::Spline {
            func: SplineFn::Exp { f: 16 },
            m: 10,
            k: 40,
        },
        GateDesc::ReluSmall { m: 40, k: 32 },
        GateDesc::TruncRelu {
            m: 40,
            f: 16,
            k: 32,
        },
        GateDesc::MaxPoolSmall {
            shape: pool(1, 1, 4, 10, 2, 2, 0),
            k: 32,
        },
        GateDesc::ArgmaxSmall {
            rows: 2,
            n: 5,
            k: 32,
        },
    ];
    let predicted = plan_cost(&plan, 64).expect("valid plan");
    assert_eq!(predicted.gates.len(), plan.len());
    let mut rng = ChaCha8Rng::seed_from_u64(700);
    let (mut b0, mut b1) = (Vec::new(), Vec::new());
    let (mut key_bytes, mut encoded) = (0u64, 0u64);
    for (i, g) in plan.iter().enumerate() {
        let (a, b) = generate_bundles::<u64, _>(i as u64, *g, &mut rng).expect("valid");
        key_bytes += a.key.key_bytes() as u64;
        encoded += a.encode().len() as u64;
        assert_eq!(predicted.gates[i], g.cost(64).expect("valid"));
        b0.push(a);
        b1.push(b);
    }
    assert_eq!(predicted.total.key_bytes, key_bytes);
    assert_eq!(predicted.total.encoded_bytes, encoded);
    assert_eq!(
        predicted.max_gate_key_bytes(),
        predicted
            .gates
            .iter()
            .map(|g| g.key_bytes)
            .max()
            .expect("gates")
    );
    let run = |bundles: Vec<KeyBundle<u64>>, t: &mut MemTransport| {
        let mut src = VecSource::new(bundles);
        let mut s = Session::new(t, &mut src);
        for g in &plan {
            run_in_session(&mut s, *g).expect("runs");
        }
        s.transport().stats()
    };
    let (s0, s1) = run_two_party(|t| run(b0, t), |t| run(b1, t));
    assert_eq!(s0, predicted.total.comm_stats());
    assert_eq!(s1, predicted.total.comm_stats());
}

/// Whatever key generation refuses, the cost refuses too.
#[test]
fn invalid_gates_are_refused_like_generation() {
    let bad = [
        GateDesc::Drelu { m: 3, k: 1 },
        GateDesc::Drelu { m: 3, k: 65 },
        GateDesc::Relu { m: 3, k: 0 },
        GateDesc::EqZero { m: 3, k: 0 },
        GateDesc::EqZero { m: 3, k: 65 },
        GateDesc::Trunc { m: 3, f: 0, k: 8 },
        GateDesc::Trunc { m: 3, f: 8, k: 8 },
        GateDesc::Trunc { m: 3, f: 8, k: 64 },
        GateDesc::Triple(conv(1, 1, (4, 4), 1, (3, 3), 0, 0)),
        GateDesc::Triple(conv(1, 1, (2, 2), 1, (5, 5), 1, 1)),
        GateDesc::TrainTriple {
            map: conv(1, 1, (4, 4), 1, (3, 3), 0, 0),
            dx: true,
        },
        GateDesc::TrainTriple {
            map: conv(1, 1, (2, 2), 1, (5, 5), 1, 1),
            dx: false,
        },
        GateDesc::MaxPool {
            shape: pool(1, 1, 4, 4, 2, 0, 0),
            k: 24,
        },
        GateDesc::MaxPool {
            shape: pool(1, 1, 4, 4, 2, 2, 2),
            k: 24,
        },
        GateDesc::MaxPoolOneHot {
            shape: pool(1, 1, 1, 1, 3, 1, 0),
            k: 24,
        },
        GateDesc::MaxPool {
            shape: pool(1, 1, 4, 4, 2, 2, 0),
            k: 1,
        },
        GateDesc::Argmax {
            rows: 2,
            n: 0,
            k: 24,
        },
        GateDesc::Argmax {
            rows: 2,
            n: 3,
            k: 1,
        },
        GateDesc::BatchNorm(BatchNormShape {
            n: 0,
            c: 1,
            h: 1,
            w: 1,
        }),
        GateDesc::BatchNorm(BatchNormShape {
            n: 1 << 18,
            c: 1,
            h: 1,
            w: 1,
        }),
        GateDesc::Spline {
            func: SplineFn::Exp { f: 5 },
            m: 3,
            k: 32,
        },
        GateDesc::Spline {
            func: SplineFn::Recip { f: 16, max: 100 },
            m: 3,
            k: 32,
        },
        GateDesc::Spline {
            func: SplineFn::Exp { f: 16 },
            m: 3,
            k: 2,
        },
        GateDesc::Spline {
            func: SplineFn::Exp { f: 16 },
            m: 3,
            k: 20,
        },
        GateDesc::ReluSmall { m: 3, k: 1 },
        GateDesc::ReluSmall { m: 3, k: 65 },
        GateDesc::TruncRelu { m: 3, f: 0, k: 8 },
        GateDesc::TruncRelu { m: 3, f: 8, k: 1 },
        GateDesc::TruncRelu { m: 3, f: 16, k: 48 },
        GateDesc::TruncRelu {
            m: 3,
            f: 1,
            k: u32::MAX,
        },
        GateDesc::MaxPoolSmall {
            shape: pool(1, 1, 4, 4, 2, 0, 0),
            k: 24,
        },
        GateDesc::MaxPoolSmall {
            shape: pool(1, 1, 4, 4, 2, 2, 0),
            k: 1,
        },
        GateDesc::ArgmaxSmall {
            rows: 2,
            n: 0,
            k: 24,
        },
        GateDesc::ArgmaxSmall {
            rows: 2,
            n: 3,
            k: 1,
        },
    ];
    for (i, g) in bad.into_iter().enumerate() {
        for bits in [32u32, 64] {
            let mut rng = ChaCha8Rng::seed_from_u64(i as u64);
            let gen_err = if bits == 64 {
                generate_bundles::<u64, _>(0, g, &mut rng).is_err()
            } else {
                generate_bundles::<u32, _>(0, g, &mut rng).is_err()
            };
            assert!(gen_err, "{g:?} is valid on Z_2^{bits}");
            assert!(g.cost(bits).is_err(), "{g:?} costed on Z_2^{bits}");
        }
    }
    assert!(matches!(
        GateDesc::Relu { m: 1, k: 24 }.cost(16),
        Err(MpcError::InvalidParameter(_))
    ));
    let e = plan_cost(
        &[
            GateDesc::Relu { m: 1, k: 24 },
            GateDesc::Relu { m: 1, k: 99 },
        ],
        64,
    )
    .expect_err("gate 1 is invalid");
    assert!(e.to_string().contains("gate 1"), "{e}");
}

/// Huge shapes: a typed error on overflow, never a panic; and costing a huge
/// but representable pool is instant (no window list).
#[test]
fn huge_shapes_overflow_to_errors() {
    let m = usize::MAX;
    let overflowing = [
        GateDesc::Drelu { m, k: 32 },
        GateDesc::Relu { m: m / 8, k: 32 },
        GateDesc::EqZero { m, k: 32 },
        GateDesc::Trunc { m, f: 8, k: 32 },
        GateDesc::Triple(Bilinear::MatMul { m, k: 2, n: 1 }),
        GateDesc::Triple(Bilinear::Mul { len: m / 2 }),
        GateDesc::Triple(conv(m, m, (4, 4), 1, (3, 3), 1, 0)),
        GateDesc::Triple(conv(1, 1, (m, 4), 1, (3, 3), 1, 1)),
        GateDesc::TrainTriple {
            map: Bilinear::MatMul { m, k: 2, n: 1 },
            dx: false,
        },
        GateDesc::TrainTriple {
            map: Bilinear::Mul { len: m / 4 },
            dx: true,
        },
        GateDesc::TrainTriple {
            map: conv(1, 1, (m, 4), 1, (3, 3), 1, 1),
            dx: true,
        },
        GateDesc::MaxPool {
            shape: pool(m, m, 4, 4, 2, 2, 0),
            k: 24,
        },
        GateDesc::MaxPoolOneHot {
            shape: pool(1 << 40, 1 << 20, 4, 4, 3, 1, 0),
            k: 24,
        },
        GateDesc::MaxPool {
            shape: pool(1, 1, m, 4, 3, 1, 2),
            k: 24,
        },
        GateDesc::MaxPool {
            shape: pool(1, 1, 4, 4, m, 1, m - 1),
            k: 24,
        },
        GateDesc::Argmax {
            rows: m,
            n: 3,
            k: 24,
        },
        GateDesc::Argmax {
            rows: 1,
            n: 1 << 33,
            k: 24,
        },
        GateDesc::BatchNorm(BatchNormShape {
            n: 1,
            c: m,
            h: 4,
            w: 1,
        }),
        GateDesc::Spline {
            func: SplineFn::Exp { f: 12 },
            m,
            k: 32,
        },
        GateDesc::Spline {
            func: SplineFn::Recip { f: 12, max: 10 },
            m: m / 64,
            k: 32,
        },
        GateDesc::ReluSmall { m, k: 32 },
        GateDesc::ReluSmall { m: m / 8, k: 32 },
        GateDesc::TruncRelu { m, f: 8, k: 16 },
        GateDesc::TruncRelu {
            m: m / 16,
            f: 8,
            k: 16,
        },
        GateDesc::MaxPoolSmall {
            shape: pool(m, m, 4, 4, 2, 2, 0),
            k: 24,
        },
        GateDesc::ArgmaxSmall {
            rows: m,
            n: 3,
            k: 24,
        },
        GateDesc::ArgmaxSmall {
            rows: 1,
            n: 1 << 33,
            k: 24,
        },
    ];
    for g in overflowing {
        for bits in [32u32, 64] {
            match g.cost(bits) {
                Err(MpcError::InvalidParameter(_)) => {}
                other => panic!("{g:?} on Z_2^{bits}: {other:?}"),
            }
        }
    }
    assert!(plan_cost(&overflowing, 64).is_err());
    // Representable: 10^9 planes of 1000 x 1000, 3x3 windows, stride 2, pad 1.
    let big = GateDesc::MaxPool {
        shape: pool(1_000_000, 1000, 1000, 1000, 3, 2, 1),
        k: 24,
    };
    let c = big.cost(64).expect("fits in u64");
    assert_eq!(c.rounds, 4);
    // 500 x 500 windows per plane, 8 comparisons each (a 3x3 window, or
    // fewer at the padded top and left edges).
    assert!(c.bytes_sent < 8 * 8 * 500 * 500 * 1_000_000_000);
    // Many gates: the plan total itself overflows.
    let one = GateDesc::Triple(Bilinear::Mul { len: 1 << 58 });
    assert!(one.cost(64).is_ok());
    assert!(plan_cost(&[one; 64], 64).is_err());
}

/// The window sizes from the two axes agree with the window list.
fn window_sizes_from_list(s: &PoolShape) -> Vec<(u64, u64)> {
    let mut m = std::collections::BTreeMap::<u64, u64>::new();
    for w in s.windows().expect("valid") {
        *m.entry(w.len() as u64).or_default() += 1;
    }
    m.into_iter().collect()
}

fn pool_shape() -> impl Strategy<Value = PoolShape> {
    (
        0usize..3,
        1usize..4,
        1usize..12,
        1usize..12,
        1usize..6,
        1usize..5,
        0usize..6,
    )
        .prop_filter_map("valid geometry", |(n, c, h, w, k, stride, pad)| {
            let s = pool(n, c, h, w, k, stride, pad);
            s.out_hw().ok().map(|_| s)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn window_sizes_match_the_window_list(s in pool_shape()) {
        prop_assert_eq!(s.window_sizes().expect("valid"), window_sizes_from_list(&s));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn random_pools_cost_what_they_run(s in pool_shape(), k in 8u32..=64, kind in 0u8..3, seed in any::<u64>()) {
        let gate = match kind {
            0 => GateDesc::MaxPoolOneHot { shape: s, k },
            1 => GateDesc::MaxPoolSmall { shape: s, k },
            _ => GateDesc::MaxPool { shape: s, k },
        };
        check_both(gate, seed);
    }

    #[test]
    fn random_convolutions_cost_what_they_run(
        n in 1usize..3, c in 1usize..4, h in 1usize..9, w in 1usize..9, oc in 1usize..4,
        kh in 1usize..5, kw in 1usize..5, stride in 1usize..4, pad in 0usize..3, seed in any::<u64>(),
    ) {
        let map = conv(n, c, (h, w), oc, (kh, kw), stride, pad);
        prop_assume!(map.shapes().is_ok());
        check_both(GateDesc::Triple(map), seed);
    }

    #[test]
    fn random_training_products_cost_what_they_run(
        n in 1usize..3, c in 1usize..4, h in 1usize..9, w in 1usize..9, oc in 1usize..4,
        kh in 1usize..5, kw in 1usize..5, stride in 1usize..4, pad in 0usize..3,
        dx in any::<bool>(), seed in any::<u64>(),
    ) {
        let map = conv(n, c, (h, w), oc, (kh, kw), stride, pad);
        prop_assume!(map.shapes().is_ok());
        check_both(GateDesc::TrainTriple { map, dx }, seed);
    }

    #[test]
    fn random_comparisons_cost_what_they_run(m in 0usize..300, k in 2u32..=64, kind in 0u8..7, seed in any::<u64>()) {
        let gate = match kind {
            0 => GateDesc::Drelu { m, k },
            1 => GateDesc::Relu { m, k },
            2 => GateDesc::EqZero { m, k },
            3 => GateDesc::ReluSmall { m, k },
            4 => GateDesc::TruncRelu { m, f: (k % 30).max(1), k: k.clamp(2, 62 - (k % 30).max(1)) },
            5 => GateDesc::ArgmaxSmall { rows: m % 7, n: 1 + m % 11, k },
            _ => GateDesc::Trunc { m, f: k.clamp(2, 63) / 2, k: k.clamp(2, 63) },
        };
        check_both(gate, seed);
    }
}

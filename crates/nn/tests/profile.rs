//! The per-layer profile of a private forward pass (`forward_profiled`):
//! its rows follow the model, its per-layer gates, rounds and bytes add up
//! to the run's totals (and a residual block's rows to the block's), and
//! profiling changes no output.

use ariann_mpc::{
    CommStats, MemTransport, Recorder, Session, TimedTransport, Transport, VecSource, run_two_party,
};
use ariann_nn::{
    Config, Layer, LayerProfile, Model, Variant, Weights, encode_input, forward_fixed,
    forward_profiled, plan, share_weights,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Convolution, ReLU, max-pool, a residual block (its body ends with a
/// convolution, so the small-key variant fuses its truncation into the
/// next ReLU), flatten, linear.
fn model() -> Model {
    Model {
        name: "profiled".into(),
        input: vec![2, 8, 8],
        layers: vec![
            Layer::conv2d("stem", 2, 4, 3, 1, 1),
            Layer::Relu,
            Layer::max_pool(2, 2, 0),
            Layer::residual(
                vec![
                    Layer::conv2d("block.conv1", 4, 4, 3, 1, 1),
                    Layer::Relu,
                    Layer::conv2d("block.conv2", 4, 4, 3, 1, 1),
                ],
                vec![],
            ),
            Layer::Relu,
            Layer::Flatten,
            Layer::linear("fc", 64, 5),
        ],
    }
}

/// Sums of rows' counters.
fn sum(rows: &[&LayerProfile]) -> CommStats {
    rows.iter().fold(CommStats::default(), |a, r| CommStats {
        rounds: a.rounds + r.comm.rounds,
        bytes_sent: a.bytes_sent + r.comm.bytes_sent,
        bytes_received: a.bytes_received + r.comm.bytes_received,
    })
}

/// Checks that `rows` cover the gates `range` one after the other.
fn contiguous(rows: &[&LayerProfile], range: std::ops::Range<u64>) {
    let mut at = range.start;
    for r in rows {
        assert_eq!(
            r.gates.start, at,
            "{}: gates follow the previous row's",
            r.name
        );
        at = r.gates.end;
    }
    assert_eq!(at, range.end, "the rows cover the gates");
}

#[test]
fn per_layer_profile_adds_up_to_the_run() {
    let m = model();
    let batch = 2;
    let shapes = m.shapes().expect("shapes");
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let w = Weights::random(&m, &mut rng);
    let x: Vec<f32> = (0..batch * m.input_len())
        .map(|_| rng.random_range(0.0..1.0))
        .collect();
    for variant in [Variant::OneRound, Variant::SmallKey] {
        let cfg = Config {
            variant,
            ..Config::default()
        };
        let xe = encode_input(&x, &cfg).expect("encode");
        let fixed = forward_fixed(&m, &w, &xe, batch, &cfg).expect("fixed");
        let (w0, w1) = share_weights(&m, &w, &cfg, &mut rng).expect("share");
        let x0: Vec<u64> = xe.iter().map(|_| rng.random()).collect();
        let x1: Vec<u64> = xe
            .iter()
            .zip(&x0)
            .map(|(v, a)| v.wrapping_sub(*a))
            .collect();
        let p = plan(&m, batch, &cfg).expect("plan");
        let (mut b0, mut b1) = (Vec::new(), Vec::new());
        for pair in p.bundles_from_seed::<u64>([7; 32]).expect("ring") {
            let (a, b) = pair.expect("gate");
            b0.push(a);
            b1.push(b);
        }
        let (mut s0, mut s1) = (VecSource::new(b0), VecSource::new(b1));
        let run = |t: &mut MemTransport, src: &mut VecSource<u64>, ws, xs: &[u64]| {
            let mut t = TimedTransport::new(t);
            let start = std::time::Instant::now();
            let mut s = Session::new(&mut t, src).with_key_timing();
            let (y, rows) = forward_profiled(&mut s, &m, ws, xs, batch, &cfg).expect("private run");
            let gates = s.position();
            drop(s);
            (y, rows, t.stats(), gates, start.elapsed().as_secs_f64())
        };
        let ((y0, rows, total, gates, seconds), (y1, rows1, total1, _, _)) =
            run_two_party(|t| run(t, &mut s0, &w0, &x0), |t| run(t, &mut s1, &w1, &x1));
        let y: Vec<u64> = y0
            .iter()
            .zip(&y1)
            .map(|(a, b)| a.wrapping_add(*b))
            .collect();
        assert_eq!(y, fixed, "{variant}: profiling changes no output");

        // One top-level row per layer, in model order, with its output shape.
        let top: Vec<&LayerProfile> = rows.iter().filter(|r| r.depth == 0).collect();
        assert_eq!(top.len(), m.layers.len(), "{variant}: one row per layer");
        for (i, (r, l)) in top.iter().zip(&m.layers).enumerate() {
            assert_eq!(r.kind, l.kind(), "{variant}: row {i}");
            assert_eq!(r.out_shape, shapes[i], "{variant}: row {i}");
        }
        assert_eq!(top[0].name, "stem");
        assert_eq!(
            top[3].name, "block",
            "a residual block is named by its parameters"
        );

        // The layers' gates, rounds and bytes add up to the run's.
        assert_eq!(gates, p.gates.len() as u64);
        contiguous(&top, 0..gates);
        assert_eq!(
            sum(&top),
            total,
            "{variant}: rows add up to the run's counters"
        );
        let top1: Vec<&LayerProfile> = rows1.iter().filter(|r| r.depth == 0).collect();
        assert_eq!(sum(&top1), total1, "{variant}: party 1 too");

        // The block's rows follow it and add up to it (its sum is local).
        let block = rows
            .iter()
            .position(|r| r.kind == "Residual")
            .expect("block");
        let inner: Vec<&LayerProfile> = rows[block + 1..]
            .iter()
            .take_while(|r| r.depth > 0)
            .collect();
        assert_eq!(inner.len(), 3, "{variant}: the body's three layers");
        assert!(inner.iter().all(|r| r.depth == 1));
        contiguous(&inner, rows[block].gates.clone());
        assert_eq!(
            sum(&inner),
            rows[block].comm,
            "{variant}: block = its layers"
        );

        // Layers without gates cost nothing online; the others do.
        for r in &top {
            let free = matches!(r.kind, "Flatten");
            assert_eq!(r.gates.is_empty(), free, "{variant}: {}", r.name);
            assert_eq!(r.comm.rounds == 0, free, "{variant}: {}", r.name);
        }

        // The small-key variant's fused ReLUs are marked, the others not.
        let fused: Vec<&str> = rows
            .iter()
            .filter(|r| r.fused_truncation)
            .map(|r| r.path.as_str())
            .collect();
        match variant {
            Variant::OneRound => assert!(fused.is_empty(), "{fused:?}"),
            Variant::SmallKey => assert_eq!(fused, ["1", "3.body.1", "4"]),
        }

        // Times: the split is within the layer's time, and the layers
        // within the run's.
        for r in &rows {
            assert!(r.exchange_seconds + r.key_wait_seconds <= r.seconds + 1e-6);
            assert!(
                r.product_seconds <= r.compute_seconds() + 1e-6,
                "{}",
                r.name
            );
            // Product time only where there are products.
            let products = matches!(r.kind, "Conv2d" | "Linear" | "Residual");
            assert_eq!(r.product_seconds > 0.0, products, "{variant}: {}", r.name);
        }
        let layers: f64 = top.iter().map(|r| r.seconds).sum();
        assert!(layers <= seconds + 1e-6, "{layers} > {seconds}");
        assert!(
            top.iter().any(|r| r.exchange_seconds > 0.0),
            "exchanges timed"
        );

        // The dealer's view: tracing the plan profiled on a recorder gives
        // each layer the same gates, so keys can be charged to layers.
        let (_, traced) = forward_profiled(
            &mut Recorder::new(),
            &m,
            &ariann_nn::Params::zeros(&m).expect("zeros"),
            &vec![0; xe.len()],
            batch,
            &cfg,
        )
        .expect("trace");
        let g =
            |rows: &[LayerProfile]| -> Vec<_> { rows.iter().map(|r| r.gates.clone()).collect() };
        assert_eq!(
            g(&traced),
            g(&rows),
            "{variant}: plan and run agree per layer"
        );
    }
}

/// Without a timed transport or key timing, the profile still has the
/// gates, rounds and bytes, and no waits.
#[test]
fn untimed_profile_has_counters_and_no_waits() {
    let m = model();
    let cfg = Config::default();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let w = Weights::random(&m, &mut rng);
    let (w0, w1) = share_weights(&m, &w, &cfg, &mut rng).expect("share");
    let n = m.input_len();
    let p = plan(&m, 1, &cfg).expect("plan");
    let (mut b0, mut b1) = (Vec::new(), Vec::new());
    for pair in p.bundles_from_seed::<u64>([9; 32]).expect("ring") {
        let (a, b) = pair.expect("gate");
        b0.push(a);
        b1.push(b);
    }
    let (mut s0, mut s1) = (VecSource::new(b0), VecSource::new(b1));
    let run = |t: &mut MemTransport, src: &mut VecSource<u64>, ws| {
        let mut s = Session::new(t, src);
        let (_, rows) = forward_profiled(&mut s, &m, ws, &vec![0; n], 1, &cfg).expect("run");
        (rows, s.transport().stats())
    };
    let ((rows, total), _) = run_two_party(|t| run(t, &mut s0, &w0), |t| run(t, &mut s1, &w1));
    let top: Vec<&LayerProfile> = rows.iter().filter(|r| r.depth == 0).collect();
    assert_eq!(sum(&top), total);
    assert!(rows.iter().all(|r| r.exchange_seconds == 0.0
        && r.key_wait_seconds == 0.0
        && r.product_seconds == 0.0));
}

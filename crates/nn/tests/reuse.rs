//! Jobs of many batches of inference reuse the weights' masks: the first
//! batch opens each weight's `W - B`, later batches open only activations
//! (`ariann_mpc::gates::reuse`). The private outputs of every batch equal
//! the cleartext fixed-point outputs bit for bit, and equal a run without
//! reuse; the plan's later batches reuse the first batch's gates, and
//! training never does.

use ariann_mpc::{
    ChannelSource, CommStats, GateDesc, MemTransport, Recorder, Session, Tracing, Transport,
    run_two_party,
};
use ariann_nn::{
    Config, Model, NnError, Params, TrainConfig, TrainState, Weights, encode_input,
    forward_batches, forward_fixed, plan, plan_batches, share_weights, train_plan, train_step, zoo,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::mpsc::sync_channel;
use std::time::Duration;

/// Runs `batches` batches privately (keys streamed from the plan), with or
/// without weight-mask reuse; returns the reconstructed outputs, party 0's
/// counters per batch and the gates consumed.
fn private(
    model: &Model,
    w: &Weights,
    x: &[u64],
    batch: usize,
    batches: usize,
    cfg: &Config,
    reuse: bool,
) -> (Vec<u64>, Vec<CommStats>, Vec<GateDesc>) {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (w0, w1) = share_weights(model, w, cfg, &mut rng).expect("share");
    let x0: Vec<u64> = x.iter().map(|_| rng.random()).collect();
    let x1: Vec<u64> = x.iter().zip(&x0).map(|(v, a)| v.wrapping_sub(*a)).collect();
    let p = plan_batches(model, batch, batches, cfg, reuse).expect("plan");
    let (tx0, rx0) = sync_channel(2);
    let (tx1, rx1) = sync_channel(2);
    let one = batch * model.input_len();
    let run = |t: &mut MemTransport, rx, ws: &Params, xs: &[u64]| {
        let mut src = ChannelSource::new(rx, Duration::from_secs(120));
        let mut tr = Tracing::new(&mut src);
        let mut s = Session::new(t, &mut tr);
        if reuse {
            s = s.with_weight_reuse();
        }
        let mut y = vec![];
        let mut stats = vec![];
        for b in 0..batches {
            let before = s.transport().stats();
            y.extend(
                forward_batches(
                    &mut s,
                    model,
                    ws,
                    &xs[b * one..(b + 1) * one],
                    batch,
                    1,
                    cfg,
                )
                .expect("private run"),
            );
            stats.push(s.transport().stats().since(&before));
        }
        drop(s);
        (y, stats, tr.seen().to_vec())
    };
    let ((y0, stats, seen), (y1, _, _)) = std::thread::scope(|s| {
        let p = &p;
        s.spawn(move || {
            for pair in p.bundles_from_seed::<u64>([3; 32]).expect("ring") {
                let (a, b) = pair.expect("gate");
                if tx0.send(a).is_err() || tx1.send(b).is_err() {
                    break;
                }
            }
        });
        run_two_party(|t| run(t, rx0, &w0, &x0), |t| run(t, rx1, &w1, &x1))
    });
    assert_eq!(seen, p.gates, "the parties consumed the plan");
    let y = y0
        .iter()
        .zip(&y1)
        .map(|(a, b)| a.wrapping_add(*b))
        .collect();
    (y, stats, seen)
}

/// Bytes of the model's weights (the tensors a product multiplies by).
fn weight_elems(model: &Model) -> u64 {
    model
        .parameters()
        .iter()
        .filter(|(n, _)| n.ends_with(".weight"))
        .map(|(_, s)| s.iter().product::<usize>() as u64)
        .sum()
}

fn check(name: &str, batch: usize, batches: usize) {
    let (m, _, _) = zoo::by_name(name).expect("zoo model");
    let m = m.fold_batchnorm_architecture();
    let cfg = Config::default();
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let w = Weights::random(&m, &mut rng);
    let x: Vec<f32> = (0..batches * batch * m.input_len())
        .map(|_| rng.random_range(0.0..0.5))
        .collect();
    let xe = encode_input(&x, &cfg).expect("encode");
    let one = batch * m.input_len();
    let fixed: Vec<u64> = (0..batches)
        .flat_map(|b| {
            forward_fixed(&m, &w, &xe[b * one..(b + 1) * one], batch, &cfg).expect("fixed")
        })
        .collect();
    let (with, s_with, _) = private(&m, &w, &xe, batch, batches, &cfg, true);
    let (without, s_without, _) = private(&m, &w, &xe, batch, batches, &cfg, false);
    assert_eq!(with, fixed, "{name}: private with reuse equals fixed point");
    assert_eq!(
        without, fixed,
        "{name}: private without reuse equals fixed point"
    );
    // The first batch is the job of one batch; every later batch sends
    // 8 bytes less per weight element, in as many rounds.
    let saved = 8 * weight_elems(&m);
    assert_eq!(s_with[0], s_without[0], "{name}: first batch");
    for b in 1..batches {
        assert_eq!(s_with[b].rounds, s_without[b].rounds, "{name}: rounds");
        assert_eq!(
            s_with[b].bytes_sent + saved,
            s_without[b].bytes_sent,
            "{name}: batch {b}"
        );
    }
}

#[test]
fn multi_batch_outputs_equal_fixed_point_and_the_run_without_reuse() {
    check("network1", 2, 3);
    check("lenet", 1, 3);
}

#[test]
fn later_batches_reuse_the_first_batch_s_weight_gates() {
    let cfg = Config::default();
    for name in ["network1", "lenet5", "resnet20"] {
        let (m, _, _) = zoo::by_name(name).expect("zoo model");
        let m = m.fold_batchnorm_architecture();
        let one = plan(&m, 2, &cfg).expect("plan");
        let n = one.gates.len();
        let p = plan_batches(&m, 2, 3, &cfg, true).expect("plan");
        assert_eq!(p.gates.len(), 3 * n);
        assert_eq!(&p.gates[..n], one.gates.as_slice(), "{name}: first batch");
        assert!(
            !one.gates
                .iter()
                .any(|g| matches!(g, GateDesc::TripleReuse { .. }))
        );
        // Each later batch is the first with every weight product reusing
        // the first batch's gate at the same position, and nothing else
        // changed (activation products stay fresh triples).
        let mut reused = 0;
        for b in 1..3 {
            for i in 0..n {
                match (one.gates[i], p.gates[b * n + i]) {
                    (GateDesc::Triple(first), GateDesc::TripleReuse { map, from }) => {
                        assert_eq!((map, from), (first, i as u64), "{name}");
                        reused += 1;
                    }
                    (a, b) => assert_eq!(a, b, "{name}"),
                }
            }
        }
        let weights = m
            .parameters()
            .iter()
            .filter(|(n, _)| n.ends_with(".weight"))
            .count();
        assert_eq!(
            reused,
            2 * weights,
            "{name}: one reuse per weight per later batch"
        );
        // Traced for two batches and repeated = traced for all three.
        let mut rec = Recorder::with_weight_reuse();
        let params = Params::zeros(&m).expect("params");
        forward_batches(
            &mut rec,
            &m,
            &params,
            &vec![0; 3 * 2 * m.input_len()],
            2,
            3,
            &cfg,
        )
        .expect("trace");
        assert_eq!(rec.gates(), p.gates.as_slice(), "{name}");
        // The dealer accepts it; the plan hash tells it from the plan
        // without reuse, which is the one-batch plan repeated.
        p.weight_reuse().expect("consistent");
        let plain = plan_batches(&m, 2, 3, &cfg, false).expect("plan");
        assert_eq!(one.hash_repeated(3), Some(plain.hash()));
        assert_ne!(plain.hash(), p.hash());
    }
}

#[test]
fn training_never_reuses_weight_masks() {
    let cfg = Config::default();
    let tcfg = TrainConfig::default();
    let m = zoo::network1();
    let p = train_plan(&m, 2, &cfg, &tcfg).expect("plan");
    assert!(
        !p.gates
            .iter()
            .any(|g| matches!(g, GateDesc::TripleReuse { .. }))
    );
    // A backend set up for reuse is refused before any gate runs.
    let mut rec = Recorder::with_weight_reuse();
    let mut state = TrainState::new(Params::zeros(&m).expect("params"));
    let e = train_step(
        &mut rec,
        &m,
        &mut state,
        &vec![0; 2 * m.input_len()],
        &[0; 2 * 10],
        2,
        &cfg,
        &tcfg,
        1.0 / 1024.0,
    )
    .expect_err("refused");
    assert!(matches!(e, NnError::WeightReuseInTraining), "{e}");
    assert!(rec.gates().is_empty());
}

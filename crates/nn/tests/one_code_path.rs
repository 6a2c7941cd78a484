//! The plan is the recorder's trace of the code the parties run: for every
//! zoo model and a few batch sizes, the gates a private run consumes (keys
//! streamed from a dealer thread, as in production) are exactly the plan,
//! and the private output equals the cleartext fixed-point backend's.

use ariann_mpc::{ChannelSource, GateDesc, MemTransport, Session, Tracing, run_two_party};
use ariann_nn::{
    Config, Model, Weights, encode_input, forward_fixed, forward_private, plan, share_weights, zoo,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::mpsc::sync_channel;
use std::time::Duration;

/// Runs `model` privately on `batch` random inputs with keys streamed from
/// `plan`; returns the gates each party consumed and the reconstructed output.
fn consumed(
    model: &Model,
    batch: usize,
    cfg: &Config,
    seed: u64,
) -> (Vec<GateDesc>, Vec<GateDesc>, Vec<u64>, Vec<u64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let w = Weights::random(model, &mut rng);
    // Small inputs keep every activation inside the comparison windows.
    let x: Vec<f32> = (0..batch * model.input_len())
        .map(|_| rng.random_range(0.0..0.5))
        .collect();
    let xe = encode_input(&x, cfg).expect("encode");
    let fixed = forward_fixed(model, &w, &xe, batch, cfg).expect("fixed");
    let (w0, w1) = share_weights(model, &w, cfg, &mut rng).expect("share");
    let x0: Vec<u64> = xe.iter().map(|_| rng.random()).collect();
    let x1: Vec<u64> = xe
        .iter()
        .zip(&x0)
        .map(|(v, a)| v.wrapping_sub(*a))
        .collect();
    let p = plan(model, batch, cfg).expect("plan");
    let (tx0, rx0) = sync_channel(2);
    let (tx1, rx1) = sync_channel(2);
    let timeout = Duration::from_secs(600);
    let run = |t: &mut MemTransport, rx, ws, xs: &[u64]| {
        let mut src = ChannelSource::new(rx, timeout);
        let mut tr = Tracing::new(&mut src);
        let y = forward_private(&mut Session::new(t, &mut tr), model, ws, xs, batch, cfg)
            .expect("private run");
        (tr.seen().to_vec(), y)
    };
    let ((s0, y0), (s1, y1)) = std::thread::scope(|s| {
        let p = &p;
        s.spawn(move || {
            for pair in p.bundles_from_seed::<u64>([seed as u8; 32]).expect("ring") {
                let (a, b) = pair.expect("gate");
                if tx0.send(a).is_err() || tx1.send(b).is_err() {
                    break;
                }
            }
        });
        run_two_party(|t| run(t, rx0, &w0, &x0), |t| run(t, rx1, &w1, &x1))
    });
    let out = y0
        .iter()
        .zip(&y1)
        .map(|(a, b)| a.wrapping_add(*b))
        .collect();
    assert_eq!(
        p.gates.len(),
        s0.len(),
        "{}: every planned gate is consumed",
        model.name
    );
    (s0, s1, out, fixed)
}

fn check(name: &str, batches: &[usize], cfg: &Config) {
    let (m, _, _) = zoo::by_name(name).expect("zoo model");
    let m = m.fold_batchnorm_architecture();
    for &batch in batches {
        let p = plan(&m, batch, cfg).expect("plan");
        let (s0, s1, out, fixed) = consumed(&m, batch, cfg, batch as u64 + 11);
        assert_eq!(p.gates, s0, "{name} b{batch}: party 0 consumed the plan");
        assert_eq!(p.gates, s1, "{name} b{batch}: party 1 consumed the plan");
        assert_eq!(out, fixed, "{name} b{batch}: private equals fixed point");
    }
}

#[test]
fn small_models_consume_their_plan() {
    let small = Config {
        max_gate_elems: 3000,
        ..Config::default()
    };
    for name in ["network1", "network2", "sarda", "lenet", "lenet5"] {
        check(name, &[1, 3], &Config::default());
        check(name, &[2], &small);
    }
}

#[test]
fn cifar_and_tiny_imagenet_models_consume_their_plan() {
    for name in [
        "alexnet",
        "alexnet_note",
        "alexnet_64",
        "vgg16",
        "vgg16_64",
        "resnet18_64",
        "resnet20",
    ] {
        check(name, &[1], &Config::default());
    }
}

#[test]
fn resnet18_224_consumes_its_plan() {
    check("resnet18", &[1], &Config::default());
}

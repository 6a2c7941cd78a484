//! Private inference of network2 (convolutions, ReLU, max-pool, linear
//! layers; several rounds) with the two parties linked over gRPC: the
//! reconstructed output equals the fixed-point cleartext run bit for bit.

mod common;
use ariann_mpc::{Session, Transport, VecSource};
use ariann_net::GrpcTransport;
use ariann_nn::{
    Config, Weights, encode_input, forward_fixed, forward_private, plan, share_weights, zoo,
};
use common::run_grpc;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[test]
fn network2_over_grpc_equals_fixed_point() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let model = zoo::network2();
    let batch = 2;
    let cfg = Config::default();
    let w = Weights::random(&model, &mut rng);
    let x: Vec<f32> = (0..batch * model.input_len())
        .map(|_| rng.random_range(0.0..1.0))
        .collect();
    let xe = encode_input(&x, &cfg).expect("encode");
    let fixed = forward_fixed(&model, &w, &xe, batch, &cfg).expect("fixed");
    let (w0, w1) = share_weights(&model, &w, &cfg, &mut rng).expect("share");
    let x0: Vec<u64> = xe.iter().map(|_| rng.random()).collect();
    let x1: Vec<u64> = xe
        .iter()
        .zip(&x0)
        .map(|(x, a)| x.wrapping_sub(*a))
        .collect();
    let p = plan(&model, batch, &cfg).expect("plan");
    let (mut b0, mut b1) = (Vec::new(), Vec::new());
    for pair in p.bundles_from_seed::<u64>([21; 32]).expect("ring") {
        let (a, b) = pair.expect("gate");
        b0.push(a);
        b1.push(b);
    }
    let (mut s0, mut s1) = (VecSource::new(b0), VecSource::new(b1));
    let run = |t: &mut GrpcTransport, src: &mut VecSource<u64>, ws, xs: &[u64]| {
        let out = forward_private(&mut Session::new(&mut *t, src), &model, ws, xs, batch, &cfg);
        (out, t.stats())
    };
    let ((o0, st0), (o1, st1)) = run_grpc(
        "network2",
        |t| run(t, &mut s0, &w0, &x0),
        |t| run(t, &mut s1, &w1, &x1),
    );
    let private: Vec<u64> = o0
        .expect("p0")
        .iter()
        .zip(o1.expect("p1"))
        .map(|(a, b)| a.wrapping_add(b))
        .collect();
    assert_eq!(private, fixed);
    assert!(st0.rounds > 3, "{st0:?}");
    assert_eq!(st0.rounds, st1.rounds);
    assert_eq!(st0.bytes_received, st1.bytes_sent);
}

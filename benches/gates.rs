//! Criterion benchmarks of the gate engine, both parties in one process on
//! threads over the in-memory transport (so "online" is the wall time of a
//! whole two-party run on this machine's cores):
//!
//! - ReLU on 10^6 elements (k = 32): dealer keygen, online;
//! - matrix product 128x784 by 784x128: online;
//! - 3x3 convolution 64 -> 64 channels on 32x32, batch 32: online.
//!
//! `cargo bench --bench gates`. The same figures, per party and as JSON:
//! `cargo run --release --example gate_bench -- --json`.

use ariann::mpc::gates::beaver::{Bilinear, TripleKey};
use ariann::mpc::gates::cmp::ReluKey;
use ariann::mpc::run_two_party;
use ariann::ring::{Conv2dShape, RingTensor, share};
use criterion::{Criterion, criterion_group, criterion_main};
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;
use std::hint::black_box;
use std::time::Duration;

const M: usize = 1_000_000;

fn relu(c: &mut Criterion) {
    let mut rng = ChaCha12Rng::seed_from_u64(1);
    let mut g = c.benchmark_group("relu_1e6");
    g.sample_size(10);
    g.bench_function("keygen", |b| {
        b.iter(|| black_box(ReluKey::<u64>::generate(32, M, &mut rng).expect("valid")))
    });
    let (k0, k1) = ReluKey::<u64>::generate(32, M, &mut rng).expect("valid");
    let (x0, x1) = share(&RingTensor::<u64>::zeros(&[M]), &mut rng);
    g.bench_function("online_both_parties", |b| {
        b.iter(|| {
            run_two_party(
                |t| k0.eval(t, x0.as_slice()).expect("party 0"),
                |t| k1.eval(t, x1.as_slice()).expect("party 1"),
            )
        })
    });
    g.finish();
}

fn bilinear(c: &mut Criterion) {
    let mut rng = ChaCha12Rng::seed_from_u64(2);
    let conv = Conv2dShape {
        n: 32,
        c: 64,
        h: 32,
        w: 32,
        oc: 64,
        kh: 3,
        kw: 3,
        stride: 1,
        pad: 1,
    };
    let mut g = c.benchmark_group("bilinear");
    g.sample_size(10);
    for (name, map) in [
        (
            "matmul_128x784x128",
            Bilinear::MatMul {
                m: 128,
                k: 784,
                n: 128,
            },
        ),
        ("conv3x3_64to64_32x32_b32", Bilinear::Conv2d(conv)),
    ] {
        let (k0, k1) = TripleKey::<u64>::generate(map, &mut rng).expect("valid");
        let (sx, sy, _) = map.shapes().expect("valid");
        let (x0, x1) = share(&RingTensor::<u64>::zeros(&sx), &mut rng);
        let (y0, y1) = share(&RingTensor::<u64>::zeros(&sy), &mut rng);
        g.bench_function(format!("{name}/online_both_parties"), |b| {
            b.iter(|| {
                run_two_party(
                    |t| k0.eval(t, &x0, &y0).expect("party 0"),
                    |t| k1.eval(t, &x1, &y1).expect("party 1"),
                )
            })
        });
        g.bench_function(format!("{name}/keygen"), |b| {
            b.iter(|| black_box(TripleKey::<u64>::generate(map, &mut rng).expect("valid")))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5));
    targets = relu, bilinear
}
criterion_main!(benches);

//! Criterion benchmarks of FSS key generation and evaluation (one thread and
//! all threads), for the shapes of `examples/fss_throughput.rs`.
//!
//! `cargo bench --bench fss` (all), `cargo bench --bench fss -- dcf/eval_1t/32`
//! (a subset). Throughput is reported in keys per second.

use ariann::fss::{Dcf, Dpf, FssKeys, Payload, Scheme, TreeParams, Z2};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
use std::hint::black_box;
use std::time::Duration;

const BATCH: usize = 1 << 15;

fn inputs<P: Payload>(n: u32) -> (TreeParams, Vec<u64>, Vec<P>, Vec<u64>) {
    let mut rng = ChaCha12Rng::seed_from_u64(11);
    let params = TreeParams::new::<P>(n).expect("valid n");
    let m = params.domain_mask();
    let alphas = (0..BATCH).map(|_| rng.random::<u64>() & m).collect();
    let betas = (0..BATCH).map(|_| P::from_block(rng.random(), 0)).collect();
    let xs = (0..BATCH).map(|_| rng.random::<u64>() & m).collect();
    (params, alphas, betas, xs)
}

fn bench_scheme<S: Scheme, P: Payload>(c: &mut Criterion, scheme: &str, one: &rayon::ThreadPool) {
    for n in [16u32, 32, 64] {
        let (params, alphas, betas, xs) = inputs::<P>(n);
        let id = format!("{n}/{}b", P::BITS);
        let mut rng = ChaCha12Rng::seed_from_u64(12);
        let (k0, _k1) =
            FssKeys::<S, P>::generate(params, &alphas, &betas, &mut rng).expect("valid inputs");
        let mut out = vec![P::default(); BATCH];

        let mut g = c.benchmark_group(format!("{scheme}/gen_1t"));
        g.throughput(Throughput::Elements(BATCH as u64));
        g.bench_function(BenchmarkId::from_parameter(&id), |b| {
            b.iter(|| {
                one.install(|| {
                    black_box(
                        FssKeys::<S, P>::generate(params, &alphas, &betas, &mut rng)
                            .expect("valid inputs"),
                    )
                })
            })
        });
        g.finish();

        let mut g = c.benchmark_group(format!("{scheme}/eval_1t"));
        g.throughput(Throughput::Elements(BATCH as u64));
        g.bench_function(BenchmarkId::from_parameter(&id), |b| {
            b.iter(|| k0.eval_seq(black_box(&xs), &mut out).expect("valid inputs"))
        });
        g.finish();

        let mut g = c.benchmark_group(format!("{scheme}/eval_all"));
        g.throughput(Throughput::Elements(BATCH as u64));
        g.bench_function(BenchmarkId::from_parameter(&id), |b| {
            b.iter(|| k0.eval(black_box(&xs), &mut out).expect("valid inputs"))
        });
        g.finish();
    }
}

fn fss(c: &mut Criterion) {
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("one-thread pool");
    bench_scheme::<Dcf, Z2>(c, "dcf", &one);
    bench_scheme::<Dcf, u64>(c, "dcf", &one);
    bench_scheme::<Dcf, [u64; 2]>(c, "dcf", &one);
    bench_scheme::<Dpf, Z2>(c, "dpf", &one);
    bench_scheme::<Dpf, u64>(c, "dpf", &one);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    targets = fss
}
criterion_main!(benches);

//! Wall-clock times of the ring products on this machine: the matrix
//! product and the convolution (im2col + product) at the shapes of
//! ResNet18 on 64x64 inputs (batch 1), of the convolution of
//! `examples/gate_bench.rs` and of its matrix product. Each figure is the
//! minimum (and median) over repetitions, since shared machines are noisy.
//!
//! ```text
//! cargo run --release -p ariann-ring --example ring_kernels
//! ARIANN_SIMD=off cargo run --release -p ariann-ring --example ring_kernels   # scalar path
//! cargo run --release -p ariann-ring --example ring_kernels -- --quick        # fewer repetitions
//! ```

use ariann_ring::{Conv2dShape, RingTensor, conv2d, conv2d_grad_input, conv2d_grad_weight};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Minimum and median of `f`'s wall time over at least `reps` runs and at
/// least `budget` of total time.
fn time(reps: usize, budget: Duration, mut f: impl FnMut()) -> (f64, f64) {
    let mut v = Vec::new();
    let start = Instant::now();
    while v.len() < reps || (start.elapsed() < budget && v.len() < 200) {
        let t = Instant::now();
        f();
        v.push(t.elapsed().as_secs_f64());
    }
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 2])
}

fn conv(
    n: usize,
    c: usize,
    hw: usize,
    oc: usize,
    k: usize,
    stride: usize,
    pad: usize,
) -> Conv2dShape {
    Conv2dShape {
        n,
        c,
        h: hw,
        w: hw,
        oc,
        kh: k,
        kw: k,
        stride,
        pad,
    }
}

/// A named timed closure.
type Run<'a> = (&'static str, Box<dyn Fn() + 'a>);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let quick = std::env::args().any(|a| a == "--quick");
    let (reps, budget) = if quick {
        (3, Duration::from_millis(300))
    } else {
        (5, Duration::from_secs(2))
    };
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    println!(
        "{:<34} {:>22} {:>11} {:>11}",
        "kernel", "shape", "min ms", "median ms"
    );
    let convs = [
        ("resnet18_64 conv1 7x7/2", conv(1, 3, 64, 64, 7, 2, 3)),
        ("resnet18_64 layer1 3x3", conv(1, 64, 16, 64, 3, 1, 1)),
        ("resnet18_64 layer2 3x3", conv(1, 128, 8, 128, 3, 1, 1)),
        ("resnet18_64 layer3 3x3", conv(1, 256, 4, 256, 3, 1, 1)),
        ("resnet18_64 layer4 3x3", conv(1, 512, 2, 512, 3, 1, 1)),
        (
            "gate_bench conv 64->64 32x32 b32",
            conv(32, 64, 32, 64, 3, 1, 1),
        ),
    ];
    for (name, s) in convs {
        let x = RingTensor::<u64>::random(&s.input_shape(), &mut rng);
        let w = RingTensor::<u64>::random(&s.weight_shape(), &mut rng);
        let [rows, ckk] = s.cols_shape()?;
        let (min, med) = time(reps, budget, || {
            black_box(conv2d(&x, &w, &s).expect("valid shapes"));
        });
        let shape = format!("{rows}x{ckk}x{}", s.oc);
        println!(
            "{name:<34} {shape:>22} {:>11.3} {:>11.3}",
            min * 1e3,
            med * 1e3
        );
    }
    // LeNet training at batch 64: each party computes every one of these
    // twice per step (mask reuse: with its share and with the opened mask).
    let lenet = [
        ("lenet b64 conv1", conv(64, 1, 28, 20, 5, 1, 0)),
        ("lenet b64 conv2", conv(64, 20, 12, 50, 5, 1, 0)),
    ];
    for (name, s) in lenet {
        let x = RingTensor::<u64>::random(&s.input_shape(), &mut rng);
        let w = RingTensor::<u64>::random(&s.weight_shape(), &mut rng);
        let dz = RingTensor::<u64>::random(&s.output_shape()?, &mut rng);
        let [rows, ckk] = s.cols_shape()?;
        let shape = format!("{rows}x{ckk}x{}", s.oc);
        let runs: [Run<'_>; 3] = [
            (
                "fwd",
                Box::new(|| {
                    black_box(conv2d(&x, &w, &s).expect("valid shapes"));
                }),
            ),
            (
                "grad input",
                Box::new(|| {
                    black_box(conv2d_grad_input(&dz, &w, &s).expect("valid shapes"));
                }),
            ),
            (
                "grad weight",
                Box::new(|| {
                    black_box(conv2d_grad_weight(&x, &dz, &s).expect("valid shapes"));
                }),
            ),
        ];
        for (what, f) in runs {
            let (min, med) = time(reps, budget, &*f);
            println!(
                "{:<34} {shape:>22} {:>11.3} {:>11.3}",
                format!("{name} {what}"),
                min * 1e3,
                med * 1e3
            );
        }
    }
    for (m, k, n) in [
        (128, 784, 128),
        (1, 2048, 512),
        (512, 512, 512),
        (64, 800, 500),
        (64, 500, 800),
        (800, 64, 500),
    ] {
        let a = RingTensor::<u64>::random(&[m, k], &mut rng);
        let b = RingTensor::<u64>::random(&[k, n], &mut rng);
        let (min, med) = time(reps, budget, || {
            black_box(a.matmul(&b).expect("valid shapes"));
        });
        let shape = format!("{m}x{k}x{n}");
        println!(
            "{:<34} {shape:>22} {:>11.3} {:>11.3}",
            "matmul u64",
            min * 1e3,
            med * 1e3
        );
    }
    let (m, k, n) = (256, 576, 64);
    let a = RingTensor::<u32>::random(&[m, k], &mut rng);
    let b = RingTensor::<u32>::random(&[k, n], &mut rng);
    let (min, med) = time(reps, budget, || {
        black_box(a.matmul(&b).expect("valid shapes"));
    });
    let shape = format!("{m}x{k}x{n}");
    println!(
        "{:<34} {shape:>22} {:>11.3} {:>11.3}",
        "matmul u32",
        min * 1e3,
        med * 1e3
    );
    Ok(())
}

//! Real-data conformance: private inference of a PyTorch-trained LeNet5
//! (advertorch's `mnist_lenet5_clntrained`, safetensors by PyTorch names) on
//! real MNIST test images: the private logits equal the fixed-point cleartext
//! logits bit for bit, the predictions equal the float predictions, and the
//! first 100 logits match the fixture's recorded ones.
//!
//! Reads `ARIANN_SHARED_DATA` (unset: skipped, with a message; set but files
//! missing: fails). `ARIANN_LENET_IMAGES` (default 64) sets how many test
//! images are run privately; the whole test set is
//! `ARIANN_LENET_IMAGES=10000 cargo test --release --test lenet5_mnist -- --nocapture`.

use ariann::mpc::{MemTransport, Session, VecSource, run_two_party};
use ariann::nn::{
    Config, Variant, Weights, decode_output, encode_input, forward_fixed, forward_float,
    forward_private, plan, share_weights, zoo,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
mod common;

use common::gunzip;
use std::path::Path;

/// IDX test images as `pixel / 255` (first `n`) and labels.
fn mnist_test(root: &Path, n: usize) -> (Vec<f32>, Vec<u8>) {
    let img = gunzip(&root.join("mnist/t10k-images-idx3-ubyte.gz"));
    let lab = gunzip(&root.join("mnist/t10k-labels-idx1-ubyte.gz"));
    assert_eq!(&img[..4], &[0, 0, 8, 3], "image magic");
    assert_eq!(&lab[..4], &[0, 0, 8, 1], "label magic");
    let count = u32::from_be_bytes([img[4], img[5], img[6], img[7]]) as usize;
    assert!(n <= count, "only {count} test images");
    let px = img[16..16 + n * 784]
        .iter()
        .map(|p| f32::from(*p) / 255.0)
        .collect();
    (px, lab[8..8 + n].to_vec())
}

fn npy_f32(path: &Path) -> Vec<f32> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&b[..6], b"\x93NUMPY");
    let h = u16::from_le_bytes([b[8], b[9]]) as usize;
    b[10 + h..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best
}

#[test]
fn lenet5_private_inference_on_real_mnist() {
    let Some(root) = common::data_root("real-data conformance test") else {
        return;
    };
    let n: usize = std::env::var("ARIANN_LENET_IMAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let batch = 16usize.min(n);
    let model = zoo::lenet5_advertorch();
    let bytes =
        std::fs::read(root.join("weights/lenet5-mnist/model.safetensors")).expect("weights file");
    let w = Weights::from_safetensors(&bytes).expect("safetensors");
    w.check(&model).expect("names and shapes match the model");
    let (x, labels) = mnist_test(&root, n);
    // Activations stay below 26 (README of the weights): a 24-bit comparison
    // window at 16 fractional bits holds |v| < 128.
    let cfg = Config {
        k_cmp: 24,
        ..Config::default()
    };
    let mut rng = ChaCha12Rng::from_os_rng();
    let (w0, w1) = share_weights(&model, &w, &cfg, &mut rng).expect("weights encode");
    let recorded = npy_f32(&root.join("weights/lenet5-mnist/expected_logits_first100.npy"));

    let (mut correct_private, mut correct_float, mut max_err) = (0usize, 0usize, 0f64);
    let start = std::time::Instant::now();
    for b0 in (0..n).step_by(batch) {
        let m = batch.min(n - b0);
        let xb = &x[b0 * 784..(b0 + m) * 784];
        let float = forward_float(&model, &w, xb, m).expect("float");
        let xe = encode_input(xb, &cfg).expect("encode");
        let fixed = forward_fixed(&model, &w, &xe, m, &cfg).expect("fixed");
        // Alternate the comparison variants over the batches; both give
        // the same fixed-point logits.
        let cfg = Config {
            variant: if (b0 / batch).is_multiple_of(2) {
                Variant::OneRound
            } else {
                Variant::SmallKey
            },
            ..cfg
        };
        assert!(
            forward_fixed(&model, &w, &xe, m, &cfg).expect("fixed") == fixed,
            "batch at {b0}: the {} variant's fixed-point logits differ",
            cfg.variant
        );
        let p = plan(&model, m, &cfg).expect("plan");
        let (mut k0, mut k1) = (Vec::new(), Vec::new());
        for pair in p.bundles_from_os::<u64>().expect("ring") {
            let (a, b) = pair.expect("gate");
            k0.push(a);
            k1.push(b);
        }
        let (mut s0, mut s1) = (VecSource::new(k0), VecSource::new(k1));
        let x0: Vec<u64> = xe.iter().map(|_| rng.random()).collect();
        let x1: Vec<u64> = xe
            .iter()
            .zip(&x0)
            .map(|(v, a)| v.wrapping_sub(*a))
            .collect();
        let run = |t: &mut MemTransport, src: &mut VecSource<u64>, ws, xs: &[u64]| {
            forward_private(&mut Session::new(t, src), &model, ws, xs, m, &cfg)
        };
        let (o0, o1) = run_two_party(|t| run(t, &mut s0, &w0, &x0), |t| run(t, &mut s1, &w1, &x1));
        let private: Vec<u64> = o0
            .expect("p0")
            .iter()
            .zip(o1.expect("p1"))
            .map(|(a, b)| a.wrapping_add(b))
            .collect();
        assert!(
            private == fixed,
            "batch at {b0} ({}): private logits differ from fixed point",
            cfg.variant
        );
        let logits = decode_output(&private, &cfg);
        for i in 0..m {
            let (pl, fl) = (&logits[i * 10..(i + 1) * 10], &float[i * 10..(i + 1) * 10]);
            correct_private += usize::from(argmax(pl) == usize::from(labels[b0 + i]));
            correct_float += usize::from(argmax(fl) == usize::from(labels[b0 + i]));
            if b0 + i < 100 {
                for j in 0..10 {
                    max_err = max_err.max((pl[j] - f64::from(recorded[(b0 + i) * 10 + j])).abs());
                }
            }
        }
    }
    let acc = |c: usize| 100.0 * c as f64 / n as f64;
    eprintln!(
        "LeNet5 on {n} MNIST test images: private {:.2} %, float {:.2} %, max |logit - recorded| {max_err:.2e} (first 100), {:.1} s",
        acc(correct_private),
        acc(correct_float),
        start.elapsed().as_secs_f64()
    );
    assert!(
        (acc(correct_private) - acc(correct_float)).abs() <= 0.05,
        "accuracy differs"
    );
    assert!(
        max_err < 2e-2,
        "logits differ from the recorded ones by {max_err}"
    );
}

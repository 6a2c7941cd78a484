//! Training: the float backward pass against finite differences, the
//! fixed-point gradients (cleartext backend) against the float ones, the
//! max-pool's routing to the arg-max, and private training steps against the
//! cleartext fixed-point steps bit for bit, with keys streamed per step.

use ariann_mpc::Clear;
use ariann_nn::layers::MaxPool2d;
use ariann_nn::{
    Config, Ctx, FloatTrainer, Layer, LayerOp, Loss, Model, Params, Rounding, Tape, Weights,
    encode_input, encode_targets,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Conv (padding 1), ReLU, an overlapping padded max-pool, linear, ReLU,
/// linear: every trainable layer kind of the small zoo models.
fn small_model() -> Model {
    Model {
        name: "small".into(),
        input: vec![1, 6, 6],
        layers: vec![
            Layer::conv2d("c1", 1, 3, 3, 1, 1),
            Layer::Relu,
            Layer::max_pool(3, 2, 1),
            Layer::Flatten,
            Layer::linear("fc1", 27, 8),
            Layer::Relu,
            Layer::linear("fc2", 8, 4),
        ],
    }
}

fn data(model: &Model, batch: usize, rng: &mut ChaCha8Rng) -> (Vec<f32>, Vec<usize>) {
    let x = (0..batch * model.input_len())
        .map(|_| rng.random_range(0.0..1.0))
        .collect();
    let labels = (0..batch).map(|_| rng.random_range(0..4)).collect();
    (x, labels)
}

fn cfg() -> Config {
    Config {
        frac_bits: 16,
        rounding: Rounding::Nearest,
        ..Config::default()
    }
}

#[test]
fn float_backward_matches_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let model = small_model();
    let w = Weights::random(&model, &mut rng);
    let (x, labels) = data(&model, 4, &mut rng);
    for loss in [Loss::Mse, Loss::CrossEntropy] {
        finite_differences(&model, &w, &x, &labels, loss);
    }
}

fn finite_differences(model: &Model, w: &Weights, x: &[f32], labels: &[usize], loss: Loss) {
    let tr = FloatTrainer::new(w.clone());
    let (grads, _) = tr.gradients(model, x, labels, loss).expect("grads");
    let mut checked = 0;
    for (name, shape) in model.parameters() {
        let n: usize = shape.iter().product();
        for i in [0, n / 2, n - 1] {
            let (_, d) = w.get(&name).expect("param");
            let eps = 2e-3f32;
            let loss_at = |delta: f32| {
                let mut v = d.to_vec();
                v[i] += delta;
                let mut w2 = w.clone();
                w2.insert(&name, shape.clone(), v).expect("insert");
                FloatTrainer::new(w2)
                    .gradients(model, x, labels, loss)
                    .expect("loss")
                    .1
            };
            let fd = (loss_at(eps) - loss_at(-eps)) / (2.0 * f64::from(eps));
            let g = grads[&name][i];
            assert!(
                (fd - g).abs() <= 1e-4 + 2e-2 * g.abs(),
                "{loss:?} {name}[{i}]: backward {g}, finite difference {fd}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 3 * model.parameters().len());
}

#[test]
fn fixed_point_gradients_match_float() {
    // MSE: only truncations; cross-entropy: plus the exp and reciprocal
    // splines (2^-10 absolute and 2^-8 relative).
    check_gradients(Loss::Mse, 2e-3, 1e-2);
    check_gradients(Loss::CrossEntropy, 4e-3, 3e-2);
}

fn check_gradients(loss: Loss, abs: f64, rel: f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let model = small_model();
    let cfg = cfg();
    let w = Weights::random(&model, &mut rng);
    let (x, labels) = data(&model, 8, &mut rng);
    let (fg, _) = FloatTrainer::new(w.clone())
        .gradients(&model, &x, &labels, loss)
        .expect("float");
    let params = Params::encode(&model, &w, &cfg).expect("encode");
    let xe = encode_input(&x, &cfg).expect("x");
    let t = encode_targets(&labels, 4, loss, &cfg).expect("t");
    let (_, grads) =
        ariann_nn::train::gradients(&mut Clear, &model, &params, &xe, &t, 8, &cfg, loss)
            .expect("fixed");
    let f = cfg.frac_bits;
    let mut worst = 0f64;
    for (name, _) in model.parameters() {
        let bits = if name.ends_with(".bias") { f } else { 2 * f };
        let scale = 2f64.powi(bits as i32);
        let g = grads.get(&name).expect("gradient");
        for (a, b) in g.as_slice().iter().zip(&fg[&name]) {
            let a = *a as i64 as f64 / scale;
            let err = (a - b).abs();
            worst = worst.max(err);
            assert!(
                err <= abs + rel * b.abs(),
                "{loss:?} {name}: fixed {a}, float {b}"
            );
        }
    }
    eprintln!("{loss:?}: largest gradient error, fixed point (f = {f}) vs float: {worst:.2e}");
}

/// Runs a max-pool's training forward and backward on the cleartext
/// backend; returns the input gradient.
fn pool_backward(pool: &MaxPool2d, x: &[i64], shape: &[usize], dy: &[i64]) -> Vec<i64> {
    let cfg = Config::default();
    let params = Params::new();
    let mut clear = Clear;
    let mut ctx = Ctx {
        gates: &mut clear,
        params: &params,
        batch: 1,
        cfg: &cfg,
        path: String::new(),
    };
    let xv: Vec<u64> = x.iter().map(|v| *v as u64).collect();
    let (_, tape) = pool
        .forward_train(&mut ctx, xv, shape, true)
        .expect("forward");
    assert!(matches!(tape, Tape::OneHot(_)));
    let dyv: Vec<u64> = dy.iter().map(|v| *v as u64).collect();
    let dx = pool
        .backward(&mut ctx, tape, dyv, shape, &mut Params::new())
        .expect("backward")
        .expect("input gradient");
    dx.iter().map(|v| *v as i64).collect()
}

#[test]
fn max_pool_gradient_goes_to_the_arg_max() {
    // One 5x5 plane, 3x3 windows with stride 2 (overlapping) and padding 1;
    // ties inside windows (the 7s) and maxima away from the corners.
    let (h, k, stride, pad) = (5usize, 3usize, 2usize, 1usize);
    #[rustfmt::skip]
    let x: Vec<i64> = vec![
        1, 2, 3, 4, 5,
        9, 7, 7, 0, 8,
        2, 7, 1, 6, 3,
        0, 4, 5, 9, 2,
        3, 3, 8, 1, 6,
    ];
    let pool = MaxPool2d { k, stride, pad };
    let o = (h + 2 * pad - k) / stride + 1;
    let dy: Vec<i64> = (0..o * o).map(|i| 10 + i as i64).collect();
    let dx = pool_backward(&pool, &x, &[1, h, h], &dy);
    // The expected gradient, from the definition: each window's gradient
    // to the first position (row-major) holding its maximum.
    let mut want = vec![0i64; h * h];
    let mut corner = vec![0i64; h * h];
    for oy in 0..o {
        for ox in 0..o {
            let mut cells = Vec::new();
            for ky in 0..k {
                for kx in 0..k {
                    let (y, xx) = (
                        (oy * stride + ky) as i64 - pad as i64,
                        (ox * stride + kx) as i64 - pad as i64,
                    );
                    if (0..h as i64).contains(&y) && (0..h as i64).contains(&xx) {
                        cells.push(y as usize * h + xx as usize);
                    }
                }
            }
            let best = cells
                .iter()
                .copied()
                .reduce(|b, i| if x[i] > x[b] { i } else { b })
                .expect("window");
            want[best] += dy[oy * o + ox];
            corner[cells[0]] += dy[oy * o + ox];
        }
    }
    assert_eq!(dx, want, "gradient at the arg-max of each window");
    // A fixed-corner routing (the bug of the secure quantized training
    // paper) would fail this test on this input.
    assert_ne!(corner, want);
}

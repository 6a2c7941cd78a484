//! Training: the float backward pass against finite differences, the
//! fixed-point gradients (cleartext backend) against the float ones, the
//! max-pool's routing to the arg-max, and private training steps against the
//! cleartext fixed-point steps bit for bit, with keys streamed per step.

use ariann_mpc::{ChannelSource, Clear, MemTransport, Session, Tracing, run_two_party};
use ariann_nn::layers::MaxPool2d;
use ariann_nn::{
    Config, Ctx, FloatTrainer, Layer, LayerOp, Loss, Model, Optimizer, Params, Rounding, Tape,
    TrainConfig, TrainState, Variant, Weights, encode_input, encode_targets, train_plan,
    train_step,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::mpsc::sync_channel;
use std::time::Duration;

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
        ariann_nn::train::gradients(&mut Clear::new(), &model, &params, &xe, &t, 8, &cfg, loss)
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
    let mut clear = Clear::new();
    let mut ctx = Ctx {
        gates: &mut clear,
        params: &params,
        batch: 1,
        cfg: &cfg,
        path: String::new(),
        profile: None,
    };
    let xv: Vec<u64> = x.iter().map(|v| *v as u64).collect();
    let (_, tape) = pool
        .forward_train(&mut ctx, xv, shape, true)
        .expect("forward");
    assert!(matches!(tape, Tape::Tree(_)));
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
/// Shares of `v`.
fn share(v: &[u64], rng: &mut ChaCha8Rng) -> (Vec<u64>, Vec<u64>) {
    let a: Vec<u64> = v.iter().map(|_| rng.random()).collect();
    let b = v.iter().zip(&a).map(|(v, a)| v.wrapping_sub(*a)).collect();
    (a, b)
}

/// `steps` private training steps with keys streamed per step from a
/// dealer thread, against the same steps on the cleartext backend: bit for
/// bit (parameters and optimiser state).
fn private_vs_clear(model: &Model, batch: usize, steps: usize, cfg: &Config, tcfg: &TrainConfig) {
    let (s0, s1, clear) = private_and_clear(model, batch, steps, cfg, tcfg, &mut Clear::new());
    let got = Params::reconstruct(&s0.params, &s1.params).expect("reconstruct");
    assert!(
        got == clear.params,
        "private training equals fixed point bit for bit"
    );
    let v = Params::reconstruct(&s0.velocity, &s1.velocity).expect("reconstruct");
    assert!(v == clear.velocity, "the optimiser state too");
    let v2 = Params::reconstruct(&s0.second_moment, &s1.second_moment).expect("reconstruct");
    assert!(v2 == clear.second_moment, "and Adam's second moment");
    assert_eq!((s0.steps, s1.steps), (clear.steps, clear.steps));
}

/// `steps` private training steps with keys streamed per step from a
/// dealer thread, and the same steps on `clear_backend`: both parties'
/// states and the cleartext state.
fn private_and_clear(
    model: &Model,
    batch: usize,
    steps: usize,
    cfg: &Config,
    tcfg: &TrainConfig,
    clear_backend: &mut Clear,
) -> (TrainState, TrainState, TrainState) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let w = Weights::random(model, &mut rng);
    let classes = 4;
    let batches: Vec<(Vec<u64>, Vec<u64>)> = (0..steps)
        .map(|_| {
            let (x, l) = data(model, batch, &mut rng);
            (
                encode_input(&x, cfg).expect("x"),
                encode_targets(&l, classes, tcfg.loss, cfg).expect("t"),
            )
        })
        .collect();
    let params = Params::encode_train(model, &w, cfg).expect("encode");
    let (p0, p1) = params.share(&mut rng);
    let mut clear = TrainState::new(params);
    let shares: Vec<_> = batches
        .iter()
        .map(|(x, t)| {
            let (x0, x1) = share(x, &mut rng);
            let (t0, t1) = share(t, &mut rng);
            ((x0, t0), (x1, t1))
        })
        .collect();
    let lr = 0.05;
    for (x, t) in &batches {
        train_step(clear_backend, model, &mut clear, x, t, batch, cfg, tcfg, lr)
            .expect("clear step");
    }
    let plan = train_plan(model, batch, cfg, tcfg).expect("plan");
    let (tx0, rx0) = sync_channel(2);
    let (tx1, rx1) = sync_channel(2);
    let timeout = Duration::from_secs(600);
    let run = |t: &mut MemTransport, rx, p: Params, mine: Vec<(Vec<u64>, Vec<u64>)>| {
        let mut src = ChannelSource::new(rx, timeout);
        let mut state = TrainState::new(p);
        for (x, tg) in &mine {
            let mut tr = Tracing::new(&mut src);
            train_step(
                &mut Session::new(t, &mut tr),
                model,
                &mut state,
                x,
                tg,
                batch,
                cfg,
                tcfg,
                lr,
            )
            .expect("private step");
            assert_eq!(tr.seen(), plan.gates.as_slice(), "a step consumes the plan");
        }
        state
    };
    let (s0, s1) = std::thread::scope(|s| {
        let plan = &plan;
        s.spawn(move || {
            for step in 0..steps {
                for pair in plan
                    .bundles_from_seed::<u64>([step as u8 + 1; 32])
                    .expect("ring")
                {
                    let (a, b) = pair.expect("gate");
                    if tx0.send(a).is_err() || tx1.send(b).is_err() {
                        return;
                    }
                }
            }
        });
        let m0: Vec<_> = shares.iter().map(|(a, _)| a.clone()).collect();
        let m1: Vec<_> = shares.iter().map(|(_, b)| b.clone()).collect();
        run_two_party(|t| run(t, rx0, p0, m0), |t| run(t, rx1, p1, m1))
    });
    (s0, s1, clear)
}

/// Largest difference as a real number between two stores of the same
/// names (weights and velocities at `f` fractional bits, biases at `2f`).
fn max_diff(a: &Params, b: &Params, f: u32) -> f64 {
    let mut worst = 0f64;
    for (name, t) in a.iter() {
        let u = b.get(name).expect("same names");
        let bits = if name.ends_with(".bias") { 2 * f } else { f };
        for (x, y) in t.as_slice().iter().zip(u.as_slice()) {
            let d = (x.wrapping_sub(*y) as i64).unsigned_abs() as f64;
            worst = worst.max(d / 2f64.powi(bits as i32));
        }
    }
    worst
}

/// Stochastic rounding (`trunc_stoch` for every truncation of a step): the
/// private steps consume a plan whose only truncation gate is `trunc_stoch`;
/// they are not the cleartext steps bit for bit (the coins are the
/// dealer's masks) but stay within a few ulps of them and of the exact
/// rounding-to-nearest steps, on both variants. A truncation that fails
/// (a wrap: `2^(64-f)`) or that is biased would be far outside.
#[test]
fn private_training_with_stochastic_rounding_follows_fixed_point() {
    let tcfg = TrainConfig {
        loss: Loss::CrossEntropy,
        momentum: 0.9,
        weight_decay: 5e-4,
        optimizer: Optimizer::Sgd,
    };
    for variant in [Variant::OneRound, Variant::SmallKey] {
        let stoch = Config {
            rounding: Rounding::Stochastic,
            variant,
            ..cfg()
        };
        let plan = train_plan(&small_model(), 4, &stoch, &tcfg).expect("plan");
        let kinds: Vec<&str> = plan.gates.iter().map(|g| g.kind().name()).collect();
        assert!(kinds.contains(&"trunc_stoch"), "{kinds:?}");
        assert!(!kinds.contains(&"trunc") && !kinds.contains(&"trunc_small"));
        let (s0, s1, clear) = private_and_clear(
            &small_model(),
            4,
            3,
            &stoch,
            &tcfg,
            &mut Clear::stochastic(9),
        );
        let private = Params::reconstruct(&s0.params, &s1.params).expect("reconstruct");
        let v = Params::reconstruct(&s0.velocity, &s1.velocity).expect("reconstruct");
        // The exact rounding to nearest on the same data.
        let (_, _, nearest) =
            private_and_clear(&small_model(), 4, 3, &cfg(), &tcfg, &mut Clear::new());
        let f = stoch.frac_bits;
        let (d_clear, d_near) = (
            max_diff(&private, &clear.params, f),
            max_diff(&private, &nearest.params, f),
        );
        let d_vel = max_diff(&v, &clear.velocity, f);
        eprintln!(
            "{variant}: stochastic private vs stochastic clear {d_clear:.2e} (velocity {d_vel:.2e}), \
             vs nearest {d_near:.2e}, nearest vs stochastic clear {:.2e} (one ulp {:.2e})",
            max_diff(&nearest.params, &clear.params, f),
            2f64.powi(-(f as i32))
        );
        assert!(
            private != clear.params,
            "the coins are the dealer's, not Clear's"
        );
        assert!(d_clear <= 1e-3 && d_near <= 1e-3 && d_vel <= 1e-3);
    }
}

#[test]
fn private_training_equals_fixed_point() {
    for loss in [Loss::Mse, Loss::CrossEntropy] {
        let tcfg = TrainConfig {
            loss,
            momentum: 0.9,
            weight_decay: 5e-4,
            optimizer: Optimizer::Sgd,
        };
        private_vs_clear(&small_model(), 4, 3, &cfg(), &tcfg);
    }
}

/// Training with the small-key comparison gates (ReLU, max-pool tree and
/// the loss's argmax): private equals fixed point bit for bit, and the
/// fixed-point training equals the one-round variant's (the gates are exact
/// and give the same DReLU bits).
#[test]
fn private_training_with_small_key_gates_equals_fixed_point() {
    let small = Config {
        variant: Variant::SmallKey,
        ..cfg()
    };
    let tcfg = TrainConfig {
        loss: Loss::CrossEntropy,
        momentum: 0.9,
        weight_decay: 5e-4,
        optimizer: Optimizer::Sgd,
    };
    private_vs_clear(&small_model(), 4, 2, &small, &tcfg);
    let plan = train_plan(&small_model(), 4, &small, &tcfg).expect("plan");
    let kinds: Vec<&str> = plan.gates.iter().map(|g| g.kind().name()).collect();
    for k in ["relu_small", "max_pool_small", "argmax_small"] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }
    assert!(!kinds.contains(&"relu") && !kinds.contains(&"trunc_relu"));
    // The same fixed-point training with either variant.
    let model = small_model();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let w = Weights::random(&model, &mut rng);
    let (x, l) = data(&model, 4, &mut rng);
    let states: Vec<TrainState> = [cfg(), small]
        .iter()
        .map(|c| {
            let xe = encode_input(&x, c).expect("x");
            let t = encode_targets(&l, 4, tcfg.loss, c).expect("t");
            let mut st = TrainState::new(Params::encode(&model, &w, c).expect("encode"));
            for _ in 0..2 {
                train_step(
                    &mut Clear::new(),
                    &model,
                    &mut st,
                    &xe,
                    &t,
                    4,
                    c,
                    &tcfg,
                    0.05,
                )
                .expect("step");
            }
            st
        })
        .collect();
    assert!(
        states[0].params == states[1].params,
        "the variants train alike"
    );
}

#[test]
fn a_batch_that_is_not_a_power_of_two_is_refused() {
    let e = train_plan(&small_model(), 3, &cfg(), &TrainConfig::default()).expect_err("refused");
    assert!(e.to_string().contains("power of two"), "{e}");
}

// ------------------------------------------------ batch-norm in training mode

/// A batch-norm on the input (its batch statistics are the data's), conv,
/// batch-norm, ReLU, a residual block whose body ends with a batch-norm,
/// linear: every place a batch-norm takes in the zoo's ResNets.
fn bn_model() -> Model {
    Model {
        name: "bn".into(),
        input: vec![2, 4, 4],
        layers: vec![
            Layer::batch_norm("bn0", 2),
            Layer::conv2d("c1", 2, 3, 3, 1, 1),
            Layer::batch_norm("bn1", 3),
            Layer::Relu,
            Layer::residual(
                vec![
                    Layer::conv2d("r.conv", 3, 3, 3, 1, 1),
                    Layer::batch_norm("r.bn", 3),
                ],
                vec![],
            ),
            Layer::Relu,
            Layer::Flatten,
            Layer::linear("fc", 48, 4),
        ],
    }
}

/// Random weights with the batch-norms' running statistics away from their
/// initial values (so that their update is seen).
fn bn_weights(model: &Model, rng: &mut ChaCha8Rng) -> Weights {
    Weights::random(model, rng)
}

fn is_buffer(name: &str) -> bool {
    name.ends_with(".running_mean") || name.ends_with(".running_var")
}

#[test]
fn bn_float_backward_matches_finite_differences_and_updates_running_stats() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let model = bn_model();
    let w = bn_weights(&model, &mut rng);
    let (x, labels) = data(&model, 4, &mut rng);
    for loss in [Loss::Mse, Loss::CrossEntropy] {
        let (grads, _) = FloatTrainer::new(w.clone())
            .gradients(&model, &x, &labels, loss)
            .expect("grads");
        let mut checked = 0;
        for (name, shape) in model.parameters() {
            if is_buffer(&name) {
                continue;
            }
            let n: usize = shape.iter().product();
            for i in [0, n / 2, n - 1] {
                let (_, d) = w.get(&name).expect("param");
                let eps = 1e-3f32;
                let loss_at = |delta: f32| {
                    let mut v = d.to_vec();
                    v[i] += delta;
                    let mut w2 = w.clone();
                    w2.insert(&name, shape.clone(), v).expect("insert");
                    FloatTrainer::new(w2)
                        .gradients(&model, &x, &labels, loss)
                        .expect("loss")
                        .1
                };
                let fd = (loss_at(eps) - loss_at(-eps)) / (2.0 * f64::from(eps));
                let g = grads[&name][i];
                assert!(
                    (fd - g).abs() <= 2e-4 + 2e-2 * g.abs(),
                    "{loss:?} {name}[{i}]: backward {g}, finite difference {fd}"
                );
                checked += 1;
            }
        }
        // 3 batch-norms, 2 convolutions and a linear layer, each with a
        // weight and a bias: 3 entries each.
        assert_eq!(checked, 3 * 12);
    }
    // The input's batch-norm: its running statistics after one step are
    // PyTorch's update from the data's per-channel mean and unbiased
    // variance (computed here from the data).
    let mut tr = FloatTrainer::new(w.clone());
    tr.step(&model, &x, &labels, &TrainConfig::default(), 0.01)
        .expect("step");
    let (b, hw) = (4usize, 16usize);
    for ch in 0..2 {
        let vals: Vec<f64> = (0..b)
            .flat_map(|n| (0..hw).map(move |i| (n * 2 + ch) * hw + i))
            .map(|i| f64::from(x[i]))
            .collect();
        let m = vals.len() as f64;
        let mean = vals.iter().sum::<f64>() / m;
        let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (m - 1.0);
        let rm0 = f64::from(w.get("bn0.running_mean").expect("rm").1[ch]);
        let rv0 = f64::from(w.get("bn0.running_var").expect("rv").1[ch]);
        let rm = f64::from(tr.weights.get("bn0.running_mean").expect("rm").1[ch]);
        let rv = f64::from(tr.weights.get("bn0.running_var").expect("rv").1[ch]);
        assert!((rm - (0.9 * rm0 + 0.1 * mean)).abs() < 1e-6, "{rm}");
        assert!((rv - (0.9 * rv0 + 0.1 * var)).abs() < 1e-6, "{rv}");
    }
}

#[test]
fn bn_fixed_point_gradients_match_float() {
    // Tolerances: the inverse square root's spline (1.22e-3 relative at
    // f = 16, 4e-4 at 20) through three batch-norms, and the truncations
    // (largest errors measured: 3.5e-3 with MSE and 3.9e-3 with
    // cross-entropy at f = 16, 7.2e-4 and 1.05e-3 at f = 20, on the
    // convolution's bias before a batch-norm, whose float gradient is 0);
    // the running statistics within 1e-3 relative (1.9e-5 measured).
    for f in [16, 20] {
        bn_gradients(f);
    }
}

fn bn_gradients(f: u32) {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let model = bn_model();
    let cfg = Config {
        frac_bits: f,
        ..cfg()
    };
    let w = bn_weights(&model, &mut rng);
    let (x, labels) = data(&model, 8, &mut rng);
    for (loss, abs, rel) in [(Loss::Mse, 6e-3, 1e-2), (Loss::CrossEntropy, 6e-3, 3e-2)] {
        let (fg, _) = FloatTrainer::new(w.clone())
            .gradients(&model, &x, &labels, loss)
            .expect("float");
        let params = Params::encode_train(&model, &w, &cfg).expect("encode");
        let xe = encode_input(&x, &cfg).expect("x");
        let t = encode_targets(&labels, 4, loss, &cfg).expect("t");
        let (_, grads) =
            ariann_nn::train::gradients(&mut Clear::new(), &model, &params, &xe, &t, 8, &cfg, loss)
                .expect("fixed");
        let (mut worst, mut worst_buf) = (0f64, 0f64);
        for (name, _) in model.parameters() {
            let bits = if name.ends_with(".bias") || is_buffer(&name) {
                f
            } else {
                2 * f
            };
            let scale = 2f64.powi(bits as i32);
            let g = grads.get(&name).expect("gradient");
            for (a, b) in g.as_slice().iter().zip(&fg[&name]) {
                let a = *a as i64 as f64 / scale;
                let err = (a - b).abs();
                if is_buffer(&name) {
                    worst_buf = worst_buf.max(err / b.abs().max(1.0));
                    assert!(
                        err <= 1e-3 * b.abs().max(1.0),
                        "{name}: fixed {a}, float {b}"
                    );
                } else {
                    worst = worst.max(err);
                    assert!(
                        err <= abs + rel * b.abs(),
                        "{loss:?} {name}: fixed {a}, float {b}"
                    );
                }
            }
        }
        eprintln!(
            "{loss:?}: batch-norm model, largest gradient error, fixed point (f = {f}) vs float: {worst:.2e}; running statistics {worst_buf:.2e} (relative)"
        );
    }
}

#[test]
fn bn_private_training_equals_fixed_point() {
    let tcfg = TrainConfig {
        loss: Loss::CrossEntropy,
        momentum: 0.9,
        weight_decay: 5e-4,
        optimizer: Optimizer::Sgd,
    };
    private_vs_clear(&bn_model(), 4, 2, &cfg(), &tcfg);
}

#[test]
fn bn_training_loss_falls_and_the_model_runs_in_inference() {
    // Synthetic task: noise, plus 1 on the quadrant of the first channel
    // the label names.
    let model = Model {
        name: "bnsmall".into(),
        input: vec![2, 4, 4],
        layers: vec![
            Layer::conv2d("c1", 2, 4, 3, 1, 1),
            Layer::batch_norm("bn1", 4),
            Layer::Relu,
            Layer::Flatten,
            Layer::linear("fc", 64, 4),
        ],
    };
    let cfg = cfg();
    let tcfg = TrainConfig {
        loss: Loss::CrossEntropy,
        momentum: 0.9,
        weight_decay: 0.0,
        optimizer: Optimizer::Sgd,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let w0 = Weights::init(&model, ariann_nn::Init::PyTorch, &mut rng);
    let batch = 8;
    let make = |rng: &mut ChaCha8Rng| {
        let mut x: Vec<f32> = (0..batch * 32)
            .map(|_| rng.random_range(0.0..1.0))
            .collect();
        let labels: Vec<usize> = (0..batch).map(|_| rng.random_range(0..4)).collect();
        for (n, l) in labels.iter().enumerate() {
            for i in 0..16 {
                if (i / 8) * 2 + (i % 4) / 2 == *l {
                    x[n * 32 + i] += 1.0;
                }
            }
        }
        (x, labels)
    };
    let test: Vec<_> = (0..4).map(|_| make(&mut rng)).collect();
    let mean_loss = |w: &Weights| {
        test.iter()
            .map(|(x, l)| {
                FloatTrainer::new(w.clone())
                    .gradients(&model, x, l, tcfg.loss)
                    .expect("loss")
                    .1
            })
            .sum::<f64>()
            / test.len() as f64
    };
    let mut state = TrainState::new(Params::encode_train(&model, &w0, &cfg).expect("encode"));
    for _ in 0..60 {
        let (x, l) = make(&mut rng);
        let xe = encode_input(&x, &cfg).expect("x");
        let t = encode_targets(&l, 4, tcfg.loss, &cfg).expect("t");
        train_step(
            &mut Clear::new(),
            &model,
            &mut state,
            &xe,
            &t,
            batch,
            &cfg,
            &tcfg,
            0.1,
        )
        .expect("step");
    }
    let w1 = ariann_nn::train::decode_params(&model, &state.params, &cfg).expect("decode");
    let (before, after) = (mean_loss(&w0), mean_loss(&w1));
    eprintln!("batch-norm model: held-out loss {before:.3} -> {after:.3} after 60 steps");
    assert!(after < 0.5 * before, "{before} -> {after}");
    // The running statistics moved from their initial values (0 and 1).
    let (_, rv) = w1.get("bn1.running_var").expect("running_var");
    assert!(rv.iter().all(|v| (v - 1.0).abs() > 1e-3), "{rv:?}");
    // The trained model runs in inference, folded: the fixed-point output
    // equals the float inference of the decoded weights within the
    // fixed-point error.
    let (folded, fw) = model.fold_batchnorm(&w1).expect("fold");
    let (x, _) = &test[0];
    let want = ariann_nn::forward_float(&model, &w1, x, batch).expect("float");
    let got = ariann_nn::forward_fixed(
        &folded,
        &fw,
        &encode_input(x, &cfg).expect("x"),
        batch,
        &cfg,
    )
    .expect("fixed");
    let got = ariann_nn::decode_output(&got, &cfg);
    for (a, b) in got.iter().zip(&want) {
        assert!(
            (a - b).abs() < 1e-2 + 1e-2 * b.abs(),
            "inference: {a} vs {b}"
        );
    }
}

#[test]
fn resnet20_training_step_plan_traces() {
    let model = ariann_nn::zoo::resnet20();
    let plan = train_plan(&model, 2, &cfg(), &TrainConfig::default()).expect("plan");
    let splines = plan
        .gates
        .iter()
        .filter(|g| g.to_string().contains("inv_sqrt"))
        .count();
    // One inverse square root per batch-norm (19 in ResNet-20).
    assert_eq!(splines, 19);
}

fn adam_cfg(loss: Loss) -> TrainConfig {
    TrainConfig {
        loss,
        momentum: 0.0,
        weight_decay: 5e-4,
        optimizer: Optimizer::adam(),
    }
}

#[test]
fn adam_private_training_equals_fixed_point() {
    // Parameters, both moments and the step count after 3 steps; at
    // f = 16 and 20 (the two ends of Adam's range use different constants).
    private_vs_clear(&small_model(), 4, 3, &cfg(), &adam_cfg(Loss::CrossEntropy));
    let f20 = Config {
        frac_bits: 20,
        ..cfg()
    };
    private_vs_clear(&small_model(), 4, 2, &f20, &adam_cfg(Loss::Mse));
    // One step of Adam is SGD's forward and backward plus 7 rounds.
    let rounds = |t: &TrainConfig| {
        let plan = train_plan(&small_model(), 4, &cfg(), t).expect("plan");
        ariann_mpc::plan_cost(&plan.gates, 64)
            .expect("cost")
            .total
            .rounds
    };
    let sgd = TrainConfig {
        optimizer: Optimizer::Sgd,
        ..adam_cfg(Loss::CrossEntropy)
    };
    assert_eq!(rounds(&adam_cfg(Loss::CrossEntropy)), rounds(&sgd) + 5);
}

/// Clear (fixed point) Adam against the float reference (PyTorch's Adam,
/// `eps = 1e-8`, no weight decay) on the small model, 3 steps at `f = 16`:
/// every parameter whose float gradient is at least `1e-3` at every step
/// ends within `0.3 lr` of the float one (the spline's `2^-5.2` relative
/// error per step, three steps, and the gradients' errors; measured `0.10
/// lr` with MSE, `0.23 lr` with cross-entropy), and the parameters'
/// total change differs from the float one by less than 25% in L2 norm
/// (measured 15%: entries with smaller gradients take smaller steps, the
/// spline's floor acting as a larger `eps`, see `train_step`).
#[test]
fn adam_fixed_point_follows_float_adam() {
    let model = small_model();
    let cfg = cfg();
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let w = Weights::random(&model, &mut rng);
    let lr = 0.01;
    for loss in [Loss::Mse, Loss::CrossEntropy] {
        let tcfg = TrainConfig {
            weight_decay: 0.0,
            ..adam_cfg(loss)
        };
        let mut float = FloatTrainer::new(w.clone());
        let mut fixed = TrainState::new(Params::encode(&model, &w, &cfg).expect("encode"));
        let mut min_g: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
        for _ in 0..3 {
            let (x, l) = data(&model, 8, &mut rng);
            let (g, _) = float
                .gradients(&model, &x, &l, loss)
                .expect("float gradients");
            for (name, g) in g {
                let e = min_g
                    .entry(name)
                    .or_insert_with(|| vec![f64::INFINITY; g.len()]);
                for (e, g) in e.iter_mut().zip(g) {
                    *e = e.min(g.abs());
                }
            }
            float.step(&model, &x, &l, &tcfg, lr).expect("float step");
            let xe = encode_input(&x, &cfg).expect("x");
            let t = encode_targets(&l, 4, loss, &cfg).expect("t");
            train_step(
                &mut Clear::new(),
                &model,
                &mut fixed,
                &xe,
                &t,
                8,
                &cfg,
                &tcfg,
                lr,
            )
            .expect("fixed step");
        }
        let got = ariann_nn::train::decode_params(&model, &fixed.params, &cfg).expect("decode");
        let (mut diff, mut norm, mut worst) = (0f64, 0f64, 0f64);
        let mut worst_big = (0f64, 0usize, 0usize);
        for (name, _) in model.parameters() {
            let (_, a) = got.get(&name).expect("fixed");
            let (_, b) = float.weights.get(&name).expect("float");
            let (_, w0) = w.get(&name).expect("initial");
            for (((a, b), w0), mg) in a.iter().zip(b).zip(w0).zip(&min_g[&name]) {
                let (a, b, w0) = (f64::from(*a), f64::from(*b), f64::from(*w0));
                worst_big.2 += 1;
                if *mg >= 1e-3 {
                    worst_big.0 = worst_big.0.max((a - b).abs());
                    worst_big.1 += 1;
                }
                diff += (a - b) * (a - b);
                norm += (b - w0) * (b - w0);
                worst = worst.max((a - b).abs());
            }
        }
        let rel = (diff / norm).sqrt();
        eprintln!(
            "Adam {loss:?}, 3 steps: fixed vs float change {rel:.2e} relative (L2), \
             largest parameter difference {worst:.2e} (lr {lr})"
        );
        eprintln!(
            "  entries whose gradient is at least 1e-3 at every step ({} of {}): \
             largest difference {:.2e}",
            worst_big.1, worst_big.2, worst_big.0
        );
        assert!(norm > 0.0 && rel < 0.25, "{loss:?}: {rel}");
        assert!(worst_big.1 > worst_big.2 / 4, "{worst_big:?}");
        assert!(worst_big.0 < 0.3 * lr, "{loss:?}: {worst_big:?}");
    }
}

/// A short fixed-point Adam run (equal to the private one bit for bit) on
/// a learnable task: the loss falls.
#[test]
fn adam_training_lowers_the_loss() {
    let model = small_model();
    let cfg = cfg();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let w = Weights::random(&model, &mut rng);
    let tcfg = adam_cfg(Loss::CrossEntropy);
    // The label is the quadrant of the 6x6 image that is brighter.
    let batch = |rng: &mut ChaCha8Rng| {
        let (mut x, l) = data(&model, 8, rng);
        for (img, l) in x.chunks_mut(36).zip(&l) {
            let (r0, c0) = (3 * (l / 2), 3 * (l % 2));
            for r in 0..3 {
                for c in 0..3 {
                    img[(r0 + r) * 6 + c0 + c] += 1.0;
                }
            }
        }
        (x, l)
    };
    let mut state = TrainState::new(Params::encode(&model, &w, &cfg).expect("encode"));
    let mut losses = Vec::new();
    for _ in 0..60 {
        let (x, l) = batch(&mut rng);
        let xe = encode_input(&x, &cfg).expect("x");
        let t = encode_targets(&l, 4, tcfg.loss, &cfg).expect("t");
        let out = train_step(
            &mut Clear::new(),
            &model,
            &mut state,
            &xe,
            &t,
            8,
            &cfg,
            &tcfg,
            0.01,
        )
        .expect("step");
        let z: Vec<f64> = out
            .logits
            .iter()
            .map(|v| *v as i64 as f64 / f64::from(1u32 << cfg.frac_bits))
            .collect();
        losses.push(
            ariann_nn::train::float_loss(tcfg.loss, &z, &l, 4)
                .expect("loss")
                .1,
        );
    }
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    let (first, last) = (mean(&losses[..10]), mean(&losses[50..]));
    eprintln!("Adam: mean loss of the first 10 steps {first:.3}, of the last 10 {last:.3}");
    assert!(last < 0.5 * first, "{first} -> {last}");
}

#[test]
fn adam_hyper_parameters_are_checked() {
    for (beta1, beta2, eps) in [
        (1.0, 0.999, 1e-8),
        (0.9, -0.1, 1e-8),
        (0.9, 0.999, f64::NAN),
    ] {
        let tcfg = TrainConfig {
            optimizer: Optimizer::Adam { beta1, beta2, eps },
            ..adam_cfg(Loss::Mse)
        };
        let e = train_plan(&small_model(), 4, &cfg(), &tcfg).expect_err("refused");
        assert!(e.to_string().contains("Adam"), "{e}");
    }
    let f12 = Config {
        frac_bits: 12,
        ..cfg()
    };
    let e = train_plan(&small_model(), 4, &f12, &adam_cfg(Loss::Mse)).expect_err("refused");
    assert!(e.to_string().contains("16 <= f <= 20"), "{e}");
    // serde: a configuration without an optimiser is SGD (older job files).
    let old = r#"{"loss":"mse","momentum":0.9,"weight_decay":0.0}"#;
    let t: TrainConfig = serde_json::from_str(old).expect("old format");
    assert_eq!(t.optimizer, Optimizer::Sgd);
    let a = adam_cfg(Loss::Mse);
    let back: TrainConfig =
        serde_json::from_str(&serde_json::to_string(&a).expect("json")).expect("parse");
    assert_eq!(back, a);
}

#[test]
fn a_checkpoint_resumes_training_exactly() {
    let model = small_model();
    let cfg = cfg();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let w = Weights::random(&model, &mut rng);
    let batches: Vec<(Vec<u64>, Vec<u64>)> = (0..4)
        .map(|_| {
            let (x, l) = data(&model, 4, &mut rng);
            (
                encode_input(&x, &cfg).expect("x"),
                encode_targets(&l, 4, Loss::CrossEntropy, &cfg).expect("t"),
            )
        })
        .collect();
    for tcfg in [
        adam_cfg(Loss::CrossEntropy),
        TrainConfig {
            loss: Loss::CrossEntropy,
            momentum: 0.9,
            weight_decay: 5e-4,
            optimizer: Optimizer::Sgd,
        },
    ] {
        let step = |state: &mut TrainState, (x, t): &(Vec<u64>, Vec<u64>)| {
            train_step(&mut Clear::new(), &model, state, x, t, 4, &cfg, &tcfg, 0.01).expect("step");
        };
        let fresh = || TrainState::new(Params::encode(&model, &w, &cfg).expect("encode"));
        let mut straight = fresh();
        batches.iter().for_each(|b| step(&mut straight, b));
        let mut first = fresh();
        batches[..2].iter().for_each(|b| step(&mut first, b));
        let bytes = first.to_safetensors().expect("save");
        let mut resumed = TrainState::from_safetensors(&bytes).expect("load");
        assert_eq!(resumed.steps, 2);
        resumed
            .params
            .check_train(&model)
            .expect("the model's parameters");
        batches[2..].iter().for_each(|b| step(&mut resumed, b));
        assert_eq!(resumed.steps, straight.steps);
        for (store, a, b) in [
            ("params", &resumed.params, &straight.params),
            ("velocity", &resumed.velocity, &straight.velocity),
            (
                "second moment",
                &resumed.second_moment,
                &straight.second_moment,
            ),
        ] {
            assert_eq!(a.len(), b.len(), "{store}");
            for (name, t) in b.iter() {
                assert_eq!(
                    a.get(name).expect("same names").as_slice(),
                    t.as_slice(),
                    "{store} {name} after resuming ({:?})",
                    tcfg.optimizer
                );
            }
        }
        // A damaged checkpoint is refused, not half read.
        let mut broken = Params::from_safetensors(&bytes).expect("store");
        broken.insert("momentum.fc1.weight", ariann_ring::RingTensor::zeros(&[1]));
        let err = TrainState::from_safetensors(&broken.to_safetensors().expect("save"))
            .expect_err("an unknown tensor");
        assert!(err.to_string().contains("momentum.fc1.weight"), "{err}");
    }
}

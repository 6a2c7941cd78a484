//! One model, three ways: the private run equals the fixed-point cleartext
//! run bit for bit, and the fixed-point run is close to float.

use ariann_mpc::{GateDesc, MemTransport, Session, VecSource, run_two_party};
use ariann_nn::layers::{
    AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Conv2d, Linear, MaxPool2d, Residual,
};
use ariann_nn::{
    Config, Layer, Model, NnError, Params, Variant, Weights, decode_output, encode_input,
    forward_fixed, forward_float, forward_private, plan, share_weights, zoo,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Every layer kind: conv with padding, ReLU, padded max-pool, average pool,
/// flatten, linear.
fn small_model() -> Model {
    Model {
        name: "small".into(),
        input: vec![2, 8, 8],
        layers: vec![
            Layer::Conv2d(Conv2d {
                name: "conv1".into(),
                c: 2,
                oc: 4,
                k: 3,
                stride: 1,
                pad: 1,
                bias: true,
            }),
            Layer::Relu,
            Layer::MaxPool2d(MaxPool2d {
                k: 3,
                stride: 2,
                pad: 1,
            }),
            Layer::AvgPool2d(AvgPool2d { k: 2, stride: 2 }),
            Layer::Flatten,
            Layer::Linear(Linear {
                name: "fc".into(),
                inp: 16,
                out: 5,
                bias: true,
            }),
        ],
    }
}

fn run_all(model: &Model, w: &Weights, batch: usize, seed: u64) -> (Vec<f64>, Vec<u64>, Vec<u64>) {
    run_cfg(model, w, batch, seed, Config::default())
}

fn run_cfg(
    model: &Model,
    w: &Weights,
    batch: usize,
    seed: u64,
    cfg: Config,
) -> (Vec<f64>, Vec<u64>, Vec<u64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x: Vec<f32> = (0..batch * model.input_len())
        .map(|_| rng.random_range(0.0..1.0))
        .collect();
    run_input(model, w, batch, &mut rng, cfg, &x)
}

/// [`run_cfg`] on the input `x`, with `rng` for the shares and keys' seed.
fn run_input(
    model: &Model,
    w: &Weights,
    batch: usize,
    rng: &mut ChaCha8Rng,
    cfg: Config,
    x: &[f32],
) -> (Vec<f64>, Vec<u64>, Vec<u64>) {
    let seed: u64 = rng.random();
    let float = forward_float(model, w, x, batch).expect("float");
    let xe = encode_input(x, &cfg).expect("encode");
    let fixed = forward_fixed(model, w, &xe, batch, &cfg).expect("fixed");
    let (w0, w1) = share_weights(model, w, &cfg, rng).expect("share");
    let x0: Vec<u64> = xe.iter().map(|_| rng.random()).collect();
    let x1: Vec<u64> = xe
        .iter()
        .zip(&x0)
        .map(|(x, a)| x.wrapping_sub(*a))
        .collect();
    let p = plan(model, batch, &cfg).expect("plan");
    let (mut b0, mut b1) = (Vec::new(), Vec::new());
    for pair in p.bundles_from_seed::<u64>([seed as u8; 32]).expect("ring") {
        let (a, b) = pair.expect("gate");
        b0.push(a);
        b1.push(b);
    }
    let (mut s0, mut s1) = (VecSource::new(b0), VecSource::new(b1));
    let run = |t: &mut MemTransport, src: &mut VecSource<u64>, ws, xs: &[u64]| {
        let mut s = Session::new(t, src);
        forward_private(&mut s, model, ws, xs, batch, &cfg)
    };
    let (o0, o1) = run_two_party(|t| run(t, &mut s0, &w0, &x0), |t| run(t, &mut s1, &w1, &x1));
    let private = o0
        .expect("p0")
        .iter()
        .zip(o1.expect("p1"))
        .map(|(a, b)| a.wrapping_add(b))
        .collect();
    (float, fixed, private)
}

#[test]
fn private_equals_fixed_point_and_is_close_to_float() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for (model, batch) in [
        (small_model(), 3),
        (zoo::network1(), 2),
        (zoo::network2(), 2),
    ] {
        let w = Weights::random(&model, &mut rng);
        let (float, fixed, private) = run_all(&model, &w, batch, 7);
        assert_eq!(private, fixed, "{}: private != fixed point", model.name);
        let err = decode_output(&fixed, &Config::default())
            .iter()
            .zip(&float)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(err < 1e-3, "{}: fixed vs float error {err}", model.name);
    }
}

#[test]
fn safetensors_round_trip_and_clear_errors() {
    let model = small_model();
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let w = Weights::random(&model, &mut rng);
    let bytes = w.to_safetensors().expect("serialize");
    let back = Weights::from_safetensors(&bytes).expect("parse");
    assert_eq!(back, w);
    assert!(Weights::from_safetensors(&bytes[..bytes.len() - 3]).is_err());

    let mut missing = Weights::new();
    missing
        .insert("conv1.weight", vec![4, 2, 3, 3], vec![0.0; 72])
        .expect("shape ok");
    assert_eq!(
        missing.check(&model),
        Err(NnError::MissingTensor("conv1.bias".into()))
    );
    let mut wrong = w.clone();
    wrong
        .insert("fc.weight", vec![5, 15], vec![0.0; 75])
        .expect("consistent");
    assert!(
        matches!(wrong.check(&model), Err(NnError::TensorShape { name, .. }) if name == "fc.weight")
    );

    let bad = Model {
        layers: vec![Layer::Linear(Linear {
            name: "fc".into(),
            inp: 3,
            out: 2,
            bias: true,
        })],
        ..small_model()
    };
    assert!(matches!(
        bad.shapes(),
        Err(NnError::LayerShape { ref path, .. }) if path == "fc"
    ));
    // A layer without parameters is named by its position, nested ones by
    // their parameter prefix.
    let relu_first = Model {
        input: vec![3],
        layers: vec![Layer::Relu, Layer::Flatten, Layer::linear("fc", 4, 2)],
        ..small_model()
    };
    let err = relu_first.shapes().expect_err("does not fit");
    assert!(
        matches!(&err, NnError::LayerShape { path, .. } if path == "fc"),
        "{err}"
    );
    let nested = Model {
        input: vec![2, 4, 4],
        layers: vec![Layer::residual(
            vec![Layer::Relu, Layer::max_pool(2, 2, 0)],
            vec![],
        )],
        ..small_model()
    };
    let err = nested.shapes().expect_err("branches differ");
    assert!(
        matches!(&err, NnError::LayerShape { path, .. } if path == "0"),
        "{err}"
    );
}

#[test]
fn relu_maxpool_permutation_is_exact() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for model in [small_model(), zoo::network2(), zoo::lenet5_advertorch()] {
        let permuted = model.permute_relu_maxpool();
        assert_ne!(
            permuted.layers, model.layers,
            "{}: nothing to permute",
            model.name
        );
        let w = Weights::random(&model, &mut rng);
        let x: Vec<f32> = (0..2 * model.input_len())
            .map(|_| rng.random_range(0.0..1.0))
            .collect();
        let cfg = Config::default();
        let xe = encode_input(&x, &cfg).expect("encode");
        assert_eq!(
            forward_fixed(&model, &w, &xe, 2, &cfg).expect("fixed"),
            forward_fixed(&permuted, &w, &xe, 2, &cfg).expect("fixed"),
            "{}",
            model.name
        );
    }
}

/// Residual blocks and batch-norm: folding is exact in float, and the folded
/// network runs privately, bit-exact with fixed point.
#[test]
fn residual_and_batchnorm_fold() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let model = zoo::resnet18(32, 10);
    assert_eq!(
        model.parameters().len(),
        2 * 21 + 4 * 20,
        "ResNet18 tensors"
    );
    let w = Weights::random(&model, &mut rng);
    let (folded, fw) = model.fold_batchnorm(&w).expect("every bn follows a conv");
    assert_eq!(folded, model.fold_batchnorm_architecture());
    let x: Vec<f32> = (0..model.input_len())
        .map(|_| rng.random_range(0.0..1.0))
        .collect();
    let a = forward_float(&model, &w, &x, 1).expect("float");
    let b = forward_float(&folded, &fw, &x, 1).expect("float folded");
    assert!(
        a.iter().chain(&b).all(|v| v.is_finite()),
        "non-finite outputs"
    );
    let err = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    assert!(err < 1e-4, "folding changed the float output by {err}");
    // Unfolded, the batch-norms run as per-channel affine maps in fixed
    // point: close to float too (folding only saves their gates).
    let unfolded_fixed = forward_fixed(
        &model,
        &w,
        &encode_input(&x, &Config::default()).expect("enc"),
        1,
        &Config::default(),
    )
    .expect("unfolded batch-norms run as affine maps");
    let err = decode_output(&unfolded_fixed, &Config::default())
        .iter()
        .zip(&a)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    assert!(err < 5e-2, "unfolded fixed point vs float {err}");

    // A small residual network privately (the full ResNet18 is run by the zoo example).
    let small = Model {
        name: "residual".into(),
        input: vec![2, 6, 6],
        layers: vec![
            Layer::Conv2d(Conv2d {
                name: "c0".into(),
                c: 2,
                oc: 4,
                k: 3,
                stride: 1,
                pad: 1,
                bias: true,
            }),
            Layer::BatchNorm2d(BatchNorm2d {
                name: "b0".into(),
                c: 4,
            }),
            Layer::Relu,
            Layer::Residual(Residual {
                body: vec![
                    Layer::Conv2d(Conv2d {
                        name: "c1".into(),
                        c: 4,
                        oc: 8,
                        k: 3,
                        stride: 2,
                        pad: 1,
                        bias: true,
                    }),
                    Layer::BatchNorm2d(BatchNorm2d {
                        name: "b1".into(),
                        c: 8,
                    }),
                    Layer::Relu,
                ],
                shortcut: vec![
                    Layer::Conv2d(Conv2d {
                        name: "d".into(),
                        c: 4,
                        oc: 8,
                        k: 1,
                        stride: 2,
                        pad: 0,
                        bias: true,
                    }),
                    Layer::BatchNorm2d(BatchNorm2d {
                        name: "db".into(),
                        c: 8,
                    }),
                ],
            }),
            Layer::Relu,
            Layer::AvgPool2d(AvgPool2d { k: 3, stride: 1 }),
            Layer::Flatten,
            Layer::Linear(Linear {
                name: "fc".into(),
                inp: 8,
                out: 3,
                bias: true,
            }),
        ],
    };
    let w = Weights::random(&small, &mut rng);
    let (folded, fw) = small.fold_batchnorm(&w).expect("fold");
    let (float, fixed, private) = run_all(&folded, &fw, 3, 11);
    assert_eq!(private, fixed);
    let unfolded_float = {
        let mut r = ChaCha8Rng::seed_from_u64(11);
        let x: Vec<f32> = (0..3 * small.input_len())
            .map(|_| r.random_range(0.0..1.0))
            .collect();
        forward_float(&small, &w, &x, 3).expect("float")
    };
    let err = float
        .iter()
        .zip(&unfolded_float)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    assert!(err < 1e-4, "folded vs unfolded float {err}");
}

/// Layers larger than `max_gate_elems` run as several key bundles (bounded
/// key memory), with the same result.
#[test]
fn chunked_gates_give_the_same_result() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let model = small_model();
    let w = Weights::random(&model, &mut rng);
    let (_, fixed, private) = run_cfg(
        &model,
        &w,
        3,
        13,
        Config {
            max_gate_elems: 37,
            ..Config::default()
        },
    );
    assert_eq!(private, fixed);
    let whole = ariann_nn::plan(&model, 3, &Config::default())
        .expect("plan")
        .gates
        .len();
    let split = ariann_nn::plan(
        &model,
        3,
        &Config {
            max_gate_elems: 37,
            ..Config::default()
        },
    )
    .expect("plan")
    .gates
    .len();
    assert!(split > whole, "{split} bundles vs {whole}");
}

/// A small network with every place the small-key variant fuses a
/// truncation into a ReLU: a convolution, a linear layer, an unfolded
/// batch-norm, residual blocks with an identity, a convolution and an
/// option-A (subsample and zero-pad) shortcut; and a padded 3x3 max-pool
/// (small-key tree).
fn fusing_model() -> Model {
    let block = |p: &str, c: usize, oc: usize, stride: usize| {
        let shortcut = if stride != 1 || c != oc {
            vec![Layer::conv2d(&format!("{p}.sc"), c, oc, 1, stride, 0)]
        } else {
            vec![]
        };
        Layer::residual(
            vec![
                Layer::conv2d(&format!("{p}.conv1"), c, oc, 3, stride, 1),
                Layer::Relu,
                Layer::conv2d(&format!("{p}.conv2"), oc, oc, 3, 1, 1),
            ],
            shortcut,
        )
    };
    Model {
        name: "fusing".into(),
        input: vec![2, 8, 8],
        layers: vec![
            Layer::conv2d("conv1", 2, 3, 3, 1, 1),
            Layer::batch_norm("bn1", 3),
            Layer::Relu,
            block("b1", 3, 3, 1),
            Layer::Relu,
            block("b2", 3, 4, 2),
            Layer::Relu,
            // An option-A shortcut (subsample, zero channels: free).
            Layer::residual(
                vec![
                    Layer::conv2d("b3.conv1", 4, 6, 3, 1, 1),
                    Layer::Relu,
                    Layer::conv2d("b3.conv2", 6, 6, 3, 1, 1),
                ],
                vec![Layer::subsample_pad(1, 1)],
            ),
            Layer::Relu,
            Layer::max_pool(3, 2, 1),
            Layer::Flatten,
            Layer::linear("fc1", 24, 6),
            Layer::Relu,
            Layer::linear("fc2", 6, 3),
        ],
    }
}

/// The small-key variant: private equals its fixed point bit for bit, which
/// equals the one-round variant's; every ReLU after a product takes the
/// truncation (no `trunc` gate is left in front of a ReLU), the other
/// truncations are `trunc_small` ones, and the keys shrink. Also with bundles split small.
#[test]
fn small_key_variant_gives_the_same_results_with_fused_truncations() {
    let mut rng = ChaCha8Rng::seed_from_u64(41);
    for (model, batch) in [
        (fusing_model(), 2),
        (small_model(), 3),
        (zoo::network1(), 2),
    ] {
        let w = Weights::random(&model, &mut rng);
        for max_gate_elems in [Config::default().max_gate_elems, 37] {
            let one = Config {
                max_gate_elems,
                ..Config::default()
            };
            let small = Config {
                variant: Variant::SmallKey,
                ..one
            };
            let (_, fixed_one, private_one) = run_cfg(&model, &w, batch, 5, one);
            let (_, fixed_small, private_small) = run_cfg(&model, &w, batch, 5, small);
            let name = &model.name;
            assert_eq!(private_one, fixed_one, "{name}: one-round private");
            assert_eq!(private_small, fixed_small, "{name}: small-key private");
            assert_eq!(fixed_small, fixed_one, "{name}: the variants differ");
            let kinds = |cfg: &Config| -> Vec<&'static str> {
                plan(&model, batch, cfg)
                    .expect("plan")
                    .gates
                    .iter()
                    .map(|g| g.kind().name())
                    .collect()
            };
            let (k1, ks) = (kinds(&one), kinds(&small));
            let count = |k: &[&str], n: &str| k.iter().filter(|x| **x == n).count();
            assert_eq!(count(&ks, "relu"), 0, "{name}: one-round ReLU in small-key");
            assert_eq!(count(&k1, "relu_small") + count(&k1, "trunc_relu"), 0);
            assert_eq!(
                count(&k1, "trunc_small"),
                0,
                "{name}: trunc_small in one-round"
            );
            assert!(count(&ks, "trunc_relu") > 0, "{name}: nothing fused");
            // Each fused bundle replaces a truncation; the other truncations
            // are small-key ones.
            assert_eq!(
                count(&ks, "trunc"),
                0,
                "{name}: one-round trunc in small-key"
            );
            assert_eq!(
                count(&k1, "trunc"),
                count(&ks, "trunc_relu") + count(&ks, "trunc_small"),
                "{name}"
            );
        }
    }
    // The fusing model's plan: fused where a product meets a ReLU.
    let m = fusing_model();
    let small = Config {
        variant: Variant::SmallKey,
        ..Config::default()
    };
    let p = plan(&m, 2, &small).expect("plan");
    let names: Vec<&str> = p.gates.iter().map(|g| g.kind().name()).collect();
    let cost = |cfg: &Config| {
        let p = plan(&m, 2, cfg).expect("plan");
        ariann_mpc::plan_cost(&p.gates, p.ring_bits)
            .expect("cost")
            .total
    };
    let (c1, cs) = (cost(&Config::default()), cost(&small));
    // Measured: 1.34 MB against 3.12 MB (the products' triples are the
    // same in both).
    assert!(
        cs.key_bytes * 10 < c1.key_bytes * 6,
        "small-key keys {} vs one-round {}: {names:?}",
        cs.key_bytes,
        c1.key_bytes
    );
}

/// Max-pools whose windows overlap run in inference as two passes (each
/// row's windows, then each column of the row maxima): the outputs are each
/// window's maximum, computed here from the input (with ties and negative
/// values), private equals fixed point for both variants and small bundles,
/// the plan holds ReLU gates with exactly the predicted comparisons instead
/// of a max-pool gate, and the other geometries keep the 2-D tree.
#[test]
fn separable_max_pool_gives_each_window_maximum() {
    let mut rng = ChaCha8Rng::seed_from_u64(43);
    // (k, stride, pad, c, h, w, separable)
    for (k, stride, pad, c, h, wd, sep) in [
        (3, 2, 1, 2, 8, 8, true),
        (3, 2, 1, 1, 7, 9, true),
        (3, 2, 0, 2, 9, 7, true),
        (3, 1, 1, 1, 5, 6, true),
        (4, 3, 1, 1, 10, 11, true),
        (2, 2, 0, 2, 6, 6, false),
        (3, 3, 0, 1, 9, 9, false),
        (5, 2, 2, 1, 9, 7, false),
    ] {
        let pool = MaxPool2d { k, stride, pad };
        let counts = pool.separable(&[c, h, wd]).expect("fits");
        assert_eq!(counts.is_some(), sep, "{pool:?} on {c}x{h}x{wd}");
        let model = Model {
            name: format!("pool {k}/{stride}/{pad}"),
            input: vec![c, h, wd],
            layers: vec![Layer::MaxPool2d(pool.clone())],
        };
        let w = Weights::new();
        let batch = 2;
        let x: Vec<f32> = (0..batch * model.input_len())
            .map(|_| rng.random_range(-8i32..8) as f32 / 8.0)
            .collect();
        let shape = ariann_mpc::gates::pool::PoolShape {
            n: batch,
            c,
            h,
            w: wd,
            k,
            stride,
            pad,
        };
        let xe = encode_input(&x, &Config::default()).expect("encode");
        let expected: Vec<u64> = shape
            .windows()
            .expect("windows")
            .iter()
            .map(|win| win.iter().map(|i| xe[*i] as i64).max().expect("non-empty") as u64)
            .collect();
        for variant in [Variant::OneRound, Variant::SmallKey] {
            for max_gate_elems in [Config::default().max_gate_elems, 7] {
                let cfg = Config {
                    variant,
                    max_gate_elems,
                    ..Config::default()
                };
                let (_, fixed, private) = run_input(&model, &w, batch, &mut rng, cfg, &x);
                let name = format!("{pool:?} {variant} {max_gate_elems}");
                assert_eq!(fixed, expected, "{name}: fixed point");
                assert_eq!(private, expected, "{name}: private");
                let gates = plan(&model, batch, &cfg).expect("plan").gates;
                let relus: usize = gates
                    .iter()
                    .map(|g| match g {
                        GateDesc::Relu { m, .. } | GateDesc::ReluSmall { m, .. } => *m,
                        _ => 0,
                    })
                    .sum();
                match counts {
                    Some((sep, tree)) => {
                        assert!(sep < tree);
                        assert_eq!(relus as u64, sep * batch as u64, "{name}");
                        assert!(
                            gates.iter().all(|g| matches!(
                                (g, variant),
                                (GateDesc::Relu { .. }, Variant::OneRound)
                                    | (GateDesc::ReluSmall { .. }, Variant::SmallKey)
                            )),
                            "{name}: {gates:?}"
                        );
                    }
                    None => {
                        assert_eq!(relus, 0, "{name}");
                        assert!(!gates.is_empty());
                    }
                }
            }
        }
    }
}

#[test]
fn models_round_trip_through_json_descriptions() {
    for m in [
        small_model(),
        zoo::network2(),
        zoo::resnet18(64, 10),
        zoo::resnet20(),
    ] {
        let text = m.to_json();
        assert_eq!(Model::from_json(&text).expect("parses"), m);
    }
    let text = r#"{"name": "mlp", "input": [784], "layers": [
        {"type": "Linear", "name": "fc1", "inp": 784, "out": 32},
        {"type": "Relu"},
        {"type": "Linear", "name": "fc2", "inp": 32, "out": 10}]}"#;
    let m = Model::from_json(text).expect("valid description");
    assert_eq!(m.parameters().len(), 4);
    // Unknown layer kinds, unknown fields and layers that do not fit are errors.
    assert!(matches!(
        Model::from_json(&text.replace("Relu", "Gelu")),
        Err(NnError::Description(_))
    ));
    assert!(matches!(
        Model::from_json(&text.replace("\"inp\": 32", "\"inp\": 32, \"x\": 1")),
        Err(NnError::Description(_))
    ));
    assert!(matches!(
        Model::from_json(&text.replace("\"inp\": 32", "\"inp\": 31")),
        Err(NnError::LayerShape { .. })
    ));
}

/// A batch-norm after a ReLU and a max-pool (Falcon's AlexNet) cannot be
/// folded into a convolution: it stays and runs privately as a per-channel
/// affine map, bit-identical to the fixed-point run and close to float.
#[test]
fn batchnorm_after_relu_runs_privately() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let model = Model {
        name: "bn-after-relu".into(),
        input: vec![3, 9, 9],
        layers: vec![
            Layer::Conv2d(Conv2d {
                name: "c0".into(),
                c: 3,
                oc: 4,
                k: 3,
                stride: 2,
                pad: 1,
                bias: true,
            }),
            Layer::Relu,
            Layer::MaxPool2d(MaxPool2d {
                k: 3,
                stride: 2,
                pad: 0,
            }),
            Layer::BatchNorm2d(BatchNorm2d {
                name: "bn".into(),
                c: 4,
            }),
            Layer::Flatten,
            Layer::Linear(Linear {
                name: "fc".into(),
                inp: 16,
                out: 3,
                bias: true,
            }),
        ],
    };
    let w = Weights::random(&model, &mut rng);
    let (folded, fw) = model.fold_batchnorm(&w).expect("fold keeps the layer");
    assert_eq!(folded.layers, model.layers, "nothing to fold here");
    let (float, fixed, private) = run_all(&folded, &fw, 4, 22);
    assert_eq!(private, fixed, "private != fixed point");
    let err = decode_output(&fixed, &Config::default())
        .iter()
        .zip(&float)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(err < 1e-2, "fixed vs float {err}");
    let gates = plan(&model, 4, &Config::default()).expect("plan").gates;
    assert!(
        gates.iter().any(|g| matches!(
            g,
            ariann_mpc::GateDesc::Triple(ariann_mpc::gates::beaver::Bilinear::Mul { len: 64 })
        )),
        "the batch-norm's product is in the plan: {gates:?}"
    );
}

/// Every model of the zoo is well formed, has the advertised output size,
/// and its parameters have unique names.
#[test]
fn zoo_models_are_well_formed() {
    let expect = [
        ("network1", 10),
        ("network2", 10),
        ("sarda", 10),
        ("lenet", 10),
        ("lenet5", 10),
        ("alexnet", 10),
        ("alexnet_64", 200),
        ("alexnet_note", 10),
        ("vgg16", 10),
        ("vgg16_64", 200),
        ("resnet18", 1000),
        ("resnet18_64", 200),
        ("resnet20", 10),
    ];
    assert_eq!(expect.len(), zoo::NAMES.len());
    for (name, classes) in expect {
        let (m, _, batch) = zoo::by_name(name).expect("known model");
        assert!(batch > 0);
        let shapes = m.shapes().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(shapes.last(), Some(&vec![classes]), "{name}");
        let mut names: Vec<String> = m.parameters().into_iter().map(|(n, _)| n).collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n, "{name}: duplicate parameter names");
        plan(&m, 1, &Config::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert!(zoo::by_name("nope").is_none());
    // Parameter counts that pin the architectures (torchvision / Falcon).
    let count = |m: &Model| -> usize {
        m.parameters()
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    };
    assert_eq!(count(&zoo::lenet()), 431_080);
    assert_eq!(
        count(&zoo::alexnet_tiny()),
        2_469_696 + 1_052_672 + 16_781_312 + 819_400
    );
    // ResNet-20: He et al.'s 269,722 parameters (option A), plus what this
    // crate's form adds: bias tensors of the 19 convolutions (688 outputs)
    // and every batch-norm's running mean and variance.
    assert_eq!(count(&zoo::resnet20()), 269_722 + 688 + 2 * 688);
    assert_eq!(
        count(&zoo::vgg16(32, 4096, 10)),
        14_714_688 + 2_101_248 + 16_781_312 + 40_970
    );
}

/// A party sends the other its share of the weights by name (safetensors):
/// the round trip is exact; a share of another model, with a missing, extra
/// or misshapen tensor, or damaged bytes, is refused.
#[test]
fn weight_shares_round_trip_by_name() {
    let mut rng = ChaCha8Rng::seed_from_u64(31);
    let model = zoo::alexnet_cifar10();
    let w = Weights::random(&model, &mut rng);
    let (a, b) = share_weights(&model, &w, &Config::default(), &mut rng).expect("share");
    assert_eq!(a.len(), Params::expected_len(&model));
    let bytes = a.to_safetensors().expect("serialize");
    let back = Params::from_safetensors(&bytes).expect("decode");
    assert_eq!(back, a);
    back.check(&model).expect("fits the model");
    // The shares reconstruct to the fixed-point encoding, by name.
    let clear = Params::reconstruct(&a, &b).expect("reconstruct");
    assert_eq!(
        clear,
        Params::encode(&model, &w, &Config::default()).expect("encode")
    );
    assert!(Params::from_safetensors(&bytes[8..]).is_err());
    assert!(matches!(
        back.check(&zoo::network1()),
        Err(NnError::MissingTensor(n)) if n == "fc1.weight"
    ));
    let mut extra = back.clone();
    extra.insert("fc9.bias", ariann_ring::RingTensor::zeros(&[3]));
    assert_eq!(
        extra.check(&model),
        Err(NnError::UnexpectedTensor("fc9.bias".into()))
    );
    let mut misshapen = back.clone();
    misshapen.insert("features.0.bias", ariann_ring::RingTensor::zeros(&[3]));
    assert!(matches!(
        misshapen.check(&model),
        Err(NnError::TensorShape { name, .. }) if name == "features.0.bias"
    ));
    // Float tensors are not a parameter store.
    assert!(Params::from_safetensors(&w.to_safetensors().expect("float")).is_err());
}

/// `AdaptiveAvgPool2d(out)` is the average pool of window `side / out`:
/// the same results in every mode; sizes it cannot express are refused.
#[test]
fn adaptive_average_pool_matches_the_fixed_window() {
    let mut rng = ChaCha8Rng::seed_from_u64(41);
    let with = |pool: Layer| Model {
        name: "pool".into(),
        input: vec![2, 6, 6],
        layers: vec![
            Layer::Conv2d(Conv2d {
                name: "c".into(),
                c: 2,
                oc: 3,
                k: 3,
                stride: 1,
                pad: 1,
                bias: true,
            }),
            Layer::Relu,
            pool,
            Layer::Flatten,
            Layer::Linear(Linear {
                name: "fc".into(),
                inp: 12,
                out: 2,
                bias: true,
            }),
        ],
    };
    let a = with(Layer::AdaptiveAvgPool2d(AdaptiveAvgPool2d { out: 2 }));
    let b = with(Layer::AvgPool2d(AvgPool2d { k: 3, stride: 3 }));
    let w = Weights::random(&a, &mut rng);
    let (fa, xa, pa) = run_all(&a, &w, 2, 42);
    let (fb, xb, _) = run_all(&b, &w, 2, 42);
    assert_eq!(pa, xa, "private == fixed point");
    assert_eq!(xa, xb, "fixed point: adaptive == k=3");
    assert_eq!(fa, fb, "float: adaptive == k=3");
    assert_eq!(
        plan(&a, 2, &Config::default()).expect("plan"),
        plan(&b, 2, &Config::default()).expect("plan")
    );
    let bad = with(Layer::AdaptiveAvgPool2d(AdaptiveAvgPool2d { out: 4 }));
    assert!(bad.shapes().is_err(), "6 is not a multiple of 4");
}

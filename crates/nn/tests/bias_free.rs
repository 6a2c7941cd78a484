//! Bias-free convolutions and linear layers (`"bias": false`, PyTorch's
//! `bias=False`): no bias parameter, none added in the forward pass, none in
//! the gradients; the private run equals the cleartext fixed-point run bit
//! for bit and is close to float; a batch-norm folded into a bias-free
//! convolution gives it a bias; descriptions of models with biases are
//! unchanged (so are the job digests over them).

use ariann_mpc::{Clear, MemTransport, Session, VecSource, run_two_party};
use ariann_nn::{
    Config, Layer, Loss, Model, NnError, Params, Rounding, Weights, decode_output, encode_input,
    encode_targets, forward_fixed, forward_float, forward_private, plan, share_weights, zoo,
};
use ariann_nn::{FloatTrainer, layers::Conv2d, layers::Linear};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Bias-free conv, a residual block whose body has a bias-free conv and a
/// batch-norm, a bias-free linear layer and one with a bias.
fn model() -> Model {
    Model {
        name: "bias-free".into(),
        input: vec![2, 6, 6],
        layers: vec![
            Layer::conv2d_no_bias("c0", 2, 4, 3, 1, 1),
            Layer::Relu,
            Layer::residual(
                vec![
                    Layer::conv2d_no_bias("c1", 4, 4, 3, 1, 1),
                    Layer::batch_norm("b1", 4),
                    Layer::Relu,
                ],
                vec![],
            ),
            Layer::max_pool(2, 2, 0),
            Layer::Flatten,
            Layer::linear_no_bias("fc1", 36, 8),
            Layer::Relu,
            Layer::linear("fc2", 8, 3),
        ],
    }
}

/// The same layers with `bias: true` everywhere.
fn with_biases(layers: &[Layer]) -> Vec<Layer> {
    layers
        .iter()
        .map(|l| match l {
            Layer::Conv2d(c) => Layer::Conv2d(Conv2d {
                bias: true,
                ..c.clone()
            }),
            Layer::Linear(c) => Layer::Linear(Linear {
                bias: true,
                ..c.clone()
            }),
            Layer::Residual(r) => Layer::residual(with_biases(&r.body), with_biases(&r.shortcut)),
            other => other.clone(),
        })
        .collect()
}

/// `w` with a zero bias for every bias-free layer of `m`.
fn zero_biases(m: &Model, w: &Weights) -> Weights {
    let mut w = w.clone();
    for name in m.absent_biases() {
        let layer = name.trim_end_matches(".bias");
        let (s, _) = w.get(&format!("{layer}.weight")).expect("weight");
        let n = s[0];
        w.insert(&name, vec![n], vec![0.0; n]).expect("insert");
    }
    w
}

fn input(m: &Model, batch: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..batch * m.input_len())
        .map(|_| rng.random_range(0.0..1.0))
        .collect()
}

/// The private run of `model` on `x` (two parties in memory, keys from a seed).
fn private(model: &Model, w: &Weights, x: &[u64], batch: usize, cfg: &Config) -> Vec<u64> {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (w0, w1) = share_weights(model, w, cfg, &mut rng).expect("share");
    let x0: Vec<u64> = x.iter().map(|_| rng.random()).collect();
    let x1: Vec<u64> = x.iter().zip(&x0).map(|(a, b)| a.wrapping_sub(*b)).collect();
    let (mut b0, mut b1) = (Vec::new(), Vec::new());
    for pair in plan(model, batch, cfg)
        .expect("plan")
        .bundles_from_seed::<u64>([3; 32])
        .expect("ring")
    {
        let (a, b) = pair.expect("gate");
        b0.push(a);
        b1.push(b);
    }
    let (mut s0, mut s1) = (VecSource::new(b0), VecSource::new(b1));
    let run = |t: &mut MemTransport, src: &mut VecSource<u64>, ws, xs: &[u64]| {
        let mut s = Session::new(t, src);
        forward_private(&mut s, model, ws, xs, batch, cfg)
    };
    let (o0, o1) = run_two_party(|t| run(t, &mut s0, &w0, &x0), |t| run(t, &mut s1, &w1, &x1));
    o0.expect("p0")
        .iter()
        .zip(o1.expect("p1"))
        .map(|(a, b)| a.wrapping_add(b))
        .collect()
}

#[test]
fn bias_free_layers_have_no_bias_and_run_privately() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let m = model();
    let params = m.parameters();
    for n in ["c0.bias", "c1.bias", "fc1.bias"] {
        assert!(params.iter().all(|(p, _)| p != n), "{n} is a parameter");
    }
    assert!(params.iter().any(|(p, _)| p == "fc2.bias"));
    assert_eq!(m.absent_biases(), ["c0.bias", "c1.bias", "fc1.bias"]);
    let w = Weights::random(&m, &mut rng);
    assert!(w.get("c0.bias").is_none(), "random weights invent a bias");
    w.check(&m).expect("bias-free weights fit");

    // No bias in the forward pass: the same as zero biases, in float exactly
    // and in fixed point bit for bit.
    let batch = 2;
    let x = input(&m, batch, &mut rng);
    let biased = Model {
        layers: with_biases(&m.layers),
        ..m.clone()
    };
    let wz = zero_biases(&m, &w);
    let float = forward_float(&m, &w, &x, batch).expect("float");
    assert_eq!(
        float,
        forward_float(&biased, &wz, &x, batch).expect("float")
    );

    // Folding the batch-norm into the bias-free c1 gives it a bias.
    let (folded, fw) = m.fold_batchnorm(&w).expect("fold");
    assert_eq!(folded, m.fold_batchnorm_architecture());
    assert_eq!(folded.absent_biases(), ["c0.bias", "fc1.bias"]);
    let Layer::Residual(r) = &folded.layers[2] else {
        panic!("{:?}", folded.layers[2])
    };
    assert_eq!(
        r.body,
        vec![Layer::conv2d("c1", 4, 4, 3, 1, 1), Layer::Relu]
    );
    fw.check(&folded).expect("the folded bias is there");
    let ff = forward_float(&folded, &fw, &x, batch).expect("folded float");
    let err = ff
        .iter()
        .zip(&float)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(err < 1e-4, "folding changed the float output by {err}");

    // Private == cleartext fixed point bit for bit; fixed point ~ float.
    let cfg = Config::default();
    let xe = encode_input(&x, &cfg).expect("encode");
    let fixed = forward_fixed(&folded, &fw, &xe, batch, &cfg).expect("fixed");
    let (bf, bw) = biased.fold_batchnorm(&wz).expect("fold");
    assert_eq!(
        fixed,
        forward_fixed(&bf, &bw, &xe, batch, &cfg).expect("fixed"),
        "a bias-free layer is not a zero bias in fixed point"
    );
    assert_eq!(private(&folded, &fw, &xe, batch, &cfg), fixed);
    let err = decode_output(&fixed, &cfg)
        .iter()
        .zip(&float)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(err < 1e-3, "fixed point vs float: {err}");
}

#[test]
fn a_bias_tensor_for_a_bias_free_layer_is_refused() {
    let mut rng = ChaCha8Rng::seed_from_u64(22);
    let m = model();
    let w = zero_biases(&m, &Weights::random(&m, &mut rng));
    // Silently dropping a tensor the model owner gave would be a wrong answer.
    assert_eq!(
        w.check(&m),
        Err(NnError::UnexpectedTensor("c0.bias".into()))
    );
}

#[test]
fn bias_flag_round_trips_and_leaves_biased_descriptions_alone() {
    let m = model();
    let text = m.to_json();
    assert_eq!(text.matches("\"bias\": false").count(), 3, "{text}");
    assert!(!text.contains("\"bias\": true"));
    assert_eq!(Model::from_json(&text).expect("parses"), m);
    // Models with biases: no `bias` key, so their descriptions, and the job
    // digests over them, are what they were before the field.
    for z in [zoo::network1(), zoo::lenet(), zoo::resnet20()] {
        let t = z.to_json();
        assert!(!t.contains("\"bias\""), "{}: {t}", z.name);
        assert_eq!(Model::from_json(&t).expect("parses"), z);
    }
    // An explicit `"bias": true` is the default; anything else is refused.
    let desc = |b: &str| {
        format!(
            r#"{{"name": "m", "input": [4], "layers": [
            {{"type": "Linear", "name": "fc", "inp": 4, "out": 2{b}}}]}}"#
        )
    };
    let plain = Model::from_json(&desc("")).expect("default");
    assert_eq!(
        Model::from_json(&desc(", \"bias\": true")).expect("explicit"),
        plain
    );
    assert_eq!(plain.layers, vec![Layer::linear("fc", 4, 2)]);
    assert_eq!(
        Model::from_json(&desc(", \"bias\": false"))
            .expect("bias-free")
            .layers,
        vec![Layer::linear_no_bias("fc", 4, 2)]
    );
    assert!(matches!(
        Model::from_json(&desc(", \"bias\": 0")),
        Err(NnError::Description(_))
    ));
}

/// Training: no bias gradient, and the weights' gradients are those of the
/// same model with zero biases (float exactly, fixed point bit for bit).
#[test]
fn bias_free_layers_have_no_bias_gradient() {
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    let m = Model {
        name: "train".into(),
        input: vec![1, 4, 4],
        layers: vec![
            Layer::conv2d_no_bias("c", 1, 2, 3, 1, 1),
            Layer::Relu,
            Layer::Flatten,
            Layer::linear_no_bias("fc", 32, 3),
        ],
    };
    let biased = Model {
        layers: with_biases(&m.layers),
        ..m.clone()
    };
    let w = Weights::random(&m, &mut rng);
    let wz = zero_biases(&m, &w);
    let batch = 4;
    let x = input(&m, batch, &mut rng);
    let labels: Vec<usize> = (0..batch).map(|_| rng.random_range(0..3)).collect();
    let loss = Loss::Mse;
    let (g, _) = FloatTrainer::new(w.clone())
        .gradients(&m, &x, &labels, loss)
        .expect("float");
    let (gz, _) = FloatTrainer::new(wz.clone())
        .gradients(&biased, &x, &labels, loss)
        .expect("float");
    assert_eq!(
        g.keys().collect::<Vec<_>>(),
        ["c.weight", "fc.weight"],
        "float gradients"
    );
    for (n, v) in &g {
        assert_eq!(v, &gz[n], "{n}");
    }

    let cfg = Config {
        rounding: Rounding::Nearest,
        ..Config::default()
    };
    let xe = encode_input(&x, &cfg).expect("x");
    let t = encode_targets(&labels, 3, loss, &cfg).expect("t");
    let run = |m: &Model, w: &Weights| {
        let p = Params::encode(m, w, &cfg).expect("encode");
        ariann_nn::train::gradients(&mut Clear::new(), m, &p, &xe, &t, batch, &cfg, loss)
            .expect("fixed")
            .1
    };
    let (fg, fgz) = (run(&m, &w), run(&biased, &wz));
    for n in ["c.bias", "fc.bias"] {
        assert!(fg.get(n).is_err(), "a gradient for {n}");
        assert!(fgz.get(n).is_ok());
    }
    for n in ["c.weight", "fc.weight"] {
        assert_eq!(fg.get(n).expect("grad"), fgz.get(n).expect("grad"), "{n}");
    }
}

//! ONNX files written by `torch.onnx.export` (scripts/onnx/export_models.py,
//! tests/data/README.md): each imports; the float forward pass matches
//! onnxruntime's output, the fixed-point pass matches it within the
//! fixed-point error, and the private two-party run equals the fixed-point
//! run bit for bit.

use ariann_mpc::{MemTransport, Session, VecSource, run_two_party};
use ariann_nn::{
    Config, Layer, Model, Weights, decode_output, encode_input, forward_fixed, forward_float,
    forward_private, plan, share_weights,
};
use ariann_onnx::{Imported, OnnxError, architecture, import};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Largest |float - onnxruntime| accepted (f64 arithmetic on f32 weights
/// against onnxruntime's f32; measured at most 3.2e-6, on the trained LeNet).
const FLOAT_TOL: f64 = 1e-5;
/// Largest |fixed point - onnxruntime| accepted at 16 fractional bits
/// (measured at most 7.7e-4, on the trained LeNet).
const FIXED_TOL: f64 = 2e-3;

fn data(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The fixed input and onnxruntime's output for model `name`.
struct Case {
    batch: usize,
    input: Vec<f32>,
    output: Vec<f32>,
}

fn case(name: &str) -> Case {
    let v: serde_json::Value =
        serde_json::from_slice(&data(&format!("{name}.json"))).expect("valid JSON");
    let floats = |k: &str| -> Vec<f32> {
        v[k].as_array()
            .expect("an array")
            .iter()
            .map(|x| x.as_f64().expect("a number") as f32)
            .collect()
    };
    Case {
        batch: v["input_shape"][0].as_u64().expect("batch") as usize,
        input: floats("input"),
        output: floats("output"),
    }
}

fn max_err(a: &[f64], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "output sizes differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - f64::from(*y)).abs())
        .fold(0.0, f64::max)
}

/// The private run of `model` (folded) on `x` with both parties in this
/// process; returns the reconstructed output.
fn private(model: &Model, w: &Weights, x: &[u64], batch: usize, cfg: &Config) -> Vec<u64> {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let (w0, w1) = share_weights(model, w, cfg, &mut rng).expect("share");
    let x0: Vec<u64> = x.iter().map(|_| rng.random()).collect();
    let x1: Vec<u64> = x.iter().zip(&x0).map(|(x, a)| x.wrapping_sub(*a)).collect();
    let p = plan(model, batch, cfg).expect("plan");
    let (mut b0, mut b1) = (Vec::new(), Vec::new());
    for pair in p.bundles_from_seed::<u64>([5; 32]).expect("ring") {
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
    o0.expect("party 0")
        .iter()
        .zip(o1.expect("party 1"))
        .map(|(a, b)| a.wrapping_add(b))
        .collect()
}

/// Imports `name` and checks float, fixed point and (if `private_run`) the
/// private run; returns the float and fixed-point errors.
fn check(name: &str, private_run: bool) -> (f64, f64) {
    let bytes = data(&format!("{name}.onnx"));
    let Imported { model, weights } = import(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(architecture(&bytes).expect("architecture"), model);
    assert_eq!(Model::from_json(&model.to_json()).expect("JSON"), model);
    let c = case(name);
    let float = forward_float(&model, &weights, &c.input, c.batch).expect("float");
    let float_err = max_err(&float, &c.output);
    // As the parties do: the model owner folds batch-norms into its weights,
    // the dealer and the data owner fold the architecture only.
    let (folded, w) = model.fold_batchnorm(&weights).expect("fold");
    assert_eq!(folded, model.fold_batchnorm_architecture());
    let cfg = Config::default();
    let x = encode_input(&c.input, &cfg).expect("encode");
    let fixed = forward_fixed(&folded, &w, &x, c.batch, &cfg).expect("fixed");
    let fixed_err = max_err(&decode_output(&fixed, &cfg), &c.output);
    println!(
        "{name}: |float - onnxruntime| {float_err:.2e}, |fixed - onnxruntime| {fixed_err:.2e}"
    );
    assert!(float_err < FLOAT_TOL, "{name}: float error {float_err}");
    assert!(
        fixed_err < FIXED_TOL,
        "{name}: fixed-point error {fixed_err}"
    );
    if private_run {
        let p = private(&folded, &w, &x, c.batch, &cfg);
        assert_eq!(p, fixed, "{name}: private != fixed point");
    }
    (float_err, fixed_err)
}

#[test]
fn lenet_trained_private_equals_fixed_point() {
    check("lenet", true);
}

#[test]
fn resnet_option_b_private_equals_fixed_point() {
    check("resnet_b", true);
}

#[test]
fn resnet_option_a_private_equals_fixed_point() {
    check("resnet_a", true);
}

#[test]
fn each_op_family_matches_onnxruntime() {
    for name in ["conv_pools", "conv_bn", "matmul_add", "dropout_identity"] {
        check(name, true);
    }
}

fn layers(name: &str) -> Vec<Layer> {
    import(&data(&format!("{name}.onnx")))
        .expect("imports")
        .model
        .layers
}

#[test]
fn architectures_are_what_the_graphs_say() {
    use ariann_nn::layers::SubsamplePad;
    // Option A: the second block's shortcut is the free subsample-and-pad.
    let a = layers("resnet_a");
    let Layer::Residual(r) = &a[4] else {
        panic!("layer 4 of resnet_a is {:?}", a[4])
    };
    assert_eq!(
        r.shortcut,
        vec![Layer::SubsamplePad(SubsamplePad { stride: 2, pad: 4 })]
    );
    // Option B: a 1x1 stride-2 convolution and its batch-norm, and an
    // identity shortcut in the first block.
    let b = layers("resnet_b");
    let Layer::Residual(r1) = &b[3] else {
        panic!("{:?}", b[3])
    };
    assert!(r1.shortcut.is_empty());
    assert_eq!(r1.body.len(), 5);
    let Layer::Residual(r2) = &b[5] else {
        panic!("{:?}", b[5])
    };
    // PyTorch's `bias=False` convolution is imported bias-free (no zero
    // bias invented); folding its batch-norm gives it a bias.
    assert_eq!(
        r2.shortcut,
        vec![
            Layer::conv2d_no_bias("layer2.shortcut.0", 8, 16, 1, 2, 0),
            Layer::batch_norm("layer2.shortcut.1", 16)
        ]
    );
    let Layer::Residual(f2) = &ariann_nn::Model {
        name: String::new(),
        input: vec![],
        layers: vec![b[5].clone()],
    }
    .fold_batchnorm_architecture()
    .layers[0] else {
        panic!("a residual folds to a residual")
    };
    assert_eq!(
        f2.shortcut,
        vec![Layer::conv2d("layer2.shortcut.0", 8, 16, 1, 2, 0)]
    );
    // The batch-norm after a ReLU stays a layer after folding; the 1-d one
    // after a Gemm was folded into it at import.
    let bn = import(&data("conv_bn.onnx")).expect("imports").model;
    let folded = bn.fold_batchnorm_architecture();
    let kept: Vec<_> = folded
        .layers
        .iter()
        .filter(|l| matches!(l, Layer::BatchNorm2d(_)))
        .collect();
    assert_eq!(kept, vec![&Layer::batch_norm("bn2", 8)]);
    // MatMul + Add and Gemm with transB = 0 are linear layers.
    assert_eq!(
        layers("matmul_add"),
        vec![
            Layer::linear("w1", 10, 7),
            Layer::Relu,
            Layer::linear("w2", 7, 3)
        ]
    );
    // Dropout and Identity leave nothing.
    assert_eq!(
        layers("dropout_identity"),
        vec![
            Layer::linear("fc1", 6, 8),
            Layer::Relu,
            Layer::linear("fc2", 8, 3)
        ]
    );
}

#[test]
fn unsupported_op_is_refused_with_type_and_node() {
    let e = import(&data("unsupported.onnx")).expect_err("Sigmoid is not supported");
    assert_eq!(
        e,
        OnnxError::UnsupportedOp {
            op_type: "Sigmoid".into(),
            node: "node_sigmoid".into(),
            domain: String::new(),
        }
    );
    let msg = e.to_string();
    assert!(
        msg.contains("Sigmoid") && msg.contains("node_sigmoid"),
        "{msg}"
    );
    assert!(msg.contains("supported: Conv, Gemm"), "{msg}");
}

#[test]
fn training_mode_dropout_is_refused() {
    match import(&data("dropout_train.onnx")) {
        Err(OnnxError::UnsupportedUse {
            op_type,
            node,
            reason,
        }) => {
            assert_eq!(
                (op_type.as_str(), node.as_str()),
                ("Dropout", "/drop/Dropout")
            );
            assert!(reason.contains("training mode"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn malformed_files_are_refused_without_panic() {
    assert!(matches!(import(b""), Err(OnnxError::Graph(_))));
    assert!(matches!(import(&[0xff; 64]), Err(OnnxError::Decode(_))));
    let good = data("matmul_add.onnx");
    for len in (0..good.len()).step_by(7) {
        assert!(
            import(&good[..len]).is_err(),
            "a truncation to {len} bytes imported"
        );
    }
    // Byte corruptions: any result but a panic (some still decode to a
    // valid model, e.g. a changed weight value).
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut refused = 0;
    for _ in 0..2000 {
        let mut b = good.clone();
        for _ in 0..rng.random_range(1..4) {
            let at = rng.random_range(0..b.len());
            b[at] = rng.random();
        }
        refused += usize::from(import(&b).is_err());
    }
    assert!(refused > 0);
}

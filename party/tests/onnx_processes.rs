//! An ONNX model written by `torch.onnx.export` (the option-A ResNet of
//! `crates/onnx/tests/data`) through the two binaries with one job file
//! (`model-onnx`, `batch`, `output-to`) and no hand-made tensor:
//! `ariann-dealer keys --job` (architecture only), party 0 with the job
//! alone (weights from the initializers), party 1 with the job and its
//! input. The revealed output equals the fixed-point
//! cleartext run and is within the fixed-point error of onnxruntime's.

mod common;
use ariann_nn::{Config, Weights, decode_output, encode_input, forward_fixed};
use common::{dealer_bin, party_bin, signing_args, trust_args, wait, wait_ready};
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn onnx_data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/onnx/tests/data")
        .join(name)
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_f64().expect("a number") as f32)
        .collect()
}

#[test]
fn an_onnx_resnet_runs_through_the_binaries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let onnx = onnx_data("resnet_a.onnx");
    let case: serde_json::Value =
        serde_json::from_slice(&std::fs::read(onnx_data("resnet_a.json")).expect("read"))
            .expect("JSON");
    let shape: Vec<usize> = case["input_shape"]
        .as_array()
        .expect("shape")
        .iter()
        .map(|d| d.as_u64().expect("dim") as usize)
        .collect();
    let batch = shape[0];
    let (x, reference) = (floats(&case["input"]), floats(&case["output"]));
    let mut input = Weights::new();
    input.insert("input", shape, x.clone()).expect("input");
    let input_path = dir.path().join("input.safetensors");
    std::fs::write(&input_path, input.to_safetensors().expect("encode")).expect("write");

    // One job file for the dealer and both parties.
    let job = dir.path().join("job.toml");
    std::fs::write(
        &job,
        format!(
            "model-onnx = {:?}\nbatch = {batch}\noutput-to = 1\n",
            onnx.display().to_string()
        ),
    )
    .expect("job file");
    let st = Command::new(dealer_bin())
        .args(["keys", "--no-progress", "--job"])
        .arg(&job)
        .args(signing_args(dir.path()))
        .arg("--out")
        .arg(dir.path().join("keys"))
        .stdout(Stdio::null())
        .status()
        .expect("run ariann-dealer");
    assert!(st.success(), "ariann-dealer keys --model-onnx failed");

    let party = |id: u8| {
        let mut c = Command::new(party_bin());
        c.args(["--id", &id.to_string(), "--job"])
            .arg(&job)
            .args(["--connect-timeout", "5", "--exchange-timeout", "20"])
            .args(trust_args(dir.path(), id))
            .arg("--keys")
            .arg(dir.path().join(format!("keys/party{id}.keys")))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    };
    let ready = dir.path().join("ready");
    let mut p0 = party(0)
        .args(["--listen", "127.0.0.1:0", "--ready-file"])
        .arg(&ready)
        .spawn()
        .expect("spawn party 0");
    let addr = wait_ready(&mut p0, &ready).expect("party 0 listens");
    let out = dir.path().join("out.json");
    let p1 = party(1)
        .arg("--input")
        .arg(&input_path)
        .arg("--output")
        .arg(&out)
        .args(["--peer", &addr])
        .spawn()
        .expect("spawn party 1");
    let (s1, e1) = wait(p1, "party 1");
    let (s0, e0) = wait(p0, "party 0");
    assert!(s0.success(), "party 0:\n{e0}");
    assert!(s1.success(), "party 1:\n{e1}");

    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out).expect("party 1 wrote the output"))
            .expect("output JSON");
    let got: Vec<f64> = v["outputs"]
        .as_array()
        .expect("outputs")
        .iter()
        .flat_map(|r| {
            r.as_array()
                .expect("row")
                .iter()
                .map(|x| x.as_f64().expect("number"))
        })
        .collect();

    // The fixed-point cleartext run of the same file, in process.
    let imp = ariann_onnx::import(&std::fs::read(&onnx).expect("read")).expect("import");
    let (model, w) = imp.model.fold_batchnorm(&imp.weights).expect("fold");
    let cfg = Config::default();
    let fixed = forward_fixed(
        &model,
        &w,
        &encode_input(&x, &cfg).expect("encode"),
        batch,
        &cfg,
    )
    .expect("fixed");
    assert_eq!(
        got,
        decode_output(&fixed, &cfg),
        "revealed output != fixed point"
    );
    let err = got
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - f64::from(*b)).abs())
        .fold(0.0, f64::max);
    assert!(err < 2e-3, "|private - onnxruntime| = {err}");
    let argmax = |r: &[f64]| {
        r.iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i)
    };
    let classes = got.len() / batch;
    for (a, b) in got.chunks(classes).zip(reference.chunks(classes)) {
        let b: Vec<f64> = b.iter().map(|v| f64::from(*v)).collect();
        assert_eq!(
            argmax(a),
            argmax(&b),
            "prediction differs from onnxruntime's"
        );
    }
}

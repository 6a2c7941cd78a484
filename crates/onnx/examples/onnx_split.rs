//! Splits an ONNX model into what each side of a job needs: the
//! architecture as JSON (public: for the dealer and the data owner, with
//! `--model-json`) and, optionally, the weights as safetensors (the model
//! owner's, for `--weights`).
//!
//! ```text
//! cargo run -p ariann-onnx --example onnx_split -- model.onnx > model.json
//! cargo run -p ariann-onnx --example onnx_split -- model.onnx weights.safetensors > model.json
//! ```

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (onnx, weights) = match args.as_slice() {
        [o] => (o, None),
        [o, w] => (o, Some(w)),
        _ => {
            eprintln!("usage: onnx_split MODEL.onnx [WEIGHTS.safetensors] > MODEL.json");
            return ExitCode::from(2);
        }
    };
    let run = || -> Result<(), Box<dyn std::error::Error>> {
        let imported = ariann_onnx::import(&std::fs::read(onnx)?)?;
        println!("{}", imported.model.to_json());
        if let Some(w) = weights {
            std::fs::write(w, imported.weights_safetensors()?)?;
        }
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

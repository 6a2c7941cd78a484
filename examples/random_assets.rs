//! Writes random assets for a zoo model, to run it through the binaries
//! without real data: the model owner's weights (safetensors, PyTorch
//! names, `Weights::random`) and the data owner's inputs (safetensors with a
//! float32 tensor `input` of shape `[batch, ...]`, uniform in [0, 1)).
//!
//! ```text
//! cargo run --release --example random_assets -- --model resnet20 --batch 32 \
//!     --weights w.safetensors --input x.safetensors [--seed 1]
//! ```
//!
//! `scripts/zoo-across-processes.sh` uses it to time a zoo model with the
//! dealer and both parties as separate processes.

use ariann::nn::{Weights, zoo};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(String::as_str)
    };
    let name = value("--model").ok_or("--model NAME is required")?;
    let (model, _, default_batch) = zoo::by_name(name).ok_or_else(|| {
        format!(
            "unknown model {name:?}; the zoo has {}",
            zoo::NAMES.join(", ")
        )
    })?;
    let batch: usize = match value("--batch") {
        Some(v) => v
            .parse()
            .map_err(|_| format!("--batch {v}: not a number"))?,
        None => default_batch,
    };
    let seed: u64 = match value("--seed") {
        Some(v) => v.parse().map_err(|_| format!("--seed {v}: not a number"))?,
        None => 1,
    };
    let mut rng = ChaCha12Rng::seed_from_u64(seed);
    let (wf, xf) = (
        value("--weights").unwrap_or("weights.safetensors"),
        value("--input").unwrap_or("input.safetensors"),
    );
    let w = Weights::random(&model, &mut rng);
    std::fs::write(wf, w.to_safetensors()?).map_err(|e| format!("{wf}: {e}"))?;
    let mut shape = vec![batch];
    shape.extend(&model.input);
    let x: Vec<f32> = (0..batch * model.input_len())
        .map(|_| rng.random_range(0.0..1.0))
        .collect();
    let mut t = Weights::new();
    t.insert("input", shape, x)?;
    std::fs::write(xf, t.to_safetensors()?).map_err(|e| format!("{xf}: {e}"))?;
    println!(
        "wrote random weights of {} to {wf} and {batch} random inputs to {xf}",
        model.name
    );
    Ok(())
}

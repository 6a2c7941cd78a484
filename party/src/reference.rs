//! `ariann-party reference`: a model run locally, in float and in fixed
//! point, before going private.
//!
//! ```text
//! ariann-party reference --model-json model.json --weights w.safetensors --input x.npy [--json]
//! ariann-party reference --job job.toml --weights w.safetensors --input x.safetensors
//! ```
//!
//! Runs the model (zoo, JSON, or ONNX where built in) with the weights on
//! the inputs twice: the float reference (`ariann_nn::forward_float`, f64,
//! the model as described) and the cleartext fixed-point run
//! (`ariann_nn::forward_fixed` after batch-norm folding, with the job's
//! fixed-point settings), which is exactly what the private run reveals, bit
//! for bit. Prints both outputs, the largest difference between them and
//! the predicted classes (`--json`: one JSON object). Nothing leaves the
//! machine; no keys, no peer.

use crate::read;
use anyhow::{Context, Result, bail};
use ariann_job::JobFile;
use ariann_nn::{Variant, Weights, decode_output, encode_input, forward_fixed, forward_float};
use ariann_party::inputs::read_inputs;
use clap::Parser;
use std::path::PathBuf;

/// `ariann-party reference` options.
#[derive(Parser, Debug)]
#[command(
    name = "ariann-party reference",
    bin_name = "ariann-party reference",
    about = "Run a model locally in float and in fixed point (what the private run reveals), \
             and show the fixed-point error before going private"
)]
pub(crate) struct RefOpts {
    /// The job file (TOML; the model and fixed-point settings). Options
    /// given here override it.
    #[arg(long, value_name = "FILE")]
    job: Option<PathBuf>,
    /// A zoo model.
    #[arg(long)]
    model: Option<String>,
    /// A JSON model description.
    #[arg(long, value_name = "FILE")]
    model_json: Option<PathBuf>,
    /// An ONNX model (needs a build with the ONNX importer).
    #[arg(long, value_name = "FILE")]
    model_onnx: Option<PathBuf>,
    /// The weights (safetensors, PyTorch names).
    #[arg(long, value_name = "FILE")]
    weights: PathBuf,
    /// The inputs (.npy or safetensors with a tensor `input`; NCHW).
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
    /// Inputs per batch; fewer inputs are padded with zeros (outputs
    /// dropped) [default: the number of inputs].
    #[arg(long)]
    batch: Option<usize>,
    /// Batches of --batch inputs, as the private job runs them (each batch
    /// its own fixed-point run; the inputs fill batch x batches)
    /// [default: 1].
    #[arg(long)]
    batches: Option<usize>,
    /// Fractional bits [default: 16].
    #[arg(long)]
    frac_bits: Option<u32>,
    /// Swap ReLU and max-pool where adjacent (exact; as the private run).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    permute_relu_maxpool: Option<bool>,
    /// Comparison window (does not change the cleartext run; accepted so a
    /// job's options can be passed as they are).
    #[arg(long)]
    k_cmp: Option<u32>,
    /// Truncation window (as --k-cmp).
    #[arg(long)]
    k_trunc: Option<u32>,
    /// Elements per bundle (as --k-cmp).
    #[arg(long)]
    max_gate_elems: Option<usize>,
    /// Comparison gates (as --k-cmp: both variants give the same bits).
    #[arg(long, value_parser = crate::parse_variant)]
    variant: Option<Variant>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

fn argmax(r: &[f64]) -> usize {
    (0..r.len()).fold(0, |b, i| if r[i] > r[b] { i } else { b })
}

/// Runs `ariann-party reference`.
pub(crate) fn run(o: RefOpts) -> Result<()> {
    let cli = JobFile {
        model: o.model.clone(),
        model_json: o.model_json.clone(),
        model_onnx: o.model_onnx.clone(),
        batch: o.batch,
        batches: o.batches,
        frac_bits: o.frac_bits,
        k_cmp: o.k_cmp,
        k_trunc: o.k_trunc,
        max_gate_elems: o.max_gate_elems,
        variant: o.variant,
        permute_relu_maxpool: o.permute_relu_maxpool,
        ..JobFile::default()
    };
    let j = match &o.job {
        Some(p) => cli.or(JobFile::read(p)?),
        None => cli,
    };
    if j.is_train() {
        bail!("the reference run is for inference; the job file is a training job");
    }
    let Some(source) = j.model_source()? else {
        bail!("give one of --model, --model-json and --model-onnx (or a model in --job)");
    };
    let model = source.load()?;
    let cfg = j.config()?;
    let w = Weights::from_safetensors(&read(&o.weights)?)
        .with_context(|| format!("cannot load weights {}", o.weights.display()))?;
    w.check(&model)
        .with_context(|| format!("weights {} do not fit {}", o.weights.display(), model.name))?;
    let inputs = read_inputs(&o.input, &model.input)?;
    let batches = j.batches()?;
    let (batch, total) = match j.batch {
        Some(b) => (
            b,
            b.checked_mul(batches)
                .context("--batch times --batches overflows")?,
        ),
        None if batches == 1 => (inputs.images, inputs.images),
        None => bail!("--batches needs --batch"),
    };
    if batch == 0 {
        bail!("{} holds no input", o.input.display());
    }
    let x = inputs.padded(total)?;
    let float = forward_float(&model, &w, &x, total).context("float run")?;
    let (fm, fw) = model.fold_batchnorm(&w)?;
    let fm = if j.permute_relu_maxpool.unwrap_or(false) {
        fm.permute_relu_maxpool()
    } else {
        fm
    };
    let xe = encode_input(&x, &cfg).context("inputs do not fit the fixed-point encoding")?;
    // Batch after batch, as the private job runs them.
    let mut fixed_raw = Vec::new();
    for xb in xe.chunks((xe.len() / batches).max(1)) {
        fixed_raw.extend(forward_fixed(&fm, &fw, xb, batch, &cfg).context("fixed-point run")?);
    }
    let fixed = decode_output(&fixed_raw, &cfg);
    let classes = (float.len() / total).max(1);
    let n = inputs.images;
    let float_rows: Vec<&[f64]> = float.chunks(classes).take(n).collect();
    let fixed_rows: Vec<&[f64]> = fixed.chunks(classes).take(n).collect();
    // The largest |float - fixed| and where.
    let mut worst = (0.0f64, 0usize, 0usize);
    for (i, (a, b)) in float_rows.iter().zip(&fixed_rows).enumerate() {
        for (k, (x, y)) in a.iter().zip(b.iter()).enumerate() {
            let d = (x - y).abs();
            if d > worst.0 || d.is_nan() {
                worst = (d, i, k);
            }
        }
    }
    let pf: Vec<usize> = float_rows.iter().map(|r| argmax(r)).collect();
    let px: Vec<usize> = fixed_rows.iter().map(|r| argmax(r)).collect();
    let agree = pf.iter().zip(&px).filter(|(a, b)| a == b).count();
    if o.json {
        let v = serde_json::json!({
            "model": model.name,
            "inputs": n,
            "batch": batch,
            "batches": batches,
            "frac_bits": cfg.frac_bits,
            "float": float_rows,
            "fixed": fixed_rows,
            "max_abs_error": worst.0,
            "max_abs_error_at": [worst.1, worst.2],
            "predictions_float": pf,
            "predictions_fixed": px,
            "agree": agree,
        });
        println!("{v}");
        return Ok(());
    }
    println!(
        "{}: {n} input(s){}, {} outputs each, fixed point with f = {}",
        model.name,
        if total > n && batches == 1 {
            format!(" padded to a batch of {batch}")
        } else if total > n {
            format!(" padded to {batches} batches of {batch}")
        } else {
            String::new()
        },
        classes,
        cfg.frac_bits
    );
    let fmt = |r: &[f64]| {
        r.iter()
            .map(|v| format!("{v:.5}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    for i in 0..n {
        println!("input {i}: class {} (float) / {} (fixed)", pf[i], px[i]);
        println!("  float: {}", fmt(float_rows[i]));
        println!("  fixed: {}", fmt(fixed_rows[i]));
    }
    println!(
        "largest fixed-point error: {:.3e} (input {}, output {})",
        worst.0, worst.1, worst.2
    );
    println!("predictions agree on {agree}/{n} inputs");
    Ok(())
}

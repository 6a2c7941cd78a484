//! `ariann-party input`: PNG/JPEG images turned into the data owner's input
//! file (module `ariann_party::images` says how pixels become values).
//!
//! ```text
//! ariann-party input --model-onnx resnet.onnx --image cat.png --image dog.jpg \
//!     --mean 0.4914,0.4822,0.4465 --std 0.2470,0.2435,0.2616 --out input.safetensors
//! ```
//!
//! The model (zoo, JSON, ONNX or `--job`) gives the input shape `[C, H, W]`;
//! an image of another size is refused. The output is safetensors with one
//! tensor `input` `[N, C, H, W]` (or `.npy` by its extension), what
//! `--input` and `ariann-party reference --input` read.

use anyhow::{Result, bail};
use ariann_job::JobFile;
use ariann_party::images::{ImageOptions, read_images, write_inputs};
use clap::Parser;
use std::path::PathBuf;

/// `ariann-party input` options.
#[derive(Parser, Debug)]
#[command(
    name = "ariann-party input",
    bin_name = "ariann-party input",
    about = "Turn PNG/JPEG images into the input file a model takes (NCHW float32, \
             scaled to [0, 1], optionally normalised per channel)"
)]
pub(crate) struct InputOpts {
    /// The job file (TOML; its model gives the input shape).
    #[arg(long, value_name = "FILE")]
    job: Option<PathBuf>,
    /// A zoo model.
    #[arg(long)]
    model: Option<String>,
    /// A JSON model description.
    #[arg(long, value_name = "FILE")]
    model_json: Option<PathBuf>,
    /// An ONNX model (only its architecture is read).
    #[arg(long, value_name = "FILE")]
    model_onnx: Option<PathBuf>,
    /// An image (PNG or JPEG, by its content); repeat for a batch, in order.
    #[arg(long = "image", value_name = "FILE", required = true)]
    images: Vec<PathBuf>,
    /// Per-channel mean subtracted after scaling (one value, or one per
    /// channel, comma-separated; with --std).
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    mean: Vec<f32>,
    /// Per-channel standard deviation divided by (with --mean).
    #[arg(long, value_delimiter = ',')]
    std: Vec<f32>,
    /// Keep raw pixel values (0..=255) instead of scaling to [0, 1].
    #[arg(long)]
    no_scale: bool,
    /// The input file to write: safetensors (tensor `input`), or `.npy`.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// Runs `ariann-party input`.
pub(crate) fn run(o: InputOpts) -> Result<()> {
    let cli = JobFile {
        model: o.model.clone(),
        model_json: o.model_json.clone(),
        model_onnx: o.model_onnx.clone(),
        ..JobFile::default()
    };
    let j = match &o.job {
        Some(p) => cli.or(JobFile::read(p)?),
        None => cli,
    };
    let Some(source) = j.model_source()? else {
        bail!("give one of --model, --model-json and --model-onnx (or a model in --job)");
    };
    let model = source.load()?;
    let opts = ImageOptions {
        scale: !o.no_scale,
        mean: o.mean,
        std: o.std,
    };
    let inputs = read_images(&o.images, &model.input, &opts)?;
    write_inputs(&o.out, &inputs, &model.input)?;
    println!(
        "{}: {} image(s) of shape {:?} for {}",
        o.out.display(),
        inputs.images,
        model.input,
        model.name
    );
    Ok(())
}

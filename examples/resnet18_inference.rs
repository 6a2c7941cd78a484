//! Private inference of ResNet18 (torchvision's architecture, 224x224 RGB),
//! both parties and the dealer in this process.
//!
//! ```text
//! cargo run --release --example resnet18_inference                  # batch 4, random weights
//! cargo run --release --example resnet18_inference -- --batch 1 --hw 64 --classes 200
//! cargo run --release --example resnet18_inference -- --weights resnet18.safetensors
//! cargo run --release --example resnet18_inference -- --wan --json
//! ```
//!
//! `--weights` takes a safetensors file with PyTorch state-dict names
//! (`conv1.weight`, `bn1.running_mean`, `layer1.0.conv1.weight`, ..., `fc.bias`;
//! the torchvision checkpoint converted with `safetensors.torch.save_file`).
//! Batch-norms are folded exactly into their convolutions before sharing.
//! Inputs are random images (this example measures cost; see `quickstart`
//! for real data). Keys are streamed from the dealer thread while the
//! parties run (ResNet18's keys are ~15 GB per party at batch 4), so the
//! LAN time includes key generation on the same cores; `key wait` is how
//! long party 0 was blocked on keys.

//!
//! `--remote P0,P1` runs the job on two running `ariann-party` daemons
//! instead (this program plays both clients: weights to party 0, inputs to
//! party 1, output from party 1), with keys prepared by the dealer under the
//! daemons' key directory (`--job` names it; same `--k-cmp` and permutation
//! everywhere):
//!
//! ```text
//! ariann-dealer keys --model resnet18 --batch 4 --k-cmp 24 --permute-relu-maxpool --out jobs/demo
//! ariann-party --id 0 --control 127.0.0.1:7100 --listen 127.0.0.1:7000 --keys-dir jobs --k-cmp 24 --permute-relu-maxpool &
//! ariann-party --id 1 --control 127.0.0.1:7101 --peer 127.0.0.1:7000 --keys-dir jobs --k-cmp 24 --permute-relu-maxpool &
//! cargo run --release --example resnet18_inference -- --remote http://127.0.0.1:7100,http://127.0.0.1:7101 --job demo
//! ```
use ariann::local::{Preprocess, RunOptions, Wan, private_inference_checked};
use ariann::nn::{Config, Weights, zoo};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| -> Option<&String> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let num = |name: &str, default: usize| -> Result<usize, String> {
        value(name).map_or(Ok(default), |v| {
            v.parse().map_err(|_| format!("{name} {v}: not a number"))
        })
    };
    let (batch, hw, classes) = (
        num("--batch", 4)?,
        num("--hw", 224)?,
        num("--classes", 1000)?,
    );
    if batch == 0 || hw == 0 || hw % 32 != 0 {
        return Err("--batch must be positive and --hw a positive multiple of 32".into());
    }
    let model = zoo::resnet18(hw, classes);
    let mut rng = ChaCha12Rng::from_os_rng();
    let w = match value("--weights") {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
            Weights::from_safetensors(&bytes)?
        }
        None => Weights::random(&model, &mut rng),
    };
    w.check(&model)?;
    let original = w.clone();
    let (model, w) = model.fold_batchnorm(&w)?;
    let model = model.permute_relu_maxpool();
    let x: Vec<f32> = (0..batch * model.input_len())
        .map(|_| rng.random_range(0.0..1.0))
        .collect();
    if let Some(addrs) = value("--remote") {
        let (a0, a1) = addrs.split_once(',').ok_or(
            "--remote takes PARTY0_ADDR,PARTY1_ADDR (http://host:port of the daemons' --control)",
        )?;
        let job = value("--job").map_or("demo", String::as_str);
        let name = if hw == 224 && classes == 1000 {
            "resnet18"
        } else if hw == 64 && classes == 200 {
            "resnet18_64"
        } else {
            return Err(
                "--remote runs the zoo's resnet18 (224, 1000) or resnet18_64 (64, 200)".into(),
            );
        };
        let t = std::time::Instant::now();
        let (y, _) = ariann_party::client::run_remote(
            a0,
            a1,
            job,
            name,
            batch,
            original.to_safetensors()?,
            &x,
        )?;
        let secs = t.elapsed().as_secs_f64();
        let float = ariann::nn::forward_float(&model, &w, &x, batch)?;
        let c = y.len() / batch;
        let argmax = |r: &[f64]| (0..r.len()).fold(0, |b, i| if r[i] > r[b] { i } else { b });
        let agree = (0..batch)
            .filter(|i| argmax(&y[i * c..(i + 1) * c]) == argmax(&float[i * c..(i + 1) * c]))
            .count();
        println!(
            "{} batch {batch} on the daemons at {a0} and {a1} (job {job}): {secs:.2} s from submit to output; predictions agree with float on {agree}/{batch}",
            model.name
        );
        return Ok(());
    }
    let opts = RunOptions {
        wan: args.iter().any(|a| a == "--wan").then_some(Wan {
            rtt: Duration::from_millis(70),
            bytes_per_sec: 40e6,
        }),
        preprocess: Preprocess::Streamed,
    };
    let cfg = Config {
        k_cmp: 24,
        ..Config::default()
    };
    let c = private_inference_checked(&model, &w, &x, batch, &cfg, &opts)?;
    let r = &c.report;
    let mb = r.stats.bytes_sent as f64 / 1e6;
    if args.iter().any(|a| a == "--json") {
        println!(
            "{}",
            serde_json::json!({
                "model": model.name, "batch": batch, "wan": opts.wan.is_some(),
                "seconds": r.seconds, "keygen_s": r.keygen_seconds,
                "key_wait_s": r.key_wait_seconds, "online_mb": mb,
                "rounds": r.stats.rounds,
                "key_mb_per_party": r.key_bytes_per_party as f64 / 1e6,
                "argmax_agreement": c.agree as f64 / batch as f64,
            })
        );
    } else {
        let link = if opts.wan.is_some() {
            " over a 70 ms / 40 MB/s WAN"
        } else {
            " (LAN)"
        };
        println!("{} batch {batch}{link}: {}", model.name, c.summary(batch));
    }
    Ok(())
}

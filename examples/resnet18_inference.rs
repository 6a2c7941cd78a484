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
//! everywhere). The daemons below run without authentication
//! (`--insecure-local`, loopback only); with `--control-tokens FILE` on each
//! daemon, give this program the clients' token files with `--tokens T0,T1`:
//!
//! ```text
//! ariann-dealer keys --model resnet18 --batch 4 --k-cmp 24 --permute-relu-maxpool --out jobs/demo
//! ariann-party --id 0 --control 127.0.0.1:7100 --listen 127.0.0.1:7000 --keys-dir jobs --k-cmp 24 --permute-relu-maxpool --insecure-local &
//! ariann-party --id 1 --control 127.0.0.1:7101 --peer 127.0.0.1:7000 --keys-dir jobs --k-cmp 24 --permute-relu-maxpool --insecure-local &
//! cargo run --release --example resnet18_inference -- --remote http://127.0.0.1:7100,http://127.0.0.1:7101 --job demo
//! ```

mod common;
use ariann::nn::zoo;
use common::{Args, Res, run_model};

fn main() -> Res<()> {
    // As the binaries do: big key buffers reuse freed heap memory
    // (ariann_net::memory; ARIANN_MALLOC=system for glibc's defaults).
    ariann_net::memory::keep_freed_memory();
    let args = Args::parse();
    let batch = args.num("--batch", 4)?;
    let (hw, classes) = (args.num("--hw", 224)?, args.num("--classes", 1000)?);
    if hw == 0 || hw % 32 != 0 {
        return Err("--hw must be a positive multiple of 32".into());
    }
    // The zoo's names, for --remote (the daemons build the model by name).
    let name = match (hw, classes) {
        (224, 1000) => Some("resnet18"),
        (64, 200) => Some("resnet18_64"),
        _ => None,
    };
    run_model(&args, zoo::resnet18(hw, classes), name, batch)
}

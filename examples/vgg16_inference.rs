//! Private inference of VGG16 as Falcon and ARIANN adapt it (CIFAR-10 32x32,
//! or 64x64 Tiny ImageNet),
//! both parties and the dealer in this process.
//!
//! ```text
//! cargo run --release --example vgg16_inference                     # CIFAR-10, batch 32
//! cargo run --release --example vgg16_inference -- --tiny --batch 16  # 64x64, 200 classes
//! cargo run --release --example vgg16_inference -- --weights vgg16.safetensors
//! cargo run --release --example vgg16_inference -- --wan --json
//! ```
//!
//! `--weights` takes a safetensors file with torchvision's VGG16 state-dict
//! names (`features.0.weight`, ..., `classifier.6.bias`) for the adapted
//! shapes (`classifier.0` is 512x4096 for CIFAR-10, 2048x2048 for 64x64).
//! ReLU and max-pool are permuted (exact), as Falcon and ARIANN do.
//! Inputs are random images (this example measures cost; see `quickstart`
//! for real data). Keys are streamed from the dealer thread while the
//! parties run (VGG16's keys are several GB per party), so the
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
//! ariann-dealer keys --model vgg16 --batch 32 --k-cmp 24 --permute-relu-maxpool --out jobs/demo
//! ariann-party --id 0 --control 127.0.0.1:7100 --listen 127.0.0.1:7000 --keys-dir jobs --k-cmp 24 --permute-relu-maxpool --insecure-local &
//! ariann-party --id 1 --control 127.0.0.1:7101 --peer 127.0.0.1:7000 --keys-dir jobs --k-cmp 24 --permute-relu-maxpool --insecure-local &
//! cargo run --release --example vgg16_inference -- --remote http://127.0.0.1:7100,http://127.0.0.1:7101 --job demo
//! ```

mod common;
use ariann::nn::zoo;
use common::{Args, Res, run_model};

fn main() -> Res<()> {
    // As the binaries do: big key buffers reuse freed heap memory
    // (ariann_net::memory; ARIANN_MALLOC=system for glibc's defaults).
    ariann_net::memory::keep_freed_memory();
    let args = Args::parse();
    let tiny = args.flag("--tiny");
    let batch = args.num("--batch", if tiny { 16 } else { 32 })?;
    let (model, name) = if tiny {
        (zoo::vgg16(64, 2048, 200), "vgg16_64")
    } else {
        (zoo::vgg16(32, 4096, 10), "vgg16")
    };
    run_model(&args, model, Some(name), batch)
}

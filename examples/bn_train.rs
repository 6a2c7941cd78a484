//! What a training batch-norm costs: the dealer's plan of one training step
//! of the zoo's ResNet-20 (CIFAR-10 shapes, 19 batch-norms) against the same
//! network without its batch-norms, per party: rounds, key bytes and bytes
//! sent. No keys are generated (the costs follow from the plan).
//!
//! ```text
//! cargo run --release --example bn_train -- [batch (2)] [frac_bits (16)]
//! ```

use ariann::mpc::plan_cost;
use ariann::nn::{Config, Layer, Loss, Model, Optimizer, Rounding, TrainConfig, train_plan, zoo};

/// The layers without their batch-norms.
fn strip(layers: &[Layer]) -> Vec<Layer> {
    layers
        .iter()
        .filter(|l| !matches!(l, Layer::BatchNorm2d(_)))
        .map(|l| match l {
            Layer::Residual(r) => Layer::residual(strip(&r.body), strip(&r.shortcut)),
            l => l.clone(),
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let batch: usize = args.first().map(|s| s.parse()).transpose()?.unwrap_or(2);
    let f: u32 = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(16);
    let cfg = Config {
        frac_bits: f,
        rounding: Rounding::Nearest,
        ..Config::default()
    };
    let tcfg = TrainConfig {
        loss: Loss::CrossEntropy,
        momentum: 0.9,
        weight_decay: 5e-4,
        optimizer: Optimizer::Sgd,
    };
    let with = zoo::resnet20();
    let without = Model {
        layers: strip(&with.layers),
        ..with.clone()
    };
    println!("ResNet-20, batch {batch}, f = {f}: one training step, per party");
    println!("| model | gates | rounds | keys (MB) | sent (MB) |");
    println!("|---|---|---|---|---|");
    let mut rows = Vec::new();
    for (name, m) in [("with batch-norm", &with), ("without", &without)] {
        let plan = train_plan(m, batch, &cfg, &tcfg)?;
        let cost = plan_cost(&plan.gates, 64)?;
        let t = cost.total;
        println!(
            "| {name} | {} | {} | {:.1} | {:.1} |",
            plan.gates.len(),
            t.rounds,
            t.key_bytes as f64 / 1e6,
            t.bytes_sent as f64 / 1e6
        );
        rows.push((plan.gates.len(), t.rounds, t.key_bytes, t.bytes_sent));
    }
    let (a, b) = (rows[0], rows[1]);
    println!(
        "| batch-norms (19) | {} | {} | {:.1} | {:.1} |",
        a.0 - b.0,
        a.1 - b.1,
        (a.2 - b.2) as f64 / 1e6,
        (a.3 - b.3) as f64 / 1e6
    );
    Ok(())
}

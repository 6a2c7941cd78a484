//! Whole-plan costs predicted from the gate descriptions
//! (`ariann::mpc::plan_cost`) against private inference of zoo models run
//! with the keys generated ahead: the predicted rounds and online bytes are
//! party 0's transport counters, the predicted key bytes the key bytes the
//! party received.

use ariann::local::{Preprocess, RunOptions, private_inference_with};
use ariann::mpc::plan_cost;
use ariann::nn::{Config, Weights, plan, zoo};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;

#[test]
fn zoo_models_cost_what_they_run() {
    let cfg = Config {
        k_cmp: 24,
        ..Config::default()
    };
    let mut rng = ChaCha12Rng::seed_from_u64(5);
    for (name, batch) in [("network1", 2usize), ("sarda", 1), ("lenet", 2)] {
        let (model, _, _) = zoo::by_name(name).expect("zoo model");
        let w = Weights::random(&model, &mut rng);
        let (model, w) = model.fold_batchnorm(&w).expect("foldable");
        let model = model.permute_relu_maxpool();
        let p = plan(&model, batch, &cfg).expect("plan");
        let predicted = plan_cost(&p.gates, p.ring_bits).expect("valid plan").total;
        let x: Vec<f32> = (0..batch * model.input_len())
            .map(|_| rng.random_range(0.0..1.0))
            .collect();
        let opts = RunOptions {
            wan: None,
            preprocess: Preprocess::Ahead,
            profile: false,
        };
        let r = private_inference_with(&model, &w, &x, batch, &cfg, &opts).expect("runs");
        assert_eq!(r.stats, predicted.comm_stats(), "{name}: online cost");
        assert_eq!(
            r.key_bytes_per_party, predicted.key_bytes,
            "{name}: key bytes"
        );
    }
}

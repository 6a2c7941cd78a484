//! temporary
use ariann_nn::{Config, plan, zoo};
#[test]
fn plan_time() {
    for (name, b) in [("resnet18", 4), ("vgg16", 32), ("alexnet_note", 128), ("lenet", 128)] {
        let (m, _, _) = zoo::by_name(name).unwrap();
        let m = m.fold_batchnorm_architecture();
        let t = std::time::Instant::now();
        let p = plan(&m, b, &Config::default()).unwrap();
        eprintln!("{name} b{b}: {} gates in {:.3} s", p.gates.len(), t.elapsed().as_secs_f64());
    }
}

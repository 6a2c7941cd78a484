//! A mutation harness for the JSON decoders that read outsiders' input: model
//! descriptions (`Model::from_json`, what `--model-json` and the daemons
//! read) and plans (`plan_json::from_json`, what `ariann-dealer keys --plan`
//! reads). Each valid document is mutated many times (bit flips, deleted
//! and duplicated ranges, numbers replaced by edge values); every mutant
//! must be refused with an error or accepted as a document that is valid
//! all the way through (shapes, parameters, plan costs, a JSON round trip):
//! never a panic. The run prints its counts; `ARIANN_MUTATIONS=N` raises the
//! number of mutants per document (the CI run uses the default).

use ariann_dealer::plan_json;
use ariann_nn::{Config, Model, zoo};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::panic::{AssertUnwindSafe, catch_unwind};

const EDGE_NUMBERS: [&str; 8] = [
    "0",
    "1",
    "-1",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "1e308",
    "65536",
];

fn mutants_per_doc() -> usize {
    std::env::var("ARIANN_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

/// One random mutation of `doc`.
fn mutate(doc: &str, rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut b = doc.as_bytes().to_vec();
    if b.is_empty() {
        return b;
    }
    match rng.random_range(0..5) {
        0 => {
            let i = rng.random_range(0..b.len());
            b[i] ^= 1 << rng.random_range(0..8);
        }
        1 => {
            let i = rng.random_range(0..b.len());
            let j = (i + rng.random_range(1..16)).min(b.len());
            b.drain(i..j);
        }
        2 => {
            let i = rng.random_range(0..b.len());
            let j = (i + rng.random_range(1..64)).min(b.len());
            let copy = b[i..j].to_vec();
            let at = rng.random_range(0..b.len());
            b.splice(at..at, copy);
        }
        _ => {
            // Replace the n-th number by an edge value.
            let starts: Vec<usize> = (0..b.len())
                .filter(|&i| b[i].is_ascii_digit() && (i == 0 || !b[i - 1].is_ascii_digit()))
                .collect();
            if let Some(&i) = starts.get(rng.random_range(0..starts.len().max(1))) {
                let mut j = i;
                while j < b.len() && b[j].is_ascii_digit() {
                    j += 1;
                }
                let v = EDGE_NUMBERS[rng.random_range(0..EDGE_NUMBERS.len())];
                b.splice(i..j, v.bytes());
            }
        }
    }
    b
}

#[derive(Default, Debug)]
struct Counts {
    tries: usize,
    refused: usize,
    accepted: usize,
}

/// Everything a daemon or the dealer does with an accepted model
/// description before any key is made.
fn use_model(m: &Model) {
    let _ = m.parameters();
    let _ = m.input_len();
    let again = Model::from_json(&m.to_json()).expect("an accepted model round-trips");
    assert_eq!(&again, m, "round trip changed the model");
    // A plan of a huge model is refused or traced, never a panic; keep the
    // run fast by tracing only models of a sane size.
    let elems: usize = m
        .shapes()
        .expect("accepted models have shapes")
        .iter()
        .map(|s| s.iter().product::<usize>())
        .sum();
    if elems <= 1 << 16 {
        let _ = ariann_nn::plan(m, 1, &Config::default());
    }
}

fn use_plan(p: &ariann_dealer::Plan) {
    let _ = p.hash();
    let _ = ariann_mpc::plan_cost(&p.gates, p.ring_bits);
    let again = plan_json::from_json(&plan_json::to_json(p)).expect("round trip");
    assert_eq!(again.hash(), p.hash());
}

fn run(docs: &[String], what: &str, check: impl Fn(&str) -> bool) -> Counts {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed);
    let mut c = Counts::default();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for doc in docs {
        for _ in 0..mutants_per_doc() {
            let m = mutate(doc, &mut rng);
            let Ok(text) = String::from_utf8(m) else {
                c.tries += 1;
                c.refused += 1;
                continue;
            };
            c.tries += 1;
            match catch_unwind(AssertUnwindSafe(|| check(&text))) {
                Ok(true) => c.accepted += 1,
                Ok(false) => c.refused += 1,
                Err(_) => {
                    std::panic::set_hook(hook);
                    // Re-run outside the silent hook to show the panic.
                    let _ = check(&text);
                    panic!("{what}: a mutant panicked:\n{text}");
                }
            }
        }
    }
    std::panic::set_hook(hook);
    println!("{what}: {c:?}");
    c
}

#[test]
fn mutated_model_descriptions_never_panic() {
    let docs: Vec<String> = ["network1", "lenet5", "resnet20", "alexnet"]
        .iter()
        .map(|n| zoo::by_name(n).expect("zoo model").0.to_json())
        .collect();
    let c = run(&docs, "model JSON", |t| match Model::from_json(t) {
        Ok(m) => {
            use_model(&m);
            true
        }
        Err(_) => false,
    });
    assert!(
        c.refused > c.tries / 4,
        "{c:?}: most mutants must be refused"
    );
}

#[test]
fn mutated_plans_never_panic() {
    let cfg = Config::default();
    let docs: Vec<String> = ["network1", "lenet5"]
        .iter()
        .map(|n| {
            let (m, _, _) = zoo::by_name(n).expect("zoo model");
            plan_json::to_json(&ariann_nn::plan(&m, 2, &cfg).expect("plan"))
        })
        .collect();
    let c = run(&docs, "plan JSON", |t| match plan_json::from_json(t) {
        Ok(p) => {
            use_plan(&p);
            true
        }
        Err(_) => false,
    });
    assert!(
        c.refused > c.tries / 4,
        "{c:?}: most mutants must be refused"
    );
}

/// The overflow the security review found: an input shape whose product
/// wraps (2^32 x 2^32 would flatten to 0) is refused with an error naming
/// it, by the model, its plan and a job's input size, never accepted as an
/// empty input.
#[test]
fn an_input_shape_whose_size_overflows_is_refused() {
    let json = r#"{"name":"wrap","input":[4294967296,4294967296],
        "layers":[{"type":"Flatten"},{"type":"Linear","name":"fc","inp":0,"out":2}]}"#;
    let refused = match Model::from_json(json) {
        Err(_) => true,
        Ok(m) => {
            let shapes = m.shapes();
            let plan = ariann_nn::plan(&m, 1, &Config::default());
            assert!(shapes.is_err() && plan.is_err(), "{shapes:?}");
            let e = plan.expect_err("plan").to_string();
            assert!(
                e.contains("overflow") || e.contains("4294967296"),
                "the error names the cause: {e}"
            );
            true
        }
    };
    assert!(refused);
}

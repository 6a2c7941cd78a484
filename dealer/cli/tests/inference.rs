//! Key files in a real private inference: the dealer writes both parties'
//! files, each party reads its own through a `KeyFileSource`, and the output
//! equals the fixed-point cleartext bit for bit (and the run with in-memory
//! bundles of the same seed).

use ariann_dealer::auth::{DealerSigningKey, KeyTrust};
use ariann_dealer::keyfile::{Expected, KeyFileError, KeyFileSource, write_key_files};
use ariann_dealer::ledger::Ledger;
use ariann_fss::Party;
use ariann_mpc::{MemTransport, PreprocessingSource, Session, VecSource};
use ariann_nn::layers::Linear;
use ariann_nn::{
    Config, Layer, Model, Weights, encode_input, forward_fixed, forward_private, plan,
    share_weights, zoo,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

fn tiny_mlp() -> Model {
    Model {
        name: "tiny MLP".into(),
        input: vec![12],
        layers: vec![
            Layer::Linear(Linear {
                name: "fc1".into(),
                inp: 12,
                out: 8,
                bias: true,
            }),
            Layer::Relu,
            Layer::Linear(Linear {
                name: "fc2".into(),
                inp: 8,
                out: 3,
                bias: true,
            }),
        ],
    }
}

/// Both parties on threads, each with its own source; reconstructed output.
fn private<S0, S1>(
    model: &Model,
    w: &Weights,
    x: &[f32],
    batch: usize,
    cfg: &Config,
    mut s0: S0,
    mut s1: S1,
) -> Vec<u64>
where
    S0: PreprocessingSource<u64> + Send,
    S1: PreprocessingSource<u64> + Send,
{
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let (w0, w1) = share_weights(model, w, cfg, &mut rng).expect("weights");
    let xe = encode_input(x, cfg).expect("input");
    let x0: Vec<u64> = xe.iter().map(|_| rng.random()).collect();
    let x1: Vec<u64> = xe
        .iter()
        .zip(&x0)
        .map(|(v, a)| v.wrapping_sub(*a))
        .collect();
    let (t0, t1) = MemTransport::pair();
    let (o0, o1) = std::thread::scope(|sc| {
        let h0 = sc.spawn(|| {
            let mut t0 = t0;
            forward_private(
                &mut Session::new(&mut t0, &mut s0),
                model,
                &w0,
                &x0,
                batch,
                cfg,
            )
        });
        let h1 = sc.spawn(|| {
            let mut t1 = t1;
            forward_private(
                &mut Session::new(&mut t1, &mut s1),
                model,
                &w1,
                &x1,
                batch,
                cfg,
            )
        });
        (h0.join().expect("party 0"), h1.join().expect("party 1"))
    });
    let (o0, o1) = (o0.expect("party 0 run"), o1.expect("party 1 run"));
    o0.iter()
        .zip(&o1)
        .map(|(a, b)| a.wrapping_add(*b))
        .collect()
}

fn check(model: Model, batch: usize) {
    let cfg = Config::default();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let w = Weights::random(&model, &mut rng);
    let x: Vec<f32> = (0..batch * model.input_len())
        .map(|_| rng.random_range(0.0..1.0))
        .collect();
    let p = plan(&model, batch, &cfg).expect("plan");
    let dir = tempfile::tempdir().expect("tempdir");
    let key = DealerSigningKey::from_seed(&[0x42; 32]);
    let trust = KeyTrust {
        dealer: key.public(),
        ledger: Ledger::open(&dir.path().join("state")).expect("ledger"),
    };
    let summary = write_key_files::<u64>(&p, dir.path(), &key, |_, _| {}).expect("key files");
    let open = |i: usize, party| {
        KeyFileSource::<u64>::open(
            &summary.paths[i],
            &Expected {
                session: Some(summary.session),
                ..Expected::for_plan(party, &p)
            },
            &trust,
        )
        .expect("open")
    };
    let from_files = private(
        &model,
        &w,
        &x,
        batch,
        &cfg,
        open(0, Party::P0),
        open(1, Party::P1),
    );
    let fixed = forward_fixed(
        &model,
        &w,
        &encode_input(&x, &cfg).expect("input"),
        batch,
        &cfg,
    )
    .expect("fixed");
    assert_eq!(
        from_files, fixed,
        "{}: private output from key files",
        model.name
    );
    // The same job with in-memory bundles.
    let (mut b0, mut b1) = (Vec::new(), Vec::new());
    for pair in p.bundles_from_seed::<u64>([5; 32]).expect("ring") {
        let (a, b) = pair.expect("gate");
        b0.push(a);
        b1.push(b);
    }
    let in_memory = private(
        &model,
        &w,
        &x,
        batch,
        &cfg,
        VecSource::new(b0),
        VecSource::new(b1),
    );
    assert_eq!(from_files, in_memory);
    // The files are spent.
    assert!(matches!(
        KeyFileSource::<u64>::open(
            &summary.paths[0],
            &Expected::for_plan(Party::P0, &p),
            &trust
        ),
        Err(KeyFileError::AlreadyUsed { .. })
    ));
}

#[test]
fn tiny_mlp_from_key_files_equals_fixed_point() {
    check(tiny_mlp(), 3);
}

#[test]
fn network1_batch_2_from_key_files_equals_fixed_point() {
    check(zoo::network1(), 2);
}

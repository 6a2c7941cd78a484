//! A job between two parties on threads (in-memory transport, keys in
//! memory): the revealed output equals the fixed-point cleartext run, only
//! the named party sees it, and mismatched jobs fail before any data moves.

use ariann_fss::Party;
use ariann_mpc::{MemTransport, VecSource, run_two_party};
use ariann_nn::layers::{Conv2d, Linear, MaxPool2d};
use ariann_nn::{Layer, Model, Weights, decode_output, encode_input, forward_fixed};
use ariann_party::{Asset, Config, Job, PartyError, run_job, run_job_batches};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A small CNN with ReLU and max-pool.
fn model() -> Model {
    Model {
        name: "tiny-cnn".into(),
        input: vec![1, 6, 6],
        layers: vec![
            Layer::Conv2d(Conv2d {
                name: "conv".into(),
                c: 1,
                oc: 3,
                k: 3,
                stride: 1,
                pad: 1,
                bias: true,
            }),
            Layer::MaxPool2d(MaxPool2d {
                k: 2,
                stride: 2,
                pad: 0,
            }),
            Layer::Relu,
            Layer::Flatten,
            Layer::Linear(Linear {
                name: "fc".into(),
                inp: 27,
                out: 4,
                bias: true,
            }),
        ],
    }
}

fn keys(job: &Job, seed: u8) -> (VecSource<u64>, VecSource<u64>) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for pair in job
        .plan()
        .expect("plan")
        .bundles_from_seed::<u64>([seed; 32])
        .expect("ring")
    {
        let (x, y) = pair.expect("gate");
        a.push(x);
        b.push(y);
    }
    (VecSource::new(a), VecSource::new(b))
}

fn setup(batch: usize, output_to: Party) -> (Job, Weights, Vec<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let m = model();
    let w = Weights::random(&m, &mut rng);
    let x: Vec<f32> = (0..batch * m.input_len())
        .map(|_| rng.random_range(0.0..1.0))
        .collect();
    let job = Job {
        model: m,
        batch,
        batches: 1,
        cfg: Config::default(),
        output_to,
    };
    (job, w, x)
}

#[test]
fn output_is_revealed_to_the_named_party_only() {
    for (to, weights_at) in [
        (Party::P1, Party::P0),
        (Party::P0, Party::P0),
        (Party::P0, Party::P1),
    ] {
        let (job, w, x) = setup(3, to);
        let expect = decode_output(
            &forward_fixed(
                &job.model,
                &w,
                &encode_input(&x, &job.cfg).expect("enc"),
                3,
                &job.cfg,
            )
            .expect("fixed"),
            &job.cfg,
        );
        let (mut k0, mut k1) = keys(&job, 1);
        let (wa, xa) = (Asset::Weights(w), Asset::Input(x));
        let (a0, a1) = if weights_at == Party::P0 {
            (&wa, &xa)
        } else {
            (&xa, &wa)
        };
        let (o0, o1) = run_two_party(
            |t: &mut MemTransport| run_job(&job, a0, t, &mut k0),
            |t: &mut MemTransport| run_job(&job, a1, t, &mut k1),
        );
        let (o0, o1) = (o0.expect("party 0"), o1.expect("party 1"));
        let (named, other) = if to == Party::P0 { (o0, o1) } else { (o1, o0) };
        assert_eq!(named.output.as_deref(), Some(expect.as_slice()));
        assert_eq!(other.output, None, "the other party learns nothing");
        assert!(named.stats.rounds > 3 && named.stats.bytes_sent > 0);
    }
}

#[test]
fn another_job_or_the_same_asset_fails_before_any_data() {
    let (job, w, x) = setup(2, Party::P1);
    let other = Job {
        batch: 3,
        ..job.clone()
    };
    let (mut k0, _) = keys(&job, 2);
    let (_, mut k1) = keys(&other, 2);
    let x3: Vec<f32> = x.iter().chain(&x[..36]).copied().collect();
    let (o0, o1) = run_two_party(
        |t: &mut MemTransport| run_job(&job, &Asset::Weights(w.clone()), t, &mut k0),
        |t: &mut MemTransport| run_job(&other, &Asset::Input(x3.clone()), t, &mut k1),
    );
    for o in [o0, o1] {
        assert!(matches!(o, Err(PartyError::JobMismatch { .. })), "{o:?}");
    }

    let (mut k0, mut k1) = keys(&job, 3);
    let (o0, o1) = run_two_party(
        |t: &mut MemTransport| run_job(&job, &Asset::Input(x.clone()), t, &mut k0),
        |t: &mut MemTransport| run_job(&job, &Asset::Input(x.clone()), t, &mut k1),
    );
    for o in [o0, o1] {
        assert!(matches!(o, Err(PartyError::SameAsset("inputs"))), "{o:?}");
    }
}

#[test]
fn bad_local_assets_are_refused_before_anything_is_sent() {
    let (job, w, x) = setup(2, Party::P1);
    let (mut k0, _) = keys(&job, 4);
    let (mut t0, _t1) = MemTransport::pair();
    let r = run_job(&job, &Asset::Input(x[1..].to_vec()), &mut t0, &mut k0);
    assert!(matches!(r, Err(PartyError::Nn(_))), "{r:?}");
    let mut wrong = Weights::new();
    let (s, d) = w.get("fc.weight").expect("present");
    wrong
        .insert("fc.weight", s.to_vec(), d.to_vec())
        .expect("insert");
    let r = run_job(&job, &Asset::Weights(wrong), &mut t0, &mut k0);
    assert!(
        matches!(&r, Err(PartyError::Nn(e)) if e.to_string().contains("conv.weight")),
        "{r:?}"
    );
    use ariann_mpc::Transport;
    assert_eq!(t0.stats().rounds, 0, "nothing was sent");
}

/// A transport that records the longest message it sends.
struct Longest<'a> {
    inner: &'a mut MemTransport,
    max: usize,
}

impl ariann_mpc::Transport for Longest<'_> {
    fn party(&self) -> Party {
        self.inner.party()
    }
    fn exchange(&mut self, msg: &[u8]) -> Result<Vec<u8>, ariann_mpc::MpcError> {
        self.max = self.max.max(msg.len());
        self.inner.exchange(msg)
    }
    fn stats(&self) -> ariann_mpc::CommStats {
        self.inner.stats()
    }
}

#[test]
fn the_message_limit_from_the_plan_covers_every_message() {
    // Sixty batches of five: the input share (one message for all batches)
    // outgrows the 64 KiB floor.
    for (batch, batches) in [(1, 1), (5, 1), (5, 60)] {
        let (mut job, w, _) = setup(batch, Party::P1);
        job.batches = batches;
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let x: Vec<f32> = (0..batch * batches * job.model.input_len())
            .map(|_| rng.random_range(0.0..1.0))
            .collect();
        let plan = job.plan().expect("plan");
        let limit = job.max_message_of(&plan).expect("limit");
        let (mut k0, mut k1) = keys(&job, 2);
        let (a0, a1) = (Asset::Weights(w), Asset::Input(x));
        let (m0, m1) = run_two_party(
            |t: &mut MemTransport| {
                let mut l = Longest { inner: t, max: 0 };
                run_job(&job, &a0, &mut l, &mut k0).map(|_| l.max)
            },
            |t: &mut MemTransport| {
                let mut l = Longest { inner: t, max: 0 };
                run_job(&job, &a1, &mut l, &mut k1).map(|_| l.max)
            },
        );
        let longest = m0.expect("party 0").max(m1.expect("party 1"));
        assert!(
            longest <= limit,
            "a message of {longest} bytes over the limit {limit}"
        );
        // Not a vacuous bound: the tiny model's limit is its 64 KiB floor.
        assert!(limit <= (64 << 10).max(4 * longest), "{limit} vs {longest}");
    }
}

/// A job of three batches: one key stream for all of them (weight masks
/// reused after the first batch), the revealed outputs equal the
/// fixed-point run of each batch, and its digest differs from the
/// one-batch job's, whose plan is the multi-batch plan's first batch.
#[test]
fn a_job_of_several_batches_reuses_weight_masks() {
    let (job, w, _) = setup(2, Party::P1);
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let x: Vec<f32> = (0..3 * 2 * job.model.input_len())
        .map(|_| rng.random_range(0.0..1.0))
        .collect();
    let enc = encode_input(&x, &job.cfg).expect("enc");
    let one = 2 * job.model.input_len();
    let expect: Vec<f64> = (0..3)
        .flat_map(|b| {
            decode_output(
                &forward_fixed(&job.model, &w, &enc[b * one..(b + 1) * one], 2, &job.cfg)
                    .expect("fixed"),
                &job.cfg,
            )
        })
        .collect();
    let plan = job.plan_batches(3).expect("plan");
    let single = job.plan().expect("plan");
    assert_eq!(&plan.gates[..single.gates.len()], single.gates.as_slice());
    assert_eq!(job.plan_batches(1).expect("plan"), single);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for pair in plan.bundles_from_seed::<u64>([4; 32]).expect("ring") {
        let (x, y) = pair.expect("gate");
        a.push(x);
        b.push(y);
    }
    let (mut k0, mut k1) = (VecSource::new(a), VecSource::new(b));
    let (wa, xa) = (Asset::Weights(w), Asset::Input(x));
    let (o0, o1) = run_two_party(
        |t: &mut MemTransport| run_job_batches(&job, 3, &wa, t, &mut k0),
        |t: &mut MemTransport| run_job_batches(&job, 3, &xa, t, &mut k1),
    );
    let (o0, o1) = (o0.expect("party 0"), o1.expect("party 1"));
    assert_eq!(o1.output.as_deref(), Some(expect.as_slice()));
    assert_eq!(o0.output, None);
    assert_eq!((k0.remaining(), k1.remaining()), (0, 0), "every key used");
    // Each batch's traffic: the later ones do not open the weights again.
    for o in [&o0, &o1] {
        let b = &o.batch_stats;
        assert_eq!(b.len(), 3);
        assert!(b[1].bytes_sent < b[0].bytes_sent, "{b:?}");
        assert_eq!(b[1], b[2], "later batches cost the same");
        assert!(b.iter().map(|s| s.bytes_sent).sum::<u64>() <= o.stats.bytes_sent);
    }
    // The same job as a `Job` of three batches: the same plan and outputs.
    let job3 = Job {
        batches: 3,
        ..job.clone()
    };
    assert_eq!(job3.plan().expect("plan"), plan);
    assert_ne!(job3.digest().expect("d"), job.digest().expect("d"));
    let none = Job {
        batches: 0,
        ..job.clone()
    };
    assert!(
        matches!(none.plan(), Err(PartyError::EmptyJob { batches: 0, .. })),
        "a job of no batch"
    );
    // A peer running the one-batch job is refused before any data moves.
    let Asset::Input(x) = xa else { unreachable!() };
    let x1 = Asset::Input(x[..one].to_vec());
    let (mut k0, _) = keys(&job, 1);
    let (_, mut k1) = keys(&job, 1);
    let (o0, o1) = run_two_party(
        |t: &mut MemTransport| run_job_batches(&job, 3, &wa, t, &mut k0),
        |t: &mut MemTransport| run_job(&job, &x1, t, &mut k1),
    );
    assert!(matches!(o0, Err(PartyError::JobMismatch { .. })), "{o0:?}");
    assert!(matches!(o1, Err(PartyError::JobMismatch { .. })), "{o1:?}");
}

//! A training job between two parties on threads (in-memory transport,
//! keys streamed from a dealer thread): the trained parameters equal the
//! same job on the cleartext fixed-point backend bit for bit, only the named
//! party learns them, and a job that differs in any hyper-parameter is
//! refused after the hello alone.

mod common;
use ariann_fss::Party;
use ariann_mpc::{ChannelSource, CommStats, MemTransport, Transport, run_two_party};
use ariann_nn::train::decode_params;
use ariann_nn::{Config, Loss, Optimizer, Params, Rounding, TrainConfig, Weights};
use ariann_party::{
    LrSchedule, PartyError, Reveal, TrainAsset, TrainJob, TrainOutcome, run_training,
};
use common::{model, train_clear, training_set};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::mpsc::sync_channel;
use std::time::Duration;

const SEED: u64 = 11;

fn job(loss: Loss, reveal: Reveal) -> TrainJob {
    TrainJob {
        model: model(),
        batch: 16,
        cfg: Config {
            frac_bits: 20,
            rounding: Rounding::Nearest,
            ..Config::default()
        },
        tcfg: TrainConfig {
            loss,
            momentum: 0.9,
            weight_decay: 5e-4,
            optimizer: ariann_nn::Optimizer::Sgd,
        },
        epochs: 2,
        // 4 steps per epoch, 8 images dropped each epoch.
        images: 72,
        lr: LrSchedule {
            lr: 0.1,
            step_epochs: Some(1),
            gamma: 0.5,
        },
        reveal,
    }
}

/// Runs `job` with the model owner at `owner`; keys from a dealer thread.
fn run(
    job0: &TrainJob,
    job1: &TrainJob,
    owner: Party,
    w: &Weights,
    data: &(Vec<f32>, Vec<usize>),
) -> [(Result<TrainOutcome, PartyError>, CommStats, usize); 2] {
    let plan = job0.plan().expect("plan");
    assert_eq!(plan.hash(), job0.plan_hash().expect("hash"));
    let (tx0, rx0) = sync_channel(2);
    let (tx1, rx1) = sync_channel(2);
    let wa = TrainAsset::ModelOwner(w.clone());
    let da = TrainAsset::DataOwner {
        images: data.0.clone(),
        labels: data.1.clone(),
        shuffle_seed: Some(SEED),
    };
    let (a0, a1) = if owner == Party::P0 {
        (&wa, &da)
    } else {
        (&da, &wa)
    };
    let timeout = Duration::from_secs(60);
    std::thread::scope(|s| {
        let plan = &plan;
        s.spawn(move || {
            for pair in plan.bundles_from_seed::<u64>([9; 32]).expect("ring") {
                let (a, b) = pair.expect("gate");
                if tx0.send(a).is_err() || tx1.send(b).is_err() {
                    return;
                }
            }
        });
        let (r0, r1) = run_two_party(
            |t: &mut MemTransport| {
                let mut src = ChannelSource::new(rx0, timeout);
                let mut seen = Vec::new();
                let mut t = Longest { inner: t, max: 0 };
                let r = run_training(job0, a0, &mut t, &mut src, |p| seen.push((p.epoch, p.step)));
                if r.is_ok() {
                    // Every epoch announced, then each of its steps.
                    let want: Vec<_> = (0..2).flat_map(|e| (0..=4).map(move |s| (e, s))).collect();
                    assert_eq!(seen, want);
                }
                (r, t.stats(), t.max)
            },
            |t: &mut MemTransport| {
                let mut src = ChannelSource::new(rx1, timeout);
                let mut t = Longest { inner: t, max: 0 };
                let r = run_training(job1, a1, &mut t, &mut src, |_| {});
                (r, t.stats(), t.max)
            },
        );
        [r0, r1]
    })
}

/// A transport that records the longest message it sends.
struct Longest<'a> {
    inner: &'a mut MemTransport,
    max: usize,
}

impl Transport for Longest<'_> {
    fn party(&self) -> Party {
        self.inner.party()
    }
    fn exchange(&mut self, msg: &[u8]) -> Result<Vec<u8>, ariann_mpc::MpcError> {
        self.max = self.max.max(msg.len());
        self.inner.exchange(msg)
    }
    fn stats(&self) -> CommStats {
        self.inner.stats()
    }
}

fn fixture() -> (Weights, (Vec<f32>, Vec<usize>)) {
    let m = model();
    let w = Weights::random(&m, &mut ChaCha8Rng::seed_from_u64(3));
    (w, training_set(&m, 72, 4, 5))
}

#[test]
fn trained_weights_equal_the_cleartext_fixed_point_run() {
    let (w, data) = fixture();
    // Cross-entropy, revealed to the data owner (party 1).
    let j = job(Loss::CrossEntropy, Reveal::To(Party::P1));
    let want = train_clear(&j, &w, &data.0, &data.1, SEED);
    let [(o0, s0, m0), (o1, _, m1)] = run(&j, &j, Party::P0, &w, &data);
    // The link's message limit from the job covers every message sent
    // (and is not a vacuous bound).
    let limit = j
        .max_message_of(&j.step_plan().expect("step plan"))
        .expect("limit");
    let longest = m0.max(m1);
    assert!(
        longest <= limit,
        "a message of {longest} bytes over {limit}"
    );
    assert!(limit <= (64 << 10).max(4 * longest), "{limit} vs {longest}");
    let (o0, o1) = (o0.expect("party 0"), o1.expect("party 1"));
    assert!(
        o0.weights.is_none() && o0.share.is_none(),
        "party 0 learns nothing"
    );
    assert!(o1.share.is_none());
    let got = o1.weights.expect("party 1 gets the weights");
    assert_eq!(got, decode_params(&j.model, &want, &j.cfg).expect("decode"));
    assert_ne!(got, w, "the weights moved");
    assert_eq!((o0.steps, o1.steps), (8, 8));
    assert!(s0.rounds > 8, "{s0:?}");

    // MSE, shares kept, the model owner is party 1.
    let j = job(Loss::Mse, Reveal::Shares);
    let want = train_clear(&j, &w, &data.0, &data.1, SEED);
    let [(o0, _, _), (o1, _, _)] = run(&j, &j, Party::P1, &w, &data);
    let (o0, o1) = (o0.expect("party 0"), o1.expect("party 1"));
    assert!(o0.weights.is_none() && o1.weights.is_none());
    let got = Params::reconstruct(&o0.share.expect("share 0"), &o1.share.expect("share 1"))
        .expect("reconstruct");
    assert!(got == want, "shares add up to the cleartext parameters");
}

#[test]
fn any_other_hyper_parameter_is_refused_after_the_hello_alone() {
    let (w, data) = fixture();
    let base = job(Loss::Mse, Reveal::To(Party::P0));
    let others = [
        TrainJob {
            lr: LrSchedule {
                lr: 0.05,
                ..base.lr
            },
            ..base.clone()
        },
        TrainJob {
            tcfg: TrainConfig {
                momentum: 0.5,
                ..base.tcfg
            },
            ..base.clone()
        },
        TrainJob {
            reveal: Reveal::Shares,
            ..base.clone()
        },
        TrainJob {
            lr: LrSchedule {
                gamma: 0.1,
                ..base.lr
            },
            ..base.clone()
        },
    ];
    for other in &others {
        // The plan is the same (keys are accepted): only the digest differs.
        assert_eq!(other.plan_hash().ok(), base.plan_hash().ok());
        let [(r0, s0, _), (r1, s1, _)] = run(&base, other, Party::P0, &w, &data);
        for r in [&r0, &r1] {
            assert!(matches!(r, Err(PartyError::JobMismatch { .. })), "{r:?}");
        }
        // The hello (digest and asset kind) is all that crossed.
        for s in [s0, s1] {
            assert_eq!((s.rounds, s.bytes_sent), (1, 33), "{s:?}");
        }
    }
}

#[test]
fn adam_and_its_hyper_parameters_are_part_of_the_job() {
    let base = job(Loss::Mse, Reveal::To(Party::P0));
    let adam = |beta1: f64, eps: f64| TrainJob {
        tcfg: TrainConfig {
            optimizer: Optimizer::Adam {
                beta1,
                beta2: 0.999,
                eps,
            },
            ..base.tcfg
        },
        ..base.clone()
    };
    let digest = |j: &TrainJob| j.digest().expect("digest");
    let plan = |j: &TrainJob| j.plan_hash().expect("plan hash");
    let a = adam(0.9, 1e-8);
    assert_ne!(digest(&a), digest(&base));
    assert_ne!(plan(&a), plan(&base), "Adam's gates");
    // beta1 is public per step (no key): the same plan, another job.
    assert_eq!(plan(&a), plan(&adam(0.8, 1e-8)));
    assert_ne!(digest(&a), digest(&adam(0.8, 1e-8)));
    // eps is in the recip_sqrt spline's key.
    assert_ne!(plan(&a), plan(&adam(0.9, 1e-3)));
    assert!(adam(1.0, 1e-8).check().is_err());
}

#[test]
fn invalid_jobs_and_assets_are_refused_before_anything_is_sent() {
    let (w, data) = fixture();
    let j = job(Loss::CrossEntropy, Reveal::To(Party::P1));
    let (mut t0, _t1) = MemTransport::pair();
    let (_tx, rx) = sync_channel(1);
    let mut src = ChannelSource::<u64>::new(rx, Duration::from_secs(1));
    let mut bad_labels = data.1.clone();
    bad_labels[3] = 4;
    let cases = [
        (
            TrainJob {
                batch: 12,
                ..j.clone()
            },
            TrainAsset::ModelOwner(w.clone()),
            "power of two",
        ),
        (
            TrainJob {
                images: 8,
                ..j.clone()
            },
            TrainAsset::ModelOwner(w.clone()),
            "no batch",
        ),
        (
            TrainJob {
                tcfg: TrainConfig {
                    momentum: 1.5,
                    ..j.tcfg
                },
                ..j.clone()
            },
            TrainAsset::ModelOwner(w.clone()),
            "momentum",
        ),
        (
            j.clone(),
            TrainAsset::DataOwner {
                images: data.0.clone(),
                labels: bad_labels,
                shuffle_seed: None,
            },
            "label 4 of image 3",
        ),
        (
            j.clone(),
            TrainAsset::DataOwner {
                images: data.0[1..].to_vec(),
                labels: data.1.clone(),
                shuffle_seed: None,
            },
            "input has",
        ),
        (
            j.clone(),
            TrainAsset::ModelOwner(Weights::new()),
            "missing parameter",
        ),
    ];
    for (job, asset, want) in cases {
        let r = run_training(&job, &asset, &mut t0, &mut src, |_| {});
        assert!(
            matches!(&r, Err(PartyError::Nn(e)) if e.to_string().contains(want)),
            "{want}: {r:?}"
        );
    }
    assert_eq!(t0.stats().rounds, 0, "nothing was sent");
}

//! The three gate backends agree: one program calling every gate kind runs
//! on the cleartext backend, on the recorder and privately (two parties,
//! keys generated from the recorder's trace). The private outputs
//! reconstruct to the cleartext ones, the recorder returns placeholders of
//! the same sizes, and the gates the sessions consume are the recorded plan.

use ariann_fss::Party;
use ariann_mpc::bundle::generate_bundles;
use ariann_mpc::gates::batchnorm::BatchNormShape;
use ariann_mpc::gates::beaver::Bilinear;
use ariann_mpc::gates::pool::PoolShape;
use ariann_mpc::gates::spline::SplineFn;
use ariann_mpc::{
    Clear, GateDesc, Gates, MemTransport, MpcError, Recorder, Session, Tracing, VecSource,
    run_two_party,
};
use ariann_ring::RingTensor;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const POOL: PoolShape = PoolShape {
    n: 1,
    c: 2,
    h: 5,
    w: 5,
    k: 3,
    stride: 2,
    pad: 1,
};

/// The inputs of [`program`]: `v` (50 activations at 16 fractional bits),
/// `z` (12 small integers, with ties and zeros), `w` (a 6 x 3 matrix),
/// `gamma`, `beta` (one channel of a batch-norm).
struct Inputs {
    v: Vec<u64>,
    z: Vec<u64>,
    w: Vec<u64>,
    gamma: Vec<u64>,
    beta: Vec<u64>,
}

/// Every gate kind once, plus the local operations.
fn program(g: &mut dyn Gates<u64>, i: &Inputs) -> Result<Vec<Vec<u64>>, MpcError> {
    let mut out = Vec::new();
    let x = RingTensor::from_vec(&[2, 6], i.v[..12].to_vec())?;
    let w = RingTensor::from_vec(&[6, 3], i.w.clone())?;
    let prod = g.bilinear(Bilinear::MatMul { m: 2, k: 6, n: 3 }, &x, &w)?;
    out.push(prod.to_vec());
    out.push(g.truncate(prod.as_slice(), 16, 60)?);
    let r = g.relu(&i.v, 32)?;
    out.push(r.relu);
    out.push(r.drelu);
    out.push(g.drelu(&i.z, 8)?);
    out.push(g.eq_zero(&i.z, 8)?);
    let p = g.max_pool(&i.v, POOL, 32)?;
    out.push(p.max);
    out.extend(p.selections);
    let q = g.max_pool_one_hot(&i.v, POOL, 32)?;
    out.push(q.max);
    out.extend(q.selections);
    let bn = BatchNormShape {
        n: 2,
        c: 1,
        h: 5,
        w: 5,
    };
    let b = g.batch_norm(&i.v, bn, &i.gamma, &i.beta, 1e-5)?;
    out.push(b.y);
    out.push(b.centered);
    out.push(b.inv_std);
    out.push(g.argmax(&i.z, 3, 4, 16)?);
    // The small-key gates: the same outputs with smaller keys.
    let rs = g.relu_small(&i.v, 32)?;
    out.push(rs.relu);
    out.push(rs.drelu);
    out.push(g.trunc_relu(prod.as_slice(), 16, 32)?);
    out.push(g.trunc_relu(&i.v, 8, 24)?);
    let ps = g.max_pool_small(&i.v, POOL, 32)?;
    out.push(ps.max);
    out.extend(ps.selections);
    out.push(g.argmax_small(&i.z, 3, 4, 16)?);
    // Softmax pieces: e^(v - 6) (v < 6), then 1/s of 1 + (sums of 5 of them).
    let u = g.add_public(&i.v, &vec![(-6i64 << 16) as u64; i.v.len()])?;
    let e = g.spline(SplineFn::Exp { f: 16 }, &u, 40)?;
    let e16 = g.truncate(&e, 16, 40)?;
    let sums: Vec<u64> = e16
        .chunks(5)
        .map(|c| c.iter().fold(0, |a: u64, v| a.wrapping_add(*v)))
        .collect();
    let sums = g.add_public(&sums, &vec![1 << 16; sums.len()])?;
    out.push(e);
    out.push(g.spline(SplineFn::Recip { f: 16, max: 10 }, &sums, 40)?);
    // Training products: forward, then backward (which consumes no key).
    let map = Bilinear::MatMul { m: 2, k: 6, n: 3 };
    let (tz, tape) = g.bilinear_train(map, &x, &w, true)?;
    out.push(tz.to_vec());
    let dz = RingTensor::from_vec(&[2, 3], i.v[12..18].to_vec())?;
    let (dx, dw) = g.bilinear_backward(tape, &dz, &w)?;
    let dx = dx.ok_or_else(|| MpcError::InvalidParameter("dx was asked for".into()))?;
    out.push(dx.to_vec());
    out.push(dw.to_vec());
    let map = Bilinear::Mul { len: 6 };
    let a = RingTensor::from_vec(&[6], i.v[20..26].to_vec())?;
    let b = RingTensor::from_vec(&[6], i.w[..6].to_vec())?;
    let (tz, tape) = g.bilinear_train(map, &a, &b, false)?;
    out.push(tz.to_vec());
    let (dx, db) =
        g.bilinear_backward(tape, &RingTensor::from_vec(&[6], i.v[30..36].to_vec())?, &b)?;
    if dx.is_some() {
        return Err(MpcError::InvalidParameter("dx was not asked for".into()));
    }
    out.push(db.to_vec());
    // Local operations.
    let c: Vec<u64> = (0..12).collect();
    out.push(g.add_public(&i.z, &c)?);
    out.push(g.mul_public(&i.z, 3));
    out.push(g.window_sums(&i.v, &POOL)?);
    Ok(out)
}

fn inputs(rng: &mut ChaCha8Rng) -> Inputs {
    let f = |v: f64| (v * 65536.0).round() as i64 as u64;
    Inputs {
        v: (0..50).map(|_| f(rng.random_range(-6.0..6.0))).collect(),
        z: (0..12)
            .map(|_| rng.random_range(-2i64..=2) as u64)
            .collect(),
        w: (0..18).map(|_| f(rng.random_range(-1.0..1.0))).collect(),
        gamma: vec![f(rng.random_range(0.5..1.5))],
        beta: vec![f(rng.random_range(-1.0..1.0))],
    }
}

fn split(x: &[u64], rng: &mut ChaCha8Rng) -> (Vec<u64>, Vec<u64>) {
    let a: Vec<u64> = x.iter().map(|_| rng.random()).collect();
    let b = x.iter().zip(&a).map(|(x, a)| x.wrapping_sub(*a)).collect();
    (a, b)
}

fn run_all(seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let clear_in = inputs(&mut rng);
    let clear = program(&mut Clear::new(), &clear_in).expect("clear");

    let mut rec = Recorder::new();
    let placeholders = program(&mut rec, &clear_in).expect("recorder");
    let sizes = |o: &[Vec<u64>]| o.iter().map(Vec::len).collect::<Vec<_>>();
    assert_eq!(sizes(&placeholders), sizes(&clear), "placeholder sizes");
    let plan: Vec<GateDesc> = rec.into_gates();
    assert_eq!(plan.len(), 19, "one gate per keyed call");

    let (mut b0, mut b1) = (Vec::new(), Vec::new());
    for (i, g) in plan.iter().enumerate() {
        let (a, b) = generate_bundles::<u64, _>(i as u64, *g, &mut rng).expect("keys");
        b0.push(a);
        b1.push(b);
    }
    let mut parts = [(); 5].map(|_| (Vec::new(), Vec::new()));
    for (k, v) in [
        &clear_in.v,
        &clear_in.z,
        &clear_in.w,
        &clear_in.gamma,
        &clear_in.beta,
    ]
    .into_iter()
    .enumerate()
    {
        parts[k] = split(v, &mut rng);
    }
    let share = |p: Party| {
        let pick = |k: usize| match p {
            Party::P0 => parts[k].0.clone(),
            Party::P1 => parts[k].1.clone(),
        };
        Inputs {
            v: pick(0),
            z: pick(1),
            w: pick(2),
            gamma: pick(3),
            beta: pick(4),
        }
    };
    let (i0, i1) = (share(Party::P0), share(Party::P1));
    let (mut s0, mut s1) = (VecSource::new(b0), VecSource::new(b1));
    let party = |t: &mut MemTransport, src: &mut VecSource<u64>, i: &Inputs| {
        let mut tr = Tracing::new(src);
        let out = program(&mut Session::new(t, &mut tr), i).expect("private");
        (out, tr.seen().to_vec())
    };
    let ((o0, seen0), (o1, seen1)) =
        run_two_party(|t| party(t, &mut s0, &i0), |t| party(t, &mut s1, &i1));
    assert_eq!(seen0, plan, "party 0 consumed the recorded plan");
    assert_eq!(seen1, plan, "party 1 consumed the recorded plan");
    for (k, ((a, b), c)) in o0.iter().zip(&o1).zip(&clear).enumerate() {
        let rec: Vec<u64> = a.iter().zip(b).map(|(x, y)| x.wrapping_add(*y)).collect();
        assert_eq!(&rec, c, "output {k}: private reconstructs to cleartext");
    }
}

#[test]
fn backends_agree_on_every_gate_kind() {
    run_all(1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]
    #[test]
    fn backends_agree_on_random_inputs(seed in any::<u64>()) {
        run_all(seed);
    }

}

//! A small fixed-point network layer run through sessions (bundles consumed
//! in order), against cleartext; and every bundle mismatch refused before
//! anything is opened.

use ariann_fss::Party;
use ariann_mpc::bundle::generate_bundles;
use ariann_mpc::gates::beaver::Bilinear;
use ariann_mpc::{
    BundleTag, GateDesc, MpcError, PreprocessingSource, Session, VecSource, run_two_party,
};
use ariann_ring::{FixedPoint, RingTensor, reconstruct, share};
use ndarray::ArrayD;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn plan_bundles(plan: &[GateDesc], rng: &mut ChaCha8Rng) -> (VecSource<u64>, VecSource<u64>) {
    let mut b0 = Vec::new();
    let mut b1 = Vec::new();
    for (i, g) in plan.iter().enumerate() {
        let (a, b) = generate_bundles::<u64, _>(i as u64, *g, rng).expect("valid gate");
        b0.push(a);
        b1.push(b);
    }
    (VecSource::new(b0), VecSource::new(b1))
}

/// y = ReLU(trunc(x W)) followed by argmax, in fixed point with 16 fractional bits.
#[test]
fn linear_relu_argmax_matches_cleartext() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let fp = FixedPoint::new(16);
    let (b, i, o) = (4usize, 20usize, 10usize);
    let xf = ArrayD::from_shape_fn(vec![b, i], |_| rng.random_range(-1.0..1.0));
    let wf = ArrayD::from_shape_fn(vec![i, o], |_| rng.random_range(-0.5..0.5));
    let x = fp.encode_tensor::<u64>(&xf).expect("in range");
    let w = fp.encode_tensor::<u64>(&wf).expect("in range");
    let map = Bilinear::MatMul { m: b, k: i, n: o };
    let plan = [
        GateDesc::Triple(map),
        GateDesc::Trunc {
            m: b * o,
            f: 16,
            k: 48,
        },
        GateDesc::Relu { m: b * o, k: 32 },
        GateDesc::Argmax {
            rows: b,
            n: o,
            k: 32,
        },
    ];
    let (mut s0, mut s1) = plan_bundles(&plan, &mut rng);
    let (x0, x1) = share(&x, &mut rng);
    let (w0, w1) = share(&w, &mut rng);
    let run = |src: &mut VecSource<u64>,
               t: &mut ariann_mpc::MemTransport,
               xs: &RingTensor<u64>,
               ws: &RingTensor<u64>| {
        let mut s = Session::new(t, src);
        let z = s.bilinear(map, xs, ws)?;
        let z = s.truncate(z.as_slice(), 16, 48)?;
        let r = s.relu(&z, 32)?;
        let a = s.argmax(&r.relu, b, o, 32)?;
        Ok::<_, MpcError>((r.relu, a))
    };
    let (r0, r1) = run_two_party(|t| run(&mut s0, t, &x0, &w0), |t| run(&mut s1, t, &x1, &w1));
    let ((y0, a0), (y1, a1)) = (r0.expect("p0"), r1.expect("p1"));
    let y = reconstruct(
        &RingTensor::from_vec(&[b * o], y0).expect("len"),
        &RingTensor::from_vec(&[b * o], y1).expect("len"),
    )
    .expect("same shape");
    // Cleartext in the same fixed-point arithmetic: exact floor truncation.
    let z = x.matmul(&w).expect("shapes").sar(16);
    for (got, z) in y.as_slice().iter().zip(z.as_slice()) {
        assert_eq!(*got, (*z as i64).max(0) as u64);
    }
    for r in 0..b {
        let row: Vec<i64> = (0..o).map(|j| y.as_slice()[r * o + j] as i64).collect();
        let best = row.iter().copied().max().expect("o > 0");
        let first = row.iter().position(|v| *v == best).expect("present");
        for j in 0..o {
            let bit = a0[r * o + j].wrapping_add(a1[r * o + j]);
            assert_eq!(bit, u64::from(j == first));
        }
    }
    assert_eq!(s0.remaining(), 0);
}

#[test]
fn mismatched_bundles_are_refused_before_opening() {
    let mut rng = ChaCha8Rng::seed_from_u64(22);
    let plan = [
        GateDesc::Relu { m: 4, k: 32 },
        GateDesc::Drelu { m: 4, k: 32 },
    ];
    let (mut s0, mut s1) = plan_bundles(&plan, &mut rng);
    // Wrong gate kind at index 0.
    let want = BundleTag {
        index: 0,
        gate: GateDesc::Drelu { m: 4, k: 32 },
    };
    assert!(matches!(
        s0.next_bundle(Party::P0, &want),
        Err(MpcError::BundleMismatch { .. })
    ));
    // Wrong shape.
    let want = BundleTag {
        index: 0,
        gate: GateDesc::Relu { m: 5, k: 32 },
    };
    assert!(matches!(
        s0.next_bundle(Party::P0, &want),
        Err(MpcError::BundleMismatch { .. })
    ));
    // Wrong window.
    let want = BundleTag {
        index: 0,
        gate: GateDesc::Relu { m: 4, k: 31 },
    };
    assert!(matches!(
        s0.next_bundle(Party::P0, &want),
        Err(MpcError::BundleMismatch { .. })
    ));
    // Out of order.
    let want = BundleTag {
        index: 1,
        gate: GateDesc::Drelu { m: 4, k: 32 },
    };
    assert!(matches!(
        s0.next_bundle(Party::P0, &want),
        Err(MpcError::BundleMismatch { .. })
    ));
    // The other party's bundles.
    let want = BundleTag {
        index: 0,
        gate: GateDesc::Relu { m: 4, k: 32 },
    };
    assert!(matches!(
        s1.next_bundle(Party::P0, &want),
        Err(MpcError::WrongParty { .. })
    ));
    // Nothing was consumed by the refusals; the right request succeeds.
    assert_eq!(s0.remaining(), 2);
    assert!(s0.next_bundle(Party::P0, &want).is_ok());
    let want = BundleTag {
        index: 1,
        gate: GateDesc::Drelu { m: 4, k: 32 },
    };
    assert!(s0.next_bundle(Party::P0, &want).is_ok());
    // Exhausted.
    let want = BundleTag {
        index: 2,
        gate: GateDesc::Drelu { m: 4, k: 32 },
    };
    assert!(matches!(
        s0.next_bundle(Party::P0, &want),
        Err(MpcError::KeysExhausted { index: 2 })
    ));

    // Through a session, a mismatch fails before any exchange happens.
    let (mut s0, _s1) = plan_bundles(&plan, &mut rng);
    let (mut t0, _t1) = ariann_mpc::MemTransport::pair();
    let mut sess = Session::new(&mut t0, &mut s0);
    assert!(sess.drelu(&[0u64; 4], 32).is_err());
    assert_eq!(ariann_mpc::Transport::stats(sess.transport()).rounds, 0);
}

/// Independent gates batched into one round: two ReLUs and a truncation.
#[test]
fn independent_gates_share_one_round() {
    use ariann_mpc::gates::cmp::ReluKey;
    use ariann_mpc::gates::trunc::TruncKey;
    use ariann_mpc::{Transport, open_batch};
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    let xs: Vec<i64> = (0..50).map(|_| rng.random_range(-1000..1000)).collect();
    let ys: Vec<i64> = (0..30).map(|_| rng.random_range(-1000..1000)).collect();
    let zs: Vec<i64> = (0..20)
        .map(|_| rng.random_range(-(1 << 30)..(1 << 30)))
        .collect();
    let sh = |v: &[i64], rng: &mut ChaCha8Rng| {
        let a: Vec<u64> = v.iter().map(|_| rng.random()).collect();
        let b: Vec<u64> = v
            .iter()
            .zip(&a)
            .map(|(x, a)| (*x as u64).wrapping_sub(*a))
            .collect();
        (a, b)
    };
    let ((x0, x1), (y0, y1), (z0, z1)) = (sh(&xs, &mut rng), sh(&ys, &mut rng), sh(&zs, &mut rng));
    let (a0, a1) = ReluKey::<u64>::generate(32, 50, &mut rng).expect("valid");
    let (b0, b1) = ReluKey::<u64>::generate(32, 30, &mut rng).expect("valid");
    let (c0, c1) = TruncKey::<u64>::generate(8, 40, 20, &mut rng).expect("valid");
    let run = |t: &mut ariann_mpc::MemTransport,
               a: &ReluKey<u64>,
               b: &ReluKey<u64>,
               c: &TruncKey<u64>,
               x: &[u64],
               y: &[u64],
               z: &[u64]| {
        let (ma, mb, mc) = (a.mask(x)?, b.mask(y)?, c.mask(z)?);
        let opened = open_batch(t, &[(&ma, 64), (&mb, 64), (&mc, 64)])?;
        let out = (
            a.finish(&opened[0])?.relu,
            b.finish(&opened[1])?.relu,
            c.finish(&opened[2])?,
        );
        Ok::<_, MpcError>((out, t.stats().rounds))
    };
    let (r0, r1) = run_two_party(
        |t| run(t, &a0, &b0, &c0, &x0, &y0, &z0),
        |t| run(t, &a1, &b1, &c1, &x1, &y1, &z1),
    );
    let (((p, q, r), rounds), ((p1, q1, r1), _)) = (r0.expect("p0"), r1.expect("p1"));
    assert_eq!(rounds, 1);
    for i in 0..50 {
        assert_eq!(p[i].wrapping_add(p1[i]), xs[i].max(0) as u64);
    }
    for i in 0..30 {
        assert_eq!(q[i].wrapping_add(q1[i]), ys[i].max(0) as u64);
    }
    for i in 0..20 {
        assert_eq!(r[i].wrapping_add(r1[i]), (zs[i] >> 8) as u64);
    }
}

/// A dealer streaming over a bounded channel: bundles arrive in order, a
/// wrong one is refused, and a dealer that stops early means exhausted keys.
#[test]
fn channel_source_streams_and_checks() {
    use ariann_mpc::ChannelSource;
    use std::sync::mpsc::sync_channel;
    use std::time::Duration;
    let mut rng = ChaCha8Rng::seed_from_u64(24);
    let plan = [
        GateDesc::Relu { m: 4, k: 32 },
        GateDesc::Drelu { m: 4, k: 32 },
    ];
    let (tx, rx) = sync_channel(1);
    let mut p1 = Vec::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            for (i, g) in plan.iter().enumerate() {
                let (a, b) = generate_bundles::<u64, _>(i as u64, *g, &mut rng).expect("valid");
                p1.push(b);
                tx.send(a).expect("party listening");
            }
            drop(tx);
        });
        let mut src = ChannelSource::new(rx, Duration::from_secs(30));
        let t0 = BundleTag {
            index: 0,
            gate: plan[0],
        };
        assert!(src.next_bundle(Party::P0, &t0).is_ok());
        let wrong = BundleTag {
            index: 1,
            gate: GateDesc::Relu { m: 4, k: 32 },
        };
        assert!(matches!(
            src.next_bundle(Party::P0, &wrong),
            Err(MpcError::BundleMismatch { .. })
        ));
        let t2 = BundleTag {
            index: 2,
            gate: plan[1],
        };
        assert!(matches!(
            src.next_bundle(Party::P0, &t2),
            Err(MpcError::KeysExhausted { index: 2 })
        ));
    });
    assert_eq!(p1.len(), 2);
}

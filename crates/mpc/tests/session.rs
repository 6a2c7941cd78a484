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

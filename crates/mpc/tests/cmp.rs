//! Comparison gates against the cleartext functions, both parties on threads
//! over the in-memory transport, for both ring widths.

mod common;
use ariann_mpc::gates::cmp::{DreluKey, EqZeroKey, ReluKey};
use ariann_mpc::{MpcError, Transport, run_two_party};
use ariann_ring::Ring;
use common::{add, shares};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Random signed values inside the `k`-bit window plus its edges.
fn window_inputs(k: u32, m: usize, rng: &mut ChaCha8Rng) -> Vec<i64> {
    let half: i128 = 1i128 << (k - 1);
    let lo = -half;
    let hi = half - 1;
    let mut v: Vec<i64> = [0i128, 1, -1, 2, -2, hi, lo, hi - 1, lo + 1]
        .iter()
        .filter(|x| **x >= lo && **x <= hi)
        .map(|x| *x as i64)
        .collect();
    while v.len() < m {
        let r = rng.random::<u64>() as i128;
        let span = (hi - lo + 1) as u128;
        v.push((lo + (r as u128 % span) as i128) as i64);
    }
    v
}

fn check_drelu_relu<R: Ring>(k: u32, m: usize, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let xs = window_inputs(k, m, &mut rng);
    let (x0, x1) = shares::<R>(&xs, &mut rng);

    let (d0, d1) = DreluKey::<R>::generate(k, xs.len(), &mut rng).expect("valid k");
    let (o0, o1) = run_two_party(|t| d0.eval(t, &x0), |t| d1.eval(t, &x1));
    let d = add(&o0.expect("party 0"), &o1.expect("party 1"));
    for (x, d) in xs.iter().zip(&d) {
        assert_eq!(d.to_u64(), u64::from(*x >= 0), "DReLU k={k} x={x}");
    }

    let (r0, r1) = ReluKey::<R>::generate(k, xs.len(), &mut rng).expect("valid k");
    let ((o0, s0), (o1, s1)) = run_two_party(
        |t| (r0.eval(t, &x0), t.stats()),
        |t| (r1.eval(t, &x1), t.stats()),
    );
    let (o0, o1) = (o0.expect("party 0"), o1.expect("party 1"));
    let relu = add(&o0.relu, &o1.relu);
    let drelu = add(&o0.drelu, &o1.drelu);
    for i in 0..xs.len() {
        assert_eq!(relu[i], R::from_i64(xs[i].max(0)), "ReLU k={k} x={}", xs[i]);
        assert_eq!(
            drelu[i].to_u64(),
            u64::from(xs[i] >= 0),
            "ReLU's DReLU k={k}"
        );
    }
    // One round, one ring element per element per party.
    assert_eq!(s0.rounds, 1);
    assert_eq!(s1.rounds, 1);
    assert_eq!(s0.bytes_sent, (xs.len() * R::BITS as usize / 8) as u64);
}

#[test]
fn drelu_and_relu_u64() {
    for (i, k) in [2u32, 3, 8, 17, 32, 41, 63, 64].into_iter().enumerate() {
        check_drelu_relu::<u64>(k, 300, 100 + i as u64);
    }
}

#[test]
fn drelu_and_relu_u32() {
    for (i, k) in [2u32, 5, 16, 31, 32].into_iter().enumerate() {
        check_drelu_relu::<u32>(k, 300, 200 + i as u64);
    }
}

/// Exhaustive over a small window: every x, several fresh masks.
#[test]
fn drelu_exhaustive_small_window() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for k in 2..=8u32 {
        let half = 1i64 << (k - 1);
        let xs: Vec<i64> = (0..8).flat_map(|_| -half..half).collect();
        let (x0, x1) = shares::<u64>(&xs, &mut rng);
        let (d0, d1) = DreluKey::<u64>::generate(k, xs.len(), &mut rng).expect("valid k");
        let (o0, o1) = run_two_party(|t| d0.eval(t, &x0), |t| d1.eval(t, &x1));
        let d = add(&o0.expect("p0"), &o1.expect("p1"));
        for (x, d) in xs.iter().zip(&d) {
            assert_eq!(d.to_u64(), u64::from(*x >= 0), "k={k} x={x}");
        }
    }
}

#[test]
fn equality_with_zero() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for k in [1u32, 8, 32, 64] {
        let mut xs = window_inputs(k.max(2), 200, &mut rng);
        xs.extend([0, 0, 0]);
        let (x0, x1) = shares::<u64>(&xs, &mut rng);
        let (e0, e1) = EqZeroKey::<u64>::generate(k, xs.len(), &mut rng).expect("valid k");
        let (o0, o1) = run_two_party(|t| e0.eval(t, &x0), |t| e1.eval(t, &x1));
        let e = add(&o0.expect("p0"), &o1.expect("p1"));
        let m = if k == 64 { u64::MAX } else { (1u64 << k) - 1 };
        for (x, e) in xs.iter().zip(&e) {
            assert_eq!(e.to_u64(), u64::from((*x as u64) & m == 0), "k={k} x={x}");
        }
    }
}

/// The opened value `x + r` is uniform whatever `x` is: the same chi-square
/// statistic on its low 4 bits for x = 0 and for x = 12345.
#[test]
fn opened_values_are_uniform_and_independent_of_the_secret() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let n = 16_000usize;
    for secret in [0i64, 12345] {
        let xs = vec![secret; n];
        let (x0, x1) = shares::<u64>(&xs, &mut rng);
        let (k0, k1) = ReluKey::<u64>::generate(32, n, &mut rng).expect("valid k");
        let opened = add(&k0.mask(&x0).expect("len"), &k1.mask(&x1).expect("len"));
        let mut counts = [0usize; 16];
        for v in &opened {
            counts[(v.to_u64() >> 60) as usize] += 1;
        }
        let e = n as f64 / 16.0;
        let chi2: f64 = counts.iter().map(|c| (*c as f64 - e).powi(2) / e).sum();
        // 15 degrees of freedom: P(chi2 > 37.7) = 0.001.
        assert!(
            chi2 < 37.7,
            "secret {secret}: chi2 = {chi2}, counts {counts:?}"
        );
    }
}

#[test]
fn bad_inputs_are_errors() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    assert!(matches!(
        DreluKey::<u32>::generate(33, 4, &mut rng),
        Err(MpcError::InvalidParameter(_))
    ));
    assert!(ReluKey::<u64>::generate(1, 4, &mut rng).is_err());
    let (k0, k1) = ReluKey::<u64>::generate(16, 4, &mut rng).expect("valid");
    assert!(matches!(
        k0.mask(&[1, 2, 3]),
        Err(MpcError::SizeMismatch { .. })
    ));
    // A key used by the wrong party is refused before anything is sent.
    let (a, _b) = run_two_party(
        |t| {
            let r = k1.eval(t, &[0, 0, 0, 0]);
            let _ = t.exchange(b"");
            r
        },
        |t| t.exchange(b"").map(|_| ()),
    );
    assert!(matches!(a, Err(MpcError::WrongParty { .. })));
    // A peer that sends a share of the wrong length is an error, not a panic.
    let (a, _) = run_two_party(|t| k0.eval(t, &[0, 0, 0, 0]), |t| t.exchange(&[0u8; 5]));
    assert!(matches!(a, Err(MpcError::WrongLength { .. })));
}

fn check_trunc<R: Ring>(f: u32, k: u32, m: usize, seed: u64) {
    use ariann_mpc::gates::trunc::TruncKey;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let xs = window_inputs(k, m, &mut rng);
    let (x0, x1) = shares::<R>(&xs, &mut rng);
    let (t0, t1) = TruncKey::<R>::generate(f, k, xs.len(), &mut rng).expect("valid params");
    let (o0, o1) = run_two_party(|t| t0.eval(t, &x0), |t| t1.eval(t, &x1));
    let y = add(&o0.expect("p0"), &o1.expect("p1"));
    for (x, y) in xs.iter().zip(&y) {
        assert_eq!(*y, R::from_i64(x >> f), "trunc f={f} k={k} x={x}");
    }
}

#[test]
fn truncation_is_exact() {
    for (i, (f, k)) in [
        (1u32, 2u32),
        (12, 40),
        (16, 48),
        (16, 63),
        (20, 21),
        (30, 62),
    ]
    .into_iter()
    .enumerate()
    {
        check_trunc::<u64>(f, k, 400, 300 + i as u64);
    }
    for (i, (f, k)) in [(1u32, 2u32), (8, 24), (12, 31), (13, 20)]
        .into_iter()
        .enumerate()
    {
        check_trunc::<u32>(f, k, 400, 400 + i as u64);
    }
}

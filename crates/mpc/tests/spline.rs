//! Spline gate against its cleartext function, both ring widths; the
//! accuracy of the named functions ([`SplineFn`]) against `f64`.

use ariann_mpc::gates::spline::{Spline, SplineFn, SplineKey};
use ariann_mpc::{MpcError, Transport, run_two_party};
use ariann_ring::Ring;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn check<R: Ring>(spline: &Spline, k: u32, xs: &[i64], seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let a: Vec<R> = xs.iter().map(|_| R::random(&mut rng)).collect();
    let b: Vec<R> = xs
        .iter()
        .zip(&a)
        .map(|(x, a)| R::from_i64(*x).wsub(*a))
        .collect();
    let (k0, k1) = SplineKey::<R>::generate(spline, k, xs.len(), &mut rng).expect("valid");
    let ((o0, st), (o1, _)) = run_two_party(
        |t| (k0.eval(t, &a), t.stats()),
        |t| (k1.eval(t, &b), t.stats()),
    );
    let (o0, o1) = (o0.expect("p0"), o1.expect("p1"));
    assert_eq!(st.rounds, 1);
    for (i, x) in xs.iter().enumerate() {
        assert_eq!(
            o0[i].wadd(o1[i]),
            spline.eval_clear(R::from_i64(*x)),
            "x = {x}"
        );
    }
}

#[test]
fn relu_as_a_one_knot_spline() {
    let relu = Spline {
        knots: vec![0],
        a: vec![0, 1],
        b: vec![0, 0],
    };
    let xs: Vec<i64> = (-300..300).collect();
    check::<u64>(&relu, 16, &xs, 1);
    check::<u32>(&relu, 16, &xs, 2);
}

#[test]
fn random_splines_on_random_and_knot_inputs() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for round in 0..6u64 {
        let j = rng.random_range(1..12);
        let mut knots: Vec<i64> = (0..j).map(|_| rng.random_range(-5000..5000)).collect();
        knots.sort_unstable();
        knots.dedup();
        let n = knots.len() + 1;
        let spline = Spline {
            a: (0..n).map(|_| rng.random_range(-50..50)).collect(),
            b: (0..n)
                .map(|_| rng.random_range(-100_000..100_000))
                .collect(),
            knots: knots.clone(),
        };
        let mut xs: Vec<i64> = (0..200).map(|_| rng.random_range(-8000..8000)).collect();
        for p in &knots {
            xs.extend([p - 1, *p, p + 1]);
        }
        check::<u64>(&spline, 16, &xs, 10 + round);
        check::<u32>(&spline, 16, &xs, 20 + round);
    }
}

#[test]
fn malformed_splines_are_errors() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let bad = Spline {
        knots: vec![3, 1],
        a: vec![0, 0, 0],
        b: vec![0, 0, 0],
    };
    assert!(SplineKey::<u64>::generate(&bad, 16, 4, &mut rng).is_err());
    let bad = Spline {
        knots: vec![1],
        a: vec![0],
        b: vec![0, 0],
    };
    assert!(SplineKey::<u64>::generate(&bad, 16, 4, &mut rng).is_err());
}

// ------------------------------------------------ named functions (the spline gate)

/// Max absolute error of `exp` over every input of the grid in `[lo, 0]`
/// (step `step`), with where it is.
fn exp_error(f: u32, lo: f64, step: usize) -> (f64, f64) {
    let spline = SplineFn::Exp { f }.spline().expect("valid");
    let s = f64::from(1u32 << f);
    let out = s * s;
    let mut worst = (0.0f64, 0.0f64);
    for x in ((lo * s) as i64..=0).step_by(step) {
        let y = spline.eval_clear(x as u64) as i64 as f64 / out;
        let u = x as f64 / s;
        let e = (y - u.exp()).abs();
        if e > worst.0 {
            worst = (e, u);
        }
    }
    worst
}

/// Max relative error of `recip` over every input of the grid in `[1, max]`
/// (step `step`), with where it is.
fn recip_error(f: u32, max: u32, step: usize) -> (f64, f64) {
    let spline = SplineFn::Recip { f, max }.spline().expect("valid");
    let s = f64::from(1u32 << f);
    let out = s * s;
    let mut worst = (0.0f64, 0.0f64);
    for x in ((1i64 << f)..=(i64::from(max) << f)).step_by(step) {
        let y = spline.eval_clear(x as u64) as i64 as f64 / out;
        let v = x as f64 / s;
        let e = (y * v - 1.0).abs();
        if e > worst.0 {
            worst = (e, v);
        }
    }
    worst
}

#[test]
#[ignore = "measurement for the docs"]
fn measure_errors() {
    for f in [12u32, 16, 20, 24] {
        let step = 1usize << f.saturating_sub(18);
        let (e, at) = exp_error(f, -12.0, step);
        eprintln!("exp f={f}: {e:.3e} = 2^{:.2} at {at}", e.log2());
    }
    for f in [12u32, 16, 20, 24] {
        for max in [2u32, 3, 10, 16, 64, 100, 256, 1000, 1024] {
            if (SplineFn::Recip { f, max }).validate().is_err() {
                continue;
            }
            let span = (u64::from(max) - 1) << f;
            let step = (span / 20_000_000).max(1) as usize;
            let (e, at) = recip_error(f, max, step);
            let j = (SplineFn::Recip { f, max })
                .spline()
                .expect("valid")
                .knots
                .len();
            eprintln!(
                "recip f={f} max={max}: {j} knots, {e:.3e} = 2^{:.2} at {at} (step {step})",
                e.log2()
            );
        }
    }
}

#[test]
fn exp_is_within_2_pow_minus_10_of_f64() {
    for f in [16u32, 20] {
        let (e, at) = exp_error(f, -12.0, 1);
        assert!(e <= 2f64.powi(-10), "exp f = {f}: error {e:e} at {at}");
        // The cut-off and the saturation are exact.
        let spline = SplineFn::Exp { f }.spline().expect("valid");
        assert_eq!(spline.knots.len(), 19);
        let s = 1i64 << f;
        for x in [-(1 << 40), -100 * s, -8 * s] {
            assert_eq!(spline.eval_clear(x as u64), 0);
        }
        for x in [0, 1, s, 1 << 40] {
            assert_eq!(spline.eval_clear(x as u64), 1 << (2 * f));
        }
    }
}

#[test]
fn recip_is_within_2_pow_minus_8_of_f64() {
    for (f, max, step) in [
        (16u32, 2u32, 1usize),
        (16, 3, 1),
        (16, 10, 1),
        (16, 64, 1),
        (20, 10, 1),
        (20, 256, 13),
    ] {
        let (e, at) = recip_error(f, max, step);
        assert!(
            e <= 2f64.powi(-8),
            "recip f = {f}, max = {max}: error {e:e} at {at}"
        );
    }
}

#[test]
fn recip_has_ceil_6_log2_max_plus_1_knots() {
    for max in 2u32..=1024 {
        let spline = SplineFn::Recip { f: 24, max }.spline().expect("valid");
        let want = (6.0 * f64::from(max).log2()).ceil() as usize + 1;
        assert_eq!(spline.knots.len(), want, "max = {max}");
        assert_eq!(spline.knots[0], 1 << 24);
        assert_eq!(spline.knots.last(), Some(&(i64::from(max) << 24)));
    }
}

#[test]
fn invalid_functions_are_refused() {
    let bad = [
        SplineFn::Exp { f: 5 },
        SplineFn::Exp { f: 25 },
        SplineFn::Exp { f: 0 },
        SplineFn::Recip { f: 16, max: 1 },
        SplineFn::Recip { f: 16, max: 0 },
        SplineFn::Recip { f: 16, max: 65 },
        SplineFn::Recip { f: 6, max: 3 },
        SplineFn::Recip { f: 25, max: 2 },
        SplineFn::Recip {
            f: 24,
            max: u32::MAX,
        },
    ];
    for func in bad {
        assert!(
            matches!(func.spline(), Err(MpcError::InvalidParameter(_))),
            "{func}"
        );
    }
}

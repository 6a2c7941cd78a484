//! Spline gate against its cleartext function, both ring widths.

use ariann_mpc::gates::spline::{Spline, SplineKey};
use ariann_mpc::{Transport, run_two_party};
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

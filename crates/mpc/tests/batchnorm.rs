//! Batch-norm (training forward) against a float reference: 9 rounds, and the
//! documented accuracy.

use ariann_mpc::gates::batchnorm::{BatchNormKey, BatchNormShape, inv_sqrt_spline};
use ariann_mpc::{Transport, run_two_party};
use ariann_ring::{FixedPoint, Ring};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The interpolation alone: relative error of the spline against 1/sqrt.
#[test]
fn inverse_sqrt_spline_is_accurate() {
    let sp = inv_sqrt_spline(16);
    let fp = FixedPoint::new(16);
    let mut worst: f64 = 0.0;
    let mut v = 2f64.powi(-8);
    while v < 2f64.powi(8) {
        let got =
            FixedPoint::new(32).decode::<u64>(sp.eval_clear(fp.encode::<u64>(v).expect("range")));
        let want = 1.0 / v.sqrt();
        worst = worst.max((got - want).abs() / want);
        v *= 1.003;
    }
    eprintln!("1/sqrt spline: worst relative error {worst:.2e} on [2^-8, 2^8]");
    assert!(worst < 2e-3, "relative error {worst}");
}

fn shares(v: &[u64], rng: &mut ChaCha8Rng) -> (Vec<u64>, Vec<u64>) {
    let a: Vec<u64> = v.iter().map(|_| rng.random()).collect();
    let b = v.iter().zip(&a).map(|(x, a)| x.wrapping_sub(*a)).collect();
    (a, b)
}

#[test]
fn batchnorm_matches_float_reference_in_nine_rounds() {
    let mut rng = ChaCha8Rng::seed_from_u64(77);
    let fp = FixedPoint::new(16);
    let s = BatchNormShape {
        n: 8,
        c: 3,
        h: 5,
        w: 5,
    };
    let m = s.per_channel();
    // Channel c: mean 2c - 1, spread 0.3 * (c + 1).
    let xf: Vec<f64> = (0..s.len())
        .map(|i| {
            let ch = (i / 25) % 3;
            (2.0 * ch as f64 - 1.0) + 0.3 * (ch as f64 + 1.0) * rng.random_range(-1.7..1.7)
        })
        .collect();
    let gammaf = [1.5, -0.5, 2.0];
    let betaf = [0.1, 0.0, -1.0];
    let eps = 1e-5;
    let enc = |v: &[f64]| {
        v.iter()
            .map(|x| fp.encode::<u64>(*x).expect("range"))
            .collect::<Vec<u64>>()
    };
    let (x0, x1) = shares(&enc(&xf), &mut rng);
    let (g0, g1) = shares(&enc(&gammaf), &mut rng);
    let (b0, b1) = shares(&enc(&betaf), &mut rng);
    let (k0, k1) = BatchNormKey::<u64>::generate(s, &mut rng).expect("valid");
    let ((o0, st), (o1, _)) = run_two_party(
        |t| (k0.eval(t, &x0, &g0, &b0, eps), t.stats()),
        |t| (k1.eval(t, &x1, &g1, &b1, eps), t.stats()),
    );
    let (o0, o1) = (o0.expect("p0"), o1.expect("p1"));
    assert_eq!(st.rounds, 9);
    // Float reference (biased variance, as in training).
    let mut worst: f64 = 0.0;
    for ch in 0..3 {
        let vals: Vec<(usize, f64)> = xf
            .iter()
            .copied()
            .enumerate()
            .filter(|(i, _)| (i / 25) % 3 == ch)
            .collect();
        let mean = vals.iter().map(|v| v.1).sum::<f64>() / m as f64;
        let var = vals.iter().map(|v| (v.1 - mean).powi(2)).sum::<f64>() / m as f64;
        for (i, x) in &vals {
            let want = gammaf[ch] * (x - mean) / (var + eps).sqrt() + betaf[ch];
            let got = fp.decode::<u64>(o0.y[*i].wadd(o1.y[*i]));
            worst = worst.max((got - want).abs());
        }
        let inv = FixedPoint::new(32).decode::<u64>(o0.inv_std[ch].wadd(o1.inv_std[ch]));
        let rel = (inv - 1.0 / (var + eps).sqrt()).abs() * (var + eps).sqrt();
        assert!(rel < 2e-3, "channel {ch}: 1/std relative error {rel}");
    }
    eprintln!("batch-norm: worst |private - float| = {worst:.2e}");
    assert!(worst < 1e-2, "worst error {worst}");
}

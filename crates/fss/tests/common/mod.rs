//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use ariann_fss::{FssKeys, Kind, Payload, Scheme, TreeParams, reference};
use rand::Rng;

/// A uniformly random group element.
pub fn rand_payload<P: Payload, R: Rng>(rng: &mut R) -> P {
    P::from_block(rng.random::<u128>(), 0)
}

/// Random non-zero element (so that a wrong zero output cannot pass).
pub fn rand_nonzero<P: Payload, R: Rng>(rng: &mut R) -> P {
    loop {
        let p: P = rand_payload(rng);
        if p != P::default() {
            return p;
        }
    }
}

/// Generates keys with deterministic roots from `rng`, evaluates both parties
/// at `xs[i]` and returns the reconstructed outputs.
pub fn reconstruct<S: Scheme, P: Payload, R: Rng>(
    params: TreeParams,
    alphas: &[u64],
    betas: &[P],
    xs: &[u64],
    rng: &mut R,
) -> Vec<P> {
    let roots: Vec<[u128; 2]> = (0..alphas.len())
        .map(|_| [rng.random(), rng.random()])
        .collect();
    let (k0, k1) = FssKeys::<S, P>::gen_from_roots(params, alphas, betas, &roots).unwrap();
    let y0 = k0.eval_to_vec(xs).unwrap();
    let y1 = k1.eval_to_vec(xs).unwrap();
    y0.iter().zip(&y1).map(|(a, b)| a.add(*b)).collect()
}

/// Asserts reconstruction == cleartext for each (alpha, beta, x).
pub fn check<S: Scheme, P: Payload, R: Rng>(
    params: TreeParams,
    alphas: &[u64],
    betas: &[P],
    xs: &[u64],
    rng: &mut R,
) {
    let y = reconstruct::<S, P, R>(params, alphas, betas, xs, rng);
    for i in 0..xs.len() {
        let want = reference::cleartext(S::KIND, params, alphas[i], betas[i], xs[i]);
        assert_eq!(
            y[i],
            want,
            "{:?} {} n={} nu={} alpha={:#x} x={:#x}",
            S::KIND,
            P::NAME,
            params.n(),
            params.nu(),
            alphas[i],
            xs[i]
        );
    }
}

/// The early-termination depths worth testing for `n`: none, the default, and the largest.
pub fn nus<P: Payload>(n: u32) -> Vec<TreeParams> {
    let mut v = vec![
        TreeParams::full_tree(n).unwrap(),
        TreeParams::new::<P>(n).unwrap(),
        TreeParams::with_early_termination::<P>(n, n.min(ariann_fss::MAX_NU)).unwrap(),
    ];
    v.dedup();
    v
}

pub fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Dpf => "dpf",
        Kind::Dcf => "dcf",
    }
}

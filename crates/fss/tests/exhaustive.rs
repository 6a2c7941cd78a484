//! Exhaustive correctness on small domains: for every n <= 10, every alpha and
//! every x, both parties' outputs (fast batched path) add up to f(x), for DPF
//! and DCF, every payload group and several early-termination depths.

mod common;

use ariann_fss::{Dcf, Dpf, Payload, Scheme, TreeParams, Z2};
use common::{check, nus, rand_nonzero};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// All (alpha, x) pairs of an n-bit domain, one key per pair.
fn all_pairs<S: Scheme, P: Payload>(params: TreeParams, rng: &mut ChaCha8Rng) {
    let size = 1u64 << params.n();
    let mut alphas = Vec::with_capacity((size * size) as usize);
    let mut xs = Vec::with_capacity((size * size) as usize);
    let mut betas = Vec::with_capacity((size * size) as usize);
    for a in 0..size {
        let beta: P = rand_nonzero(rng);
        for x in 0..size {
            alphas.push(a);
            xs.push(x);
            betas.push(beta);
        }
    }
    check::<S, P, _>(params, &alphas, &betas, &xs, rng);
}

/// n <= 5: every early-termination depth; n <= 8: none, default and largest;
/// up to `max_n`: the default depth.
fn run<S: Scheme, P: Payload>(max_n: u32) {
    let mut rng = ChaCha8Rng::seed_from_u64(0xE4A0 + u64::from(P::BITS));
    for n in 1..=max_n {
        let params: Vec<TreeParams> = match n {
            1..=5 => (0..=n)
                .map(|nu| TreeParams::with_early_termination::<P>(n, nu).unwrap())
                .collect(),
            6..=8 => nus::<P>(n),
            _ => vec![TreeParams::new::<P>(n).unwrap()],
        };
        for p in params {
            all_pairs::<S, P>(p, &mut rng);
        }
    }
}

#[test]
fn dpf_z2_exhaustive() {
    run::<Dpf, Z2>(10);
}
#[test]
fn dpf_u32_exhaustive() {
    run::<Dpf, u32>(10);
}
#[test]
fn dpf_u64_exhaustive() {
    run::<Dpf, u64>(10);
}
#[test]
fn dpf_pair_exhaustive() {
    run::<Dpf, [u64; 2]>(10);
}
#[test]
fn dcf_z2_exhaustive() {
    run::<Dcf, Z2>(10);
}
#[test]
fn dcf_u32_exhaustive() {
    run::<Dcf, u32>(10);
}
#[test]
fn dcf_u64_exhaustive() {
    run::<Dcf, u64>(10);
}
#[test]
fn dcf_pair_exhaustive() {
    run::<Dcf, [u64; 2]>(10);
}

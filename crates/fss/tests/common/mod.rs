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

/// Short lowercase name of a payload group, as used in test names and the KAT file.
pub fn payload_name<P: Payload>() -> &'static str {
    match P::BITS {
        1 => "z2",
        32 => "u32",
        64 => "u64",
        128 => "pair",
        _ => unreachable!("unknown payload width {}", P::BITS),
    }
}

/// Little-endian bytes of a group element: one byte 0/1 for `Z_2`, else `BITS / 8` bytes.
pub fn payload_le_bytes<P: Payload>(p: P) -> Vec<u8> {
    let mut block = 0u128;
    p.put_in_block(&mut block, 0);
    let len = (P::BITS as usize / 8).max(1);
    block.to_le_bytes()[..len].to_vec()
}

/// `len` pairs of root seeds `[party 0, party 1]` drawn from `rng`.
pub fn rand_roots<R: Rng>(rng: &mut R, len: usize) -> Vec<[u128; 2]> {
    (0..len).map(|_| [rng.random(), rng.random()]).collect()
}

/// Adds both parties' shares element by element.
pub fn add_shares<P: Payload>(y0: &[P], y1: &[P]) -> Vec<P> {
    assert_eq!(y0.len(), y1.len());
    y0.iter().zip(y1).map(|(a, b)| a.add(*b)).collect()
}

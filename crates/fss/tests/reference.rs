//! The scalar reference implementation, and the fast batched path against it.
//!
//! (a) The reference alone is correct: for n <= 6, every early-termination
//!     depth, every alpha and every x, both reference shares add up to f(x).
//! (b) The fast path is bit-identical to the reference: every key of a batch
//!     made by `gen_from_roots` equals the reference key made from the same
//!     roots, for both parties, and the fast outputs (`eval` and `eval_seq`)
//!     equal `reference::eval` share by share. Batch sizes straddle the
//!     64-key layout groups and the 2048-key rayon chunks.
//! (c) `from_keys(key(0..len))` rebuilds a batch whose encoding is identical.

mod common;

use ariann_fss::{Dcf, Dpf, FssKeys, Key, Kind, Party, Payload, Scheme, TreeParams, Z2, reference};
use common::{nus, payload_name, rand_nonzero, rand_roots};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// f(x) written out here, independently of `reference::cleartext`.
fn expected<P: Payload>(kind: Kind, n: u32, alpha: u64, beta: P, x: u64) -> P {
    let m = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
    let hit = match kind {
        Kind::Dpf => x & m == alpha & m,
        Kind::Dcf => x & m < alpha & m,
    };
    if hit { beta } else { P::default() }
}

/// (a) `reference::eval(k0, x) + reference::eval(k1, x) == f(x)` for every
/// n in 1..=6, nu in 0..=n, alpha and x.
fn scalar_reference_exhaustive<P: Payload>(kind: Kind, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut total, mut share0_is_f) = (0usize, 0usize);
    for n in 1..=6u32 {
        for nu in 0..=n {
            let params = TreeParams::with_early_termination::<P>(n, nu).unwrap();
            for alpha in 0..(1u64 << n) {
                let beta: P = rand_nonzero(&mut rng);
                let roots = [rng.random::<u128>(), rng.random::<u128>()];
                let (k0, k1) = reference::generate(kind, params, alpha, beta, roots);
                assert_eq!((k0.party, k1.party), (Party::P0, Party::P1));
                assert_eq!((k0.kind, k1.kind), (kind, kind));
                assert_eq!((k0.params, k1.params), (params, params));
                assert_eq!((k0.seed, k1.seed), (roots[0], roots[1]));
                for x in 0..(1u64 << n) {
                    let s0 = reference::eval(&k0, x);
                    let s1 = reference::eval(&k1, x);
                    let want = expected(kind, n, alpha, beta, x);
                    assert_eq!(
                        reference::cleartext(kind, params, alpha, beta, x),
                        want,
                        "cleartext {kind:?} {} n={n} alpha={alpha} x={x}",
                        P::NAME
                    );
                    assert_eq!(
                        s0.add(s1),
                        want,
                        "reference {kind:?} {} n={n} nu={nu} alpha={alpha} x={x}",
                        P::NAME
                    );
                    total += 1;
                    share0_is_f += usize::from(s0 == want);
                }
            }
        }
    }
    // A share alone must not be the function value (e.g. party 1 always 0):
    // for wide groups that happens with negligible probability, for Z_2 about
    // half of the time.
    if P::BITS == 1 {
        assert!(
            share0_is_f * 10 > total * 4 && share0_is_f * 10 < total * 6,
            "{share0_is_f} of {total} Z_2 shares of party 0 equal f(x)"
        );
    } else {
        assert!(
            share0_is_f * 1000 < total,
            "{share0_is_f} of {total} shares of party 0 equal f(x)"
        );
    }
}

/// Special points with edge values mixed in: 0 and 2^n - 1 every few keys.
fn draw_alphas<R: Rng>(rng: &mut R, mask: u64, len: usize) -> Vec<u64> {
    (0..len)
        .map(|i| match i % 7 {
            0 => 0,
            1 => mask,
            _ => rng.random::<u64>() & mask,
        })
        .collect()
}

/// Evaluation points: alpha, alpha + 1, alpha - 1 (wrapping in n bits) and random.
fn draw_xs<R: Rng>(rng: &mut R, alphas: &[u64], mask: u64) -> Vec<u64> {
    alphas
        .iter()
        .enumerate()
        .map(|(i, &a)| match i % 4 {
            0 => a,
            1 => a.wrapping_add(1) & mask,
            2 => a.wrapping_sub(1) & mask,
            _ => rng.random::<u64>() & mask,
        })
        .collect()
}

/// (b) and (c) for one batch of `len` keys.
fn check_batch<S: Scheme, P: Payload>(params: TreeParams, len: usize, rng: &mut ChaCha8Rng) {
    let ctx = format!(
        "{:?} {} n={} nu={} len={len}",
        S::KIND,
        payload_name::<P>(),
        params.n(),
        params.nu()
    );
    let mask = params.domain_mask();
    let alphas = draw_alphas(rng, mask, len);
    let betas: Vec<P> = (0..len).map(|_| rand_nonzero(rng)).collect();
    let roots = rand_roots(rng, len);
    let (k0, k1) = FssKeys::<S, P>::gen_from_roots(params, &alphas, &betas, &roots).unwrap();
    assert_eq!((k0.len(), k1.len()), (len, len), "{ctx}");
    assert_eq!((k0.party(), k1.party()), (Party::P0, Party::P1), "{ctx}");
    assert_eq!((k0.params(), k1.params()), (params, params), "{ctx}");

    // (b) keys: bit-identical to the reference, for both parties.
    let mut ref0: Vec<Key<P>> = Vec::with_capacity(len);
    let mut ref1: Vec<Key<P>> = Vec::with_capacity(len);
    for i in 0..len {
        let (r0, r1) = reference::generate(S::KIND, params, alphas[i], betas[i], roots[i]);
        let f0 = k0.key(i).unwrap();
        let f1 = k1.key(i).unwrap();
        assert!(
            f0 == r0,
            "{ctx}: party 0 key {i} differs from the reference"
        );
        assert!(
            f1 == r1,
            "{ctx}: party 1 key {i} differs from the reference"
        );
        ref0.push(r0);
        ref1.push(r1);
    }
    assert!(k0.key(len).is_none() && k1.key(len).is_none(), "{ctx}");

    // (b) outputs: parallel and sequential fast paths equal the reference.
    let xs = draw_xs(rng, &alphas, mask);
    let y0 = k0.eval_to_vec(&xs).unwrap();
    let y1 = k1.eval_to_vec(&xs).unwrap();
    let mut y0s = vec![P::default(); len];
    let mut y1s = vec![P::default(); len];
    k0.eval_seq(&xs, &mut y0s).unwrap();
    k1.eval_seq(&xs, &mut y1s).unwrap();
    for i in 0..len {
        let e0 = reference::eval(&ref0[i], xs[i]);
        let e1 = reference::eval(&ref1[i], xs[i]);
        assert_eq!(y0[i], e0, "{ctx}: eval party 0, key {i}, x={:#x}", xs[i]);
        assert_eq!(y1[i], e1, "{ctx}: eval party 1, key {i}, x={:#x}", xs[i]);
        assert_eq!(y0s[i], e0, "{ctx}: eval_seq party 0, key {i}");
        assert_eq!(y1s[i], e1, "{ctx}: eval_seq party 1, key {i}");
        let want = expected(S::KIND, params.n(), alphas[i], betas[i], xs[i]);
        assert_eq!(e0.add(e1), want, "{ctx}: reconstruction, key {i}");
    }

    // (c) from_keys of the batch's own keys, and of the reference keys,
    // rebuilds a batch with the same encoding and the same outputs.
    let enc0 = k0.encode();
    let enc1 = k1.encode();
    let own0: Vec<Key<P>> = (0..len).map(|i| k0.key(i).unwrap()).collect();
    let own1: Vec<Key<P>> = (0..len).map(|i| k1.key(i).unwrap()).collect();
    let b0 = FssKeys::<S, P>::from_keys(Party::P0, params, &own0).unwrap();
    let b1 = FssKeys::<S, P>::from_keys(Party::P1, params, &own1).unwrap();
    assert!(
        b0.encode() == enc0,
        "{ctx}: from_keys party 0 re-encodes differently"
    );
    assert!(
        b1.encode() == enc1,
        "{ctx}: from_keys party 1 re-encodes differently"
    );
    let r0 = FssKeys::<S, P>::from_keys(Party::P0, params, &ref0).unwrap();
    let r1 = FssKeys::<S, P>::from_keys(Party::P1, params, &ref1).unwrap();
    assert!(
        r0.encode() == enc0,
        "{ctx}: reference keys party 0 pack differently"
    );
    assert!(
        r1.encode() == enc1,
        "{ctx}: reference keys party 1 pack differently"
    );
    assert_eq!(
        b0.eval_to_vec(&xs).unwrap(),
        y0,
        "{ctx}: from_keys batch outputs"
    );
    assert_eq!(
        r1.eval_to_vec(&xs).unwrap(),
        y1,
        "{ctx}: packed reference keys"
    );
}

/// (b) and (c) over all widths, the three depths of `common::nus` and
/// batch sizes around the 64-key groups; two batches over the 2048-key chunks.
fn fast_matches_reference<S: Scheme, P: Payload>(seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for n in [1u32, 5, 8, 17, 32, 63, 64] {
        for params in nus::<P>(n) {
            // A leaf of 2^12 elements costs 2^13 scalar AES calls per reference key.
            let sizes: &[usize] = if params.nu() >= 8 {
                &[1, 65]
            } else {
                &[1, 63, 64, 65, 200]
            };
            for &len in sizes {
                check_batch::<S, P>(params, len, &mut rng);
            }
        }
    }
    check_batch::<S, P>(TreeParams::new::<P>(32).unwrap(), 4100, &mut rng);
    check_batch::<S, P>(TreeParams::full_tree(64).unwrap(), 2049, &mut rng);
}

/// (c) for an empty batch: `from_keys(&[])` encodes like an empty generated batch.
fn empty_from_keys<S: Scheme, P: Payload>() {
    let params = TreeParams::new::<P>(16).unwrap();
    let (k0, k1) = FssKeys::<S, P>::gen_from_roots(params, &[], &[], &[]).unwrap();
    let e0 = FssKeys::<S, P>::from_keys(Party::P0, params, &[]).unwrap();
    let e1 = FssKeys::<S, P>::from_keys(Party::P1, params, &[]).unwrap();
    assert!(e0.is_empty() && e1.is_empty());
    assert_eq!(e0.encode(), k0.encode());
    assert_eq!(e1.encode(), k1.encode());
    assert_ne!(k0.encode(), k1.encode(), "the party byte must differ");
}

macro_rules! instances {
    ($($a:ident, $b:ident, $c:ident: $s:ty, $p:ty, $seed:expr;)*) => {$(
        #[test]
        fn $a() {
            scalar_reference_exhaustive::<$p>(<$s as Scheme>::KIND, $seed);
        }
        #[test]
        fn $b() {
            fast_matches_reference::<$s, $p>($seed ^ 0xFA57);
        }
        #[test]
        fn $c() {
            empty_from_keys::<$s, $p>();
        }
    )*};
}

instances! {
    reference_exhaustive_dpf_z2, fast_eq_reference_dpf_z2, empty_from_keys_dpf_z2: Dpf, Z2, 0x5EF0_0101;
    reference_exhaustive_dpf_u32, fast_eq_reference_dpf_u32, empty_from_keys_dpf_u32: Dpf, u32, 0x5EF0_0120;
    reference_exhaustive_dpf_u64, fast_eq_reference_dpf_u64, empty_from_keys_dpf_u64: Dpf, u64, 0x5EF0_0140;
    reference_exhaustive_dpf_pair, fast_eq_reference_dpf_pair, empty_from_keys_dpf_pair: Dpf, [u64; 2], 0x5EF0_0180;
    reference_exhaustive_dcf_z2, fast_eq_reference_dcf_z2, empty_from_keys_dcf_z2: Dcf, Z2, 0x5EF0_0201;
    reference_exhaustive_dcf_u32, fast_eq_reference_dcf_u32, empty_from_keys_dcf_u32: Dcf, u32, 0x5EF0_0220;
    reference_exhaustive_dcf_u64, fast_eq_reference_dcf_u64, empty_from_keys_dcf_u64: Dcf, u64, 0x5EF0_0240;
    reference_exhaustive_dcf_pair, fast_eq_reference_dcf_pair, empty_from_keys_dcf_pair: Dcf, [u64; 2], 0x5EF0_0280;
}

//! Bad inputs to parameter construction, generation, evaluation and
//! `from_keys` return typed `FssError`s (never a panic), and leave outputs
//! untouched.

mod common;

use ariann_fss::{
    Dcf, DcfKeys, Dpf, DpfKeys, FssError, FssKeys, Key, MAX_NU, Party, Payload, Scheme, TreeParams,
    Z2,
};
use common::{payload_name, rand_nonzero, rand_roots};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[test]
fn tree_params_refuse_bad_widths_and_depths() {
    for n in [0u32, 65, 128, u32::MAX] {
        assert_eq!(TreeParams::new::<u64>(n), Err(FssError::InvalidWidth { n }));
        assert_eq!(TreeParams::new::<Z2>(n), Err(FssError::InvalidWidth { n }));
        assert_eq!(TreeParams::full_tree(n), Err(FssError::InvalidWidth { n }));
        assert_eq!(
            TreeParams::with_early_termination::<u32>(n, 0),
            Err(FssError::InvalidWidth { n })
        );
    }
    // nu > n
    for (n, nu) in [(1u32, 2u32), (3, 4), (8, 9), (11, 12)] {
        assert_eq!(
            TreeParams::with_early_termination::<u64>(n, nu),
            Err(FssError::InvalidEarlyTermination { nu, n, max: MAX_NU })
        );
    }
    // nu > MAX_NU
    assert_eq!(MAX_NU, 12);
    for (n, nu) in [(13u32, 13u32), (64, 13), (64, 64), (64, u32::MAX)] {
        assert_eq!(
            TreeParams::with_early_termination::<Z2>(n, nu),
            Err(FssError::InvalidEarlyTermination { nu, n, max: 12 })
        );
    }
    // The limits themselves are fine, and the default depth is capped at n.
    for n in [1u32, 64] {
        assert!(TreeParams::full_tree(n).is_ok());
        let p = TreeParams::with_early_termination::<u64>(n, n.min(MAX_NU)).unwrap();
        assert_eq!((p.n(), p.nu()), (n, n.min(MAX_NU)));
    }
    assert_eq!(TreeParams::new::<Z2>(3).unwrap().nu(), 3);
    assert_eq!(TreeParams::new::<Z2>(64).unwrap().nu(), 7);
    assert_eq!(TreeParams::new::<u32>(64).unwrap().nu(), 2);
    assert_eq!(TreeParams::new::<u64>(64).unwrap().nu(), 1);
    assert_eq!(TreeParams::new::<[u64; 2]>(64).unwrap().nu(), 0);
}

fn generation_errors<S: Scheme, P: Payload>() {
    let name = payload_name::<P>();
    let mut rng = ChaCha8Rng::seed_from_u64(0xE770 + u64::from(P::BITS));
    let p8 = TreeParams::new::<P>(8).unwrap();
    let betas: Vec<P> = (0..4).map(|_| rand_nonzero(&mut rng)).collect();
    let roots = rand_roots(&mut rng, 4);
    let alphas = [1u64, 2, 3, 4];

    // betas: one per alpha.
    for nb in [0usize, 3, 5] {
        let b: Vec<P> = (0..nb).map(|_| rand_nonzero(&mut rng)).collect();
        let e = FssKeys::<S, P>::gen_from_roots(p8, &alphas, &b, &roots).unwrap_err();
        assert!(
            matches!(e, FssError::LengthMismatch { expected: 4, got, .. } if got == nb),
            "{name}: {e:?}"
        );
        let e = FssKeys::<S, P>::generate(p8, &alphas, &b, &mut rng).unwrap_err();
        assert!(
            matches!(e, FssError::LengthMismatch { expected: 4, got, .. } if got == nb),
            "{name}: {e:?}"
        );
    }
    // roots: one pair per alpha.
    for nr in [0usize, 3, 5] {
        let r = rand_roots(&mut rng, nr);
        let e = FssKeys::<S, P>::gen_from_roots(p8, &alphas, &betas, &r).unwrap_err();
        assert!(
            matches!(e, FssError::LengthMismatch { expected: 4, got, .. } if got == nr),
            "{name}: {e:?}"
        );
    }
    // alpha outside the n-bit domain, reported at its index.
    for (idx, bad) in [(0usize, 1u64 << 8), (2, 0x1FF), (3, u64::MAX)] {
        let mut a = alphas;
        a[idx] = bad;
        let want = FssError::OutOfDomain {
            what: "alpha",
            index: idx,
            n: 8,
        };
        assert_eq!(
            FssKeys::<S, P>::gen_from_roots(p8, &a, &betas, &roots).unwrap_err(),
            want,
            "{name}"
        );
        assert_eq!(
            FssKeys::<S, P>::generate(p8, &a, &betas, &mut rng).unwrap_err(),
            want,
            "{name}"
        );
    }
    // n = 1: alpha = 2 is out, alpha = 1 is in; n = 63: 2^63 is out.
    let p1 = TreeParams::new::<P>(1).unwrap();
    assert!(matches!(
        FssKeys::<S, P>::gen_from_roots(p1, &[2], &betas[..1], &roots[..1]),
        Err(FssError::OutOfDomain { index: 0, n: 1, .. })
    ));
    assert!(FssKeys::<S, P>::gen_from_roots(p1, &[1], &betas[..1], &roots[..1]).is_ok());
    let p63 = TreeParams::new::<P>(63).unwrap();
    assert!(matches!(
        FssKeys::<S, P>::gen_from_roots(p63, &[1 << 63], &betas[..1], &roots[..1]),
        Err(FssError::OutOfDomain { n: 63, .. })
    ));
    // At n = 64 every alpha is in the domain.
    let p64 = TreeParams::new::<P>(64).unwrap();
    assert!(FssKeys::<S, P>::gen_from_roots(p64, &[u64::MAX], &betas[..1], &roots[..1]).is_ok());
}

fn evaluation_errors<S: Scheme, P: Payload>() {
    let name = payload_name::<P>();
    let mut rng = ChaCha8Rng::seed_from_u64(0xE7A1 + u64::from(P::BITS));
    let p8 = TreeParams::new::<P>(8).unwrap();
    let len = 70; // more than one 64-key group
    let alphas: Vec<u64> = (0..len).map(|_| rng.random::<u64>() & 0xFF).collect();
    let betas: Vec<P> = (0..len).map(|_| rand_nonzero(&mut rng)).collect();
    let (k0, k1) = FssKeys::<S, P>::generate(p8, &alphas, &betas, &mut rng).unwrap();
    let xs: Vec<u64> = alphas.clone();
    let sentinel: P = rand_nonzero(&mut rng);

    for k in [&k0, &k1] {
        // x outside the domain, at the first, a middle and the last index.
        for idx in [0usize, 33, len - 1] {
            for bad in [1u64 << 8, u64::MAX] {
                let mut x = xs.clone();
                x[idx] = bad;
                let want = FssError::OutOfDomain {
                    what: "x",
                    index: idx,
                    n: 8,
                };
                let mut out = vec![sentinel; len];
                assert_eq!(k.eval(&x, &mut out).unwrap_err(), want, "{name}");
                assert!(out.iter().all(|o| *o == sentinel), "{name}: out written");
                assert_eq!(k.eval_seq(&x, &mut out).unwrap_err(), want, "{name}");
                assert!(out.iter().all(|o| *o == sentinel), "{name}: out written");
                assert_eq!(k.eval_to_vec(&x).unwrap_err(), want, "{name}");
            }
        }
        // xs: one per key; out: one per key.
        for m in [0usize, len - 1, len + 1] {
            let x = vec![0u64; m];
            let mut out = vec![sentinel; len];
            let e = k.eval(&x, &mut out).unwrap_err();
            assert!(
                matches!(e, FssError::LengthMismatch { expected, got, .. } if expected == len && got == m),
                "{name}: {e:?}"
            );
            assert!(out.iter().all(|o| *o == sentinel));
            assert!(matches!(
                k.eval_seq(&x, &mut out),
                Err(FssError::LengthMismatch { .. })
            ));
            assert!(matches!(
                k.eval_to_vec(&x),
                Err(FssError::LengthMismatch { .. })
            ));
            let mut short = vec![sentinel; m];
            let e = k.eval(&xs, &mut short).unwrap_err();
            assert!(
                matches!(e, FssError::LengthMismatch { expected, got, .. } if expected == len && got == m),
                "{name}: {e:?}"
            );
            assert!(short.iter().all(|o| *o == sentinel));
            assert!(matches!(
                k.eval_seq(&xs, &mut short),
                Err(FssError::LengthMismatch { .. })
            ));
        }
        // The valid call still works after all that.
        assert_eq!(k.eval_to_vec(&xs).unwrap().len(), len);
        assert!(k.key(len).is_none() && k.key(usize::MAX).is_none());
    }
}

fn from_keys_errors<S: Scheme, P: Payload>() {
    let name = payload_name::<P>();
    let mut rng = ChaCha8Rng::seed_from_u64(0xF00 + u64::from(P::BITS));
    let p8 = TreeParams::new::<P>(8).unwrap();
    let alphas = [5u64, 6, 7];
    let betas: Vec<P> = (0..3).map(|_| rand_nonzero(&mut rng)).collect();
    let (k0, k1) = FssKeys::<S, P>::generate(p8, &alphas, &betas, &mut rng).unwrap();
    let keys0: Vec<Key<P>> = (0..3).map(|i| k0.key(i).unwrap()).collect();
    let keys1: Vec<Key<P>> = (0..3).map(|i| k1.key(i).unwrap()).collect();
    assert!(FssKeys::<S, P>::from_keys(Party::P0, p8, &keys0).is_ok());
    assert!(FssKeys::<S, P>::from_keys(Party::P1, p8, &keys1).is_ok());

    // Wrong party: all keys, or one of them (reported at its index).
    assert_eq!(
        FssKeys::<S, P>::from_keys(Party::P1, p8, &keys0).unwrap_err(),
        FssError::IncompatibleKey { index: 0 },
        "{name}"
    );
    let mut mixed = keys0.clone();
    mixed[2] = keys1[2].clone();
    assert_eq!(
        FssKeys::<S, P>::from_keys(Party::P0, p8, &mixed).unwrap_err(),
        FssError::IncompatibleKey { index: 2 },
        "{name}"
    );
    // Wrong tree shape.
    let other = TreeParams::full_tree(8).unwrap();
    let other = if other == p8 {
        TreeParams::with_early_termination::<P>(8, 1).unwrap()
    } else {
        other
    };
    assert_eq!(
        FssKeys::<S, P>::from_keys(Party::P0, other, &keys0).unwrap_err(),
        FssError::IncompatibleKey { index: 0 }
    );
    // Keys whose vectors have the wrong length (a hand-built Key).
    let mut broken = keys0.clone();
    broken[1].cw_seed.pop();
    assert_eq!(
        FssKeys::<S, P>::from_keys(Party::P0, p8, &broken).unwrap_err(),
        FssError::IncompatibleKey { index: 1 }
    );
    let mut broken = keys0.clone();
    broken[1].cw_t.push([false, false]);
    assert_eq!(
        FssKeys::<S, P>::from_keys(Party::P0, p8, &broken).unwrap_err(),
        FssError::IncompatibleKey { index: 1 }
    );
    let mut broken = keys0.clone();
    broken[2].leaf.push(P::default());
    assert_eq!(
        FssKeys::<S, P>::from_keys(Party::P0, p8, &broken).unwrap_err(),
        FssError::IncompatibleKey { index: 2 }
    );
    let mut broken = keys0.clone();
    broken[0].cw_v.push(P::default());
    assert_eq!(
        FssKeys::<S, P>::from_keys(Party::P0, p8, &broken).unwrap_err(),
        FssError::IncompatibleKey { index: 0 }
    );
}

/// Keys of one scheme refused by the other scheme's `from_keys`.
#[test]
fn from_keys_refuses_the_other_scheme() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5C4E);
    let p = TreeParams::new::<u64>(10).unwrap();
    let (d0, _) = DpfKeys::<u64>::generate(p, &[3, 4], &[1, 2], &mut rng).unwrap();
    let (c0, _) = DcfKeys::<u64>::generate(p, &[3, 4], &[1, 2], &mut rng).unwrap();
    let dk: Vec<Key<u64>> = (0..2).map(|i| d0.key(i).unwrap()).collect();
    let ck: Vec<Key<u64>> = (0..2).map(|i| c0.key(i).unwrap()).collect();
    assert_eq!(
        DcfKeys::<u64>::from_keys(Party::P0, p, &dk).unwrap_err(),
        FssError::IncompatibleKey { index: 0 }
    );
    assert_eq!(
        DpfKeys::<u64>::from_keys(Party::P0, p, &ck).unwrap_err(),
        FssError::IncompatibleKey { index: 0 }
    );
    // A DPF key with its kind relabelled still has no per-level payload words.
    let mut relabelled = dk.clone();
    for k in &mut relabelled {
        k.kind = ariann_fss::Kind::Dcf;
    }
    assert_eq!(
        DcfKeys::<u64>::from_keys(Party::P0, p, &relabelled).unwrap_err(),
        FssError::IncompatibleKey { index: 0 }
    );
}

macro_rules! instances {
    ($($name:ident: $s:ty, $p:ty;)*) => {$(
        #[test]
        fn $name() {
            generation_errors::<$s, $p>();
            evaluation_errors::<$s, $p>();
            from_keys_errors::<$s, $p>();
        }
    )*};
}

instances! {
    errors_dpf_z2: Dpf, Z2;
    errors_dpf_u32: Dpf, u32;
    errors_dpf_u64: Dpf, u64;
    errors_dpf_pair: Dpf, [u64; 2];
    errors_dcf_z2: Dcf, Z2;
    errors_dcf_u32: Dcf, u32;
    errors_dcf_u64: Dcf, u64;
    errors_dcf_pair: Dcf, [u64; 2];
}

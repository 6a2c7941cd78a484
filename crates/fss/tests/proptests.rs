//! Property tests: for random alpha and beta, both parties' outputs of the
//! fast batched path add up to f(x) at the points around alpha and at the
//! ends of the domain: x in {alpha - 1, alpha, alpha + 1, 0, 2^n - 1, random}
//! (wrapping in n bits). n = 32 and n = 64 with the default early
//! termination, and a random n in 1..=64 with a random depth nu.
//!
//! The proptest RNG has a fixed seed, so runs are reproducible; 64 cases per
//! property.

mod common;

use ariann_fss::{Dcf, Dpf, FssKeys, Kind, Payload, Scheme, TreeParams, Z2, reference};
use common::add_shares;
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, RngSeed};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 64,
        rng_seed: RngSeed::Fixed(0xA11A_9E57),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    }
}

/// Special points, with the ends of the domain (0, 1 and 2^n - 1 after
/// masking) more likely than uniform sampling would make them.
fn alpha_strategy() -> impl Strategy<Value = u64> {
    prop_oneof![
        1 => Just(0u64),
        1 => Just(1u64),
        1 => Just(u64::MAX),
        5 => any::<u64>(),
    ]
}

/// f(x), written out independently of `reference::cleartext`.
fn expected<P: Payload>(kind: Kind, alpha: u64, beta: P, x: u64) -> P {
    let hit = match kind {
        Kind::Dpf => x == alpha,
        Kind::Dcf => x < alpha,
    };
    if hit { beta } else { P::default() }
}

/// One case: six keys for the same (alpha, beta) with distinct roots, key `i`
/// evaluated at point `i` of the list above.
fn check_points<S: Scheme, P: Payload>(
    n: u32,
    nu_raw: Option<u32>,
    alpha_raw: u64,
    beta_raw: u128,
    x_raw: u64,
    root: [u128; 2],
) -> Result<(), TestCaseError> {
    let params = match nu_raw {
        None => TreeParams::new::<P>(n),
        Some(r) => TreeParams::with_early_termination::<P>(n, r % (n.min(ariann_fss::MAX_NU) + 1)),
    }
    .map_err(|e| TestCaseError::fail(format!("params n={n}: {e}")))?;
    let mask = params.domain_mask();
    let alpha = alpha_raw & mask;
    // A zero beta would make every output trivially zero.
    let beta = match P::from_block(beta_raw, 0) {
        b if b == P::default() => P::from_block(u128::MAX, 0),
        b => b,
    };
    let xs = [
        alpha.wrapping_sub(1) & mask,
        alpha,
        alpha.wrapping_add(1) & mask,
        0,
        mask,
        x_raw & mask,
    ];
    let alphas = [alpha; 6];
    let betas = [beta; 6];
    const K: u128 = 0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835;
    let roots: Vec<[u128; 2]> = (0..6u128)
        .map(|i| [root[0].wrapping_add(i.wrapping_mul(K)), root[1] ^ i])
        .collect();
    let (k0, k1) = FssKeys::<S, P>::gen_from_roots(params, &alphas, &betas, &roots)
        .map_err(|e| TestCaseError::fail(format!("gen: {e}")))?;
    let y0 = k0
        .eval_to_vec(&xs)
        .map_err(|e| TestCaseError::fail(format!("eval: {e}")))?;
    let y1 = k1
        .eval_to_vec(&xs)
        .map_err(|e| TestCaseError::fail(format!("eval: {e}")))?;
    let y = add_shares(&y0, &y1);
    for (i, &x) in xs.iter().enumerate() {
        let want = reference::cleartext(S::KIND, params, alpha, beta, x);
        prop_assert_eq!(want, expected(S::KIND, alpha, beta, x), "cleartext");
        prop_assert_eq!(
            y[i],
            want,
            "{:?} {} n={} nu={} alpha={:#x} x={:#x} (point {})",
            S::KIND,
            P::NAME,
            n,
            params.nu(),
            alpha,
            x,
            i
        );
    }
    Ok(())
}

macro_rules! props {
    ($($name:ident: $s:ty, $p:ty;)*) => {$(
        mod $name {
            use super::*;

            proptest! {
                #![proptest_config(config())]

                #[test]
                fn n32(
                    alpha in alpha_strategy(),
                    beta in any::<u128>(),
                    x in any::<u64>(),
                    root in any::<[u128; 2]>(),
                ) {
                    check_points::<$s, $p>(32, None, alpha, beta, x, root)?;
                }

                #[test]
                fn n64(
                    alpha in alpha_strategy(),
                    beta in any::<u128>(),
                    x in any::<u64>(),
                    root in any::<[u128; 2]>(),
                ) {
                    check_points::<$s, $p>(64, None, alpha, beta, x, root)?;
                }

                #[test]
                fn n_random(
                    n in 1u32..=64,
                    nu in any::<u32>(),
                    alpha in alpha_strategy(),
                    beta in any::<u128>(),
                    x in any::<u64>(),
                    root in any::<[u128; 2]>(),
                ) {
                    check_points::<$s, $p>(n, Some(nu), alpha, beta, x, root)?;
                }
            }
        }
    )*};
}

props! {
    dpf_z2: Dpf, Z2;
    dpf_u32: Dpf, u32;
    dpf_u64: Dpf, u64;
    dpf_pair: Dpf, [u64; 2];
    dcf_z2: Dcf, Z2;
    dcf_u32: Dcf, u32;
    dcf_u64: Dcf, u64;
    dcf_pair: Dcf, [u64; 2];
}

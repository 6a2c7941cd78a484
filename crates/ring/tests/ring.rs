//! Ring laws, signed conversions, shifts and fixed-point encoding, written
//! once generically over the ring and instantiated for `Z_2^32` and
//! `Z_2^64` (CONVENTIONS.md 6).

use ariann_ring::{FixedPoint, Ring, RingError};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// `x mod 2^BITS` via u128, the reference for wrapping arithmetic.
fn reduce<R: Ring>(x: u128) -> u64 {
    (x & ((1u128 << R::BITS) - 1)) as u64
}

/// Sign extension of the low `BITS` bits, the reference for `to_i64`.
fn sext<R: Ring>(x: u64) -> i64 {
    let s = 64 - R::BITS;
    ((x << s) as i64) >> s
}

fn check_laws<R: Ring>(a: u64, b: u64, c: u64) -> Result<(), TestCaseError> {
    let (x, y, z) = (R::from_u64(a), R::from_u64(b), R::from_u64(c));
    let (ra, rb) = (x.to_u64() as u128, y.to_u64() as u128);
    prop_assert_eq!(x.to_u64(), reduce::<R>(a as u128));
    // Against the u128 reference.
    prop_assert_eq!(x.wadd(y).to_u64(), reduce::<R>(ra + rb));
    prop_assert_eq!(x.wmul(y).to_u64(), reduce::<R>(ra * rb));
    prop_assert_eq!(
        x.wsub(y).to_u64(),
        reduce::<R>(ra + (1u128 << R::BITS) - rb)
    );
    // Commutative ring laws.
    prop_assert_eq!(x.wadd(y), y.wadd(x));
    prop_assert_eq!(x.wmul(y), y.wmul(x));
    prop_assert_eq!(x.wadd(y).wadd(z), x.wadd(y.wadd(z)));
    prop_assert_eq!(x.wmul(y).wmul(z), x.wmul(y.wmul(z)));
    prop_assert_eq!(x.wmul(y.wadd(z)), x.wmul(y).wadd(x.wmul(z)));
    prop_assert_eq!(x.wadd(R::ZERO), x);
    prop_assert_eq!(x.wmul(R::ONE), x);
    prop_assert_eq!(x.wmul(R::ZERO), R::ZERO);
    prop_assert_eq!(x.wadd(x.wneg()), R::ZERO);
    prop_assert_eq!(x.wsub(y), x.wadd(y.wneg()));
    prop_assert_eq!(x.wneg().wneg(), x);
    Ok(())
}

fn check_signed<R: Ring>(a: u64, v: i64) -> Result<(), TestCaseError> {
    let x = R::from_u64(a);
    prop_assert_eq!(x.to_i64(), sext::<R>(a));
    prop_assert_eq!(R::from_i64(x.to_i64()), x);
    // from_i64 is reduction mod 2^BITS.
    prop_assert_eq!(R::from_i64(v).to_u64(), reduce::<R>(v as u64 as u128));
    prop_assert_eq!(R::from_i64(v).to_i64(), sext::<R>(v as u64));
    prop_assert_eq!(R::from_i64(v).wneg(), R::from_i64(v.wrapping_neg()));
    Ok(())
}

fn check_shifts<R: Ring>(a: u64, k: u32) -> Result<(), TestCaseError> {
    let k = k % R::BITS;
    let x = R::from_u64(a);
    prop_assert_eq!(x.sar(k).to_i64(), x.to_i64() >> k);
    prop_assert_eq!(x.sar(k), R::from_i64(x.to_i64() >> k));
    prop_assert_eq!(Ring::shr(x, k).to_u64(), x.to_u64() >> k);
    Ok(())
}

fn signed_extremes<R: Ring>() {
    let min = -(1i64 << (R::BITS - 1));
    let max = (1u64 << (R::BITS - 1)) as i64 - 1;
    let mut vals = vec![0, 1, -1, i32::MIN as i64, i32::MAX as i64, min, max];
    if R::BITS == 64 {
        vals.extend([i64::MIN, i64::MAX, i64::MIN + 1]);
    }
    for v in vals {
        let x = R::from_i64(v);
        assert_eq!(x.to_i64(), v, "round trip of {v}");
        if v != min {
            assert_eq!(x.wneg().to_i64(), -v, "negation of {v}");
        }
    }
    // The most negative value is its own negation.
    assert_eq!(R::from_i64(min).wneg(), R::from_i64(min));
    // Out-of-range values wrap: max + 1 is min.
    assert_eq!(R::from_i64(max).wadd(R::ONE).to_i64(), min);
    if R::BITS == 32 {
        assert_eq!(R::from_i64(i32::MAX as i64 + 1).to_i64(), i32::MIN as i64);
        assert_eq!(R::from_i64(i64::MIN), R::ZERO);
        assert_eq!(R::from_i64(1 << 32), R::ZERO);
        assert_eq!(R::from_u64(u64::MAX).to_u64(), u32::MAX as u64);
    }
    assert_eq!(R::from_i64(-1).to_u64(), reduce::<R>(u64::MAX as u128));
    assert_eq!(R::from_i64(min).sar(R::BITS - 1), R::from_i64(-1));
    assert_eq!(Ring::shr(R::from_i64(min), R::BITS - 1), R::ONE);
}

fn random_covers_the_ring<R: Ring>() {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let top = (0..256).any(|_| R::random(&mut rng).to_u64() >> (R::BITS - 1) == 1);
    let bottom = (0..256).any(|_| R::random(&mut rng).to_u64() & 1 == 1);
    assert!(top && bottom);
}

/// Largest `y < 2^(BITS-1)` representable as an `f64` integer.
fn max_encodable_scaled<R: Ring>() -> f64 {
    let bound = 2f64.powi(R::BITS as i32 - 1);
    let mut y = ((1u64 << (R::BITS - 1)) - 1) as f64; // rounds up to `bound` for 64 bits
    while y >= bound {
        y = f64::from_bits(y.to_bits() - 1);
    }
    y
}

fn check_fixed_round_trip<R: Ring>(u: f64) -> Result<(), TestCaseError> {
    let fp = FixedPoint::default_for::<R>();
    let f = fp.frac_bits;
    // u in [-1, 1): x anywhere in the encodable range.
    let x = u * max_encodable_scaled::<R>() / 2f64.powi(f as i32);
    let e: R = fp
        .encode(x)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let d = fp.decode(e);
    prop_assert!(
        (d - x).abs() <= 2f64.powi(-(f as i32 + 1)),
        "x = {x}, decode = {d}"
    );
    // Small values too, where most of the precision is in the fraction.
    let xs = u * 100.0;
    let d = fp.decode(
        fp.encode::<R>(xs)
            .map_err(|e| TestCaseError::fail(e.to_string()))?,
    );
    prop_assert!((d - xs).abs() <= 2f64.powi(-(f as i32 + 1)));
    // Negation commutes with encoding (symmetric range, ties away from zero).
    prop_assert_eq!(fp.encode::<R>(-x).ok(), Some(e.wneg()));
    Ok(())
}

fn fixed_point_rounds_to_nearest<R: Ring>() {
    let fp = FixedPoint::default_for::<R>();
    let ulp = 2f64.powi(-(fp.frac_bits as i32));
    let enc = |x: f64| fp.encode::<R>(x).expect("in range").to_i64();
    // Floor would give -2, truncation toward zero -1 for the second.
    assert_eq!(enc(-1.3 * ulp), -1);
    assert_eq!(enc(-1.7 * ulp), -2);
    assert_eq!(enc(-2.5 * ulp), -3); // tie: away from zero
    assert_eq!(enc(-0.4 * ulp), 0);
    assert_eq!(enc(-0.6 * ulp), -1);
    assert_eq!(enc(1.3 * ulp), 1);
    assert_eq!(enc(1.7 * ulp), 2);
    assert_eq!(enc(2.5 * ulp), 3);
    assert_eq!(enc(-3.25), (-3.25 / ulp) as i64);
    assert_eq!(
        fp.decode(fp.encode::<R>(-0.1).expect("in range")),
        -(0.1 / ulp).round() * ulp
    );
    assert_eq!(fp.decode(R::from_i64(-3)), -3.0 * ulp);
    assert_eq!(fp.scale::<R>().to_u64(), 1 << fp.frac_bits);
}

fn fixed_point_range<R: Ring>() {
    let fp = FixedPoint::default_for::<R>();
    let scale = 2f64.powi(fp.frac_bits as i32);
    let oor = |x: f64| RingError::OutOfRange {
        value: x,
        frac_bits: fp.frac_bits,
        bits: R::BITS,
    };
    let ymax = max_encodable_scaled::<R>();
    assert_eq!(fp.encode::<R>(ymax / scale).map(R::to_i64), Ok(ymax as i64));
    assert_eq!(
        fp.encode::<R>(-ymax / scale).map(R::to_i64),
        Ok(-(ymax as i64))
    );
    let bound = 2f64.powi(R::BITS as i32 - 1) / scale;
    for x in [bound, -bound, 2.0 * bound, -1e300, 1e300, f64::MAX] {
        assert_eq!(fp.encode::<R>(x), Err(oor(x)), "{x}");
    }
    for x in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert!(
            matches!(fp.encode::<R>(x), Err(RingError::OutOfRange { .. })),
            "{x}"
        );
    }
    if R::BITS == 32 {
        // Below the bound before rounding, at the bound after: refused.
        let x = (2f64.powi(31) - 0.25) / scale;
        assert_eq!(fp.encode::<R>(x), Err(oor(x)));
    }
    // Tensors: the first bad element's error; shape kept otherwise.
    let good = ndarray::arr2(&[[0.5, -1.25], [3.0, 0.0]]).into_dyn();
    let t = fp.encode_tensor::<R>(&good).expect("in range");
    assert_eq!(t.shape(), &[2, 2]);
    assert_eq!(fp.decode_tensor(&t), good);
    let bad = ndarray::arr1(&[1.0, f64::NAN, 2.0 * bound]).into_dyn();
    assert!(matches!(
        fp.encode_tensor::<R>(&bad),
        Err(RingError::OutOfRange { value, .. }) if value.is_nan()
    ));
}

macro_rules! ring_suite {
    ($m:ident, $r:ty) => {
        mod $m {
            use super::*;

            proptest! {
                #[test]
                fn ring_laws(a in any::<u64>(), b in any::<u64>(), c in any::<u64>()) {
                    check_laws::<$r>(a, b, c)?;
                }

                #[test]
                fn signed_conversions(a in any::<u64>(), v in any::<i64>()) {
                    check_signed::<$r>(a, v)?;
                }

                #[test]
                fn shifts(a in any::<u64>(), k in any::<u32>()) {
                    check_shifts::<$r>(a, k)?;
                }

                #[test]
                fn fixed_round_trip(u in -1.0f64..1.0) {
                    check_fixed_round_trip::<$r>(u)?;
                }
            }

            #[test]
            fn extremes() {
                signed_extremes::<$r>();
            }

            #[test]
            fn random_elements() {
                random_covers_the_ring::<$r>();
            }

            #[test]
            fn rounding() {
                fixed_point_rounds_to_nearest::<$r>();
            }

            #[test]
            fn range() {
                fixed_point_range::<$r>();
            }
        }
    };
}

ring_suite!(z32, u32);
ring_suite!(z64, u64);

//! Bilinear gates (Beaver, matrix and convolution triples) against cleartext,
//! both parties on threads over the in-memory transport, for both ring widths.

use ariann_mpc::gates::beaver::{Bilinear, TripleKey, check_triple};
use ariann_mpc::{Transport, run_two_party};
use ariann_ring::{Conv2dShape, Ring, RingTensor, reconstruct, share};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn check<R: Ring>(map: Bilinear, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (sx, sy, sz) = map.shapes().expect("valid shapes");
    let x = RingTensor::<R>::random(&sx, &mut rng);
    let y = RingTensor::<R>::random(&sy, &mut rng);
    let want = map.apply(&x, &y).expect("cleartext");
    let (x0, x1) = share(&x, &mut rng);
    let (y0, y1) = share(&y, &mut rng);
    let (k0, k1) = TripleKey::<R>::generate(map, &mut rng).expect("triple");
    assert!(check_triple(&k0, &k1).expect("shapes"));
    let ((z0, s0), (z1, _)) = run_two_party(
        |t| (k0.eval(t, &x0, &y0), t.stats()),
        |t| (k1.eval(t, &x1, &y1), t.stats()),
    );
    let z = reconstruct(&z0.expect("p0"), &z1.expect("p1")).expect("same shapes");
    assert_eq!(z.shape(), &sz[..]);
    assert_eq!(z, want, "{map:?}");
    // One round; communication = |x| + |y| ring elements per party.
    assert_eq!(s0.rounds, 1);
    assert_eq!(
        s0.bytes_sent,
        ((x.len() + y.len()) * R::BITS as usize / 8) as u64
    );
}

fn all<R: Ring>(seed: u64) {
    check::<R>(Bilinear::Mul { len: 1 }, seed);
    check::<R>(Bilinear::Mul { len: 257 }, seed + 1);
    check::<R>(Bilinear::MatMul { m: 1, k: 1, n: 1 }, seed + 2);
    check::<R>(Bilinear::MatMul { m: 7, k: 13, n: 5 }, seed + 3);
    check::<R>(Bilinear::MatMul { m: 16, k: 64, n: 1 }, seed + 4);
    for (i, (stride, pad, kh)) in [(1, 0, 3), (2, 1, 3), (1, 2, 5), (2, 0, 1)]
        .into_iter()
        .enumerate()
    {
        let s = Conv2dShape {
            n: 2,
            c: 3,
            h: 9,
            w: 8,
            oc: 4,
            kh,
            kw: kh,
            stride,
            pad,
        };
        check::<R>(Bilinear::Conv2d(s), seed + 10 + i as u64);
    }
}

#[test]
fn bilinear_gates_u64() {
    all::<u64>(1000);
}

#[test]
fn bilinear_gates_u32() {
    all::<u32>(2000);
}

#[test]
fn mismatched_inputs_are_errors() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (k0, _k1) = TripleKey::<u64>::generate(Bilinear::MatMul { m: 2, k: 3, n: 4 }, &mut rng)
        .expect("triple");
    let x = RingTensor::<u64>::zeros(&[3, 2]);
    let y = RingTensor::<u64>::zeros(&[3, 4]);
    assert!(k0.mask(&x, &y).is_err());
    assert!(k0.finish(&[0u64; 5], &y).is_err());
}

//! Max-pool and argmax against cleartext, both parties on threads.

mod common;
use ariann_mpc::gates::pool::{ArgmaxKey, MaxPoolKey, PoolShape};
use ariann_mpc::{Transport, run_two_party};
use ariann_ring::Ring;
use common::{add, shares};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Cleartext max-pool with padding left out.
fn plain_maxpool(x: &[i64], s: &PoolShape) -> Vec<i64> {
    s.windows()
        .expect("valid")
        .iter()
        .map(|w| w.iter().map(|i| x[*i]).max().expect("non-empty"))
        .collect()
}

fn check_pool<R: Ring>(s: PoolShape, rounds: u64, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let k = 24u32;
    let mut xs: Vec<i64> = (0..s.input_len())
        .map(|_| rng.random_range(-(1i64 << 21)..(1i64 << 21)))
        .collect();
    // Ties and edge values.
    if xs.len() > 4 {
        xs[0] = 0;
        xs[1] = 0;
        xs[2] = -(1 << 21);
        xs[3] = (1 << 21) - 1;
    }
    let (x0, x1) = shares::<R>(&xs, &mut rng);
    let (k0, k1) = MaxPoolKey::<R>::generate(s, k, &mut rng).expect("valid");
    assert_eq!(k0.rounds() as u64, rounds);
    let ((o0, st), (o1, _)) = run_two_party(
        |t| (k0.eval(t, &x0), t.stats()),
        |t| (k1.eval(t, &x1), t.stats()),
    );
    let (o0, o1) = (o0.expect("p0"), o1.expect("p1"));
    let got = add(&o0.max, &o1.max);
    let want = plain_maxpool(&xs, &s);
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(*g, R::from_i64(*w), "{s:?}");
    }
    assert_eq!(st.rounds, rounds);
    // Selections: one bit per comparison, each 0 or 1.
    let windows = s.windows().expect("valid");
    let comparisons: usize = windows.iter().map(|w| w.len() - 1).sum();
    let sel: usize = o0.selections.iter().map(Vec::len).sum();
    assert_eq!(sel, comparisons);
    for (a, b) in o0.selections.iter().zip(&o1.selections) {
        for bit in add(a, b) {
            assert!(bit.to_u64() <= 1);
        }
    }
}

#[test]
fn maxpool_shapes_and_rounds() {
    let sh = |n, c, h, w, k, stride, pad| PoolShape {
        n,
        c,
        h,
        w,
        k,
        stride,
        pad,
    };
    check_pool::<u64>(sh(2, 3, 8, 8, 2, 2, 0), 2, 1);
    check_pool::<u64>(sh(1, 2, 7, 9, 3, 2, 1), 4, 2);
    check_pool::<u64>(sh(1, 1, 6, 6, 3, 1, 0), 4, 3);
    check_pool::<u32>(sh(2, 2, 6, 6, 2, 2, 0), 2, 4);
    check_pool::<u32>(sh(1, 1, 5, 5, 3, 2, 1), 4, 5);
    // 1x1 windows: no comparison at all.
    check_pool::<u64>(sh(1, 1, 3, 3, 1, 1, 0), 0, 6);
}

#[test]
fn argmax_rows_with_ties() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    for n in [1usize, 2, 3, 10] {
        let rows = 20;
        let mut xs: Vec<i64> = (0..rows * n)
            .map(|_| rng.random_range(-1000..1000))
            .collect();
        // Row 0: all equal (first wins); row 1: max at the end, duplicated.
        for v in xs[..n].iter_mut() {
            *v = 5;
        }
        if n >= 2 {
            xs[n..2 * n].fill(-3);
            xs[2 * n - 1] = 7;
            xs[2 * n - 2] = 7;
        }
        let (x0, x1) = shares::<u64>(&xs, &mut rng);
        let (k0, k1) = ArgmaxKey::<u64>::generate(rows, n, 16, &mut rng).expect("valid");
        let ((o0, st), (o1, _)) = run_two_party(
            |t| (k0.eval(t, &x0), t.stats()),
            |t| (k1.eval(t, &x1), t.stats()),
        );
        let got = add(&o0.expect("p0"), &o1.expect("p1"));
        assert_eq!(st.rounds, 2);
        for r in 0..rows {
            let row = &xs[r * n..(r + 1) * n];
            let best = row.iter().copied().max().expect("n >= 1");
            let first = row.iter().position(|v| *v == best).expect("present");
            for i in 0..n {
                assert_eq!(got[r * n + i], u64::from(i == first), "n={n} row={r}");
            }
        }
    }
}

/// Average pooling: local window sums, times the public fixed-point 1/k^2,
/// then one exact truncation.
#[test]
fn average_pool_is_local_sums_then_one_truncation() {
    use ariann_mpc::gates::linear::{mul_public, window_sums};
    use ariann_mpc::gates::trunc::TruncKey;
    let mut rng = ChaCha8Rng::seed_from_u64(31);
    let s = PoolShape {
        n: 1,
        c: 2,
        h: 6,
        w: 6,
        k: 2,
        stride: 2,
        pad: 0,
    };
    let f = 12u32;
    let xs: Vec<i64> = (0..s.input_len())
        .map(|_| rng.random_range(-(1 << 14)..(1 << 14)))
        .collect();
    let (x0, x1) = shares::<u64>(&xs, &mut rng);
    let quarter = 1u64 << (f - 2); // 0.25 in fixed point with f fractional bits
    let outs = s.windows().expect("valid").len();
    let (t0, t1) = TruncKey::<u64>::generate(f, 40, outs, &mut rng).expect("valid");
    let (o0, o1) = run_two_party(
        |t| t0.eval(t, &mul_public(&window_sums(&x0, &s).expect("len"), quarter)),
        |t| t1.eval(t, &mul_public(&window_sums(&x1, &s).expect("len"), quarter)),
    );
    let got = add(&o0.expect("p0"), &o1.expect("p1"));
    for (w, g) in s.windows().expect("valid").iter().zip(&got) {
        let sum: i64 = w.iter().map(|i| xs[*i]).sum();
        assert_eq!(*g, ((sum * quarter as i64) >> f) as u64);
    }
}

fn check_pool3<R: Ring>(s: PoolShape, seed: u64) {
    use ariann_mpc::gates::pool::MaxPoolOneHotKey;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut xs: Vec<i64> = (0..s.input_len())
        .map(|_| rng.random_range(-(1i64 << 20)..(1i64 << 20)))
        .collect();
    xs[0] = 7;
    xs[1] = 7;
    let (x0, x1) = shares::<R>(&xs, &mut rng);
    let (k0, k1) = MaxPoolOneHotKey::<R>::generate(s, 24, &mut rng).expect("valid");
    let ((o0, st), (o1, _)) = run_two_party(
        |t| (k0.eval(t, &x0), t.stats()),
        |t| (k1.eval(t, &x1), t.stats()),
    );
    let (o0, o1) = (o0.expect("p0"), o1.expect("p1"));
    assert_eq!(st.rounds, 3);
    let got = add(&o0.max, &o1.max);
    for (g, w) in got.iter().zip(plain_maxpool(&xs, &s)) {
        assert_eq!(*g, R::from_i64(w));
    }
    // The one-hot selection marks the first maximum of each window.
    let sel = add(&o0.selections[0], &o1.selections[0]);
    let mut at = 0;
    for w in s.windows().expect("valid") {
        let v: Vec<i64> = w.iter().map(|i| xs[*i]).collect();
        let best = *v.iter().max().expect("non-empty");
        let first = v.iter().position(|x| *x == best).expect("present");
        for j in 0..v.len() {
            assert_eq!(sel[at + j].to_u64(), u64::from(j == first));
        }
        at += v.len();
    }
}

#[test]
fn maxpool_in_three_rounds() {
    let sh = |n, c, h, w, k, stride, pad| PoolShape {
        n,
        c,
        h,
        w,
        k,
        stride,
        pad,
    };
    check_pool3::<u64>(sh(1, 2, 7, 7, 3, 2, 1), 41);
    check_pool3::<u64>(sh(2, 1, 6, 6, 3, 1, 0), 42);
    check_pool3::<u32>(sh(1, 1, 8, 8, 2, 2, 0), 43);
}

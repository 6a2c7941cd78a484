//! The gate tests of ariann-mpc over the gRPC transport on loopback: both
//! parties' outputs, reconstructed, equal the cleartext.

mod common;
use ariann_mpc::gates::beaver::{Bilinear, TripleKey};
use ariann_mpc::gates::cmp::ReluKey;
use ariann_mpc::gates::pool::{MaxPoolKey, PoolShape};
use ariann_mpc::gates::trunc::TruncKey;
use ariann_mpc::{Transport, open};
use ariann_ring::{Conv2dShape, Ring, RingTensor, reconstruct, share};
use common::{add, configs, pair, run_grpc, shares};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn inputs(k: u32, m: usize, rng: &mut ChaCha8Rng) -> Vec<i64> {
    let half = 1i64 << (k - 1);
    let mut v = vec![0, 1, -1, half - 1, -half];
    v.extend((v.len()..m).map(|_| rng.random_range(-half..half)));
    v
}

#[test]
fn relu_over_grpc() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let k = 32;
    let xs = inputs(k, 1000, &mut rng);
    let (x0, x1) = shares::<u64>(&xs, &mut rng);
    let (r0, r1) = ReluKey::<u64>::generate(k, xs.len(), &mut rng).expect("valid");
    let ((o0, s0), (o1, s1)) = run_grpc(
        "relu",
        |t| (r0.eval(t, &x0), t.stats()),
        |t| (r1.eval(t, &x1), t.stats()),
    );
    let (o0, o1) = (o0.expect("party 0"), o1.expect("party 1"));
    let relu = add(&o0.relu, &o1.relu);
    for (x, y) in xs.iter().zip(&relu) {
        assert_eq!(*y, u64::from_i64((*x).max(0)), "x={x}");
    }
    assert_eq!(s0.rounds, 1);
    assert_eq!(s1.rounds, 1);
    assert_eq!(s0.bytes_sent, 8 * xs.len() as u64);
    assert_eq!(s0.bytes_received, s1.bytes_sent);
}

#[test]
fn truncation_over_grpc() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let (f, k) = (16, 48);
    let xs = inputs(k, 1000, &mut rng);
    let (x0, x1) = shares::<u64>(&xs, &mut rng);
    let (t0, t1) = TruncKey::<u64>::generate(f, k, xs.len(), &mut rng).expect("valid");
    let (o0, o1) = run_grpc("trunc", |t| t0.eval(t, &x0), |t| t1.eval(t, &x1));
    let y = add(&o0.expect("p0"), &o1.expect("p1"));
    for (x, y) in xs.iter().zip(&y) {
        assert_eq!(*y, u64::from_i64(x >> f), "x={x}");
    }
}

fn bilinear<R: Ring>(map: Bilinear, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (sx, sy, _) = map.shapes().expect("valid shapes");
    let x = RingTensor::<R>::random(&sx, &mut rng);
    let y = RingTensor::<R>::random(&sy, &mut rng);
    let want = map.apply(&x, &y).expect("cleartext");
    let (x0, x1) = share(&x, &mut rng);
    let (y0, y1) = share(&y, &mut rng);
    let (k0, k1) = TripleKey::<R>::generate(map, &mut rng).expect("triple");
    let (z0, z1) = run_grpc(
        "bilinear",
        |t| k0.eval(t, &x0, &y0),
        |t| k1.eval(t, &x1, &y1),
    );
    let z = reconstruct(&z0.expect("p0"), &z1.expect("p1")).expect("same shapes");
    assert_eq!(z, want, "{map:?}");
}

#[test]
fn beaver_matmul_and_conv_over_grpc() {
    bilinear::<u64>(
        Bilinear::MatMul {
            m: 32,
            k: 100,
            n: 17,
        },
        3,
    );
    bilinear::<u32>(
        Bilinear::Conv2d(Conv2dShape {
            n: 2,
            c: 3,
            h: 12,
            w: 12,
            oc: 8,
            kh: 3,
            kw: 3,
            stride: 1,
            pad: 1,
        }),
        4,
    );
}

#[test]
fn maxpool_over_grpc() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let s = PoolShape {
        n: 2,
        c: 3,
        h: 8,
        w: 8,
        k: 2,
        stride: 2,
        pad: 0,
    };
    let xs: Vec<i64> = (0..s.input_len())
        .map(|_| rng.random_range(-(1i64 << 21)..(1i64 << 21)))
        .collect();
    let (x0, x1) = shares::<u64>(&xs, &mut rng);
    let (k0, k1) = MaxPoolKey::<u64>::generate(s, 24, &mut rng).expect("valid");
    let ((o0, st), (o1, _)) = run_grpc(
        "maxpool",
        |t| (k0.eval(t, &x0), t.stats()),
        |t| (k1.eval(t, &x1), t.stats()),
    );
    let got = add(&o0.expect("p0").max, &o1.expect("p1").max);
    let want: Vec<u64> = s
        .windows()
        .expect("valid")
        .iter()
        .map(|w| u64::from_i64(w.iter().map(|i| xs[*i]).max().expect("non-empty")))
        .collect();
    assert_eq!(got, want);
    assert_eq!(st.rounds, k0.rounds() as u64);
}

/// A 24 MB opening: 24 chunks of 1 MiB each way, reconstructed exactly.
#[test]
fn large_opening_is_chunked_and_exact() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let n = 3 << 20;
    let x: Vec<u64> = (0..n).map(|_| rng.random()).collect();
    let x0: Vec<u64> = (0..n).map(|_| rng.random()).collect();
    let x1: Vec<u64> = x.iter().zip(&x0).map(|(a, b)| a.wrapping_sub(*b)).collect();
    let ((o0, s0), (o1, _)) = run_grpc(
        "large",
        |t| (open(t, &x0, 64), t.stats()),
        |t| (open(t, &x1, 64), t.stats()),
    );
    assert_eq!(o0.expect("p0"), x);
    assert_eq!(o1.expect("p1"), x);
    assert_eq!(s0.bytes_sent, 8 * n as u64);
    assert_eq!(s0.rounds, 1);
}

/// Small, unequal chunk sizes: the sender uses the smaller one; many rounds,
/// empty messages, messages of one chunk plus one byte.
#[test]
fn negotiated_chunks_many_rounds() {
    let (c0, c1) = configs("chunks");
    let (mut t0, mut t1) = pair(c0.chunk_size(1000), c1.chunk_size(333));
    assert_eq!(t0.send_chunk_size(), 333);
    assert_eq!(t1.send_chunk_size(), 333);
    let sizes = [0usize, 1, 332, 333, 334, 999, 1000, 1001, 5000, 0];
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            for (i, n) in sizes.iter().enumerate() {
                let m = vec![i as u8; *n];
                let got = t1.exchange(&m).expect("p1 exchange");
                assert_eq!(got, vec![(i as u8) ^ 0xff; sizes[sizes.len() - 1 - i]]);
            }
        });
        for (i, n) in sizes.iter().enumerate() {
            let m = vec![(i as u8) ^ 0xff; sizes[sizes.len() - 1 - i]];
            let got = t0.exchange(&m).expect("p0 exchange");
            assert_eq!(got, vec![i as u8; *n]);
        }
        h.join().expect("p1");
    });
    assert_eq!(t0.stats().rounds, sizes.len() as u64);
}

/// Both parties on one shared tokio runtime, the protocol running inside
/// `spawn_blocking` (how a tokio daemon would run a job).
#[test]
fn shared_runtime_from_spawn_blocking() {
    use ariann_fss::Party;
    use ariann_net::{GrpcTransport, Listener};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (c0, c1) = configs("shared-rt");
    let h = rt.handle().clone();
    let listener = Listener::bind_on(c0, Some(h.clone())).expect("bind");
    let c1 = c1.peer(listener.local_addr().to_string());
    let (a, b) = rt.block_on(async move {
        let p0 = tokio::task::spawn_blocking(move || {
            let mut t = listener.accept().expect("p0 link");
            assert_eq!(t.party(), Party::P0);
            let mut got = Vec::new();
            for i in 0..50u32 {
                got.push(t.exchange(&i.to_le_bytes()).expect("p0"));
            }
            got
        });
        let p1 = tokio::task::spawn_blocking(move || {
            let mut t = GrpcTransport::connect_on(c1, Some(h)).expect("p1 link");
            let mut got = Vec::new();
            for i in 0..50u32 {
                got.push(t.exchange(&(1000 + i).to_le_bytes()).expect("p1"));
            }
            got
        });
        (p0.await.expect("p0 task"), p1.await.expect("p1 task"))
    });
    for i in 0..50u32 {
        assert_eq!(a[i as usize], (1000 + i).to_le_bytes());
        assert_eq!(b[i as usize], i.to_le_bytes());
    }
}

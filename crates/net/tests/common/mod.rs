//! Helpers shared by the gRPC transport tests: loopback pairs, share and
//! reconstruct, test certificates.
#![allow(dead_code, unreachable_pub)]

use ariann_fss::Party;
use ariann_mpc::MpcError;
use ariann_net::{GrpcTransport, LinkSecret, Listener, NetConfig, TlsConfig};
use ariann_ring::Ring;
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

/// A fresh session id per test.
pub fn session(tag: &str) -> Vec<u8> {
    format!("test-{tag}").into_bytes()
}

/// A test's link secret: the tag's bytes, zero-padded (tags differ, so do
/// their secrets).
pub fn secret_bytes(tag: &str) -> [u8; 32] {
    let mut b = [0u8; 32];
    for (x, y) in b.iter_mut().zip(tag.bytes()) {
        *x = y;
    }
    b
}

/// Configurations of both parties for a loopback test with short deadlines.
pub fn configs(tag: &str) -> (NetConfig, NetConfig) {
    let s = session(tag);
    let secret = LinkSecret::from_bytes(secret_bytes(tag));
    let c0 = NetConfig::new(Party::P0, s.clone())
        .link_secret(secret.clone())
        .connect_timeout(Duration::from_secs(10))
        .exchange_timeout(Duration::from_secs(20));
    let c1 = NetConfig::new(Party::P1, s)
        .link_secret(secret)
        .connect_timeout(Duration::from_secs(10))
        .exchange_timeout(Duration::from_secs(20));
    (c0, c1)
}

/// Connects both parties over loopback (party 0 on 127.0.0.1:0) and returns
/// both results of setting up the link.
pub fn connect(
    c0: NetConfig,
    c1: NetConfig,
) -> (
    Result<GrpcTransport, MpcError>,
    Result<GrpcTransport, MpcError>,
) {
    let listener = Listener::bind(c0).expect("bind 127.0.0.1:0");
    let addr = listener.local_addr();
    let c1 = c1.peer(addr.to_string());
    std::thread::scope(|s| {
        let h = s.spawn(move || GrpcTransport::connect(c1));
        let t0 = listener.accept();
        let t1 = h.join().expect("party 1 thread");
        (t0, t1)
    })
}

/// A connected pair.
pub fn pair(c0: NetConfig, c1: NetConfig) -> (GrpcTransport, GrpcTransport) {
    let (t0, t1) = connect(c0, c1);
    (t0.expect("party 0 link"), t1.expect("party 1 link"))
}

/// Runs `f0` as party 0 and `f1` as party 1 on two threads over a fresh
/// loopback gRPC link.
pub fn run_grpc<A, B, F0, F1>(tag: &str, f0: F0, f1: F1) -> (A, B)
where
    A: Send,
    B: Send,
    F0: FnOnce(&mut GrpcTransport) -> A + Send,
    F1: FnOnce(&mut GrpcTransport) -> B + Send,
{
    let (c0, c1) = configs(tag);
    let (mut t0, mut t1) = pair(c0, c1);
    std::thread::scope(|s| {
        let h1 = s.spawn(move || f1(&mut t1));
        let a = f0(&mut t0);
        let b = h1.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        (a, b)
    })
}

/// Additive shares of signed cleartext values.
pub fn shares<R: Ring>(xs: &[i64], rng: &mut ChaCha8Rng) -> (Vec<R>, Vec<R>) {
    let a: Vec<R> = xs.iter().map(|_| R::random(rng)).collect();
    let b = xs
        .iter()
        .zip(&a)
        .map(|(x, a)| R::from_i64(*x).wsub(*a))
        .collect();
    (a, b)
}

/// Reconstruction: elementwise sum of the two parties' shares.
pub fn add<R: Ring>(a: &[R], b: &[R]) -> Vec<R> {
    a.iter().zip(b).map(|(x, y)| x.wadd(*y)).collect()
}

/// A self-signed certificate and key (PEM) for `name`.
pub fn self_signed(name: &str) -> (String, String) {
    let ck = rcgen::generate_simple_self_signed(vec![name.to_string()]).expect("rcgen");
    (ck.cert.pem(), ck.signing_key.serialize_pem())
}

/// Mutual-TLS configurations of both parties, each pinning the other.
pub fn tls_pair() -> (TlsConfig, TlsConfig) {
    let (c0, k0) = self_signed("party0.test");
    let (c1, k1) = self_signed("party1.test");
    let t0 = TlsConfig {
        cert_pem: c0.clone(),
        key_pem: k0,
        peer_pem: c1.clone(),
        server_name: "party0.test".to_string(),
    };
    let t1 = TlsConfig {
        cert_pem: c1,
        key_pem: k1,
        peer_pem: c0,
        server_name: "party0.test".to_string(),
    };
    (t0, t1)
}

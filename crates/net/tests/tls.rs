//! Mutual TLS on the party link: certificates made at test time (rcgen),
//! each party pinning the other's self-signed certificate.

mod common;
use ariann_mpc::{MpcError, Transport, open};
use ariann_net::{Listener, NetConfig, TlsConfig};
use ariann_proto::v1::party_link_client::PartyLinkClient;
use common::{configs, connect, self_signed, tls_pair};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::{Duration, Instant};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

fn short(c: NetConfig) -> NetConfig {
    c.connect_timeout(Duration::from_secs(2))
}

#[test]
fn mutual_tls_link_opens_exactly() {
    let (tls0, tls1) = tls_pair();
    let (c0, c1) = configs("tls-ok");
    let (t0, t1) = connect(c0.tls(tls0), c1.tls(tls1));
    let (mut t0, mut t1) = (t0.expect("p0 over TLS"), t1.expect("p1 over TLS"));
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let n = 600_000;
    let x: Vec<u64> = (0..n).map(|_| rng.random()).collect();
    let x0: Vec<u64> = (0..n).map(|_| rng.random()).collect();
    let x1: Vec<u64> = x.iter().zip(&x0).map(|(a, b)| a.wrapping_sub(*b)).collect();
    let (o0, o1) = std::thread::scope(|s| {
        let h = s.spawn(|| open(&mut t1, &x1, 64));
        (open(&mut t0, &x0, 64), h.join().expect("p1"))
    });
    assert_eq!(o0.expect("p0"), x);
    assert_eq!(o1.expect("p1"), x);
    assert_eq!(t0.stats().bytes_sent, 8 * n as u64);
}

fn assert_tls_refusal(e: &MpcError) {
    match e {
        MpcError::Connect(m) => assert!(m.starts_with("TLS: "), "{m}"),
        other => panic!("expected a TLS refusal, got {other:?}"),
    }
}

#[test]
fn client_with_an_unpinned_certificate_is_refused() {
    let (tls0, tls1) = tls_pair();
    let (stranger_cert, stranger_key) = self_signed("party1.test");
    let stranger = TlsConfig {
        cert_pem: stranger_cert,
        key_pem: stranger_key,
        ..tls1
    };
    let (c0, c1) = configs("tls-unpinned");
    let start = Instant::now();
    let (t0, t1) = connect(short(c0).tls(tls0), short(c1).tls(stranger));
    let e1 = t1.expect_err("party 1 refused");
    assert_tls_refusal(&e1);
    assert!(matches!(t0, Err(MpcError::Timeout(_))), "{t0:?}");
    assert!(start.elapsed() < Duration::from_secs(4));
}

#[test]
fn server_with_an_unpinned_certificate_is_refused() {
    let (tls0, tls1) = tls_pair();
    let (other, _) = self_signed("party0.test");
    let pins_other = TlsConfig {
        peer_pem: other,
        ..tls1
    };
    let (c0, c1) = configs("tls-server-unpinned");
    let start = Instant::now();
    let (t0, t1) = connect(short(c0).tls(tls0), short(c1).tls(pins_other));
    let e1 = t1.expect_err("party 1 refuses");
    assert_tls_refusal(&e1);
    assert!(t0.is_err());
    assert!(start.elapsed() < Duration::from_secs(4));
}

#[test]
fn client_without_a_certificate_is_refused() {
    let (tls0, _tls1) = tls_pair();
    let server_pem = tls0.cert_pem.clone();
    let (c0, _) = configs("tls-nocert");
    let listener = Listener::bind(short(c0).tls(tls0)).expect("bind");
    let addr = listener.local_addr();
    let start = Instant::now();
    std::thread::scope(|s| {
        let h = s.spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let tls = ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(server_pem))
                    .domain_name("party0.test");
                let ch = Endpoint::from_shared(format!("https://{addr}"))
                    .expect("uri")
                    .tls_config(tls)
                    .expect("tls")
                    .connect()
                    .await;
                match ch {
                    Err(e) => format!("connect: {e:?}"),
                    Ok(ch) => {
                        let mut c = PartyLinkClient::new(ch);
                        match c.link(tokio_stream::pending()).await {
                            Err(s) => format!("link: {s:?}"),
                            Ok(_) => "accepted".to_string(),
                        }
                    }
                }
            })
        });
        let t0 = listener.accept();
        let client = h.join().expect("client");
        assert!(matches!(t0, Err(MpcError::Timeout(_))), "{t0:?}");
        assert_ne!(client, "accepted");
        // The server's alert (CertificateRequired), or the connection it
        // closed (broken pipe, reset, cancelled) when the client wrote first.
        assert!(client.starts_with("link: ") || client.starts_with("connect: "));
    });
    assert!(start.elapsed() < Duration::from_secs(4));
}

#[test]
fn plaintext_client_to_a_tls_server_is_refused() {
    let (tls0, _) = tls_pair();
    let (c0, c1) = configs("tls-plain");
    let start = Instant::now();
    let (t0, t1) = connect(short(c0).tls(tls0), short(c1));
    assert!(t0.is_err());
    assert!(
        matches!(t1, Err(MpcError::Connect(_) | MpcError::PeerGone)),
        "{t1:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(5));
}

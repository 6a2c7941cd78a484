//! The dealer's key stream in process: a `KeyServer` on loopback and the
//! parties' `DealerStreamSource`s, with small chunks so bundles span many
//! chunks; refusals (a party asking twice, another plan, an unpinned
//! certificate), a party leaving early, an unreachable dealer.

mod common;
use ariann_dealer::auth::{DealerSigningKey, KeyTrust, LinkSecret};
use ariann_dealer::ledger::Ledger;
use ariann_fss::Party;
use ariann_mpc::bundle::generate_bundles;
use ariann_mpc::{GateDesc, KeyBundle, MpcError, PreprocessingSource, SourceFault};
use ariann_net::TlsConfig;
use ariann_net::keys::{
    DealerConfig, DealerStreamSource, DealerTls, KeyJob, KeyServeError, KeyServer, KeyServerConfig,
    KeyStreamError, ServeReport,
};
use common::self_signed;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::time::{Duration, Instant};

const PLAN: [u8; 32] = [7; 32];

/// Four small gates, then `big` larger ones (a job whose keys do not fit
/// in the buffers between the dealer and a party).
fn gates(big: usize) -> Vec<GateDesc> {
    let mut g = vec![
        GateDesc::Relu { m: 2000, k: 32 },
        GateDesc::Drelu { m: 10, k: 16 },
        GateDesc::EqZero { m: 300, k: 20 },
        GateDesc::Relu { m: 1, k: 8 },
    ];
    g.extend(std::iter::repeat_n(
        GateDesc::Relu { m: 20_000, k: 32 },
        big,
    ));
    g
}

/// Larger gates of the "early end" tests.
const BIG: usize = 12;

type Pair = (KeyBundle<u64>, KeyBundle<u64>);

fn bundles(seed: u64, big: usize) -> Vec<Pair> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    gates(big)
        .into_iter()
        .enumerate()
        .map(|(i, g)| generate_bundles::<u64, _>(i as u64, g, &mut rng).expect("generate"))
        .collect()
}

/// A fresh random session per job (every test's parties keep their own
/// ledger anyway).
fn job(big: usize) -> KeyJob {
    use rand::RngCore;
    let mut session = [0u8; 16];
    rand::rng().fill_bytes(&mut session);
    KeyJob {
        session,
        plan_hash: PLAN,
        ring_bits: 64,
        bundles: gates(big).len() as u64,
        link_secret: LinkSecret::from_bytes([5; 32]),
    }
}

/// The dealer of these tests (a fixed seed), and another one.
fn dealer_key() -> DealerSigningKey {
    DealerSigningKey::from_seed(&[0x42; 32])
}

fn other_key() -> DealerSigningKey {
    DealerSigningKey::from_seed(&[0x17; 32])
}

/// A fresh, empty ledger directory under the target's temporary directory.
fn fresh_ledger() -> Ledger {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "net-keys-ledger-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    Ledger::open(&dir).expect("ledger")
}

fn server(tls: Option<DealerTls>, big: usize) -> KeyServer {
    let mut cfg = KeyServerConfig::new("127.0.0.1:0".parse().expect("addr"));
    cfg.chunk_size = 4096;
    cfg.wait_timeout = Duration::from_secs(20);
    cfg.tls = tls;
    KeyServer::bind(cfg, job(big), &dealer_key()).expect("bind")
}

/// A party expecting the plan of `gates(big)` (or `bundles` gates).
fn party_cfg_n(addr: &str, party: Party, plan: [u8; 32], bundles: u64) -> DealerConfig {
    let trust = KeyTrust {
        dealer: dealer_key().public(),
        ledger: fresh_ledger(),
    };
    let mut c = DealerConfig::new(addr, party, plan, bundles, trust);
    c.connect_timeout = Duration::from_secs(5);
    c.recv_timeout = Duration::from_secs(10);
    c
}

fn party_cfg(addr: &str, party: Party, plan: [u8; 32], big: usize) -> DealerConfig {
    party_cfg_n(addr, party, plan, gates(big).len() as u64)
}

/// Serves `bundles(seed, big)` on a thread.
fn serve(
    s: KeyServer,
    seed: u64,
    big: usize,
) -> std::thread::JoinHandle<Result<ServeReport, KeyServeError>> {
    std::thread::spawn(move || {
        s.serve(
            bundles(seed, big)
                .into_iter()
                .map(Ok::<Pair, std::convert::Infallible>),
        )
    })
}

/// Takes every bundle and checks it against the dealer's.
fn consume(src: &mut DealerStreamSource<u64>, party: Party, want: &[Pair]) {
    for (a, b) in want {
        let mine = if party == Party::P0 { a } else { b };
        let key = src.next_bundle(party, &mine.tag).expect("bundle");
        let got = KeyBundle {
            party,
            tag: mine.tag,
            key,
        };
        assert_eq!(got.encode(), mine.encode(), "bundle {}", mine.tag.index);
    }
}

#[test]
fn both_parties_receive_their_bundles_in_chunks() {
    let s = server(None, 0);
    let addr = s.local_addr().to_string();
    let h = serve(s, 1, 0);
    let want = bundles(1, 0);
    std::thread::scope(|sc| {
        for party in [Party::P0, Party::P1] {
            let (addr, want) = (&addr, &want);
            sc.spawn(move || {
                let mut src = DealerStreamSource::<u64>::connect(party_cfg(addr, party, PLAN, 0))
                    .expect("open");
                assert_eq!(src.link_secret(), LinkSecret::from_bytes([5; 32]));
                assert_eq!(src.header().bundles, 4);
                consume(&mut src, party, want);
                // Past the end: exhausted, not a hang.
                let extra = want[0].0.tag;
                assert!(matches!(
                    src.next_bundle(party, &extra),
                    Err(MpcError::KeysExhausted { .. })
                ));
            });
        }
    });
    let r = h.join().expect("server thread").expect("served");
    assert_eq!(r.bundles, 4);
    let b0: u64 = want.iter().map(|(a, _)| a.encode().len() as u64).sum();
    assert_eq!(r.bytes[0], b0);
    assert!(b0 > 100_000, "bundles span many 4 KiB chunks");
}

/// A party buffers no bundle longer than its plan's largest: the plan's
/// exact bundle sizes (`GateDesc::cost`) let every bundle through, a limit
/// one byte below the largest refuses that bundle, naming the limit.
#[test]
fn bundles_past_the_plans_largest_are_refused() {
    let largest = gates(0)
        .iter()
        .map(|g| g.cost(64).expect("cost").encoded_bytes)
        .max()
        .expect("gates") as usize;
    let want = bundles(4, 0);
    let actual = want
        .iter()
        .map(|(a, b)| a.encode().len().max(b.encode().len()));
    assert_eq!(actual.max(), Some(largest), "the cost is the exact size");
    for limit in [largest, largest - 1] {
        let s = server(None, 0);
        let addr = s.local_addr().to_string();
        let h = serve(s, 4, 0);
        let outcomes: Vec<Result<(), String>> = std::thread::scope(|sc| {
            let handles: Vec<_> = [Party::P0, Party::P1]
                .into_iter()
                .map(|party| {
                    let (addr, want) = (&addr, &want);
                    sc.spawn(move || {
                        let mut c = party_cfg(addr, party, PLAN, 0);
                        c.max_bundle = limit;
                        let mut src = DealerStreamSource::<u64>::connect(c).expect("open");
                        for (a, b) in want {
                            let tag = if party == Party::P0 { a.tag } else { b.tag };
                            src.next_bundle(party, &tag).map_err(|e| e.to_string())?;
                        }
                        Ok(())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("party"))
                .collect()
        });
        if limit == largest {
            assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
            h.join().expect("server thread").expect("served");
        } else {
            // Both parties fail; at least one names the limit. The other may
            // instead see its stream end, when the dealer aborts the session
            // after the first refusal (a race under load).
            let errs: Vec<&String> = outcomes
                .iter()
                .map(|o| o.as_ref().expect_err("the largest bundle is refused"))
                .collect();
            let named = format!("limit of {limit} bytes");
            assert!(errs.iter().any(|e| e.contains(&named)), "{errs:?}");
            for e in &errs {
                assert!(e.contains(&named) || e.contains("stream broke"), "{errs:?}");
            }
            let _ = h.join().expect("server thread");
        }
    }
}

#[test]
fn asking_twice_or_for_another_plan_is_refused() {
    let s = server(None, BIG);
    let addr = s.local_addr().to_string();
    let h = serve(s, 2, BIG);
    let want = bundles(2, BIG);
    let mut p0 =
        DealerStreamSource::<u64>::connect(party_cfg(&addr, Party::P0, PLAN, BIG)).expect("p0");
    let again = DealerStreamSource::<u64>::connect(party_cfg(&addr, Party::P0, PLAN, BIG))
        .expect_err("a second request of party 0");
    match &again {
        KeyStreamError::Refused(m) => assert!(m.contains("already pulled"), "{m}"),
        e => panic!("expected a refusal, got {e:?}"),
    }
    let other = DealerStreamSource::<u64>::connect(party_cfg(&addr, Party::P1, [8; 32], BIG))
        .expect_err("another plan");
    assert!(
        matches!(&other, KeyStreamError::PlanMismatch { dealer: None, .. }),
        "{other:?}"
    );
    // The refusal does not disclose the dealer's plan hash.
    assert!(!other.to_string().contains("0707"), "{other}");
    assert!(other.to_string().contains("another plan"), "{other}");
    let wrong_ring = DealerStreamSource::<u32>::connect(party_cfg(&addr, Party::P1, PLAN, BIG));
    // The ring is checked on the header, after the dealer handed out the
    // slot: party 1's keys are gone with it, so the job fails.
    assert!(matches!(
        wrong_ring,
        Err(KeyStreamError::RingMismatch {
            dealer: 64,
            expected: 32
        })
    ));
    let err = h.join().expect("server thread").expect_err("party 1 left");
    assert!(
        matches!(err, KeyServeError::PartyGone { party: 1, .. }),
        "{err}"
    );
    // Party 0's stream breaks: an error, not a hang.
    let mut failed = false;
    for (a, _) in &want {
        if p0.next_bundle(Party::P0, &a.tag).is_err() {
            failed = true;
            break;
        }
    }
    assert!(failed, "party 0 cannot finish once the dealer stopped");
}

#[test]
fn a_party_leaving_early_fails_the_dealer_and_the_other_party() {
    let s = server(None, BIG);
    let addr = s.local_addr().to_string();
    let h = serve(s, 3, BIG);
    let want = bundles(3, BIG);
    let mut p0 =
        DealerStreamSource::<u64>::connect(party_cfg(&addr, Party::P0, PLAN, BIG)).expect("p0");
    let mut p1 =
        DealerStreamSource::<u64>::connect(party_cfg(&addr, Party::P1, PLAN, BIG)).expect("p1");
    p1.next_bundle(Party::P1, &want[0].1.tag)
        .expect("first bundle");
    drop(p1);
    let err = h.join().expect("server thread").expect_err("party 1 left");
    match &err {
        KeyServeError::PartyGone {
            party: 1, bundles, ..
        } => assert_eq!(*bundles, 4 + BIG as u64),
        e => panic!("{e:?}"),
    }
    assert!(err.to_string().contains("party 1 disconnected"), "{err}");
    let total: usize = want.iter().map(|(a, _)| a.encode().len()).sum();
    assert!(
        total > 32 << 20,
        "the job outgrows the buffers ({total} bytes)"
    );
    let start = Instant::now();
    let res: Result<Vec<_>, _> = want
        .iter()
        .map(|(a, _)| p0.next_bundle(Party::P0, &a.tag))
        .collect();
    match res {
        Err(MpcError::KeySource { .. } | MpcError::KeysExhausted { .. }) => {}
        other => panic!("party 0: {other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(9));
}

#[test]
fn an_unreachable_dealer_fails_within_the_deadline() {
    let mut c = party_cfg("127.0.0.1:9", Party::P0, PLAN, 0);
    c.connect_timeout = Duration::from_secs(1);
    let start = Instant::now();
    let e = DealerStreamSource::<u64>::connect(c).expect_err("nobody there");
    assert!(matches!(e, KeyStreamError::Unreachable { .. }), "{e:?}");
    assert!(start.elapsed() < Duration::from_secs(4));
}

#[test]
fn mutual_tls_pins_each_party() {
    let (dc, dk) = self_signed("dealer.test");
    let (c0, k0) = self_signed("party0.test");
    let (c1, k1) = self_signed("party1.test");
    let tls_cfg = DealerTls {
        cert_pem: dc.clone(),
        key_pem: dk,
        party_pems: [c0.clone(), c1.clone()],
    };
    let s = server(Some(tls_cfg), 0);
    let addr = s.local_addr().to_string();
    let h = serve(s, 4, 0);
    let want = bundles(4, 0);
    let tls = |cert: &str, key: &str| TlsConfig {
        cert_pem: cert.to_string(),
        key_pem: key.to_string(),
        peer_pem: dc.clone(),
        server_name: "dealer.test".into(),
    };
    // Party 0's certificate cannot pull party 1's keys.
    let mut c = party_cfg(&addr, Party::P1, PLAN, 0);
    c.tls = Some(tls(&c0, &k0));
    match DealerStreamSource::<u64>::connect(c) {
        Err(KeyStreamError::Refused(m)) => assert!(m.contains("pinned for party 1"), "{m}"),
        other => panic!("{other:?}"),
    }
    std::thread::scope(|sc| {
        for (party, cert, key) in [(Party::P0, &c0, &k0), (Party::P1, &c1, &k1)] {
            let (addr, want, tls) = (&addr, &want, &tls);
            sc.spawn(move || {
                let mut c = party_cfg(addr, party, PLAN, 0);
                c.tls = Some(tls(cert, key));
                let mut src = DealerStreamSource::<u64>::connect(c).expect("open over TLS");
                consume(&mut src, party, want);
            });
        }
    });
    h.join().expect("server thread").expect("served over TLS");
}

/// A dealer that breaks the stream in a given way.
mod fake {
    use super::*;
    use ariann_proto::KEY_STREAM_VERSION;
    use ariann_proto::v1::key_chunk::Body;
    use ariann_proto::v1::key_stream_server::{KeyStream, KeyStreamServer};
    use ariann_proto::v1::{KeyBundleChunk, KeyChunk, KeyStreamHeader, PullMessage};
    use std::pin::Pin;
    use tokio_stream::Stream;
    use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
    use tonic::{Request, Response, Status, Streaming};

    #[derive(Clone, Copy)]
    pub(super) enum Fault {
        /// A chunk of garbage where bundle 0 should be.
        Garbage,
        /// Chunk 1 of bundle 0 first.
        OutOfOrder,
        /// Bundle 0, then the end of the stream (3 announced).
        EarlyEnd,
        /// The header, then silence with the stream open.
        Silent,
        /// A header without signature (then as EarlyEnd).
        Unsigned,
        /// A header signed by another dealer key, naming that key.
        OtherKey,
        /// A header signed by another key but naming the pinned one.
        ForgedKey,
        /// A header whose bundle count was raised after signing.
        Tampered,
    }

    /// The header of the fake job (session [1; 16], party 0, 3 bundles,
    /// link secret [6; 32]) signed with `key` as `keys.proto` specifies.
    fn signed_header(key: &DealerSigningKey, named: [u8; 32], bundles: u64) -> KeyStreamHeader {
        let mut m = Vec::new();
        m.extend_from_slice(&[1; 16]);
        m.push(0);
        m.extend_from_slice(&PLAN);
        m.extend_from_slice(&bundles.to_le_bytes());
        m.extend_from_slice(&64u32.to_le_bytes());
        m.extend_from_slice(&[6; 32]);
        m.extend_from_slice(&named);
        KeyStreamHeader {
            format_version: KEY_STREAM_VERSION,
            session_id: vec![1; 16],
            party: 0,
            bundles,
            ring_bits: 64,
            plan_hash: PLAN.to_vec(),
            max_chunk: 4096,
            link_secret: vec![6; 32],
            dealer_public_key: named.to_vec(),
            signature: key.sign(b"ariann-rs key stream header v3", &m).to_vec(),
        }
    }

    struct Fake(Fault);

    type Out = Pin<Box<dyn Stream<Item = Result<KeyChunk, Status>> + Send>>;

    fn chunk(bundle: u64, chunk: u32, last: bool, payload: Vec<u8>) -> Result<KeyChunk, Status> {
        Ok(KeyChunk {
            body: Some(Body::Chunk(KeyBundleChunk {
                bundle,
                chunk,
                last,
                payload: payload.into(),
            })),
        })
    }

    #[tonic::async_trait]
    impl KeyStream for Fake {
        type PullStream = Out;

        async fn pull(
            &self,
            req: Request<Streaming<PullMessage>>,
        ) -> Result<Response<Out>, Status> {
            let mut inbound = req.into_inner();
            let _ = inbound.message().await;
            let (tx, rx) = tokio::sync::mpsc::channel(16);
            let pinned = dealer_key().public().to_bytes();
            let h = match self.0 {
                Fault::Unsigned => KeyStreamHeader {
                    dealer_public_key: Vec::new(),
                    signature: Vec::new(),
                    ..signed_header(&dealer_key(), pinned, 3)
                },
                Fault::OtherKey => signed_header(&other_key(), other_key().public().to_bytes(), 3),
                Fault::ForgedKey => signed_header(&other_key(), pinned, 3),
                Fault::Tampered => KeyStreamHeader {
                    bundles: 4,
                    ..signed_header(&dealer_key(), pinned, 3)
                },
                _ => signed_header(&dealer_key(), pinned, 3),
            };
            let header = KeyChunk {
                body: Some(Body::Header(h)),
            };
            let first = bundles(9, 0).remove(0).0.encode();
            let fault = self.0;
            tokio::spawn(async move {
                let _ = tx.send(Ok(header)).await;
                match fault {
                    Fault::Garbage => {
                        let _ = tx.send(chunk(0, 0, true, vec![0xAB; 100])).await;
                    }
                    Fault::OutOfOrder => {
                        let _ = tx.send(chunk(0, 1, true, first[..10].to_vec())).await;
                    }
                    Fault::EarlyEnd
                    | Fault::Unsigned
                    | Fault::OtherKey
                    | Fault::ForgedKey
                    | Fault::Tampered => {
                        let n = first.len().div_ceil(4096);
                        for (i, c) in first.chunks(4096).enumerate() {
                            let _ = tx.send(chunk(0, i as u32, i + 1 == n, c.to_vec())).await;
                        }
                    }
                    Fault::Silent => {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                }
                // Keep the stream open while the party reads (Silent), then end it.
                drop(inbound);
            });
            Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
        }
    }

    /// Serves `fault` on a runtime of its own; returns the address.
    pub(super) fn start(fault: Fault) -> (tokio::runtime::Runtime, String) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let l = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        rt.spawn(
            tonic::transport::Server::builder()
                .add_service(KeyStreamServer::new(Fake(fault)))
                .serve_with_incoming(TcpListenerStream::new(l)),
        );
        (rt, addr)
    }
}

#[test]
fn a_broken_dealer_stream_is_a_typed_error_never_a_hang() {
    let want = bundles(9, 0);
    let tag0 = want[0].0.tag;
    let tag1 = want[1].0.tag;
    let open = |fault| {
        let (rt, addr) = fake::start(fault);
        let mut c = party_cfg_n(&addr, Party::P0, PLAN, 3);
        c.recv_timeout = Duration::from_secs(1);
        let src = DealerStreamSource::<u64>::connect(c).expect("header");
        (rt, src)
    };
    let (_rt, mut src) = open(fake::Fault::Garbage);
    match src.next_bundle(Party::P0, &tag0) {
        Err(MpcError::KeySource {
            index: 0,
            fault: SourceFault::Decode(_),
        }) => {}
        other => panic!("garbage: {other:?}"),
    }
    let (_rt, mut src) = open(fake::Fault::OutOfOrder);
    match src.next_bundle(Party::P0, &tag0) {
        Err(MpcError::KeySource {
            index: 0,
            fault: SourceFault::Decode(m),
        }) => assert!(m.contains("chunk 1 of bundle 0"), "{m}"),
        other => panic!("out of order: {other:?}"),
    }
    let (_rt, mut src) = open(fake::Fault::EarlyEnd);
    src.next_bundle(Party::P0, &tag0).expect("bundle 0");
    match src.next_bundle(Party::P0, &tag1) {
        Err(MpcError::KeysExhausted { index: 1 }) => {}
        other => panic!("early end: {other:?}"),
    }
    let (_rt, mut src) = open(fake::Fault::Silent);
    let start = Instant::now();
    match src.next_bundle(Party::P0, &tag0) {
        Err(MpcError::KeySource {
            index: 0,
            fault: SourceFault::Io(m),
        }) => assert!(m.contains("within"), "{m}"),
        other => panic!("silent: {other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(5));
    // Errors are sticky.
    assert!(src.next_bundle(Party::P0, &tag0).is_err());
}

#[test]
fn unsigned_forged_or_tampered_headers_are_refused() {
    for (fault, what) in [
        (fake::Fault::Unsigned, "no dealer public key"),
        (fake::Fault::OtherKey, "this party pins"),
        (fake::Fault::ForgedKey, "bad dealer signature"),
        (fake::Fault::Tampered, "bad dealer signature"),
    ] {
        let (_rt, addr) = fake::start(fault);
        let mut c = party_cfg_n(&addr, Party::P0, PLAN, 3);
        if matches!(fault, fake::Fault::Tampered) {
            // The count the tampered header claims: only the signature fails.
            c.bundles = 4;
        }
        match DealerStreamSource::<u64>::connect(c) {
            Err(e @ KeyStreamError::Signature(_)) => {
                assert!(e.to_string().contains(what), "{e}");
            }
            other => panic!("{what}: {other:?}"),
        }
    }
}

#[test]
fn a_bundle_count_other_than_the_plans_is_refused() {
    let (_rt, addr) = fake::start(fake::Fault::EarlyEnd);
    match DealerStreamSource::<u64>::connect(party_cfg_n(&addr, Party::P0, PLAN, 2)) {
        Err(KeyStreamError::BundleCount {
            dealer: 3,
            expected: 2,
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_replayed_session_is_refused_by_the_ledger() {
    // The fake dealer serves the same signed session every time, as a
    // recording of a real one would.
    let (_rt, addr) = fake::start(fake::Fault::EarlyEnd);
    let c = party_cfg_n(&addr, Party::P0, PLAN, 3);
    let ledger = c.trust.ledger.clone();
    let tag0 = bundles(9, 0)[0].0.tag;
    let mut src = DealerStreamSource::<u64>::connect(c.clone()).expect("first time");
    assert_eq!(src.link_secret(), LinkSecret::from_bytes([6; 32]));
    assert_eq!(format!("{:?}", src.link_secret()), "LinkSecret(..)");
    src.next_bundle(Party::P0, &tag0).expect("bundle 0");
    drop(src);
    assert!(ledger.is_used(ariann_dealer::keyfile::SessionId([1; 16]), Party::P0));
    match DealerStreamSource::<u64>::connect(c) {
        Err(e @ KeyStreamError::Ledger(_)) => {
            assert!(e.to_string().contains("already used on this host"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

/// Parties that connect and then stall do not hold the dealer past its
/// overall deadline.
#[test]
fn stalled_parties_fail_the_job_at_the_dealer_s_deadline() {
    let mut cfg = KeyServerConfig::new("127.0.0.1:0".parse().expect("addr"));
    cfg.chunk_size = 4096;
    cfg.wait_timeout = Duration::from_secs(20);
    cfg.deadline = Duration::from_millis(1500);
    let s = KeyServer::bind(cfg, job(BIG), &dealer_key()).expect("bind");
    let addr = s.local_addr().to_string();
    let start = Instant::now();
    let h = serve(s, 5, BIG);
    let want = bundles(5, BIG);
    let mut p0 =
        DealerStreamSource::<u64>::connect(party_cfg(&addr, Party::P0, PLAN, BIG)).expect("p0");
    let mut p1 =
        DealerStreamSource::<u64>::connect(party_cfg(&addr, Party::P1, PLAN, BIG)).expect("p1");
    p0.next_bundle(Party::P0, &want[0].0.tag)
        .expect("p0 bundle");
    p1.next_bundle(Party::P1, &want[0].1.tag)
        .expect("p1 bundle");
    // Both stall here.
    let err = h.join().expect("server thread").expect_err("deadline");
    assert!(matches!(err, KeyServeError::Deadline(..)), "{err:?}");
    assert!(err.to_string().contains("deadline"), "{err}");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(8),
        "{took:?}"
    );
    drop((p0, p1));
}

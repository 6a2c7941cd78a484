//! Failures of the gRPC link, each a clear typed error within a deadline:
//! a peer that leaves mid-job, another protocol version or session, garbage
//! and oversized frames, a share of the wrong length, timeouts.

mod common;
use ariann_fss::Party;
use ariann_mpc::gates::cmp::ReluKey;
use ariann_mpc::{MpcError, Transport};
use ariann_net::{GrpcTransport, LinkSecret, Listener, NetConfig};
use ariann_proto::LINK_PROTOCOL_VERSION;
use ariann_proto::v1::link_message::Body;
use ariann_proto::v1::party_link_client::PartyLinkClient;
use ariann_proto::v1::{Frame, Hello, LinkAuth, LinkMessage};
use common::{configs, connect, pair, secret_bytes, session};
use hmac::{Hmac, KeyInit, Mac};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::Sha256;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn hello(version: u32, party: u32, nonce: &[u8]) -> LinkMessage {
    LinkMessage {
        body: Some(Body::Hello(Hello {
            protocol_version: version,
            session_id: Vec::new(),
            party,
            max_chunk: 1 << 20,
            nonce: nonce.to_vec(),
            mac: Vec::new(),
            fresh: true,
        })),
    }
}

fn frame(session: &[u8], seq: u64, chunk: u32, last: bool, payload: Vec<u8>) -> LinkMessage {
    LinkMessage {
        body: Some(Body::Frame(Frame {
            version: LINK_PROTOCOL_VERSION,
            session_id: session.to_vec(),
            seq,
            chunk,
            last,
            payload,
        })),
    }
}

/// The handshake MAC as the link protocol's documentation specifies it
/// (crate docs of ariann-net), computed here independently of the crate.
fn spec_mac(
    secret: &[u8; 32],
    role: u8,
    session: &[u8],
    n1: &[u8],
    n0: &[u8],
    c1: u32,
    c0: u32,
) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("any key length");
    m.update(b"ariann-rs link v2");
    m.update(&[role]);
    m.update(&(session.len() as u64).to_le_bytes());
    m.update(session);
    m.update(n1);
    m.update(n0);
    m.update(&LINK_PROTOCOL_VERSION.to_le_bytes());
    m.update(&c1.to_le_bytes());
    m.update(&c0.to_le_bytes());
    m.finalize().into_bytes().to_vec()
}

/// What a hand-made tonic client saw: the messages, then the final status
/// (None if the stream ended cleanly or the 5 s budget ran out).
type Seen = (Vec<LinkMessage>, Option<tonic::Status>);

/// How the hand-made party 1 starts.
enum Start {
    /// A stranger: sends `msgs` from the first message on.
    Stranger,
    /// Completes the handshake with this secret and session (checking party
    /// 0's MAC), then sends `msgs`.
    Authenticated([u8; 32], Vec<u8>),
}

/// A hand-made party 1: starts as `start` says, sends `msgs` (and keeps its
/// stream open), collects what party 0 answers.
fn handmade(addr: SocketAddr, start: Start, msgs: Vec<LinkMessage>) -> Seen {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let mut client = PartyLinkClient::connect(format!("http://{addr}"))
            .await
            .expect("connect")
            .max_encoding_message_size(64 << 20)
            .max_decoding_message_size(64 << 20);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let req = tokio_stream::wrappers::UnboundedReceiverStream::new(rx);
        let n1 = [0x11u8; 32];
        let mut seen = Vec::new();
        match &start {
            Start::Stranger => {
                for m in msgs.iter().cloned() {
                    let _ = tx.send(m);
                }
            }
            Start::Authenticated(..) => {
                let _ = tx.send(hello(LINK_PROTOCOL_VERSION, 1, &n1));
            }
        }
        let mut inbound = match client.link(req).await {
            Ok(r) => r.into_inner(),
            Err(s) => return (Vec::new(), Some(s)),
        };
        let end = tokio::time::Instant::now() + Duration::from_secs(5);
        if let Start::Authenticated(secret, session) = &start {
            let h = match tokio::time::timeout_at(end, inbound.message()).await {
                Ok(Ok(Some(LinkMessage {
                    body: Some(Body::Hello(h)),
                }))) => h,
                other => panic!("party 0 answered {other:?} instead of its Hello"),
            };
            let mac0 = spec_mac(secret, 0, session, &n1, &h.nonce, 1 << 20, h.max_chunk);
            assert_eq!(
                h.mac, mac0,
                "party 0's MAC follows the documented transcript"
            );
            let mac1 = spec_mac(secret, 1, session, &n1, &h.nonce, 1 << 20, h.max_chunk);
            let _ = tx.send(LinkMessage {
                body: Some(Body::Auth(LinkAuth { mac: mac1 })),
            });
            for m in msgs {
                let _ = tx.send(m);
            }
            seen.push(LinkMessage {
                body: Some(Body::Hello(h)),
            });
        }
        loop {
            match tokio::time::timeout_at(end, inbound.message()).await {
                Ok(Ok(Some(m))) => seen.push(m),
                Ok(Ok(None)) | Err(_) => return (seen, None),
                Ok(Err(s)) => return (seen, Some(s)),
            }
        }
    })
}

fn cfg0(tag: &str) -> NetConfig {
    configs(tag).0.connect_timeout(Duration::from_secs(5))
}

/// Party 0 accepts the hand-made client, then tries one exchange; returns
/// party 0's error and what the client saw.
fn party0_against(
    cfg: NetConfig,
    start: Start,
    msgs: Vec<LinkMessage>,
) -> (MpcError, Seen, Duration) {
    let listener = Listener::bind(cfg).expect("bind");
    let addr = listener.local_addr();
    let began = Instant::now();
    std::thread::scope(|s| {
        let h = s.spawn(move || handmade(addr, start, msgs));
        let e = match listener.accept() {
            Ok(mut t) => t
                .exchange(b"party 0's share")
                .expect_err("garbage must fail"),
            Err(e) => e,
        };
        let took = began.elapsed();
        (e, h.join().expect("client"), took)
    })
}

fn assert_protocol(e: &MpcError, needle: &str) {
    match e {
        MpcError::Protocol(m) => assert!(m.contains(needle), "{m:?} lacks {needle:?}"),
        other => panic!("expected a protocol error about {needle:?}, got {other:?}"),
    }
}

/// True if `needle` occurs in anything the client saw (messages, as
/// encoded on the wire, and the final status).
fn leaks(seen: &Seen, needle: &[u8]) -> bool {
    let has = |hay: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    seen.0
        .iter()
        .any(|m| has(&prost::Message::encode_to_vec(m)))
        || seen
            .1
            .as_ref()
            .is_some_and(|s| has(s.message().as_bytes()) || has(s.details()))
}

/// Callers that do not prove the link secret: each is refused with
/// UNAUTHENTICATED and nothing about the job, party 0 keeps waiting, and
/// its deadline error names the refusal.
#[test]
fn strangers_are_refused_and_learn_nothing() {
    let tag = |t: &str| format!("stranger-{t}");
    let cases: Vec<(&str, Start, Vec<LinkMessage>, &str)> = vec![
        (
            "version",
            Start::Stranger,
            vec![hello(99, 1, &[1; 32])],
            "version 99",
        ),
        (
            "party",
            Start::Stranger,
            vec![hello(LINK_PROTOCOL_VERSION, 0, &[1; 32])],
            "party 0",
        ),
        (
            "frame",
            Start::Stranger,
            vec![frame(b"guess", 0, 0, true, vec![1])],
            "before its Hello",
        ),
        (
            "empty",
            Start::Stranger,
            vec![LinkMessage { body: None }],
            "empty first message",
        ),
        (
            "nonce",
            Start::Stranger,
            vec![hello(LINK_PROTOCOL_VERSION, 1, &[1; 5])],
            "nonce of 5",
        ),
        (
            "v1-hello",
            Start::Stranger,
            vec![LinkMessage {
                body: Some(Body::Hello(Hello {
                    protocol_version: LINK_PROTOCOL_VERSION,
                    session_id: session("stranger-v1-hello"),
                    party: 1,
                    max_chunk: 1024,
                    nonce: vec![1; 32],
                    mac: Vec::new(),
                    fresh: true,
                })),
            }],
            "naming a session",
        ),
        (
            "no-auth",
            Start::Stranger,
            vec![
                hello(LINK_PROTOCOL_VERSION, 1, &[1; 32]),
                frame(b"x", 0, 0, true, vec![1]),
            ],
            "something else than LinkAuth",
        ),
        (
            "wrong-mac",
            Start::Authenticated([9; 32], session("stranger-wrong-mac")),
            vec![],
            "wrong link MAC",
        ),
        ("silent", Start::Stranger, vec![], "no Hello in time"),
        (
            "used",
            Start::Stranger,
            vec![LinkMessage {
                body: Some(Body::Hello(Hello {
                    fresh: false,
                    ..match hello(LINK_PROTOCOL_VERSION, 1, &[1; 32]).body {
                        Some(Body::Hello(h)) => h,
                        _ => unreachable!("hello() builds a Hello"),
                    }
                })),
            }],
            "were used before",
        ),
    ];
    std::thread::scope(|s| {
        for (t, start, msgs, needle) in cases {
            s.spawn(move || {
                let t = tag(t);
                let c = configs(&t).0.connect_timeout(Duration::from_millis(1500));
                let listener = Listener::bind(c).expect("bind");
                let addr = listener.local_addr();
                let h = std::thread::spawn(move || {
                    // A wrong MAC: the hand-made client checks party 0's MAC
                    // with its own (wrong) secret, so compute it leniently.
                    match start {
                        Start::Authenticated(secret, sess) => {
                            wrong_secret_client(addr, secret, sess)
                        }
                        other => handmade(addr, other, msgs),
                    }
                });
                let e = listener.accept().expect_err("nobody valid came");
                let e = match e {
                    MpcError::Protocol(m) => MpcError::Protocol(format!("{t}: {m}")),
                    other => panic!("{t}: {other:?}"),
                };
                assert_protocol(&e, "1 link attempt(s) refused");
                assert_protocol(&e, needle);
                let seen = h.join().expect("client");
                let status = seen.1.clone().unwrap_or_else(|| panic!("{t}: no status"));
                assert_eq!(
                    status.code(),
                    tonic::Code::Unauthenticated,
                    "{t}: {status:?}"
                );
                assert!(!leaks(&seen, &session(&t)), "{t}: the session id leaked");
                assert!(!leaks(&seen, &secret_bytes(&t)), "{t}: the secret leaked");
            });
        }
    });
}

/// A caller holding another secret: a Hello, then a LinkAuth with a MAC under
/// its own secret (party 0's MAC cannot be checked by it).
fn wrong_secret_client(addr: SocketAddr, secret: [u8; 32], session: Vec<u8>) -> Seen {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let mut client = PartyLinkClient::connect(format!("http://{addr}"))
            .await
            .expect("connect");
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let n1 = [0x22u8; 32];
        let _ = tx.send(hello(LINK_PROTOCOL_VERSION, 1, &n1));
        let req = tokio_stream::wrappers::UnboundedReceiverStream::new(rx);
        let mut inbound = match client.link(req).await {
            Ok(r) => r.into_inner(),
            Err(s) => return (Vec::new(), Some(s)),
        };
        let mut seen = Vec::new();
        let end = tokio::time::Instant::now() + Duration::from_secs(5);
        if let Ok(Ok(Some(m))) = tokio::time::timeout_at(end, inbound.message()).await {
            if let Some(Body::Hello(h)) = &m.body {
                let mac = spec_mac(&secret, 1, &session, &n1, &h.nonce, 1 << 20, h.max_chunk);
                let _ = tx.send(LinkMessage {
                    body: Some(Body::Auth(LinkAuth { mac })),
                });
            }
            seen.push(m);
        }
        loop {
            match tokio::time::timeout_at(end, inbound.message()).await {
                Ok(Ok(Some(m))) => seen.push(m),
                Ok(Ok(None)) | Err(_) => return (seen, None),
                Ok(Err(s)) => return (seen, Some(s)),
            }
        }
    })
}

/// Strangers before and during the real party 1's call do not end the job:
/// a refused caller, then one that stays silent while party 1 links.
#[test]
fn strangers_do_not_end_the_job() {
    let (c0, c1) = configs("strangers-job");
    let listener = Listener::bind(c0).expect("bind");
    let addr = listener.local_addr();
    let c1 = c1.peer(addr.to_string());
    let began = Instant::now();
    std::thread::scope(|s| {
        let h = s.spawn(move || {
            let seen = handmade(
                addr,
                Start::Stranger,
                vec![frame(b"x", 0, 0, true, vec![1])],
            );
            assert_eq!(seen.1.map(|s| s.code()), Some(tonic::Code::Unauthenticated));
            // A second stranger says nothing and keeps its call open.
            let silent = std::thread::spawn(move || handmade(addr, Start::Stranger, vec![]));
            std::thread::sleep(Duration::from_millis(100));
            let mut t1 = GrpcTransport::connect(c1).expect("the real party 1 links");
            let got = t1.exchange(b"from 1").expect("round");
            drop(silent);
            got
        });
        let mut t0 = listener
            .accept()
            .expect("party 0 links with the real party 1");
        assert_eq!(t0.exchange(b"from 0").expect("round"), b"from 1");
        assert_eq!(h.join().expect("party 1"), b"from 0");
    });
    assert!(
        began.elapsed() < Duration::from_secs(4),
        "{:?}",
        began.elapsed()
    );
}

#[test]
fn another_job_is_refused_on_both_sides() {
    // Party 1 holds another job's keys (another link secret): it refuses
    // party 0's Hello at once; party 0 refuses it and, nobody else coming,
    // fails at its deadline saying so.
    let (c0, _) = configs("session-a");
    let (_, c1) = configs("session-b");
    let began = Instant::now();
    let (t0, t1) = connect(c0.connect_timeout(Duration::from_millis(1500)), c1);
    let (e0, e1) = (t0.expect_err("p0 refuses"), t1.expect_err("p1 refused"));
    assert_protocol(&e0, "1 link attempt(s) refused");
    assert_protocol(&e1, "did not prove this job's link secret");
    assert!(began.elapsed() < Duration::from_secs(4));
}

#[test]
fn no_link_without_a_secret() {
    let c0 = NetConfig::new(Party::P0, session("nosecret"));
    let e = Listener::bind(c0).expect_err("no secret");
    assert!(
        matches!(e, MpcError::InvalidParameter(ref m) if m.contains("link secret")),
        "{e:?}"
    );
    let c1 = NetConfig::new(Party::P1, session("nosecret")).peer("127.0.0.1:9");
    let e = GrpcTransport::connect(c1).expect_err("no secret");
    assert!(
        matches!(e, MpcError::InvalidParameter(ref m) if m.contains("link secret")),
        "{e:?}"
    );
}

#[test]
fn garbage_frames_are_protocol_errors() {
    let s = |tag: &str| session(tag);
    let cases: Vec<(&str, Vec<LinkMessage>, &str)> = vec![
        (
            "g-seq",
            vec![frame(&s("g-seq"), 1, 0, true, vec![1, 2])],
            "message 1 where message 0",
        ),
        (
            "g-chunk",
            vec![frame(&s("g-chunk"), 0, 1, true, vec![1])],
            "chunk 1 of message 0 where chunk 0",
        ),
        (
            "g-chunk2",
            vec![
                frame(&s("g-chunk2"), 0, 0, false, vec![1]),
                frame(&s("g-chunk2"), 0, 0, true, vec![1]),
            ],
            "chunk 0 of message 0 where chunk 1",
        ),
        (
            "g-session",
            vec![frame(b"intruder", 0, 0, true, vec![1])],
            "another session",
        ),
        (
            "g-hello",
            vec![hello(LINK_PROTOCOL_VERSION, 1, &[3; 32])],
            "second Hello",
        ),
        (
            "g-version",
            vec![LinkMessage {
                body: Some(Body::Frame(Frame {
                    version: 7,
                    session_id: s("g-version"),
                    seq: 0,
                    chunk: 0,
                    last: true,
                    payload: vec![],
                })),
            }],
            "version 7",
        ),
    ];
    for (tag, msgs, needle) in cases {
        let start = Start::Authenticated(secret_bytes(tag), s(tag));
        let (e, (seen, status), took) = party0_against(cfg0(tag), start, msgs);
        assert_protocol(&e, needle);
        assert!(took < Duration::from_secs(3), "{tag}: {took:?}");
        // The client got party 0's Hello, then the link ended with the reason.
        assert!(matches!(
            seen.first(),
            Some(LinkMessage {
                body: Some(Body::Hello(_))
            })
        ));
        let status = status.expect("link ended with a status");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{tag}");
        assert!(status.message().contains(needle), "{tag}: {status:?}");
    }
}

#[test]
fn oversized_frames_and_messages_are_refused() {
    // A frame far over the gRPC decoding limit (one chunk + 1 KiB).
    let tag = "big-frame";
    let c = cfg0(tag).chunk_size(64 << 10);
    let msgs = vec![frame(&session(tag), 0, 0, true, vec![7; 1 << 20])];
    let auth = |tag: &str| Start::Authenticated(secret_bytes(tag), session(tag));
    let (e, _, took) = party0_against(c, auth(tag), msgs);
    assert_protocol(&e, "oversized frame");
    assert!(took < Duration::from_secs(3));

    // A frame just over the chunk size (inside gRPC's limit).
    let tag = "big-chunk";
    let c = cfg0(tag).chunk_size(64 << 10);
    let msgs = vec![frame(&session(tag), 0, 0, true, vec![7; (64 << 10) + 10])];
    let (e, _, _) = party0_against(c, auth(tag), msgs);
    assert_protocol(&e, "at most 65536");

    // A message over the maximum message size, in legal chunks: refused
    // at the chunk that crosses the limit, nothing more is buffered.
    let tag = "big-message";
    let c = cfg0(tag).chunk_size(4096).max_message_size(10_000);
    let mut msgs = vec![];
    for i in 0..1000 {
        msgs.push(frame(&session(tag), 0, i, false, vec![1; 4096]));
    }
    let (e, _, _) = party0_against(c, auth(tag), msgs);
    assert_protocol(&e, "longer than the maximum of 10000 bytes");
}

#[test]
fn peer_leaving_mid_job_is_peer_gone() {
    let (c0, c1) = configs("leave");
    let (mut t0, t1) = pair(c0, c1);
    let start = Instant::now();
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut t1 = t1;
            for _ in 0..3 {
                t1.exchange(&[1; 1000]).expect("p1 round");
            }
            // Party 1 leaves without a word after 3 rounds.
        });
        for _ in 0..3 {
            t0.exchange(&[0; 1000]).expect("p0 round");
        }
        assert_eq!(t0.exchange(&[0; 1000]), Err(MpcError::PeerGone));
        // Sticky.
        assert_eq!(t0.exchange(&[0; 1000]), Err(MpcError::PeerGone));
    });
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(t0.stats().rounds, 3);

    // Party 0 leaving while party 1 waits in an exchange.
    let (c0, c1) = configs("leave0");
    let (t0, mut t1) = pair(c0, c1);
    let start = Instant::now();
    std::thread::scope(|s| {
        s.spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(t0);
        });
        assert_eq!(t1.exchange(b"anyone?"), Err(MpcError::PeerGone));
    });
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn silent_peer_is_a_timeout() {
    let (c0, c1) = configs("silent");
    let (mut t0, _t1) = pair(c0.exchange_timeout(Duration::from_millis(300)), c1);
    let start = Instant::now();
    assert!(matches!(t0.exchange(b"x"), Err(MpcError::Timeout(_))));
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[test]
fn nobody_there_is_an_error_within_the_deadline() {
    // Party 1 dialing a closed port: refused until the deadline, then PeerGone.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let c1 = NetConfig::new(Party::P1, session("nobody"))
        .link_secret(LinkSecret::from_bytes([1; 32]))
        .peer(port.to_string())
        .connect_timeout(Duration::from_millis(500));
    let start = Instant::now();
    assert_eq!(GrpcTransport::connect(c1).err(), Some(MpcError::PeerGone));
    assert!(start.elapsed() < Duration::from_secs(3));
    // Party 0 with nobody coming: a timeout.
    let c0 = cfg0("nobody").connect_timeout(Duration::from_millis(300));
    let start = Instant::now();
    assert!(matches!(
        GrpcTransport::connect(c0),
        Err(MpcError::Timeout(_))
    ));
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[test]
fn share_of_the_wrong_length_is_wrong_length() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let (k0, _k1) = ReluKey::<u64>::generate(16, 4, &mut rng).expect("valid");
    let (c0, c1) = configs("wronglen");
    let (mut t0, mut t1) = pair(c0, c1);
    let (a, _) = std::thread::scope(|s| {
        let h = s.spawn(|| t1.exchange(&[0u8; 5]));
        (k0.eval(&mut t0, &[0, 0, 0, 0]), h.join().expect("p1"))
    });
    assert!(
        matches!(
            a,
            Err(MpcError::WrongLength {
                expected: 32,
                got: 5
            })
        ),
        "{a:?}"
    );
}

#[test]
fn wan_shaping_delays_each_message() {
    let wan = "rtt=100ms,bw=1MB/s".parse().expect("shape");
    let (c0, c1) = configs("wan");
    let (mut t0, mut t1) = pair(c0.wan(wan), c1.wan(wan));
    let start = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..3 {
                t1.exchange(&[0; 10]).expect("p1");
            }
            t1.exchange(&[0; 200_000]).expect("p1 big");
        });
        for _ in 0..3 {
            t0.exchange(&[0; 10]).expect("p0");
        }
        let t = Instant::now();
        t0.exchange(&[0; 200_000]).expect("p0 big");
        // One-way latency 50 ms + 200 kB at 1 MB/s = 0.25 s.
        let big = t.elapsed();
        assert!(big >= Duration::from_millis(240), "{big:?}");
        assert!(big < Duration::from_millis(600), "{big:?}");
    });
    let all = start.elapsed();
    // Three small rounds of ~50 ms plus the big one.
    assert!(all >= Duration::from_millis(390), "{all:?}");
    assert!(all < Duration::from_millis(1200), "{all:?}");
}

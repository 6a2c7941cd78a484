//! Failures of the gRPC link, each a clear typed error within a deadline:
//! a peer that leaves mid-job, another protocol version or session, garbage
//! and oversized frames, a share of the wrong length, timeouts.

mod common;
use ariann_fss::Party;
use ariann_mpc::gates::cmp::ReluKey;
use ariann_mpc::{MpcError, Transport};
use ariann_net::{GrpcTransport, Listener, NetConfig};
use ariann_proto::LINK_PROTOCOL_VERSION;
use ariann_proto::v1::link_message::Body;
use ariann_proto::v1::party_link_client::PartyLinkClient;
use ariann_proto::v1::{Frame, Hello, LinkMessage};
use common::{configs, connect, pair, session};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio_stream::StreamExt;

fn hello(version: u32, session: &[u8], party: u32) -> LinkMessage {
    LinkMessage {
        body: Some(Body::Hello(Hello {
            protocol_version: version,
            session_id: session.to_vec(),
            party,
            max_chunk: 1 << 20,
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

/// What a hand-made tonic client saw: the messages, then the final status
/// (None if the stream ended cleanly or the 5 s budget ran out).
type Seen = (Vec<LinkMessage>, Option<tonic::Status>);

/// A hand-made party 1: sends `msgs` (and keeps its stream open), collects
/// what party 0 answers.
fn handmade(addr: SocketAddr, msgs: Vec<LinkMessage>) -> Seen {
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
        let req = tokio_stream::iter(msgs).chain(tokio_stream::pending());
        let mut inbound = match client.link(req).await {
            Ok(r) => r.into_inner(),
            Err(s) => return (Vec::new(), Some(s)),
        };
        let mut seen = Vec::new();
        let end = tokio::time::Instant::now() + Duration::from_secs(5);
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
fn party0_against(cfg: NetConfig, msgs: Vec<LinkMessage>) -> (MpcError, Seen, Duration) {
    let listener = Listener::bind(cfg).expect("bind");
    let addr = listener.local_addr();
    let start = Instant::now();
    std::thread::scope(|s| {
        let h = s.spawn(move || handmade(addr, msgs));
        let e = match listener.accept() {
            Ok(mut t) => t
                .exchange(b"party 0's share")
                .expect_err("garbage must fail"),
            Err(e) => e,
        };
        let took = start.elapsed();
        (e, h.join().expect("client"), took)
    })
}

fn assert_protocol(e: &MpcError, needle: &str) {
    match e {
        MpcError::Protocol(m) => assert!(m.contains(needle), "{m:?} lacks {needle:?}"),
        other => panic!("expected a protocol error about {needle:?}, got {other:?}"),
    }
}

#[test]
fn another_protocol_version_is_refused() {
    let s = session("version");
    let (e, (seen, status), took) = party0_against(cfg0("version"), vec![hello(99, &s, 1)]);
    assert_protocol(&e, "version 99");
    assert!(seen.is_empty());
    let status = status.expect("client told why");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(status.message().contains("version"), "{status:?}");
    assert!(took < Duration::from_secs(3));
}

#[test]
fn same_party_id_is_refused() {
    let s = session("party");
    let (e, _, _) = party0_against(cfg0("party"), vec![hello(LINK_PROTOCOL_VERSION, &s, 0)]);
    assert_protocol(&e, "party 0");
}

#[test]
fn frame_before_hello_is_refused() {
    let s = session("nohello");
    let (e, _, _) = party0_against(cfg0("nohello"), vec![frame(&s, 0, 0, true, vec![1])]);
    assert_protocol(&e, "before its Hello");
}

#[test]
fn another_session_is_refused_on_both_sides() {
    let (c0, _) = configs("session-a");
    let (_, c1) = configs("session-b");
    let start = Instant::now();
    let (t0, t1) = connect(c0, c1);
    let (e0, e1) = (t0.expect_err("p0 refuses"), t1.expect_err("p1 refused"));
    assert_protocol(&e0, "session");
    assert_protocol(&e1, "session");
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[test]
fn garbage_frames_are_protocol_errors() {
    let v = LINK_PROTOCOL_VERSION;
    let ok = |tag: &str| hello(v, &session(tag), 1);
    let s = |tag: &str| session(tag);
    let cases: Vec<(&str, Vec<LinkMessage>, &str)> = vec![
        (
            "g-seq",
            vec![ok("g-seq"), frame(&s("g-seq"), 1, 0, true, vec![1, 2])],
            "message 1 where message 0",
        ),
        (
            "g-chunk",
            vec![ok("g-chunk"), frame(&s("g-chunk"), 0, 1, true, vec![1])],
            "chunk 1 of message 0 where chunk 0",
        ),
        (
            "g-chunk2",
            vec![
                ok("g-chunk2"),
                frame(&s("g-chunk2"), 0, 0, false, vec![1]),
                frame(&s("g-chunk2"), 0, 0, true, vec![1]),
            ],
            "chunk 0 of message 0 where chunk 1",
        ),
        (
            "g-session",
            vec![ok("g-session"), frame(b"intruder", 0, 0, true, vec![1])],
            "another session",
        ),
        (
            "g-hello",
            vec![ok("g-hello"), ok("g-hello")],
            "second Hello",
        ),
        (
            "g-version",
            vec![
                ok("g-version"),
                LinkMessage {
                    body: Some(Body::Frame(Frame {
                        version: 7,
                        session_id: s("g-version"),
                        seq: 0,
                        chunk: 0,
                        last: true,
                        payload: vec![],
                    })),
                },
            ],
            "version 7",
        ),
    ];
    for (tag, msgs, needle) in cases {
        let (e, (seen, status), took) = party0_against(cfg0(tag), msgs);
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
    let msgs = vec![
        hello(LINK_PROTOCOL_VERSION, &session(tag), 1),
        frame(&session(tag), 0, 0, true, vec![7; 1 << 20]),
    ];
    let (e, _, took) = party0_against(c, msgs);
    assert_protocol(&e, "oversized frame");
    assert!(took < Duration::from_secs(3));

    // A frame just over the chunk size (inside gRPC's limit).
    let tag = "big-chunk";
    let c = cfg0(tag).chunk_size(64 << 10);
    let msgs = vec![
        hello(LINK_PROTOCOL_VERSION, &session(tag), 1),
        frame(&session(tag), 0, 0, true, vec![7; (64 << 10) + 10]),
    ];
    let (e, _, _) = party0_against(c, msgs);
    assert_protocol(&e, "at most 65536");

    // A message over the maximum message size, in legal chunks: refused
    // at the chunk that crosses the limit, nothing more is buffered.
    let tag = "big-message";
    let c = cfg0(tag).chunk_size(4096).max_message_size(10_000);
    let mut msgs = vec![hello(LINK_PROTOCOL_VERSION, &session(tag), 1)];
    for i in 0..1000 {
        msgs.push(frame(&session(tag), 0, i, false, vec![1; 4096]));
    }
    let (e, _, _) = party0_against(c, msgs);
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

//! The transport: party 0 serves `PartyLink`, party 1 calls it; one
//! bidirectional stream per job, a `Hello` each way, then chunked frames.

use crate::config::{NetConfig, TlsConfig, WanShape};
use ariann_fss::Party;
use ariann_mpc::{CommStats, MpcError, Transport};
use ariann_proto::LINK_PROTOCOL_VERSION;
use ariann_proto::v1::link_message::Body;
use ariann_proto::v1::party_link_client::PartyLinkClient;
use ariann_proto::v1::party_link_server::{PartyLink, PartyLinkServer};
use ariann_proto::v1::{Close, Frame, Hello, LinkAuth, LinkMessage};
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_stream::{Stream, StreamExt};
use tonic::codec::Streaming;
use tonic::transport::{Certificate, Channel, Endpoint, Identity, Server};
use tonic::{Code, Request, Response, Status};

/// Frames buffered between `exchange` and the gRPC stream (back-pressure).
const OUT_CHUNKS: usize = 4;
/// Complete messages the reader may hold ahead of `exchange`.
const IN_MESSAGES: usize = 2;
/// HTTP/2 flow-control windows: large enough to keep loopback and WAN links
/// busy (the default 64 KiB window caps throughput), small enough to bound
/// what a peer can make this party buffer.
pub(crate) const STREAM_WINDOW: u32 = 8 << 20;
pub(crate) const CONN_WINDOW: u32 = 16 << 20;
/// Bytes of a frame beyond its payload (version, session id, seq, ...).
const FRAME_OVERHEAD: usize = 1024;

type Outbound = mpsc::Sender<Result<LinkMessage, Status>>;

/// A message reassembled by the reader, with the time to hand it over.
struct Inbound {
    bytes: Vec<u8>,
    deliver_at: Option<Instant>,
}

fn protocol(msg: impl Into<String>) -> MpcError {
    MpcError::Protocol(msg.into())
}

/// The largest gRPC message this party decodes: one frame.
fn max_frame(cfg: &NetConfig) -> usize {
    cfg.chunk_size + FRAME_OVERHEAD
}

/// Bytes of a handshake nonce.
const NONCE_LEN: usize = 32;
/// How long party 0 gives one caller to complete its handshake (at most
/// half the connect deadline, so a silent caller is refused, and named in
/// the deadline's error, before party 0 gives up).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes party 0 runs at once; more callers are refused at once.
const MAX_PENDING_HANDSHAKES: usize = 16;
/// Domain of the handshake MACs.
const MAC_DOMAIN: &[u8] = b"ariann-rs link v2";

type HmacSha256 = Hmac<Sha256>;

fn fresh_nonce() -> Vec<u8> {
    let mut n = vec![0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut n);
    n
}

/// The handshake transcript's MAC for `role` (0: party 0's Hello, 1: party
/// 1's LinkAuth): both nonces, the version, both chunk limits and the
/// session id, under the job's link secret.
fn transcript_mac(
    cfg: &NetConfig,
    role: u8,
    n1: &[u8],
    n0: &[u8],
    chunk1: u32,
    chunk0: u32,
) -> Result<HmacSha256, MpcError> {
    let secret = cfg.link_secret.as_ref().ok_or_else(|| {
        MpcError::InvalidParameter("the link needs the job's link secret".to_string())
    })?;
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret.expose())
        .map_err(|_| MpcError::InvalidParameter("bad link secret".to_string()))?;
    mac.update(MAC_DOMAIN);
    mac.update(&[role]);
    mac.update(&(cfg.session_id.len() as u64).to_le_bytes());
    mac.update(&cfg.session_id);
    mac.update(n1);
    mac.update(n0);
    mac.update(&LINK_PROTOCOL_VERSION.to_le_bytes());
    mac.update(&chunk1.to_le_bytes());
    mac.update(&chunk0.to_le_bytes());
    Ok(mac)
}

fn chunk_limit(cfg: &NetConfig) -> u32 {
    u32::try_from(cfg.chunk_size).unwrap_or(u32::MAX)
}

/// Party 1's first message: no MAC, a fresh nonce.
fn hello1(cfg: &NetConfig, nonce: &[u8]) -> LinkMessage {
    LinkMessage {
        body: Some(Body::Hello(Hello {
            protocol_version: LINK_PROTOCOL_VERSION,
            session_id: Vec::new(),
            party: 1,
            max_chunk: chunk_limit(cfg),
            nonce: nonce.to_vec(),
            mac: Vec::new(),
            fresh: true,
        })),
    }
}

/// Checks the fields of a Hello every role shares; returns the sender's
/// chunk limit.
fn check_hello_fields(h: &Hello, from: u32) -> Result<u32, MpcError> {
    if h.protocol_version != LINK_PROTOCOL_VERSION {
        return Err(protocol(format!(
            "peer speaks link protocol version {}, this party {}",
            h.protocol_version, LINK_PROTOCOL_VERSION
        )));
    }
    if h.party != from {
        return Err(protocol(format!(
            "peer claims to be party {}, expected party {from}",
            h.party
        )));
    }
    if h.max_chunk == 0 {
        return Err(protocol("peer accepts chunks of 0 bytes"));
    }
    if h.nonce.len() != NONCE_LEN {
        return Err(protocol(format!(
            "Hello with a nonce of {} bytes",
            h.nonce.len()
        )));
    }
    if !h.session_id.is_empty() {
        return Err(protocol("Hello naming a session (link protocol 1?)"));
    }
    if !h.fresh {
        return Err(protocol(
            "peer states that its keys of this dealer session were used before",
        ));
    }
    Ok(h.max_chunk)
}

fn first_hello(msg: Option<LinkMessage>) -> Result<Hello, MpcError> {
    match msg.and_then(|m| m.body) {
        Some(Body::Hello(h)) => Ok(h),
        Some(Body::Frame(_) | Body::Close(_) | Body::Auth(_)) => {
            Err(protocol("peer sent something else before its Hello"))
        }
        None => Err(protocol(
            "peer sent an empty first message instead of a Hello",
        )),
    }
}

/// Refusals party 0 has made while waiting: how many, and the last reason
/// (with the caller's address), for the error if nobody valid comes.
#[derive(Default)]
struct Refusals {
    count: u64,
    last: Option<String>,
}

fn hex(b: &[u8]) -> String {
    let s: String = b.iter().take(32).map(|x| format!("{x:02x}")).collect();
    if b.len() > 32 { format!("{s}..") } else { s }
}

/// The rustls error behind a gRPC/transport error, if any.
pub(crate) fn tls_cause(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(t) = e.downcast_ref::<rustls::Error>() {
            return Some(t.to_string());
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(t) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
        {
            return Some(t.to_string());
        }
        // h2 passes a rustls alert on as an io::Error carrying only the text.
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::InvalidData
            && io.to_string().contains("alert")
        {
            return Some(io.to_string());
        }
        cur = e.source();
    }
    None
}

pub(crate) fn refused(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        cur = e.source();
    }
    false
}

/// What a gRPC status from the peer (or the local decoder) means here.
fn status_error(s: &Status) -> MpcError {
    if let Some(t) = tls_cause(s) {
        return MpcError::Connect(format!("TLS: {t}"));
    }
    match s.code() {
        Code::FailedPrecondition | Code::InvalidArgument | Code::AlreadyExists => {
            protocol(format!("peer ended the link: {}", s.message()))
        }
        Code::OutOfRange | Code::ResourceExhausted => {
            protocol(format!("oversized frame: {}", s.message()))
        }
        _ => MpcError::PeerGone,
    }
}

/// Limits the reader enforces.
#[derive(Clone)]
struct ReadRules {
    session_id: Vec<u8>,
    chunk_size: usize,
    max_message: usize,
    wan: Option<WanShape>,
}

/// Reads frames, reassembles messages, checks every rule; on the first
/// violation or end of stream, hands the error to `exchange` and stops.
async fn reader(
    mut stream: Streaming<LinkMessage>,
    rules: ReadRules,
    deliver: mpsc::Sender<Result<Inbound, MpcError>>,
    out: mpsc::WeakSender<Result<LinkMessage, Status>>,
    server_side: bool,
) {
    let mut expect_seq = 0u64;
    let mut next_chunk = 0u32;
    let mut buf: Vec<u8> = Vec::new();
    let mut first_at = Instant::now();
    let mut link_free = Instant::now();
    let err = loop {
        let f = match stream.message().await {
            Ok(Some(LinkMessage {
                body: Some(Body::Frame(f)),
            })) => f,
            Ok(Some(LinkMessage {
                body: Some(Body::Close(_)),
            }))
            | Ok(None) => {
                // The peer is done: tell it we saw that (its linger ends).
                if let Some(o) = out.upgrade() {
                    let close = LinkMessage {
                        body: Some(Body::Close(Close {})),
                    };
                    let _ = o.try_send(Ok(close));
                }
                break MpcError::PeerGone;
            }
            Ok(Some(_)) => break protocol("peer sent a second Hello or an empty message"),
            Err(s) => break status_error(&s),
        };
        if f.version != LINK_PROTOCOL_VERSION {
            break protocol(format!("frame of protocol version {}", f.version));
        }
        if f.session_id != rules.session_id {
            break protocol(format!("frame of another session {}", hex(&f.session_id)));
        }
        if f.seq != expect_seq {
            break protocol(format!(
                "frame for message {} where message {expect_seq} was expected",
                f.seq
            ));
        }
        if f.chunk != next_chunk {
            break protocol(format!(
                "chunk {} of message {} where chunk {next_chunk} was expected",
                f.chunk, f.seq
            ));
        }
        if f.payload.len() > rules.chunk_size {
            break protocol(format!(
                "chunk of {} bytes (at most {})",
                f.payload.len(),
                rules.chunk_size
            ));
        }
        if buf.len() + f.payload.len() > rules.max_message {
            break protocol(format!(
                "message {} longer than the maximum of {} bytes",
                f.seq, rules.max_message
            ));
        }
        if next_chunk == 0 {
            first_at = Instant::now();
            buf = f.payload;
        } else {
            buf.extend_from_slice(&f.payload);
        }
        if !f.last {
            next_chunk = match next_chunk.checked_add(1) {
                Some(c) => c,
                None => break protocol("too many chunks"),
            };
            continue;
        }
        let deliver_at = rules.wan.map(|w| {
            link_free = link_free.max(first_at) + w.wire_time(buf.len());
            link_free.max(Instant::now()) + w.one_way()
        });
        let msg = Inbound {
            bytes: std::mem::take(&mut buf),
            deliver_at,
        };
        if deliver.send(Ok(msg)).await.is_err() {
            return; // the transport is gone
        }
        expect_seq += 1;
        next_chunk = 0;
    };
    if !matches!(err, MpcError::PeerGone) {
        tracing::warn!(error = %err, "party link failed");
        if let Some(a) = out.upgrade().filter(|_| server_side) {
            let _ = a.try_send(Err(Status::invalid_argument(err.to_string())));
        }
    }
    let _ = deliver.send(Err(err)).await;
}

enum Rt {
    Owned(Runtime),
    Shared(Handle),
}

impl Rt {
    fn new(handle: Option<Handle>) -> Result<Rt, MpcError> {
        match handle {
            Some(h) => Ok(Rt::Shared(h)),
            None => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("ariann-net")
                .enable_all()
                .build()
                .map(Rt::Owned)
                .map_err(|e| MpcError::Connect(format!("cannot start a tokio runtime: {e}"))),
        }
    }

    fn handle(&self) -> &Handle {
        match self {
            Rt::Owned(r) => r.handle(),
            Rt::Shared(h) => h,
        }
    }
}

/// One side of an established link, before it is wrapped in a transport.
struct Established {
    inbound: Streaming<LinkMessage>,
    out: Outbound,
    send_chunk: usize,
}

type Slot = Arc<Mutex<Option<oneshot::Sender<Result<Established, MpcError>>>>>;

/// Party 0's `PartyLink` service: accepts one authenticated link for its
/// session; refuses every other caller without ending the job.
struct LinkService {
    cfg: NetConfig,
    slot: Slot,
    pending: Arc<Semaphore>,
    refusals: Arc<Mutex<Refusals>>,
}

#[tonic::async_trait]
impl PartyLink for LinkService {
    type LinkStream = Pin<Box<dyn Stream<Item = Result<LinkMessage, Status>> + Send + 'static>>;

    async fn link(
        &self,
        request: Request<Streaming<LinkMessage>>,
    ) -> Result<Response<Self::LinkStream>, Status> {
        let taken = self.slot.lock().map(|s| s.is_none()).unwrap_or(true);
        if taken {
            return Err(Status::unavailable("no link is open for callers"));
        }
        let Ok(permit) = self.pending.clone().try_acquire_owned() else {
            return Err(Status::resource_exhausted("too many link attempts at once"));
        };
        let caller = request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|| "an unknown address".to_string());
        let inbound = request.into_inner();
        let (out, rx) = mpsc::channel(OUT_CHUNKS);
        let cfg = self.cfg.clone();
        let slot = self.slot.clone();
        let refusals = self.refusals.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let deadline = Instant::now() + HANDSHAKE_TIMEOUT.min(cfg.connect_timeout / 2);
            let fail = match handshake0(&cfg, inbound, &out, deadline).await {
                Ok((inbound, send_chunk)) => {
                    let waiter = slot.lock().ok().and_then(|mut s| s.take());
                    match waiter {
                        Some(w) => {
                            let est = Established {
                                inbound,
                                out,
                                send_chunk,
                            };
                            if w.send(Ok(est)).is_err() {
                                tracing::debug!("party 0 stopped waiting for its link");
                            }
                            return;
                        }
                        None => "party 0 already has its link".to_string(),
                    }
                }
                Err(e) => e.to_string(),
            };
            tracing::warn!(caller = %caller, reason = %fail, "party link: refused a caller");
            if let Ok(mut r) = refusals.lock() {
                r.count += 1;
                r.last = Some(format!("{caller}: {fail}"));
            }
            // No detail of the job for a caller that has not proven it.
            let _ = out
                .send(Err(Status::unauthenticated(
                    "link refused: the handshake did not prove this job's link secret",
                )))
                .await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// A caller that ends its call after party 0's Hello: it could not check
/// party 0's MAC.
fn hung_up() -> MpcError {
    protocol(
        "the caller hung up after this party's Hello: it holds keys of another dealer \
         session (another link secret), or it is not a party",
    )
}

/// Party 0's side of the handshake with one caller: its Hello, this party's
/// Hello with `mac0`, the caller's `LinkAuth`. Returns the stream and the
/// chunk size to send with once the caller has proven the link secret.
async fn handshake0(
    cfg: &NetConfig,
    mut inbound: Streaming<LinkMessage>,
    out: &Outbound,
    deadline: Instant,
) -> Result<(Streaming<LinkMessage>, usize), MpcError> {
    let first = match tokio::time::timeout_at(deadline, inbound.message()).await {
        Err(_) => return Err(protocol("no Hello in time")),
        Ok(Err(s)) => return Err(status_error(&s)),
        Ok(Ok(m)) => first_hello(m)?,
    };
    let chunk1 = check_hello_fields(&first, 1)?;
    if !first.mac.is_empty() {
        return Err(protocol("party 1's Hello carries a MAC"));
    }
    let n0 = fresh_nonce();
    let chunk0 = chunk_limit(cfg);
    let mac0 = transcript_mac(cfg, 0, &first.nonce, &n0, chunk1, chunk0)?
        .finalize()
        .into_bytes()
        .to_vec();
    let reply = LinkMessage {
        body: Some(Body::Hello(Hello {
            protocol_version: LINK_PROTOCOL_VERSION,
            session_id: Vec::new(),
            party: 0,
            max_chunk: chunk0,
            nonce: n0.clone(),
            mac: mac0,
            fresh: true,
        })),
    };
    if out.send(Ok(reply)).await.is_err() {
        return Err(MpcError::PeerGone);
    }
    let auth = match tokio::time::timeout_at(deadline, inbound.message()).await {
        Err(_) => return Err(protocol("no LinkAuth in time")),

        Ok(Ok(None)) => return Err(hung_up()),
        Ok(Err(s)) => {
            return Err(match status_error(&s) {
                MpcError::PeerGone => hung_up(),
                e => e,
            });
        }
        Ok(Ok(Some(m))) => match m.body {
            Some(Body::Auth(a)) => a,
            _ => return Err(protocol("something else than LinkAuth after the Hellos")),
        },
    };
    transcript_mac(cfg, 1, &first.nonce, &n0, chunk1, chunk0)?
        .verify_slice(&auth.mac)
        .map_err(|_| protocol("wrong link MAC: the caller does not hold this job's link secret"))?;
    Ok((inbound, cfg.chunk_size.min(chunk1 as usize)))
}

/// Party 0's listening socket, before the peer has connected.
///
/// [`Listener::local_addr`] tells where it listens (useful with port 0);
/// [`Listener::accept`] waits for party 1.
pub struct Listener {
    cfg: NetConfig,
    rt: Rt,
    addr: SocketAddr,
    waiter: oneshot::Receiver<Result<Established, MpcError>>,
    refusals: Arc<Mutex<Refusals>>,
    server: JoinHandle<()>,
    shutdown: oneshot::Sender<()>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Listener {
    /// Binds `cfg.listen` on a runtime of its own (party 0).
    pub fn bind(cfg: NetConfig) -> Result<Listener, MpcError> {
        Self::bind_on(cfg, None)
    }

    /// Binds `cfg.listen`, running on `handle` (a multi-thread runtime) or
    /// on a runtime of its own.
    pub fn bind_on(cfg: NetConfig, handle: Option<Handle>) -> Result<Listener, MpcError> {
        cfg.validate()
            .map_err(|e| MpcError::InvalidParameter(e.to_string()))?;
        if cfg.party != Party::P0 {
            return Err(MpcError::InvalidParameter(
                "party 1 connects (GrpcTransport::dial); party 0 listens".to_string(),
            ));
        }
        let rt = Rt::new(handle)?;
        let h = rt.handle().clone();
        let tls = cfg.tls.as_ref().map(server_tls).transpose()?;
        let listener = h
            .block_on(tokio::net::TcpListener::bind(cfg.listen))
            .map_err(|e| MpcError::Connect(format!("cannot listen on {}: {e}", cfg.listen)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| MpcError::Connect(format!("no local address: {e}")))?;
        let (tx, waiter) = oneshot::channel();
        let refusals = Arc::new(Mutex::new(Refusals::default()));
        let service = LinkService {
            cfg: cfg.clone(),
            slot: Arc::new(Mutex::new(Some(tx))),
            pending: Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES)),
            refusals: refusals.clone(),
        };
        let svc = PartyLinkServer::new(service)
            .max_decoding_message_size(max_frame(&cfg))
            .max_encoding_message_size(max_frame(&cfg));
        let mut builder = Server::builder()
            .tcp_nodelay(true)
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONN_WINDOW);
        if let Some(tls) = tls {
            builder = builder
                .tls_config(tls)
                .map_err(|e| MpcError::Connect(format!("bad TLS setup: {e}")))?;
        }
        let (shutdown, stop) = oneshot::channel::<()>();
        let router = builder.add_service(svc);
        let server = h.spawn(async move {
            let incoming = TcpListenerStream::new(listener);
            if let Err(e) = router
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stop.await;
                })
                .await
            {
                tracing::warn!(error = %e, "party link server stopped");
            }
        });
        Ok(Listener {
            cfg,
            rt,
            addr,
            waiter,
            refusals,
            server,
            shutdown,
        })
    }

    /// Where this party listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits up to `connect_timeout` for party 1's link and handshake.
    /// Callers that fail the handshake (strangers, a party 1 of another
    /// job) are refused and logged; waiting goes on.
    ///
    /// Errors: [`MpcError::Timeout`] if nobody called in time,
    /// [`MpcError::Protocol`] if callers came but none proved the job's link
    /// secret (with the number of refusals and the last reason).
    pub fn accept(self) -> Result<GrpcTransport, MpcError> {
        let Listener {
            cfg,
            rt,
            waiter,
            refusals,
            server,
            shutdown,
            ..
        } = self;
        let h = rt.handle().clone();
        let got = h.block_on(async { tokio::time::timeout(cfg.connect_timeout, waiter).await });
        let est = match got {
            Err(_) => Err(match refusals.lock().ok().filter(|r| r.count > 0) {
                Some(r) => protocol(format!(
                    "no peer proved this job's link secret within {:?}; {} link attempt(s) \
                     refused, the last from {}",
                    cfg.connect_timeout,
                    r.count,
                    r.last.as_deref().unwrap_or("?")
                )),
                None => MpcError::Timeout(cfg.connect_timeout),
            }),
            Ok(Err(_)) => Err(MpcError::PeerGone),
            Ok(Ok(r)) => r,
        };
        let est = match est {
            Ok(e) => e,
            Err(e) => {
                // Let the server tell the peer why (bounded), then stop.
                stop_server(&rt, server, shutdown, cfg.linger);
                shutdown_rt(rt);
                return Err(e);
            }
        };
        Ok(GrpcTransport::start(
            cfg,
            rt,
            est,
            true,
            Some((server, shutdown)),
        ))
    }
}

fn server_tls(t: &TlsConfig) -> Result<tonic::transport::ServerTlsConfig, MpcError> {
    Ok(tonic::transport::ServerTlsConfig::new()
        .identity(Identity::from_pem(&t.cert_pem, &t.key_pem))
        .client_ca_root(Certificate::from_pem(&t.peer_pem))
        .client_auth_optional(false))
}

fn client_tls(t: &TlsConfig) -> tonic::transport::ClientTlsConfig {
    tonic::transport::ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&t.peer_pem))
        .identity(Identity::from_pem(&t.cert_pem, &t.key_pem))
        .domain_name(t.server_name.clone())
}

/// Graceful shutdown of party 0's server, waiting at most `grace` (so a
/// refusal or a final status reaches the peer), then abort.
fn stop_server(rt: &Rt, server: JoinHandle<()>, shutdown: oneshot::Sender<()>, grace: Duration) {
    rt.handle()
        .block_on(stop_server_async(server, shutdown, grace));
}

async fn stop_server_async(server: JoinHandle<()>, shutdown: oneshot::Sender<()>, grace: Duration) {
    let _ = shutdown.send(());
    let abort = server.abort_handle();
    let _ = tokio::time::timeout(grace, server).await;
    abort.abort();
}

/// What a dropped transport still does: wait (bounded) for the peer to
/// close its side, then stop the reader and party 0's server.
async fn cleanup(
    mut inbound: mpsc::Receiver<Result<Inbound, MpcError>>,
    linger: Option<Duration>,
    reader: tokio::task::AbortHandle,
    server: Option<(JoinHandle<()>, oneshot::Sender<()>)>,
    grace: Duration,
) {
    if let Some(linger) = linger {
        let drain = async { while let Some(Ok(_)) = inbound.recv().await {} };
        let _ = tokio::time::timeout(linger, drain).await;
    }
    reader.abort();
    if let Some((server, shutdown)) = server {
        stop_server_async(server, shutdown, grace).await;
    }
}

fn shutdown_rt(rt: Rt) {
    if let Rt::Owned(r) = rt {
        r.shutdown_background();
    }
}

/// Party 1's side: connect (retrying refused connections), then handshake.
async fn dial(cfg: &NetConfig, deadline: Instant) -> Result<Established, MpcError> {
    let scheme = if cfg.tls.is_some() { "https" } else { "http" };
    let uri = format!("{scheme}://{}", cfg.peer);
    let mut endpoint = Endpoint::from_shared(uri.clone())
        .map_err(|e| MpcError::InvalidParameter(format!("bad peer address {uri:?}: {e}")))?
        .tcp_nodelay(true)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONN_WINDOW)
        .connect_timeout(cfg.connect_timeout);
    if let Some(t) = &cfg.tls {
        endpoint = endpoint
            .tls_config(client_tls(t))
            .map_err(|e| MpcError::Connect(format!("bad TLS setup: {e}")))?;
    }
    loop {
        let last = match try_link(cfg, &endpoint, deadline).await {
            Ok(est) => return Ok(est),
            Err(Attempt::Fatal(e)) => return Err(e),
            Err(Attempt::Retry(why) | Attempt::Refused(why)) => why,
        };
        if Instant::now() + Duration::from_millis(50) >= deadline {
            tracing::debug!(last = %last, "party link: connect deadline passed");
            return Err(if last.starts_with("refused") {
                MpcError::PeerGone
            } else {
                MpcError::Connect(format!(
                    "no link to {} within {:?}: {last}",
                    cfg.peer, cfg.connect_timeout
                ))
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

enum Attempt {
    Fatal(MpcError),
    Retry(String),
    Refused(String),
}

pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

async fn try_link(
    cfg: &NetConfig,
    endpoint: &Endpoint,
    deadline: Instant,
) -> Result<Established, Attempt> {
    let left = deadline.saturating_duration_since(Instant::now());
    let channel: Channel = match tokio::time::timeout(left, endpoint.connect()).await {
        Err(_) => return Err(Attempt::Retry("connect timed out".to_string())),
        Ok(Err(e)) => {
            if let Some(t) = tls_cause(&e) {
                return Err(Attempt::Fatal(MpcError::Connect(format!("TLS: {t}"))));
            }
            return Err(if refused(&e) {
                Attempt::Refused(format!("refused: {}", chain(&e)))
            } else {
                Attempt::Retry(chain(&e))
            });
        }
        Ok(Ok(c)) => c,
    };
    let mut client = PartyLinkClient::new(channel)
        .max_decoding_message_size(max_frame(cfg))
        .max_encoding_message_size(max_frame(cfg));
    let (out, rx) = mpsc::channel::<Result<LinkMessage, Status>>(OUT_CHUNKS);
    let n1 = fresh_nonce();
    let _ = out.try_send(Ok(hello1(cfg, &n1)));
    // The request stream ends at the first Err (an abort).
    let req = ReceiverStream::new(rx).map_while(Result::ok);
    let left = deadline.saturating_duration_since(Instant::now());
    let mut inbound = match tokio::time::timeout(left, client.link(req)).await {
        Err(_) => return Err(Attempt::Retry("link call timed out".to_string())),
        Ok(Err(s)) => return Err(Attempt::Fatal(link_status(&s, cfg.tls.is_some()))),
        Ok(Ok(r)) => r.into_inner(),
    };
    let left = deadline.saturating_duration_since(Instant::now());
    let first = match tokio::time::timeout(left, inbound.message()).await {
        Err(_) => return Err(Attempt::Fatal(protocol("peer sent no Hello in time"))),
        Ok(Err(s)) => return Err(Attempt::Fatal(link_status(&s, cfg.tls.is_some()))),
        Ok(Ok(m)) => m,
    };
    let fatal = Attempt::Fatal;
    let h = first_hello(first).map_err(fatal)?;
    let chunk0 = check_hello_fields(&h, 0).map_err(fatal)?;
    let chunk1 = chunk_limit(cfg);
    transcript_mac(cfg, 0, &n1, &h.nonce, chunk1, chunk0)
        .map_err(fatal)?
        .verify_slice(&h.mac)
        .map_err(|_| {
            fatal(protocol(format!(
                "the party at {} did not prove this job's link secret: it holds keys of \
                 another dealer session, or it is not the other party",
                cfg.peer
            )))
        })?;
    let mac1 = transcript_mac(cfg, 1, &n1, &h.nonce, chunk1, chunk0)
        .map_err(fatal)?
        .finalize()
        .into_bytes()
        .to_vec();
    let auth = LinkMessage {
        body: Some(Body::Auth(LinkAuth { mac: mac1 })),
    };
    if out.send(Ok(auth)).await.is_err() {
        return Err(fatal(MpcError::PeerGone));
    }
    Ok(Established {
        inbound,
        out,
        send_chunk: cfg.chunk_size.min(chunk0 as usize),
    })
}

/// A status while setting up the link: a TLS refusal or the peer's
/// handshake verdict are fatal and clear.
fn link_status(s: &Status, tls: bool) -> MpcError {
    if let Some(t) = tls_cause(s) {
        return MpcError::Connect(format!("TLS: {t}"));
    }
    match status_error(s) {
        // With TLS 1.3 the server checks the client's certificate after the
        // client has finished its handshake: a refusal shows up as an alert
        // (above) or as the connection dropping on the first request.
        MpcError::PeerGone if tls => MpcError::Connect(format!(
            "TLS: the peer dropped the connection during setup (does it pin this party's \
             certificate?): {}",
            chain(s)
        )),
        MpcError::PeerGone => MpcError::Connect(format!("link refused: {}", chain(s))),
        e => e,
    }
}

/// [`Transport`] over the `PartyLink` gRPC stream.
///
/// `exchange` cuts the message into chunks, sends them through a bounded
/// channel to the stream, and blocks (the calling thread must not be a
/// tokio worker) until the peer's message of the same round is complete, or
/// the exchange deadline passes ([`MpcError::Timeout`]), or the peer goes
/// away ([`MpcError::PeerGone`]), or breaks the link protocol
/// ([`MpcError::Protocol`]). Errors are sticky: after one, every exchange
/// fails the same way.
pub struct GrpcTransport {
    party: Party,
    session_id: Vec<u8>,
    rt: Option<Rt>,
    out: Option<Outbound>,
    inbound: mpsc::Receiver<Result<Inbound, MpcError>>,
    reader: JoinHandle<()>,
    server: Option<(JoinHandle<()>, oneshot::Sender<()>)>,
    send_chunk: usize,
    timeout: Duration,
    linger: Duration,
    seq: u64,
    stats: CommStats,
    failed: Option<MpcError>,
}

impl std::fmt::Debug for GrpcTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcTransport")
            .field("party", &self.party)
            .field("seq", &self.seq)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl GrpcTransport {
    /// Establishes the link for `cfg.party` on a runtime of its own: party 0
    /// listens on `cfg.listen` and waits for party 1; party 1 connects to
    /// `cfg.peer`. Blocks until the handshake is done or `connect_timeout`.
    pub fn connect(cfg: NetConfig) -> Result<GrpcTransport, MpcError> {
        Self::connect_on(cfg, None)
    }

    /// As [`GrpcTransport::connect`], running on `handle` (a multi-thread
    /// runtime) when given.
    pub fn connect_on(cfg: NetConfig, handle: Option<Handle>) -> Result<GrpcTransport, MpcError> {
        match cfg.party {
            Party::P0 => Listener::bind_on(cfg, handle)?.accept(),
            Party::P1 => Self::dial_on(cfg, handle),
        }
    }

    /// Party 1: connects to `cfg.peer`, retrying refused connections until
    /// `connect_timeout` (then [`MpcError::PeerGone`]), and handshakes.
    /// A TLS refusal or a wrong Hello fails at once
    /// ([`MpcError::Connect`], [`MpcError::Protocol`]).
    pub fn dial_on(cfg: NetConfig, handle: Option<Handle>) -> Result<GrpcTransport, MpcError> {
        cfg.validate()
            .map_err(|e| MpcError::InvalidParameter(e.to_string()))?;
        if cfg.party != Party::P1 {
            return Err(MpcError::InvalidParameter(
                "party 0 listens (Listener::bind); party 1 connects".to_string(),
            ));
        }
        let rt = Rt::new(handle)?;
        let h = rt.handle().clone();
        let deadline = Instant::now() + cfg.connect_timeout;
        match h.block_on(dial(&cfg, deadline)) {
            Ok(est) => Ok(Self::start(cfg, rt, est, false, None)),
            Err(e) => {
                shutdown_rt(rt);
                Err(e)
            }
        }
    }

    fn start(
        cfg: NetConfig,
        rt: Rt,
        est: Established,
        server_side: bool,
        server: Option<(JoinHandle<()>, oneshot::Sender<()>)>,
    ) -> GrpcTransport {
        let (deliver, inbound) = mpsc::channel(IN_MESSAGES);
        let rules = ReadRules {
            session_id: cfg.session_id.clone(),
            chunk_size: cfg.chunk_size,
            max_message: cfg.max_message_size,
            wan: cfg.wan,
        };
        let weak = est.out.downgrade();
        let reader = rt
            .handle()
            .spawn(reader(est.inbound, rules, deliver, weak, server_side));
        GrpcTransport {
            party: cfg.party,
            session_id: cfg.session_id,
            rt: Some(rt),
            out: Some(est.out),
            inbound,
            reader,
            server,
            send_chunk: est.send_chunk,
            timeout: cfg.exchange_timeout,
            linger: cfg.linger,
            seq: 0,
            stats: CommStats::default(),
            failed: None,
        }
    }

    /// Chunk size used to send (the smaller of this party's and the peer's).
    pub fn send_chunk_size(&self) -> usize {
        self.send_chunk
    }

    /// Sets the per-exchange deadline.
    pub fn set_exchange_timeout(&mut self, d: Duration) {
        self.timeout = d;
    }

    async fn exchange_async(&mut self, msg: &[u8]) -> Result<Vec<u8>, MpcError> {
        let deadline = Instant::now() + self.timeout;
        let out = self.out.as_ref().ok_or(MpcError::PeerGone)?;
        let mut chunks = msg.chunks(self.send_chunk).peekable();
        let mut index = 0u32;
        loop {
            let payload = chunks.next().unwrap_or_default();
            let last = chunks.peek().is_none();
            let frame = LinkMessage {
                body: Some(Body::Frame(Frame {
                    version: LINK_PROTOCOL_VERSION,
                    session_id: self.session_id.clone(),
                    seq: self.seq,
                    chunk: index,
                    last,
                    payload: payload.to_vec(),
                })),
            };
            match tokio::time::timeout_at(deadline, out.send(Ok(frame))).await {
                Err(_) => return Err(MpcError::Timeout(self.timeout)),
                Ok(Err(_)) => return Err(self.closed().await),
                Ok(Ok(())) => {}
            }
            if last {
                break;
            }
            index += 1;
        }
        let got = match tokio::time::timeout_at(deadline, self.inbound.recv()).await {
            Err(_) => return Err(MpcError::Timeout(self.timeout)),
            Ok(None) => return Err(MpcError::PeerGone),
            Ok(Some(r)) => r?,
        };
        if let Some(t) = got.deliver_at {
            tokio::time::sleep_until(t).await;
        }
        Ok(got.bytes)
    }

    /// The reason the outbound stream closed (the reader's verdict if it has one).
    async fn closed(&mut self) -> MpcError {
        match tokio::time::timeout(Duration::from_millis(200), self.inbound.recv()).await {
            Ok(Some(Err(e))) => e,
            _ => MpcError::PeerGone,
        }
    }
}

impl Transport for GrpcTransport {
    fn party(&self) -> Party {
        self.party
    }

    fn exchange(&mut self, msg: &[u8]) -> Result<Vec<u8>, MpcError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let h = match &self.rt {
            Some(rt) => rt.handle().clone(),
            None => return Err(MpcError::PeerGone),
        };
        match h.block_on(self.exchange_async(msg)) {
            Ok(got) => {
                self.seq += 1;
                self.stats.rounds += 1;
                self.stats.bytes_sent += msg.len() as u64;
                self.stats.bytes_received += got.len() as u64;
                Ok(got)
            }
            Err(e) => {
                self.failed = Some(e.clone());
                Err(e)
            }
        }
    }

    fn stats(&self) -> CommStats {
        self.stats
    }
}

impl Drop for GrpcTransport {
    /// Half-closes the link, then waits (at most `linger`) for the peer to
    /// close too, so a last message still in flight is not cut off. On a
    /// runtime of its own this blocks; on a shared runtime it is a task.
    fn drop(&mut self) {
        self.out = None;
        let Some(rt) = self.rt.take() else { return };
        let linger = self.failed.is_none().then_some(self.linger);
        let inbound = std::mem::replace(&mut self.inbound, mpsc::channel(1).1);
        let job = cleanup(
            inbound,
            linger,
            self.reader.abort_handle(),
            self.server.take(),
            self.linger,
        );
        match rt {
            Rt::Shared(h) => {
                h.spawn(job);
            }
            Rt::Owned(r) => {
                // Blocking is only possible outside asynchronous code.
                if Handle::try_current().is_err() {
                    r.block_on(job);
                }
                r.shutdown_background();
            }
        }
    }
}

//! Keys over gRPC: the dealer serves one job's key bundles ([`KeyServer`],
//! the `KeyStream` service of `ariann-proto`), and each party pulls its own
//! ([`DealerStreamSource`], a [`PreprocessingSource`]).
//!
//! The protocol (version [`KEY_STREAM_VERSION`]) is documented in
//! `proto/ariann/v1/keys.proto`: the party sends a `KeyRequest` (format
//! version, party, plan hash), the dealer answers with a header (session
//! id, bundle count, ring bits, plan hash, chunk size) and then each bundle
//! encoded with [`KeyBundle::encode`] and cut into chunks; the party
//! acknowledges once it has used the last bundle, and only then does the
//! dealer count that party's stream as finished. The dealer's side of the
//! `Pull` method is written by hand (the private `keywire` module) so that
//! each bundle goes to HTTP/2 without a copy into gRPC's buffer; the bytes
//! on the wire are those of the generated code.
//!
//! Memory is bounded on both ends: the dealer generates one gate at a time
//! and keeps at most [`KeyServerConfig::buffer`] encoded bundles per party
//! (generation blocks while a party is slow; the parties run in lock-step),
//! and a party holds at most two decoded bundles beyond the gate it runs.
//! Keys are never stored: a bundle is dropped once handed out.
//!
//! # Signed headers, link secret, use-once
//!
//! The dealer signs each party's header with its Ed25519 key
//! ([`ariann_dealer::auth`]): session id, party, plan hash, bundle count,
//! ring bits, the session's [`LinkSecret`] and its public key. A party
//! refuses a header signed by another key than the one it pins, a bad
//! signature, a bundle count other than its plan's number of gates, and a
//! session its use-once ledger ([`ariann_dealer::ledger`]) records as used
//! on this host; it claims the session in the ledger before the first
//! bundle is handed out. The link secret is
//! [`DealerStreamSource::link_secret`].
//!
//! Bundles are not signed one by one. With mutual TLS (the way to serve
//! keys across hosts) the channel authenticates every byte from the pinned
//! dealer certificate. Without TLS (`--insecure-plaintext`, loopback only)
//! the header is signed and the bundles are not: another user of the host
//! cannot inject bytes into an established loopback TCP connection without
//! privileges, and signing every bundle would add a SHA-256 of every key
//! byte on both ends of the key path, which the key path's throughput
//! (issue 11) does not need to pay for on the only path where it would help.

use ariann_dealer::auth::{
    DealerPublicKey, DealerSigningKey, KeyTrust, LINK_SECRET_LEN, LinkSecret, PUBLIC_KEY_LEN,
    SIGNATURE_LEN,
};
use ariann_dealer::keyfile::SessionId;
use ariann_fss::Party;
use ariann_mpc::bundle::check_bundle;
use ariann_mpc::secret::SecretBuf;
use ariann_mpc::{BundleTag, GateKey, KeyBundle, MpcError, PreprocessingSource, SourceFault};
use ariann_proto::KEY_STREAM_VERSION;
use ariann_proto::v1::key_chunk::Body;
use ariann_proto::v1::key_stream_client::KeyStreamClient;
use ariann_proto::v1::pull_message::Body as PullBody;
use ariann_proto::v1::{KeyAck, KeyChunk, KeyRequest, KeyStreamHeader, PullMessage};
use ariann_ring::Ring;
use bytes::Bytes;
use std::fmt::Display;
use std::net::SocketAddr;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::codec::Streaming;
use tonic::codegen::BoxFuture;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::transport::{Certificate, Endpoint, Identity, Server};
use tonic::{Code, Status};

use crate::config::TlsConfig;
use crate::keywire::{self, Out, Puller, RawKeyStream};
use crate::link::{chain, refused, tls_cause};

/// Metadata entry marking a plan refusal (value `1`). The dealer's own plan
/// hash is not disclosed to a caller that names another plan.
pub const PLAN_MISMATCH_METADATA: &str = "ariann-plan-mismatch";
/// Default chunk size of the key stream: 256 MiB, more than any bundle of
/// the zoo's plans (at most `max_gate_elems` = 2^18 elements of at most
/// ~1,050 B of key), so each bundle travels as one message and the party
/// decodes it where gRPC received it, without reassembling it.
pub const DEFAULT_KEY_CHUNK: usize = 256 << 20;
/// HTTP/2 flow-control windows of the key stream (per stream, per
/// connection): several chunks in flight, so the dealer never waits for a
/// window update between chunks; a party buffers at most this much.
const KEY_STREAM_WINDOW: u32 = 32 << 20;
const KEY_CONN_WINDOW: u32 = 64 << 20;
/// Largest HTTP/2 frame a party accepts from the dealer (the default is
/// 16 KiB: 256 frames per MiB of keys).
const KEY_FRAME: u32 = 1 << 20;
/// Largest chunk size either end accepts (a party's gRPC decoder reserves
/// up to this much for one message).
pub const MAX_KEY_CHUNK: usize = 1 << 30;
/// Bytes of a chunk message beyond its payload.
const CHUNK_OVERHEAD: usize = 1024;
/// Bytes of chunk messages queued between a party's pump and its gRPC
/// stream: at least one chunk, at most four.
const OUT_BYTES: usize = 16 << 20;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn party_index(p: Party) -> u32 {
    u32::from(p.index())
}

/// Domain of the dealer's signature on a key stream header.
const HEADER_SIG_DOMAIN: &[u8] = b"ariann-rs key stream header v3";

/// The bytes the dealer signs for `party`'s header (after the domain).
fn header_message(
    session: &[u8; 16],
    party: u8,
    plan_hash: &[u8; 32],
    bundles: u64,
    ring_bits: u32,
    link: &LinkSecret,
    public: &[u8; PUBLIC_KEY_LEN],
) -> zeroize::Zeroizing<Vec<u8>> {
    let mut m = zeroize::Zeroizing::new(Vec::with_capacity(16 + 1 + 32 + 8 + 4 + 32 + 32));
    m.extend_from_slice(session);
    m.push(party);
    m.extend_from_slice(plan_hash);
    m.extend_from_slice(&bundles.to_le_bytes());
    m.extend_from_slice(&ring_bits.to_le_bytes());
    m.extend_from_slice(link.expose());
    m.extend_from_slice(public);
    m
}

/// The job a [`KeyServer`] serves, as announced in both headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyJob {
    /// Dealer session id (fresh and random per job).
    pub session: [u8; 16],
    /// Plan hash of the job.
    pub plan_hash: [u8; 32],
    /// Ring width of the keys.
    pub ring_bits: u32,
    /// Bundles per party (gates of the plan).
    pub bundles: u64,
    /// The session's link secret (fresh and random per job), in both
    /// parties' signed headers.
    pub link_secret: LinkSecret,
}

/// The dealer's TLS: its certificate and key, and each party's pinned
/// certificate (PEM). A party must present exactly the certificate pinned
/// for the party it asks keys for.
#[derive(Clone)]
pub struct DealerTls {
    /// The dealer's certificate chain (PEM).
    pub cert_pem: String,
    /// The dealer's private key (PEM).
    pub key_pem: String,
    /// Party 0's and party 1's certificates (PEM).
    pub party_pems: [String; 2],
}

impl std::fmt::Debug for DealerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DealerTls").finish_non_exhaustive()
    }
}

/// How the dealer serves one job.
#[derive(Debug, Clone)]
pub struct KeyServerConfig {
    /// Where to listen (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Largest chunk payload sent.
    pub chunk_size: usize,
    /// Encoded bundles buffered per party (at least 1).
    pub buffer: usize,
    /// How long to wait for both parties to ask for their keys.
    pub wait_timeout: Duration,
    /// The whole job's deadline, from the start of `serve`: a job still
    /// running then fails (a stalled party cannot hold the dealer forever).
    pub deadline: Duration,
    /// Mutual TLS (plaintext HTTP/2 when `None`).
    pub tls: Option<DealerTls>,
}

impl KeyServerConfig {
    /// Defaults: 1 MiB chunks, 2 bundles per party, 10 minutes to wait for
    /// the parties, a 24-hour deadline for the whole job, no TLS.
    pub fn new(listen: SocketAddr) -> Self {
        KeyServerConfig {
            listen,
            chunk_size: DEFAULT_KEY_CHUNK,
            buffer: 2,
            wait_timeout: Duration::from_secs(600),
            deadline: Duration::from_secs(24 * 3600),
            tls: None,
        }
    }
}

/// Errors of serving keys.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KeyServeError {
    /// A setting is out of range.
    #[error("invalid key server setting: {0}")]
    Invalid(String),
    /// The server could not start (runtime, socket, TLS setup).
    #[error("cannot serve keys: {0}")]
    Setup(String),
    /// The job did not finish within the dealer's overall deadline.
    #[error(
        "the job did not finish within the dealer's deadline of {0:?} (bundles sent: party 0 \
         {1}, party 1 {2}); the job failed"
    )]
    Deadline(Duration, u64, u64),
    /// A party (or both) did not ask for its keys in time.
    #[error("{missing} did not ask for keys within {timeout:?}")]
    NoParty {
        /// Who is missing: "party 0", "party 1" or "parties 0 and 1".
        missing: String,
        /// The wait.
        timeout: Duration,
    },
    /// A party's stream ended before the party confirmed it used every bundle.
    #[error(
        "party {party} disconnected after {sent} of {bundles} bundles were sent, \
         before confirming it used them all ({reason}); the job failed"
    )]
    PartyGone {
        /// The party.
        party: u8,
        /// Bundles sent to it.
        sent: u64,
        /// Bundles of the job.
        bundles: u64,
        /// What happened.
        reason: String,
    },
    /// Key generation failed.
    #[error("key generation failed: {0}")]
    Generate(String),
}

/// What a finished [`KeyServer::serve`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServeReport {
    /// Bundles per party.
    pub bundles: u64,
    /// Encoded key bytes sent to each party.
    pub bytes: [u64; 2],
    /// Seconds from the first party's request to the second ack.
    pub seconds: f64,
}

enum Event {
    Started(u8),
    Sent(u8, u64),
    Done(u8),
    Gone {
        party: u8,
        sent: u64,
        reason: String,
    },
}

/// One encoded bundle: a [`SecretBuf`] behind `Bytes`, so the chunks are
/// slices of it (no copy) and it is wiped when the last chunk is dropped.
type Encoded = Bytes;

struct KeyService {
    job: KeyJob,
    /// Each party's signed header fields: the dealer's public key and its
    /// signature.
    signed: [(Vec<u8>, Vec<u8>); 2],
    chunk_size: usize,
    slots: Arc<Mutex<[Option<mpsc::Receiver<Encoded>>; 2]>>,
    events: std::sync::mpsc::Sender<Event>,
    pinned: Option<[Vec<Vec<u8>>; 2]>,
}

/// The certificates of a PEM text, DER-encoded, in order (an error if it
/// holds none or a malformed one).
pub fn pem_certs(pem: &str) -> Result<Vec<Vec<u8>>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|c| c.map(|c| c.as_ref().to_vec()))
        .collect();
    let certs = certs.map_err(|e| format!("bad PEM certificate: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in the PEM".into());
    }
    Ok(certs)
}

impl KeyService {
    fn refuse(&self, party: Option<u32>, status: Status) -> Status {
        tracing::warn!(
            party = ?party,
            code = ?status.code(),
            reason = status.message(),
            "refused a key request"
        );
        status
    }

    fn check(&self, req: &KeyRequest, leaf: Option<&[u8]>) -> Result<u8, Status> {
        let p = Some(req.party);
        if req.format_version != KEY_STREAM_VERSION {
            return Err(self.refuse(
                p,
                Status::failed_precondition(format!(
                    "key stream format version {} asked, this dealer speaks version {} (run the same ariann-rs version on the dealer and both parties)",
                    req.format_version, KEY_STREAM_VERSION
                )),
            ));
        }
        let party = match req.party {
            0 => 0u8,
            1 => 1u8,
            n => {
                return Err(self.refuse(
                    p,
                    Status::invalid_argument(format!("party {n} (must be 0 or 1)")),
                ));
            }
        };
        if req.plan_hash != self.job.plan_hash {
            let mut md = MetadataMap::new();
            md.insert(PLAN_MISMATCH_METADATA, MetadataValue::from_static("1"));
            // Nothing about this dealer's job for a caller of another plan.
            return Err(self.refuse(
                p,
                Status::with_metadata(
                    Code::FailedPrecondition,
                    format!(
                        "party {party} asked for plan {}, which this dealer does not serve",
                        hex(&req.plan_hash)
                    ),
                    md,
                ),
            ));
        }
        if let Some(pinned) = &self.pinned {
            let ok = leaf.is_some_and(|l| pinned[party as usize].iter().any(|c| c == l));
            if !ok {
                return Err(self.refuse(
                    p,
                    Status::permission_denied(format!(
                        "the client certificate is not the one pinned for party {party}"
                    )),
                ));
            }
        }
        Ok(party)
    }
}

impl Puller for KeyService {
    fn start(
        self: Arc<Self>,
        leaf: Option<Vec<u8>>,
        inbound: Streaming<PullMessage>,
    ) -> BoxFuture<mpsc::Receiver<Out>, Status> {
        Box::pin(async move { self.pull(leaf, inbound).await })
    }
}

impl KeyService {
    /// A party's call ([`keywire`] writes the messages to the wire): reads
    /// and checks its request, queues its header and starts its pump.
    async fn pull(
        &self,
        leaf: Option<Vec<u8>>,
        mut inbound: Streaming<PullMessage>,
    ) -> Result<mpsc::Receiver<Out>, Status> {
        let first = tokio::time::timeout(Duration::from_secs(30), inbound.message()).await;
        let req = match first {
            Ok(Ok(Some(PullMessage {
                body: Some(PullBody::Request(r)),
            }))) => r,
            Ok(Ok(_)) => {
                return Err(self.refuse(
                    None,
                    Status::invalid_argument("the first message must be a KeyRequest"),
                ));
            }
            Ok(Err(s)) => return Err(s),
            Err(_) => {
                return Err(self.refuse(None, Status::deadline_exceeded("no KeyRequest in time")));
            }
        };
        let party = self.check(&req, leaf.as_deref())?;
        let slot = self
            .slots
            .lock()
            .map_err(|_| Status::internal("poisoned"))?[party as usize]
            .take();
        let Some(bundles) = slot else {
            return Err(self.refuse(
                Some(req.party),
                Status::already_exists(format!(
                    "party {party} has already pulled its keys from this dealer job \
                     (keys are served once)"
                )),
            ));
        };
        tracing::info!(party, "party connected; streaming its keys");
        let _ = self.events.send(Event::Started(party));
        let (out, rx) = mpsc::channel((OUT_BYTES / self.chunk_size).clamp(1, 4));
        let header = KeyChunk {
            body: Some(Body::Header(KeyStreamHeader {
                format_version: KEY_STREAM_VERSION,
                session_id: self.job.session.to_vec(),
                party: u32::from(party),
                bundles: self.job.bundles,
                ring_bits: self.job.ring_bits,
                plan_hash: self.job.plan_hash.to_vec(),
                max_chunk: self.chunk_size as u32,
                link_secret: self.job.link_secret.expose().to_vec(),
                dealer_public_key: self.signed[party as usize].0.clone(),
                signature: self.signed[party as usize].1.clone(),
            })),
        };
        // Cannot fail: fresh channel with room.
        let _ = out.try_send(Ok(keywire::message(&header)));
        tokio::spawn(pump(
            party,
            self.job.bundles,
            self.chunk_size,
            bundles,
            inbound,
            out,
            self.events.clone(),
        ));
        Ok(rx)
    }
}

/// Streams one party's bundles, watching its side of the call; reports the
/// outcome.
async fn pump(
    party: u8,
    count: u64,
    chunk: usize,
    mut bundles: mpsc::Receiver<Encoded>,
    mut inbound: Streaming<PullMessage>,
    out: mpsc::Sender<Out>,
    events: std::sync::mpsc::Sender<Event>,
) {
    let mut sent = 0u64;
    let gone = |sent: u64, reason: String| Event::Gone {
        party,
        sent,
        reason,
    };
    let ev = loop {
        tokio::select! {
            m = inbound.message() => match m {
                Ok(Some(PullMessage { body: Some(PullBody::Ack(KeyAck { bundles })) }))
                    if sent == count =>
                {
                    if bundles == count {
                        break Event::Done(party);
                    }
                    break gone(sent, format!("it acknowledged {bundles} bundles"));
                }
                Ok(Some(_)) => {
                    let _ = out.try_send(Err(Status::invalid_argument(
                        "unexpected message (a second request, or an early ack)",
                    )));
                    break gone(sent, "it broke the key stream protocol".into());
                }
                Ok(None) => break gone(sent, "it closed its side of the stream".into()),
                Err(s) => break gone(sent, format!("{}: {}", s.code(), s.message())),
            },
            b = bundles.recv(), if sent < count => {
                let Some(bytes) = b else {
                    // The generator stopped (it reports its own error).
                    let _ = out.try_send(Err(Status::internal("key generation failed")));
                    return;
                };
                let total = bytes.len();
                let mut at = 0usize;
                let mut index = 0u32;
                let mut broken = false;
                loop {
                    let end = total.min(at.saturating_add(chunk));
                    let last = end == total;
                    let msg = keywire::chunk_head(sent, index, last, bytes.slice(at..end));
                    if out.send(Ok(msg)).await.is_err() {
                        broken = true;
                        break;
                    }
                    if last {
                        break;
                    }
                    at = end;
                    index += 1;
                }
                if broken {
                    break gone(sent, "its stream was dropped".into());
                }
                sent += 1;
                let _ = events.send(Event::Sent(party, bytes.len() as u64));
            }
        }
    };
    let _ = events.send(ev);
    // Dropping `out` ends the stream (OK after an ack).
}

/// The dealer's key server for one job: bound, waiting for the parties.
pub struct KeyServer {
    rt: Runtime,
    addr: SocketAddr,
    cfg: KeyServerConfig,
    job: KeyJob,
    senders: [mpsc::Sender<Encoded>; 2],
    events: std::sync::mpsc::Receiver<Event>,
    server: tokio::task::JoinHandle<()>,
    shutdown: oneshot::Sender<()>,
}

impl std::fmt::Debug for KeyServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyServer")
            .field("addr", &self.addr)
            .field("job", &self.job)
            .finish_non_exhaustive()
    }
}

impl KeyServer {
    /// Binds `cfg.listen` and starts serving `job` (bundles flow once
    /// [`KeyServer::serve`] runs), each party's header signed with `key`.
    pub fn bind(
        cfg: KeyServerConfig,
        job: KeyJob,
        key: &DealerSigningKey,
    ) -> Result<KeyServer, KeyServeError> {
        if cfg.chunk_size == 0 || cfg.chunk_size > MAX_KEY_CHUNK {
            return Err(KeyServeError::Invalid(format!(
                "chunk size {} (1..={MAX_KEY_CHUNK})",
                cfg.chunk_size
            )));
        }
        if cfg.buffer == 0 || cfg.wait_timeout.is_zero() || cfg.deadline.is_zero() {
            return Err(KeyServeError::Invalid(
                "buffer, wait timeout and deadline must be positive".into(),
            ));
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ariann-dealer-net")
            .enable_all()
            .build()
            .map_err(|e| KeyServeError::Setup(format!("tokio runtime: {e}")))?;
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(cfg.listen))
            .map_err(|e| KeyServeError::Setup(format!("cannot listen on {}: {e}", cfg.listen)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| KeyServeError::Setup(format!("no local address: {e}")))?;
        let (tx0, rx0) = mpsc::channel(cfg.buffer);
        let (tx1, rx1) = mpsc::channel(cfg.buffer);
        let (ev_tx, events) = std::sync::mpsc::channel();
        let pinned = match &cfg.tls {
            Some(t) => Some([
                pem_certs(&t.party_pems[0])
                    .map_err(|e| KeyServeError::Setup(format!("party 0 certificate: {e}")))?,
                pem_certs(&t.party_pems[1])
                    .map_err(|e| KeyServeError::Setup(format!("party 1 certificate: {e}")))?,
            ]),
            None => None,
        };
        let public = key.public().to_bytes();
        let sign = |party: u8| {
            let m = header_message(
                &job.session,
                party,
                &job.plan_hash,
                job.bundles,
                job.ring_bits,
                &job.link_secret,
                &public,
            );
            (public.to_vec(), key.sign(HEADER_SIG_DOMAIN, &m).to_vec())
        };
        let signed = [sign(0), sign(1)];
        let service = KeyService {
            job: job.clone(),
            signed,
            chunk_size: cfg.chunk_size,
            slots: Arc::new(Mutex::new([Some(rx0), Some(rx1)])),
            events: ev_tx,
            pinned,
        };
        let svc = RawKeyStream::new(service, 64 << 10);
        let mut builder = Server::builder()
            .tcp_nodelay(true)
            .initial_stream_window_size(KEY_STREAM_WINDOW)
            .initial_connection_window_size(KEY_CONN_WINDOW)
            .max_frame_size(KEY_FRAME)
            .http2_keepalive_interval(Some(Duration::from_secs(10)))
            .http2_keepalive_timeout(Some(Duration::from_secs(20)));
        if let Some(t) = &cfg.tls {
            let both = format!("{}\n{}", t.party_pems[0], t.party_pems[1]);
            let tls = tonic::transport::ServerTlsConfig::new()
                .identity(Identity::from_pem(&t.cert_pem, &t.key_pem))
                .client_ca_root(Certificate::from_pem(both))
                .client_auth_optional(false);
            builder = builder
                .tls_config(tls)
                .map_err(|e| KeyServeError::Setup(format!("bad TLS setup: {e}")))?;
        }
        let router = builder.add_service(svc);
        let (shutdown, stop) = oneshot::channel::<()>();
        let server = rt.spawn(async move {
            let incoming = TcpListenerStream::new(listener);
            if let Err(e) = router
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stop.await;
                })
                .await
            {
                tracing::warn!(error = %e, "key server stopped");
            }
        });
        Ok(KeyServer {
            rt,
            addr,
            cfg,
            job,
            senders: [tx0, tx1],
            events,
            server,
            shutdown,
        })
    }

    /// Where the server listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Generates (by pulling `bundles`, one gate at a time, on a thread of
    /// its own) and streams the job's keys until both parties have
    /// acknowledged theirs. `bundles` yields `(party 0, party 1)` pairs in
    /// plan order, exactly [`KeyJob::bundles`] of them.
    ///
    /// Errors: a party missing after the wait timeout, a party gone before
    /// its ack, a generation failure. The server stops in every case.
    pub fn serve<R, E, I>(self, bundles: I) -> Result<ServeReport, KeyServeError>
    where
        R: Ring,
        E: Display,
        I: Iterator<Item = Result<(KeyBundle<R>, KeyBundle<R>), E>> + Send,
    {
        let KeyServer {
            rt,
            cfg,
            job,
            senders,
            events,
            server,
            shutdown,
            ..
        } = self;
        let (gen_err_tx, gen_err) = std::sync::mpsc::channel::<String>();
        std::thread::scope(|sc| {
            let [tx0, tx1] = senders;
            sc.spawn(move || generate(bundles, job.bundles, tx0, tx1, gen_err_tx));
            let res = wait_parties(&events, &gen_err, &cfg, &job);
            if res.is_ok() {
                // Let the final trailers reach the parties (bounded).
                rt.block_on(async {
                    let _ = shutdown.send(());
                    let abort = server.abort_handle();
                    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
                    abort.abort();
                });
            }
            // Drops every task, so every bundle channel: a generator blocked
            // on a party that will never read again stops.
            rt.shutdown_background();
            res
        })
    }
}

/// The generator thread: one gate at a time; each party's bundle goes to
/// an encoder thread of its own (one bundle queued), which encodes it and
/// queues it on the party's bounded channel. So the next gate's keys are
/// generated while this one's are encoded, both parties' in parallel, and
/// sent.
fn generate<R: Ring, E: Display>(
    bundles: impl Iterator<Item = Result<(KeyBundle<R>, KeyBundle<R>), E>>,
    count: u64,
    tx0: mpsc::Sender<Encoded>,
    tx1: mpsc::Sender<Encoded>,
    err: std::sync::mpsc::Sender<String>,
) {
    std::thread::scope(|sc| {
        let (e0, r0) = sync_channel::<KeyBundle<R>>(1);
        let (e1, r1) = sync_channel::<KeyBundle<R>>(1);
        sc.spawn(move || encode_bundles(r0, tx0));
        sc.spawn(move || encode_bundles(r1, tx1));
        let mut n = 0u64;
        for pair in bundles {
            let (a, b) = match pair {
                Ok(p) => p,
                Err(e) => {
                    let _ = err.send(format!("bundle {n}: {e}"));
                    return;
                }
            };
            // A closed channel: that party is gone (its pump reports it).
            if e0.send(a).is_err() || e1.send(b).is_err() {
                return;
            }
            n += 1;
        }
        if n != count {
            let _ = err.send(format!("the plan yielded {n} bundles, {count} announced"));
        }
    });
}

/// An encoder thread: each bundle into a buffer of its exact size, wiped
/// once the last of its chunks is sent ([`Bytes::from_owner`]).
fn encode_bundles<R: Ring>(rx: Receiver<KeyBundle<R>>, tx: mpsc::Sender<Encoded>) {
    for b in rx {
        let mut buf = SecretBuf::new();
        b.encode_secret(&mut buf);
        drop(b);
        if tx.blocking_send(Bytes::from_owner(buf)).is_err() {
            return;
        }
    }
}

fn wait_parties(
    events: &std::sync::mpsc::Receiver<Event>,
    gen_err: &std::sync::mpsc::Receiver<String>,
    cfg: &KeyServerConfig,
    job: &KeyJob,
) -> Result<ServeReport, KeyServeError> {
    let start = std::time::Instant::now();
    let mut first: Option<std::time::Instant> = None;
    let mut started = [false; 2];
    let mut done = [false; 2];
    let mut bytes = [0u64; 2];
    let mut sent = [0u64; 2];
    loop {
        if let Ok(e) = gen_err.try_recv() {
            return Err(KeyServeError::Generate(e));
        }
        if done == [true, true] {
            let secs = first.map_or(0.0, |t| t.elapsed().as_secs_f64());
            return Ok(ServeReport {
                bundles: job.bundles,
                bytes,
                seconds: secs,
            });
        }
        if start.elapsed() > cfg.deadline {
            return Err(KeyServeError::Deadline(cfg.deadline, sent[0], sent[1]));
        }
        if started != [true, true] && start.elapsed() > cfg.wait_timeout {
            let missing = match started {
                [true, _] => "party 1",
                [_, true] => "party 0",
                _ => "parties 0 and 1",
            };
            return Err(KeyServeError::NoParty {
                missing: missing.to_string(),
                timeout: cfg.wait_timeout,
            });
        }
        match events.recv_timeout(Duration::from_millis(100)) {
            Ok(Event::Started(p)) => {
                started[p as usize] = true;
                first.get_or_insert_with(std::time::Instant::now);
            }
            Ok(Event::Sent(p, n)) => {
                bytes[p as usize] += n;
                sent[p as usize] += 1;
                tracing::debug!(party = p, bundles = sent[p as usize], "bundle sent");
            }
            Ok(Event::Done(p)) => {
                tracing::info!(party = p, "party acknowledged all its keys");
                done[p as usize] = true;
            }
            Ok(Event::Gone {
                party,
                sent,
                reason,
            }) => {
                return Err(KeyServeError::PartyGone {
                    party,
                    sent,
                    bundles: job.bundles,
                    reason,
                });
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err(KeyServeError::Setup("the key service stopped".into()));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Party side
// ---------------------------------------------------------------------------

/// How a party reaches the dealer for its keys.
#[derive(Debug, Clone)]
pub struct DealerConfig {
    /// The dealer, `host:port`.
    pub addr: String,
    /// This party.
    pub party: Party,
    /// Plan hash of the job this party runs.
    pub plan_hash: [u8; 32],
    /// Deadline to reach the dealer and receive its header (refused
    /// connections are retried until then).
    pub connect_timeout: Duration,
    /// Deadline to receive a bundle once the job needs it.
    pub recv_timeout: Duration,
    /// Largest chunk accepted.
    pub max_chunk: usize,
    /// Largest encoded bundle accepted.
    pub max_bundle: usize,
    /// Mutual TLS: this party's certificate and key, the dealer's pinned
    /// certificate as `peer_pem`, the dealer's name as `server_name`.
    pub tls: Option<TlsConfig>,
    /// Bundles of the job (the number of gates of this party's plan): a
    /// header announcing another count is refused.
    pub bundles: u64,
    /// The pinned dealer key and this host's use-once ledger.
    pub trust: KeyTrust,
}

impl DealerConfig {
    /// Keys of a plan with hash `plan_hash` and `bundles` gates, from a
    /// dealer trusted as `trust` says. Defaults: 30 s to connect, 60 s per
    /// bundle, chunks up to 16 MiB, bundles up to 16 GiB, no TLS.
    pub fn new(
        addr: impl Into<String>,
        party: Party,
        plan_hash: [u8; 32],
        bundles: u64,
        trust: KeyTrust,
    ) -> Self {
        DealerConfig {
            addr: addr.into(),
            party,
            plan_hash,
            bundles,
            trust,
            connect_timeout: Duration::from_secs(30),
            recv_timeout: Duration::from_secs(60),
            max_chunk: MAX_KEY_CHUNK,
            max_bundle: 16 << 30,
            tls: None,
        }
    }
}

/// Errors of setting up a [`DealerStreamSource`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum KeyStreamError {
    /// A setting is out of range.
    #[error("invalid dealer link setting: {0}")]
    Invalid(String),
    /// The dealer could not be reached before the deadline.
    #[error("cannot reach the dealer at {addr} within {timeout:?}: {reason}")]
    Unreachable {
        /// The dealer's address.
        addr: String,
        /// The deadline.
        timeout: Duration,
        /// The last failure.
        reason: String,
    },
    /// TLS with the dealer failed.
    #[error("TLS with the dealer: {0}")]
    Tls(String),
    /// The dealer serves another plan.
    #[error(
        "the dealer serves another plan than this party's job (plan hash {expected}{}): check the \
         model, batch, batches and settings on both sides (`ariann-dealer plan --hash`)",
        dealer.as_ref().map(|d| format!("; the dealer's: {d}")).unwrap_or_default()
    )]
    PlanMismatch {
        /// The dealer's plan hash (hex), when its header told it (a
        /// refusal does not disclose it).
        dealer: Option<String>,
        /// This party's plan hash (hex).
        expected: String,
    },
    /// The dealer's keys are for another ring.
    #[error("the dealer's keys are for Z_2^{dealer}, this job runs on Z_2^{expected}")]
    RingMismatch {
        /// Ring bits of the dealer's keys.
        dealer: u32,
        /// Ring bits of this job.
        expected: u32,
    },
    /// The dealer refused the request (keys already pulled, certificate
    /// not pinned, another format version).
    #[error("the dealer refused: {0}")]
    Refused(String),
    /// The dealer broke the key stream protocol.
    #[error("key stream protocol error: {0}")]
    Protocol(String),
    /// The header is not signed by the pinned dealer key (unsigned, signed
    /// by another key, or tampered with).
    #[error("the key stream is not signed by the pinned dealer key: {0}")]
    Signature(String),
    /// The dealer announces another number of bundles than the plan's gates.
    #[error("the dealer announces {dealer} bundles, but this job's plan has {expected} gates")]
    BundleCount {
        /// Bundles announced.
        dealer: u64,
        /// Gates of the plan.
        expected: u64,
    },
    /// The session was already used on this host, or the ledger failed.
    #[error("{0}")]
    Ledger(String),
}

/// What the dealer announced for this party's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamHeader {
    /// Dealer session id (the same for both parties of the job).
    pub session: [u8; 16],
    /// Bundles that follow.
    pub bundles: u64,
    /// Ring width of the keys.
    pub ring_bits: u32,
    /// Plan hash of the keys.
    pub plan_hash: [u8; 32],
    /// Largest chunk the dealer sends.
    pub max_chunk: usize,
}

enum Item<R: Ring> {
    Bundle(Box<KeyBundle<R>>),
    Fault(u64, SourceFault),
    Ended(u64),
}

/// A party's [`PreprocessingSource`] reading its bundles from the dealer's
/// stream: a reader thread receives, reassembles and decodes them into a
/// bounded channel (one bundle ahead); `next_bundle` checks each with
/// [`check_bundle`]. After the last bundle is handed out the source
/// acknowledges it to the dealer.
///
/// Errors of `next_bundle`: [`MpcError::KeysExhausted`] when the stream
/// ended early or the plan is longer than announced,
/// [`MpcError::KeySource`] for a broken stream, a corrupt chunk, an
/// undecodable bundle or no bundle within the receive deadline, plus the
/// errors of [`check_bundle`]. Errors are sticky.
pub struct DealerStreamSource<R: Ring> {
    header: StreamHeader,
    link_secret: LinkSecret,
    ledger: ariann_dealer::ledger::Ledger,
    dealer_addr: String,
    party: Party,
    rt: Option<Runtime>,
    rx: Option<Receiver<Item<R>>>,
    out: Option<mpsc::Sender<PullMessage>>,
    finished: Receiver<()>,
    pending: Option<KeyBundle<R>>,
    next: u64,
    recv_timeout: Duration,
    failed: Option<MpcError>,
}

impl<R: Ring> std::fmt::Debug for DealerStreamSource<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DealerStreamSource")
            .field("header", &self.header)
            .field("consumed", &self.next)
            .finish_non_exhaustive()
    }
}

fn status_to_error(s: &Status, cfg: &DealerConfig) -> KeyStreamError {
    if let Some(t) = tls_cause(s) {
        return KeyStreamError::Tls(t);
    }
    if s.code() == Code::FailedPrecondition && s.metadata().get(PLAN_MISMATCH_METADATA).is_some() {
        return KeyStreamError::PlanMismatch {
            dealer: None,
            expected: hex(&cfg.plan_hash),
        };
    }
    match s.code() {
        Code::FailedPrecondition
        | Code::InvalidArgument
        | Code::AlreadyExists
        | Code::PermissionDenied => KeyStreamError::Refused(s.message().to_string()),
        Code::Unavailable | Code::Unknown if cfg.tls.is_some() => KeyStreamError::Tls(format!(
            "the dealer dropped the connection during setup (does it pin this party's \
             certificate?): {}",
            chain(s)
        )),
        _ => KeyStreamError::Protocol(format!("{}: {}", s.code(), s.message())),
    }
}

impl<R: Ring> DealerStreamSource<R> {
    /// Connects to the dealer (retrying refused connections until the
    /// connect deadline), asks for this party's keys and checks the header
    /// (party, plan hash, ring). Blocks until then.
    pub fn connect(cfg: DealerConfig) -> Result<Self, KeyStreamError> {
        if cfg.max_chunk == 0 || cfg.max_chunk > MAX_KEY_CHUNK {
            return Err(KeyStreamError::Invalid(format!(
                "chunk limit {} (1..={MAX_KEY_CHUNK})",
                cfg.max_chunk
            )));
        }
        if cfg.connect_timeout.is_zero() || cfg.recv_timeout.is_zero() {
            return Err(KeyStreamError::Invalid("zero timeout".into()));
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ariann-keys-net")
            .enable_all()
            .build()
            .map_err(|e| KeyStreamError::Invalid(format!("tokio runtime: {e}")))?;
        let opened = rt.block_on(open(&cfg)).and_then(|(out, inbound, header)| {
            if header.0.ring_bits == R::BITS {
                Ok((out, inbound, header))
            } else {
                Err(KeyStreamError::RingMismatch {
                    dealer: header.0.ring_bits,
                    expected: R::BITS,
                })
            }
        });
        let (out, inbound, (header, link_secret)) = match opened {
            Ok(x) => x,
            Err(e) => {
                rt.shutdown_background();
                return Err(e);
            }
        };
        let (tx, rx) = sync_channel(1);
        let (fin_tx, finished) = sync_channel(1);
        let handle = rt.handle().clone();
        let party = cfg.party;
        let max_chunk = header.max_chunk;
        let max_bundle = cfg.max_bundle;
        let spawned = std::thread::Builder::new()
            .name("ariann-keys-reader".into())
            .spawn(move || {
                read_stream::<R>(
                    &handle,
                    inbound,
                    party,
                    header.bundles,
                    max_chunk,
                    max_bundle,
                    &tx,
                );
                let _ = fin_tx.send(());
            });
        if let Err(e) = spawned {
            rt.shutdown_background();
            return Err(KeyStreamError::Invalid(format!(
                "cannot start the reader: {e}"
            )));
        }
        Ok(DealerStreamSource {
            header,
            link_secret,
            ledger: cfg.trust.ledger.clone(),
            dealer_addr: cfg.addr.clone(),
            party,
            rt: Some(rt),
            rx: Some(rx),
            out: Some(out),
            finished,
            pending: None,
            next: 0,
            recv_timeout: cfg.recv_timeout,
            failed: None,
        })
    }

    /// The dealer's header (session id, bundle count, ring, plan hash).
    pub fn header(&self) -> &StreamHeader {
        &self.header
    }

    /// The session's link secret (from the dealer's signed header), for
    /// the party link's authenticated Hello.
    pub fn link_secret(&self) -> LinkSecret {
        self.link_secret.clone()
    }

    /// Bundles handed out so far.
    pub fn consumed(&self) -> u64 {
        self.next
    }

    fn fail(&mut self, e: MpcError) -> MpcError {
        self.failed = Some(e.clone());
        e
    }
}

type Opened = (
    mpsc::Sender<PullMessage>,
    Streaming<KeyChunk>,
    (StreamHeader, LinkSecret),
);

async fn open(cfg: &DealerConfig) -> Result<Opened, KeyStreamError> {
    let deadline = Instant::now() + cfg.connect_timeout;
    let scheme = if cfg.tls.is_some() { "https" } else { "http" };
    let uri = format!("{scheme}://{}", cfg.addr);
    let mut endpoint = Endpoint::from_shared(uri.clone())
        .map_err(|e| KeyStreamError::Invalid(format!("bad dealer address {uri:?}: {e}")))?
        .tcp_nodelay(true)
        .initial_stream_window_size(KEY_STREAM_WINDOW)
        .initial_connection_window_size(KEY_CONN_WINDOW)
        .max_frame_size(KEY_FRAME)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(20))
        .connect_timeout(cfg.connect_timeout);
    if let Some(t) = &cfg.tls {
        let tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&t.peer_pem))
            .identity(Identity::from_pem(&t.cert_pem, &t.key_pem))
            .domain_name(t.server_name.clone());
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| KeyStreamError::Tls(format!("bad TLS setup: {e}")))?;
    }
    let unreachable = |reason: String| KeyStreamError::Unreachable {
        addr: cfg.addr.clone(),
        timeout: cfg.connect_timeout,
        reason,
    };
    let channel = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let why = match tokio::time::timeout(left, endpoint.connect()).await {
            Ok(Ok(c)) => break c,
            Err(_) => "connect timed out".to_string(),
            Ok(Err(e)) => {
                if let Some(t) = tls_cause(&e) {
                    return Err(KeyStreamError::Tls(t));
                }
                if refused(&e) {
                    "connection refused (is `ariann-dealer serve` running?)".to_string()
                } else {
                    chain(&e)
                }
            }
        };
        if Instant::now() + Duration::from_millis(50) >= deadline {
            return Err(unreachable(why));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut client = KeyStreamClient::new(channel)
        .max_decoding_message_size(cfg.max_chunk + CHUNK_OVERHEAD)
        .max_encoding_message_size(64 << 10);
    let (out, rx) = mpsc::channel::<PullMessage>(2);
    let _ = out.try_send(PullMessage {
        body: Some(PullBody::Request(KeyRequest {
            format_version: KEY_STREAM_VERSION,
            party: party_index(cfg.party),
            plan_hash: cfg.plan_hash.to_vec(),
        })),
    });
    let left = deadline.saturating_duration_since(Instant::now());
    let mut inbound = match tokio::time::timeout(left, client.pull(ReceiverStream::new(rx))).await {
        Err(_) => return Err(unreachable("the dealer did not answer".into())),
        Ok(Err(s)) => return Err(status_to_error(&s, cfg)),
        Ok(Ok(r)) => r.into_inner(),
    };
    let left = deadline.saturating_duration_since(Instant::now());
    let first = match tokio::time::timeout(left, inbound.message()).await {
        Err(_) => return Err(unreachable("the dealer sent no header".into())),
        Ok(Err(s)) => return Err(status_to_error(&s, cfg)),
        Ok(Ok(m)) => m,
    };
    let h = match first.and_then(|m| m.body) {
        Some(Body::Header(h)) => h,
        _ => {
            return Err(KeyStreamError::Protocol(
                "the first message is not a header".into(),
            ));
        }
    };
    let header = check_header(&h, cfg)?;
    Ok((out, inbound, header))
}

fn check_header(
    h: &KeyStreamHeader,
    cfg: &DealerConfig,
) -> Result<(StreamHeader, LinkSecret), KeyStreamError> {
    if h.format_version != KEY_STREAM_VERSION {
        return Err(KeyStreamError::Protocol(format!(
            "the dealer speaks key stream version {}, this party {KEY_STREAM_VERSION} (run the same ariann-rs version on the dealer and both parties)",
            h.format_version
        )));
    }
    if h.party != party_index(cfg.party) {
        return Err(KeyStreamError::Protocol(format!(
            "the dealer sent party {}'s keys to party {}",
            h.party,
            cfg.party.index()
        )));
    }
    let plan_hash: [u8; 32] = h.plan_hash.as_slice().try_into().map_err(|_| {
        KeyStreamError::Protocol(format!("plan hash of {} bytes", h.plan_hash.len()))
    })?;
    if plan_hash != cfg.plan_hash {
        return Err(KeyStreamError::PlanMismatch {
            dealer: Some(hex(&plan_hash)),
            expected: hex(&cfg.plan_hash),
        });
    }
    let session: [u8; 16] = h.session_id.as_slice().try_into().map_err(|_| {
        KeyStreamError::Protocol(format!("session id of {} bytes", h.session_id.len()))
    })?;
    if h.max_chunk == 0 || h.max_chunk as usize > cfg.max_chunk {
        return Err(KeyStreamError::Protocol(format!(
            "the dealer sends chunks of {} bytes, this party accepts 1..={}",
            h.max_chunk, cfg.max_chunk
        )));
    }
    // The dealer's signature: before anything of the header is trusted
    // further (the count, the session, the link secret).
    let pinned = cfg.trust.dealer;
    let public: [u8; PUBLIC_KEY_LEN] = h.dealer_public_key.as_slice().try_into().map_err(|_| {
        KeyStreamError::Signature(format!(
            "the header carries no dealer public key ({} bytes)",
            h.dealer_public_key.len()
        ))
    })?;
    if public != pinned.to_bytes() {
        return Err(KeyStreamError::Signature(format!(
            "signed by dealer key {}, this party pins {}",
            hex(&public),
            pinned.to_hex()
        )));
    }
    let signature: [u8; SIGNATURE_LEN] = h.signature.as_slice().try_into().map_err(|_| {
        KeyStreamError::Signature(format!(
            "the header carries no signature ({} bytes)",
            h.signature.len()
        ))
    })?;
    let mut link = zeroize::Zeroizing::new([0u8; LINK_SECRET_LEN]);
    if h.link_secret.len() != LINK_SECRET_LEN {
        return Err(KeyStreamError::Protocol(format!(
            "link secret of {} bytes",
            h.link_secret.len()
        )));
    }
    link.copy_from_slice(&h.link_secret);
    let link = LinkSecret::from_bytes(*link);
    let m = header_message(
        &session,
        cfg.party.index(),
        &plan_hash,
        h.bundles,
        h.ring_bits,
        &link,
        &public,
    );
    DealerPublicKey::verify(
        &pinned,
        HEADER_SIG_DOMAIN,
        &m,
        &signature,
        "key stream header",
    )
    .map_err(|e| KeyStreamError::Signature(e.to_string()))?;
    if h.bundles != cfg.bundles {
        return Err(KeyStreamError::BundleCount {
            dealer: h.bundles,
            expected: cfg.bundles,
        });
    }
    cfg.trust
        .ledger
        .check(SessionId(session), cfg.party)
        .map_err(|e| KeyStreamError::Ledger(e.to_string()))?;
    Ok((
        StreamHeader {
            session,
            bundles: h.bundles,
            ring_bits: h.ring_bits,
            plan_hash,
            max_chunk: h.max_chunk as usize,
        },
        link,
    ))
}

/// The reader thread: chunks in order, bundles reassembled, decoded and
/// checked (party, index), handed over one at a time; then the end of the
/// stream (after the ack).
fn read_stream<R: Ring>(
    rt: &tokio::runtime::Handle,
    mut inbound: Streaming<KeyChunk>,
    party: Party,
    count: u64,
    max_chunk: usize,
    max_bundle: usize,
    tx: &SyncSender<Item<R>>,
) {
    // One buffer for the whole stream, wiped and reused for each bundle.
    let mut buf = SecretBuf::new();
    let mut bundle = 0u64;
    let mut next_chunk = 0u32;
    loop {
        let m = rt.block_on(inbound.message());
        let c = match m {
            Ok(Some(KeyChunk {
                body: Some(Body::Chunk(c)),
            })) => c,
            Ok(Some(_)) => {
                let _ = tx.send(Item::Fault(
                    bundle,
                    SourceFault::Decode("a second header or an empty message".into()),
                ));
                return;
            }
            Ok(None) => {
                if bundle < count {
                    let _ = tx.send(Item::Ended(bundle));
                }
                return;
            }
            Err(s) => {
                if bundle < count {
                    let why =
                        tls_cause(&s).unwrap_or_else(|| format!("{}: {}", s.code(), s.message()));
                    let _ = tx.send(Item::Fault(
                        bundle,
                        SourceFault::Io(format!("the dealer stream broke: {why}")),
                    ));
                }
                return;
            }
        };
        let fault = if bundle >= count {
            Some(format!("chunk after the last of {count} bundles"))
        } else if c.bundle != bundle || c.chunk != next_chunk {
            Some(format!(
                "chunk {} of bundle {} where chunk {next_chunk} of bundle {bundle} was expected",
                c.chunk, c.bundle
            ))
        } else if c.payload.len() > max_chunk {
            Some(format!(
                "chunk of {} bytes (at most {max_chunk})",
                c.payload.len()
            ))
        } else if buf.len() + c.payload.len() > max_bundle {
            Some(format!(
                "bundle longer than the limit of {max_bundle} bytes"
            ))
        } else {
            None
        };
        if let Some(f) = fault {
            if bundle < count {
                let _ = tx.send(Item::Fault(bundle, SourceFault::Decode(f)));
            } else {
                tracing::warn!(reason = %f, "dealer stream: extra data after the last bundle");
            }
            return;
        }
        // A bundle in one chunk is decoded where tonic received it (no
        // reassembly copy, ~7 % of a party's CPU on the key path); a longer
        // one is reassembled in `buf` first.
        let whole = c.last && buf.is_empty();
        if !whole {
            buf.extend_from_slice(&c.payload);
        }
        if !c.last {
            next_chunk = match next_chunk.checked_add(1) {
                Some(n) => n,
                None => {
                    let _ = tx.send(Item::Fault(
                        bundle,
                        SourceFault::Decode("too many chunks".into()),
                    ));
                    return;
                }
            };
            continue;
        }
        let decoded = KeyBundle::<R>::decode(if whole { &c.payload } else { &buf });
        drop(c.payload);
        let item = match decoded {
            Ok(b) if b.party == party && b.tag.index == bundle => Item::Bundle(Box::new(b)),
            Ok(b) => Item::Fault(
                bundle,
                SourceFault::Decode(format!(
                    "stream position {bundle} holds bundle {} of party {}",
                    b.tag.index,
                    b.party.index()
                )),
            ),
            Err(e) => Item::Fault(bundle, SourceFault::Decode(e.to_string())),
        };
        buf.clear();
        let stop = matches!(item, Item::Fault(..));
        if tx.send(item).is_err() || stop {
            return;
        }
        bundle += 1;
        next_chunk = 0;
    }
}

impl<R: Ring> PreprocessingSource<R> for DealerStreamSource<R> {
    fn next_bundle(&mut self, party: Party, expected: &BundleTag) -> Result<GateKey<R>, MpcError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if party != self.party {
            return Err(MpcError::WrongParty {
                key: self.party.index(),
                me: party.index(),
            });
        }
        if expected.index >= self.header.bundles || self.next >= self.header.bundles {
            return Err(MpcError::KeysExhausted {
                index: expected.index,
            });
        }
        if self.pending.is_none() {
            let got = match &self.rx {
                Some(rx) => rx.recv_timeout(self.recv_timeout),
                None => Err(RecvTimeoutError::Disconnected),
            };
            let index = self.next;
            match got {
                Ok(Item::Bundle(b)) => self.pending = Some(*b),
                Ok(Item::Fault(index, fault)) => {
                    return Err(self.fail(MpcError::KeySource { index, fault }));
                }
                Ok(Item::Ended(index)) => {
                    return Err(self.fail(MpcError::KeysExhausted { index }));
                }
                Err(RecvTimeoutError::Timeout) => {
                    let t = self.recv_timeout;
                    return Err(self.fail(MpcError::KeySource {
                        index,
                        fault: SourceFault::Io(format!("no bundle from the dealer within {t:?}")),
                    }));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(self.fail(MpcError::KeySource {
                        index,
                        fault: SourceFault::Io("the dealer stream reader stopped".into()),
                    }));
                }
            }
        }
        if let Some(b) = &self.pending {
            // A mismatch consumes nothing.
            check_bundle(b, party, expected)?;
        }
        if self.next == 0 {
            let what = format!("dealer stream from {}", self.dealer_addr);
            if let Err(e) = self
                .ledger
                .claim(SessionId(self.header.session), self.party, &what)
            {
                return Err(self.fail(MpcError::KeySource {
                    index: 0,
                    fault: SourceFault::Journal(e.to_string()),
                }));
            }
        }
        self.next += 1;
        if self.next == self.header.bundles
            && let Some(out) = &self.out
        {
            let ack = PullMessage {
                body: Some(PullBody::Ack(KeyAck { bundles: self.next })),
            };
            // Room: only the request was ever queued.
            let _ = out.try_send(ack);
        }
        match self.pending.take() {
            Some(b) => Ok(b.key),
            None => Err(MpcError::KeysExhausted {
                index: expected.index,
            }),
        }
    }
}

impl<R: Ring> Drop for DealerStreamSource<R> {
    /// After the ack, waits (at most 2 s) for the dealer to end the stream,
    /// so the ack is delivered before the process exits; otherwise closes
    /// the stream at once (the dealer sees the job failed).
    fn drop(&mut self) {
        let acked = self.next == self.header.bundles && self.failed.is_none();
        self.rx = None;
        if acked {
            let _ = self.finished.recv_timeout(Duration::from_secs(2));
        }
        self.out = None;
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

//! The party daemon: a long-running `ariann-party` that takes jobs from
//! clients over gRPC (`PartyControl` of `ariann-proto`) and runs them with
//! its peer daemon, one at a time.
//!
//! A client (the institution's own operator) submits a job to its party
//! (`SubmitJob`: job id, model — a zoo name or a JSON description; an ONNX
//! model is imported by the client, `RemoteParty::submit_onnx` and
//! `provide_onnx_weights` —, batch, output party), streams its asset
//! (`ProvideAsset`: the model owner's weights or the data owner's inputs),
//! and the party named in the job hands out the revealed output
//! (`FetchOutput`, waiting for the job to finish). The other party refuses
//! `FetchOutput` with `PERMISSION_DENIED`. Keys come from
//! `KEYS_DIR/<job id>/party<i>.keys` (written there by `ariann-dealer keys
//! --out KEYS_DIR/<job id>`), with their use-once journal.
//!
//! Every call is authenticated ([`crate::auth`]): bearer tokens from a 0600
//! file, mutual TLS with pinned client certificates, or no authentication
//! on loopback when the operator says `--insecure-local`. A job belongs to the client that submitted it; other
//! clients are told it does not exist. The output is handed out once, then
//! wiped; finished jobs are forgotten when the table is full.
//!
//! The control port carries this institution's plaintext asset: bind it to
//! loopback (the default), or use mutual TLS across hosts. The party-to-party link is
//! the one of the one-shot mode (optional mutual TLS, WAN shaping).

use crate::auth::{Client, ControlAuth};
use crate::linked::{run_linked_job, run_linked_job_from_dealer};
use crate::{Asset, Job};
use ariann_fss::Party;
use ariann_mpc::CommStats;
use ariann_net::NetConfig;
use ariann_nn::{Config, Model, Weights, zoo};
use ariann_proto::v1::party_control_server::{PartyControl, PartyControlServer};
use ariann_proto::v1::{
    AssetChunk, AssetKind, FetchOutputRequest, FetchOutputResponse, JobState, ProvideAssetResponse,
    StatusRequest, StatusResponse, SubmitJobRequest, SubmitJobResponse, asset_chunk,
    submit_job_request,
};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status, Streaming};

/// Where a daemon's jobs take their keys.
#[derive(Debug, Clone)]
pub enum DaemonKeys {
    /// Key files at `DIR/<job id>/party<i>.keys` (`ariann-dealer keys
    /// --out DIR/<job id>`).
    Dir(PathBuf),
    /// Each job pulls its keys from `ariann-dealer serve` at `addr` (the
    /// operator starts one `serve` per job, with the job's plan; a dealer
    /// serving another plan fails the job, saying so), over mutual TLS
    /// when `tls` is set (plaintext only on loopback).
    Dealer {
        /// `host:port` of the dealer.
        addr: String,
        /// This party's certificate and key and the dealer's pinned one.
        tls: Option<ariann_net::TlsConfig>,
    },
}

/// How a daemon runs.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Where clients reach this daemon.
    pub control: SocketAddr,
    /// The party link (party, listen or peer address, TLS, WAN, deadlines);
    /// its session id is set per job from the key file.
    pub net: NetConfig,
    /// Where each job's keys come from.
    pub keys: DaemonKeys,
    /// Swap ReLU and max-pool where adjacent (must match the dealer's flag).
    pub permute_relu_maxpool: bool,
    /// Fixed-point configuration of every job (must match the dealer's).
    pub cfg: Config,
    /// Largest asset accepted, in bytes.
    pub max_asset_bytes: u64,
    /// How long `FetchOutput` waits for a job to finish.
    pub fetch_timeout: Duration,
    /// Who may call the control port.
    pub auth: ControlAuth,
    /// Most jobs kept at a time; finished ones (output fetched, or failed)
    /// are forgotten first when a new job needs room.
    pub max_jobs: usize,
    /// The pinned dealer key (key files must carry its signature) and this
    /// host's use-once ledger.
    pub trust: ariann_dealer::auth::KeyTrust,
}

#[derive(Debug)]
struct Entry {
    /// The client that submitted the job.
    owner: String,
    /// The output was handed out (and wiped).
    fetched: bool,
    model: Model,
    batch: usize,
    /// Batches of `batch` inputs (at least 1).
    batches: usize,
    output_to: Party,
    state: JobState,
    detail: String,
    output: Option<(Vec<f64>, Vec<u64>)>,
    stats: CommStats,
}

#[derive(Clone)]
struct Daemon {
    cfg: Arc<DaemonConfig>,
    jobs: Arc<Mutex<HashMap<String, Entry>>>,
    /// Held by the job running on the link (one at a time).
    link: Arc<Mutex<()>>,
}

fn job_name(id: &[u8]) -> Result<String, Status> {
    let s =
        std::str::from_utf8(id).map_err(|_| Status::invalid_argument("job id must be UTF-8"))?;
    if s.is_empty()
        || s.len() > 64
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(Status::invalid_argument(
            "job id: 1 to 64 characters of [A-Za-z0-9_-] (it names the key directory)",
        ));
    }
    Ok(s.to_string())
}

impl Daemon {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding the lock cannot leave the map inconsistent
        // (entries are replaced whole), so a poisoned lock is still usable.
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, id: &str, state: JobState, detail: String) {
        if let Some(e) = self.lock().get_mut(id) {
            e.state = state;
            e.detail = detail;
        }
    }

    /// Starts the job on a worker thread once its asset has arrived.
    fn start(&self, id: String, asset: Asset) -> Result<(), Status> {
        let (model, batch, batches, output_to) = {
            let jobs = self.lock();
            let e = jobs
                .get(&id)
                .ok_or_else(|| Status::not_found("unknown job"))?;
            if e.state != JobState::Pending {
                return Err(Status::failed_precondition("the job already has its asset"));
            }
            (e.model.clone(), e.batch, e.batches, e.output_to)
        };
        let (model, asset) = match asset {
            Asset::Weights(w) => {
                w.check(&model)
                    .map_err(|e| Status::invalid_argument(format!("weights: {e}")))?;
                let (m, w) = model
                    .fold_batchnorm(&w)
                    .map_err(|e| Status::invalid_argument(format!("weights: {e}")))?;
                (m, Asset::Weights(w))
            }
            Asset::Input(x) => {
                let want = batch * batches * model.input_len();
                if x.len() != want {
                    return Err(Status::invalid_argument(format!(
                        "input has {} values, the job needs {want} ({batches} batch(es) of {batch} \
                         inputs of {} values)",
                        x.len(),
                        model.input_len()
                    )));
                }
                (model.fold_batchnorm_architecture(), Asset::Input(x))
            }
        };
        let model = if self.cfg.permute_relu_maxpool {
            model.permute_relu_maxpool()
        } else {
            model
        };
        let job = Job {
            model,
            batch,
            batches,
            cfg: self.cfg.cfg,
            output_to,
        };
        self.set(&id, JobState::Running, "waiting for the link".into());
        let me = self.clone();
        std::thread::spawn(move || {
            let _link = me.link.lock().unwrap_or_else(|e| e.into_inner());
            let party = me.cfg.net.party;
            me.set(&id, JobState::Running, "running".into());
            tracing::info!(job = %id, "job started");
            let on_listen = |addr| {
                tracing::info!(job = %id, %addr, "waiting for the peer");
                Ok(())
            };
            // A panic in the job ends the job, not the daemon.
            let res =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &me.cfg.keys {
                    DaemonKeys::Dir(dir) => {
                        let keys = dir.join(&id).join(format!(
                            "party{}.keys",
                            if party == Party::P0 { 0 } else { 1 }
                        ));
                        run_linked_job(
                            &job,
                            &asset,
                            &keys,
                            me.cfg.net.clone(),
                            &me.cfg.trust,
                            on_listen,
                        )
                    }
                    DaemonKeys::Dealer { addr, tls } => run_linked_job_from_dealer(
                        &job,
                        &asset,
                        addr,
                        tls.clone(),
                        me.cfg.net.clone(),
                        &me.cfg.trust,
                        on_listen,
                    ),
                }));
            drop(asset);
            // The job's key buffers are freed: return their pages (the
            // binary keeps freed memory for reuse within a job).
            ariann_net::memory::release_free_memory();
            let mut jobs = me.lock();
            let Some(e) = jobs.get_mut(&id) else { return };
            match res {
                Ok(Ok(out)) => {
                    tracing::info!(job = %id, seconds = out.seconds, rounds = out.stats.rounds, "job done");
                    e.state = JobState::Done;
                    e.detail = format!("done in {:.3} s", out.seconds);
                    e.stats = out.stats;
                    let rows = (job.batch * job.batches).max(1);
                    let classes = out.output.as_ref().map_or(0, |y| y.len() / rows);
                    e.output = out.output.map(|y| (y, vec![rows as u64, classes as u64]));
                }
                Ok(Err(err)) => {
                    tracing::warn!(job = %id, error = %err, "job failed");
                    e.state = JobState::Failed;
                    e.detail = err.to_string();
                }
                Err(_) => {
                    tracing::error!(job = %id, "job panicked");
                    e.state = JobState::Failed;
                    e.detail = "internal error (the job panicked; the daemon goes on)".into();
                }
            }
        });
        Ok(())
    }
}

/// The authenticated client of a call (set by the interceptor of [`serve`]).
fn client_of<T>(req: &Request<T>) -> Result<String, Status> {
    req.extensions()
        .get::<Client>()
        .map(|c| c.0.clone())
        .ok_or_else(|| Status::unauthenticated("unauthenticated call"))
}

/// The largest asset of `kind` the job can use: the inputs' exact size, or
/// the weights' values as float32 plus 1 MiB for the safetensors header.
fn asset_limit(model: &Model, batch: usize, kind: i32) -> Result<u64, Status> {
    let overflow = || Status::invalid_argument("the job's asset size overflows");
    let values = match AssetKind::try_from(kind) {
        Ok(AssetKind::InputF32le) => batch
            .checked_mul(
                model
                    .input
                    .iter()
                    .try_fold(1usize, |a, d| a.checked_mul(*d))
                    .ok_or_else(overflow)?,
            )
            .ok_or_else(overflow)?,
        Ok(AssetKind::WeightsSafetensors) => model
            .parameters()
            .iter()
            .try_fold(0usize, |a, (_, s)| {
                a.checked_add(s.iter().try_fold(1usize, |p, d| p.checked_mul(*d))?)
            })
            .ok_or_else(overflow)?,
        _ => return Err(Status::invalid_argument("unknown asset kind")),
    };
    let bytes = (values as u64).checked_mul(4).ok_or_else(overflow)?;
    Ok(
        if matches!(AssetKind::try_from(kind), Ok(AssetKind::WeightsSafetensors)) {
            bytes.saturating_add(1 << 20)
        } else {
            bytes
        },
    )
}

/// "unknown job": for a job that does not exist and for another client's
/// job alike, so a client learns nothing about the others' jobs.
fn unknown(id: &str) -> Status {
    Status::not_found(format!("unknown job {id}"))
}

fn read_f32le(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[tonic::async_trait]
impl PartyControl for Daemon {
    async fn submit_job(
        &self,
        req: Request<SubmitJobRequest>,
    ) -> Result<Response<SubmitJobResponse>, Status> {
        let owner = client_of(&req)?;
        let r = req.into_inner();
        let id = job_name(&r.job_id)?;
        let refuse = |reason: String| {
            Ok(Response::new(SubmitJobResponse {
                accepted: false,
                reason,
            }))
        };
        let model = match r.model {
            Some(submit_job_request::Model::ModelName(n)) => match zoo::by_name(&n) {
                Some((m, _, _)) => m,
                None => {
                    return refuse(format!(
                        "unknown model {n:?}; the zoo has {}",
                        zoo::NAMES.join(", ")
                    ));
                }
            },
            Some(submit_job_request::Model::ModelJson(j)) => match Model::from_json(&j) {
                Ok(m) => m,
                Err(e) => return refuse(e.to_string()),
            },
            None => return refuse("no model".into()),
        };
        let output_to = match r.output_party {
            0 => Party::P0,
            1 => Party::P1,
            p => return refuse(format!("output party {p}: must be 0 or 1")),
        };
        if r.batch == 0 {
            return refuse("batch must be at least 1".into());
        }
        // 0: a client that does not know the field, one batch.
        let batches = r.batches.max(1) as usize;
        match (r.batch as usize)
            .checked_mul(batches)
            .and_then(|n| n.checked_mul(model.input_len()))
            .and_then(|n| n.checked_mul(4))
        {
            Some(bytes) if bytes as u64 <= self.cfg.max_asset_bytes => {}
            _ => {
                return refuse(format!(
                    "{batches} batch(es) of {} inputs exceed this daemon's largest asset of {} bytes",
                    r.batch, self.cfg.max_asset_bytes
                ));
            }
        }
        let mut jobs = self.lock();
        if jobs.contains_key(&id) {
            return refuse(format!("job {id} already exists"));
        }
        if jobs.len() >= self.cfg.max_jobs {
            // Forget finished jobs (output handed out, or failed).
            jobs.retain(|_, e| !(e.fetched || e.state == JobState::Failed));
            if jobs.len() >= self.cfg.max_jobs {
                return Err(Status::resource_exhausted(format!(
                    "{} jobs are pending or running or hold an output not fetched yet",
                    jobs.len()
                )));
            }
        }
        tracing::info!(job = %id, model = %model.name, batch = r.batch, batches, "job submitted");
        jobs.insert(
            id,
            Entry {
                owner,
                fetched: false,
                model,
                batch: r.batch as usize,
                batches,
                output_to,
                state: JobState::Pending,
                detail: "waiting for the asset".into(),
                output: None,
                stats: CommStats::default(),
            },
        );
        Ok(Response::new(SubmitJobResponse {
            accepted: true,
            reason: String::new(),
        }))
    }

    async fn provide_asset(
        &self,
        req: Request<Streaming<AssetChunk>>,
    ) -> Result<Response<ProvideAssetResponse>, Status> {
        let client = client_of(&req)?;
        let mut stream = req.into_inner();
        let Some(first) = stream.message().await? else {
            return Err(Status::invalid_argument("empty asset stream"));
        };
        let Some(asset_chunk::Body::Header(h)) = first.body else {
            return Err(Status::invalid_argument(
                "the first message must be the header",
            ));
        };
        let id = job_name(&h.job_id)?;
        let expected = {
            let jobs = self.lock();
            let e = jobs
                .get(&id)
                .filter(|e| e.owner == client)
                .ok_or_else(|| unknown(&id))?;
            // Sizes were checked at submission: no overflow here.
            asset_limit(&e.model, e.batch * e.batches, h.kind)?
        };
        // The size comes from the job's model, never from the header alone:
        // a header claiming more is refused before anything is reserved.
        let limit = expected.min(self.cfg.max_asset_bytes);
        if h.total_bytes > limit {
            return Err(Status::resource_exhausted(format!(
                "asset of {} bytes: this job's asset is at most {limit} bytes",
                h.total_bytes
            )));
        }
        let mut bytes = Vec::with_capacity(h.total_bytes as usize);
        while let Some(m) = stream.message().await? {
            match m.body {
                Some(asset_chunk::Body::Data(d)) => {
                    if bytes.len() as u64 + d.len() as u64 > h.total_bytes {
                        return Err(Status::invalid_argument(
                            "more bytes than the header announced",
                        ));
                    }
                    bytes.extend_from_slice(&d);
                }
                _ => return Err(Status::invalid_argument("a second header")),
            }
        }
        if bytes.len() as u64 != h.total_bytes {
            return Err(Status::invalid_argument(format!(
                "asset ended after {} of {} bytes",
                bytes.len(),
                h.total_bytes
            )));
        }
        let received = bytes.len() as u64;
        let asset = match AssetKind::try_from(h.kind) {
            Ok(AssetKind::WeightsSafetensors) => Asset::Weights(
                Weights::from_safetensors(&bytes)
                    .map_err(|e| Status::invalid_argument(format!("weights: {e}")))?,
            ),
            Ok(AssetKind::InputF32le) if bytes.len() % 4 == 0 => Asset::Input(read_f32le(&bytes)),
            Ok(AssetKind::InputF32le) => {
                return Err(Status::invalid_argument(
                    "input length is not a multiple of 4",
                ));
            }
            _ => return Err(Status::invalid_argument("unknown asset kind")),
        };
        drop(bytes);
        self.start(id, asset)?;
        Ok(Response::new(ProvideAssetResponse {
            received_bytes: received,
        }))
    }

    async fn fetch_output(
        &self,
        req: Request<FetchOutputRequest>,
    ) -> Result<Response<FetchOutputResponse>, Status> {
        let client = client_of(&req)?;
        let id = job_name(&req.into_inner().job_id)?;
        let deadline = tokio::time::Instant::now() + self.cfg.fetch_timeout;
        loop {
            {
                let mut jobs = self.lock();
                let e = jobs
                    .get_mut(&id)
                    .filter(|e| e.owner == client)
                    .ok_or_else(|| unknown(&id))?;
                if e.output_to != self.cfg.net.party {
                    return Err(Status::permission_denied(
                        "the job reveals its output to the other party",
                    ));
                }
                match e.state {
                    JobState::Done if e.fetched => {
                        return Err(Status::failed_precondition(format!(
                            "the output of job {id} was already fetched (it is handed out once)"
                        )));
                    }
                    JobState::Done => {
                        // Handed out once: the daemon keeps no copy.
                        let (output, shape) = e.output.take().unwrap_or_default();
                        e.fetched = true;
                        e.detail = "done; output fetched".into();
                        return Ok(Response::new(FetchOutputResponse { output, shape }));
                    }
                    JobState::Failed => {
                        return Err(Status::aborted(format!("job failed: {}", e.detail)));
                    }
                    _ => {}
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Status::deadline_exceeded("the job has not finished"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn status(
        &self,
        req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let client = client_of(&req)?;
        let r = req.into_inner();
        if r.job_id.is_empty() {
            let n = self.lock().values().filter(|e| e.owner == client).count();
            return Ok(Response::new(StatusResponse {
                state: JobState::Unspecified as i32,
                detail: format!("party daemon, {n} job(s)"),
                rounds: 0,
                bytes_sent: 0,
            }));
        }
        let id = job_name(&r.job_id)?;
        let jobs = self.lock();
        let e = jobs
            .get(&id)
            .filter(|e| e.owner == client)
            .ok_or_else(|| unknown(&id))?;
        Ok(Response::new(StatusResponse {
            state: e.state as i32,
            detail: e.detail.clone(),
            rounds: e.stats.rounds,
            bytes_sent: e.stats.bytes_sent,
        }))
    }
}

/// The interceptor: the caller's bearer token to its client name (a request
/// extension the handlers read), or `UNAUTHENTICATED`.
#[allow(clippy::result_large_err)] // tonic's interceptor signature
fn authenticate(auth: &ControlAuth, mut req: Request<()>) -> Result<Request<()>, Status> {
    let name = match auth {
        ControlAuth::InsecureLocal => "local".to_string(),
        ControlAuth::Tokens(t) => {
            let token = req
                .metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or_else(|| {
                    Status::unauthenticated(
                        "this daemon needs a bearer token (authorization: Bearer TOKEN)",
                    )
                })?;
            t.client_of(token)
                .ok_or_else(|| Status::unauthenticated("unknown token"))?
                .to_string()
        }
        // The TLS handshake already refused any certificate not pinned; the
        // leaf names the client.
        ControlAuth::Tls(t) => {
            let certs = req.peer_certs().ok_or_else(|| {
                Status::unauthenticated("this daemon needs a pinned client certificate")
            })?;
            let leaf = certs
                .first()
                .ok_or_else(|| Status::unauthenticated("no client certificate"))?;
            t.clients
                .client_of(leaf.as_ref())
                .ok_or_else(|| Status::unauthenticated("unknown client certificate"))?
                .to_string()
        }
    };
    req.extensions_mut().insert(Client(name));
    Ok(req)
}

/// Runs the daemon until `shutdown` resolves (e.g. Ctrl-C). Calls `ready`
/// with the bound control address.
pub async fn serve(
    cfg: DaemonConfig,
    ready: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), std::io::Error> {
    if matches!(cfg.auth, ControlAuth::InsecureLocal) && !cfg.control.ip().is_loopback() {
        return Err(std::io::Error::other(format!(
            "--insecure-local serves loopback only, not {}",
            cfg.control
        )));
    }
    let mut builder = tonic::transport::Server::builder();
    match &cfg.auth {
        ControlAuth::Tls(t) => {
            let tls = tonic::transport::ServerTlsConfig::new()
                .identity(tonic::transport::Identity::from_pem(
                    &t.cert_pem,
                    &t.key_pem,
                ))
                .client_ca_root(tonic::transport::Certificate::from_pem(
                    t.clients.roots_pem(),
                ))
                .client_auth_optional(false);
            builder = builder
                .tls_config(tls)
                .map_err(|e| std::io::Error::other(format!("control port TLS: {e}")))?;
        }
        ControlAuth::Tokens(_) if !cfg.control.ip().is_loopback() => {
            tracing::warn!(
                control = %cfg.control,
                "bearer tokens travel in plaintext on a non-loopback control port: \
                 use --control-tls-cert/--control-tls-key/--control-client across hosts"
            );
        }
        _ => {}
    }
    let listener = tokio::net::TcpListener::bind(cfg.control).await?;
    ready(listener.local_addr()?);
    let auth = cfg.auth.clone();
    let d = Daemon {
        cfg: Arc::new(cfg),
        jobs: Arc::default(),
        link: Arc::default(),
    };
    // Graceful: stop accepting, let running calls finish, but do not wait
    // more than a few seconds for idle client connections to close.
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = builder
        .add_service(InterceptedService::new(
            PartyControlServer::new(d).max_decoding_message_size(8 << 20),
            move |req: Request<()>| authenticate(&auth, req),
        ))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            async move {
                shutdown.await;
                let _ = tx.send(());
            },
        );
    tokio::select! {
        r = server => r.map_err(std::io::Error::other),
        _ = async {
            if rx.await.is_ok() {
                tokio::time::sleep(Duration::from_secs(3)).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => Ok(()),
    }
}

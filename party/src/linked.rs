//! A job between two processes: key file + gRPC link + [`run_job`] (or
//! [`run_training`]).

use crate::train::{TrainAsset, TrainJob, TrainOutcome, TrainProgress, run_training};
use crate::{Asset, Job, Outcome, PartyError, run_job};
use ariann_dealer::auth::KeyTrust;
use ariann_dealer::keyfile::{Expected, KeyFileError, KeyFileSource};
use ariann_fss::Party;
use ariann_mpc::{Fault, MpcError, PreprocessingSource};
use ariann_net::{GrpcTransport, Listener, NetConfig};
use ariann_nn::NnError;
use std::net::SocketAddr;
use std::path::Path;
use thiserror::Error;

/// Why a linked job failed, by class (the binary maps each to an exit
/// code). Deliberately exhaustive: a new class must get its own exit code.
#[derive(Debug, Error)]
pub enum LinkedError {
    /// The key file (missing, corrupt, another party's, plan or session,
    /// already used, exhausted).
    #[error("key file {path}: {cause}")]
    KeyFile {
        /// The file.
        path: String,
        /// Cause (in the message, so not also chained as `source()`).
        cause: KeyFileError,
    },
    /// The dealer's key stream could not be opened (unreachable, another
    /// plan, refused, unsigned or signed by another key, already used).
    #[error("keys from the dealer at {addr}: {cause}")]
    KeyStream {
        /// The dealer's address.
        addr: String,
        /// Cause (in the message, so not also chained as `source()`).
        cause: ariann_net::keys::KeyStreamError,
    },
    /// Keys failed mid-job (corrupt or missing bundle, wrong gate).
    #[error("keys: {0}")]
    Keys(MpcError),
    /// The link (peer unreachable or gone, timeout, TLS, handshake, protocol).
    #[error("link: {0}")]
    Link(MpcError),
    /// The peer runs another job or brings the same asset.
    #[error(transparent)]
    Job(PartyError),
    /// This party's own model, weights or inputs (they do not fit the job),
    /// or a protocol used with bad parameters: the caller's fault.
    #[error(transparent)]
    Local(PartyError),
    /// A local file could not be written (e.g. the ready file).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl From<MpcError> for LinkedError {
    fn from(e: MpcError) -> Self {
        match e.fault() {
            Fault::Keys => LinkedError::Keys(e),
            Fault::Link => LinkedError::Link(e),
            Fault::Caller => LinkedError::Local(PartyError::Mpc(e)),
        }
    }
}

impl From<PartyError> for LinkedError {
    fn from(e: PartyError) -> Self {
        match e {
            PartyError::Mpc(m) => m.into(),
            PartyError::Nn(n) => match n.fault() {
                Fault::Keys => LinkedError::Keys(match n.root() {
                    NnError::Mpc(m) => m.clone(),
                    other => MpcError::Codec(other.to_string()),
                }),
                Fault::Link => LinkedError::Link(match n.root() {
                    NnError::Mpc(m) => m.clone(),
                    other => MpcError::Protocol(other.to_string()),
                }),
                Fault::Caller => LinkedError::Local(PartyError::Nn(n)),
            },
            e @ (PartyError::JobMismatch { .. } | PartyError::SameAsset(_)) => LinkedError::Job(e),
            e @ PartyError::Protocol(_) => LinkedError::Link(MpcError::Protocol(e.to_string())),
            e @ PartyError::EmptyJob { .. } => LinkedError::Local(e),
        }
    }
}

/// Opens this party's key file for the plan of hash `plan_hash` and
/// `bundles` gates (refusing a file not signed by `trust.dealer`, another
/// party's, another plan's, a damaged one, or one whose session this host's
/// ledger or the file's journal records as used) and returns the dealer
/// session it belongs to with the source (whose
/// [`KeyFileSource::link_secret`] is the session's link secret).
pub fn open_key_file(
    keys: &Path,
    party: Party,
    plan_hash: [u8; 32],
    bundles: u64,
    trust: &KeyTrust,
) -> Result<([u8; 16], KeyFileSource<u64>), LinkedError> {
    let key_err = |cause| LinkedError::KeyFile {
        path: keys.display().to_string(),
        cause,
    };
    let expected = Expected {
        party,
        plan_hash,
        session: None,
        bundles,
    };
    let source = KeyFileSource::<u64>::open(keys, &expected, trust).map_err(key_err)?;
    Ok((source.header().session.0, source))
}

/// Runs `job` at `net.party` with keys from `source` over a gRPC link
/// configured by `net`, whose session id becomes `session` (the dealer
/// session of the keys: both parties must hold keys of the same dealer
/// run); `net` carries the keys' link secret, which the link's handshake
/// proves on both ends. Party 0 listens and calls `on_listen` with the bound address
/// before waiting for party 1.
pub fn run_linked<S: PreprocessingSource<u64> + ?Sized>(
    job: &Job,
    asset: &Asset,
    source: &mut S,
    session: &[u8],
    net: NetConfig,
    on_listen: impl FnOnce(SocketAddr) -> std::io::Result<()>,
) -> Result<Outcome, LinkedError> {
    let mut transport = link(session, net, on_listen)?;
    Ok(run_job(job, asset, &mut transport, source)?)
}

/// The party link for the dealer session `session`: party 0 listens (and
/// calls `on_listen` once bound), party 1 connects.
fn link(
    session: &[u8],
    mut net: NetConfig,
    on_listen: impl FnOnce(SocketAddr) -> std::io::Result<()>,
) -> Result<GrpcTransport, LinkedError> {
    net.session_id = session.to_vec();
    Ok(match net.party {
        Party::P0 => {
            let l = Listener::bind(net)?;
            on_listen(l.local_addr())?;
            l.accept()?
        }
        Party::P1 => GrpcTransport::connect(net)?,
    })
}

/// [`run_linked`] for a training job: [`run_training`] with keys from
/// `source` (a dealer stream, realistically: a training job's keys are
/// large) over a gRPC link whose session id is `session`; `progress` as in
/// [`run_training`].
pub fn run_linked_training<S: PreprocessingSource<u64> + ?Sized>(
    job: &TrainJob,
    asset: &TrainAsset,
    source: &mut S,
    session: &[u8],
    net: NetConfig,
    on_listen: impl FnOnce(SocketAddr) -> std::io::Result<()>,
    progress: impl FnMut(&TrainProgress),
) -> Result<TrainOutcome, LinkedError> {
    let mut transport = link(session, net, on_listen)?;
    Ok(run_training(job, asset, &mut transport, source, progress)?)
}

/// [`run_linked`] with keys from the key file `keys`, signed by
/// `trust.dealer` (its journal and this host's ledger make them
/// single-use); keys are checked before any network traffic.
pub fn run_linked_job(
    job: &Job,
    asset: &Asset,
    keys: &Path,
    net: NetConfig,
    trust: &KeyTrust,
    on_listen: impl FnOnce(SocketAddr) -> std::io::Result<()>,
) -> Result<Outcome, LinkedError> {
    let plan = job.plan()?;
    let (session, mut source) =
        open_key_file(keys, net.party, plan.hash(), plan.gates.len() as u64, trust)?;
    let net = net
        .max_message_size(job.max_message_of(&plan)?)
        .link_secret(source.link_secret());
    run_linked(job, asset, &mut source, &session, net, on_listen)
}

/// [`run_linked`] with keys pulled from `ariann-dealer serve` at `addr`
/// (mutual TLS when `tls` is set), signed by `trust.dealer` and recorded
/// in this host's ledger; the stream is opened (header checked: plan,
/// party, bundle count, signature) before any network traffic to the
/// peer. Connect and per-bundle deadlines are the link's.
pub fn run_linked_job_from_dealer(
    job: &Job,
    asset: &Asset,
    addr: &str,
    tls: Option<ariann_net::TlsConfig>,
    net: NetConfig,
    trust: &KeyTrust,
    on_listen: impl FnOnce(SocketAddr) -> std::io::Result<()>,
) -> Result<Outcome, LinkedError> {
    use ariann_net::keys::{DealerConfig, DealerStreamSource};
    let plan = job.plan()?;
    let mut cfg = DealerConfig::new(
        addr,
        net.party,
        plan.hash(),
        plan.gates.len() as u64,
        trust.clone(),
    );
    cfg.connect_timeout = net.connect_timeout;
    cfg.recv_timeout = net.exchange_timeout;
    cfg.max_bundle = usize::try_from(crate::max_bundle_of(&plan)?).unwrap_or(usize::MAX);
    cfg.tls = tls;
    let mut source =
        DealerStreamSource::<u64>::connect(cfg).map_err(|cause| LinkedError::KeyStream {
            addr: addr.to_string(),
            cause,
        })?;
    let session = source.header().session;
    let net = net
        .max_message_size(job.max_message_of(&plan)?)
        .link_secret(source.link_secret());
    run_linked(job, asset, &mut source, &session, net, on_listen)
}

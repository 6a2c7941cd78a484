//! A blocking client of a party daemon ([`crate::daemon`]): what an
//! institution's program calls to submit a job to its own party, hand it
//! its asset and fetch the output.
//!
//! ```no_run
//! use ariann_party::client::RemoteParty;
//! # fn main() -> Result<(), ariann_party::client::ClientError> {
//! let token = ariann_party::auth::read_token_file("hospital.token".as_ref())
//!     .expect("a 0600 token file");
//! let mut p1 = RemoteParty::connect_with_token("http://127.0.0.1:7101", &token)?;
//! p1.submit("job-1", "network1", 8, 1)?;
//! p1.provide_input("job-1", &vec![0.0f32; 8 * 784])?;
//! let (logits, shape) = p1.fetch_output("job-1")?;
//! # let _ = (logits, shape); Ok(()) }
//! ```

use ariann_proto::v1::party_control_client::PartyControlClient;
use ariann_proto::v1::{
    AssetChunk, AssetHeader, AssetKind, FetchOutputRequest, JobState, StatusRequest,
    SubmitJobRequest, asset_chunk, submit_job_request,
};
use thiserror::Error;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Errors of the client.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The daemon could not be reached.
    #[error("cannot reach the party daemon at {addr}: {reason}")]
    Connect {
        /// Address.
        addr: String,
        /// Cause.
        reason: String,
    },
    /// An ONNX model this client cannot import (an unsupported op names
    /// its type and node).
    #[error("cannot import the ONNX model: {0}")]
    Onnx(String),
    /// The daemon refused the job.
    #[error("job refused: {0}")]
    Refused(String),
    /// The daemon answered with an error status.
    #[error("{}: {}", .0.code(), .0.message())]
    Status(tonic::Status),
    /// The local runtime could not start.
    #[error("runtime: {0}")]
    Runtime(String),
}

/// The status is in the message; it is not also chained as `source()` (a
/// printed error chain names each cause once).
impl From<tonic::Status> for ClientError {
    fn from(s: tonic::Status) -> Self {
        ClientError::Status(s)
    }
}

/// Adds `authorization: Bearer TOKEN` to every call (if a token is set).
#[derive(Clone)]
struct Bearer(Option<MetadataValue<Ascii>>);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Bearer(..)"
        } else {
            "Bearer(none)"
        })
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A client's side of mutual TLS with a daemon's control port.
#[derive(Clone)]
pub struct ClientTls {
    /// The daemon's certificate (PEM), pinned: the only one accepted.
    pub daemon_pem: String,
    /// This client's certificate (PEM), pinned at the daemon.
    pub cert_pem: String,
    /// This client's private key (PEM).
    pub key_pem: String,
    /// The name expected in the daemon's certificate (default: the
    /// address's host).
    pub server_name: Option<String>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// A connection to one party daemon's control port.
#[derive(Debug)]
pub struct RemoteParty {
    rt: tokio::runtime::Runtime,
    client: PartyControlClient<InterceptedService<Channel, Bearer>>,
}

const CHUNK: usize = 1 << 20;

impl RemoteParty {
    /// Connects to `addr` (`http://host:port`) without a token (a daemon
    /// started with `--insecure-local`).
    pub fn connect(addr: &str) -> Result<Self, ClientError> {
        Self::connect_inner(addr, None)
    }

    /// Connects to `addr`, sending `token` (see [`crate::auth`]) with every call.
    pub fn connect_with_token(addr: &str, token: &str) -> Result<Self, ClientError> {
        let v = MetadataValue::try_from(format!("Bearer {token}")).map_err(|_| {
            ClientError::Connect {
                addr: addr.to_string(),
                reason: "the token is not printable ASCII".into(),
            }
        })?;
        Self::connect_inner(addr, Some(v))
    }

    /// Connects to `addr` (`https://host:port`) with mutual TLS: the client
    /// presents `tls.cert_pem` (the certificate the daemon pinned under
    /// this client's name) and accepts only the daemon certificate
    /// `tls.daemon_pem`.
    pub fn connect_tls(addr: &str, tls: &ClientTls) -> Result<Self, ClientError> {
        Self::connect_with(addr, None, Some(tls))
    }

    fn connect_inner(
        addr: &str,
        bearer: Option<MetadataValue<Ascii>>,
    ) -> Result<Self, ClientError> {
        Self::connect_with(addr, bearer, None)
    }

    fn connect_with(
        addr: &str,
        bearer: Option<MetadataValue<Ascii>>,
        tls: Option<&ClientTls>,
    ) -> Result<Self, ClientError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ClientError::Runtime(e.to_string()))?;
        let err = |e: &dyn std::fmt::Display| ClientError::Connect {
            addr: addr.to_string(),
            reason: e.to_string(),
        };
        let mut ep = Channel::from_shared(addr.to_string()).map_err(|e| err(&e))?;
        if let Some(t) = tls {
            use tonic::transport::{Certificate, ClientTlsConfig, Identity};
            let mut c = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&t.daemon_pem))
                .identity(Identity::from_pem(&t.cert_pem, &t.key_pem));
            if let Some(name) = &t.server_name {
                c = c.domain_name(name.clone());
            }
            ep = ep.tls_config(c).map_err(|e| err(&e))?;
        }
        let ch = rt.block_on(ep.connect()).map_err(|e| err(&e))?;
        Ok(RemoteParty {
            rt,
            client: PartyControlClient::with_interceptor(ch, Bearer(bearer))
                .max_decoding_message_size(1 << 30),
        })
    }

    fn submit_with(
        &mut self,
        job: &str,
        model: submit_job_request::Model,
        (batch, batches): (usize, usize),
        output_party: u32,
    ) -> Result<(), ClientError> {
        let too_large = |what: &str, n: usize| {
            ClientError::Refused(format!("{what} {n} does not fit the protocol's 32 bits"))
        };
        let req = SubmitJobRequest {
            job_id: job.as_bytes().to_vec(),
            model: Some(model),
            batch: u32::try_from(batch).map_err(|_| too_large("batch", batch))?,
            output_party,
            batches: u32::try_from(batches).map_err(|_| too_large("batches", batches))?,
        };
        let r = self.rt.block_on(self.client.submit_job(req))?.into_inner();
        if r.accepted {
            Ok(())
        } else {
            Err(ClientError::Refused(r.reason))
        }
    }

    /// Submits job `job` for a zoo model; both parties must get the same.
    pub fn submit(
        &mut self,
        job: &str,
        model: &str,
        batch: usize,
        output_party: u32,
    ) -> Result<(), ClientError> {
        self.submit_batches(job, model, batch, 1, output_party)
    }

    /// Submits job `job` of `batches` batches of `batch` inputs for a zoo
    /// model, run one after the other with the weights' masks opened in the
    /// first batch and reused by the others (the data owner provides
    /// `batch x batches` inputs; the output has that many rows). The keys
    /// must be of the same plan (`ariann-dealer ... --batches`).
    pub fn submit_batches(
        &mut self,
        job: &str,
        model: &str,
        batch: usize,
        batches: usize,
        output_party: u32,
    ) -> Result<(), ClientError> {
        let m = submit_job_request::Model::ModelName(model.to_string());
        self.submit_with(job, m, (batch, batches), output_party)
    }

    /// Submits job `job` for a JSON model description.
    pub fn submit_json(
        &mut self,
        job: &str,
        model_json: &str,
        batch: usize,
        output_party: u32,
    ) -> Result<(), ClientError> {
        self.submit_json_batches(job, model_json, batch, 1, output_party)
    }

    /// [`RemoteParty::submit_batches`] for a JSON model description.
    pub fn submit_json_batches(
        &mut self,
        job: &str,
        model_json: &str,
        batch: usize,
        batches: usize,
        output_party: u32,
    ) -> Result<(), ClientError> {
        let m = submit_job_request::Model::ModelJson(model_json.to_string());
        self.submit_with(job, m, (batch, batches), output_party)
    }

    /// Submits job `job` for an ONNX model (the bytes of an `.onnx` file,
    /// e.g. from `torch.onnx.export`), as the one-shot `--model-onnx` does:
    /// its architecture is imported here (`ariann_onnx::architecture`, the
    /// dealer's `keys --model-onnx` reads the same) and submitted as its
    /// JSON description; the daemon never parses ONNX. The model owner then
    /// hands over the file's initializers with
    /// [`RemoteParty::provide_onnx_weights`].
    pub fn submit_onnx(
        &mut self,
        job: &str,
        onnx: &[u8],
        batch: usize,
        output_party: u32,
    ) -> Result<(), ClientError> {
        let m = ariann_onnx::architecture(onnx).map_err(|e| ClientError::Onnx(e.to_string()))?;
        self.submit_json(job, &m.to_json(), batch, output_party)
    }

    /// The model owner's weights of an ONNX model for `job`: the file's
    /// initializers under the names the imported architecture uses.
    pub fn provide_onnx_weights(&mut self, job: &str, onnx: &[u8]) -> Result<u64, ClientError> {
        let w = ariann_onnx::import(onnx)
            .map_err(|e| ClientError::Onnx(e.to_string()))?
            .weights
            .to_safetensors()
            .map_err(|e| ClientError::Onnx(e.to_string()))?;
        self.provide_weights(job, w)
    }

    fn provide(
        &mut self,
        job: &str,
        kind: AssetKind,
        bytes: Vec<u8>,
        shape: Vec<u64>,
    ) -> Result<u64, ClientError> {
        let header = AssetChunk {
            body: Some(asset_chunk::Body::Header(AssetHeader {
                job_id: job.as_bytes().to_vec(),
                kind: kind as i32,
                total_bytes: bytes.len() as u64,
                shape,
            })),
        };
        let mut msgs = vec![header];
        msgs.extend(bytes.chunks(CHUNK).map(|c| AssetChunk {
            body: Some(asset_chunk::Body::Data(c.to_vec())),
        }));
        drop(bytes);
        let r = self
            .rt
            .block_on(self.client.provide_asset(tokio_stream::iter(msgs)))?;
        Ok(r.into_inner().received_bytes)
    }

    /// The model owner's weights (safetensors bytes) for `job`.
    pub fn provide_weights(&mut self, job: &str, safetensors: Vec<u8>) -> Result<u64, ClientError> {
        self.provide(job, AssetKind::WeightsSafetensors, safetensors, vec![])
    }

    /// The data owner's inputs (`batch x batches x input_len` floats) for `job`.
    pub fn provide_input(&mut self, job: &str, x: &[f32]) -> Result<u64, ClientError> {
        let bytes = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.provide(job, AssetKind::InputF32le, bytes, vec![x.len() as u64])
    }

    /// The revealed output of `job` and its shape, waiting for the job to
    /// finish (only the party named in the job answers).
    pub fn fetch_output(&mut self, job: &str) -> Result<(Vec<f64>, Vec<u64>), ClientError> {
        let req = FetchOutputRequest {
            job_id: job.as_bytes().to_vec(),
        };
        let r = self
            .rt
            .block_on(self.client.fetch_output(req))?
            .into_inner();
        Ok((r.output, r.shape))
    }

    /// The job's state, detail, rounds and bytes sent so far.
    pub fn status(&mut self, job: &str) -> Result<(JobState, String, u64, u64), ClientError> {
        let req = StatusRequest {
            job_id: job.as_bytes().to_vec(),
        };
        let r = self.rt.block_on(self.client.status(req))?.into_inner();
        let st = JobState::try_from(r.state).unwrap_or(JobState::Unspecified);
        Ok((st, r.detail, r.rounds, r.bytes_sent))
    }
}

/// Runs one job on two daemons as a demo client playing both institutions:
/// submits `model` (a zoo name) to both, the weights to party 0, the inputs
/// to party 1, and fetches the output revealed to party 1. The daemons'
/// key directories must hold keys for `job` (see the crate docs).
/// `tokens`: each daemon's client token, or `None` for `--insecure-local`
/// daemons.
#[allow(clippy::too_many_arguments)]
pub fn run_remote(
    party0: &str,
    party1: &str,
    tokens: Option<(&str, &str)>,
    job: &str,
    model: &str,
    batch: usize,
    weights_safetensors: Vec<u8>,
    x: &[f32],
) -> Result<(Vec<f64>, Vec<u64>), ClientError> {
    let (mut p0, mut p1) = match tokens {
        Some((t0, t1)) => (
            RemoteParty::connect_with_token(party0, t0)?,
            RemoteParty::connect_with_token(party1, t1)?,
        ),
        None => (RemoteParty::connect(party0)?, RemoteParty::connect(party1)?),
    };
    p0.submit(job, model, batch, 1)?;
    p1.submit(job, model, batch, 1)?;
    p0.provide_weights(job, weights_safetensors)?;
    p1.provide_input(job, x)?;
    p1.fetch_output(job)
}

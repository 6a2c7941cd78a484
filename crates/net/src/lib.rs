//! The gRPC link between the two parties of ariann-rs: [`GrpcTransport`]
//! implements [`ariann_mpc::Transport`] over the `PartyLink` bidirectional
//! stream of `ariann-proto`.
//!
//! # Connection and handshake
//!
//! Party 0 listens (a tonic server, [`Listener`]); party 1 connects, retrying
//! refused connections until its connect deadline. Party 1 sends a `Hello`
//! (link protocol version, session id, party, largest chunk it accepts);
//! party 0 checks it and answers with its own, or ends the call with
//! `FAILED_PRECONDITION` and the reason; party 1 checks party 0's Hello too.
//! Another version, another session or the same party id is
//! [`ariann_mpc::MpcError::Protocol`] on both sides.
//!
//! # Rounds
//!
//! `exchange` sends this party's message as frames of at most the
//! negotiated chunk size (1 MiB by default) through a bounded channel, then
//! waits for the peer's message of the same sequence number. A reader task
//! reassembles the peer's frames and rejects any frame of another version or
//! session, out of order (sequence number or chunk index), larger than the
//! chunk size, or making a message larger than the maximum message size;
//! gRPC itself refuses to decode a frame larger than one chunk plus 1 KiB.
//! Errors: [`ariann_mpc::MpcError::Timeout`] after the exchange deadline,
//! [`ariann_mpc::MpcError::PeerGone`] when the stream ends or breaks,
//! [`ariann_mpc::MpcError::Protocol`] for a broken rule,
//! [`ariann_mpc::MpcError::Connect`] when the link cannot be set up (TLS
//! refusal, handshake refused).
//!
//! # TLS and WAN shaping
//!
//! [`TlsConfig`] turns on mutual TLS (rustls with ring, no OpenSSL): each
//! party pins the other's certificate (or CA). [`WanShape`] delays every
//! received message by `rtt / 2` plus its size over the bandwidth.
//!
//! # Keys from the dealer
//!
//! [`keys`] carries a job's key bundles from the dealer to the parties over
//! the `KeyStream` service: [`keys::KeyServer`] (the dealer serves one job)
//! and [`keys::DealerStreamSource`] (a party's `PreprocessingSource`).
//!
//! # Example
//!
//! ```no_run
//! use ariann_fss::Party;
//! use ariann_mpc::Transport;
//! use ariann_net::{GrpcTransport, Listener, NetConfig};
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let session = b"job-42".to_vec();
//! // Party 0 (one process): listen, then wait for party 1.
//! let cfg0 = NetConfig::new(Party::P0, session.clone())
//!     .listen("0.0.0.0:7000".parse()?)
//!     .exchange_timeout(Duration::from_secs(30))
//!     .wan("rtt=70ms,bw=40MB/s".parse()?);
//! let listener = Listener::bind(cfg0)?;
//! let mut t0 = listener.accept()?;
//! // Party 1 (another process): connect.
//! let cfg1 = NetConfig::new(Party::P1, session).peer("party0.example:7000");
//! let mut t1 = GrpcTransport::connect(cfg1)?;
//! // Either party then runs the gates over its transport:
//! let peer_msg = t0.exchange(b"my share")?;
//! # let _ = (peer_msg, &mut t1);
//! # Ok(())
//! # }
//! ```

mod config;
pub mod keys;
mod link;

pub use config::{ConfigError, NetConfig, TlsConfig, WanShape};
pub use link::{GrpcTransport, Listener};

//! The gRPC link between the two parties of ariann-rs: [`GrpcTransport`]
//! implements [`ariann_mpc::Transport`] over the `PartyLink` bidirectional
//! stream of `ariann-proto`.
//!
//! # Connection and handshake
//!
//! Party 0 listens (a tonic server, [`Listener`]); party 1 connects, retrying
//! refused connections until its connect deadline. The handshake proves to
//! each side that the other holds this job's [`LinkSecret`] (32 random bytes
//! the dealer puts in both parties' signed keys), with or without TLS:
//!
//! 1. party 1 sends a `Hello`: link protocol version, party, largest chunk
//!    it accepts, a fresh 32-byte nonce `n1`;
//! 2. party 0 answers with its own `Hello` (its nonce `n0`) carrying
//!    `mac0 = HMAC-SHA256(secret, "ariann-rs link v2" ‖ 0 ‖ session ‖ n1 ‖ n0
//!    ‖ version ‖ chunk1 ‖ chunk0)`;
//! 3. party 1 checks `mac0` (a party 0 of another job, or a stranger, fails
//!    here: [`ariann_mpc::MpcError::Protocol`]) and sends `LinkAuth` with
//!    `mac1`, the same HMAC with role byte 1.
//!
//! Party 0 takes the link for its job only after a valid `LinkAuth`. A caller
//! that sends garbage, a frame, nothing (within 10 s or half the connect deadline)
//! or a wrong MAC is refused with `UNAUTHENTICATED` and no detail about the
//! job, and party 0 goes on waiting for the real party 1 (at most 16
//! handshakes at once); if none comes, [`Listener::accept`] fails at its
//! deadline naming how many attempts it refused and why. Both nonces are
//! fresh, so a recorded handshake cannot be replayed; the session id never
//! travels in a Hello.
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
//! use ariann_net::{GrpcTransport, LinkSecret, Listener, NetConfig};
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let session = b"job-42".to_vec();
//! // The job's link secret comes with each party's keys from the dealer.
//! let secret = LinkSecret::from_bytes([7; 32]);
//! // Party 0 (one process): listen, then wait for party 1.
//! let cfg0 = NetConfig::new(Party::P0, session.clone())
//!     .link_secret(secret.clone())
//!     .listen("0.0.0.0:7000".parse()?)
//!     .exchange_timeout(Duration::from_secs(30))
//!     .wan("rtt=70ms,bw=40MB/s".parse()?);
//! let listener = Listener::bind(cfg0)?;
//! let mut t0 = listener.accept()?;
//! // Party 1 (another process): connect.
//! let cfg1 = NetConfig::new(Party::P1, session)
//!     .link_secret(secret)
//!     .peer("party0.example:7000");
//! let mut t1 = GrpcTransport::connect(cfg1)?;
//! // Either party then runs the gates over its transport:
//! let peer_msg = t0.exchange(b"my share")?;
//! # let _ = (peer_msg, &mut t1);
//! # Ok(())
//! # }
//! ```

mod config;
pub mod keys;
mod keywire;
mod link;
pub mod memory;

pub use config::{ConfigError, LinkSecret, NetConfig, TlsConfig, WanShape};
pub use link::{GrpcTransport, Listener};

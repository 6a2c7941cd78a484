//! gRPC services of ariann-rs, generated at build time from the `.proto` files
//! in this crate by `protox` (a pure-Rust protobuf compiler: no system
//! `protoc` is needed) and `tonic-prost-build`.
//!
//! * [`v1::party_link_server::PartyLink`] — party 0 <-> party 1, one
//!   bidirectional stream per job: a [`v1::Hello`] each way, then the protocol
//!   messages cut into [`v1::Frame`]s (see `ariann/v1/link.proto` for the rules).
//! * [`v1::party_control_server::PartyControl`] — a client submits a job,
//!   streams its asset, fetches the revealed output, asks for status.
//! * [`v1::key_stream_server::KeyStream`] — the dealer serves a job's key
//!   bundles; each party pulls its own (see `ariann/v1/keys.proto`).

/// Package `ariann.v1`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("ariann.v1");
}

/// Version of the PartyLink protocol spoken by this build (`Hello.protocol_version`).
pub const LINK_PROTOCOL_VERSION: u32 = 2;

/// Version of the KeyStream protocol spoken by this build
/// (`KeyRequest.format_version`, `KeyStreamHeader.format_version`).
///
/// Version 4: the bundles are of bundle format 2 (`ariann_mpc::codec`:
/// FSS keys without their own SHA-256; the stream's TLS, or in loopback
/// plaintext mode TCP, carries them intact). Version 3: the header carries the session's link secret, the dealer's
/// public key and its Ed25519 signature over the header's fields. Version
/// 2: the plan hash is v2 (one binary encoding of a gate descriptor, shared
/// with the key bundle header). A dealer or party of another version is
/// refused with a message naming both versions.
pub const KEY_STREAM_VERSION: u32 = 4;

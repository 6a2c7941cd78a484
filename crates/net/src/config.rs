//! Configuration of a party's link: addresses, session, limits, TLS, WAN shaping.

use ariann_fss::Party;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;
use thiserror::Error;

/// A job's link secret: 32 random bytes the dealer puts in both parties'
/// (signed) keys; the link's handshake proves with it that each end holds
/// this job's keys (HMAC-SHA256 challenge-response, see the crate docs). It
/// never travels itself.
pub use ariann_dealer::auth::LinkSecret;

/// Errors of building a [`NetConfig`] or parsing a [`WanShape`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A WAN shape string could not be parsed.
    #[error("bad WAN shape {input:?}: {reason}")]
    Wan {
        /// The string given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A limit or field is out of range.
    #[error("invalid network setting: {0}")]
    Invalid(String),
}

/// A wide-area link to emulate inside the transport (this machine has no
/// netem): every message is delivered one-way latency `rtt / 2` after it has
/// been pushed through `bandwidth_bytes_per_s` (messages queue on the link).
///
/// Both parties send at the same time in a round, so an exchange over a
/// shaped [`crate::GrpcTransport`] on both ends costs about `rtt / 2 +
/// size / bandwidth`; `ariann_mpc::ShapedTransport` charges a whole `rtt`
/// per exchange (a request-response view). Shape one end only, with twice
/// the RTT, to reproduce `ShapedTransport`'s numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WanShape {
    /// Round-trip time; each message is delayed by half of it.
    pub rtt: Duration,
    /// Bytes per second per direction; `None` is unlimited.
    pub bandwidth_bytes_per_s: Option<f64>,
}

impl WanShape {
    /// One-way latency of a message: `rtt / 2`.
    pub fn one_way(&self) -> Duration {
        self.rtt / 2
    }

    /// Time to push `bytes` through the link (zero without a bandwidth).
    pub fn wire_time(&self, bytes: usize) -> Duration {
        match self.bandwidth_bytes_per_s {
            Some(bw) => Duration::from_secs_f64(bytes as f64 / bw),
            None => Duration::ZERO,
        }
    }
}

impl std::fmt::Display for WanShape {
    /// The form [`WanShape::from_str`] reads, e.g. `rtt=70ms,bw=40MB/s`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rtt={}ms", self.rtt.as_secs_f64() * 1e3)?;
        match self.bandwidth_bytes_per_s {
            Some(bw) => write!(f, ",bw={}MB/s", bw / 1e6),
            None => write!(f, ",bw=inf"),
        }
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else {
        return Err(format!("duration {s:?} needs a unit: ms, us or s"));
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{num:?} is not a number"))?;
    if !v.is_finite() || v < 0.0 || v * scale > 1e6 {
        return Err(format!("duration {s:?} out of range"));
    }
    Ok(Duration::from_secs_f64(v * scale))
}

fn parse_bandwidth(s: &str) -> Result<f64, String> {
    let s = s.trim();
    let units: [(&str, f64); 8] = [
        ("GB/s", 1e9),
        ("MB/s", 1e6),
        ("kB/s", 1e3),
        ("KB/s", 1e3),
        ("B/s", 1.0),
        ("Gbit/s", 1e9 / 8.0),
        ("Mbit/s", 1e6 / 8.0),
        ("kbit/s", 1e3 / 8.0),
    ];
    let (num, scale) = units
        .iter()
        .find_map(|(u, k)| s.strip_suffix(u).map(|n| (n, *k)))
        .ok_or_else(|| {
            format!("bandwidth {s:?} needs a unit: B/s, kB/s, MB/s, GB/s, kbit/s, Mbit/s or Gbit/s")
        })?;
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{num:?} is not a number"))?;
    let bw = v * scale;
    if !bw.is_finite() || bw <= 0.0 {
        return Err(format!("bandwidth {s:?} must be positive"));
    }
    Ok(bw)
}

impl FromStr for WanShape {
    type Err = ConfigError;

    /// Parses `rtt=70ms,bw=40MB/s` (`bw` optional; `bw=inf` is unlimited;
    /// units: `ms`, `us`, `s`; `B/s`, `kB/s`, `MB/s`, `GB/s`, `kbit/s`,
    /// `Mbit/s`, `Gbit/s`, decimal).
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| ConfigError::Wan {
            input: input.to_string(),
            reason,
        };
        let mut rtt = None;
        let mut bw = None;
        for part in input.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| err(format!("{part:?} is not key=value")))?;
            match k.trim() {
                "rtt" if rtt.is_none() => rtt = Some(parse_duration(v).map_err(err)?),
                "bw" if bw.is_none() => {
                    bw = Some(if v.trim() == "inf" {
                        None
                    } else {
                        Some(parse_bandwidth(v).map_err(err)?)
                    })
                }
                "rtt" | "bw" => return Err(err(format!("{k:?} given twice"))),
                other => return Err(err(format!("unknown key {other:?} (expected rtt, bw)"))),
            }
        }
        Ok(WanShape {
            rtt: rtt.ok_or_else(|| err("missing rtt=..".to_string()))?,
            bandwidth_bytes_per_s: bw.flatten(),
        })
    }
}

/// Mutual TLS: this party's certificate and key, and the peer's pinned
/// certificate (or the CA that signs it), all PEM.
///
/// Party 0 (server) requires a client certificate that chains to
/// `peer_pem`; party 1 (client) accepts only a server certificate that
/// chains to `peer_pem` and is valid for `server_name`. A self-signed
/// certificate as `peer_pem` pins exactly that certificate's key.
#[derive(Clone)]
pub struct TlsConfig {
    /// This party's certificate chain (PEM).
    pub cert_pem: String,
    /// This party's private key (PEM).
    pub key_pem: String,
    /// The peer's pinned certificate or its CA (PEM).
    pub peer_pem: String,
    /// DNS name party 1 expects in party 0's certificate (unused by party 0).
    pub server_name: String,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// How one party reaches the other for one job.
///
/// Party 0 listens on `listen` (a tonic server); party 1 connects to `peer`,
/// retrying until `connect_timeout`. Both prove to each other that they hold
/// the job's [`LinkSecret`] (and so its keys) before anything else.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// This party.
    pub party: Party,
    /// Session (job) id, both parties equal; at most [`NetConfig::MAX_SESSION_ID`] bytes.
    pub session_id: Vec<u8>,
    /// The job's link secret (from the dealer's keys); required to link.
    pub link_secret: Option<LinkSecret>,
    /// Where party 0 listens (party 1 ignores it).
    pub listen: SocketAddr,
    /// Where party 1 connects, `host:port` (party 0 ignores it).
    pub peer: String,
    /// Deadline to establish the link (connect, TLS, handshake).
    pub connect_timeout: Duration,
    /// Deadline of one exchange (sending this party's message and receiving the peer's).
    pub exchange_timeout: Duration,
    /// How long dropping the transport waits for the peer to close its side
    /// (so the last message in flight is not cut off).
    pub linger: Duration,
    /// Largest chunk payload sent in one frame (and accepted from the peer).
    pub chunk_size: usize,
    /// Largest message accepted from the peer.
    pub max_message_size: usize,
    /// Mutual TLS (plaintext HTTP/2 when `None`).
    pub tls: Option<TlsConfig>,
    /// WAN emulation applied to received messages.
    pub wan: Option<WanShape>,
}

impl NetConfig {
    /// Default chunk size: 1 MiB (gRPC's default message limit is 4 MiB).
    pub const DEFAULT_CHUNK: usize = 1 << 20;
    /// Default largest message: 1 GiB.
    pub const DEFAULT_MAX_MESSAGE: usize = 1 << 30;
    /// Largest session id.
    pub const MAX_SESSION_ID: usize = 256;
    /// Largest chunk size allowed (below gRPC framing limits with headroom).
    pub const MAX_CHUNK: usize = 16 << 20;

    /// A configuration with defaults: no link secret (set one with
    /// [`NetConfig::link_secret`]), listen on `127.0.0.1:0`, no peer,
    /// 30 s to connect, 60 s per exchange, 2 s of linger, 1 MiB chunks, 1 GiB messages,
    /// no TLS, no WAN shaping.
    pub fn new(party: Party, session_id: impl Into<Vec<u8>>) -> Self {
        NetConfig {
            party,
            session_id: session_id.into(),
            link_secret: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            peer: String::new(),
            connect_timeout: Duration::from_secs(30),
            exchange_timeout: Duration::from_secs(60),
            linger: Duration::from_secs(2),
            chunk_size: Self::DEFAULT_CHUNK,
            max_message_size: Self::DEFAULT_MAX_MESSAGE,
            tls: None,
            wan: None,
        }
    }

    /// Sets the job's link secret (from the dealer's keys).
    pub fn link_secret(mut self, secret: LinkSecret) -> Self {
        self.link_secret = Some(secret);
        self
    }

    /// Sets the listen address (party 0).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Sets the peer address, `host:port` (party 1).
    pub fn peer(mut self, addr: impl Into<String>) -> Self {
        self.peer = addr.into();
        self
    }

    /// Sets the connect deadline.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Sets the per-exchange deadline.
    pub fn exchange_timeout(mut self, d: Duration) -> Self {
        self.exchange_timeout = d;
        self
    }

    /// Sets how long a dropped transport waits for the peer to close.
    pub fn linger(mut self, d: Duration) -> Self {
        self.linger = d;
        self
    }

    /// Sets the chunk size.
    pub fn chunk_size(mut self, n: usize) -> Self {
        self.chunk_size = n;
        self
    }

    /// Sets the largest message accepted.
    pub fn max_message_size(mut self, n: usize) -> Self {
        self.max_message_size = n;
        self
    }

    /// Turns on mutual TLS.
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Turns on WAN shaping.
    pub fn wan(mut self, wan: WanShape) -> Self {
        self.wan = Some(wan);
        self
    }

    /// Checks the limits.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.session_id.len() > Self::MAX_SESSION_ID {
            return Err(ConfigError::Invalid(format!(
                "session id of {} bytes (at most {})",
                self.session_id.len(),
                Self::MAX_SESSION_ID
            )));
        }
        if self.chunk_size == 0 || self.chunk_size > Self::MAX_CHUNK {
            return Err(ConfigError::Invalid(format!(
                "chunk size {} (1..={})",
                self.chunk_size,
                Self::MAX_CHUNK
            )));
        }
        if self.connect_timeout.is_zero() || self.exchange_timeout.is_zero() {
            return Err(ConfigError::Invalid("zero timeout".to_string()));
        }
        if self.link_secret.is_none() {
            return Err(ConfigError::Invalid(
                "no link secret: the link proves the job's link secret, which comes with the \
                 dealer's keys"
                    .to_string(),
            ));
        }
        if self.party == Party::P1 && self.peer.is_empty() {
            return Err(ConfigError::Invalid(
                "party 1 needs a peer address".to_string(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wan_shape_parses() {
        let w: WanShape = "rtt=70ms,bw=40MB/s".parse().unwrap();
        assert_eq!(w.rtt, Duration::from_millis(70));
        assert_eq!(w.bandwidth_bytes_per_s, Some(40e6));
        assert_eq!(w.to_string(), "rtt=70ms,bw=40MB/s");
        let w: WanShape = " rtt = 1.5s ".parse().unwrap();
        assert_eq!(w.rtt, Duration::from_millis(1500));
        assert_eq!(w.bandwidth_bytes_per_s, None);
        assert_eq!(w.to_string(), "rtt=1500ms,bw=inf");
        assert_eq!(w.to_string().parse::<WanShape>().unwrap(), w);
        let w: WanShape = "bw=100Mbit/s,rtt=0ms".parse().unwrap();
        assert_eq!(w.bandwidth_bytes_per_s, Some(12.5e6));
        for bad in [
            "",
            "bw=40MB/s",
            "rtt=70",
            "rtt=fast",
            "rtt=70ms,bw=40",
            "rtt=70ms,bw=-1MB/s",
            "rtt=70ms,rtt=1ms",
            "rtt=70ms,jitter=1ms",
            "rtt",
        ] {
            let e = bad.parse::<WanShape>().unwrap_err();
            assert!(matches!(e, ConfigError::Wan { .. }), "{bad}: {e}");
        }
    }
}

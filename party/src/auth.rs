//! Who may use a daemon's control port: bearer tokens read from a file only
//! its owner can read, or mutual TLS with pinned client certificates
//! ([`ControlTls`], the daemon's `--control-tls-cert`, `--control-tls-key`
//! and one `--control-client NAME=CERT.pem` per client), at the operator's
//! choice.
//!
//! The operator writes a token file (mode 0600) with one client per line,
//! `NAME TOKEN` (`#` starts a comment); each client keeps its own token in
//! a file of its own (mode 0600, the token alone) and sends it as
//! `authorization: Bearer TOKEN` with every call. The daemon keeps only the
//! SHA-256 of each token. A job belongs to the client that submitted it:
//! another client cannot supply its asset, read its status or fetch its
//! output (it is told the job is unknown), and the output is handed out
//! once, then wiped.
//!
//! Bearer tokens travel in plaintext HTTP/2: serve them on loopback (or
//! behind a TLS-terminating proxy); across hosts use mutual TLS, where a
//! client's identity is its certificate and every byte is encrypted.
//!
//! Without a token file or client certificates the daemon refuses to start unless told
//! `--insecure-local`, which serves a loopback address only and lets every
//! local user of the host act as one client.
//!
//! Make a token with e.g. `openssl rand -hex 32` or
//! `head -c 32 /dev/urandom | xxd -p -c 64`.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use thiserror::Error;

/// Shortest token accepted (characters): 128 bits as hex.
pub const MIN_TOKEN_LEN: usize = 32;

/// Errors reading token files.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The file could not be read.
    #[error("cannot read the token file {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// Group or other users may read or write the file.
    #[error(
        "the token file {path} is accessible to other users (mode {mode:o}): \
         run `chmod 600 {path}`"
    )]
    Permissions {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// A line is malformed.
    #[error("token file {path}, line {line}: {reason}")]
    Syntax {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong (never the token itself).
        reason: String,
    },
}

/// The clients a daemon accepts: client name by the SHA-256 of its token.
#[derive(Clone, Default)]
pub struct Tokens {
    by_digest: HashMap<[u8; 32], String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.by_digest.values().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("Tokens").field("clients", &names).finish()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn check_token(token: &str) -> Result<(), String> {
    if token.len() < MIN_TOKEN_LEN {
        return Err(format!(
            "a token needs at least {MIN_TOKEN_LEN} characters (e.g. `openssl rand -hex 32`)"
        ));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("a token is printable ASCII without spaces".into());
    }
    Ok(())
}

/// Reads a file that must not be accessible to group or other users.
fn read_private(path: &Path) -> Result<String, AuthError> {
    let shown = path.display().to_string();
    let read_err = |e: std::io::Error| AuthError::Read {
        path: shown.clone(),
        reason: e.to_string(),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(read_err)?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(AuthError::Permissions { path: shown, mode });
        }
    }
    std::fs::read_to_string(path).map_err(read_err)
}

impl Tokens {
    /// Parses `NAME TOKEN` lines (`#` comments, blank lines ignored); `path`
    /// names the source in errors.
    pub fn parse(text: &str, path: &str) -> Result<Self, AuthError> {
        let mut by_digest = HashMap::new();
        let mut names = std::collections::HashSet::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let err = |reason: String| AuthError::Syntax {
                path: path.to_string(),
                line: i + 1,
                reason,
            };
            let mut parts = line.split_whitespace();
            let (Some(name), Some(token), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(err("expected `NAME TOKEN`".into()));
            };
            check_token(token).map_err(err)?;
            if !names.insert(name.to_string()) {
                return Err(err(format!("client {name:?} appears twice")));
            }
            if by_digest.insert(digest(token), name.to_string()).is_some() {
                return Err(err("two clients share a token".into()));
            }
        }
        if by_digest.is_empty() {
            return Err(AuthError::Syntax {
                path: path.to_string(),
                line: 0,
                reason: "no client (expected `NAME TOKEN` lines)".into(),
            });
        }
        Ok(Tokens { by_digest })
    }

    /// Reads the daemon's token file (refused if group or others can access it).
    pub fn from_file(path: &Path) -> Result<Self, AuthError> {
        Self::parse(&read_private(path)?, &path.display().to_string())
    }

    /// The client holding `token`, if any.
    pub fn client_of(&self, token: &str) -> Option<&str> {
        self.by_digest.get(&digest(token)).map(String::as_str)
    }

    /// Number of clients.
    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    /// True if no client is known.
    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }
}

/// Reads a client's token file: the token alone (surrounding whitespace
/// and `#` comment lines ignored); refused if group or others can access it.
pub fn read_token_file(path: &Path) -> Result<String, AuthError> {
    let text = read_private(path)?;
    let shown = path.display().to_string();
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let (Some(token), None) = (lines.next(), lines.next()) else {
        return Err(AuthError::Syntax {
            path: shown,
            line: 0,
            reason: "expected one line holding the token".into(),
        });
    };
    check_token(token).map_err(|reason| AuthError::Syntax {
        path: shown,
        line: 0,
        reason,
    })?;
    Ok(token.to_string())
}

/// Clients identified by pinned TLS client certificates: a client is
/// whoever presents, in the TLS handshake, the certificate pinned under its
/// name (the daemon's TLS accepts exactly these certificates as client
/// roots, and the interceptor maps the presented leaf back to its name by
/// its SHA-256).
#[derive(Clone, Default)]
pub struct CertClients {
    by_digest: HashMap<[u8; 32], String>,
    roots_pem: String,
}

impl std::fmt::Debug for CertClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.by_digest.values().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("CertClients")
            .field("clients", &names)
            .finish()
    }
}

impl CertClients {
    /// Pins `pem` (a PEM certificate; its first certificate is the one the
    /// client must present) for the client `name`; `source` names the PEM
    /// in errors. A name or a certificate pinned twice is refused.
    pub fn add(&mut self, name: &str, pem: &str, source: &str) -> Result<(), AuthError> {
        let err = |reason: String| AuthError::Syntax {
            path: source.to_string(),
            line: 0,
            reason,
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b'=') {
            return Err(err(format!(
                "client name {name:?}: printable ASCII without spaces or `=`"
            )));
        }
        if self.by_digest.values().any(|n| n == name) {
            return Err(err(format!("client {name:?} appears twice")));
        }
        let certs = ariann_net::keys::pem_certs(pem).map_err(err)?;
        let leaf = Sha256::digest(&certs[0]).into();
        if self.by_digest.contains_key(&leaf) {
            return Err(err("two clients share a certificate".into()));
        }
        self.by_digest.insert(leaf, name.to_string());
        self.roots_pem.push_str(pem.trim_end());
        self.roots_pem.push('\n');
        Ok(())
    }

    /// Reads `NAME=CERT.pem` pins (the daemon's `--control-client`).
    pub fn from_specs(specs: &[String]) -> Result<Self, AuthError> {
        let mut c = CertClients::default();
        for spec in specs {
            let Some((name, path)) = spec.split_once('=') else {
                return Err(AuthError::Syntax {
                    path: spec.clone(),
                    line: 0,
                    reason: "expected NAME=CERT.pem".into(),
                });
            };
            let pem = std::fs::read_to_string(path).map_err(|e| AuthError::Read {
                path: path.to_string(),
                reason: e.to_string(),
            })?;
            c.add(name, &pem, path)?;
        }
        Ok(c)
    }

    /// The client whose pinned certificate is `leaf` (DER), if any.
    pub fn client_of(&self, leaf: &[u8]) -> Option<&str> {
        let d: [u8; 32] = Sha256::digest(leaf).into();
        self.by_digest.get(&d).map(String::as_str)
    }

    /// Every pinned certificate (PEM): the TLS server's client roots.
    pub fn roots_pem(&self) -> &str {
        &self.roots_pem
    }

    /// Number of clients.
    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    /// True if no client is pinned.
    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }
}

/// The daemon's side of mutual TLS on its control port: its certificate
/// and key, and the pinned client certificates.
#[derive(Clone)]
pub struct ControlTls {
    /// The daemon's certificate chain (PEM).
    pub cert_pem: String,
    /// The daemon's private key (PEM).
    pub key_pem: String,
    /// The clients, by pinned certificate.
    pub clients: CertClients,
}

impl std::fmt::Debug for ControlTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlTls")
            .field("clients", &self.clients)
            .finish_non_exhaustive()
    }
}

/// How a daemon's control port authenticates its clients.
#[derive(Debug, Clone)]
pub enum ControlAuth {
    /// Bearer tokens (see the module docs).
    Tokens(Tokens),
    /// Mutual TLS with pinned client certificates: the client is the name
    /// its certificate is pinned under; nothing travels in plaintext.
    Tls(ControlTls),
    /// No authentication, loopback only: every local user is the client
    /// `local`.
    InsecureLocal,
}

/// The authenticated client of a control call (a request extension set by
/// the daemon's interceptor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    const T1: &str = "0123456789abcdef0123456789abcdef";
    const T2: &str = "fedcba9876543210fedcba9876543210";

    #[test]
    fn parses_clients_and_refuses_bad_lines() {
        let t = Tokens::parse(&format!("# ops\nhospital {T1}\n\nowner {T2} # x\n"), "f")
            .expect("valid");
        assert_eq!(t.len(), 2);
        assert_eq!(t.client_of(T1), Some("hospital"));
        assert_eq!(t.client_of(T2), Some("owner"));
        assert_eq!(t.client_of("nope"), None);
        assert_eq!(t.client_of(&T1[1..]), None);
        for bad in [
            format!("hospital {T1} extra"),
            "hospital".to_string(),
            "hospital short".to_string(),
            format!("a {T1}\na {T2}"),
            format!("a {T1}\nb {T1}"),
            "# nothing".to_string(),
        ] {
            let e = Tokens::parse(&bad, "f").expect_err(&bad);
            assert!(
                !e.to_string().contains(T1),
                "the token is never echoed: {e}"
            );
        }
        // Debug shows names, not tokens.
        assert!(!format!("{t:?}").contains(T1));
    }

    #[test]
    fn pinned_client_certificates_name_their_clients() {
        let pem = |n: &str| {
            rcgen::generate_simple_self_signed(vec![n.to_string()])
                .expect("rcgen")
                .cert
                .pem()
        };
        let (a, b) = (pem("a.test"), pem("b.test"));
        let mut c = CertClients::default();
        c.add("hospital", &a, "a.crt").expect("first");
        c.add("audit", &b, "b.crt").expect("second");
        assert_eq!(c.len(), 2);
        let der = |p: &str| ariann_net::keys::pem_certs(p).expect("pem").remove(0);
        assert_eq!(c.client_of(&der(&a)), Some("hospital"));
        assert_eq!(c.client_of(&der(&b)), Some("audit"));
        assert_eq!(c.client_of(&der(&pem("c.test"))), None);
        assert!(c.roots_pem().contains(a.trim_end()) && c.roots_pem().contains(b.trim_end()));
        // A name or a certificate twice, a bad name, no certificate.
        for (name, p) in [
            ("hospital", pem("d.test")),
            ("other", a.clone()),
            ("", pem("e.test")),
            ("a=b", pem("f.test")),
            ("x", "not a certificate".to_string()),
        ] {
            assert!(c.add(name, &p, "f").is_err(), "{name:?}");
        }
        assert_eq!(c.len(), 2);
        assert!(CertClients::from_specs(&["no-equals-sign".into()]).is_err());
        assert!(CertClients::from_specs(&["x=/no/such/file.pem".into()]).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn files_readable_by_others_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("tokens");
        std::fs::write(&p, format!("c {T1}\n")).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            Tokens::from_file(&p),
            Err(AuthError::Permissions { mode: 0o644, .. })
        ));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(Tokens::from_file(&p).expect("0600").len(), 1);
        let c = dir.path().join("client");
        std::fs::write(&c, format!("{T2}\n")).expect("write");
        std::fs::set_permissions(&c, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        assert!(read_token_file(&c).is_err());
        std::fs::set_permissions(&c, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(read_token_file(&c).expect("token"), T2);
    }
}

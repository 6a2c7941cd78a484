//! The dealer's identity and what it vouches for: an Ed25519 key pair
//! ([`DealerSigningKey`], [`DealerPublicKey`]), the signatures on key files
//! and key streams, and the [`LinkSecret`] each dealer session hands to both
//! parties inside its signed header.
//!
//! Parties pin the dealer's public key (`ariann-party --dealer-pubkey
//! dealer.pub`) and refuse keys that are unsigned, signed by another key or
//! tampered with: whoever can write a party's key file (or answer on the
//! dealer's port) cannot make the party run keys of their choosing.
//!
//! Every signed message starts with a domain string naming what it is
//! (`ariann-rs key file header v3`, ...), so a signature of one kind can
//! never be replayed as another.
//!
//! Crate: `ed25519-dalek` v2 (dalek-cryptography, the most used Ed25519 in
//! Rust, audited). Its `rand_core` feature is off (this workspace is on
//! rand 0.9, dalek v2 on rand_core 0.6): the 32-byte seed is drawn from the
//! OS directly and the signing key derived from it. Verification is
//! `verify_strict` (no malleable or small-order signatures).

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use std::io::Write;
use std::path::{Path, PathBuf};
use thiserror::Error;
use zeroize::{Zeroize, Zeroizing};

/// Bytes of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// Bytes of a dealer public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Bytes of a [`LinkSecret`].
pub const LINK_SECRET_LEN: usize = 32;
/// File name of the dealer's secret seed in `ariann-dealer identity --out DIR`.
pub const SECRET_KEY_FILE: &str = "dealer.key";
/// File name of the dealer's public key.
pub const PUBLIC_KEY_FILE: &str = "dealer.pub";

/// Errors of the dealer's identity files and of signatures.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AuthError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A key file of the identity is not what it should be.
    #[error("{path}: {reason}")]
    BadKeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The operating system's random generator failed.
    #[error("OS random generator: {0}")]
    Rng(String),
    /// A signature does not verify under the pinned key.
    #[error(
        "bad dealer signature on the {what} (tampered, or not signed by the pinned dealer key)"
    )]
    BadSignature {
        /// What was signed.
        what: &'static str,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> AuthError + '_ {
    move |source| AuthError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn os_random<const N: usize>() -> Result<Zeroizing<[u8; N]>, AuthError> {
    use rand::TryRngCore;
    let mut b = Zeroizing::new([0u8; N]);
    rand::rngs::OsRng
        .try_fill_bytes(b.as_mut())
        .map_err(|e| AuthError::Rng(e.to_string()))?;
    Ok(b)
}

fn parse_hex<const N: usize>(text: &str) -> Option<Zeroizing<[u8; N]>> {
    let t = text.trim().as_bytes();
    if t.len() != 2 * N {
        return None;
    }
    let mut out = Zeroizing::new([0u8; N]);
    for (o, pair) in out.iter_mut().zip(t.chunks_exact(2)) {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        // Two hex digits: at most 255.
        *o = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// The 32-byte secret of one dealer session, the same in both parties'
/// keys: it lets the two ends of the party link prove to each other that
/// they hold keys of this session (issue 12, item 3). No `Debug` output of
/// the bytes; wiped on drop.
#[derive(Clone)]
pub struct LinkSecret(Zeroizing<[u8; LINK_SECRET_LEN]>);

impl LinkSecret {
    /// A fresh secret from the operating system's random generator.
    pub fn random() -> Result<Self, AuthError> {
        Ok(LinkSecret(os_random()?))
    }

    /// The secret of these bytes (decoders, tests).
    pub fn from_bytes(bytes: [u8; LINK_SECRET_LEN]) -> Self {
        let mut b = bytes;
        let s = LinkSecret(Zeroizing::new(b));
        b.zeroize();
        s
    }

    /// The secret's bytes (to key a MAC; never log them).
    pub fn expose(&self) -> &[u8; LINK_SECRET_LEN] {
        &self.0
    }
}

impl PartialEq for LinkSecret {
    /// Constant time.
    fn eq(&self, other: &Self) -> bool {
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl Eq for LinkSecret {}

impl core::fmt::Debug for LinkSecret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("LinkSecret(..)")
    }
}

/// The dealer's public key, which parties pin (`dealer.pub`: 64 hex digits
/// on one line).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DealerPublicKey(VerifyingKey);

impl DealerPublicKey {
    /// The key of these 32 bytes; `None` if they are not a valid Ed25519
    /// point.
    pub fn from_bytes(bytes: &[u8; PUBLIC_KEY_LEN]) -> Option<Self> {
        VerifyingKey::from_bytes(bytes).ok().map(DealerPublicKey)
    }

    /// The 32 bytes of the key.
    pub fn to_bytes(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.0.to_bytes()
    }

    /// Lower-case hex of the key (64 digits).
    pub fn to_hex(&self) -> String {
        crate::keyfile::to_hex(&self.to_bytes())
    }

    /// Parses 64 hex digits (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Option<Self> {
        let b = parse_hex::<PUBLIC_KEY_LEN>(text)?;
        Self::from_bytes(&b)
    }

    /// Reads a `dealer.pub` file.
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path).map_err(io_err(path))?;
        Self::from_hex(&text).ok_or_else(|| AuthError::BadKeyFile {
            path: path.to_path_buf(),
            reason: "not a dealer public key (64 hex digits of an Ed25519 key, as \
                     `ariann-dealer identity` writes to dealer.pub)"
                .into(),
        })
    }

    /// Checks `signature` on `domain ‖ message` (strict Ed25519
    /// verification); `what` names the signed thing in the error.
    pub fn verify(
        &self,
        domain: &[u8],
        message: &[u8],
        signature: &[u8; SIGNATURE_LEN],
        what: &'static str,
    ) -> Result<(), AuthError> {
        let sig = Signature::from_bytes(signature);
        let mut m = Vec::with_capacity(domain.len() + message.len());
        m.extend_from_slice(domain);
        m.extend_from_slice(message);
        self.0
            .verify_strict(&m, &sig)
            .map_err(|_| AuthError::BadSignature { what })
    }
}

impl core::fmt::Debug for DealerPublicKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "DealerPublicKey({})", self.to_hex())
    }
}

impl core::fmt::Display for DealerPublicKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The dealer's signing key (`dealer.key`: the 32-byte seed as 64 hex
/// digits, mode 0600). No `Debug` output of the secret; the seed is wiped on
/// drop (dalek's `zeroize` feature).
#[derive(Clone)]
pub struct DealerSigningKey(SigningKey);

impl DealerSigningKey {
    /// A fresh key from 32 bytes of OS randomness.
    pub fn generate() -> Result<Self, AuthError> {
        let seed = os_random::<32>()?;
        Ok(DealerSigningKey(SigningKey::from_bytes(&seed)))
    }

    /// The key of a fixed seed (tests, known answers).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        DealerSigningKey(SigningKey::from_bytes(seed))
    }

    /// The public half.
    pub fn public(&self) -> DealerPublicKey {
        DealerPublicKey(self.0.verifying_key())
    }

    /// Signs `domain ‖ message`.
    pub fn sign(&self, domain: &[u8], message: &[u8]) -> [u8; SIGNATURE_LEN] {
        let mut m = Vec::with_capacity(domain.len() + message.len());
        m.extend_from_slice(domain);
        m.extend_from_slice(message);
        self.0.sign(&m).to_bytes()
    }

    /// Reads a `dealer.key` file; refuses one that other users may read
    /// (Unix mode bits beyond 0600).
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(io_err(path))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(AuthError::BadKeyFile {
                    path: path.to_path_buf(),
                    reason: format!(
                        "the dealer's secret key is readable by other users (mode {:o}); \
                         chmod 600 it",
                        mode & 0o777
                    ),
                });
            }
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io_err(path))?);
        let seed = parse_hex::<32>(&text).ok_or_else(|| AuthError::BadKeyFile {
            path: path.to_path_buf(),
            reason: "not a dealer secret key (64 hex digits, as `ariann-dealer identity` \
                     writes to dealer.key)"
                .into(),
        })?;
        Ok(DealerSigningKey(SigningKey::from_bytes(&seed)))
    }

    /// Writes `dir/dealer.key` (the seed, 0600, refusing to overwrite one)
    /// and `dir/dealer.pub`; creates `dir` if missing.
    pub fn write_identity(&self, dir: &Path) -> Result<[PathBuf; 2], AuthError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let key = dir.join(SECRET_KEY_FILE);
        let public = dir.join(PUBLIC_KEY_FILE);
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&key).map_err(io_err(&key))?;
        let text = Zeroizing::new(format!("{}\n", crate::keyfile::to_hex(self.0.as_bytes())));
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(io_err(&key))?;
        std::fs::write(&public, format!("{}\n", self.public().to_hex()))
            .map_err(io_err(&public))?;
        Ok([key, public])
    }
}

impl core::fmt::Debug for DealerSigningKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "DealerSigningKey(public {})", self.public().to_hex())
    }
}

/// What a party trusts when it opens keys: the pinned dealer key, and the
/// ledger of dealer sessions already used on this host.
#[derive(Debug, Clone)]
pub struct KeyTrust {
    /// The dealer's public key.
    pub dealer: DealerPublicKey,
    /// The party-wide use-once ledger.
    pub ledger: crate::ledger::Ledger,
}

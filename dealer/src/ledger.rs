//! The party-wide use-once ledger: one record per dealer session a party
//! has started using on this host, so keys run once even when their file
//! is copied or renamed, its journal deleted, or a dealer stream replayed.
//!
//! The ledger is a directory (`ariann-party --state-dir`, default
//! [`Ledger::default_dir`]), created 0700; a group- or world-writable one is
//! refused (another user could delete records). A record is a file named
//! `<session id hex>.p<party>` created with `create_new` (atomic: of two
//! processes claiming the same session, one fails), written, fsynced, and
//! the directory fsynced, **before the first bundle of the session is
//! handed out**. A source checks the ledger when it opens (a clear early
//! refusal) and claims the session at its first bundle (so a job that
//! fails before using any key does not burn its keys).
//!
//! The per-file journal (`<key file>.journal`) stays: it records progress
//! and lets `ariann-dealer verify` report a used file; the ledger is what
//! makes use-once survive copies.

use crate::keyfile::{SessionId, to_hex};
use ariann_fss::Party;
use std::io::Write;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Errors of the ledger.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The session was already used by this party on this host.
    #[error(
        "keys of session {session} (party {party}) were already used on this host (ledger {path}); \
         ask the dealer for fresh keys"
    )]
    AlreadyUsed {
        /// The session.
        session: SessionId,
        /// The party.
        party: u8,
        /// The record.
        path: PathBuf,
    },
    /// The state directory is unsafe or unusable.
    #[error("state directory {path}: {reason}")]
    BadDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Reading or writing failed.
    #[error("ledger {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// The ledger of dealer sessions used on this host (a directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ledger {
    dir: PathBuf,
}

impl Ledger {
    /// The default state directory: `$XDG_STATE_HOME/ariann-party`, else
    /// `$HOME/.local/state/ariann-party`; `None` if neither variable is set.
    pub fn default_dir() -> Option<PathBuf> {
        let nonempty = |k| std::env::var_os(k).filter(|v| !v.is_empty());
        if let Some(x) = nonempty("XDG_STATE_HOME") {
            return Some(PathBuf::from(x).join("ariann-party"));
        }
        nonempty("HOME").map(|h| PathBuf::from(h).join(".local/state/ariann-party"))
    }

    /// Opens (creating it 0700 if missing, with its parents) the ledger in
    /// `dir`; refuses a path that is not a directory or is writable by group
    /// or others.
    pub fn open(dir: &Path) -> Result<Self, LedgerError> {
        let bad = |reason: String| LedgerError::BadDir {
            path: dir.to_path_buf(),
            reason,
        };
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(dir)
            .map_err(|e| bad(format!("cannot create it: {e}")))?;
        let meta = std::fs::metadata(dir).map_err(|e| bad(e.to_string()))?;
        if !meta.is_dir() {
            return Err(bad("not a directory".into()));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode();
            if mode & 0o022 != 0 {
                return Err(bad(format!(
                    "writable by group or others (mode {:o}): another user could delete \
                     the records of used keys; chmod 700 it",
                    mode & 0o777
                )));
            }
        }
        Ok(Ledger {
            dir: dir.to_path_buf(),
        })
    }

    /// The ledger's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The record of `session` used by `party`.
    pub fn record_path(&self, session: SessionId, party: Party) -> PathBuf {
        self.dir
            .join(format!("{}.p{}", to_hex(&session.0), party.index()))
    }

    /// Whether `party` already used `session` here.
    pub fn is_used(&self, session: SessionId, party: Party) -> bool {
        self.record_path(session, party).exists()
    }

    /// Refuses a session already used by `party` here.
    pub fn check(&self, session: SessionId, party: Party) -> Result<(), LedgerError> {
        let path = self.record_path(session, party);
        if path.exists() {
            return Err(LedgerError::AlreadyUsed {
                session,
                party: party.index(),
                path,
            });
        }
        Ok(())
    }

    /// Records `session` as used by `party`, durably (file and directory
    /// fsynced); fails with [`LedgerError::AlreadyUsed`] if it was.
    /// `what` describes the source (a key file's path, a dealer address)
    /// for a person reading the record.
    pub fn claim(&self, session: SessionId, party: Party, what: &str) -> Result<(), LedgerError> {
        let path = self.record_path(session, party);
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = match opts.open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(LedgerError::AlreadyUsed {
                    session,
                    party: party.index(),
                    path,
                });
            }
            Err(source) => return Err(LedgerError::Io { path, source }),
        };
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let record = format!(
            "session {session}\nparty {}\nfirst used at {secs} (unix seconds)\nsource {what}\n",
            party.index()
        );
        f.write_all(record.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|source| LedgerError::Io {
                path: path.clone(),
                source,
            })?;
        // The record's directory entry must survive a crash too.
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| LedgerError::Io {
                path: self.dir.clone(),
                source,
            })
    }
}

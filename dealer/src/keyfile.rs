//! Key files: one party's key bundles for one job, on disk, consumed once.
//!
//! The dealer writes `party0.keys` and `party1.keys` ([`write_key_files`]);
//! each party opens its file with a [`KeyFileSource`], which is a
//! [`PreprocessingSource`] reading one bundle at a time (a reader thread
//! stays at most one bundle ahead), and which records in a **use-once
//! journal** next to the file (`party0.keys.journal`) how many bundles it
//! has handed out. A key file whose journal says any bundle was consumed is
//! refused: FSS keys and Beaver triples must never be used twice.
//!
//! # File format (version 4; integers little-endian)
//!
//! Header, 192 bytes:
//!
//! | bytes | field |
//! |---|---|
//! | 4 | magic `ARKF` |
//! | 2 | format version (4) |
//! | 1 | ring width in bits (32 or 64) |
//! | 1 | party (0 or 1) |
//! | 32 | plan hash ([`Plan::hash`]) |
//! | 16 | session id (random, from the OS; the same in both parties' files) |
//! | 8 | bundle count |
//! | 32 | link secret ([`LinkSecret`]; the same in both parties' files) |
//! | 32 | the dealer's Ed25519 public key |
//! | 64 | Ed25519 signature of `"ariann-rs key file header v3" ‖` the 128 bytes above |
//!
//! Then one chunk per bundle, `i = 0, 1, ...`:
//!
//! | bytes | field |
//! |---|---|
//! | 8 | `len`, bytes of the encoded bundle |
//! | `len` | the bundle ([`KeyBundle::encode_into`], see `ariann_mpc::codec`) |
//! | 32 | `digest_i = SHA-256("ariann-rs key chunk v1" ‖ session ‖ party ‖ plan hash ‖ i ‖ len ‖ bundle)` |
//! | 64 | Ed25519 signature of `"ariann-rs key chunk v3" ‖ digest_i` |
//!
//! Then a 108-byte trailer: magic `ARKE`, the bundle count (8),
//! `SHA-256("ariann-rs key trailer v1" ‖ session ‖ party ‖ count ‖ digest_0 ‖ ... ‖ digest_{count-1})`
//! (32), and the Ed25519 signature (64) of `"ariann-rs key trailer v3" ‖`
//! the 44 bytes before it.
//!
//! Version 3 (the same with bundles of bundle format 1, whose FSS keys
//! each carried a SHA-256 of their own, redundant with the chunk digest),
//! version 2 (the same without link secret, public key and signatures, a
//! SHA-256 of the header instead) and version 1 are refused with a request
//! to regenerate the keys.
//!
//! What is checked, and when. At open: the header's public key is the one
//! the party pins and its signature verifies (so every field, the link
//! secret included, is the dealer's), the ring, party, plan hash (and a
//! pinned session), the bundle count equals the number of gates of the
//! party's plan, the journal and the party-wide ledger ([`crate::ledger`])
//! record no use of the session. Chunk `i`, before its bundle is decoded
//! or handed out: its digest (binding session, party, plan, position and
//! length) and the dealer's signature on it, so a chunk spliced from
//! another session, party or position, or changed in any bit, is refused.
//! The trailer (missing, wrong, unsigned, trailing bytes) before the *last*
//! bundle is handed out. Whoever can write the file can still delete or
//! truncate it (a refused job), not change what a party computes.
//!
//! Signing costs one Ed25519 signature per chunk for the dealer and one
//! verification per chunk for the party (tens of microseconds; bundles are
//! kilobytes to megabytes, so the key path's throughput is dominated by
//! SHA-256 and I/O, see the README's key path numbers).
//!
//! # Journal format
//!
//! `<key file>.journal`, 48 bytes, rewritten in place and fsynced before each
//! bundle is handed out: magic `ARKJ`, version (u16), party (u8), a zero
//! byte, the session id (16), the number of bundles consumed (u64), and the
//! first 16 bytes of the SHA-256 of the 32 bytes before. A source holds an
//! exclusive lock on the journal while it is open, so two processes cannot
//! consume the same file at once. The dealer removes a stale journal when it
//! writes a new key file; a journal of another session is treated as stale.

use crate::Plan;
use crate::auth::{
    AuthError, DealerPublicKey, DealerSigningKey, KeyTrust, LINK_SECRET_LEN, LinkSecret,
    PUBLIC_KEY_LEN, SIGNATURE_LEN,
};
use crate::ledger::{Ledger, LedgerError};
use ariann_fss::Party;
use ariann_mpc::bundle::check_bundle;
use ariann_mpc::secret::SecretBuf;
use ariann_mpc::{
    BundleTag, GateDesc, GateKey, KeyBundle, MpcError, PreprocessingSource, SourceFault,
};
use ariann_ring::Ring;
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use thiserror::Error;

/// Magic bytes of a key file.
pub const MAGIC: [u8; 4] = *b"ARKF";
/// Current key file format version.
///
/// 4: the chunks hold bundles of bundle format 2 (`ariann_mpc::codec`:
/// the FSS keys without their own SHA-256, which hashed the bytes the
/// chunk digest hashes). 3: signed by the dealer (header, every chunk, trailer) and carrying the
/// session's link secret. 2: the plan hash in the header is [`Plan::hash`]
/// of plan-hash domain v2 (gates encoded with `GateDesc::encode`); version
/// 1 files carry a v1 plan hash. Older files are refused with a request to
/// regenerate them.
pub const VERSION: u16 = 4;
/// Version of the use-once journal record (unchanged since version 1 of the
/// key file format).
const JOURNAL_VERSION: u16 = 1;
/// Bytes of the header, signature included.
pub const HEADER_LEN: usize = 192;
/// Bytes of the header covered by its signature.
const HEADER_SIGNED: usize = HEADER_LEN - SIGNATURE_LEN;
/// Bytes of the trailer, signature included.
pub const TRAILER_LEN: usize = 108;
/// Bytes of the trailer covered by its signature.
const TRAILER_SIGNED: usize = TRAILER_LEN - SIGNATURE_LEN;
/// Bytes of a chunk besides the bundle: length, digest and signature.
pub const CHUNK_OVERHEAD: usize = 40 + SIGNATURE_LEN;
const TRAILER_MAGIC: [u8; 4] = *b"ARKE";
/// Buffer of the key file writer and readers: large, so small bundles go
/// to the disk in few system calls (bundles larger than it bypass it).
const IO_BUFFER: usize = 8 << 20;

/// Bytes of one party's key file for the gates of a plan on `Z_2^ring_bits`,
/// predicted from the gate descriptions without generating any key
/// (`ariann_mpc::plan_cost`): header, one chunk per bundle (its encoding
/// plus [`CHUNK_OVERHEAD`]) and trailer. Both parties' files have this size.
/// Errors on an invalid gate or a size that overflows `u64`.
pub fn key_file_len(gates: &[GateDesc], ring_bits: u32) -> Result<u64, MpcError> {
    let cost = ariann_mpc::plan_cost(gates, ring_bits)?;
    let overflow = || MpcError::InvalidParameter("key file size overflows 64 bits".into());
    let chunks = (gates.len() as u64)
        .checked_mul(CHUNK_OVERHEAD as u64)
        .and_then(|o| o.checked_add(cost.total.encoded_bytes))
        .ok_or_else(overflow)?;
    chunks
        .checked_add((HEADER_LEN + TRAILER_LEN) as u64)
        .ok_or_else(overflow)
}
const JOURNAL_MAGIC: [u8; 4] = *b"ARKJ";
const JOURNAL_LEN: usize = 48;
const CHUNK_DOMAIN: &[u8] = b"ariann-rs key chunk v1";
const TRAILER_DOMAIN: &[u8] = b"ariann-rs key trailer v1";
/// Domains of the dealer's signatures (header, chunk digest, trailer).
const HEADER_SIG_DOMAIN: &[u8] = b"ariann-rs key file header v3";
const CHUNK_SIG_DOMAIN: &[u8] = b"ariann-rs key chunk v3";
const TRAILER_SIG_DOMAIN: &[u8] = b"ariann-rs key trailer v3";

/// Errors of writing and opening key files.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// Reading or writing a file failed.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause (in the message, so not also chained as `source()`:
        /// a printed error chain names each cause once).
        error: std::io::Error,
    },
    /// The file is not a key file.
    #[error("{path}: not an ariann key file (bad magic)")]
    BadMagic {
        /// The file.
        path: PathBuf,
    },
    /// The file has a format version this build does not read (an older
    /// one: regenerate the keys; a newer one: upgrade this build).
    #[error("{}", version_message(*.found, *.supported))]
    UnsupportedVersion {
        /// Version in the file.
        found: u16,
        /// Version this build reads.
        supported: u16,
    },
    /// The header's signature does not verify under the pinned dealer key:
    /// the header was changed (corruption or forgery).
    #[error(
        "{path}: bad dealer signature on the header (corrupted or tampered key file, \
         or not signed by the pinned dealer key)"
    )]
    HeaderSignature {
        /// The file.
        path: PathBuf,
    },
    /// The file is signed by another dealer key than the one pinned.
    #[error(
        "{path}: signed by dealer key {file}, but this party pins dealer key {pinned} \
         (keys of another dealer, or a forged file)"
    )]
    WrongDealer {
        /// The file.
        path: PathBuf,
        /// The key named in the file (hex).
        file: String,
        /// The pinned key (hex).
        pinned: String,
    },
    /// The bundle count of the file is not the number of gates of the plan.
    #[error(
        "key file announces {file} bundles, but this job's plan has {expected} gates \
         (damaged or forged key file)"
    )]
    BundleCount {
        /// Bundles announced in the file.
        file: u64,
        /// Gates of the plan.
        expected: u64,
    },
    /// The party-wide ledger refuses the session (already used on this host)
    /// or cannot be written.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The dealer's identity could not be loaded or used.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The file is shorter than its header.
    #[error("{path}: truncated key file ({len} bytes, the header alone is {HEADER_LEN})")]
    TruncatedHeader {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// The header has an impossible field.
    #[error("invalid key file header: {0}")]
    InvalidHeader(String),
    /// The keys are for another ring.
    #[error("key file is for Z_2^{file}, this job runs on Z_2^{expected}")]
    RingMismatch {
        /// Ring bits of the file.
        file: u32,
        /// Ring bits expected.
        expected: u32,
    },
    /// The file belongs to the other party.
    #[error("key file of party {file}, opened by party {expected} (swapped key files?)")]
    WrongParty {
        /// Party of the file.
        file: u8,
        /// Party opening it.
        expected: u8,
    },
    /// The keys were generated for another plan (model, batch or config).
    #[error(
        "key file is for another plan: file has plan hash {file}, this job's plan hashes to {expected}"
    )]
    PlanMismatch {
        /// Plan hash in the file (hex).
        file: String,
        /// Plan hash expected (hex).
        expected: String,
    },
    /// The keys are of another dealer session than the one pinned.
    #[error("key file is of session {file}, expected session {expected}")]
    SessionMismatch {
        /// Session in the file.
        file: SessionId,
        /// Session expected.
        expected: SessionId,
    },
    /// The journal says bundles of this file were already handed out.
    #[error(
        "keys already used: bundles 0..{consumed} of session {session} were consumed (journal {journal}); ask the dealer for fresh keys"
    )]
    AlreadyUsed {
        /// Session of the file.
        session: SessionId,
        /// Bundles consumed.
        consumed: u64,
        /// The journal.
        journal: PathBuf,
    },
    /// The journal exists but cannot be read: refused rather than guessed.
    #[error("journal {path} is corrupted ({reason}); refusing to reuse possibly consumed keys")]
    JournalCorrupt {
        /// The journal.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Another source holds the journal's lock.
    #[error("key file {path} is in use by another process or source")]
    InUse {
        /// The key file.
        path: PathBuf,
    },
    /// A bundle handed to the writer does not fit the file.
    #[error("bundle does not fit the key file: {0}")]
    BundleMismatch(String),
    /// The writer was finished with another number of bundles than announced.
    #[error("key file announces {announced} bundles but {written} were written")]
    CountMismatch {
        /// Bundles announced in the header.
        announced: u64,
        /// Bundles written.
        written: u64,
    },
    /// The operating system's random generator failed.
    #[error("OS random generator: {0}")]
    Rng(String),
    /// A chunk of the file is bad ([`verify_file`]).
    #[error("chunk {index}: {fault}")]
    Chunk {
        /// The chunk (= plan index).
        index: u64,
        /// What is wrong.
        fault: SourceFault,
    },
    /// The dealer failed to generate a bundle (a plan of another ring, an
    /// invalid gate).
    #[error(transparent)]
    Dealer(#[from] MpcError),
}

fn version_message(found: u16, supported: u16) -> String {
    if found < supported {
        format!(
            "key file format v{found} was written by an older ariann-dealer; regenerate the \
             keys with this version (it reads and writes v{supported})"
        )
    } else {
        format!(
            "key file format v{found} was written by a newer ariann-dealer; this build reads \
             v{supported}: upgrade it or regenerate the keys with this version"
        )
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeyFileError + '_ {
    move |error| KeyFileError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// 16 random bytes naming one run of the dealer (the same in both parties'
/// files).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(pub [u8; 16]);

impl SessionId {
    /// A fresh id from the operating system's random generator.
    pub fn random() -> Result<Self, KeyFileError> {
        use rand::TryRngCore;
        let mut b = [0u8; 16];
        rand::rngs::OsRng
            .try_fill_bytes(&mut b)
            .map_err(|e| KeyFileError::Rng(e.to_string()))?;
        Ok(SessionId(b))
    }
}

impl core::fmt::Display for SessionId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&to_hex(&self.0))
    }
}

impl core::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SessionId({self})")
    }
}

/// Lower-case hex of `bytes` (plan hashes, session ids).
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The header of a key file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFileHeader {
    /// Ring width of the keys.
    pub ring_bits: u32,
    /// The party the file is for.
    pub party: Party,
    /// [`Plan::hash`] of the job.
    pub plan_hash: [u8; 32],
    /// The dealer session.
    pub session: SessionId,
    /// Bundles in the file.
    pub count: u64,
    /// The session's link secret (the same in both parties' files).
    pub link_secret: LinkSecret,
    /// The dealer's public key (the signer).
    pub dealer: DealerPublicKey,
}

impl KeyFileHeader {
    /// The header signed with `key` (whose public half must be `self.dealer`).
    fn encode(&self, key: &DealerSigningKey) -> zeroize::Zeroizing<[u8; HEADER_LEN]> {
        let mut h = zeroize::Zeroizing::new([0u8; HEADER_LEN]);
        h[0..4].copy_from_slice(&MAGIC);
        h[4..6].copy_from_slice(&VERSION.to_le_bytes());
        // Ring widths are 32 or 64.
        h[6] = self.ring_bits as u8;
        h[7] = self.party.index();
        h[8..40].copy_from_slice(&self.plan_hash);
        h[40..56].copy_from_slice(&self.session.0);
        h[56..64].copy_from_slice(&self.count.to_le_bytes());
        h[64..96].copy_from_slice(self.link_secret.expose());
        h[96..128].copy_from_slice(&self.dealer.to_bytes());
        let sig = key.sign(HEADER_SIG_DOMAIN, &h[..HEADER_SIGNED]);
        h[HEADER_SIGNED..].copy_from_slice(&sig);
        h
    }

    /// Decodes a header and checks its signature under `pinned`.
    fn decode(
        h: &[u8; HEADER_LEN],
        path: &Path,
        pinned: &DealerPublicKey,
    ) -> Result<Self, KeyFileError> {
        if h[0..4] != MAGIC {
            return Err(KeyFileError::BadMagic {
                path: path.to_path_buf(),
            });
        }
        let version = u16::from_le_bytes([h[4], h[5]]);
        if version != VERSION {
            return Err(KeyFileError::UnsupportedVersion {
                found: version,
                supported: VERSION,
            });
        }
        let mut pk = [0u8; PUBLIC_KEY_LEN];
        pk.copy_from_slice(&h[96..128]);
        if pk != pinned.to_bytes() {
            return Err(KeyFileError::WrongDealer {
                path: path.to_path_buf(),
                file: to_hex(&pk),
                pinned: pinned.to_hex(),
            });
        }
        let mut sig = [0u8; SIGNATURE_LEN];
        sig.copy_from_slice(&h[HEADER_SIGNED..]);
        pinned
            .verify(HEADER_SIG_DOMAIN, &h[..HEADER_SIGNED], &sig, "header")
            .map_err(|_| KeyFileError::HeaderSignature {
                path: path.to_path_buf(),
            })?;
        let party = Party::from_index(h[7])
            .ok_or_else(|| KeyFileError::InvalidHeader(format!("party {}", h[7])))?;
        if h[6] != 32 && h[6] != 64 {
            return Err(KeyFileError::InvalidHeader(format!("ring width {}", h[6])));
        }
        let mut plan_hash = [0u8; 32];
        plan_hash.copy_from_slice(&h[8..40]);
        let mut session = [0u8; 16];
        session.copy_from_slice(&h[40..56]);
        let mut count = [0u8; 8];
        count.copy_from_slice(&h[56..64]);
        let mut link = [0u8; LINK_SECRET_LEN];
        link.copy_from_slice(&h[64..96]);
        Ok(KeyFileHeader {
            ring_bits: u32::from(h[6]),
            party,
            plan_hash,
            session: SessionId(session),
            count: u64::from_le_bytes(count),
            link_secret: LinkSecret::from_bytes(link),
            dealer: *pinned,
        })
    }

    /// Reads and checks the header of the key file at `path` (its signature
    /// under `pinned`; no journal, no bundles).
    pub fn read(path: &Path, pinned: &DealerPublicKey) -> Result<Self, KeyFileError> {
        let mut f = File::open(path).map_err(io_err(path))?;
        let len = f.metadata().map_err(io_err(path))?.len();
        Self::read_from(&mut f, len, path, pinned)
    }

    fn read_from(
        f: &mut File,
        len: u64,
        path: &Path,
        pinned: &DealerPublicKey,
    ) -> Result<Self, KeyFileError> {
        if len < HEADER_LEN as u64 {
            return Err(KeyFileError::TruncatedHeader {
                path: path.to_path_buf(),
                len,
            });
        }
        let mut h = zeroize::Zeroizing::new([0u8; HEADER_LEN]);
        f.read_exact(h.as_mut()).map_err(io_err(path))?;
        Self::decode(&h, path, pinned)
    }
}

fn chunk_digest(h: &KeyFileHeader, index: u64, bundle: &[u8]) -> [u8; 32] {
    let mut d = Sha256::new();
    d.update(CHUNK_DOMAIN);
    d.update(h.session.0);
    d.update([h.party.index()]);
    d.update(h.plan_hash);
    d.update(index.to_le_bytes());
    d.update((bundle.len() as u64).to_le_bytes());
    d.update(bundle);
    d.finalize().into()
}

fn trailer_hasher(h: &KeyFileHeader) -> Sha256 {
    let mut d = Sha256::new();
    d.update(TRAILER_DOMAIN);
    d.update(h.session.0);
    d.update([h.party.index()]);
    d.update(h.count.to_le_bytes());
    d
}

/// The name of `party`'s key file in the dealer's output directory.
pub fn key_file_name(party: Party) -> &'static str {
    match party {
        Party::P0 => "party0.keys",
        Party::P1 => "party1.keys",
    }
}

/// The temporary name of the key file `path` while it is written
/// (`<path>.tmp`); removed on every failure.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// The use-once journal next to the key file at `key_path`.
pub fn journal_path(key_path: &Path) -> PathBuf {
    let mut s = key_path.as_os_str().to_owned();
    s.push(".journal");
    PathBuf::from(s)
}

/// Writes one party's key file, one bundle at a time (buffered, never all
/// bundles in memory), signing header, chunks and trailer with the dealer's
/// key. The file appears under its final name only when
/// [`KeyFileWriter::finish`] succeeds; until then it is `<path>.tmp`
/// (created 0600), which is removed on every failure and when an
/// unfinished writer is dropped.
#[derive(Debug)]
pub struct KeyFileWriter {
    path: PathBuf,
    tmp: PathBuf,
    /// `None` once finished (or failed in `finish`).
    out: Option<BufWriter<File>>,
    /// Set once the file has its final name: the `.tmp` is gone.
    done: bool,
    header: KeyFileHeader,
    key: DealerSigningKey,
    written: u64,
    bytes: u64,
    trailer: Sha256,
    buf: SecretBuf,
}

impl KeyFileWriter {
    /// Starts the key file `path` announcing `header.count` bundles, signed
    /// with `key` (`header.dealer` must be its public half). A stale
    /// `<path>.tmp` is replaced.
    pub fn create(
        path: &Path,
        header: KeyFileHeader,
        key: &DealerSigningKey,
    ) -> Result<Self, KeyFileError> {
        if header.dealer != key.public() {
            return Err(KeyFileError::InvalidHeader(
                "the header names another dealer key than the signing key".into(),
            ));
        }
        let tmp = tmp_path(path);
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&tmp)(e)),
        }
        // Keys are secrets: readable by their owner only (0600 on Unix).
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let f = opts.open(&tmp).map_err(io_err(&tmp))?;
        let out = BufWriter::with_capacity(IO_BUFFER, f);
        let trailer = trailer_hasher(&header);
        // From here on, dropping `w` removes the `.tmp`.
        let mut w = Self {
            path: path.to_path_buf(),
            tmp,
            out: Some(out),
            done: false,
            header,
            key: key.clone(),
            written: 0,
            bytes: HEADER_LEN as u64,
            trailer,
            buf: SecretBuf::new(),
        };
        let h = w.header.encode(key);
        if let Some(out) = w.out.as_mut() {
            out.write_all(h.as_ref()).map_err(io_err(&w.tmp))?;
        }
        Ok(w)
    }

    /// Appends the next bundle (its party, ring and plan index must fit).
    /// Returns the bytes of its chunk.
    pub fn write_bundle<R: Ring>(&mut self, b: &KeyBundle<R>) -> Result<u64, KeyFileError> {
        if R::BITS != self.header.ring_bits || b.party != self.header.party {
            return Err(KeyFileError::BundleMismatch(format!(
                "bundle of party {} on Z_2^{} in a file of party {} on Z_2^{}",
                b.party.index(),
                R::BITS,
                self.header.party.index(),
                self.header.ring_bits
            )));
        }
        if b.tag.index != self.written || self.written >= self.header.count {
            return Err(KeyFileError::BundleMismatch(format!(
                "bundle for plan index {} as chunk {} of {}",
                b.tag.index, self.written, self.header.count
            )));
        }
        self.buf.clear();
        b.encode_secret(&mut self.buf);
        let digest = chunk_digest(&self.header, self.written, &self.buf);
        let sig = self.key.sign(CHUNK_SIG_DOMAIN, &digest);
        let tmp = &self.tmp;
        let Some(out) = self.out.as_mut() else {
            return Err(KeyFileError::BundleMismatch(
                "writer already finished".into(),
            ));
        };
        out.write_all(&(self.buf.len() as u64).to_le_bytes())
            .and_then(|()| out.write_all(&self.buf))
            .and_then(|()| out.write_all(&digest))
            .and_then(|()| out.write_all(&sig))
            .map_err(io_err(tmp))?;
        self.trailer.update(digest);
        self.written += 1;
        let n = (self.buf.len() + CHUNK_OVERHEAD) as u64;
        self.bytes += n;
        Ok(n)
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Writes the signed trailer, syncs, moves the file to its final name
    /// and removes a stale journal of that name. Returns the file's size.
    /// On failure the `.tmp` is removed.
    pub fn finish(mut self) -> Result<u64, KeyFileError> {
        if self.written != self.header.count {
            return Err(KeyFileError::CountMismatch {
                announced: self.header.count,
                written: self.written,
            });
        }
        let mut t = [0u8; TRAILER_LEN];
        t[..4].copy_from_slice(&TRAILER_MAGIC);
        t[4..12].copy_from_slice(&self.header.count.to_le_bytes());
        t[12..TRAILER_SIGNED].copy_from_slice(&self.trailer.clone().finalize());
        let sig = self.key.sign(TRAILER_SIG_DOMAIN, &t[..TRAILER_SIGNED]);
        t[TRAILER_SIGNED..].copy_from_slice(&sig);
        let tmp = self.tmp.clone();
        let Some(mut out) = self.out.take() else {
            return Err(KeyFileError::BundleMismatch(
                "writer already finished".into(),
            ));
        };
        out.write_all(&t).map_err(io_err(&tmp))?;
        let f = out.into_inner().map_err(|e| io_err(&tmp)(e.into_error()))?;
        f.sync_all().map_err(io_err(&tmp))?;
        drop(f);
        // Rename first: a crash between the two steps leaves a journal of
        // the old session next to the new file, which is treated as stale;
        // the other order could leave an already used file without its journal.
        std::fs::rename(&tmp, &self.path).map_err(io_err(&self.path))?;
        self.done = true;
        let journal = journal_path(&self.path);
        match std::fs::remove_file(&journal) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&journal)(e)),
        }
        Ok(self.bytes + TRAILER_LEN as u64)
    }
}

impl Drop for KeyFileWriter {
    /// A writer that did not finish removes its temporary file.
    fn drop(&mut self) {
        // Closes the file first (its buffered bytes are not worth writing).
        if let Some(out) = self.out.take() {
            let (f, buf) = out.into_parts();
            drop(f);
            if let Ok(mut b) = buf {
                zeroize::Zeroize::zeroize(&mut b);
            }
        }
        if !self.done {
            // Best effort: the file may already be gone.
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// What [`write_key_files`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFilesSummary {
    /// The dealer session (in both files).
    pub session: SessionId,
    /// [`Plan::hash`].
    pub plan_hash: [u8; 32],
    /// Bundles per file.
    pub bundles: u64,
    /// Size of each party's file.
    pub bytes: [u64; 2],
    /// The two files.
    pub paths: [PathBuf; 2],
}

/// Dealer: generates the keys of `plan` from the OS's randomness under a
/// fresh session id and link secret and writes `dir/party0.keys` and
/// `dir/party1.keys`, signed with `key`, bundle by bundle (at most one
/// gate's keys in memory). `progress` is called after each bundle with the
/// bundles done and the bytes written per party so far. On any error both
/// `.tmp` files are removed.
pub fn write_key_files<R: Ring>(
    plan: &Plan,
    dir: &Path,
    key: &DealerSigningKey,
    mut progress: impl FnMut(u64, [u64; 2]),
) -> Result<KeyFilesSummary, KeyFileError> {
    let session = SessionId::random()?;
    let link_secret = LinkSecret::random()?;
    let plan_hash = plan.hash();
    let count = plan.gates.len() as u64;
    let stream = plan.bundles_from_os::<R>()?;
    let header = |party| KeyFileHeader {
        ring_bits: R::BITS,
        party,
        plan_hash,
        session,
        count,
        link_secret: link_secret.clone(),
        dealer: key.public(),
    };
    let paths = [
        dir.join(key_file_name(Party::P0)),
        dir.join(key_file_name(Party::P1)),
    ];
    let mut w0 = KeyFileWriter::create(&paths[0], header(Party::P0), key)?;
    let mut w1 = KeyFileWriter::create(&paths[1], header(Party::P1), key)?;
    // Pipeline: a generator thread runs at most one gate ahead of the
    // writers (bounded memory), and the two files are encoded, hashed and
    // written concurrently.
    let (tx, rx) = sync_channel(1);
    std::thread::scope(|sc| -> Result<(), KeyFileError> {
        // Owned here, so an early error return drops it and the generator
        // stops at its next send instead of blocking the scope forever.
        let rx = rx;
        sc.spawn(move || {
            for pair in stream {
                let stop = pair.is_err();
                if tx.send(pair).is_err() || stop {
                    break;
                }
            }
        });
        for (i, pair) in rx.iter().enumerate() {
            let (a, b) = pair?;
            let (r0, r1) = std::thread::scope(|s2| {
                let h = s2.spawn(|| w0.write_bundle(&a));
                let r1 = w1.write_bundle(&b);
                (
                    h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)),
                    r1,
                )
            });
            r0?;
            r1?;
            progress(i as u64 + 1, [w0.bytes(), w1.bytes()]);
        }
        Ok(())
    })?;
    let bytes = [w0.finish()?, w1.finish()?];
    Ok(KeyFilesSummary {
        session,
        plan_hash,
        bundles: count,
        bytes,
        paths,
    })
}

/// What a party expects of its key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    /// The party opening the file.
    pub party: Party,
    /// [`Plan::hash`] of the job it is about to run.
    pub plan_hash: [u8; 32],
    /// The dealer session, if the party was told it (e.g. by the dealer's
    /// output or the peer); `None` accepts any session.
    pub session: Option<SessionId>,
    /// Bundles of the job: the number of gates of the party's plan.
    pub bundles: u64,
}

impl Expected {
    /// What a party running `plan` expects (any session).
    pub fn for_plan(party: Party, plan: &Plan) -> Self {
        Expected {
            party,
            plan_hash: plan.hash(),
            session: None,
            bundles: plan.gates.len() as u64,
        }
    }
}

/// Bundles of `header`'s session the journal next to `key_path` records as
/// consumed (0 without a journal, or with a journal of another session);
/// reads the journal without locking or changing it (`verify`).
pub fn journal_consumed(key_path: &Path, header: &KeyFileHeader) -> Result<u64, KeyFileError> {
    let path = journal_path(key_path);
    let old = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_err(&path)(e)),
    };
    if old.is_empty() {
        return Ok(0);
    }
    let corrupt = |reason: &str| KeyFileError::JournalCorrupt {
        path: path.clone(),
        reason: reason.into(),
    };
    if old.len() != JOURNAL_LEN || old[..4] != JOURNAL_MAGIC {
        return Err(corrupt("not a journal record"));
    }
    if Sha256::digest(&old[..32])[..16] != old[32..] {
        return Err(corrupt("checksum mismatch"));
    }
    let mut s = [0u8; 16];
    s.copy_from_slice(&old[8..24]);
    let mut c = [0u8; 8];
    c.copy_from_slice(&old[24..32]);
    if SessionId(s) == header.session && old[6] == header.party.index() {
        Ok(u64::from_le_bytes(c))
    } else {
        Ok(0)
    }
}

/// The use-once journal of an open key file (held locked).
#[derive(Debug)]
struct Journal {
    file: File,
    path: PathBuf,
    party: Party,
    session: SessionId,
}

impl Journal {
    fn record(party: Party, session: SessionId, consumed: u64) -> [u8; JOURNAL_LEN] {
        let mut r = [0u8; JOURNAL_LEN];
        r[..4].copy_from_slice(&JOURNAL_MAGIC);
        r[4..6].copy_from_slice(&JOURNAL_VERSION.to_le_bytes());
        r[6] = party.index();
        r[8..24].copy_from_slice(&session.0);
        r[24..32].copy_from_slice(&consumed.to_le_bytes());
        let d = Sha256::digest(&r[..32]);
        r[32..].copy_from_slice(&d[..16]);
        r
    }

    /// Opens (or creates) and locks the journal of `key_path`; refuses if it
    /// records consumed bundles of `header`'s session.
    fn open(key_path: &Path, header: &KeyFileHeader) -> Result<Self, KeyFileError> {
        let path = journal_path(key_path);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(KeyFileError::InUse {
                    path: key_path.to_path_buf(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(&path)(e)),
        }
        let mut old = Vec::new();
        file.read_to_end(&mut old).map_err(io_err(&path))?;
        let corrupt = |reason: &str| KeyFileError::JournalCorrupt {
            path: path.clone(),
            reason: reason.into(),
        };
        if !old.is_empty() {
            if old.len() != JOURNAL_LEN || old[..4] != JOURNAL_MAGIC {
                return Err(corrupt("not a journal record"));
            }
            if Sha256::digest(&old[..32])[..16] != old[32..] {
                return Err(corrupt("checksum mismatch"));
            }
            let mut s = [0u8; 16];
            s.copy_from_slice(&old[8..24]);
            let mut c = [0u8; 8];
            c.copy_from_slice(&old[24..32]);
            let consumed = u64::from_le_bytes(c);
            // A journal of another session is stale (the file was replaced).
            if SessionId(s) == header.session && old[6] == header.party.index() && consumed > 0 {
                return Err(KeyFileError::AlreadyUsed {
                    session: header.session,
                    consumed,
                    journal: path,
                });
            }
        }
        let mut j = Journal {
            file,
            path,
            party: header.party,
            session: header.session,
        };
        j.write(0)?;
        Ok(j)
    }

    /// Records `consumed` bundles as handed out, durably.
    fn write(&mut self, consumed: u64) -> Result<(), KeyFileError> {
        let r = Self::record(self.party, self.session, consumed);
        let path = &self.path;
        self.file
            .seek(SeekFrom::Start(0))
            .and_then(|_| self.file.write_all(&r))
            .and_then(|()| self.file.set_len(JOURNAL_LEN as u64))
            .and_then(|()| self.file.sync_data())
            .map_err(io_err(path))
    }
}

type Item<R> = Result<KeyBundle<R>, (u64, SourceFault)>;

/// A party's [`PreprocessingSource`] over its key file: bundles are read,
/// checked (digest and dealer signature) and decoded by a reader thread at
/// most one bundle ahead; the session is claimed in the party-wide ledger
/// before the first bundle is handed out, and each bundle is recorded in the
/// use-once journal (written and fsynced) before it is handed out.
pub struct KeyFileSource<R: Ring> {
    header: KeyFileHeader,
    rx: Option<Receiver<Item<R>>>,
    reader: Option<JoinHandle<()>>,
    pending: Option<KeyBundle<R>>,
    journal: Journal,
    ledger: Ledger,
    path: PathBuf,
    next: u64,
    failed: Option<MpcError>,
}

impl<R: Ring> core::fmt::Debug for KeyFileSource<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KeyFileSource")
            .field("header", &self.header)
            .field("journal", &self.journal.path)
            .field("consumed", &self.next)
            .finish_non_exhaustive()
    }
}

impl<R: Ring> KeyFileSource<R> {
    /// Opens the key file at `path` for `expected.party`. Refuses a header
    /// not signed by `trust.dealer` (unsigned, another dealer's, tampered),
    /// another ring, party, plan or (if pinned) session, a bundle count
    /// other than `expected.bundles`, a truncated header, a file already in
    /// use, a file whose journal records consumed bundles, and a session the
    /// ledger `trust.ledger` records as used on this host.
    pub fn open(path: &Path, expected: &Expected, trust: &KeyTrust) -> Result<Self, KeyFileError> {
        let mut f = File::open(path).map_err(io_err(path))?;
        let len = f.metadata().map_err(io_err(path))?.len();
        let header = KeyFileHeader::read_from(&mut f, len, path, &trust.dealer)?;
        if header.ring_bits != R::BITS {
            return Err(KeyFileError::RingMismatch {
                file: header.ring_bits,
                expected: R::BITS,
            });
        }
        if header.party != expected.party {
            return Err(KeyFileError::WrongParty {
                file: header.party.index(),
                expected: expected.party.index(),
            });
        }
        if header.plan_hash != expected.plan_hash {
            return Err(KeyFileError::PlanMismatch {
                file: to_hex(&header.plan_hash),
                expected: to_hex(&expected.plan_hash),
            });
        }
        if let Some(s) = expected.session
            && s != header.session
        {
            return Err(KeyFileError::SessionMismatch {
                file: header.session,
                expected: s,
            });
        }
        if header.count != expected.bundles {
            return Err(KeyFileError::BundleCount {
                file: header.count,
                expected: expected.bundles,
            });
        }
        let journal = Journal::open(path, &header)?;
        trust.ledger.check(header.session, header.party)?;
        let (tx, rx) = sync_channel(1);
        let h = header.clone();
        let reader = std::thread::Builder::new()
            .name("ariann-keyfile-reader".into())
            .spawn(move || read_chunks(BufReader::with_capacity(IO_BUFFER, f), len, h, tx))
            .map_err(io_err(path))?;
        Ok(Self {
            header,
            rx: Some(rx),
            reader: Some(reader),
            pending: None,
            journal,
            ledger: trust.ledger.clone(),
            path: path.to_path_buf(),
            next: 0,
            failed: None,
        })
    }

    /// The session's link secret (from the signed header), for the party
    /// link's authenticated Hello.
    pub fn link_secret(&self) -> LinkSecret {
        self.header.link_secret.clone()
    }

    /// The file's header.
    pub fn header(&self) -> &KeyFileHeader {
        &self.header
    }

    /// Bundles handed out (and journaled) so far.
    pub fn consumed(&self) -> u64 {
        self.next
    }

    fn fail(&mut self, e: MpcError) -> MpcError {
        self.failed = Some(e.clone());
        e
    }
}

impl<R: Ring> Drop for KeyFileSource<R> {
    fn drop(&mut self) {
        // Dropping the receiver stops the reader at its next send.
        self.rx = None;
        if let Some(h) = self.reader.take() {
            // The reader never panics by design; nothing to report if it did.
            let _ = h.join();
        }
    }
}

impl<R: Ring> PreprocessingSource<R> for KeyFileSource<R> {
    fn next_bundle(&mut self, party: Party, expected: &BundleTag) -> Result<GateKey<R>, MpcError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if party != self.header.party {
            return Err(MpcError::WrongParty {
                key: self.header.party.index(),
                me: party.index(),
            });
        }
        if expected.index >= self.header.count || self.next >= self.header.count {
            return Err(MpcError::KeysExhausted {
                index: expected.index,
            });
        }
        if self.pending.is_none() {
            let got = match &self.rx {
                Some(rx) => rx.recv().ok(),
                None => None,
            };
            match got {
                Some(Ok(b)) => self.pending = Some(b),
                Some(Err((index, fault))) => {
                    return Err(self.fail(MpcError::KeySource { index, fault }));
                }
                None => {
                    let index = self.next;
                    return Err(self.fail(MpcError::KeySource {
                        index,
                        fault: SourceFault::Io("the key file reader stopped".into()),
                    }));
                }
            }
        }
        if let Some(b) = &self.pending {
            // A mismatch consumes nothing.
            check_bundle(b, party, expected)?;
        }
        if self.next == 0 {
            let what = format!("key file {}", self.path.display());
            if let Err(e) = self
                .ledger
                .claim(self.header.session, self.header.party, &what)
            {
                return Err(self.fail(MpcError::KeySource {
                    index: 0,
                    fault: SourceFault::Journal(e.to_string()),
                }));
            }
        }
        if let Err(e) = self.journal.write(self.next + 1) {
            let index = self.next;
            return Err(self.fail(MpcError::KeySource {
                index,
                fault: SourceFault::Journal(e.to_string()),
            }));
        }
        self.next += 1;
        match self.pending.take() {
            Some(b) => Ok(b.key),
            None => Err(MpcError::KeysExhausted {
                index: expected.index,
            }),
        }
    }
}

/// The reader thread, a pipeline of two stages: this thread reads the
/// chunks in order and checks each digest (and the trailer after the last
/// one), a decoder thread decodes the previous chunk meanwhile and sends
/// the bundles on. Two raw buffers go round between them (reused, wiped).
fn read_chunks<R: Ring>(
    mut rd: BufReader<File>,
    len: u64,
    header: KeyFileHeader,
    tx: SyncSender<Item<R>>,
) {
    let (raw_tx, raw_rx) = sync_channel::<(u64, Result<SecretBuf, SourceFault>)>(1);
    let (free_tx, free_rx) = sync_channel::<SecretBuf>(2);
    let party = header.party;
    std::thread::scope(|sc| {
        sc.spawn(move || {
            for (i, raw) in raw_rx {
                let item = raw.and_then(|buf| {
                    let b = decode_chunk::<R>(&buf, party, i);
                    // The reader may have stopped: then the buffer drops (wiped).
                    let _ = free_tx.try_send(buf);
                    b
                });
                let stop = item.is_err();
                if tx.send(item.map_err(|f| (i, f))).is_err() || stop {
                    return;
                }
            }
        });
        // Owned here: dropped when reading ends (or stops), so the decoder's
        // loop ends and the scope can join it.
        let raw_tx = raw_tx;
        let mut pos = HEADER_LEN as u64;
        let mut trailer = trailer_hasher(&header);
        for i in 0..header.count {
            let mut buf = free_rx.try_recv().unwrap_or_default();
            let raw = read_raw_chunk(&mut rd, len, &mut pos, &header, i, &mut trailer, &mut buf)
                .map(|()| buf);
            let stop = raw.is_err();
            if raw_tx.send((i, raw)).is_err() || stop {
                return;
            }
        }
    });
}

fn decode_chunk<R: Ring>(buf: &[u8], party: Party, i: u64) -> Result<KeyBundle<R>, SourceFault> {
    let b = KeyBundle::<R>::decode(buf).map_err(|e| SourceFault::Decode(e.to_string()))?;
    if b.party != party || b.tag.index != i {
        return Err(SourceFault::Decode(format!(
            "chunk {i} holds bundle {} of party {}",
            b.tag.index,
            b.party.index()
        )));
    }
    Ok(b)
}

fn io_fault(e: std::io::Error) -> SourceFault {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        SourceFault::Truncated
    } else {
        SourceFault::Io(e.to_string())
    }
}

/// Reads chunk `i`'s bundle bytes into `buf`, checked against its digest
/// and the dealer's signature on it (`header.dealer`, verified against the
/// pinned key when the header was read); after the last chunk, the trailer
/// is checked too.
fn read_raw_chunk(
    rd: &mut BufReader<File>,
    len: u64,
    pos: &mut u64,
    header: &KeyFileHeader,
    i: u64,
    trailer: &mut Sha256,
    buf: &mut SecretBuf,
) -> Result<(), SourceFault> {
    let mut l = [0u8; 8];
    rd.read_exact(&mut l).map_err(io_fault)?;
    *pos += 8;
    let n = u64::from_le_bytes(l);
    let tail = (32 + SIGNATURE_LEN) as u64;
    // Bounded by the file before allocating.
    if n > len.saturating_sub(*pos).saturating_sub(tail) {
        return Err(SourceFault::Truncated);
    }
    // `n < len`, which fits in memory as a file does.
    buf.zeroed(n as usize);
    rd.read_exact(buf.as_mut_slice()).map_err(io_fault)?;
    let mut d = [0u8; 32];
    rd.read_exact(&mut d).map_err(io_fault)?;
    let mut sig = [0u8; SIGNATURE_LEN];
    rd.read_exact(&mut sig).map_err(io_fault)?;
    *pos += n + tail;
    if chunk_digest(header, i, buf) != d {
        return Err(SourceFault::Checksum);
    }
    header
        .dealer
        .verify(CHUNK_SIG_DOMAIN, &d, &sig, "chunk")
        .map_err(|e| SourceFault::Signature(e.to_string()))?;
    trailer.update(d);
    if i + 1 == header.count {
        check_trailer(rd, len, pos, header, trailer)?;
    }
    Ok(())
}

fn check_trailer(
    rd: &mut BufReader<File>,
    len: u64,
    pos: &mut u64,
    header: &KeyFileHeader,
    trailer: &Sha256,
) -> Result<(), SourceFault> {
    let mut t = [0u8; TRAILER_LEN];
    rd.read_exact(&mut t).map_err(|e| match io_fault(e) {
        SourceFault::Truncated => SourceFault::Trailer("missing (truncated file)".into()),
        f => f,
    })?;
    *pos += TRAILER_LEN as u64;
    let want = trailer.clone().finalize();
    if t[..4] != TRAILER_MAGIC
        || t[4..12] != header.count.to_le_bytes()
        || t[12..TRAILER_SIGNED] != want[..]
    {
        return Err(SourceFault::Trailer("does not match the chunks".into()));
    }
    let mut sig = [0u8; SIGNATURE_LEN];
    sig.copy_from_slice(&t[TRAILER_SIGNED..]);
    header
        .dealer
        .verify(TRAILER_SIG_DOMAIN, &t[..TRAILER_SIGNED], &sig, "trailer")
        .map_err(|e| SourceFault::Signature(e.to_string()))?;
    if *pos != len {
        return Err(SourceFault::Trailer(format!(
            "{} bytes after the trailer",
            len.saturating_sub(*pos)
        )));
    }
    Ok(())
}

/// Checks a whole key file without handing out (or decoding) any bundle and
/// without touching its journal: the header's signature under `pinned`,
/// every chunk's digest and signature, the trailer. Returns the header.
pub fn verify_file(path: &Path, pinned: &DealerPublicKey) -> Result<KeyFileHeader, KeyFileError> {
    let mut f = File::open(path).map_err(io_err(path))?;
    let len = f.metadata().map_err(io_err(path))?.len();
    let header = KeyFileHeader::read_from(&mut f, len, path, pinned)?;
    let mut rd = BufReader::with_capacity(IO_BUFFER, f);
    let mut pos = HEADER_LEN as u64;
    let mut trailer = trailer_hasher(&header);
    let mut buf = SecretBuf::new();
    if header.count == 0 {
        check_trailer(&mut rd, len, &mut pos, &header, &trailer)
            .map_err(|fault| KeyFileError::Chunk { index: 0, fault })?;
    }
    for i in 0..header.count {
        read_raw_chunk(&mut rd, len, &mut pos, &header, i, &mut trailer, &mut buf)
            .map_err(|fault| KeyFileError::Chunk { index: i, fault })?;
    }
    Ok(header)
}

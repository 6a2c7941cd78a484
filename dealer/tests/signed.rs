//! Dealer-signed key files (format v3) and the party-wide use-once ledger:
//! known answers of the signatures, forged and re-signed files, version 2
//! refused, a recomputed digest without the dealer's key refused, copied
//! files and deleted journals refused through the ledger, `.tmp` removed
//! when writing fails, identity files and state directories.

use ariann_dealer::auth::{DealerPublicKey, DealerSigningKey, KeyTrust, LinkSecret};
use ariann_dealer::keyfile::{
    CHUNK_OVERHEAD, Expected, HEADER_LEN, KeyFileError, KeyFileHeader, KeyFileSource,
    KeyFileWriter, SessionId, journal_path, tmp_path, verify_file, write_key_files,
};
use ariann_dealer::ledger::Ledger;
use ariann_dealer::{GateDesc, Plan};
use ariann_fss::Party;
use ariann_mpc::gates::beaver::Bilinear;
use ariann_mpc::{BundleTag, MpcError, PreprocessingSource, SourceFault};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn plan() -> Plan {
    Plan::new(
        64,
        vec![
            GateDesc::Triple(Bilinear::Mul { len: 4 }),
            GateDesc::Relu { m: 3, k: 16 },
            GateDesc::Trunc { m: 2, f: 4, k: 16 },
        ],
    )
}

fn key_a() -> DealerSigningKey {
    DealerSigningKey::from_seed(&[0x42; 32])
}

fn key_b() -> DealerSigningKey {
    DealerSigningKey::from_seed(&[0x17; 32])
}

struct Files {
    dir: tempfile::TempDir,
    paths: [PathBuf; 2],
    session: SessionId,
}

fn write(key: &DealerSigningKey) -> Files {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = write_key_files::<u64>(&plan(), dir.path(), key, |_, _| {}).expect("write");
    Files {
        paths: s.paths.clone(),
        session: s.session,
        dir,
    }
}

fn trust(dir: &Path, dealer: DealerPublicKey) -> KeyTrust {
    KeyTrust {
        dealer,
        ledger: Ledger::open(&dir.join("state")).expect("ledger"),
    }
}

fn open(path: &Path, party: Party, t: &KeyTrust) -> Result<KeyFileSource<u64>, KeyFileError> {
    KeyFileSource::<u64>::open(path, &Expected::for_plan(party, &plan()), t)
}

fn drain(src: &mut KeyFileSource<u64>, party: Party) -> Result<(), MpcError> {
    for (i, gate) in plan().gates.iter().enumerate() {
        src.next_bundle(
            party,
            &BundleTag {
                index: i as u64,
                gate: *gate,
            },
        )?;
    }
    Ok(())
}

#[test]
fn ed25519_known_answers() {
    // RFC 8032, section 7.1, TEST 1 (empty domain, empty message).
    let seed: [u8; 32] =
        hex_bytes("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
    let k = DealerSigningKey::from_seed(&seed);
    assert_eq!(
        k.public().to_hex(),
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    );
    let sig = k.sign(b"", b"");
    assert_eq!(
        hex(&sig),
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    );
    k.public().verify(b"", b"", &sig, "test").expect("verifies");
    // The domain is part of the signed message.
    let a = k.sign(b"domain", b"msg");
    assert_eq!(a, k.sign(b"", b"domainmsg"));
    assert!(k.public().verify(b"other", b"msg", &a, "test").is_err());
    assert!(
        key_b()
            .public()
            .verify(b"domain", b"msg", &a, "test")
            .is_err()
    );
    // A whole (empty) key file from fixed inputs: a refactor cannot change
    // the header or trailer layout, the domains or the signatures unseen.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kat.keys");
    let header = KeyFileHeader {
        ring_bits: 64,
        party: Party::P1,
        plan_hash: [3; 32],
        session: SessionId([5; 16]),
        count: 0,
        link_secret: LinkSecret::from_bytes([7; 32]),
        dealer: key_a().public(),
    };
    KeyFileWriter::create(&path, header, &key_a())
        .expect("create")
        .finish()
        .expect("finish");
    let bytes = std::fs::read(&path).expect("read");
    assert_eq!(bytes.len(), 192 + 108);
    assert_eq!(
        key_a().public().to_hex(),
        "2152f8d19b791d24453242e15f2eab6cb7cffa7b6a5ed30097960e069881db12"
    );
    // Format v4 (2026-12-03) changed the version field, and with it the
    // header's signature and the file's digest.
    assert_eq!(&bytes[4..6], &4u16.to_le_bytes());
    assert_eq!(
        hex(&Sha256::digest(&bytes)),
        "17c74bc2d60269a2be9a6ef6fdd8622562d426aaf58c3c2a2bab764a24886473"
    );
    let h = verify_file(&path, &key_a().public()).expect("verifies");
    assert_eq!(h.link_secret, LinkSecret::from_bytes([7; 32]));
}

fn hex_bytes<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex");
    }
    out
}

#[test]
fn files_of_another_dealer_key_are_refused() {
    let a = key_a().public();
    // Signed by B: refused naming both keys.
    let f = write(&key_b());
    let t = trust(f.dir.path(), a);
    let e = open(&f.paths[0], Party::P0, &t).expect_err("B's file");
    assert!(matches!(e, KeyFileError::WrongDealer { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains(&a.to_hex()) && msg.contains(&key_b().public().to_hex()),
        "{msg}"
    );
    assert!(verify_file(&f.paths[0], &a).is_err());
    // B's file claiming to be A's (A's public key in the header): the
    // header signature fails.
    let mut b = std::fs::read(&f.paths[0]).expect("read");
    b[96..128].copy_from_slice(&a.to_bytes());
    std::fs::write(&f.paths[0], &b).expect("write");
    let e = open(&f.paths[0], Party::P0, &t).expect_err("forged");
    assert!(matches!(e, KeyFileError::HeaderSignature { .. }), "{e}");
    assert!(!journal_path(&f.paths[0]).exists());
}

#[test]
fn a_changed_bundle_with_a_recomputed_digest_is_refused_before_use() {
    // Whoever can write the file can recompute SHA-256, not the signature.
    let f = write(&key_a());
    let path = &f.paths[0];
    let mut b = std::fs::read(path).expect("read");
    let h = KeyFileHeader::read(path, &key_a().public()).expect("header");
    // Chunk 0: its length, the bundle, the digest, the signature.
    let at = HEADER_LEN;
    let n = u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes")) as usize;
    let bundle = at + 8;
    b[bundle + n / 2] ^= 1;
    let mut d = Sha256::new();
    d.update(b"ariann-rs key chunk v1");
    d.update(h.session.0);
    d.update([0u8]);
    d.update(h.plan_hash);
    d.update(0u64.to_le_bytes());
    d.update((n as u64).to_le_bytes());
    d.update(&b[bundle..bundle + n]);
    b[bundle + n..bundle + n + 32].copy_from_slice(&d.finalize());
    std::fs::write(path, &b).expect("write");
    let t = trust(f.dir.path(), key_a().public());
    let mut s = open(path, Party::P0, &t).expect("the header is intact");
    let e = drain(&mut s, Party::P0).expect_err("forged chunk");
    assert!(
        matches!(
            e,
            MpcError::KeySource {
                index: 0,
                fault: SourceFault::Signature(_)
            }
        ),
        "{e}"
    );
    assert_eq!(s.consumed(), 0, "no bundle handed out");
    assert!(!t.ledger.is_used(f.session, Party::P0), "nothing claimed");
    match verify_file(path, &key_a().public()) {
        Err(KeyFileError::Chunk {
            index: 0,
            fault: SourceFault::Signature(_),
        }) => {}
        r => panic!("unexpected {r:?}"),
    }
    assert_eq!(CHUNK_OVERHEAD, 8 + 32 + 64);
}

#[test]
fn version_2_files_are_refused_with_regenerate() {
    // A version-2 header (96 bytes: fields and their SHA-256), then nothing.
    let mut h = vec![0u8; 96];
    h[0..4].copy_from_slice(b"ARKF");
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6] = 64;
    h[7] = 0;
    h[8..40].copy_from_slice(&plan().hash());
    h[56..64].copy_from_slice(&3u64.to_le_bytes());
    let d = Sha256::digest(&h[..64]);
    h[64..].copy_from_slice(&d);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("party0.keys");
    h.resize(300, 0);
    std::fs::write(&path, &h).expect("write");
    let t = trust(dir.path(), key_a().public());
    let e = open(&path, Party::P0, &t).expect_err("v2");
    assert!(
        matches!(e, KeyFileError::UnsupportedVersion { found: 2, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("regenerate"), "{e}");
    assert!(verify_file(&path, &key_a().public()).is_err());
}

#[test]
fn copies_and_deleted_journals_are_refused_by_the_ledger() {
    let f = write(&key_a());
    let t = trust(f.dir.path(), key_a().public());
    let mut s = open(&f.paths[0], Party::P0, &t).expect("open");
    drain(&mut s, Party::P0).expect("use");
    drop(s);
    assert!(t.ledger.is_used(f.session, Party::P0));
    assert!(!t.ledger.is_used(f.session, Party::P1));
    // A copy under another name (no journal).
    let copy = f.dir.path().join("copy.keys");
    std::fs::copy(&f.paths[0], &copy).expect("copy");
    let e = open(&copy, Party::P0, &t).expect_err("copy");
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("keys of session {}", f.session))
            && msg.contains("were already used on this host (ledger"),
        "{msg}"
    );
    // The journal deleted.
    std::fs::remove_file(journal_path(&f.paths[0])).expect("rm journal");
    let e = open(&f.paths[0], Party::P0, &t).expect_err("no journal");
    assert!(matches!(e, KeyFileError::Ledger(_)), "{e}");
    // Party 1's file of the same session is still fine on this host.
    let mut s1 = open(&f.paths[1], Party::P1, &t).expect("party 1");
    drain(&mut s1, Party::P1).expect("party 1 uses its keys");
}

#[test]
fn two_copies_opened_at_once_hand_out_keys_once() {
    let f = write(&key_a());
    let t = trust(f.dir.path(), key_a().public());
    let copy = f.dir.path().join("copy.keys");
    std::fs::copy(&f.paths[0], &copy).expect("copy");
    // Both open (neither has used anything yet) ...
    let mut a = open(&f.paths[0], Party::P0, &t).expect("a");
    let mut b = open(&copy, Party::P0, &t).expect("b");
    drain(&mut a, Party::P0).expect("the first to use keys gets them");
    // ... but the ledger, claimed before the first bundle, stops the other.
    let e = drain(&mut b, Party::P0).expect_err("second");
    assert!(e.to_string().contains("already used on this host"), "{e}");
    assert_eq!(b.consumed(), 0);
}

#[test]
fn tmp_is_removed_when_writing_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The final name is taken by a directory: the rename in `finish` fails.
    let path = dir.path().join("party0.keys");
    std::fs::create_dir(&path).expect("dir");
    std::fs::write(path.join("x"), b"x").expect("non-empty");
    let header = KeyFileHeader {
        ring_bits: 64,
        party: Party::P0,
        plan_hash: [0; 32],
        session: SessionId([1; 16]),
        count: 0,
        link_secret: LinkSecret::from_bytes([2; 32]),
        dealer: key_a().public(),
    };
    let w = KeyFileWriter::create(&path, header.clone(), &key_a()).expect("create");
    assert!(tmp_path(&path).exists());
    assert!(w.finish().is_err());
    assert!(!tmp_path(&path).exists(), ".tmp left behind");
    // The header must name the signing key.
    let e =
        KeyFileWriter::create(&dir.path().join("y.keys"), header, &key_b()).expect_err("other key");
    assert!(matches!(e, KeyFileError::InvalidHeader(_)), "{e}");
    assert!(!tmp_path(&dir.path().join("y.keys")).exists());
    // write_key_files failing on party 1's file leaves no .tmp either.
    let out = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(out.path().join("party1.keys")).expect("dir");
    std::fs::write(out.path().join("party1.keys/x"), b"x").expect("non-empty");
    assert!(write_key_files::<u64>(&plan(), out.path(), &key_a(), |_, _| {}).is_err());
    for name in ["party0.keys.tmp", "party1.keys.tmp"] {
        assert!(!out.path().join(name).exists(), "{name} left behind");
    }
}

#[test]
fn identity_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = dir.path().join("id");
    let k = DealerSigningKey::generate().expect("rng");
    let [sk, pk] = k.write_identity(&id).expect("write");
    assert_eq!(DealerPublicKey::load(&pk).expect("pub"), k.public());
    assert_eq!(
        DealerSigningKey::load(&sk).expect("key").public(),
        k.public()
    );
    let seed = std::fs::read_to_string(&sk).expect("read");
    assert_eq!(seed.trim().len(), 64);
    assert!(
        !format!("{k:?}").contains(seed.trim()),
        "Debug shows no secret"
    );
    assert!(k.write_identity(&id).is_err(), "never overwrites a key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&sk).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::set_permissions(&sk, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = DealerSigningKey::load(&sk).expect_err("readable by others");
        assert!(e.to_string().contains("chmod 600"), "{e}");
    }
    std::fs::write(&pk, "not hex\n").expect("write");
    assert!(DealerPublicKey::load(&pk).is_err());
    assert_ne!(
        DealerSigningKey::generate().expect("rng").public(),
        k.public(),
        "fresh keys from the OS"
    );
}

#[test]
fn state_directories() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("a/b/state");
    let l = Ledger::open(&state).expect("created");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&state)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let e = Ledger::open(&state).expect_err("world-writable");
        assert!(e.to_string().contains("writable by group or others"), "{e}");
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    }
    let s = SessionId([9; 16]);
    l.claim(s, Party::P0, "test").expect("first claim");
    assert!(l.claim(s, Party::P0, "test").is_err(), "second claim");
    l.claim(s, Party::P1, "test").expect("the other party");
    let file = dir.path().join("file");
    std::fs::write(&file, b"").expect("write");
    assert!(Ledger::open(&file).is_err(), "not a directory");
}

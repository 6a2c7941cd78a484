//! Key files: written by the dealer, consumed by both parties through
//! [`KeyFileSource`] in a real two-party run; and every way a key file can
//! be wrong gives its own typed error: truncated, bit-flipped, the other
//! party's, another plan's, another session's, too short for the plan, and
//! reused after a crash (journal).

use ariann_dealer::auth::{DealerPublicKey, DealerSigningKey, KeyTrust, LinkSecret};
use ariann_dealer::keyfile::{
    CHUNK_OVERHEAD, Expected, HEADER_LEN, KeyFileError, KeyFileHeader, KeyFileSource,
    KeyFileWriter, SessionId, TRAILER_LEN, VERSION, journal_path, key_file_len, key_file_name,
    verify_file, write_key_files,
};
use ariann_dealer::ledger::Ledger;
use ariann_dealer::plan_json::{from_json, to_json};
use ariann_dealer::{GateDesc, Plan};
use ariann_fss::Party;
use ariann_mpc::gates::beaver::Bilinear;
use ariann_mpc::{MemTransport, MpcError, Session, SourceFault};
use ariann_ring::{Ring, RingTensor};
use std::path::{Path, PathBuf};

const B: usize = 2;
const I: usize = 4;
const O: usize = 3;

/// `relu(trunc(x W))` then argmax: 4 gates.
fn plan(bits: u32) -> Plan {
    let (f, kt) = if bits == 64 { (16, 48) } else { (8, 24) };
    Plan::new(
        bits,
        vec![
            GateDesc::Triple(Bilinear::MatMul { m: B, k: I, n: O }),
            GateDesc::Trunc { m: B * O, f, k: kt },
            GateDesc::Relu { m: B * O, k: 24 },
            GateDesc::Argmax {
                rows: B,
                n: O,
                k: 24,
            },
        ],
    )
}

fn frac(bits: u32) -> u32 {
    if bits == 64 { 16 } else { 8 }
}

/// Cleartext inputs (fixed point) and the expected relu output.
fn data<R: Ring>() -> (Vec<R>, Vec<R>, Vec<R>) {
    let f = frac(R::BITS);
    let x: Vec<i64> = (0..B * I).map(|i| (i as i64 - 3) << f).collect();
    let w: Vec<i64> = (0..I * O)
        .map(|i| ((i as i64 % 5) - 2) << (f - 2))
        .collect();
    let mut y = vec![0i64; B * O];
    for r in 0..B {
        for c in 0..O {
            let s: i64 = (0..I).map(|k| x[r * I + k] * w[k * O + c]).sum();
            y[r * O + c] = (s >> f).max(0);
        }
    }
    let enc = |v: &[i64]| v.iter().map(|a| R::from_i64(*a)).collect::<Vec<R>>();
    (enc(&x), enc(&w), enc(&y))
}

/// One party's job: the 4 gates (or the first `gates` of them).
fn job<R: Ring>(
    src: &mut KeyFileSource<R>,
    t: &mut MemTransport,
    x: &[R],
    w: &[R],
    gates: usize,
) -> Result<Vec<R>, MpcError> {
    let bits = R::BITS;
    let (f, kt) = if bits == 64 { (16, 48) } else { (8, 24) };
    let mut s = Session::new(t, src);
    let map = Bilinear::MatMul { m: B, k: I, n: O };
    let xt = RingTensor::from_vec(&[B, I], x.to_vec())?;
    let wt = RingTensor::from_vec(&[I, O], w.to_vec())?;
    let z = s.bilinear(map, &xt, &wt)?;
    if gates == 1 {
        return Ok(z.as_slice().to_vec());
    }
    let z = s.truncate(z.as_slice(), f, kt)?;
    let r = s.relu(&z, 24)?.relu;
    let a = s.argmax(&r, B, O, 24)?;
    Ok([r, a].concat())
}

/// Party 0 holds `x` and `w` (public-share style: party 1's shares are 0);
/// each party runs on its own thread and drops its transport when done, so
/// a failing party makes the other stop at once.
fn run<R: Ring>(
    mut s0: KeyFileSource<R>,
    mut s1: KeyFileSource<R>,
    gates: usize,
) -> (Result<Vec<R>, MpcError>, Result<Vec<R>, MpcError>) {
    let (x, w, _) = data::<R>();
    let zx = vec![R::ZERO; x.len()];
    let zw = vec![R::ZERO; w.len()];
    let (t0, t1) = MemTransport::pair();
    std::thread::scope(|sc| {
        let h0 = sc.spawn(|| {
            let mut t0 = t0;
            job(&mut s0, &mut t0, &x, &w, gates)
        });
        let h1 = sc.spawn(|| {
            let mut t1 = t1;
            job(&mut s1, &mut t1, &zx, &zw, gates)
        });
        (
            h0.join().expect("party 0 thread"),
            h1.join().expect("party 1 thread"),
        )
    })
}

fn expect(party: Party, p: &Plan) -> Expected {
    Expected {
        party,
        plan_hash: p.hash(),
        session: None,
        bundles: p.gates.len() as u64,
    }
}

/// The dealer of these tests (a fixed seed).
fn dealer_key() -> DealerSigningKey {
    DealerSigningKey::from_seed(&[0x42; 32])
}

fn pinned() -> DealerPublicKey {
    dealer_key().public()
}

/// The host's ledger for a key file: `state/` next to it.
fn ledger_of(path: &Path) -> Ledger {
    let dir = path.parent().expect("key files live in a directory");
    Ledger::open(&dir.join("state")).expect("ledger")
}

fn trust(path: &Path) -> KeyTrust {
    KeyTrust {
        dealer: pinned(),
        ledger: ledger_of(path),
    }
}

fn open_file<R: Ring>(path: &Path, e: &Expected) -> Result<KeyFileSource<R>, KeyFileError> {
    KeyFileSource::<R>::open(path, e, &trust(path))
}

struct Keys {
    _dir: tempfile::TempDir,
    paths: [PathBuf; 2],
    session: SessionId,
}

fn write<R: Ring>(p: &Plan) -> Keys {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut calls = 0;
    let s = write_key_files::<R>(p, dir.path(), &dealer_key(), |_, _| calls += 1).expect("write");
    assert_eq!(calls, p.gates.len());
    assert_eq!(s.bundles, p.gates.len() as u64);
    let predicted = key_file_len(&p.gates, p.ring_bits).expect("valid plan");
    for (i, path) in s.paths.iter().enumerate() {
        assert_eq!(std::fs::metadata(path).expect("file").len(), s.bytes[i]);
        assert_eq!(
            s.bytes[i], predicted,
            "key file size predicted from the plan"
        );
    }
    Keys {
        paths: s.paths.clone(),
        session: s.session,
        _dir: dir,
    }
}

fn open<R: Ring>(path: &Path, party: Party, p: &Plan) -> KeyFileSource<R> {
    open_file::<R>(path, &expect(party, p)).expect("open")
}

fn roundtrip<R: Ring>() {
    let p = plan(R::BITS);
    let k = write::<R>(&p);
    let (s0, s1) = (
        open::<R>(&k.paths[0], Party::P0, &p),
        open::<R>(&k.paths[1], Party::P1, &p),
    );
    assert_eq!(s0.header().session, k.session);
    assert_eq!(s1.header().session, k.session);
    let (o0, o1) = run(s0, s1, 4);
    let (o0, o1) = (o0.expect("party 0"), o1.expect("party 1"));
    let out: Vec<R> = o0.iter().zip(&o1).map(|(a, b)| a.wadd(*b)).collect();
    let (_, _, want) = data::<R>();
    assert_eq!(&out[..B * O], &want[..], "ReLU output on Z_2^{}", R::BITS);
    // One-hot argmax rows.
    for r in 0..B {
        let ones = out[B * O + r * O..B * O + (r + 1) * O]
            .iter()
            .filter(|v| **v == R::ONE)
            .count();
        assert_eq!(ones, 1);
    }
}

#[test]
fn key_files_run_a_job_on_both_rings() {
    roundtrip::<u64>();
    roundtrip::<u32>();
}

#[test]
fn file_names_and_header() {
    let p = plan(64);
    let k = write::<u64>(&p);
    assert!(k.paths[0].ends_with(key_file_name(Party::P0)));
    assert!(k.paths[1].ends_with("party1.keys"));
    let h = KeyFileHeader::read(&k.paths[1], &pinned()).expect("header");
    assert_eq!(h.party, Party::P1);
    assert_eq!(h.plan_hash, p.hash());
    assert_eq!(h.count, 4);
    assert_eq!(h.ring_bits, 64);
    // The link secret is the same in both files, and signed.
    let h0 = KeyFileHeader::read(&k.paths[0], &pinned()).expect("header");
    assert_eq!(h0.link_secret, h.link_secret);
    assert_eq!(h.dealer, pinned());
    assert_eq!(format!("{:?}", h.link_secret), "LinkSecret(..)");
    // No temporary file is left behind; the files are private.
    let names: Vec<_> = std::fs::read_dir(k._dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    #[cfg(unix)]
    for path in &k.paths {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", path.display());
    }
}

fn chunk_offsets(path: &Path) -> Vec<(u64, u64)> {
    // (start of chunk, bundle length) for every chunk.
    let bytes = std::fs::read(path).expect("read");
    let h = KeyFileHeader::read(path, &pinned()).expect("header");
    let mut at = HEADER_LEN as u64;
    let mut out = Vec::new();
    for _ in 0..h.count {
        let mut l = [0u8; 8];
        l.copy_from_slice(&bytes[at as usize..at as usize + 8]);
        let n = u64::from_le_bytes(l);
        out.push((at, n));
        at += n + CHUNK_OVERHEAD as u64;
    }
    assert_eq!(at + TRAILER_LEN as u64, bytes.len() as u64);
    out
}

fn truncate(path: &Path, len: u64) {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open");
    f.set_len(len).expect("truncate");
}

fn flip(path: &Path, at: u64) {
    let mut b = std::fs::read(path).expect("read");
    b[at as usize] ^= 0x10;
    std::fs::write(path, b).expect("write");
}

#[test]
fn truncated_files_are_refused() {
    let p = plan(64);
    // Inside the header: at open.
    let k = write::<u64>(&p);
    truncate(&k.paths[0], 50);
    assert!(matches!(
        open_file::<u64>(&k.paths[0], &expect(Party::P0, &p)),
        Err(KeyFileError::TruncatedHeader { len: 50, .. })
    ));
    // Inside chunk 2: when bundle 2 is needed.
    let k = write::<u64>(&p);
    let offs = chunk_offsets(&k.paths[0]);
    truncate(&k.paths[0], offs[2].0 + 20);
    let (o0, o1) = run(
        open::<u64>(&k.paths[0], Party::P0, &p),
        open::<u64>(&k.paths[1], Party::P1, &p),
        4,
    );
    assert_eq!(
        o0.expect_err("party 0 must fail"),
        MpcError::KeySource {
            index: 2,
            fault: SourceFault::Truncated
        }
    );
    assert!(o1.is_err(), "party 1 loses its peer");
    // Exactly at a chunk boundary.
    let k = write::<u64>(&p);
    let offs = chunk_offsets(&k.paths[0]);
    truncate(&k.paths[0], offs[3].0);
    let (o0, _) = run(
        open::<u64>(&k.paths[0], Party::P0, &p),
        open::<u64>(&k.paths[1], Party::P1, &p),
        4,
    );
    assert_eq!(
        o0.expect_err("party 0 must fail"),
        MpcError::KeySource {
            index: 3,
            fault: SourceFault::Truncated
        }
    );
    // Only the trailer missing: refused before the last bundle is handed out.
    let k = write::<u64>(&p);
    let len = std::fs::metadata(&k.paths[1]).expect("meta").len();
    truncate(&k.paths[1], len - 10);
    let (_, o1) = run(
        open::<u64>(&k.paths[0], Party::P0, &p),
        open::<u64>(&k.paths[1], Party::P1, &p),
        4,
    );
    match o1.expect_err("party 1 must fail") {
        MpcError::KeySource {
            index: 3,
            fault: SourceFault::Trailer(_),
        } => {}
        e => panic!("unexpected {e:?}"),
    }
    // Trailing garbage is refused too.
    let k = write::<u64>(&p);
    let mut b = std::fs::read(&k.paths[1]).expect("read");
    b.push(0);
    std::fs::write(&k.paths[1], b).expect("write");
    let (_, o1) = run(
        open::<u64>(&k.paths[0], Party::P0, &p),
        open::<u64>(&k.paths[1], Party::P1, &p),
        4,
    );
    assert!(matches!(
        o1,
        Err(MpcError::KeySource {
            index: 3,
            fault: SourceFault::Trailer(_)
        })
    ));
}

#[test]
fn bit_flips_are_refused() {
    let p = plan(64);
    // In a bundle's bytes (a raw share value in the middle of chunk 1).
    let k = write::<u64>(&p);
    let offs = chunk_offsets(&k.paths[0]);
    flip(&k.paths[0], offs[1].0 + 8 + offs[1].1 / 2);
    let (o0, _) = run(
        open::<u64>(&k.paths[0], Party::P0, &p),
        open::<u64>(&k.paths[1], Party::P1, &p),
        4,
    );
    assert_eq!(
        o0.expect_err("party 0 must fail"),
        MpcError::KeySource {
            index: 1,
            fault: SourceFault::Checksum
        }
    );
    // In a digest.
    let k = write::<u64>(&p);
    let offs = chunk_offsets(&k.paths[1]);
    flip(&k.paths[1], offs[0].0 + 8 + offs[0].1 + 5);
    let (_, o1) = run(
        open::<u64>(&k.paths[0], Party::P0, &p),
        open::<u64>(&k.paths[1], Party::P1, &p),
        4,
    );
    assert_eq!(
        o1.expect_err("party 1 must fail"),
        MpcError::KeySource {
            index: 0,
            fault: SourceFault::Checksum
        }
    );
    // In a chunk's signature: refused before its bundle is decoded.
    let k = write::<u64>(&p);
    let offs = chunk_offsets(&k.paths[0]);
    flip(&k.paths[0], offs[2].0 + 8 + offs[2].1 + 32 + 10);
    let (o0, _) = run(
        open::<u64>(&k.paths[0], Party::P0, &p),
        open::<u64>(&k.paths[1], Party::P1, &p),
        4,
    );
    match o0.expect_err("party 0 must fail") {
        MpcError::KeySource {
            index: 2,
            fault: SourceFault::Signature(_),
        } => {}
        e => panic!("unexpected {e:?}"),
    }
    // In the trailer's signature: refused before the last bundle.
    let k = write::<u64>(&p);
    let len = std::fs::metadata(&k.paths[1]).expect("meta").len();
    flip(&k.paths[1], len - 3);
    let (_, o1) = run(
        open::<u64>(&k.paths[0], Party::P0, &p),
        open::<u64>(&k.paths[1], Party::P1, &p),
        4,
    );
    assert!(
        matches!(
            o1,
            Err(MpcError::KeySource {
                index: 3,
                fault: SourceFault::Signature(_)
            })
        ),
        "{o1:?}"
    );
    // In the header (every field, the link secret, the key, the
    // signature): at open.
    for at in [0u64, 5, 6, 7, 30, 50, 60, 70, 100, 140, 170, 191] {
        let k = write::<u64>(&p);
        flip(&k.paths[0], at);
        let e = open_file::<u64>(&k.paths[0], &expect(Party::P0, &p)).expect_err("header flip");
        assert!(
            matches!(
                e,
                KeyFileError::BadMagic { .. }
                    | KeyFileError::UnsupportedVersion { .. }
                    | KeyFileError::HeaderSignature { .. }
                    | KeyFileError::WrongDealer { .. }
            ),
            "flip at {at}: {e}"
        );
        assert!(
            !journal_path(&k.paths[0]).exists(),
            "nothing is touched before the header verifies"
        );
    }
}

#[test]
fn the_other_partys_file_is_refused() {
    let p = plan(64);
    let k = write::<u64>(&p);
    let e = open_file::<u64>(&k.paths[1], &expect(Party::P0, &p)).expect_err("swap");
    assert!(matches!(
        e,
        KeyFileError::WrongParty {
            file: 1,
            expected: 0
        }
    ));
    assert!(e.to_string().contains("party 1"), "{e}");
}

#[test]
fn keys_of_another_plan_or_ring_are_refused() {
    let p = plan(64);
    let k = write::<u64>(&p);
    let mut other = plan(64);
    other.gates[2] = GateDesc::Relu { m: B * O, k: 32 };
    let e = open_file::<u64>(&k.paths[0], &expect(Party::P0, &other)).expect_err("other plan");
    assert!(matches!(e, KeyFileError::PlanMismatch { .. }), "{e}");
    assert!(e.to_string().contains("another plan"), "{e}");
    let e = open_file::<u32>(&k.paths[0], &expect(Party::P0, &p)).expect_err("ring");
    assert!(matches!(
        e,
        KeyFileError::RingMismatch {
            file: 64,
            expected: 32
        }
    ));
}

#[test]
fn keys_of_another_session_are_refused() {
    let p = plan(64);
    let a = write::<u64>(&p);
    let b = write::<u64>(&p);
    assert_ne!(a.session, b.session);
    // Pinned session: refused at open.
    let e = open_file::<u64>(
        &b.paths[0],
        &Expected {
            session: Some(a.session),
            ..expect(Party::P0, &p)
        },
    )
    .expect_err("other session");
    assert!(matches!(e, KeyFileError::SessionMismatch { .. }), "{e}");
    // Pinned and right: accepted.
    open_file::<u64>(
        &a.paths[0],
        &Expected {
            session: Some(a.session),
            ..expect(Party::P0, &p)
        },
    )
    .expect("same session");
    // A chunk of session b spliced into a's file (same sizes: same plan).
    let oa = chunk_offsets(&a.paths[0]);
    let ob = chunk_offsets(&b.paths[0]);
    assert_eq!(oa[1].1, ob[1].1);
    let mut fa = std::fs::read(&a.paths[0]).expect("read");
    let fb = std::fs::read(&b.paths[0]).expect("read");
    let (s, n) = (oa[1].0 as usize, (oa[1].1 + CHUNK_OVERHEAD as u64) as usize);
    fa[s..s + n].copy_from_slice(&fb[s..s + n]);
    std::fs::write(&a.paths[0], fa).expect("write");
    let (o0, _) = run(
        open::<u64>(&a.paths[0], Party::P0, &p),
        open::<u64>(&a.paths[1], Party::P1, &p),
        4,
    );
    assert_eq!(
        o0.expect_err("spliced chunk"),
        MpcError::KeySource {
            index: 1,
            fault: SourceFault::Checksum
        }
    );
}

#[test]
fn a_bundle_count_other_than_the_plans_is_refused_at_open() {
    let p = plan(64);
    let dir = tempfile::tempdir().expect("tempdir");
    let session = SessionId::random().expect("rng");
    // Files of the right plan holding only its first 2 bundles.
    let mut paths = Vec::new();
    let mut ws: Vec<KeyFileWriter> = [Party::P0, Party::P1]
        .into_iter()
        .map(|party| {
            let path = dir.path().join(key_file_name(party));
            paths.push(path.clone());
            KeyFileWriter::create(
                &path,
                KeyFileHeader {
                    ring_bits: 64,
                    party,
                    plan_hash: p.hash(),
                    session,
                    count: 2,
                    link_secret: LinkSecret::from_bytes([9; 32]),
                    dealer: pinned(),
                },
                &dealer_key(),
            )
            .expect("create")
        })
        .collect();
    for pair in p.bundles_from_seed::<u64>([7; 32]).expect("ring").take(2) {
        let (a, b) = pair.expect("gate");
        ws[0].write_bundle(&a).expect("write");
        ws[1].write_bundle(&b).expect("write");
    }
    for w in ws {
        w.finish().expect("finish");
    }
    // Signed by the right dealer, for the right plan, but 2 bundles where
    // the plan has 4 gates: refused before anything is used.
    for (i, path) in paths.iter().enumerate() {
        let party = Party::from_index(i as u8).expect("party");
        let e = open_file::<u64>(path, &expect(party, &p)).expect_err("short file");
        assert!(
            matches!(
                e,
                KeyFileError::BundleCount {
                    file: 2,
                    expected: 4
                }
            ),
            "{e}"
        );
        assert!(
            verify_file(path, &pinned()).is_ok(),
            "the file itself is intact"
        );
    }
    // Opened as a 2-gate job, the source runs dry at gate 2.
    let two = Expected {
        bundles: 2,
        ..expect(Party::P0, &p)
    };
    let two1 = Expected {
        party: Party::P1,
        ..two
    };
    let (o0, o1) = run(
        open_file::<u64>(&paths[0], &two).expect("open"),
        open_file::<u64>(&paths[1], &two1).expect("open"),
        4,
    );
    assert_eq!(o0, Err(MpcError::KeysExhausted { index: 2 }));
    assert_eq!(o1, Err(MpcError::KeysExhausted { index: 2 }));
}

#[test]
fn writer_refuses_wrong_bundles_and_counts() {
    let p = plan(64);
    let dir = tempfile::tempdir().expect("tempdir");
    let header = KeyFileHeader {
        ring_bits: 64,
        party: Party::P0,
        plan_hash: p.hash(),
        session: SessionId([1; 16]),
        count: 4,
        link_secret: LinkSecret::from_bytes([9; 32]),
        dealer: pinned(),
    };
    let path = dir.path().join("x.keys");
    let mut w = KeyFileWriter::create(&path, header, &dealer_key()).expect("create");
    let mut it = p.bundles_from_seed::<u64>([3; 32]).expect("ring");
    let (a, b) = it.next().expect("one").expect("gate");
    assert!(matches!(
        w.write_bundle(&b),
        Err(KeyFileError::BundleMismatch(_))
    ));
    w.write_bundle(&a).expect("party 0, index 0");
    assert!(matches!(
        w.write_bundle(&a),
        Err(KeyFileError::BundleMismatch(_))
    ));
    assert!(matches!(
        w.finish(),
        Err(KeyFileError::CountMismatch {
            announced: 4,
            written: 1
        })
    ));
    // An unfinished file never appears under its name, and leaves nothing.
    assert!(!path.exists());
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
}

#[test]
fn no_reuse_after_a_crash() {
    let p = plan(64);
    let k = write::<u64>(&p);
    // Opening and closing without consuming anything is fine.
    drop(open::<u64>(&k.paths[0], Party::P0, &p));
    drop(open::<u64>(&k.paths[1], Party::P1, &p));
    // A job that stops after its first gate (a crash, as far as the key
    // files can tell).
    let (o0, o1) = run(
        open::<u64>(&k.paths[0], Party::P0, &p),
        open::<u64>(&k.paths[1], Party::P1, &p),
        1,
    );
    o0.expect("gate 0");
    o1.expect("gate 0");
    for (i, path) in k.paths.iter().enumerate() {
        assert!(journal_path(path).exists());
        let e = open_file::<u64>(path, &expect(Party::from_index(i as u8).expect("p"), &p))
            .expect_err("reuse");
        match &e {
            KeyFileError::AlreadyUsed {
                session, consumed, ..
            } => {
                assert_eq!(*session, k.session);
                assert_eq!(*consumed, 1);
            }
            e => panic!("unexpected {e}"),
        }
        let msg = e.to_string();
        assert!(
            msg.contains("already used") && msg.contains("fresh keys"),
            "{msg}"
        );
    }
    // A complete job: every bundle recorded.
    let k = write::<u64>(&p);
    let (o0, o1) = run(
        open::<u64>(&k.paths[0], Party::P0, &p),
        open::<u64>(&k.paths[1], Party::P1, &p),
        4,
    );
    o0.expect("job");
    o1.expect("job");
    assert!(matches!(
        open_file::<u64>(&k.paths[0], &expect(Party::P0, &p)),
        Err(KeyFileError::AlreadyUsed { consumed: 4, .. })
    ));
    // The dealer writing fresh keys to the same place resets the journal.
    let fresh =
        write_key_files::<u64>(&p, k._dir.path(), &dealer_key(), |_, _| {}).expect("rewrite");
    assert_ne!(fresh.session, k.session);
    assert!(!journal_path(&k.paths[0]).exists());
    drop(open::<u64>(&k.paths[0], Party::P0, &p));
}

#[test]
fn one_source_at_a_time_and_corrupt_journals_refused() {
    let p = plan(64);
    let k = write::<u64>(&p);
    let first = open::<u64>(&k.paths[0], Party::P0, &p);
    assert!(matches!(
        open_file::<u64>(&k.paths[0], &expect(Party::P0, &p)),
        Err(KeyFileError::InUse { .. })
    ));
    drop(first);
    std::fs::write(journal_path(&k.paths[0]), b"garbage").expect("write");
    assert!(matches!(
        open_file::<u64>(&k.paths[0], &expect(Party::P0, &p)),
        Err(KeyFileError::JournalCorrupt { .. })
    ));
}

#[test]
fn json_plans_roundtrip() {
    let mut p = plan(64);
    p.gates.push(GateDesc::MaxPool {
        shape: ariann_mpc::gates::pool::PoolShape {
            n: 1,
            c: 2,
            h: 4,
            w: 4,
            k: 2,
            stride: 2,
            pad: 0,
        },
        k: 24,
    });
    p.gates.push(GateDesc::EqZero { m: 3, k: 8 });
    let j = to_json(&p);
    let q = from_json(&j).expect("parse");
    assert_eq!(p, q);
    assert_eq!(p.hash(), q.hash());
    assert!(from_json("{}").is_err());
    assert!(from_json("[]").is_err());
    assert!(from_json(&j.replace("ariann-plan/2", "ariann-plan/9")).is_err());
    assert!(from_json(&j.replace("\"m\"", "\"mm\"")).is_err());
    // Unknown fields are refused at every level.
    assert!(from_json(&j.replace("\"ring_bits\"", "\"x\": 1, \"ring_bits\"")).is_err());
    assert!(from_json(&j.replace("\"stride\"", "\"x\": 1, \"stride\"")).is_err());
    assert!(from_json(&j.replace("\"map\"", "\"x\": 1, \"map\"")).is_err());
    assert!(from_json(&j.replace("\"rows\"", "\"x\": 1, \"rows\"")).is_err());
    assert!(from_json(&j.replace("\"ring_bits\": 64", "\"ring_bits\": 48")).is_err());
}

#[test]
fn json_plans_have_the_documented_shape() {
    let j = r#"{
      "format": "ariann-plan/2",
      "ring_bits": 64,
      "gates": [
        {"gate": "triple", "map": "matmul", "m": 2, "k": 784, "n": 128},
        {"gate": "trunc", "m": 256, "f": 16, "k": 56},
        {"gate": "relu", "m": 256, "k": 32},
        {"gate": "max_pool", "shape": {"n": 1, "c": 6, "h": 24, "w": 24, "k": 2, "stride": 2, "pad": 0}, "k": 32}
      ]
    }"#;
    let p = from_json(j).expect("the module docs' example parses");
    assert_eq!(p.gates.len(), 4);
    assert_eq!(
        p.gates[0],
        GateDesc::Triple(Bilinear::MatMul {
            m: 2,
            k: 784,
            n: 128
        })
    );
    assert_eq!(from_json(&to_json(&p)).expect("roundtrip"), p);
}

#[test]
fn json_plans_of_format_1_ask_to_regenerate() {
    let v1 = r#"{
      "format": "ariann-plan/1",
      "ring_bits": 64,
      "gates": [
        {"gate": "matmul", "m": 2, "k": 784, "n": 128},
        {"gate": "relu", "m": 256, "k": 32}
      ]
    }"#;
    let e = from_json(v1).expect_err("format 1").to_string();
    assert!(e.contains("ariann-plan/1"), "{e}");
    assert!(e.contains("older ariann-dealer"), "{e}");
    assert!(e.contains("regenerate the plan"), "{e}");
}

#[test]
fn key_files_of_format_1_ask_to_regenerate() {
    assert_eq!(VERSION, 4);
    let p = plan(64);
    let k = write::<u64>(&p);
    // The version field (bytes 4..6) is checked before the header checksum.
    // Version 3 (bundles whose FSS keys carried their own SHA-256) as well.
    for old in [1u16, 3] {
        let mut b = std::fs::read(&k.paths[0]).expect("read");
        b[4..6].copy_from_slice(&old.to_le_bytes());
        let path = k.paths[0].with_extension(format!("v{old}"));
        std::fs::write(&path, &b).expect("write");
        let e = open_file::<u64>(&path, &expect(Party::P0, &p)).expect_err("old version");
        assert!(
            matches!(
                e,
                KeyFileError::UnsupportedVersion {
                    found,
                    supported: 4
                } if found == old
            ),
            "{e}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains(&format!(
                "key file format v{old} was written by an older ariann-dealer"
            )),
            "{msg}"
        );
        assert!(
            msg.contains("regenerate the keys with this version"),
            "{msg}"
        );
        let e = KeyFileHeader::read(&path, &pinned()).expect_err("old version");
        assert!(e.to_string().contains("regenerate"), "{e}");
    }
    // A newer version is refused too, with another message.
    let mut b = std::fs::read(&k.paths[0]).expect("read");
    b[4..6].copy_from_slice(&5u16.to_le_bytes());
    std::fs::write(&k.paths[0], &b).expect("write");
    let e = KeyFileHeader::read(&k.paths[0], &pinned()).expect_err("v5");
    assert!(e.to_string().contains("newer ariann-dealer"), "{e}");
}

#[test]
fn verify_checks_whole_files_without_using_them() {
    let p = plan(64);
    let k = write::<u64>(&p);
    let h = verify_file(&k.paths[0], &pinned()).expect("intact");
    assert_eq!((h.party, h.count), (Party::P0, 4));
    assert!(!journal_path(&k.paths[0]).exists());
    let offs = chunk_offsets(&k.paths[0]);
    flip(&k.paths[0], offs[2].0 + 8 + 3);
    assert!(matches!(
        verify_file(&k.paths[0], &pinned()),
        Err(KeyFileError::Chunk {
            index: 2,
            fault: SourceFault::Checksum
        })
    ));
    let len = std::fs::metadata(&k.paths[1]).expect("meta").len();
    truncate(&k.paths[1], len - 1);
    assert!(matches!(
        verify_file(&k.paths[1], &pinned()),
        Err(KeyFileError::Chunk {
            index: 3,
            fault: SourceFault::Trailer(_)
        })
    ));
}

/// Hands out every bundle of the plan (no transport needed).
fn drain(src: &mut KeyFileSource<u64>, party: Party, p: &Plan) -> Result<(), MpcError> {
    use ariann_mpc::{BundleTag, PreprocessingSource};
    for (i, gate) in p.gates.iter().enumerate() {
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
fn every_sampled_flip_or_cut_is_caught() {
    let p = Plan::new(
        64,
        vec![
            GateDesc::Relu { m: 3, k: 16 },
            GateDesc::Triple(Bilinear::Mul { len: 4 }),
            GateDesc::Trunc { m: 2, f: 4, k: 16 },
        ],
    );
    let k = write::<u64>(&p);
    let good = std::fs::read(&k.paths[0]).expect("read");
    {
        let mut s = open::<u64>(&k.paths[0], Party::P0, &p);
        drain(&mut s, Party::P0, &p).expect("intact file");
    }
    let step = (good.len() / 150).max(1);
    let mut caught = 0;
    for at in (0..good.len()).step_by(step) {
        for cut in [false, true] {
            let mut bad = good.clone();
            if cut {
                bad.truncate(at);
            } else {
                bad[at] ^= 0x04;
            }
            std::fs::write(&k.paths[0], &bad).expect("write");
            let _ = std::fs::remove_file(journal_path(&k.paths[0]));
            // A fresh ledger too: the refusal must come from the damage.
            let _ = std::fs::remove_dir_all(k._dir.path().join("state"));
            let r = open_file::<u64>(&k.paths[0], &expect(Party::P0, &p))
                .map_err(|e| e.to_string())
                .and_then(|mut s| drain(&mut s, Party::P0, &p).map_err(|e| e.to_string()));
            let what = if cut { "cut" } else { "flip" };
            match r {
                Ok(()) => panic!("{what} at byte {at} not caught"),
                Err(e) => assert!(!e.contains("already used"), "{what} at {at}: {e}"),
            }
            caught += 1;
        }
    }
    assert!(caught >= 300);
}

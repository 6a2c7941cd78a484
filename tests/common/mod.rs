//! What the real-data tests share: the shared data folder and gunzip.
#![allow(dead_code, unreachable_pub)]

use std::io::Read;
use std::path::{Path, PathBuf};

/// `ARIANN_SHARED_DATA`, or `None` (with a message: the test is skipped).
pub fn data_root(what: &str) -> Option<PathBuf> {
    match std::env::var_os("ARIANN_SHARED_DATA") {
        None => {
            eprintln!("skipped: ARIANN_SHARED_DATA is not set ({what})");
            None
        }
        Some(root) => Some(PathBuf::from(root)),
    }
}

/// The decompressed bytes of a gzip file (panics with the path on error).
pub fn gunzip(path: &Path) -> Vec<u8> {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(f)
        .read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    out
}

//! The binaries' heap settings (`ariann_net::memory`): freed memory stays
//! resident for reuse, and `release_free_memory` gives it back. Its own
//! `main` (no test harness): the settings must come before any other
//! thread exists, as in the binaries (a thread that allocated before keeps
//! its own arena, whose large blocks glibc still maps afresh).

use ariann_net::memory::{AllocTuning, keep_freed_memory, release_free_memory};

/// Resident set size in bytes, from /proc/self/statm (Linux).
fn rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn main() {
    freed_memory_is_kept_and_released_on_request();
    println!("test memory::freed_memory_is_kept_and_released_on_request ... ok");
}

fn freed_memory_is_kept_and_released_on_request() {
    let tuning = keep_freed_memory();
    if tuning != AllocTuning::Applied {
        println!("skipped: allocator settings not applied here ({tuning:?})");
        return;
    }
    let Some(base) = rss() else {
        println!("skipped: no /proc/self/statm");
        return;
    };
    const MB: usize = 1 << 20;
    // 200 MiB, above glibc's 32 MiB mmap limit, touched page by page.
    let mut v = vec![1u8; 200 * MB];
    v[200 * MB - 1] = 2;
    assert_eq!(std::hint::black_box(&v)[200 * MB - 1], 2);
    let full = rss().expect("statm");
    assert!(full >= base + 190 * MB as u64, "{full} vs {base}");
    drop(v);
    // Kept: freed, but below the trim threshold, so still resident.
    let kept = rss().expect("statm");
    assert!(
        kept >= base + 190 * MB as u64,
        "freed memory was returned: {kept} vs {base}"
    );
    // A second block reuses it: no growth. (Slightly smaller: the small
    // allocations made since, such as reading statm, may have been carved
    // from the freed block.)
    let w = vec![3u8; 180 * MB];
    assert_eq!(std::hint::black_box(&w)[0], 3);
    let again = rss().expect("statm");
    assert!(again < kept + 20 * MB as u64, "{again} vs {kept}");
    drop(w);
    assert!(release_free_memory());
    let released = rss().expect("statm");
    assert!(released + 150 * (MB as u64) < kept, "{released} vs {kept}");
}

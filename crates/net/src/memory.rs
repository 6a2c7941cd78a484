//! Process-wide allocator settings for the party and dealer binaries.
//!
//! A job moves its keys through buffers of tens to hundreds of megabytes
//! (a ResNet-20 bundle of 2^18 comparisons is 140 MB per party): the dealer
//! generates and encodes one, the party receives and decodes one, and
//! each is freed a moment later. glibc's `malloc` serves every block above
//! 32 MiB with a fresh `mmap` and returns it with `munmap` on free, so each
//! bundle's pages are faulted in and zeroed by the kernel again: in
//! `scripts/zoo-across-processes.sh resnet20 32 small-key 24` that was
//! about 4 million page faults and 15-17 s of kernel time of a 34 CPU-s
//! job.
//!
//! [`keep_freed_memory`] tells glibc to serve every block from its heap
//! (`M_MMAP_MAX = 0`), from one arena (`M_ARENA_MAX = 1`: the other
//! arenas' heaps are 64 MiB and would fall back to `mmap` for a bundle),
//! and to give the heap's top back to the system only past
//! [`TRIM_THRESHOLD`]: a freed bundle's pages are reused by the next one
//! without faults. The cost is memory kept by the process after its peak
//! (up to the trim threshold above what is in use) and possible
//! fragmentation; key material is still wiped when it is dropped, so reused
//! memory holds no old keys.
//!
//! Only on Linux with glibc (the `libc` crate, the standard binding of the
//! C library, is a dependency there only); elsewhere it does nothing. A
//! user who wants glibc's defaults (or their own `MALLOC_*` variables) sets
//! `ARIANN_MALLOC=system`. Tested in `tests/memory.rs` (its own `main`, as
//! the settings need): a freed 200 MiB block stays resident and is reused,
//! and [`release_free_memory`] returns it.

/// Free memory at the top of the heap kept for reuse instead of returned
/// to the system: 512 MiB (a few of the largest bundles).
pub const TRIM_THRESHOLD: usize = 512 << 20;

/// What [`keep_freed_memory`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocTuning {
    /// glibc now serves every block from one heap and keeps freed memory.
    Applied,
    /// `ARIANN_MALLOC=system` asked for the allocator's defaults.
    Disabled,
    /// Not Linux with glibc: nothing to do.
    Unsupported,
    /// glibc refused a setting (the others may have been applied).
    Refused,
}

/// Sets the allocator up for large, short-lived key buffers (see the module
/// docs). Call it first thing in `main`, before any thread starts: the
/// arena limit applies to arenas created afterwards.
pub fn keep_freed_memory() -> AllocTuning {
    if std::env::var_os("ARIANN_MALLOC").is_some_and(|v| v == "system") {
        return AllocTuning::Disabled;
    }
    imp::apply()
}

/// Gives the heap's free pages back to the system (glibc's
/// `malloc_trim(0)`, which also releases free pages inside the heap, not
/// only at its top): for a daemon between jobs, so a finished job's key
/// buffers do not stay resident up to [`TRIM_THRESHOLD`]. Returns whether
/// memory was released; does nothing (`false`) without glibc.
pub fn release_free_memory() -> bool {
    imp::release()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod imp {
    use super::{AllocTuning, TRIM_THRESHOLD};

    pub(super) fn release() -> bool {
        // SAFETY: `malloc_trim` walks the allocator's own free lists under
        // its locks and only returns unused pages to the kernel.
        #[allow(unsafe_code)]
        let r = unsafe { libc::malloc_trim(0) };
        r == 1
    }

    pub(super) fn apply() -> AllocTuning {
        let trim = libc::c_int::try_from(TRIM_THRESHOLD).unwrap_or(libc::c_int::MAX);
        let settings = [
            (libc::M_ARENA_MAX, 1),
            (libc::M_MMAP_MAX, 0),
            (libc::M_TRIM_THRESHOLD, trim),
        ];
        let mut ok = true;
        for (param, value) in settings {
            // SAFETY: `mallopt` only changes glibc's allocator parameters;
            // these three are documented for any value, and the allocator
            // applies them under its own lock.
            #[allow(unsafe_code)]
            let r = unsafe { libc::mallopt(param, value) };
            ok &= r == 1;
        }
        if ok {
            AllocTuning::Applied
        } else {
            AllocTuning::Refused
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod imp {
    use super::AllocTuning;

    pub(super) fn apply() -> AllocTuning {
        AllocTuning::Unsupported
    }

    pub(super) fn release() -> bool {
        false
    }
}

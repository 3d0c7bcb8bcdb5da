//! The binary's only calls into C: glibc malloc's settings.
//!
//! Under the API server's load (many short requests on a few runtime threads, store reads on the
//! blocking pool) glibc's default of up to eight arenas per core lets every thread grow its own
//! heap to its own peak, and freed memory inside a heap is kept: a churn soak whose live heap
//! never passed 34 MiB (heaptrack) held 128 MiB of anonymous memory, and the same soak with one
//! or two arenas and periodic trimming 63–65 MiB. Large blocks (a list response's buffers) stay
//! in the arenas too, once glibc has raised its mmap threshold after the first large free. With
//! 10,000 objects, twenty whole lists and then 500 watches the server held 1.09× its RSS before
//! with one arena, 1.43× with two, 2.04× with four; with the mmap threshold fixed and a trim
//! every few seconds, 0.94× with two or three arenas and still 1.69× with four. Speed does not
//! tell the counts apart: `bench scale`'s k3rs/pre-placed ratio spread over 1.6–2.8 between runs
//! of one binary, for every count (docs/benchmarks.md). So the server uses two arenas (one per
//! core on a 2-vCPU node; one arena serializes every allocation), a fixed mmap threshold, and
//! gives free pages back to the kernel every few seconds. A user's own `MALLOC_ARENA_MAX`,
//! `MALLOC_MMAP_THRESHOLD_` or `GLIBC_TUNABLES` setting wins.
//!
//! Other C libraries (musl) have no arenas and return memory themselves: there these functions
//! do nothing.

/// glibc malloc arenas the server uses (glibc's default: up to eight per core).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MALLOC_ARENAS: libc::c_int = 2;

/// Allocations from this size up get their own mapping, returned to the kernel when freed.
/// glibc starts at the same 128 KiB but raises the threshold to the size of every mapped block
/// freed (up to 32 MiB), after which a list response's buffers stay in the arenas.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MALLOC_MMAP_THRESHOLD: libc::c_int = 128 << 10;

/// Whether the environment already sets the glibc malloc tunable `tunable` (its
/// `MALLOC_*_` variable or `GLIBC_TUNABLES`).
fn set_by_user(variable: &str, tunable: &str) -> bool {
    std::env::var_os(variable).is_some()
        || std::env::var("GLIBC_TUNABLES").is_ok_and(|tunables| tunables.contains(tunable))
}

/// What [`tune_malloc`] set.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MallocTuning {
    /// The arena count is [`MALLOC_ARENAS`].
    pub(crate) arenas: bool,
    /// The mmap threshold is fixed at [`MALLOC_MMAP_THRESHOLD`].
    pub(crate) mmap_threshold: bool,
}

/// Limits glibc malloc to [`MALLOC_ARENAS`] arenas and fixes its mmap threshold, each unless the
/// user set it. Must run before the process starts any thread (later threads would already have
/// their own arenas).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn tune_malloc() -> MallocTuning {
    let mut tuning = MallocTuning::default();
    if !set_by_user("MALLOC_ARENA_MAX", "arena_max") {
        // SAFETY: `mallopt` only changes malloc's tunable parameters; it takes no pointers, and
        // the caller runs it while the process has a single thread.
        tuning.arenas = unsafe { libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS) == 1 };
    }
    if !set_by_user("MALLOC_MMAP_THRESHOLD_", "mmap_threshold") {
        // SAFETY: as above.
        tuning.mmap_threshold =
            unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD) == 1 };
    }
    tuning
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn tune_malloc() -> MallocTuning {
    let _ = set_by_user;
    MallocTuning::default()
}

/// Returns the free pages inside malloc's heaps to the kernel (glibc's `malloc_trim(0)` does this
/// for every arena, not only at the heap's top). Takes the arena lock for a walk of its free
/// lists: call it periodically from a blocking thread, not per request.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn release_free_memory() {
    // SAFETY: `malloc_trim` takes no pointers and is safe to call from any thread at any time;
    // it only releases pages that malloc holds free.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn release_free_memory() {}

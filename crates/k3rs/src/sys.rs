//! The binary's only calls into C: glibc malloc's settings.
//!
//! Under the API server's load (many short requests on a few runtime threads, store reads on the
//! blocking pool) glibc's default of up to eight arenas per core lets every thread grow its own
//! heap to its own peak, and freed memory inside a heap is kept: a churn soak whose live heap
//! never passed 34 MiB (heaptrack) held 128 MiB of anonymous memory, and the same soak with one or
//! two arenas 63–65 MiB (docs/benchmarks.md). One arena is contended, though: 3000 pods on hollow
//! nodes took twice as long as with two. So the server uses two arenas, and gives free pages back
//! to the kernel periodically. A user's own `MALLOC_ARENA_MAX` or `GLIBC_TUNABLES` setting wins.
//!
//! Other C libraries (musl) have no arenas and return memory themselves: there these functions
//! do nothing.

/// glibc malloc arenas the server uses (glibc's default: up to eight per core).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MALLOC_ARENAS: libc::c_int = 2;

/// Whether the environment already chooses glibc malloc's arena count.
fn arena_count_set_by_user() -> bool {
    std::env::var_os("MALLOC_ARENA_MAX").is_some()
        || std::env::var("GLIBC_TUNABLES").is_ok_and(|tunables| tunables.contains("arena_max"))
}

/// Limits glibc malloc to [`MALLOC_ARENAS`] arenas. Must run before the process starts any
/// thread (later threads would already have their own arenas). Returns whether the setting was
/// applied.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn limit_malloc_arenas() -> bool {
    if arena_count_set_by_user() {
        return false;
    }
    // SAFETY: `mallopt` only changes malloc's tunable parameters; it takes no pointers, and the
    // caller runs it while the process has a single thread.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn limit_malloc_arenas() -> bool {
    let _ = arena_count_set_by_user;
    false
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

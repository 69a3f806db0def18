//! The C allocator of a long-running operator: glibc's malloc, which the
//! binary uses on Linux (the image's base is Debian's).
//!
//! Two of glibc's defaults suit short programs, not an operator that lives
//! for months while objects come and go:
//!
//! - Every thread that allocates while another holds an arena gets an arena
//!   of its own, up to eight per core: tokio's workers and its blocking
//!   threads (DNS lookups, file reads) spread the same data over many
//!   arenas, each keeping its own free memory for reuse.
//! - Freed memory goes back to the kernel only from the top of an arena. The
//!   records, statuses and buffers of a wave of deleted objects are freed in
//!   the middle of the heap, between chunks still in use, so the process
//!   keeps the pages of the largest wave it ever worked.
//!
//! [`limit_arenas`] caps the arenas at two, before the async runtime starts
//! its threads; [`release_free_memory`] (`malloc_trim(0)`, which also returns
//! the free pages inside each arena since glibc 2.8) runs after a wave of
//! deletions and every minute (`controller::release_memory`). Both only
//! change when memory goes back to the kernel, never what a pointer holds.
//!
//! This module is the crate's only unsafe code: two calls into the C library
//! with plain integer arguments. On other targets both functions do nothing.
#![allow(unsafe_code)]

/// Arenas glibc's malloc may create: one for the main thread and one for the
/// rest; two cores' worth of threads rarely contend for more.
pub const ARENAS: i32 = 2;

/// Caps glibc's arenas at [`ARENAS`]. Call it before any thread starts
/// (arenas already created stay); whether the setting was taken.
pub fn limit_arenas() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt takes two integers and changes a setting of the
        // allocator under its own lock; it returns 0 on a refused setting.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, ARENAS) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Returns the free memory of every arena to the kernel; whether any was
/// returned. It walks the free chunks under each arena's lock (a few
/// milliseconds for an operator's heap): call it off the async workers.
pub fn release_free_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim takes the padding to keep at the top (none)
        // and only releases pages of free chunks (madvise), under the
        // arenas' locks.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn freed_pages_in_the_middle_of_the_heap_go_back_to_the_kernel() {
        // A wave: many objects, then all but every 64th freed, so that the
        // survivors pin the heap's top and the free memory lies between them.
        let wave: Vec<Vec<u8>> = (0..8_192).map(|_| vec![1u8; 4_000]).collect();
        let survivors: Vec<Vec<u8>> = wave.into_iter().step_by(64).collect();
        assert!(
            release_free_memory(),
            "malloc_trim found nothing to return after freeing ~32 MB in the middle of the heap"
        );
        assert_eq!(survivors.len(), 128);
        assert!(survivors.iter().all(|s| s.iter().all(|b| *b == 1)));
    }
}

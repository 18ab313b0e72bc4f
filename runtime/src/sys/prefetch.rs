//! Cache hints: the hub asks the CPU to start loading memory a coroutine's
//! next resume will touch (its saved stack, its task entry, its join state)
//! while the coroutine before it runs, so that the misses of many wakes
//! overlap instead of queueing one after another.
//!
//! A hint never faults and never changes what a load reads: an address that
//! is not mapped (or no longer holds what the hub thought) costs at most a
//! wasted line fill. On targets other than x86-64 the hints do nothing.

/// Bytes in one cache line.
pub(crate) const LINE: usize = 64;

/// Starts loading the cache line holding `addr` into every level.
#[inline(always)]
pub(crate) fn line(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` reads nothing the program can observe and never
    // faults, whatever the address; `sse`, which it needs, is part of the
    // x86-64 baseline.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(addr as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}

/// Starts loading every cache line of `[low, high)`.
#[inline(always)]
pub(crate) fn range(low: usize, high: usize) {
    let mut at = low & !(LINE - 1);
    while at < high {
        line(at);
        at += LINE;
    }
}

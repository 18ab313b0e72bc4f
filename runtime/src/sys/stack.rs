//! Coroutine stacks: carved from big `mmap`ed regions, each below a guard
//! band, pooled for reuse and trimmed when the pool holds many.
//!
//! The hub calls [`StackPool::get`] when a coroutine is spawned and
//! [`StackPool::put`] when it finishes.
//!
//! ```text
//!   one region (mmap, MAP_NORESERVE, read/write: a single memory mapping)
//!   low addresses                                                  high addresses
//!   +--------------+------------------+--------------+------------------+-----
//!   | guard 64 KiB | stack 0  <-grows | guard 64 KiB | stack 1  <-grows | ...
//!   +--------------+------------------+--------------+------------------+-----
//!   ^ limit(0)                base(0) ^ limit(1)                base(1)
//! ```
//!
//! The guard band is installed with `madvise(MADV_GUARD_INSTALL)` (Linux
//! 6.13): touching it faults like a `PROT_NONE` page, but it costs no memory
//! and does not split the mapping, so a million stacks cost a handful of
//! mappings. It is 64 KiB, not one page, because a frame bigger than the band
//! (C code compiled without stack probes) could otherwise jump over it into
//! the stack below, which belongs to another live coroutine. On an older
//! kernel `madvise` fails with `EINVAL` and the pool falls back to
//! `mprotect(PROT_NONE)`, which splits the region at every guard: two
//! mappings per stack, so `vm.max_map_count` (65530 by default) caps the
//! process at about 32,000 stacks there.
//!
//! A pooled stack keeps the pages its last coroutine touched. So that 2,000
//! coroutines that each went 100 KiB deep do not pin 200 MiB after they end,
//! the hub calls [`StackPool::trim_within`] when it is about to wait for
//! events: the pooled stacks beyond the ones kept warm have everything but
//! their top [`WARM_BYTES`] released
//! (`MADV_DONTNEED`;
//! the guard band survives it). The cost grows with the pages a stack
//! holds (here about 2 µs a stack that holds few, 8 to 9 µs one 100 KiB
//! deep) and is paid while the hub has nothing else to do, never on the
//! spawn or finish path: a busy hub keeps its stacks warm until it next
//! idles, and a wait trims only as many stacks as its measured estimate
//! fits in the time it is given (`TRIM_AT_MOST`, `TRIM_RETRY` in
//! `hub/mod.rs`; [`TRIM_BATCH`] and [`TRIM_BATCH_BYTES`] here). The stacks
//! kept warm are the most recently returned of each size, at most
//! [`KEEP_WARM`] of a size and [`WARM_TOTAL`] bytes of stack over all sizes
//! together (shared equally among the sizes with warm stacks): 64 of the
//! default 128 KiB, 2 of 4 MiB; with 32 sizes, each has 256 KiB of the 8
//! MiB, so one of 256 KiB, 16 of 16 KiB, and none of a size bigger than its
//! share (such a stack is trimmed at every wait, and its next coroutine
//! faults its pages in again).
//!
//! The top page of each stack of a new region, where its coroutine's first
//! frames go, is prefaulted (`MADV_POPULATE_WRITE`) in one batch for the
//! whole region, so a burst of spawns takes no page fault per stack; a
//! kernel that refuses the batch leaves those pages to fault in on first
//! touch, and the pool stops asking.
//!
//! Both the guard bands of a new region and a trim are many ranges given
//! the same advice, so they go to the kernel in batches through
//! `process_madvise(PIDFD_SELF, ...)`: up to 1,024 ranges and just under 2
//! GiB a call (the kernel's `UIO_MAXIOV` and `MAX_RW_COUNT`; a short count
//! resumes where the kernel stopped), one system call and one TLB flush per
//! batch instead of one per stack (measured here: 4.9 µs per trimmed stack
//! one by one, 2.3 µs batched). A kernel that refuses the call gets one
//! `madvise` per range from then on.
//!
//! Invariant: a region is unmapped only when the pool is dropped, and the hub
//! drops every coroutine before its stack pool. See
//! `docs/coroutines-and-stacks.md`.

use std::io;
use std::num::NonZeroUsize;
use std::ptr;
use std::time::{Duration, Instant};

use corosensei::stack::StackPointer;

use super::os::page_size;

/// `madvise` advice that installs guard pages without splitting the mapping
/// (Linux 6.13+; not yet named by the libc crate).
const MADV_GUARD_INSTALL: libc::c_int = 102;

/// `process_madvise`'s target meaning "this process" (`PIDFD_SELF`, Linux
/// 6.14; not yet named by the libc crate). An older kernel fails the call
/// with `EBADF`, and the pool goes one `madvise` per range.
const PIDFD_SELF: libc::c_int = -10000;

/// Ranges per `process_madvise` call: the kernel's `UIO_MAXIOV`.
const BATCH: usize = 1024;

/// Bytes per `process_madvise` call: the kernel's `MAX_RW_COUNT` (`INT_MAX`
/// rounded down to a page), past which it advises a prefix and returns a
/// short count. Stacks of 2 MiB and more reach it before [`BATCH`] ranges.
const BATCH_BYTES: usize = 0x7fff_f000;

/// The guard band below each stack. Any frame smaller than this that runs off
/// the stack faults; Rust code probes every page of bigger frames anyway.
pub(crate) const GUARD_BYTES: usize = 64 * 1024;

/// Stacks carved from one region: enough to amortise the mmap, few enough that
/// a program with ten coroutines does not reserve much address space.
const REGION_BYTES: usize = 16 << 20;
const MAX_STACKS_PER_REGION: usize = 64;

/// Pooled stacks of one size kept with all their touched pages when the hub
/// trims, at most: a burst of up to 64 concurrent spawns reuses warm stacks.
const KEEP_WARM: usize = 64;

/// The most stack bytes (by size, whatever was touched) kept warm over all
/// sizes: 64 deep stacks of 128 KiB pin 8 MiB at most, and so do stacks of
/// many sizes or of big ones.
const WARM_TOTAL: usize = 8 << 20;

/// The most stacks one trim releases, whatever its budget: an estimate
/// made on shallow stacks may be low for the next batch, and this bounds
/// what one wrong estimate costs.
const TRIM_BATCH: usize = 256;
/// The most bytes of stacks of one size one trim releases (stacks of 2 MiB:
/// 16 a trim), for the same reason: `MADV_DONTNEED` costs by the resident
/// page, about 70 to 85 ns a KiB here.
const TRIM_BATCH_BYTES: usize = 32 << 20;
/// What trimming a stack is assumed to cost per KiB of its size before a
/// trim of its size was measured: a little over the cost of a stack
/// resident down to its guard (see `TRIM_BATCH_BYTES`).
const TRIM_GUESS_NS_PER_KIB: u64 = 100;

/// The top of a trimmed stack that stays resident: the trampoline's frames
/// and a typical request path (the BRPOP path uses about 1.4 KB).
const WARM_BYTES: usize = 8 * 1024;

/// Stacks of `size` kept warm when `sizes` sizes have warm stacks.
fn keep_warm(sizes: usize, size: usize) -> usize {
    KEEP_WARM.min(WARM_TOTAL / sizes / size.max(1))
}

/// One coroutine stack: `[limit, base)`, the lowest [`GUARD_BYTES`] being the
/// guard band.
#[derive(Debug)]
pub(crate) struct Stack {
    base: StackPointer,
    limit: StackPointer,
}

impl Stack {
    /// The lowest address of the guard band.
    pub(crate) fn guard(&self) -> usize {
        self.limit.get()
    }

    /// The highest address of the stack (where it starts growing down).
    pub(crate) fn base(&self) -> usize {
        self.base.get()
    }

    /// Usable bytes, guard band excluded.
    fn size(&self) -> usize {
        self.base.get() - self.limit.get() - GUARD_BYTES
    }
}

// SAFETY: `base` and `limit` bound a page-aligned (so 16-byte aligned) range
// inside a live read/write region whose lowest GUARD_BYTES are a guard band;
// the range belongs to exactly one `Stack` value, and regions outlive every
// coroutine (the hub drops its coroutines before its `StackPool`).
unsafe impl corosensei::stack::Stack for Stack {
    fn base(&self) -> StackPointer {
        self.base
    }
    fn limit(&self) -> StackPointer {
        self.limit
    }
}

/// One `mmap`ed region carved into stacks; unmapped when the pool drops.
#[derive(Debug)]
struct Region {
    addr: *mut libc::c_void,
    len: usize,
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: `addr`/`len` are exactly what mmap returned, and no stack
        // carved from the region is in use (see the module invariants).
        unsafe { libc::munmap(self.addr, self.len) };
    }
}

/// How guard bands are made; decided by the first region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Guard {
    Untested,
    Madvise,
    Mprotect,
}

/// The pooled stacks of one size: `warm` ones still hold the pages their
/// last coroutine touched (the most recently returned last); `cold` ones
/// were trimmed, or are fresh from a new region (holding at most their
/// prefaulted top page). Reuse takes warm stacks first.
#[derive(Debug, Default)]
struct Free {
    warm: Vec<Stack>,
    cold: Vec<Stack>,
    /// What the last trims of this size cost a stack (ns; see
    /// [`StackPool::trim_within`]); 0 until one was measured.
    trim_ns: u64,
}

impl Free {
    fn pop(&mut self) -> Option<Stack> {
        self.warm.pop().or_else(|| self.cold.pop())
    }

    fn len(&self) -> usize {
        self.warm.len() + self.cold.len()
    }
}

/// Finished coroutines' stacks, kept for the next spawn of the same size.
#[derive(Debug)]
pub(crate) struct StackPool {
    /// Free stacks by usable size; a handful of sizes at most, so a Vec.
    free: Vec<(usize, Free)>,
    regions: Vec<Region>,
    guard: Guard,
    /// Stacks carved so far (free or in use).
    carved: usize,
    /// Ranges given one advice in one go (see the module doc).
    advice: Batch,
    /// New regions get their stacks' top pages prefaulted; off once the
    /// kernel refused it.
    prefault: bool,
    /// Times a spawn took the last stack over the ones kept warm of its size:
    /// the stacks a trim had left over were all taken back since.
    drained: u64,
}

impl StackPool {
    pub(crate) fn new() -> Self {
        StackPool {
            free: Vec::new(),
            regions: Vec::new(),
            guard: Guard::Untested,
            carved: 0,
            advice: Batch::default(),
            prefault: true,
            drained: 0,
        }
    }

    /// A stack with at least `size` usable bytes: a pooled one if any.
    pub(crate) fn get(&mut self, size: usize) -> io::Result<Stack> {
        let size = size
            .max(corosensei::stack::MIN_STACK_SIZE)
            .next_multiple_of(page_size());
        let keep = self.keep_warm(size);
        let free = self.free_list(size);
        if free.warm.len() == keep + 1 {
            self.drained += 1;
        }
        let free = self.free_list(size);
        if let Some(stack) = free.pop() {
            return Ok(stack);
        }
        self.carve_region(size)?;
        Ok(self
            .free_list(size)
            .pop()
            .expect("a fresh region has stacks"))
    }

    /// How many pooled stacks of `size` a trim keeps warm: [`KEEP_WARM`], or
    /// fewer so that the sizes with warm stacks together keep at most
    /// [`WARM_TOTAL`] bytes.
    fn keep_warm(&self, size: usize) -> usize {
        keep_warm(self.warm_sizes(), size)
    }

    /// How many sizes have warm stacks (at least 1, to divide by).
    fn warm_sizes(&self) -> usize {
        self.free
            .iter()
            .filter(|(_, free)| !free.warm.is_empty())
            .count()
            .max(1)
    }

    /// Returns a finished coroutine's stack to the pool.
    pub(crate) fn put(&mut self, stack: Stack) {
        let size = stack.size();
        self.free_list(size).warm.push(stack);
    }

    /// Releases the memory of every pooled stack beyond the ones kept warm
    /// (see the module doc).
    #[cfg(test)]
    pub(crate) fn trim(&mut self) {
        while self.trim_within(Duration::MAX, true).1 {}
    }

    /// As `trim`, but only as many stacks as its estimated cost fits in
    /// `budget` (at least one when `at_least_one`), the longest pooled
    /// first, and at most [`TRIM_BATCH`] stacks and [`TRIM_BATCH_BYTES`] of
    /// each size; the rest wait for the next trim. The estimate is per
    /// size: what its first trim cost a stack, then rising at once when a
    /// trim costs more and falling by half the difference when one costs
    /// less (one batch of shallow stacks does not size the next deep one);
    /// [`TRIM_GUESS_NS_PER_KIB`] of the size before the first. Returns how
    /// many it released and whether any were left for the next trim.
    pub(crate) fn trim_within(&mut self, budget: Duration, at_least_one: bool) -> (usize, bool) {
        let mut left = u64::try_from(budget.as_nanos()).unwrap_or(u64::MAX);
        let mut released = 0;
        // The share each size keeps, as the trim begins.
        let sizes = self.warm_sizes();
        for (size, free) in &mut self.free {
            let excess = free.warm.len().saturating_sub(keep_warm(sizes, *size));
            if excess == 0 {
                continue;
            }
            let guess = (*size / 1024) as u64 * TRIM_GUESS_NS_PER_KIB;
            let each = if free.trim_ns > 0 {
                free.trim_ns
            } else {
                guess
            }
            .max(1);
            let mut n = usize::try_from(left / each).unwrap_or(usize::MAX);
            if n == 0 && at_least_one && released == 0 {
                n = 1;
            }
            let n = n
                .min(excess)
                .min(TRIM_BATCH)
                .min((TRIM_BATCH_BYTES / *size).max(1));
            if n == 0 {
                continue;
            }
            let start = Instant::now();
            for stack in free.warm.drain(..n) {
                let low = stack.guard() + GUARD_BYTES;
                let high = stack.base() - WARM_BYTES;
                if high > low {
                    self.advice.push(low, high - low);
                }
                free.cold.push(stack);
            }
            // Trimming is an optimisation: a range the kernel refused keeps
            // its pages, and the stack still works.
            let _ = self.advice.apply(libc::MADV_DONTNEED);
            let took = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
            let measured = (took / n as u64).max(1);
            free.trim_ns = if free.trim_ns == 0 || measured >= each {
                measured
            } else {
                each - (each - measured) / 2
            };
            left = left.saturating_sub(took);
            released += n;
        }
        let more = self
            .free
            .iter()
            .any(|(size, free)| free.warm.len() > keep_warm(sizes, *size));
        (released, more)
    }

    /// Counts the spawns that took the last stack over the ones kept warm of
    /// its size: when it changed, the stacks a trim left over were all reused.
    pub(crate) fn drained(&self) -> u64 {
        self.drained
    }

    /// Stacks waiting in the pool for reuse.
    pub(crate) fn pooled(&self) -> usize {
        self.free.iter().map(|(_, free)| free.len()).sum()
    }

    /// Stacks carved in all (pooled plus in use).
    pub(crate) fn carved(&self) -> usize {
        self.carved
    }

    fn free_list(&mut self, size: usize) -> &mut Free {
        let at = match self.free.iter().position(|(s, _)| *s == size) {
            Some(at) => at,
            None => {
                self.free.push((size, Free::default()));
                self.free.len() - 1
            }
        };
        &mut self.free[at].1
    }

    fn carve_region(&mut self, size: usize) -> io::Result<()> {
        let slot = size + GUARD_BYTES;
        let count = (REGION_BYTES / slot).clamp(1, MAX_STACKS_PER_REGION);
        let len = slot * count;
        // SAFETY: an anonymous private mapping at an address of the kernel's
        // choosing touches no existing memory.
        let addr = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(map_error("mmap", len, io::Error::last_os_error()));
        }
        let region = Region { addr, len };
        self.install_guards(addr as usize, slot, count)?;
        self.prefault_tops(addr as usize, slot, count);
        let mut stacks = Vec::with_capacity(count);
        for i in 0..count {
            let low = addr as usize + i * slot;
            stacks.push(Stack {
                base: NonZeroUsize::new(low + slot).expect("mmap never returns null"),
                limit: NonZeroUsize::new(low).expect("mmap never returns null"),
            });
        }
        self.regions.push(region);
        self.carved += count;
        // Hand out the lowest addresses first. Fresh stacks hold at most
        // their top page (prefaulted above).
        stacks.reverse();
        self.free_list(size).cold.extend(stacks);
        Ok(())
    }

    /// Guards the lowest [`GUARD_BYTES`] of each of the `count` slots from
    /// `addr`: in one batch when the kernel takes it, else one by one.
    fn install_guards(&mut self, addr: usize, slot: usize, count: usize) -> io::Result<()> {
        if self.guard == Guard::Madvise {
            for i in 0..count {
                self.advice.push(addr + i * slot, GUARD_BYTES);
            }
            if self.advice.apply(MADV_GUARD_INSTALL).is_ok() {
                return Ok(());
            }
        }
        for i in 0..count {
            self.install_guard((addr + i * slot) as *mut libc::c_void)?;
        }
        Ok(())
    }

    /// Prefaults the top page of each of the `count` slots from `addr`
    /// (the page every coroutine touches first: its initial frame), in one
    /// batch, so the spawns that take these stacks do not each take a page
    /// fault. Only a saving: where the kernel refuses it, the pages fault
    /// in on first touch as they would have, and later regions skip it.
    fn prefault_tops(&mut self, addr: usize, slot: usize, count: usize) {
        if !self.prefault {
            return;
        }
        let page = page_size();
        for i in 1..=count {
            self.advice.push(addr + i * slot - page, page);
        }
        self.prefault = self.advice.hint(libc::MADV_POPULATE_WRITE);
    }

    fn install_guard(&mut self, low: *mut libc::c_void) -> io::Result<()> {
        if self.guard != Guard::Mprotect {
            // SAFETY: `low..low + GUARD_BYTES` lies inside a region we just
            // mapped and that nothing uses yet; a guard only makes it fault.
            let rc = unsafe { libc::madvise(low, GUARD_BYTES, MADV_GUARD_INSTALL) };
            if rc == 0 {
                self.guard = Guard::Madvise;
                return Ok(());
            }
            let err = io::Error::last_os_error();
            if self.guard == Guard::Madvise || err.raw_os_error() != Some(libc::EINVAL) {
                return Err(map_error("madvise(MADV_GUARD_INSTALL)", GUARD_BYTES, err));
            }
            self.guard = Guard::Mprotect;
        }
        // SAFETY: as above; PROT_NONE on part of our own unused region.
        let rc = unsafe { libc::mprotect(low, GUARD_BYTES, libc::PROT_NONE) };
        if rc == 0 {
            Ok(())
        } else {
            Err(map_error(
                "mprotect",
                GUARD_BYTES,
                io::Error::last_os_error(),
            ))
        }
    }
}

/// Ranges of our own stack regions waiting for one `madvise` advice.
///
/// Only three advices are ever given: `MADV_GUARD_INSTALL` on the guard
/// band of a slot no coroutine has used yet, `MADV_POPULATE_WRITE` on the
/// top page of such a slot (it only faults the page in, as a write would,
/// without changing its contents), and `MADV_DONTNEED` on the usable part
/// below the warm top of a pooled stack (no coroutine runs on it). So every
/// range handed in is page-aligned, inside a live region, and holds nothing
/// anyone will read again.
#[derive(Debug, Default)]
struct Batch {
    ranges: Vec<libc::iovec>,
    /// `process_madvise` failed once: give every range its own `madvise`.
    one_by_one: bool,
}

impl Batch {
    fn push(&mut self, addr: usize, len: usize) {
        self.ranges.push(libc::iovec {
            iov_base: addr as *mut libc::c_void,
            iov_len: len,
        });
    }

    /// Gives every pushed range `advice` and forgets them. On an error
    /// (of the one-by-one path), the ranges after the failing one are
    /// dropped unadvised.
    fn apply(&mut self, advice: libc::c_int) -> io::Result<()> {
        let mut ranges = std::mem::take(&mut self.ranges);
        let result = self.advise(&mut ranges, advice);
        ranges.clear();
        self.ranges = ranges; // keep the capacity for the next batch
        result
    }

    /// Batches of at most [`BATCH`] ranges and [`BATCH_BYTES`] bytes; after
    /// a short count, the next batch starts where the kernel stopped (inside
    /// a range, if it stopped there). A call the kernel refuses (no
    /// `process_madvise`, no `PIDFD_SELF`, an advice it does not take there,
    /// or a sandbox's veto) turns batching off for the pool's life; any
    /// other failure, or a call that makes no progress, sends only the rest
    /// of this advice one by one.
    fn advise(&mut self, ranges: &mut [libc::iovec], advice: libc::c_int) -> io::Result<()> {
        let mut at = 0;
        if !self.one_by_one {
            let (done, refused) = advise_batched(ranges, advice);
            at = done;
            self.one_by_one |= refused;
        }
        // What the batches left (a range may be advised twice: both
        // advices allow it).
        for range in &ranges[at..] {
            // SAFETY: as in `advise_batched`, for one range.
            let rc = unsafe { libc::madvise(range.iov_base, range.iov_len, advice) };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }

    /// Gives every pushed range `advice` in batches only, and forgets them:
    /// for a hint that saves work later but that the kernel may refuse at
    /// no cost (prefaulting), where one `madvise` per range would cost
    /// more than it saves. Returns whether every range was advised; a
    /// refusal leaves the rest unadvised and does not turn batching off
    /// for the other advices.
    fn hint(&mut self, advice: libc::c_int) -> bool {
        let mut ranges = std::mem::take(&mut self.ranges);
        let done = !self.one_by_one && advise_batched(&mut ranges, advice).0 == ranges.len();
        ranges.clear();
        self.ranges = ranges;
        done
    }
}

/// Gives `ranges` `advice` through `process_madvise(PIDFD_SELF, ...)`, in
/// batches as [`Batch::advise`] describes, until done or a call fails or
/// makes no progress. Returns how many leading ranges were advised in full
/// (the next may have been advised in part: it then starts where the kernel
/// stopped), and whether the kernel refused the call outright.
fn advise_batched(ranges: &mut [libc::iovec], advice: libc::c_int) -> (usize, bool) {
    let mut at = 0;
    while at < ranges.len() {
        let mut end = at;
        let mut want = 0;
        while end < ranges.len()
            && end - at < BATCH
            && (end == at || want + ranges[end].iov_len <= BATCH_BYTES)
        {
            want += ranges[end].iov_len;
            end += 1;
        }
        let chunk = &ranges[at..end];
        // SAFETY: `chunk` is a valid array of iovecs that lives for the
        // call; the kernel only reads it. Each range is ours and may take
        // `advice` (see `Batch`'s doc). PIDFD_SELF names this process, so
        // no other process's memory is touched.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_process_madvise,
                PIDFD_SELF,
                chunk.as_ptr(),
                chunk.len(),
                advice,
                0,
            )
        };
        if rc < 0 {
            let refused = matches!(
                io::Error::last_os_error().raw_os_error(),
                Some(libc::ENOSYS | libc::EBADF | libc::EINVAL | libc::EPERM)
            );
            return (at, refused);
        }
        if rc == 0 {
            return (at, false); // no progress
        }
        // Skip what the kernel advised: whole ranges, then a prefix.
        let mut advised = rc as usize;
        while advised > 0 && at < end {
            let range = &mut ranges[at];
            if advised >= range.iov_len {
                advised -= range.iov_len;
                at += 1;
            } else {
                range.iov_base = range.iov_base.wrapping_byte_add(advised);
                range.iov_len -= advised;
                advised = 0;
            }
        }
    }
    (at, false)
}

fn map_error(call: &str, len: usize, err: io::Error) -> io::Error {
    io::Error::new(
        err.kind(),
        format!(
            "cannot allocate a coroutine stack: {call} of {len} bytes failed ({err}); \
             the process may have reached vm.max_map_count \
             (see /proc/sys/vm/max_map_count) or its memory limit"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stacks_are_reused_and_sized_in_whole_pages() {
        let mut pool = StackPool::new();
        let stack = pool.get(10_000).unwrap();
        assert_eq!(stack.size() % page_size(), 0);
        assert!(stack.size() >= 10_000);
        let carved = pool.carved();
        let base = stack.base;
        pool.put(stack);
        let again = pool.get(10_000).unwrap();
        assert_eq!(again.base, base, "the pool hands the freed stack back");
        assert_eq!(pool.carved(), carved, "no new region for a pooled size");
    }

    /// A fresh region's stacks come with their top page resident (and only
    /// it), on a kernel that takes the batched prefault; on one that
    /// refuses it, the pool stops trying and the pages stay untouched.
    #[test]
    fn a_new_region_has_each_stack_top_page_prefaulted() {
        let mut pool = StackPool::new();
        let stacks: Vec<Stack> = (0..4).map(|_| pool.get(64 * 1024).unwrap()).collect();
        let page = page_size();
        for stack in &stacks {
            let low = stack.guard() + GUARD_BYTES;
            let top = super::super::os::resident_bytes(stack.base() - page, stack.base());
            let below = super::super::os::resident_bytes(low, stack.base() - page);
            if pool.prefault {
                assert_eq!(top, page, "the top page is resident");
            } else {
                assert_eq!(top, 0, "nothing touched without the prefault");
            }
            assert_eq!(below, 0, "nothing below the top page is");
        }
        if kernel_takes_pidfd_self() {
            // PIDFD_SELF (6.14) came long after MADV_POPULATE_WRITE (5.14).
            assert!(pool.prefault, "a kernel with PIDFD_SELF takes the prefault");
        }
        stacks.into_iter().for_each(|s| pool.put(s));
    }

    /// Fills the usable part of `stack` (so every page is resident).
    fn dirty(stack: &Stack) {
        let low = stack.guard() + GUARD_BYTES;
        for page in (low..stack.base()).step_by(page_size()) {
            // SAFETY: `page` is inside the stack's usable range, which this
            // test owns (no coroutine runs on it).
            unsafe { (page as *mut u8).write_volatile(1) };
        }
    }

    fn trims_every_stack_beyond_the_warm_ones(one_by_one: bool) {
        let mut pool = StackPool::new();
        pool.advice.one_by_one = one_by_one;
        let size = 64 * 1024;
        let stacks: Vec<Stack> = (0..KEEP_WARM + 8)
            .map(|_| pool.get(size).unwrap())
            .collect();
        stacks.iter().for_each(dirty);
        let ranges: Vec<(usize, usize)> = stacks
            .iter()
            .map(|s| (s.guard() + GUARD_BYTES, s.base()))
            .collect();
        stacks.into_iter().for_each(|s| pool.put(s));
        pool.trim();
        let resident: Vec<usize> = ranges
            .iter()
            .map(|&(low, high)| super::super::os::resident_bytes(low, high))
            .collect();
        let trimmed = resident.iter().filter(|&&r| r <= WARM_BYTES).count();
        assert_eq!(trimmed, 8, "the 8 oldest are trimmed: {resident:?}");
        assert!(resident[..8].iter().all(|&r| r <= WARM_BYTES));
    }

    #[test]
    fn a_trim_releases_the_oldest_pooled_stacks_in_one_batch() {
        trims_every_stack_beyond_the_warm_ones(false);
    }

    #[test]
    fn a_trim_releases_them_one_by_one_where_the_kernel_refuses_a_batch() {
        trims_every_stack_beyond_the_warm_ones(true);
    }

    /// A batch over the kernel's ~2 GiB a call: it advises a prefix and
    /// returns a short count; the next call picks up inside the range where
    /// it stopped, and batching stays on.
    #[test]
    fn a_batch_past_two_gib_resumes_after_the_short_count() {
        let len = 3usize << 30;
        // SAFETY: a fresh anonymous private mapping of our own, reserved
        // without swap, touched only at two bytes below and unmapped below.
        let addr = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert_ne!(addr, libc::MAP_FAILED);
        let first = addr.cast::<u8>();
        // SAFETY: both bytes lie inside the mapping.
        let last = unsafe { first.add(len - 1) };
        // SAFETY: as above; the mapping is readable and writable.
        unsafe {
            first.write_volatile(1);
            last.write_volatile(1);
        }
        let mut batch = Batch::default();
        batch.push(addr as usize, len);
        batch.apply(libc::MADV_DONTNEED).unwrap();
        // SAFETY: as above; `MADV_DONTNEED` pages read back as zero.
        let (head, tail) = unsafe { (first.read_volatile(), last.read_volatile()) };
        // SAFETY: the mapping made above, no longer used.
        unsafe { libc::munmap(addr, len) };
        assert_eq!((head, tail), (0, 0), "both ends released");
        // On a kernel without `process_madvise(PIDFD_SELF)` it went one by
        // one from the start; otherwise it must have stayed batched.
        let batched = kernel_takes_pidfd_self();
        assert_eq!(batch.one_by_one, !batched);
    }

    /// Whether this kernel takes `process_madvise(PIDFD_SELF, ..)` at all:
    /// an empty batch is accepted (0) where it is known.
    fn kernel_takes_pidfd_self() -> bool {
        let iov: [libc::iovec; 0] = [];
        // SAFETY: an empty iovec array; nothing is advised.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_process_madvise,
                PIDFD_SELF,
                iov.as_ptr(),
                0usize,
                libc::MADV_DONTNEED,
                0,
            )
        };
        rc == 0
    }
}

//! Stacks and stack switching: the one file with `unsafe` in the runtime.
//!
//! corosensei does the switching; this file gives it stacks and lets `park`
//! suspend the running coroutine. The hub calls [`StackPool::get`] when a
//! coroutine is spawned and [`StackPool::put`] when it finishes; `park` calls
//! [`suspend`] to hand control back to the hub.
//!
//! ```text
//!   one region (mmap, MAP_NORESERVE, read/write: a single memory mapping)
//!   low addresses                                               high addresses
//!   +-------+----------------+-------+----------------+-------+-------------
//!   | guard | stack 0   <-grows | guard | stack 1  <-grows | guard | ...
//!   +-------+----------------+-------+----------------+-------+-------------
//!   ^ limit(0)            base(0) ^ limit(1)        base(1)
//! ```
//!
//! A guard page is installed with `madvise(MADV_GUARD_INSTALL)` (Linux 6.13):
//! touching it faults like a `PROT_NONE` page, but it does not split the
//! mapping, so a million stacks cost a handful of mappings instead of two each
//! (corosensei's `DefaultStack` hits `vm.max_map_count`, 65530 by default, at
//! about 32,750 coroutines). On an older kernel `madvise` fails with `EINVAL`
//! and the pool falls back to `mprotect(PROT_NONE)`, which costs the extra
//! mapping. Regions are reserved with `MAP_NORESERVE` and only touched pages
//! use memory, so a generous stack size costs address space, not RSS.
//!
//! Invariants: a region is unmapped only when the pool is dropped, and the hub
//! drops every coroutine before its stack pool. See
//! `docs/coroutines-and-stacks.md`.

use std::io;
use std::num::NonZeroUsize;
use std::ptr;

use corosensei::stack::StackPointer;

/// A coroutine as the hub stores it: resumed with `()`, yields `()` when it
/// parks, returns `()` when done (its value travels through its `JoinHandle`).
pub(crate) type Coro = corosensei::Coroutine<(), (), (), Stack>;

/// The handle a coroutine uses to suspend itself.
pub(crate) type Yielder = corosensei::Yielder<(), ()>;

/// `madvise` advice that installs guard pages without splitting the mapping
/// (Linux 6.13+; not yet named by the libc crate).
const MADV_GUARD_INSTALL: libc::c_int = 102;

/// Stacks carved from one region: enough to amortise the mmap, few enough that
/// a program with ten coroutines does not reserve much address space.
const REGION_BYTES: usize = 8 << 20;
const MAX_STACKS_PER_REGION: usize = 64;

/// The address of the running coroutine's `Yielder`, stored in its task entry.
///
/// The `Yielder` lives at the base of the coroutine's own stack for as long as
/// the coroutine has not returned.
#[derive(Clone, Copy, Debug)]
pub(crate) struct YielderPtr(*const Yielder);

impl YielderPtr {
    pub(crate) fn new(yielder: &Yielder) -> Self {
        YielderPtr(yielder)
    }
}

/// Suspends the running coroutine until the hub resumes it.
///
/// # Safety
///
/// `yielder` must belong to the coroutine that is running on this thread right
/// now, and no `RefCell` borrow of hub state may be held across the call.
pub(crate) unsafe fn suspend(yielder: &YielderPtr) {
    // SAFETY: by this function's contract we are on the coroutine that owns
    // the yielder, so it has not returned and its stack (where the yielder
    // lives) is valid for the whole call.
    unsafe { (*yielder.0).suspend(()) }
}

/// One coroutine stack: `[limit, base)`, the lowest page being the guard.
#[derive(Debug)]
pub(crate) struct Stack {
    base: StackPointer,
    limit: StackPointer,
}

impl Stack {
    /// The address of the guard page (the lowest page of the stack).
    pub(crate) fn guard(&self) -> usize {
        self.limit.get()
    }

    /// The highest address of the stack (where it starts growing down).
    pub(crate) fn base(&self) -> usize {
        self.base.get()
    }

    /// Usable bytes, guard page excluded.
    fn size(&self) -> usize {
        self.base.get() - self.limit.get() - page_size()
    }
}

// SAFETY: `base` and `limit` bound a page-aligned (so 16-byte aligned) range
// inside a live read/write region whose lowest page is a guard page; the range
// belongs to exactly one `Stack` value, and regions outlive every coroutine
// (the hub drops its coroutines before its `StackPool`).
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

/// How guard pages are made; decided by the first region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Guard {
    Untested,
    Madvise,
    Mprotect,
}

/// Finished coroutines' stacks, kept for the next spawn of the same size.
#[derive(Debug)]
pub(crate) struct StackPool {
    /// Free stacks by usable size; a handful of sizes at most, so a Vec.
    free: Vec<(usize, Vec<Stack>)>,
    regions: Vec<Region>,
    guard: Guard,
    /// Stacks carved so far (free or in use).
    carved: usize,
}

impl StackPool {
    pub(crate) fn new() -> Self {
        StackPool {
            free: Vec::new(),
            regions: Vec::new(),
            guard: Guard::Untested,
            carved: 0,
        }
    }

    /// A stack with at least `size` usable bytes: a pooled one if any.
    pub(crate) fn get(&mut self, size: usize) -> io::Result<Stack> {
        let size = size
            .max(corosensei::stack::MIN_STACK_SIZE)
            .next_multiple_of(page_size());
        if let Some(stack) = self.free_list(size).pop() {
            return Ok(stack);
        }
        self.carve_region(size)?;
        Ok(self
            .free_list(size)
            .pop()
            .expect("a fresh region has stacks"))
    }

    /// Returns a finished coroutine's stack to the pool.
    pub(crate) fn put(&mut self, stack: Stack) {
        let size = stack.size();
        self.free_list(size).push(stack);
    }

    /// Stacks waiting in the pool for reuse.
    pub(crate) fn pooled(&self) -> usize {
        self.free.iter().map(|(_, list)| list.len()).sum()
    }

    /// Stacks carved in all (pooled plus in use).
    pub(crate) fn carved(&self) -> usize {
        self.carved
    }

    fn free_list(&mut self, size: usize) -> &mut Vec<Stack> {
        let at = match self.free.iter().position(|(s, _)| *s == size) {
            Some(at) => at,
            None => {
                self.free.push((size, Vec::new()));
                self.free.len() - 1
            }
        };
        &mut self.free[at].1
    }

    fn carve_region(&mut self, size: usize) -> io::Result<()> {
        let page = page_size();
        let slot = size + page;
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
        let mut stacks = Vec::with_capacity(count);
        for i in 0..count {
            let low = addr as usize + i * slot;
            self.install_guard(low as *mut libc::c_void, page)?;
            stacks.push(Stack {
                base: NonZeroUsize::new(low + slot).expect("mmap never returns null"),
                limit: NonZeroUsize::new(low).expect("mmap never returns null"),
            });
        }
        self.regions.push(region);
        self.carved += count;
        // Hand out the lowest addresses first.
        stacks.reverse();
        self.free_list(size).extend(stacks);
        Ok(())
    }

    fn install_guard(&mut self, page_addr: *mut libc::c_void, page: usize) -> io::Result<()> {
        if self.guard != Guard::Mprotect {
            // SAFETY: `page_addr` is a page inside a region we just mapped and
            // that nothing uses yet; a guard page only makes it fault.
            let rc = unsafe { libc::madvise(page_addr, page, MADV_GUARD_INSTALL) };
            if rc == 0 {
                self.guard = Guard::Madvise;
                return Ok(());
            }
            let err = io::Error::last_os_error();
            if self.guard == Guard::Madvise || err.raw_os_error() != Some(libc::EINVAL) {
                return Err(map_error("madvise(MADV_GUARD_INSTALL)", page, err));
            }
            log::debug!("MADV_GUARD_INSTALL unsupported; guard pages fall back to mprotect");
            self.guard = Guard::Mprotect;
        }
        // SAFETY: as above; PROT_NONE on one page of our own unused region.
        let rc = unsafe { libc::mprotect(page_addr, page, libc::PROT_NONE) };
        if rc == 0 {
            Ok(())
        } else {
            Err(map_error("mprotect", page, io::Error::last_os_error()))
        }
    }
}

// Stack overflow reports.
//
// A coroutine that recurses too deep touches its guard page and the kernel
// raises SIGSEGV. Rust's own handler only recognises the guard pages of OS
// threads, so without help the process would die with a bare "Segmentation
// fault". The hub records, on each resume, the running coroutine's guard page
// and name in thread-locals; the handler below (installed once, running on
// the alternate signal stack std gives every thread) compares the faulting
// address with that guard page, writes "coroutine 'NAME' has overflowed its
// stack" and aborts. Any other fault goes to the handler that was there
// before (std's), as if ours did not exist.

thread_local! {
    /// The running coroutine's guard page; 0 while the hub itself runs.
    static GUARD: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// The running coroutine's name (bytes of an `Rc<str>` its task owns).
    static NAME: std::cell::Cell<(*const u8, usize)> = const { std::cell::Cell::new((ptr::null(), 0)) };
}

/// Records the coroutine about to run, for the overflow report.
pub(crate) fn entering(guard: usize, name: Option<&str>) {
    GUARD.with(|g| g.set(guard));
    NAME.with(|n| n.set(name.map_or((ptr::null(), 0), |name| (name.as_ptr(), name.len()))));
}

/// The hub runs again: no coroutine stack is in use.
pub(crate) fn leaving() {
    GUARD.with(|g| g.set(0));
}

/// The handler that was installed before ours, for faults that are not ours.
static PREVIOUS: std::sync::OnceLock<libc::sigaction> = std::sync::OnceLock::new();

/// Installs the stack-overflow reporter (once per process).
pub(crate) fn install_overflow_handler() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: sigaction reads our fully initialised struct and writes the
        // previous one into `old`, both owned here; the handler only makes
        // async-signal-safe calls.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_segv as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGSEGV, &action, &mut old) == 0 {
                let _ = PREVIOUS.set(old);
            }
        }
    });
}

extern "C" fn on_segv(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    let guard = GUARD.with(|g| g.get());
    if guard != 0 && addr >= guard && addr < guard + page_size() {
        let (name, len) = NAME.with(|n| n.get());
        let write = |bytes: &[u8]| {
            // SAFETY: write(2) on stderr with a valid buffer is async-signal-safe.
            unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
        };
        write(b"\ncoroutine '");
        if name.is_null() {
            write(b"(unnamed)");
        } else {
            // SAFETY: the name belongs to the running coroutine's task, which
            // lives until the coroutine returns; it cannot have returned.
            write(unsafe { std::slice::from_raw_parts(name, len) });
        }
        write(b"' has overflowed its stack\nfatal runtime error: stack overflow in a greenhub coroutine, aborting\n");
        // SAFETY: abort is async-signal-safe.
        unsafe { libc::abort() };
    }
    // Not a coroutine's guard page: hand the fault to the previous handler.
    if let Some(previous) = PREVIOUS.get() {
        let handler = previous.sa_sigaction;
        if handler != libc::SIG_DFL && handler != libc::SIG_IGN {
            if previous.sa_flags & libc::SA_SIGINFO != 0 {
                // SAFETY: the previous handler was installed with SA_SIGINFO,
                // so it has this signature; we pass the kernel's arguments on.
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    unsafe { std::mem::transmute(handler) };
                return f(signal, info, context);
            }
            // SAFETY: a plain handler takes only the signal number.
            let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
            return f(signal);
        }
    }
    // No handler before ours: restore the default action and return, so the
    // faulting instruction runs again and the kernel kills the process.
    // SAFETY: resetting a signal to SIG_DFL is async-signal-safe.
    unsafe { libc::signal(signal, libc::SIG_DFL) };
}

/// Bytes of the stack `[guard + page, base)` that are resident in memory: a
/// high-water mark of how deep any coroutine on that stack has gone (pages,
/// once touched, stay resident, and pooled stacks are reused). For `dump()`;
/// 0 if the kernel will not say.
pub(crate) fn resident_bytes(guard: usize, base: usize) -> usize {
    let page = page_size();
    let start = guard + page;
    let pages = (base - start) / page;
    let mut resident = vec![0u8; pages];
    // SAFETY: mincore reads the page tables of a range we mapped (a stack
    // carved from a live region) and writes one byte per page into a buffer
    // of exactly that many bytes.
    let rc = unsafe {
        libc::mincore(
            start as *mut libc::c_void,
            base - start,
            resident.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return 0;
    }
    resident.iter().filter(|&&b| b & 1 != 0).count() * page
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

fn page_size() -> usize {
    use std::sync::OnceLock;
    static PAGE: OnceLock<usize> = OnceLock::new();
    // SAFETY: sysconf only reads a system constant.
    *PAGE.get_or_init(|| unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize)
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
}

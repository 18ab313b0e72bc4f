//! The running coroutine's record, and the stack overflow report built on it.
//!
//! The hub writes one thread-local record per resume: the coroutine's guard
//! band, its name and its yielder. The park suspends through that yielder
//! (`hub/park.rs`); the SIGSEGV handler below reads the guard and the name.
//!
//! A coroutine that recurses too deep touches its guard band and the kernel
//! raises SIGSEGV. Rust's own handler only recognises the guard pages of OS
//! threads, so without help the process would die with a bare "Segmentation
//! fault". The hub records, on each resume, the running coroutine's guard band
//! and name in a thread-local; the handler below (installed once, running on
//! the alternate signal stack std gives every thread) compares the faulting
//! address with that band, writes "coroutine 'NAME' has overflowed its
//! stack" (`coroutine-ID` for one without a name) and aborts. Any other fault goes to the handler that was there
//! before (std's), as if ours did not exist.

use std::cell::Cell;
use std::ptr;

use super::stack::GUARD_BYTES;
use super::switch::YielderPtr;

/// The running coroutine as this thread's signal handler and park see it,
/// one `Cell` per field so that each access reads or writes one word: its
/// guard band's low address (0 while the hub itself runs), its name (the
/// bytes of an `Rc<str>` its task owns, read only while the guard is set)
/// and its yielder.
struct Running {
    guard: Cell<usize>,
    name: Cell<*const u8>,
    len: Cell<usize>,
    /// Its id, for the report of a coroutine that has no name.
    id: Cell<u64>,
    yielder: Cell<Option<YielderPtr>>,
    /// About where the coroutine's stack pointer was when it last
    /// suspended (0 before its first suspend): a hint for the hub's
    /// prefetch, never dereferenced.
    sp: Cell<usize>,
}

thread_local! {
    static RUNNING: Running = const {
        Running {
            guard: Cell::new(0),
            name: Cell::new(ptr::null()),
            len: Cell::new(0),
            id: Cell::new(0),
            yielder: Cell::new(None),
            sp: Cell::new(0),
        }
    };
}

/// Records the coroutine about to run: one thread-local write per field.
/// `yielder` is `None` for a coroutine that has not started; it records its
/// own with [`started`].
#[inline]
pub(crate) fn entering(guard: usize, name: Option<&str>, id: u64, yielder: Option<YielderPtr>) {
    let (name, len) = name.map_or((ptr::null(), 0), |name| (name.as_ptr(), name.len()));
    RUNNING.with(|r| {
        r.name.set(name);
        r.len.set(len);
        r.id.set(id);
        r.yielder.set(yielder);
        r.sp.set(0);
        r.guard.set(guard);
    });
}

/// A coroutine's first frame records its yielder.
#[inline]
pub(crate) fn started(yielder: YielderPtr) {
    RUNNING.with(|r| r.yielder.set(Some(yielder)));
}

/// The running coroutine's yielder, for `suspend`.
#[inline]
pub(crate) fn yielder() -> Option<YielderPtr> {
    RUNNING.with(|r| r.yielder.get())
}

/// The running coroutine is about to suspend with its stack pointer near
/// `sp`: recorded for the hub, which prefetches the stack there before the
/// coroutine's next resume.
#[inline]
pub(crate) fn suspending(sp: usize) {
    RUNNING.with(|r| r.sp.set(sp));
}

/// The hub runs again: returns the yielder of the coroutine that ran, and
/// where its stack pointer was if it suspended (0 if it returned), for the
/// hub to keep until its next resume. The name is left as it was: with the
/// guard at 0 nothing reads it.
#[inline]
pub(crate) fn leaving() -> (Option<YielderPtr>, usize) {
    RUNNING.with(|r| {
        r.guard.set(0);
        (r.yielder.take(), r.sp.get())
    })
}

/// `n` in decimal, written into the end of `buf` (no allocation: the signal
/// handler calls it).
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
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
    let (guard, name, len, id) =
        RUNNING.with(|r| (r.guard.get(), r.name.get(), r.len.get(), r.id.get()));
    if guard != 0 && addr >= guard && addr < guard + GUARD_BYTES {
        let write = |bytes: &[u8]| {
            // SAFETY: write(2) on stderr with a valid buffer is async-signal-safe.
            unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
        };
        write(b"\ncoroutine '");
        if name.is_null() {
            // Named as every other report names it: `coroutine-ID`.
            write(b"coroutine-");
            write(decimal(id, &mut [0; 20]));
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

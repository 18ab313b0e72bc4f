//! The Unix signal handler behind `greenhub::signal`: the only code that
//! runs in signal context, and all it does is write one byte.
//!
//! A signal can interrupt any instruction of any thread, so the handler may
//! make only async-signal-safe calls. It writes the signal's number as one
//! byte into a self-pipe (non-blocking: a full pipe drops the byte, and
//! signals coalesce anyway) and restores `errno`; nothing else. The reader
//! of that pipe is a helper thread (`sources/signals.rs`), which wakes the
//! coroutines waiting for that signal through their hubs' inboxes. So no
//! handler code runs on a hub's thread outside a coroutine: the hub only
//! sees an inbox post, as from any other thread.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};

/// The self-pipe's write end, or -1 before the first handler is installed.
static PIPE: AtomicI32 = AtomicI32::new(-1);

/// Signals a handler must never replace: SIGKILL and SIGSTOP cannot be
/// caught; the synchronous faults belong to the stack-overflow reporter
/// (`running.rs`) and to the default action, and writing a byte for them
/// would return to the faulting instruction forever.
const REFUSED: [libc::c_int; 6] = [
    libc::SIGKILL,
    libc::SIGSTOP,
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
];

/// Sets the pipe the handler writes to (once, before any `install`).
pub(crate) fn set_pipe(fd: RawFd) {
    PIPE.store(fd, Ordering::SeqCst);
}

/// The disposition a signal had before ours, to put back.
pub(crate) struct Previous(libc::sigaction);

/// Whether `signal` is one a coroutine may wait for.
pub(crate) fn check(signal: libc::c_int) -> io::Result<()> {
    if !(1..=libc::SIGRTMAX()).contains(&signal) || REFUSED.contains(&signal) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("signal {signal} cannot be waited for (not a signal, or one that cannot be caught or is a fault)"),
        ));
    }
    Ok(())
}

/// Installs the handler for `signal`; returns the disposition it replaces.
pub(crate) fn install(signal: libc::c_int) -> io::Result<Previous> {
    check(signal)?;
    // SAFETY: sigaction reads our fully initialised struct and writes the
    // previous one into `old`, both owned here; the handler only makes
    // async-signal-safe calls (see `on_signal`).
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_signal as *const () as usize;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(signal, &action, &mut old) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Previous(old))
    }
}

/// Puts back the disposition `signal` had before [`install`].
pub(crate) fn restore(signal: libc::c_int, previous: &Previous) {
    // SAFETY: sigaction reads a struct the kernel filled in for this signal.
    unsafe { libc::sigaction(signal, &previous.0, std::ptr::null_mut()) };
}

extern "C" fn on_signal(signal: libc::c_int) {
    let fd = PIPE.load(Ordering::Relaxed);
    if fd < 0 {
        return;
    }
    // SAFETY: errno is thread-local and `__errno_location` is
    // async-signal-safe; write(2) on a non-blocking pipe with a one-byte
    // buffer we own is async-signal-safe. errno is restored so the
    // interrupted code never sees the handler's.
    unsafe {
        let errno = libc::__errno_location();
        let saved = *errno;
        let byte = signal as u8;
        libc::write(fd, (&byte as *const u8).cast(), 1);
        *errno = saved;
    }
}

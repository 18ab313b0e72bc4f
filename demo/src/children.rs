//! The processes the demo starts (a private `redis-server`, or the six nodes
//! of a private cluster) and the temporary directory they live in: stopped
//! and removed on every exit path.
//!
//! - A normal return, an error or a panic that unwinds drops the owner
//!   (`server.rs`, `private_cluster.rs`), which [`stop`]s its children and
//!   removes its directory.
//! - SIGINT, SIGTERM and SIGHUP run [`on_signal`], which kills the children
//!   still registered, removes the paths registered with [`remove_on_signal`]
//!   and exits with 128 + the signal, as a shell reports it. A signal
//!   handler may not lock or allocate, so everything it reads was prepared
//!   before: pids in atomics, paths in a `OnceLock`. It runs on the thread the
//!   signal interrupted, and adds no thread: the article's "active OS
//!   threads: 1" stays true.
//! - Any other death of the demo (SIGKILL, an abort) leaves the kernel to
//!   send each child SIGTERM (`PR_SET_PDEATHSIG`, set by [`die_with_parent`]);
//!   the directory then stays behind in the temp dir.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Once, OnceLock};

/// The most children the demo starts at once: the six nodes of a cluster,
/// and room to spare.
const MAX_CHILDREN: usize = 8;

/// The children to kill on a signal (0: a free slot). Set by [`register`],
/// cleared by [`stop`] before the child is reaped, so that the handler never
/// kills a pid the kernel may have handed to another process.
static PIDS: [AtomicI32; MAX_CHILDREN] = [const { AtomicI32::new(0) }; MAX_CHILDREN];

/// The files and directories to remove on a signal, in order (files before
/// the directory that holds them). Set once per run.
static PATHS: OnceLock<Vec<CString>> = OnceLock::new();

/// Makes `command`'s process receive SIGTERM when the demo's main thread
/// dies, however it dies. The children are started from the main thread,
/// the one the kernel watches.
pub(crate) fn die_with_parent(command: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and only
    // calls prctl, which is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Registers a child to kill should the demo be interrupted; installs the
/// handlers the first time.
pub(crate) fn register(child: &Child) {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(install);
    let pid = child.id() as i32;
    let free = PIDS.iter().find(|slot| {
        slot.compare_exchange(0, pid, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    });
    if free.is_none() {
        log::warn!(
            "more than {MAX_CHILDREN} children: pid {pid} is left to PR_SET_PDEATHSIG on Ctrl-C"
        );
    }
}

/// The paths the handler removes, in order: each is unlinked as a file, or
/// else removed as an (empty) directory. The first call wins.
pub(crate) fn remove_on_signal(paths: &[PathBuf]) {
    let paths = paths
        .iter()
        .map(|p| CString::new(p.as_os_str().as_bytes()).expect("no NUL in a temp path"))
        .collect();
    let _ = PATHS.set(paths);
}

/// Kills a child and reaps it, taking it off the list in between (killed,
/// it cannot exit on its own; not yet reaped, its pid cannot be reused).
pub(crate) fn stop(child: &mut Child) {
    let _ = child.kill();
    let pid = child.id() as i32;
    for slot in &PIDS {
        let _ = slot.compare_exchange(pid, 0, Ordering::SeqCst, Ordering::SeqCst);
    }
    let _ = child.wait();
}

fn install() {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: installs a handler that only makes async-signal-safe calls.
        unsafe { libc::signal(signal, on_signal as *const () as libc::sighandler_t) };
    }
}

/// The handler: kill and reap every registered child, remove the paths,
/// exit. Only atomics, already-built strings and async-signal-safe calls.
extern "C" fn on_signal(signal: libc::c_int) {
    for slot in &PIDS {
        let pid = slot.swap(0, Ordering::SeqCst);
        if pid > 0 {
            // SAFETY: kill and waitpid on a child of ours not yet reaped.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
    }
    for path in PATHS.get().into_iter().flatten() {
        // SAFETY: unlink and rmdir read a NUL-terminated path built before
        // the handler was installed.
        unsafe {
            if libc::unlink(path.as_ptr()) != 0 {
                libc::rmdir(path.as_ptr());
            }
        }
    }
    // SAFETY: _exit is async-signal-safe and runs no destructors.
    unsafe { libc::_exit(128 + signal) };
}

//! What the process can hold, and what it uses: the open-files limit (raised
//! to the hard limit at start), the thread count and peak memory as the OS
//! reports them (`/proc/self/status`), never assumed.

use std::io;

/// Descriptors the demo needs besides one per client: stdio, the poller, the
/// waker, a private server's pipes, and slack for the allocator and logging.
pub(crate) const SPARE_FDS: u64 = 64;

/// Raises the soft open-files limit to the hard one; returns the new limit.
pub(crate) fn raise_open_files() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct that we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit reads one rlimit struct that we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(limit.rlim_cur)
}

/// A field of `/proc/self/status` (such as `Threads` or `VmHWM`) as a number.
fn proc_status(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status
        .lines()
        .find(|line| line.starts_with(field) && line[field.len()..].starts_with(':'))?;
    line[field.len() + 1..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// OS threads of this process, as the kernel counts them.
pub(crate) fn os_threads() -> u64 {
    proc_status("Threads").unwrap_or(0)
}

/// Peak resident memory of this process (high-water mark), in KiB.
pub(crate) fn peak_rss_kib() -> u64 {
    proc_status("VmHWM").unwrap_or(0)
}

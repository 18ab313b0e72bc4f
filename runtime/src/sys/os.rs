//! The few system calls mio does not wrap: the page size, a listener's
//! backlog, and which stack pages are resident (for `dump()`).

use std::io;
use std::os::fd::RawFd;
use std::sync::OnceLock;

/// The size of a memory page.
pub(crate) fn page_size() -> usize {
    static PAGE: OnceLock<usize> = OnceLock::new();
    // SAFETY: sysconf only reads a system constant.
    *PAGE.get_or_init(|| unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize)
}

/// Calls `listen(fd, backlog)` again on a listening socket: Linux accepts a
/// second `listen` to change the backlog.
pub(crate) fn listen(fd: RawFd, backlog: libc::c_int) -> io::Result<()> {
    // SAFETY: `listen` takes a plain fd and an int; the caller owns the fd
    // and keeps it open for the duration of the call.
    let rc = unsafe { libc::listen(fd, backlog) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Bytes of `[low, high)` (page-aligned, inside a live mapping of ours) that
/// are resident in memory; 0 if the kernel will not say.
pub(crate) fn resident_bytes(low: usize, high: usize) -> usize {
    let page = page_size();
    let pages = (high - low) / page;
    let mut resident = vec![0u8; pages];
    // SAFETY: mincore reads the page tables of a range we mapped and writes
    // one byte per page into a buffer of exactly that many bytes.
    let rc = unsafe { libc::mincore(low as *mut libc::c_void, high - low, resident.as_mut_ptr()) };
    if rc != 0 {
        return 0;
    }
    resident.iter().filter(|&&b| b & 1 != 0).count() * page
}

//! The few system calls mio does not wrap: the page size, a listener's
//! backlog, which stack pages are resident (for `dump()`), a listener with
//! `SO_REUSEPORT`, an fd's `O_NONBLOCK` flag, a `poll(2)` probe of one
//! fd's readiness (for waits that must not trust a cached edge), a TCP or
//! Unix stream read that also says how many bytes are left (`TCP_INQ`,
//! `SO_INQ`), a Unix read's message flags, the `IOV_MAX` cap on vectored
//! calls, and `pidfd_open`/`waitid` for child processes.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
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

/// `Ok(())` for a system call's zero, the OS error for its -1.
fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A listening TCP socket bound to `addr` with `SO_REUSEADDR` and
/// `SO_REUSEPORT` set before `bind` (std and mio set options only after),
/// non-blocking, close-on-exec, listening with `backlog`. Several such
/// sockets, in one process or several, share the port, and the kernel
/// spreads incoming connections over them.
pub(crate) fn reuseport_listener(
    addr: SocketAddr,
    backlog: libc::c_int,
) -> io::Result<std::net::TcpListener> {
    let domain = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    let kind = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: socket(2) takes three ints and returns a new fd or -1.
    let fd = unsafe { libc::socket(domain, kind, 0) };
    check(fd)?;
    // SAFETY: `fd` was just created by socket(2) and nothing else owns it.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let on: libc::c_int = 1;
    for option in [libc::SO_REUSEADDR, libc::SO_REUSEPORT] {
        // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from `&on`,
        // which lives for the call; `fd` is open (owned by `socket`).
        check(unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        })?;
    }
    match addr {
        SocketAddr::V4(v4) => {
            let raw = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: bind reads a `sockaddr_in` of exactly the length
            // given, from a value that lives for the call.
            check(unsafe {
                libc::bind(
                    fd,
                    (&raw as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            })?;
        }
        SocketAddr::V6(v6) => {
            let raw = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: as above, for a `sockaddr_in6`.
            check(unsafe {
                libc::bind(
                    fd,
                    (&raw as *const libc::sockaddr_in6).cast(),
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            })?;
        }
    }
    listen(fd, backlog)?;
    Ok(std::net::TcpListener::from(socket))
}

/// Sets or clears `O_NONBLOCK` on `fd`; returns whether it was set before.
///
/// A raw fd, like [`ready_now`]: fcntl on a closed fd fails with `EBADF`
/// and touches no memory.
pub(crate) fn set_nonblocking(raw: RawFd, on: bool) -> io::Result<bool> {
    // SAFETY: fcntl(F_GETFL) reads an fd's flags and touches no memory.
    let flags = unsafe { libc::fcntl(raw, libc::F_GETFL) };
    check(flags)?;
    let was = flags & libc::O_NONBLOCK != 0;
    let wanted = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    if wanted != flags {
        // SAFETY: fcntl(F_SETFL) with an int argument on an open fd.
        check(unsafe { libc::fcntl(raw, libc::F_SETFL, wanted) })?;
    }
    Ok(was)
}

/// Asks the kernel, without waiting, whether `fd` is ready now: readable
/// (or hung up, or in error) for `write == false`, writable for `true`.
/// Level-triggered, so it answers for the state, not for an edge.
///
/// It takes a raw fd because poll(2) on any number is memory-safe: an fd
/// closed meanwhile reports `POLLNVAL`, which counts as ready, so the
/// caller's next operation sees the error.
pub(crate) fn ready_now(fd: RawFd, write: bool) -> io::Result<bool> {
    let events = if write { libc::POLLOUT } else { libc::POLLIN };
    let mut probe = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    loop {
        // SAFETY: poll(2) reads and writes one `pollfd` we own, and a zero
        // timeout never blocks.
        let rc = unsafe { libc::poll(&mut probe, 1, 0) };
        if rc >= 0 {
            return Ok(rc > 0 && probe.revents != 0);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// A pidfd for the child `pid` (Linux 5.3 and later): readable once the
/// child has exited, so its exit can be waited for with the reactor. An
/// unreaped child's pid cannot be reused, so there is no race with exit.
pub(crate) fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    // SAFETY: the pidfd_open system call takes a pid and flags (0) and
    // returns a new fd or -1; it touches no memory of ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(fd).map_err(|_| io::Error::other("pidfd out of range"))?;
    // SAFETY: the kernel just created `fd` for us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Blocks until the child `pid` has exited, without reaping it (`waitid`
/// with `WNOWAIT`), so that `std::process::Child::try_wait` can then reap it
/// and read its status. For a helper thread, on kernels without pidfds.
pub(crate) fn wait_exited(pid: u32) -> io::Result<()> {
    let id = libc::id_t::from(pid);
    loop {
        // SAFETY: siginfo_t is plain data that waitid fills in; zeroes are
        // a valid value for it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid writes one siginfo_t into `info`, which we own.
        let rc = unsafe { libc::waitid(libc::P_PID, id, &mut info, libc::WEXITED | libc::WNOWAIT) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Asks the kernel to report, with every `recvmsg` that passes a control
/// buffer, how many bytes are left in the TCP socket's receive queue
/// (`TCP_INQ`, Linux 4.18). Plain `read`s are unchanged by it, so the option
/// is harmless on a socket later handed back to `std`.
pub(crate) fn enable_tcp_inq(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a live local;
    // the caller keeps `fd` open for the call.
    check(unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INQ,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
}

/// `SO_INQ` (and its cmsg type `SCM_INQ`): a Unix stream's `TCP_INQ`
/// (Linux 6.17; not yet named by the libc crate).
const SO_INQ: libc::c_int = 84;

/// Asks the kernel to report, with every `recvmsg` that passes a control
/// buffer, how many bytes are left in a Unix stream socket's receive queue
/// (`SO_INQ`). An older kernel refuses it with `ENOPROTOOPT`.
pub(crate) fn enable_unix_inq(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a live local;
    // the caller keeps `fd` open for the call.
    check(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            SO_INQ,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
}

/// The most buffers one vectored call passes to the kernel (its
/// `UIO_MAXIOV`; it refuses more with `EMSGSIZE`). std's vectored reads and
/// writes pass at most this many too, so a call given more reads or writes
/// only into the first `IOV_MAX`.
pub(crate) const IOV_MAX: usize = 1024;

/// The bytes a vectored call given `lens` can move at most: the sum over the
/// first [`IOV_MAX`] buffers, the ones the kernel is passed.
pub(crate) fn vectored_len(lens: impl Iterator<Item = usize>) -> usize {
    lens.take(IOV_MAX).fold(0, usize::saturating_add)
}

/// One `recvmsg` into the first [`IOV_MAX`] of `bufs` on a socket with
/// `TCP_INQ` on: the bytes read, and the bytes the kernel still holds after
/// them (`None` if it sent no count). Errors as `read`'s, `WouldBlock`
/// included.
pub(crate) fn recv_inq(
    fd: RawFd,
    bufs: &mut [std::io::IoSliceMut<'_>],
) -> io::Result<(usize, Option<usize>)> {
    recv_counted(fd, bufs, libc::SOL_TCP, libc::TCP_CM_INQ).map(|(n, left, _)| (n, left))
}

/// [`recv_inq`] for a Unix stream with `SO_INQ` on, with the message flags
/// too (`MSG_CTRUNC`: descriptors or credentials did not fit, so bytes may
/// follow a message that carried them). Descriptors the peer sent are
/// closed, as a read with no control buffer has the kernel discard them.
pub(crate) fn recv_unix_inq(
    fd: RawFd,
    bufs: &mut [std::io::IoSliceMut<'_>],
) -> io::Result<(usize, Option<usize>, libc::c_int)> {
    recv_counted(fd, bufs, libc::SOL_SOCKET, SO_INQ)
}

/// One `recvmsg` with a control buffer, reading the count cmsg of `level`
/// and `kind` (an int: the bytes left queued) and closing any descriptors
/// (`SCM_RIGHTS`) that arrive with the bytes.
fn recv_counted(
    fd: RawFd,
    bufs: &mut [std::io::IoSliceMut<'_>],
    level: libc::c_int,
    kind: libc::c_int,
) -> io::Result<(usize, Option<usize>, libc::c_int)> {
    // Room for the count's cmsg and a few more, aligned as cmsghdr must be.
    #[repr(C)]
    struct Control {
        _align: [libc::cmsghdr; 0],
        bytes: [u8; 64],
    }
    let mut control = Control {
        _align: [],
        bytes: [0; 64],
    };
    let passed = bufs.len().min(IOV_MAX);
    let bufs = &mut bufs[..passed];
    // SAFETY: an all-zero msghdr is a valid empty one (null pointers, zero
    // lengths); the fields set below point at memory that outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // `IoSliceMut` is ABI-compatible with `iovec` on Unix (std guarantees it).
    msg.msg_iov = bufs.as_mut_ptr().cast::<libc::iovec>();
    msg.msg_iovlen = bufs.len() as _;
    msg.msg_control = control.bytes.as_mut_ptr().cast();
    msg.msg_controllen = control.bytes.len() as _;
    // SAFETY: `msg` describes the caller's iovecs (each a writable slice
    // borrowed for the call) and a control buffer of `msg_controllen`
    // bytes, all live for the call; the caller keeps `fd` open.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut inq = None;
    let int_len = std::mem::size_of::<libc::c_int>();
    // SAFETY: the kernel filled `msg_control` with `msg_controllen` bytes of
    // cmsgs; CMSG_FIRSTHDR and CMSG_NXTHDR stay inside them and return null
    // past the end. A count cmsg is read only if its own length says it
    // holds a whole int (a truncated one is ignored: no count, no clear);
    // the descriptors of an SCM_RIGHTS cmsg are the ints its length covers,
    // just installed in this process for us alone. Both are read unaligned
    // since CMSG_DATA promises no alignment for them.
    unsafe {
        let header = libc::CMSG_LEN(0) as usize;
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let len = (*cmsg).cmsg_len as usize;
            let data = libc::CMSG_DATA(cmsg).cast::<libc::c_int>();
            if (*cmsg).cmsg_level == level
                && (*cmsg).cmsg_type == kind
                && len >= header + int_len
                && msg.msg_flags & libc::MSG_CTRUNC == 0
            {
                inq = usize::try_from(std::ptr::read_unaligned(data)).ok();
            } else if (*cmsg).cmsg_level == libc::SOL_SOCKET
                && (*cmsg).cmsg_type == libc::SCM_RIGHTS
            {
                for i in 0..len.saturating_sub(header) / int_len {
                    libc::close(std::ptr::read_unaligned(data.add(i)));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((n as usize, inq, msg.msg_flags))
}

/// One `recvmsg` into the first [`IOV_MAX`] of `bufs` with no control
/// buffer: the bytes read and the
/// message flags (`MSG_CTRUNC` when the kernel discarded descriptors or
/// credentials that came with them). Errors as `read`'s, `WouldBlock`
/// included.
pub(crate) fn recv_flags(
    fd: RawFd,
    bufs: &mut [std::io::IoSliceMut<'_>],
) -> io::Result<(usize, libc::c_int)> {
    let passed = bufs.len().min(IOV_MAX);
    let bufs = &mut bufs[..passed];
    // SAFETY: an all-zero msghdr is a valid empty one (null pointers, zero
    // lengths, no control buffer); the iovecs set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // `IoSliceMut` is ABI-compatible with `iovec` on Unix (std guarantees it).
    msg.msg_iov = bufs.as_mut_ptr().cast::<libc::iovec>();
    msg.msg_iovlen = bufs.len() as _;
    // SAFETY: `msg` describes the caller's iovecs (each a writable slice
    // borrowed for the call) and no control buffer; the caller keeps `fd`
    // open.
    let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((n as usize, msg.msg_flags))
}

//! The part TCP and Unix streams share: reads and writes in the one I/O shape
//! (`registered.rs`), per-socket timeouts, and the `Read`/`Write` impls for
//! both types.
//!
//! A TCP stream reads with `recvmsg` and `TCP_INQ` where the kernel has it:
//! each read also says how many bytes the kernel still holds, and only a
//! read that took the last one clears the side's readiness. That is the
//! truth where a short read is only a guess: a read that fills its buffer
//! exactly (`read_exact` of whole messages) may have taken the last byte,
//! and the next read parks at once instead of making a call that can only
//! say `WouldBlock`; a read stopped short at urgent data's mark has not,
//! and the bytes after the mark are read next instead of slept through.
//! A Unix stream reads the same way with `SO_INQ` (Linux 6.17), which also
//! covers a read stopped at an out-of-band byte's mark (`MSG_OOB`, Linux
//! 5.15) with bytes behind it; descriptors that arrive with the bytes are
//! closed, as a plain read has the kernel discard them. Where the kernel
//! refuses `SO_INQ`, a short read clears the readiness unless the kernel
//! stopped it after a message that carried descriptors or credentials
//! (`MSG_CTRUNC`), which it does with bytes still queued. TCP where the
//! kernel refuses `TCP_INQ` clears on a short read.

use std::cell::Cell;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::time::{Duration, Instant};

use super::registered::{Deadline, Registered};
use crate::sources::reactor::Direction;

/// A registered stream socket with std-like read and write timeouts.
#[derive(Debug)]
pub(crate) struct Stream<S: std::os::fd::AsRawFd> {
    pub(crate) reg: Registered<S>,
    read_timeout: Cell<Option<Duration>>,
    write_timeout: Cell<Option<Duration>>,
    /// How a read learns whether it drained the kernel's queue.
    reads: Reads,
}

impl<S: std::os::fd::AsRawFd> Stream<S> {
    /// A Unix stream: turns `SO_INQ` on, and reads without the count if
    /// the kernel refuses it.
    pub(crate) fn new(source: S) -> io::Result<Self> {
        let reads = match crate::sys::os::enable_unix_inq(source.as_raw_fd()) {
            Ok(()) => Reads::UnixInq,
            Err(_) => Reads::Unix,
        };
        Ok(Stream {
            reg: Registered::new(source)?,
            read_timeout: Cell::new(None),
            write_timeout: Cell::new(None),
            reads,
        })
    }

    /// [`new`](Self::new) for a TCP socket: turns `TCP_INQ` on, and reads
    /// as plain `read`s if the kernel refuses it.
    pub(crate) fn new_tcp(source: S) -> io::Result<Self> {
        let reads = match crate::sys::os::enable_tcp_inq(source.as_raw_fd()) {
            Ok(()) => Reads::TcpInq,
            Err(_) => Reads::Short,
        };
        Ok(Stream {
            reg: Registered::new(source)?,
            read_timeout: Cell::new(None),
            write_timeout: Cell::new(None),
            reads,
        })
    }

    /// Deregisters the socket and returns it.
    pub(crate) fn into_source(self) -> S {
        self.reg.into_inner()
    }
}

impl<S: std::os::fd::AsRawFd> Stream<S>
where
    for<'a> &'a S: Read + Write,
{
    pub(crate) fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_vectored(&mut [IoSliceMut::new(buf)])
    }

    pub(crate) fn read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        // What the call can read at most: the kernel is passed only the
        // first IOV_MAX buffers (std's `read_vectored` does the same), and a
        // read that fills those is no sign of a drained queue.
        let asked = crate::sys::os::vectored_len(bufs.iter().map(|b| b.len()));
        let deadline = self
            .read_timeout
            .get()
            .map_or(Deadline::Never, Deadline::After);
        match self.reads {
            Reads::TcpInq => {
                // Drained: the kernel says nothing is left (after a FIN it
                // says 1, so the read of the end of stream comes next).
                // Without the count, a short read.
                let drained = |&(n, left): &(usize, Option<usize>)| {
                    n > 0 && left.map_or(n < asked, |left| left == 0)
                };
                let read = |s: &S| crate::sys::os::recv_inq(s.as_raw_fd(), bufs);
                self.reg
                    .io_until(Direction::Read, deadline, "read", drained, read)
                    .map(|(n, _)| n)
            }
            Reads::UnixInq => {
                // Drained: the kernel says nothing is left, and no message
                // with descriptors or credentials was cut short. Without
                // the count, as `Unix` below.
                let drained = |&(n, left, flags): &(usize, Option<usize>, libc::c_int)| {
                    n > 0
                        && flags & libc::MSG_CTRUNC == 0
                        && left.map_or(n < asked, |left| left == 0)
                };
                let read = |s: &S| crate::sys::os::recv_unix_inq(s.as_raw_fd(), bufs);
                self.reg
                    .io_until(Direction::Read, deadline, "read", drained, read)
                    .map(|(n, _, _)| n)
            }
            Reads::Unix => {
                // Drained: a short read, unless the kernel stopped it after
                // a message that carried descriptors or credentials (it
                // discards them, as no control buffer is passed, and says
                // `MSG_CTRUNC`): bytes may follow.
                let drained = |&(n, flags): &(usize, libc::c_int)| {
                    n > 0 && n < asked && flags & libc::MSG_CTRUNC == 0
                };
                let read = |s: &S| crate::sys::os::recv_flags(s.as_raw_fd(), bufs);
                self.reg
                    .io_until(Direction::Read, deadline, "read", drained, read)
                    .map(|(n, _)| n)
            }
            Reads::Short => self.reg.io_until(
                Direction::Read,
                deadline,
                "read",
                |&n| n > 0 && n < asked,
                |mut s| s.read_vectored(bufs),
            ),
        }
    }

    pub(crate) fn write(&self, buf: &[u8]) -> io::Result<usize> {
        self.reg.io_bytes(
            Direction::Write,
            self.write_timeout.get(),
            "write",
            buf.len(),
            |mut s| s.write(buf),
        )
    }

    pub(crate) fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.reg.io_bytes(
            Direction::Write,
            self.write_timeout.get(),
            "write",
            // std writes only the first IOV_MAX buffers: writing all of
            // those is no sign of a full socket buffer.
            crate::sys::os::vectored_len(bufs.iter().map(|b| b.len())),
            |mut s| s.write_vectored(bufs),
        )
    }

    /// Returns once the socket may be readable: at once if the reactor has
    /// seen readiness that no read has used up, else after parking for it.
    pub(crate) fn wait_readable(&self) -> io::Result<()> {
        let deadline = self
            .read_timeout
            .get()
            .and_then(|t| Instant::now().checked_add(t));
        self.reg.wait_until(Direction::Read, deadline, "read")
    }

    pub(crate) fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.read_timeout.set(check_timeout(timeout)?);
        Ok(())
    }

    pub(crate) fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.write_timeout.set(check_timeout(timeout)?);
        Ok(())
    }

    pub(crate) fn read_timeout(&self) -> Option<Duration> {
        self.read_timeout.get()
    }

    pub(crate) fn write_timeout(&self) -> Option<Duration> {
        self.write_timeout.get()
    }
}

/// How a stream's reads learn whether they drained the kernel's queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reads {
    /// TCP with `TCP_INQ`: `recvmsg` says how many bytes are left.
    TcpInq,
    /// A Unix stream with `SO_INQ`: `recvmsg` says how many bytes are
    /// left, and whether a message with descriptors or credentials was cut.
    UnixInq,
    /// A Unix stream where the kernel refused `SO_INQ` (before Linux 6.17):
    /// `recvmsg` says whether a message with descriptors or credentials
    /// stopped the read short; any other short read counts as drained (a
    /// read stopped at an out-of-band byte's mark is the one case that guess
    /// gets wrong).
    Unix,
    /// TCP where the kernel refused `TCP_INQ`: a short read counts as
    /// drained (a read stopped at urgent data's mark is the one case that
    /// guess gets wrong).
    Short,
}

/// As in std, a zero timeout is an error rather than "never wait".
pub(crate) fn check_timeout(timeout: Option<Duration>) -> io::Result<Option<Duration>> {
    match timeout {
        Some(t) if t.is_zero() => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cannot set a zero duration timeout",
        )),
        other => Ok(other),
    }
}

/// `Read` and `Write` for a stream type and for a shared reference to it,
/// delegating to its `inner: Stream<_>`.
macro_rules! impl_read_write {
    ($ty:ty) => {
        impl std::io::Read for &$ty {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.inner.read(buf)
            }
            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                self.inner.read_vectored(bufs)
            }
        }
        impl std::io::Write for &$ty {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.inner.write(buf)
            }
            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                self.inner.write_vectored(bufs)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        impl std::io::Read for $ty {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.inner.read(buf)
            }
            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                self.inner.read_vectored(bufs)
            }
        }
        impl std::io::Write for $ty {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.inner.write(buf)
            }
            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                self.inner.write_vectored(bufs)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
    };
}
pub(crate) use impl_read_write;

/// The timeout and readiness methods both stream types expose, documented once.
macro_rules! impl_stream_common {
    ($ty:ty) => {
        impl $ty {
            /// Bounds each read: one that waits longer fails with
            /// `ErrorKind::TimedOut`. `None` (the default) waits forever.
            /// A zero duration is an error, as in std.
            pub fn set_read_timeout(
                &self,
                timeout: Option<std::time::Duration>,
            ) -> std::io::Result<()> {
                self.inner.set_read_timeout(timeout)
            }
            /// Bounds each write, like [`set_read_timeout`](Self::set_read_timeout).
            pub fn set_write_timeout(
                &self,
                timeout: Option<std::time::Duration>,
            ) -> std::io::Result<()> {
                self.inner.set_write_timeout(timeout)
            }
            /// The read timeout, if any.
            pub fn read_timeout(&self) -> Option<std::time::Duration> {
                self.inner.read_timeout()
            }
            /// The write timeout, if any.
            pub fn write_timeout(&self) -> Option<std::time::Duration> {
                self.inner.write_timeout()
            }
            /// Returns once the socket may have bytes to read (or was closed),
            /// honouring the read timeout: at once if readiness was reported
            /// and no read has since found the socket drained (bytes an
            /// earlier read left in the kernel are never slept through, but
            /// for the out-of-band mark on kernels without `TCP_INQ` or
            /// `SO_INQ`: see `docs/readiness-and-edge-triggering.md`), else
            /// after parking until the hub sees readiness. The return may be
            /// spurious: a read can still block.
            pub fn wait_readable(&self) -> std::io::Result<()> {
                self.inner.wait_readable()
            }
        }
    };
}
pub(crate) use impl_stream_common;

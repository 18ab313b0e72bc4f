//! The part TCP and Unix streams share: reads and writes in the one I/O shape
//! (`registered.rs`), per-socket timeouts, and the `Read`/`Write` impls for
//! both types.
//!
//! A short read clears the side's readiness (the kernel's queue ran dry), but
//! a read that fills its buffer exactly cannot tell: the next read would be
//! a call that fails with `WouldBlock`. A TCP stream whose reads fill their
//! buffers exactly (`read_exact` of whole messages) therefore switches to
//! `recvmsg` with `TCP_INQ` where the kernel has it: each read also says how
//! many bytes are left, and one that took the last clears the readiness so
//! the next read parks at once. A short read switches it back to plain
//! reads, which cost a little less.

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
    /// `TCP_INQ` is on: [`read`](Self::read) can go through `recvmsg` and
    /// learn whether it drained the receive queue.
    inq: bool,
    /// The last read filled its buffer exactly (only tracked with `inq`):
    /// the next read goes through `recvmsg`.
    exact: Cell<bool>,
}

impl<S: std::os::fd::AsRawFd> Stream<S> {
    pub(crate) fn new(source: S) -> io::Result<Self> {
        Ok(Stream {
            reg: Registered::new(source)?,
            read_timeout: Cell::new(None),
            write_timeout: Cell::new(None),
            inq: false,
            exact: Cell::new(false),
        })
    }

    /// [`new`](Self::new) for a TCP socket: turns `TCP_INQ` on, and reads
    /// as plain `read`s if the kernel refuses it.
    pub(crate) fn new_tcp(source: S) -> io::Result<Self> {
        let inq = crate::sys::os::enable_tcp_inq(source.as_raw_fd()).is_ok();
        Ok(Stream {
            inq,
            ..Stream::new(source)?
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
        let asked = buf.len();
        if self.exact.get() {
            let deadline = self
                .read_timeout
                .get()
                .map_or(Deadline::Never, Deadline::After);
            // Drained: the read stopped short, or the kernel says nothing is
            // left (after a FIN it says 1, so the read of the 0 comes next).
            let drained =
                |&(n, left): &(usize, Option<usize>)| n > 0 && (n < asked || left == Some(0));
            let read = |s: &S| crate::sys::os::recv_inq(s.as_raw_fd(), buf);
            let (n, _) = self
                .reg
                .io_until(Direction::Read, deadline, "read", drained, read)?;
            self.exact.set(n == asked && n > 0);
            return Ok(n);
        }
        let n = self.reg.io_bytes(
            Direction::Read,
            self.read_timeout.get(),
            "read",
            asked,
            |mut s| s.read(buf),
        )?;
        if self.inq && n == asked && n > 0 {
            self.exact.set(true);
        }
        Ok(n)
    }

    pub(crate) fn read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let asked = bufs.iter().map(|b| b.len()).sum();
        self.reg.io_bytes(
            Direction::Read,
            self.read_timeout.get(),
            "read",
            asked,
            |mut s| s.read_vectored(bufs),
        )
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
            bufs.iter().map(|b| b.len()).sum(),
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
            /// earlier read left in the kernel are never slept through), else
            /// after parking until the hub sees readiness. The return may be
            /// spurious: a read can still block.
            pub fn wait_readable(&self) -> std::io::Result<()> {
                self.inner.wait_readable()
            }
        }
    };
}
pub(crate) use impl_stream_common;

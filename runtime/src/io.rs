//! [`Async`]: any file descriptor, registered with the hub, so that waiting
//! on it parks the coroutine. Pipes, eventfds, inotify, timerfds, a TTY, a
//! child's stdout: anything `epoll` can watch.
//!
//! `Async::new` sets the fd non-blocking and registers it with this thread's
//! hub's reactor, exactly as a socket is (`net/registered.rs`), and every
//! operation runs in the one I/O shape: try; on `WouldBlock` clear the
//! side's cached readiness (with the tick read before the call) and park
//! until the next edge; retry. Unlike a stream socket, a short read is not
//! taken to mean "drained": a TTY returns one line per read and inotify one
//! batch of events, with more behind them, so readiness is cleared only on
//! `WouldBlock` (the cost: one extra system call before a park).
//!
//! [`readable`](Async::readable) and [`writable`](Async::writable) are for
//! code that makes its own system calls on [`get_ref`](Async::get_ref). The
//! reactor never sees those fail, so a wait that trusted its cache would
//! return at once forever; instead the wait asks the kernel (`poll(2)` with
//! a zero timeout) whenever the cache says "maybe": ready readiness that was
//! reported and not used up returns at once, stale readiness is cleared and
//! the wait parks. See `docs/readiness-and-edge-triggering.md`.

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use crate::net::registered::{Deadline, Registered};
use crate::sources::reactor::Direction;

/// A file descriptor owned by `T`, registered with this thread's hub: its
/// reads and writes park the calling coroutine instead of blocking the hub.
///
/// `Read` and `Write` are implemented for `Async<T>` when `T` has them, and
/// for `&Async<T>` when `&T` has them (pipes, files, sockets), so a reader
/// and a writer coroutine can share one value. Not `Send`: it belongs to
/// its hub's thread.
///
/// ```
/// use std::io::{Read, Write};
/// use greenhub::io::Async;
/// greenhub::run(|| {
///     let (reader, writer) = std::io::pipe().unwrap();
///     let (reader, writer) = (Async::new(reader).unwrap(), Async::new(writer).unwrap());
///     let echo = greenhub::spawn(move || {
///         let mut line = [0; 5];
///         (&reader).read_exact(&mut line).unwrap(); // parks until written
///         line
///     });
///     (&writer).write_all(b"hello").unwrap();
///     assert_eq!(&echo.join().unwrap(), b"hello");
/// });
/// ```
pub struct Async<T: AsRawFd> {
    reg: Registered<T>,
    /// Whether `O_NONBLOCK` was set before `new` set it, so `into_inner`
    /// can give the fd back as it found it.
    was_nonblocking: bool,
}

impl<T: AsRawFd> Async<T> {
    /// Sets `io`'s fd non-blocking and registers it with this thread's hub.
    /// Fails outside `greenhub::run`, or for an fd `epoll` cannot watch (a
    /// regular file: its reads never block, so there is nothing to wait for).
    pub fn new(io: T) -> io::Result<Async<T>> {
        let fd = io.as_raw_fd();
        let was_nonblocking = set_nonblocking(fd, true)?;
        match Registered::new(io) {
            Ok(reg) => Ok(Async {
                reg,
                was_nonblocking,
            }),
            Err(err) => {
                if !was_nonblocking {
                    let _ = set_nonblocking(fd, false);
                }
                Err(err)
            }
        }
    }

    /// The wrapped value.
    pub fn get_ref(&self) -> &T {
        self.reg.get()
    }

    /// The wrapped value, mutably. Do not swap its fd for another.
    pub fn get_mut(&mut self) -> &mut T {
        self.reg.get_mut()
    }

    /// Deregisters the fd and gives the value back, with `O_NONBLOCK` as it
    /// was before [`new`](Self::new).
    pub fn into_inner(self) -> io::Result<T> {
        let was_nonblocking = self.was_nonblocking;
        let io = self.reg.into_inner();
        set_nonblocking(io.as_raw_fd(), was_nonblocking)?;
        Ok(io)
    }

    /// Parks until the fd is readable (or hung up, or in error). Returns at
    /// once if readiness was reported and the data is still there, whatever
    /// earlier reads took; parks for the next edge otherwise. For code that
    /// reads through [`get_ref`](Self::get_ref) itself; honours enclosing
    /// `timeout`s.
    pub fn readable(&self) -> io::Result<()> {
        self.reg
            .registration()
            .wait_ready(Direction::Read, Deadline::Never, "readable")
    }

    /// Parks until the fd is writable, like [`readable`](Self::readable).
    pub fn writable(&self) -> io::Result<()> {
        self.reg
            .registration()
            .wait_ready(Direction::Write, Deadline::Never, "writable")
    }

    /// Runs `op` (a non-blocking read, say) until it does not fail with
    /// `WouldBlock`, parking for readability between tries. The shape every
    /// read of this type uses; for operations `Read` does not cover (an
    /// eventfd's 8-byte counter, `recvmsg`).
    pub fn read_with<R>(&self, op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        self.reg
            .io_until(Direction::Read, Deadline::Never, "read", |_| false, op)
    }

    /// [`read_with`](Self::read_with) with `&mut T`.
    pub fn read_with_mut<R>(&mut self, op: impl FnMut(&mut T) -> io::Result<R>) -> io::Result<R> {
        self.reg
            .io_until_mut(Direction::Read, Deadline::Never, "read", |_| false, op)
    }

    /// Runs `op` (a non-blocking write) until it does not fail with
    /// `WouldBlock`, parking for writability between tries.
    pub fn write_with<R>(&self, op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        self.reg
            .io_until(Direction::Write, Deadline::Never, "write", |_| false, op)
    }

    /// [`write_with`](Self::write_with) with `&mut T`.
    pub fn write_with_mut<R>(&mut self, op: impl FnMut(&mut T) -> io::Result<R>) -> io::Result<R> {
        self.reg
            .io_until_mut(Direction::Write, Deadline::Never, "write", |_| false, op)
    }

    /// The registration, for `select`'s readiness arms.
    pub(crate) fn registration(&self) -> &crate::net::registered::Registration {
        self.reg.registration()
    }
}

fn set_nonblocking(fd: RawFd, on: bool) -> io::Result<bool> {
    // The value that owns `fd` is borrowed by the caller for this call.
    crate::sys::os::set_nonblocking(fd, on)
}

impl<T: AsRawFd + Read> Read for Async<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_with_mut(|io| io.read(buf))
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.read_with_mut(|io| io.read_vectored(bufs))
    }
}

impl<T: AsRawFd> Read for &Async<T>
where
    for<'a> &'a T: Read,
{
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_with(|mut io| io.read(buf))
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.read_with(|mut io| io.read_vectored(bufs))
    }
}

impl<T: AsRawFd + Write> Write for Async<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_with_mut(|io| io.write(buf))
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.write_with_mut(|io| io.write_vectored(bufs))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_with_mut(|io| io.flush())
    }
}

impl<T: AsRawFd> Write for &Async<T>
where
    for<'a> &'a T: Write,
{
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_with(|mut io| io.write(buf))
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.write_with(|mut io| io.write_vectored(bufs))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_with(|mut io| io.flush())
    }
}

impl<T: AsRawFd> AsRawFd for Async<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.get_ref().as_raw_fd()
    }
}

impl<T: AsRawFd + AsFd> AsFd for Async<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.get_ref().as_fd()
    }
}

impl<T: AsRawFd + fmt::Debug> fmt::Debug for Async<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Async").field("io", self.get_ref()).finish()
    }
}

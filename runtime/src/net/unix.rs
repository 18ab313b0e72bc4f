//! Unix domain sockets: [`UnixStream`] and [`UnixListener`], cooperative
//! versions of std's. No ports to run out of, and cheaper connects than
//! loopback TCP: the way to hold 10,000 connections to one local server.

use std::fmt;
use std::io;
use std::net::Shutdown;
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use super::raise_backlog;
use super::registered::Registered;
use super::stream::{impl_read_write, impl_stream_common, Stream};
use super::{outcome_to_io, outside_hub, timed_out};
use crate::hub::park::{Outcome, WaitOn};
use crate::sources::reactor::Direction;

/// First and longest pause between connect attempts while a listener's
/// backlog is full: short enough to catch up fast, long enough not to spin.
const RETRY_FIRST: Duration = Duration::from_millis(1);
const RETRY_MAX: Duration = Duration::from_millis(50);

/// A Unix stream connection whose reads and writes park the calling coroutine.
pub struct UnixStream {
    inner: Stream<mio::net::UnixStream>,
}

impl UnixStream {
    /// Connects to the socket at `path`. When the listener's backlog is full
    /// the kernel says `EAGAIN`; the connect is retried with a growing pause
    /// (the coroutine sleeps, the hub does not) until it succeeds.
    pub fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        UnixStream::connect_deadline(path.as_ref(), None)
    }

    /// Like [`connect`](Self::connect), failing with `ErrorKind::TimedOut`
    /// if the listener stays full for `timeout`.
    pub fn connect_timeout(path: impl AsRef<Path>, timeout: Duration) -> io::Result<UnixStream> {
        UnixStream::connect_deadline(path.as_ref(), Instant::now().checked_add(timeout))
    }

    fn connect_deadline(path: &Path, deadline: Option<Instant>) -> io::Result<UnixStream> {
        let mut pause = RETRY_FIRST;
        loop {
            match mio::net::UnixStream::connect(path) {
                Ok(stream) => {
                    return Ok(UnixStream {
                        inner: Stream::new(stream)?,
                    })
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Err(err),
            }
            let now = Instant::now();
            if deadline.is_some_and(|deadline| now >= deadline) {
                return Err(timed_out("connect"));
            }
            let wake = deadline.map_or(now + pause, |deadline| deadline.min(now + pause));
            let outcome = crate::context::with(|hub| hub.park(WaitOn::Deadline, Some(wake)))
                .ok_or_else(outside_hub)?;
            match outcome {
                Outcome::Deadline | Outcome::Notified => {}
                other => outcome_to_io(other, "connect")?,
            }
            pause = (pause * 2).min(RETRY_MAX);
        }
    }

    /// A connected pair of sockets.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = mio::net::UnixStream::pair()?;
        Ok((
            UnixStream {
                inner: Stream::new(a)?,
            },
            UnixStream {
                inner: Stream::new(b)?,
            },
        ))
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.reg.get().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.reg.get().local_addr()
    }

    /// Shuts down the read side, the write side or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.reg.get().shutdown(how)
    }

    /// Takes the socket's pending error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.reg.get().take_error()
    }
}

impl_stream_common!(UnixStream);
impl_read_write!(UnixStream);

impl UnixStream {
    pub(super) fn from_mio(stream: mio::net::UnixStream) -> io::Result<UnixStream> {
        Ok(UnixStream {
            inner: Stream::new(stream)?,
        })
    }

    pub(super) fn into_mio(self) -> mio::net::UnixStream {
        self.inner.into_source()
    }

    /// The registration, for `select`'s readiness arms.
    pub(crate) fn registration(&self) -> &super::registered::Registration {
        self.inner.reg.registration()
    }

    pub(super) fn mio(&self) -> &mio::net::UnixStream {
        self.inner.reg.get()
    }
}

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.reg.fmt(f)
    }
}

/// A Unix listening socket whose `accept` parks the calling coroutine.
pub struct UnixListener {
    reg: Registered<mio::net::UnixListener>,
}

impl UnixListener {
    /// Binds to `path` (which must not exist) and listens, backlog 4096.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        let listener = mio::net::UnixListener::bind(path)?;
        raise_backlog(&listener)?;
        Ok(UnixListener {
            reg: Registered::new(listener)?,
        })
    }

    /// Parks until a connection arrives; returns it and the peer's address.
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (stream, addr) = self
            .reg
            .io(Direction::Read, None, "accept", |l| l.accept())?;
        Ok((
            UnixStream {
                inner: Stream::new(stream)?,
            },
            addr,
        ))
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.reg.get().local_addr()
    }
}

impl UnixListener {
    pub(super) fn from_mio(listener: mio::net::UnixListener) -> io::Result<UnixListener> {
        Ok(UnixListener {
            reg: Registered::new(listener)?,
        })
    }

    pub(super) fn into_mio(self) -> mio::net::UnixListener {
        self.reg.into_inner()
    }

    /// The registration, for `select`'s readiness arms.
    pub(crate) fn registration(&self) -> &super::registered::Registration {
        self.reg.registration()
    }

    pub(super) fn mio(&self) -> &mio::net::UnixListener {
        self.reg.get()
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.reg.fmt(f)
    }
}

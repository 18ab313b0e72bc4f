//! TCP: [`TcpStream`] and [`TcpListener`], cooperative versions of std's.

use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use super::addr::{each_addr, ToSocketAddrs};
use super::raise_backlog;
use super::registered::{Deadline, Registered};
use super::stream::{impl_read_write, impl_stream_common, Stream};
use crate::sources::reactor::Direction;

/// A TCP connection whose reads and writes park the calling coroutine.
///
/// Implements `Read` and `Write` (also for `&TcpStream`). One coroutine
/// reading and one writing at a time is the intended use.
///
/// ```no_run
/// use std::io::{Read, Write};
/// greenhub::run(|| {
///     let mut redis = greenhub::net::TcpStream::connect("127.0.0.1:6379").unwrap();
///     redis.write_all(b"PING\r\n").unwrap();
///     let mut reply = [0; 7];
///     redis.read_exact(&mut reply).unwrap();
///     assert_eq!(&reply, b"+PONG\r\n");
/// });
/// ```
pub struct TcpStream {
    inner: Stream<mio::net::TcpStream>,
}

impl TcpStream {
    /// Connects to `addr`, trying each address it resolves to (host names
    /// resolve on a helper thread). Parks until the connection is made.
    pub fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        each_addr(addr, |addr| TcpStream::connect_deadline(addr, None))
    }

    /// Connects to one address, failing with `ErrorKind::TimedOut` after `timeout`.
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        TcpStream::connect_deadline(*addr, Instant::now().checked_add(timeout))
    }

    fn connect_deadline(addr: SocketAddr, deadline: Option<Instant>) -> io::Result<TcpStream> {
        let stream = TcpStream {
            inner: Stream::new_tcp(mio::net::TcpStream::connect(addr)?)?,
        };
        // A loopback connect has usually completed by now; ask before parking
        // (one getpeername beats a trip through the poller). Not connected
        // yet counts as `WouldBlock`: park until the socket turns writable.
        stream.inner.reg.io_until(
            Direction::Write,
            Deadline::At(deadline),
            "connect",
            |_| false,
            |socket| {
                if let Some(err) = socket.take_error()? {
                    return Err(err);
                }
                match socket.peer_addr() {
                    Ok(_) => Ok(()),
                    Err(err) if err.kind() == io::ErrorKind::NotConnected => {
                        Err(io::ErrorKind::WouldBlock.into())
                    }
                    Err(err) if err.raw_os_error() == Some(libc::EINPROGRESS) => {
                        Err(io::ErrorKind::WouldBlock.into())
                    }
                    Err(err) => Err(err),
                }
            },
        )?;
        Ok(stream)
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

    /// Sets `TCP_NODELAY`: send small writes at once instead of batching them.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.inner.reg.get().set_nodelay(nodelay)
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.inner.reg.get().nodelay()
    }

    /// Takes the socket's pending error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.reg.get().take_error()
    }
}

impl_stream_common!(TcpStream);
impl_read_write!(TcpStream);

impl TcpStream {
    pub(super) fn from_mio(stream: mio::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream {
            inner: Stream::new_tcp(stream)?,
        })
    }

    pub(super) fn into_mio(self) -> mio::net::TcpStream {
        self.inner.into_source()
    }

    /// The registration, for `select`'s readiness arms.
    pub(crate) fn registration(&self) -> &super::registered::Registration {
        self.inner.reg.registration()
    }

    pub(super) fn mio(&self) -> &mio::net::TcpStream {
        self.inner.reg.get()
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.reg.fmt(f)
    }
}

/// A TCP listening socket whose `accept` parks the calling coroutine.
pub struct TcpListener {
    reg: Registered<mio::net::TcpListener>,
}

impl TcpListener {
    /// Binds to `addr` (the first address that works) and listens, with a
    /// backlog of 4096 so bursts of connects are not dropped.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        each_addr(addr, |addr| {
            let listener = mio::net::TcpListener::bind(addr)?;
            raise_backlog(&listener)?;
            Ok(TcpListener {
                reg: Registered::new(listener)?,
            })
        })
    }

    /// Like [`bind`](Self::bind), with `SO_REUSEPORT` set before binding:
    /// several listeners (in this process, on other hubs or threads, or in
    /// other processes of the same user) may bind the same address, and the
    /// kernel spreads incoming connections over them. The way to run one
    /// hub per core behind one port.
    ///
    /// ```
    /// use greenhub::net::TcpListener;
    /// greenhub::run(|| {
    ///     let first = TcpListener::bind_reuseport("127.0.0.1:0").unwrap();
    ///     let addr = first.local_addr().unwrap();
    ///     let second = TcpListener::bind_reuseport(addr).unwrap();
    ///     assert_eq!(second.local_addr().unwrap(), addr);
    ///     assert!(TcpListener::bind(addr).is_err(), "a plain bind is refused");
    /// });
    /// ```
    pub fn bind_reuseport(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        each_addr(addr, |addr| {
            let listener = crate::sys::os::reuseport_listener(addr, super::LISTEN_BACKLOG)?;
            TcpListener::from_mio(mio::net::TcpListener::from_std(listener))
        })
    }

    /// Parks until a connection arrives; returns it and the peer's address.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, addr) = self
            .reg
            .io(Direction::Read, None, "accept", |l| l.accept())?;
        Ok((
            TcpStream {
                inner: Stream::new_tcp(stream)?,
            },
            addr,
        ))
    }

    /// The local address, with the port the OS chose for port 0.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.reg.get().local_addr()
    }
}

impl TcpListener {
    pub(super) fn from_mio(listener: mio::net::TcpListener) -> io::Result<TcpListener> {
        Ok(TcpListener {
            reg: Registered::new(listener)?,
        })
    }

    pub(super) fn into_mio(self) -> mio::net::TcpListener {
        self.reg.into_inner()
    }

    /// The registration, for `select`'s readiness arms.
    pub(crate) fn registration(&self) -> &super::registered::Registration {
        self.reg.registration()
    }

    pub(super) fn mio(&self) -> &mio::net::TcpListener {
        self.reg.get()
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.reg.fmt(f)
    }
}

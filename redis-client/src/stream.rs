//! The socket under a connection: greenhub's cooperative one inside a hub,
//! std's on a plain thread, either of them under TLS for `rediss://` (feature
//! `tls`: `tls.rs` runs rustls over the socket). `connection.rs` is the only
//! user; the code above [`Stream`] is the same for every kind.
//!
//! A socket belongs to the [`Context`] it was made in. A std socket used in
//! a hub would block the hub's thread (every coroutine freezes); a
//! cooperative socket is registered with one hub's poller, and used outside
//! it, it cannot wait (the runtime refuses it with an error). So a connection
//! records its context, refuses to run a command in another, and the pool
//! never hands it out in another
//! (`docs/connection-pool.md`, "One context per connection").

use std::io::{self, Read, Write};
use std::ops::{Deref, DerefMut};
use std::time::Duration;

#[cfg(feature = "tls")]
use crate::tls::{TlsStream, DEFAULT_HANDSHAKE_TIMEOUT};
use crate::url::{Addr, ConnectionInfo};

/// Where code runs, as far as sockets care: in a hub (which one), or on a
/// plain thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Context {
    /// Inside `greenhub::run`: cooperative sockets of this hub.
    Hub(greenhub::HubId),
    /// On a thread that runs no hub: std's blocking sockets.
    Thread,
}

impl Context {
    /// The caller's context: one thread-local read.
    pub(crate) fn current() -> Context {
        match greenhub::hub_id() {
            Some(id) => Context::Hub(id),
            None => Context::Thread,
        }
    }
}

impl std::fmt::Display for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Context::Hub(id) => write!(f, "greenhub hub {id:?}"),
            Context::Thread => f.write_str("a plain thread (no hub)"),
        }
    }
}

/// The socket under a connection: cooperative inside a hub, std's on a
/// plain thread.
#[derive(Debug)]
pub(crate) enum Stream {
    GreenTcp(Green<greenhub::net::TcpStream>),
    GreenUnix(Green<greenhub::net::UnixStream>),
    StdTcp(std::net::TcpStream),
    StdUnix(std::os::unix::net::UnixStream),
    /// TLS over a cooperative TCP socket. Boxed: a rustls session is about
    /// a kilobyte, and plaintext streams should not carry that size.
    #[cfg(feature = "tls")]
    GreenTls(Green<Box<TlsStream<greenhub::net::TcpStream>>>),
    /// TLS over a std TCP socket.
    #[cfg(feature = "tls")]
    StdTls(Box<TlsStream<std::net::TcpStream>>),
}

/// A cooperative socket and the hub it is registered with (its context).
/// Dropped anywhere, the runtime deregisters it from its own hub's poller,
/// never from the hub running then.
#[derive(Debug)]
pub(crate) struct Green<S> {
    socket: S,
    home: greenhub::HubId,
}

impl<S> Green<S> {
    fn new(socket: S) -> Green<S> {
        Green {
            socket,
            home: greenhub::hub_id().expect("cooperative sockets are made in a hub"),
        }
    }
}

impl<S> Deref for Green<S> {
    type Target = S;
    fn deref(&self) -> &S {
        &self.socket
    }
}

impl<S> DerefMut for Green<S> {
    fn deref_mut(&mut self) -> &mut S {
        &mut self.socket
    }
}

impl Stream {
    /// Connects as `info` says: TCP or a Unix socket, then the TLS
    /// handshake if it asks for TLS.
    pub(crate) fn connect(info: &ConnectionInfo) -> io::Result<Stream> {
        match &info.tls {
            None => Stream::connect_plain(info),
            Some(opts) => Stream::connect_tls(info, opts),
        }
    }

    #[cfg(not(feature = "tls"))]
    fn connect_tls(_: &ConnectionInfo, _: &crate::url::TlsOptions) -> io::Result<Stream> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "TLS needs greenhub-redis's `tls` feature, which this build lacks",
        ))
    }

    /// The TLS configuration (files read first), a TCP connection, then
    /// the handshake, bounded as a whole by the connect timeout (a port that
    /// does not speak TLS may never answer, a slow server may trickle).
    #[cfg(feature = "tls")]
    #[inline(never)]
    #[cold]
    fn connect_tls(info: &ConnectionInfo, opts: &crate::url::TlsOptions) -> io::Result<Stream> {
        let Addr::Tcp { host, .. } = &info.addr else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "TLS is spoken over TCP only, not over a Unix socket",
            ));
        };
        let config = crate::tls::client_config(opts)?;
        let stream = Stream::connect_plain(info)?;
        let bound = info.connect_timeout.unwrap_or(DEFAULT_HANDSHAKE_TIMEOUT);
        let peer = info.addr.to_string();
        match stream {
            Stream::GreenTcp(green) => {
                let home = green.home;
                let tls = TlsStream::handshake(green.socket, config, opts, host, peer, bound)?;
                Ok(Stream::GreenTls(Green {
                    socket: Box::new(tls),
                    home,
                }))
            }
            Stream::StdTcp(std) => Ok(Stream::StdTls(Box::new(TlsStream::handshake(
                std, config, opts, host, peer, bound,
            )?))),
            _ => unreachable!("a TCP address makes a TCP socket"),
        }
    }

    #[inline(never)]
    fn connect_plain(info: &ConnectionInfo) -> io::Result<Stream> {
        let green = Context::current() != Context::Thread;
        match (&info.addr, green) {
            (Addr::Tcp { host, port }, true) => {
                let stream = match info.connect_timeout {
                    None => greenhub::net::TcpStream::connect((host.as_str(), *port))?,
                    Some(t) => {
                        let addrs =
                            greenhub::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), *port))?;
                        first_ok(addrs, |addr| {
                            greenhub::net::TcpStream::connect_timeout(&addr, t)
                        })?
                    }
                };
                stream.set_nodelay(true)?;
                Ok(Stream::GreenTcp(Green::new(stream)))
            }
            (Addr::Unix(path), true) => {
                Ok(Stream::GreenUnix(Green::new(match info.connect_timeout {
                    None => greenhub::net::UnixStream::connect(path)?,
                    Some(t) => greenhub::net::UnixStream::connect_timeout(path, t)?,
                })))
            }
            (Addr::Tcp { host, port }, false) => {
                let stream = match info.connect_timeout {
                    None => std::net::TcpStream::connect((host.as_str(), *port))?,
                    Some(t) => {
                        let addrs =
                            std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), *port))?;
                        first_ok(addrs.collect(), |addr| {
                            std::net::TcpStream::connect_timeout(&addr, t)
                        })?
                    }
                };
                stream.set_nodelay(true)?;
                Ok(Stream::StdTcp(stream))
            }
            (Addr::Unix(path), false) => Ok(Stream::StdUnix(
                std::os::unix::net::UnixStream::connect(path)?,
            )),
        }
    }

    /// The same socket as a std one in non-blocking mode, for a reader that
    /// never waits and works in any context (the cache's invalidation
    /// listener). A cooperative socket is already non-blocking: a duplicate
    /// of its descriptor is kept, and the cooperative one deregistered.
    pub(crate) fn into_nonblocking(self) -> io::Result<Stream> {
        use std::os::fd::AsFd;
        let stream = match self {
            Stream::GreenTcp(s) => {
                Stream::StdTcp(std::net::TcpStream::from(s.as_fd().try_clone_to_owned()?))
            }
            Stream::GreenUnix(s) => Stream::StdUnix(std::os::unix::net::UnixStream::from(
                s.as_fd().try_clone_to_owned()?,
            )),
            #[cfg(feature = "tls")]
            Stream::GreenTls(s) => Stream::StdTls(Box::new(s.socket.map_socket(|socket| {
                Ok(std::net::TcpStream::from(
                    socket.as_fd().try_clone_to_owned()?,
                ))
            })?)),
            std => std,
        };
        match &stream {
            Stream::StdTcp(s) => s.set_nonblocking(true)?,
            Stream::StdUnix(s) => s.set_nonblocking(true)?,
            #[cfg(feature = "tls")]
            Stream::StdTls(s) => s.get_ref().set_nonblocking(true)?,
            _ => unreachable!("converted above"),
        }
        Ok(stream)
    }

    /// The context this socket works in.
    pub(crate) fn context(&self) -> Context {
        match self {
            Stream::GreenTcp(s) => Context::Hub(s.home),
            Stream::GreenUnix(s) => Context::Hub(s.home),
            #[cfg(feature = "tls")]
            Stream::GreenTls(s) => Context::Hub(s.home),
            Stream::StdTcp(_) | Stream::StdUnix(_) => Context::Thread,
            #[cfg(feature = "tls")]
            Stream::StdTls(_) => Context::Thread,
        }
    }

    pub(crate) fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::GreenTcp(s) => s.set_read_timeout(timeout),
            Stream::GreenUnix(s) => s.set_read_timeout(timeout),
            Stream::StdTcp(s) => s.set_read_timeout(timeout),
            Stream::StdUnix(s) => s.set_read_timeout(timeout),
            #[cfg(feature = "tls")]
            Stream::GreenTls(s) => s.get_ref().set_read_timeout(timeout),
            #[cfg(feature = "tls")]
            Stream::StdTls(s) => s.get_ref().set_read_timeout(timeout),
        }
    }

    pub(crate) fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::GreenTcp(s) => s.set_write_timeout(timeout),
            Stream::GreenUnix(s) => s.set_write_timeout(timeout),
            Stream::StdTcp(s) => s.set_write_timeout(timeout),
            Stream::StdUnix(s) => s.set_write_timeout(timeout),
            #[cfg(feature = "tls")]
            Stream::GreenTls(s) => s.get_ref().set_write_timeout(timeout),
            #[cfg(feature = "tls")]
            Stream::StdTls(s) => s.get_ref().set_write_timeout(timeout),
        }
    }

    /// Parks until readable (cooperative sockets); a no-op for std sockets,
    /// whose read blocks the thread anyway. Under TLS, plaintext rustls
    /// already holds counts as readable: the socket may never turn readable
    /// again for bytes that arrived with an earlier record.
    pub(crate) fn wait_readable(&mut self) -> io::Result<()> {
        match self {
            Stream::GreenTcp(s) => s.wait_readable(),
            Stream::GreenUnix(s) => s.wait_readable(),
            #[cfg(feature = "tls")]
            Stream::GreenTls(s) => match s.has_plaintext() {
                true => Ok(()),
                false => s.get_ref().wait_readable(),
            },
            Stream::StdTcp(_) | Stream::StdUnix(_) => Ok(()),
            #[cfg(feature = "tls")]
            Stream::StdTls(_) => Ok(()),
        }
    }

    /// Whether the bytes are TLS records (a `rediss://` connection).
    pub(crate) fn is_tls(&self) -> bool {
        match self {
            #[cfg(feature = "tls")]
            Stream::GreenTls(_) | Stream::StdTls(_) => true,
            _ => false,
        }
    }

    #[inline]
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::GreenTcp(s) => s.read(buf),
            Stream::GreenUnix(s) => s.read(buf),
            Stream::StdTcp(s) => s.read(buf),
            Stream::StdUnix(s) => s.read(buf),
            #[cfg(feature = "tls")]
            Stream::GreenTls(s) => s.read(buf),
            #[cfg(feature = "tls")]
            Stream::StdTls(s) => s.read(buf),
        }
    }

    #[inline]
    pub(crate) fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Stream::GreenTcp(s) => s.write_all(buf),
            Stream::GreenUnix(s) => s.write_all(buf),
            Stream::StdTcp(s) => s.write_all(buf),
            Stream::StdUnix(s) => s.write_all(buf),
            #[cfg(feature = "tls")]
            Stream::GreenTls(s) => s.write_all(buf),
            #[cfg(feature = "tls")]
            Stream::StdTls(s) => s.write_all(buf),
        }
    }
}

fn first_ok<S>(
    addrs: Vec<std::net::SocketAddr>,
    connect: impl Fn(std::net::SocketAddr) -> io::Result<S>,
) -> io::Result<S> {
    let mut last = io::Error::new(
        io::ErrorKind::InvalidInput,
        "the host resolved to no address",
    );
    for addr in addrs {
        match connect(addr) {
            Ok(stream) => return Ok(stream),
            Err(err) => last = err,
        }
    }
    Err(last)
}

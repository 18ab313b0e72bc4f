//! The socket under a connection: greenhub's cooperative one inside a
//! coroutine, std's on a plain thread. `connection.rs` is the only user; the
//! code above [`Stream`] is the same for both kinds.

use std::io::{self, Read, Write};
use std::time::Duration;

use crate::url::{Addr, ConnectionInfo};

/// The socket under a connection: cooperative inside a coroutine, std's on a
/// plain thread.
#[derive(Debug)]
pub(crate) enum Stream {
    GreenTcp(greenhub::net::TcpStream),
    GreenUnix(greenhub::net::UnixStream),
    StdTcp(std::net::TcpStream),
    StdUnix(std::os::unix::net::UnixStream),
}

impl Stream {
    pub(crate) fn connect(info: &ConnectionInfo) -> io::Result<Stream> {
        let green = greenhub::current().is_some();
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
                Ok(Stream::GreenTcp(stream))
            }
            (Addr::Unix(path), true) => Ok(Stream::GreenUnix(match info.connect_timeout {
                None => greenhub::net::UnixStream::connect(path)?,
                Some(t) => greenhub::net::UnixStream::connect_timeout(path, t)?,
            })),
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

    pub(crate) fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::GreenTcp(s) => s.set_read_timeout(timeout),
            Stream::GreenUnix(s) => s.set_read_timeout(timeout),
            Stream::StdTcp(s) => s.set_read_timeout(timeout),
            Stream::StdUnix(s) => s.set_read_timeout(timeout),
        }
    }

    pub(crate) fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::GreenTcp(s) => s.set_write_timeout(timeout),
            Stream::GreenUnix(s) => s.set_write_timeout(timeout),
            Stream::StdTcp(s) => s.set_write_timeout(timeout),
            Stream::StdUnix(s) => s.set_write_timeout(timeout),
        }
    }

    /// Parks until readable (cooperative sockets); a no-op for std sockets,
    /// whose read blocks the thread anyway.
    pub(crate) fn wait_readable(&self) -> io::Result<()> {
        match self {
            Stream::GreenTcp(s) => s.wait_readable(),
            Stream::GreenUnix(s) => s.wait_readable(),
            Stream::StdTcp(_) | Stream::StdUnix(_) => Ok(()),
        }
    }

    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::GreenTcp(s) => s.read(buf),
            Stream::GreenUnix(s) => s.read(buf),
            Stream::StdTcp(s) => s.read(buf),
            Stream::StdUnix(s) => s.read(buf),
        }
    }

    pub(crate) fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Stream::GreenTcp(s) => s.write_all(buf),
            Stream::GreenUnix(s) => s.write_all(buf),
            Stream::StdTcp(s) => s.write_all(buf),
            Stream::StdUnix(s) => s.write_all(buf),
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

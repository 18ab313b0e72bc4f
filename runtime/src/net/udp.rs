//! UDP: [`UdpSocket`], a cooperative version of std's.
//!
//! Every operation runs in the one I/O shape of `registered.rs`. A datagram
//! socket differs from a stream in one rule: a receive is never "short". A
//! datagram smaller than the buffer says nothing about what else is queued
//! behind it, so readiness is cleared only when the kernel says
//! `WouldBlock` (a stream clears it on a short read too, see
//! `stream.rs`). Sends likewise: a datagram goes out whole or not at all.

use std::cell::Cell;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use super::addr::{each_addr, ToSocketAddrs};
use super::registered::Registered;
use super::stream::check_timeout;
use crate::sources::reactor::Direction;

/// A UDP socket whose sends and receives park the calling coroutine.
///
/// Like `std::net::UdpSocket`: [`bind`](Self::bind), then
/// [`send_to`](Self::send_to) / [`recv_from`](Self::recv_from), or
/// [`connect`](Self::connect) and [`send`](Self::send) / [`recv`](Self::recv).
/// Read and write timeouts bound each operation, and an enclosing
/// [`timeout`](crate::timeout()) cuts it short, as for streams. Not `Send`:
/// it belongs to its hub's thread.
///
/// ```
/// use greenhub::net::UdpSocket;
/// greenhub::run(|| {
///     let server = UdpSocket::bind("127.0.0.1:0").unwrap();
///     let addr = server.local_addr().unwrap();
///     let echo = greenhub::spawn(move || {
///         let mut buf = [0; 64];
///         let (n, from) = server.recv_from(&mut buf).unwrap();
///         server.send_to(&buf[..n], from).unwrap();
///     });
///     let client = UdpSocket::bind("127.0.0.1:0").unwrap();
///     client.connect(addr).unwrap();
///     client.send(b"ping").unwrap();
///     let mut buf = [0; 64];
///     let n = client.recv(&mut buf).unwrap();
///     assert_eq!(&buf[..n], b"ping");
///     echo.join().unwrap();
/// });
/// ```
pub struct UdpSocket {
    pub(super) reg: Registered<mio::net::UdpSocket>,
    read_timeout: Cell<Option<Duration>>,
    write_timeout: Cell<Option<Duration>>,
}

impl UdpSocket {
    /// Binds to `addr` (the first address that works); port 0 lets the OS
    /// choose.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        each_addr(addr, |addr| {
            UdpSocket::from_mio(mio::net::UdpSocket::bind(addr)?)
        })
    }

    pub(super) fn from_mio(socket: mio::net::UdpSocket) -> io::Result<UdpSocket> {
        Ok(UdpSocket {
            reg: Registered::new(socket)?,
            read_timeout: Cell::new(None),
            write_timeout: Cell::new(None),
        })
    }

    pub(super) fn into_mio(self) -> mio::net::UdpSocket {
        self.reg.into_inner()
    }

    /// The registration, for `select`'s readiness arms.
    pub(crate) fn registration(&self) -> &super::registered::Registration {
        self.reg.registration()
    }

    pub(super) fn mio(&self) -> &mio::net::UdpSocket {
        self.reg.get()
    }

    /// Sets the peer for [`send`](Self::send) and [`recv`](Self::recv), and
    /// filters received datagrams to those from it (the first address that
    /// works). Never parks: a UDP connect sends nothing.
    pub fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        each_addr(addr, |addr| self.reg.get().connect(addr))
    }

    /// Sends one datagram to the connected peer; returns the bytes sent.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.reg
            .io(Direction::Write, self.write_timeout.get(), "send", |s| {
                s.send(buf)
            })
    }

    /// Sends one datagram to `addr` (its first address, as std does).
    pub fn send_to(&self, buf: &[u8], addr: impl ToSocketAddrs) -> io::Result<usize> {
        let target = addr.to_socket_addrs()?.into_iter().next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no addresses to send data to")
        })?;
        self.reg
            .io(Direction::Write, self.write_timeout.get(), "send_to", |s| {
                s.send_to(buf, target)
            })
    }

    /// Receives one datagram from the connected peer, parking until one
    /// arrives. A datagram longer than `buf` is truncated (the rest is lost,
    /// as in std).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.reg
            .io(Direction::Read, self.read_timeout.get(), "recv", |s| {
                s.recv(buf)
            })
    }

    /// Receives one datagram and the address it came from.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.reg
            .io(Direction::Read, self.read_timeout.get(), "recv_from", |s| {
                s.recv_from(buf)
            })
    }

    /// Like [`recv`](Self::recv), but leaves the datagram queued: the next
    /// receive returns it again.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.reg
            .io(Direction::Read, self.read_timeout.get(), "peek", |s| {
                s.peek(buf)
            })
    }

    /// Like [`recv_from`](Self::recv_from), but leaves the datagram queued.
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.reg
            .io(Direction::Read, self.read_timeout.get(), "peek_from", |s| {
                s.peek_from(buf)
            })
    }

    /// Bounds each receive: one that waits longer fails with
    /// `ErrorKind::TimedOut`. `None` (the default) waits forever; a zero
    /// duration is an error, as in std.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.read_timeout.set(check_timeout(timeout)?);
        Ok(())
    }

    /// Bounds each send, like [`set_read_timeout`](Self::set_read_timeout).
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.write_timeout.set(check_timeout(timeout)?);
        Ok(())
    }

    /// The read timeout, if any.
    pub fn read_timeout(&self) -> Option<Duration> {
        self.read_timeout.get()
    }

    /// The write timeout, if any.
    pub fn write_timeout(&self) -> Option<Duration> {
        self.write_timeout.get()
    }

    /// The local address, with the port the OS chose for port 0.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.reg.get().local_addr()
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.reg.get().peer_addr()
    }

    /// Takes the socket's pending error (`SO_ERROR`), if any: an ICMP "port
    /// unreachable" for an earlier send shows up here or in the next receive.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.reg.get().take_error()
    }

    /// Sets `SO_BROADCAST`: allow sending to a broadcast address.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.reg.get().set_broadcast(on)
    }

    /// Whether `SO_BROADCAST` is set.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.reg.get().broadcast()
    }

    /// Sets the IPv4 time-to-live of sent datagrams (`IP_TTL`).
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.reg.get().set_ttl(ttl)
    }

    /// The IPv4 time-to-live of sent datagrams.
    pub fn ttl(&self) -> io::Result<u32> {
        self.reg.get().ttl()
    }

    /// Joins the IPv4 multicast group `group` on the interface with address
    /// `interface` (`Ipv4Addr::UNSPECIFIED`: let the OS choose).
    pub fn join_multicast_v4(&self, group: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.reg.get().join_multicast_v4(group, interface)
    }

    /// Leaves an IPv4 multicast group joined with
    /// [`join_multicast_v4`](Self::join_multicast_v4).
    pub fn leave_multicast_v4(&self, group: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.reg.get().leave_multicast_v4(group, interface)
    }

    /// Joins the IPv6 multicast group `group` on the interface with index
    /// `interface` (0: let the OS choose).
    pub fn join_multicast_v6(&self, group: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.reg.get().join_multicast_v6(group, interface)
    }

    /// Leaves an IPv6 multicast group.
    pub fn leave_multicast_v6(&self, group: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.reg.get().leave_multicast_v6(group, interface)
    }

    /// Sets `IP_MULTICAST_LOOP`: whether this host receives its own IPv4
    /// multicast datagrams.
    pub fn set_multicast_loop_v4(&self, on: bool) -> io::Result<()> {
        self.reg.get().set_multicast_loop_v4(on)
    }

    /// Whether `IP_MULTICAST_LOOP` is set.
    pub fn multicast_loop_v4(&self) -> io::Result<bool> {
        self.reg.get().multicast_loop_v4()
    }

    /// Sets `IP_MULTICAST_TTL`: how many hops IPv4 multicast datagrams go.
    pub fn set_multicast_ttl_v4(&self, ttl: u32) -> io::Result<()> {
        self.reg.get().set_multicast_ttl_v4(ttl)
    }

    /// The IPv4 multicast time-to-live.
    pub fn multicast_ttl_v4(&self) -> io::Result<u32> {
        self.reg.get().multicast_ttl_v4()
    }

    /// Sets `IPV6_MULTICAST_LOOP` for IPv6 multicast datagrams.
    pub fn set_multicast_loop_v6(&self, on: bool) -> io::Result<()> {
        self.reg.get().set_multicast_loop_v6(on)
    }

    /// Whether `IPV6_MULTICAST_LOOP` is set.
    pub fn multicast_loop_v6(&self) -> io::Result<bool> {
        self.reg.get().multicast_loop_v6()
    }

    /// Whether an IPv6 socket accepts only IPv6 (`IPV6_V6ONLY`).
    pub fn only_v6(&self) -> io::Result<bool> {
        self.reg.get().only_v6()
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.reg.fmt(f)
    }
}

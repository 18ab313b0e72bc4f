//! Cooperative sockets: `std::net`'s types (TCP, UDP and Unix), but a
//! blocking call parks the coroutine instead of the thread.
//!
//! Each type wraps a non-blocking mio socket in `Registered`
//! (`registered.rs`), which registers it with its hub's reactor once and runs
//! every operation in the one I/O shape (park while the reactor knows the
//! side is not ready; try; on `WouldBlock` clear the readiness and loop). They implement `std::io::Read`
//! and `Write`, for the value and for a shared reference, so blocking-style
//! libraries (a Redis client, a TLS stream) work on them unchanged. They are
//! not `Send`: a socket belongs to its hub's thread. Created outside a hub
//! they return an error. Host names resolve on a helper thread
//! ([`unblock`](crate::unblock())), so `localhost:6379` never stalls the hub.
//! See `docs/architecture.md`, "Readiness".

mod addr;
mod convert;
pub(crate) mod registered;
mod stream;
mod tcp;
mod udp;
mod unix;

pub use addr::ToSocketAddrs;
pub use tcp::{TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixListener, UnixStream};

use std::io;
use std::os::fd::AsRawFd;

/// Pending connections a listener queues before the kernel drops SYNs. The
/// standard library's 128 overflows when a thousand clients connect at once,
/// and each dropped attempt waits a one-second TCP retransmit. The kernel caps
/// it at `net.core.somaxconn` (4096 by default).
const LISTEN_BACKLOG: libc::c_int = 4096;

/// Raises a listening socket's backlog to [`LISTEN_BACKLOG`]; Linux accepts
/// a second `listen` on a listening socket for exactly this.
fn raise_backlog(listener: &impl AsRawFd) -> io::Result<()> {
    crate::sys::os::listen(listener.as_raw_fd(), LISTEN_BACKLOG)
}

pub(crate) use crate::hub::park::{outcome_to_io, timed_out};

/// The error of a socket created on a thread that runs no hub.
pub(crate) fn outside_hub() -> io::Error {
    io::Error::other("greenhub sockets work only inside greenhub::run (this thread runs no hub)")
}

//! Cooperative sockets: `std::net`'s types, but a blocking call parks the
//! coroutine instead of the thread.
//!
//! Each type wraps a non-blocking mio socket in `Registered` (`io.rs`), which
//! registers it with the hub once and runs every operation in the one I/O
//! shape (try, park on `WouldBlock`, retry). They implement `std::io::Read`
//! and `Write`, for the value and for a shared reference, so blocking-style
//! libraries (a Redis client, a TLS stream) work on them unchanged. They are
//! not `Send`: a socket belongs to its hub's thread. Created outside a hub
//! they return an error. Host names resolve on a helper thread
//! ([`unblock`](crate::unblock())), so `localhost:6379` never stalls the hub.
//! See `docs/architecture.md`, "Readiness".

mod addr;
mod stream;
mod tcp;
mod unix;

pub use addr::ToSocketAddrs;
pub use tcp::{TcpListener, TcpStream};
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
    // SAFETY: `listen` takes a plain fd and an int; the fd is owned by
    // `listener` and open for the duration of the call.
    let rc = unsafe { libc::listen(listener.as_raw_fd(), LISTEN_BACKLOG) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

//! Conversions between greenhub's sockets and the rest of the world: std's
//! socket types (`from_std` / `into_std`), owned and raw file descriptors
//! (`TryFrom<OwnedFd>`, `From<..> for OwnedFd`, `FromRawFd`, `IntoRawFd`,
//! `AsRawFd`, `AsFd`), generated once for all five socket types.
//!
//! Coming in, a socket is set non-blocking and registered with this thread's
//! hub (`registered.rs`); so conversions in need a hub, and fail outside one.
//! Going out, it is deregistered first, so the hub never sees events for an
//! fd it no longer owns. `into_std` sets the socket back to blocking, since
//! that is what code using std's types expects; `into_raw_fd` and
//! `OwnedFd::from` leave it non-blocking, as tokio's do.

/// The conversions for `$ty`, which wraps mio's `$mio` and converts to std's
/// `$std`; `$ty` provides `from_mio(mio) -> io::Result<Self>`, `into_mio(self)
/// -> mio` and `mio(&self) -> &mio`.
macro_rules! impl_conversions {
    ($ty:ident, $std:ty, $mio:ty) => {
        impl $ty {
            #[doc = concat!(
                "Takes over a `", stringify!($std), "`: sets it non-blocking and registers it ",
                "with this thread's hub. Fails outside `greenhub::run`."
            )]
            pub fn from_std(socket: $std) -> std::io::Result<$ty> {
                socket.set_nonblocking(true)?;
                $ty::from_mio(<$mio>::from_std(socket))
            }

            #[doc = concat!(
                "Deregisters the socket from the hub and returns it as a blocking `",
                stringify!($std), "`, for a thread or library that expects std's type."
            )]
            pub fn into_std(self) -> std::io::Result<$std> {
                let socket = <$std>::from(std::os::fd::OwnedFd::from(self.into_mio()));
                socket.set_nonblocking(false)?;
                Ok(socket)
            }
        }

        impl TryFrom<std::os::fd::OwnedFd> for $ty {
            type Error = std::io::Error;
            /// Takes over an owned fd (of the right kind of socket), as
            /// [`from_std`](Self::from_std) does.
            fn try_from(fd: std::os::fd::OwnedFd) -> std::io::Result<$ty> {
                $ty::from_std(<$std>::from(fd))
            }
        }

        impl From<$ty> for std::os::fd::OwnedFd {
            /// Deregisters the socket and gives up its fd (still non-blocking).
            fn from(socket: $ty) -> std::os::fd::OwnedFd {
                std::os::fd::OwnedFd::from(socket.into_mio())
            }
        }

        impl std::os::fd::IntoRawFd for $ty {
            /// Deregisters the socket and gives up its fd (still
            /// non-blocking); the caller must close it.
            fn into_raw_fd(self) -> std::os::fd::RawFd {
                std::os::fd::OwnedFd::from(self).into_raw_fd()
            }
        }

        impl std::os::fd::AsRawFd for $ty {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                self.mio().as_raw_fd()
            }
        }

        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                self.mio().as_fd()
            }
        }

        crate::sys::fd::impl_from_raw_fd!($ty);
    };
}

use super::tcp::{TcpListener, TcpStream};
use super::udp::UdpSocket;
use super::unix::{UnixListener, UnixStream};

impl_conversions!(TcpStream, std::net::TcpStream, mio::net::TcpStream);
impl_conversions!(TcpListener, std::net::TcpListener, mio::net::TcpListener);
impl_conversions!(UdpSocket, std::net::UdpSocket, mio::net::UdpSocket);
impl_conversions!(
    UnixStream,
    std::os::unix::net::UnixStream,
    mio::net::UnixStream
);
impl_conversions!(
    UnixListener,
    std::os::unix::net::UnixListener,
    mio::net::UnixListener
);

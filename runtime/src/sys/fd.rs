//! `FromRawFd` for greenhub's sockets and fd wrappers: the one unsafe step
//! of turning a raw fd into an owned one, kept here with the rest of the
//! runtime's `unsafe` code.
//!
//! `std::os::fd::FromRawFd::from_raw_fd` is an `unsafe fn` by its trait, so
//! an impl of it must say `unsafe`. The API types (`net/convert.rs`) expand
//! [`impl_from_raw_fd`] instead of writing their own: the caller's promise
//! (an open fd that nothing else owns) becomes an `OwnedFd` here, and the
//! rest is the type's safe `TryFrom<OwnedFd>`.

/// Implements `FromRawFd` for `$ty` through its `TryFrom<OwnedFd>`; the impl
/// panics when that fails (outside a hub), since `from_raw_fd` cannot
/// return an error.
macro_rules! impl_from_raw_fd {
    ($ty:ty) => {
        impl std::os::fd::FromRawFd for $ty {
            /// Takes ownership of `fd` and registers it with this thread's
            /// hub (setting it non-blocking).
            ///
            /// # Safety
            ///
            /// As for std's `from_raw_fd`: `fd` must be open, of the right
            /// kind, and owned by nothing else (it is closed when the value
            /// drops).
            ///
            /// # Panics
            ///
            /// Outside `greenhub::run`, or when the hub cannot register the
            /// fd; `TryFrom<OwnedFd>` returns that as an error instead.
            unsafe fn from_raw_fd(fd: std::os::fd::RawFd) -> Self {
                use std::os::fd::OwnedFd;
                // SAFETY: the caller's promise (an open fd nobody else owns)
                // is exactly `OwnedFd::from_raw_fd`'s contract.
                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                <$ty>::try_from(owned)
                    .unwrap_or_else(|err| panic!("{}::from_raw_fd: {err}", stringify!($ty)))
            }
        }
    };
}
pub(crate) use impl_from_raw_fd;

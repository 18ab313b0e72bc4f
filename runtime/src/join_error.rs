//! [`JoinError`]: why waiting for a coroutine gave no value. Its own file,
//! so that every module that joins (`spawn.rs`, `group.rs`, `remote.rs`)
//! can name it without importing the others.

use std::fmt;

/// Why [`JoinHandle::join`](crate::JoinHandle::join) returned no value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JoinError {
    /// The coroutine panicked; the panic message.
    Panicked(String),
    /// The coroutine was killed (gevent's `GreenletExit`); from `wait`, the
    /// waiting coroutine is itself unwinding and may not park.
    Killed,
    /// An enclosing [`timeout`](crate::timeout()) elapsed while waiting; the
    /// coroutine goes on.
    TimedOut,
    /// Nothing could ever finish the coroutine; the message names who waits.
    Deadlock(String),
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Panicked(message) => write!(f, "coroutine panicked: {message}"),
            JoinError::Killed => f.write_str("coroutine was killed"),
            JoinError::TimedOut => f.write_str("timed out waiting for the coroutine"),
            JoinError::Deadlock(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for JoinError {}

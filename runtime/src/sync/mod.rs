//! Synchronisation between coroutines of one hub, gevent's toolkit: an
//! [`Event`], a one-shot [`AsyncResult`], a [`Channel`] (gevent's `Queue`), a
//! [`Semaphore`], a [`Mutex`], a re-entrant [`RLock`], an [`RwLock`] and a
//! [`WaitGroup`]; [`broadcast`] (every receiver gets every value) and
//! [`watch`] (the latest value, and a wait for the next change); plus
//! [`remote_channel`] for values sent from other OS threads.
//!
//! Each primitive parks on a `WaitQueue` through the same `park` as sockets
//! and timers: no busy waiting, no polling. So every wait honours enclosing
//! `timeout`s and kills, and a wait that nothing can ever end is reported as
//! a deadlock naming the coroutines. Waiters are served in arrival order: a
//! woken waiter's permit, item or lock is spoken for until it runs, and a
//! waiter killed after being woken passes its turn on. Releasing (a permit,
//! a lock, a sent item) never parks, so it is safe in destructors and while
//! unwinding. See `docs/architecture.md`, "Wait queues".

mod async_result;
mod broadcast;
mod channel;
mod event;
mod mutex;
pub(crate) mod queue;
mod remote;
mod rlock;
mod rwlock;
mod semaphore;
mod wait_group;
mod watch;

pub use async_result::AsyncResult;
pub use broadcast::{broadcast, BroadcastError, BroadcastReceiver, BroadcastSender};
pub use channel::{Channel, ChannelError, Iter, SendError};
pub use event::Event;
pub use mutex::{Mutex, MutexGuard};
pub use remote::{remote_channel, RemoteReceiver, RemoteSender};
pub use rlock::{RLock, RLockGuard};
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use semaphore::{Semaphore, SemaphorePermit};
pub use wait_group::WaitGroup;
pub use watch::{watch, WatchReceiver, WatchSender};

use std::fmt;
use std::time::{Duration, Instant};

use crate::hub::park::Outcome;

/// Why a wait on a primitive ended without what it waited for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaitError {
    /// The wait's timeout, or an enclosing `timeout`, passed.
    TimedOut,
    /// Nothing could ever end the wait; the message names who waits on what.
    Deadlock(String),
    /// The caller may not park: it is not a coroutine, or it is unwinding.
    CannotWait,
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitError::TimedOut => f.write_str("greenhub: the wait timed out"),
            WaitError::Deadlock(message) => write!(f, "greenhub: {message}"),
            WaitError::CannotWait => f.write_str(
                "greenhub: cannot wait here: not in a coroutine, or the coroutine is unwinding",
            ),
        }
    }
}

impl std::error::Error for WaitError {}

impl WaitError {
    /// The error for a park that did not end in a notification.
    pub(crate) fn from_outcome(outcome: Outcome) -> Result<(), WaitError> {
        match outcome {
            Outcome::Notified => Ok(()),
            Outcome::Deadline | Outcome::Elapsed => Err(WaitError::TimedOut),
            Outcome::Deadlock(message) => Err(WaitError::Deadlock(message)),
            Outcome::Refused => Err(WaitError::CannotWait),
        }
    }
}

/// Parks on `queue` while `blocked()` holds, at most `timeout` in all: the
/// wait loop of every primitive whose waiters only watch a condition.
pub(crate) fn wait_while(
    queue: &queue::Queue,
    timeout: Option<Duration>,
    mut blocked: impl FnMut() -> bool,
) -> Result<(), WaitError> {
    let deadline = deadline(timeout);
    while blocked() {
        WaitError::from_outcome(queue.wait(deadline))?;
    }
    Ok(())
}

/// A timeout as a deadline (`None`: wait as long as it takes).
pub(crate) fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

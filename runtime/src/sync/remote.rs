//! [`remote_channel`]: values sent from other OS threads to coroutines.
//!
//! The receiver is `Send`: it may move to another hub, and several
//! coroutines (of one hub or several) may wait on it at once. So each
//! parked receiver registers its own waiter *with its own hub's inbox*, in a
//! FIFO; a send wakes the first, through that inbox. A receiver that was
//! woken but leaves without a value (its timeout, a kill) wakes the next, so
//! no value waits while a receiver sleeps.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::{deadline, ChannelError, WaitError};
use crate::hub::park::{kill_unwind, Outcome, WaitOn};
use crate::remote::Handle;
use crate::sched::{NoPark, Waiter};
use crate::sources::inbox::Inbox;

/// A channel whose sender is `Send` (it may live on any thread) and whose
/// receiver is a coroutine of this hub, which parks in `recv` without
/// blocking the hub. Unbounded. While a sender is alive the hub is not
/// deadlocked; when every sender is dropped, `recv` drains and then reports
/// `Closed`.
///
/// # Panics
///
/// Panics outside `greenhub::run`.
pub fn remote_channel<T: Send>() -> (RemoteSender<T>, RemoteReceiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            waiters: VecDeque::new(),
            senders: 1,
            receiver_alive: true,
        }),
    });
    let sender = RemoteSender {
        shared: shared.clone(),
        handle: crate::handle(),
    };
    (sender, RemoteReceiver { shared })
}

struct Shared<T> {
    state: Mutex<State<T>>,
}

struct State<T> {
    items: VecDeque<T>,
    /// Receiving coroutines parked in `recv`, each with its hub's inbox, in
    /// arrival order.
    waiters: VecDeque<(Arc<Inbox>, Waiter)>,
    senders: usize,
    receiver_alive: bool,
}

impl<T> Shared<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The sending side of a [`remote_channel`]; `Send` and `Clone`.
pub struct RemoteSender<T> {
    shared: Arc<Shared<T>>,
    handle: Handle,
}

impl<T> RemoteSender<T> {
    /// Queues `value` and wakes the receiver; gives the value back if the
    /// receiver is gone.
    pub fn send(&self, value: T) -> Result<(), T> {
        let mut state = self.shared.lock();
        if !state.receiver_alive {
            return Err(value);
        }
        state.items.push_back(value);
        let first = state.waiters.pop_front();
        drop(state);
        if let Some((inbox, waiter)) = first {
            inbox.wake_waiter(waiter);
        }
        Ok(())
    }
}

impl<T> Clone for RemoteSender<T> {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        RemoteSender {
            shared: self.shared.clone(),
            handle: self.handle.clone(),
        }
    }
}

impl<T> Drop for RemoteSender<T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.senders -= 1;
        let waiters = if state.senders == 0 {
            std::mem::take(&mut state.waiters)
        } else {
            VecDeque::new()
        };
        drop(state);
        for (inbox, waiter) in waiters {
            inbox.wake_waiter(waiter);
        }
    }
}

impl<T> fmt::Debug for RemoteSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteSender").finish_non_exhaustive()
    }
}

/// The receiving side of a [`remote_channel`]: `Send`, so it may be moved to
/// another hub; any coroutine holding it may `recv`, and several may wait at
/// once (each wakes through its own hub).
pub struct RemoteReceiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> RemoteReceiver<T> {
    /// Takes the oldest value, parking until one arrives.
    pub fn recv(&self) -> Result<T, ChannelError> {
        self.recv_timeout_opt(None)
    }

    /// Takes the oldest value, parking at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, ChannelError> {
        self.recv_timeout_opt(Some(timeout))
    }

    /// Takes the oldest value if there is one.
    pub fn try_recv(&self) -> Result<T, ChannelError> {
        let mut state = self.shared.lock();
        match state.items.pop_front() {
            Some(value) => Ok(value),
            None if state.senders == 0 => Err(ChannelError::Closed),
            None => Err(ChannelError::Empty),
        }
    }

    fn recv_timeout_opt(&self, timeout: Option<Duration>) -> Result<T, ChannelError> {
        let deadline = deadline(timeout);
        loop {
            match self.try_recv() {
                Err(ChannelError::Empty) => {}
                done => return done,
            }
            let hub = crate::context::hub().ok_or(ChannelError::Wait(WaitError::CannotWait))?;
            let token = match hub.sched.token() {
                Ok(token) => token,
                Err(NoPark::Killed) => kill_unwind(),
                Err(_) => return Err(ChannelError::Wait(WaitError::CannotWait)),
            };
            {
                // Re-check under the lock: a value may have arrived meanwhile.
                let mut state = self.shared.lock();
                if !state.items.is_empty() || state.senders == 0 {
                    continue;
                }
                state.waiters.push_back((hub.inbox.clone(), token.waiter()));
            }
            let mut leave = Leave {
                shared: &self.shared,
                waiter: token.waiter(),
                notified: false,
            };
            let outcome = hub.park_with(token, WaitOn::Remote, deadline);
            leave.notified = outcome == Outcome::Notified;
            drop(leave);
            WaitError::from_outcome(outcome).map_err(ChannelError::Wait)?;
        }
    }
}

/// Takes a parked receiver's registration back when its park ends, even by
/// a kill's unwinding. If a send had picked it (it is no longer queued) but
/// its park ended otherwise (a timeout, a kill) while values remain, the
/// next receiver is woken in its place.
struct Leave<'a, T> {
    shared: &'a Shared<T>,
    waiter: Waiter,
    /// The park ended in a wake: this receiver goes on to take a value.
    notified: bool,
}

impl<T> Drop for Leave<'_, T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        let before = state.waiters.len();
        state.waiters.retain(|(_, w)| *w != self.waiter);
        let picked = state.waiters.len() == before;
        let next = if picked && !self.notified && !state.items.is_empty() {
            state.waiters.pop_front()
        } else {
            None
        };
        drop(state);
        if let Some((inbox, waiter)) = next {
            inbox.wake_waiter(waiter);
        }
    }
}

impl<T> Drop for RemoteReceiver<T> {
    fn drop(&mut self) {
        self.shared.lock().receiver_alive = false;
    }
}

impl<T> fmt::Debug for RemoteReceiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteReceiver")
            .field("queued", &self.shared.lock().items.len())
            .finish()
    }
}

//! [`remote_channel`]: values sent from other OS threads to a coroutine.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::{deadline, ChannelError, WaitError};
use crate::park::{current_waiter, park, WaitOn, Waiter};
use crate::remote::Handle;

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
            waiter: None,
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
    /// The receiving coroutine, while it is parked in `recv`.
    waiter: Option<Waiter>,
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
        if !state.receiver_alive || !self.handle.is_open() {
            return Err(value);
        }
        state.items.push_back(value);
        let waiter = state.waiter.take();
        drop(state);
        if let Some(waiter) = waiter {
            self.handle.remote().wake(waiter);
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
        let waiter = if state.senders == 0 {
            state.waiter.take()
        } else {
            None
        };
        drop(state);
        if let Some(waiter) = waiter {
            self.handle.remote().wake(waiter);
        }
    }
}

impl<T> fmt::Debug for RemoteSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteSender").finish_non_exhaustive()
    }
}

/// The receiving side of a [`remote_channel`]: used by coroutines of the
/// hub that created it.
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
            let waiter = current_waiter().ok_or(ChannelError::Wait(WaitError::CannotWait))?;
            {
                // Re-check under the lock: a value may have arrived meanwhile.
                let mut state = self.shared.lock();
                if !state.items.is_empty() || state.senders == 0 {
                    continue;
                }
                state.waiter = Some(waiter);
            }
            let outcome = park(WaitOn::Remote, deadline);
            self.shared.lock().waiter = None;
            WaitError::from_outcome(outcome).map_err(ChannelError::Wait)?;
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

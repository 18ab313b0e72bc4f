//! [`watch`]: one value that changes, and receivers that wait for the next
//! change (a config reload, a "current leader", a shutdown flag with data).

use std::cell::{Cell, Ref, RefCell};
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use super::queue::Queue;
use super::{deadline, ChannelError, WaitError};

/// A cell holding the latest value: the sender replaces it, each receiver
/// reads the latest and can park until it changes again. Receivers never
/// queue values: one that looks rarely sees only the newest (as tokio's
/// watch).
///
/// ```
/// greenhub::run(|| {
///     let (tx, rx) = greenhub::sync::watch("starting");
///     let observer = greenhub::spawn(move || {
///         rx.changed().unwrap();
///         *rx.borrow()
///     });
///     tx.send("ready");
///     assert_eq!(observer.join().unwrap(), "ready");
/// });
/// ```
pub fn watch<T>(initial: T) -> (WatchSender<T>, WatchReceiver<T>) {
    let shared = Rc::new(Shared {
        value: RefCell::new(initial),
        version: Cell::new(0),
        sender_alive: Cell::new(true),
        waiters: Queue::new("watch changed"),
    });
    let rx = WatchReceiver {
        seen: Cell::new(0),
        shared: shared.clone(),
    };
    (WatchSender { shared }, rx)
}

struct Shared<T> {
    value: RefCell<T>,
    /// Bumped by every send.
    version: Cell<u64>,
    sender_alive: Cell<bool>,
    waiters: Queue,
}

/// The sending side of a [`watch`]. Dropping it wakes every receiver, whose
/// `changed` then reports `Closed`.
pub struct WatchSender<T> {
    shared: Rc<Shared<T>>,
}

impl<T> WatchSender<T> {
    /// Replaces the value and wakes every receiver waiting for a change.
    pub fn send(&self, value: T) {
        *self.shared.value.borrow_mut() = value;
        self.shared.version.set(self.shared.version.get() + 1);
        self.shared.waiters.notify_all();
    }

    /// Changes the value in place, then wakes the receivers as `send` does.
    pub fn send_modify(&self, modify: impl FnOnce(&mut T)) {
        modify(&mut self.shared.value.borrow_mut());
        self.shared.version.set(self.shared.version.get() + 1);
        self.shared.waiters.notify_all();
    }

    /// The current value. Do not hold it across a park.
    pub fn borrow(&self) -> Ref<'_, T> {
        self.shared.value.borrow()
    }

    /// A new receiver that has seen the current value.
    pub fn subscribe(&self) -> WatchReceiver<T> {
        WatchReceiver {
            seen: Cell::new(self.shared.version.get()),
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for WatchSender<T> {
    fn drop(&mut self) {
        self.shared.sender_alive.set(false);
        self.shared.waiters.notify_all();
    }
}

impl<T> fmt::Debug for WatchSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchSender")
            .field("version", &self.shared.version.get())
            .finish_non_exhaustive()
    }
}

/// The receiving side of a [`watch`]; clones are receivers of their own.
pub struct WatchReceiver<T> {
    /// The version this receiver has seen.
    seen: Cell<u64>,
    shared: Rc<Shared<T>>,
}

impl<T> WatchReceiver<T> {
    /// The current value, marking it seen. Do not hold it across a park.
    pub fn borrow(&self) -> Ref<'_, T> {
        self.seen.set(self.shared.version.get());
        self.shared.value.borrow()
    }

    /// Whether the value changed since this receiver last looked.
    pub fn has_changed(&self) -> bool {
        self.shared.version.get() != self.seen.get()
    }

    /// Parks until the value changes from the one this receiver last saw
    /// (returns at once if it already has). `Closed` once the sender is
    /// gone and nothing new is left to see.
    pub fn changed(&self) -> Result<(), ChannelError> {
        self.changed_timeout_opt(None)
    }

    /// Like [`changed`](Self::changed), parking at most `timeout`.
    pub fn changed_timeout(&self, timeout: Duration) -> Result<(), ChannelError> {
        self.changed_timeout_opt(Some(timeout))
    }

    fn changed_timeout_opt(&self, timeout: Option<Duration>) -> Result<(), ChannelError> {
        let deadline = deadline(timeout);
        loop {
            if self.has_changed() {
                self.seen.set(self.shared.version.get());
                return Ok(());
            }
            if !self.shared.sender_alive.get() {
                return Err(ChannelError::Closed);
            }
            WaitError::from_outcome(self.shared.waiters.wait(deadline))
                .map_err(ChannelError::Wait)?;
        }
    }
}

impl<T: Clone> WatchReceiver<T> {
    /// A clone of the current value, marking it seen.
    pub fn get(&self) -> T {
        self.borrow().clone()
    }
}

impl<T> Clone for WatchReceiver<T> {
    fn clone(&self) -> Self {
        WatchReceiver {
            seen: Cell::new(self.seen.get()),
            shared: self.shared.clone(),
        }
    }
}

impl<T> fmt::Debug for WatchReceiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchReceiver")
            .field("seen", &self.seen.get())
            .finish_non_exhaustive()
    }
}

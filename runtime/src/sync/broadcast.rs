//! [`broadcast`]: every receiver gets every value (a fan-out, as a chat
//! room or a cache-invalidation feed needs).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use super::queue::Queue;
use super::{deadline, WaitError};

/// A channel whose every receiver sees every value sent after it
/// subscribed. The sender never parks: the channel keeps the last
/// `capacity` values, and a receiver that falls further behind loses the
/// oldest ones and is told how many ([`BroadcastError::Lagged`]), as
/// tokio's broadcast does. Values are cloned for each receiver.
///
/// ```
/// greenhub::run(|| {
///     let (tx, rx1) = greenhub::sync::broadcast(8);
///     let rx2 = tx.subscribe();
///     let readers: Vec<_> = [rx1, rx2]
///         .into_iter()
///         .map(|rx| greenhub::spawn(move || (rx.recv().unwrap(), rx.recv().unwrap())))
///         .collect();
///     tx.send("a");
///     tx.send("b");
///     for reader in readers {
///         assert_eq!(reader.join().unwrap(), ("a", "b"));
///     }
/// });
/// ```
///
/// # Panics
///
/// Panics if `capacity` is 0.
pub fn broadcast<T: Clone>(capacity: usize) -> (BroadcastSender<T>, BroadcastReceiver<T>) {
    assert!(
        capacity > 0,
        "a broadcast channel needs a capacity of at least 1"
    );
    let shared = Rc::new(Shared {
        values: RefCell::new(VecDeque::with_capacity(capacity)),
        first: Cell::new(0),
        capacity,
        senders: Cell::new(1),
        waiters: Queue::new("broadcast recv"),
    });
    let rx = BroadcastReceiver {
        next: Cell::new(0),
        shared: shared.clone(),
    };
    (BroadcastSender { shared }, rx)
}

struct Shared<T> {
    /// The last `capacity` values; the oldest has number `first`.
    values: RefCell<VecDeque<T>>,
    first: Cell<u64>,
    capacity: usize,
    /// Live senders; at 0 the channel is closed.
    senders: Cell<usize>,
    waiters: Queue,
}

impl<T> Shared<T> {
    /// The number the next value sent will get.
    fn end(&self) -> u64 {
        self.first.get() + self.values.borrow().len() as u64
    }
}

/// Why a broadcast receive returned no value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BroadcastError {
    /// The receiver fell behind by this many values, which it will never
    /// see; the next receive returns the oldest value still kept.
    Lagged(u64),
    /// Every sender is gone and every value seen.
    Closed,
    /// The wait failed: timed out, deadlock, or not allowed to park.
    Wait(WaitError),
}

impl fmt::Display for BroadcastError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BroadcastError::Lagged(n) => write!(f, "receiver lagged behind by {n} values"),
            BroadcastError::Closed => f.write_str("broadcast channel closed"),
            BroadcastError::Wait(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for BroadcastError {}

/// The sending side of a [`broadcast`] channel; clones send to the same
/// receivers. When the last is dropped, receivers drain and then get
/// `Closed`.
pub struct BroadcastSender<T> {
    shared: Rc<Shared<T>>,
}

impl<T: Clone> BroadcastSender<T> {
    /// Sends `value` to every receiver; never parks. Returns how many
    /// receivers there are (0: the value is kept for none).
    pub fn send(&self, value: T) -> usize {
        let shared = &self.shared;
        {
            let mut values = shared.values.borrow_mut();
            if values.len() == shared.capacity {
                values.pop_front();
                shared.first.set(shared.first.get() + 1);
            }
            values.push_back(value);
        }
        shared.waiters.notify_all();
        self.receiver_count()
    }

    /// A new receiver, which sees the values sent from now on.
    pub fn subscribe(&self) -> BroadcastReceiver<T> {
        BroadcastReceiver {
            next: Cell::new(self.shared.end()),
            shared: self.shared.clone(),
        }
    }

    /// Receivers alive now.
    pub fn receiver_count(&self) -> usize {
        // Every handle holds the Rc; the senders are counted apart.
        Rc::strong_count(&self.shared) - self.shared.senders.get()
    }
}

impl<T> Clone for BroadcastSender<T> {
    fn clone(&self) -> Self {
        self.shared.senders.set(self.shared.senders.get() + 1);
        BroadcastSender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for BroadcastSender<T> {
    fn drop(&mut self) {
        self.shared.senders.set(self.shared.senders.get() - 1);
        if self.shared.senders.get() == 0 {
            self.shared.waiters.notify_all();
        }
    }
}

impl<T> fmt::Debug for BroadcastSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BroadcastSender").finish_non_exhaustive()
    }
}

/// The receiving side of a [`broadcast`] channel: its own position in the
/// stream of values.
pub struct BroadcastReceiver<T> {
    /// The number of the next value this receiver will return.
    next: Cell<u64>,
    shared: Rc<Shared<T>>,
}

impl<T: Clone> BroadcastReceiver<T> {
    /// The next value, parking until one is sent.
    pub fn recv(&self) -> Result<T, BroadcastError> {
        self.recv_timeout_opt(None)
    }

    /// The next value, parking at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, BroadcastError> {
        self.recv_timeout_opt(Some(timeout))
    }

    /// The next value if one is there; `Wait(TimedOut)`-free: an empty
    /// channel gives `Ok(None)`.
    pub fn try_recv(&self) -> Result<Option<T>, BroadcastError> {
        let shared = &self.shared;
        let first = shared.first.get();
        if self.next.get() < first {
            let lagged = first - self.next.get();
            self.next.set(first);
            return Err(BroadcastError::Lagged(lagged));
        }
        let index = (self.next.get() - first) as usize;
        if let Some(value) = shared.values.borrow().get(index) {
            self.next.set(self.next.get() + 1);
            return Ok(Some(value.clone()));
        }
        if shared.senders.get() == 0 {
            return Err(BroadcastError::Closed);
        }
        Ok(None)
    }

    fn recv_timeout_opt(&self, timeout: Option<Duration>) -> Result<T, BroadcastError> {
        let deadline = deadline(timeout);
        loop {
            if let Some(value) = self.try_recv()? {
                return Ok(value);
            }
            WaitError::from_outcome(self.shared.waiters.wait(deadline))
                .map_err(BroadcastError::Wait)?;
        }
    }
}

impl<T> Clone for BroadcastReceiver<T> {
    /// Another receiver at the same position.
    fn clone(&self) -> Self {
        BroadcastReceiver {
            next: Cell::new(self.next.get()),
            shared: self.shared.clone(),
        }
    }
}

impl<T> fmt::Debug for BroadcastReceiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BroadcastReceiver")
            .field("next", &self.next.get())
            .finish_non_exhaustive()
    }
}

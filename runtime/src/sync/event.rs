//! [`Event`]: a flag coroutines wait for, as gevent's `Event`.

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use super::queue::Queue;
use super::{wait_while, WaitError};

/// A flag: `wait` parks until it is set; `set` wakes every waiter.
///
/// ```
/// use greenhub::sync::Event;
/// greenhub::run(|| {
///     let ready = Event::new();
///     let waiter = { let ready = ready.clone(); greenhub::spawn(move || ready.wait()) };
///     ready.set();
///     assert!(waiter.join().unwrap().is_ok());
/// });
/// ```
#[derive(Clone, Default)]
pub struct Event {
    inner: Rc<Inner>,
}

struct Inner {
    set: Cell<bool>,
    waiters: Queue,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            set: Cell::new(false),
            waiters: Queue::new("event"),
        }
    }
}

impl Event {
    /// An event, not set.
    pub fn new() -> Event {
        Event::default()
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        self.inner.set.set(true);
        self.inner.waiters.notify_all();
    }

    /// Clears the flag; later waits park again.
    pub fn clear(&self) {
        self.inner.set.set(false);
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.inner.set.get()
    }

    /// The queue its waiters park on (`select`).
    pub(crate) fn queue(&self) -> &Queue {
        &self.inner.waiters
    }

    /// Parks until the flag is set.
    pub fn wait(&self) -> Result<(), WaitError> {
        wait_while(&self.inner.waiters, None, || !self.is_set())
    }

    /// Parks until the flag is set, at most `timeout`.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<(), WaitError> {
        wait_while(&self.inner.waiters, Some(timeout), || !self.is_set())
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .finish()
    }
}

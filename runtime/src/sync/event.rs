//! [`Event`]: a flag coroutines wait for, as gevent's `Event`.

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use super::queue::Queue;
use super::{wait_while, WaitError};

/// A flag: `wait` parks until it is set; `set` wakes every waiter.
///
/// A waiter woken by `set` returns `Ok` even if `clear` runs before it does,
/// as with Python's `threading.Event`: `set` releases every coroutine that
/// was waiting in `wait` when it was called, and `clear` only makes later
/// waits park. A [`Select`](crate::select::Select)'s event arm remembers a
/// `set` until the select returns that arm, so a pulse that lands while
/// another arm wins is delivered by its next wait.
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
    /// How many times `set` has been called: a wait that sees it change was
    /// released, whatever the flag says by the time it runs.
    sets: Cell<u64>,
    waiters: Queue,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            set: Cell::new(false),
            sets: Cell::new(0),
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
        self.inner.sets.set(self.inner.sets.get().wrapping_add(1));
        self.inner.waiters.notify_all();
    }

    /// Clears the flag; later waits park again. Coroutines that a `set`
    /// already woke still return `Ok`.
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

    /// Whether `other` is this event (a clone of it), not one of its own.
    pub(crate) fn is_same(&self, other: &Event) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }

    /// How many times the flag has been set (`select`'s event arm).
    pub(crate) fn sets(&self) -> u64 {
        self.inner.sets.get()
    }

    /// Parks until the flag is set (at once if it is), or until `set` is
    /// called while it waits.
    pub fn wait(&self) -> Result<(), WaitError> {
        self.wait_for(None)
    }

    /// [`wait`](Self::wait), at most `timeout`.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<(), WaitError> {
        self.wait_for(Some(timeout))
    }

    fn wait_for(&self, timeout: Option<Duration>) -> Result<(), WaitError> {
        let sets = self.sets();
        wait_while(&self.inner.waiters, timeout, || {
            !self.is_set() && self.sets() == sets
        })
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .finish()
    }
}

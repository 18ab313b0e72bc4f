//! [`WaitGroup`]: wait until a count of tasks has finished (Go's `WaitGroup`).

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use super::queue::Queue;
use super::{wait_while, WaitError};

/// A counter: `add` before starting work, `done` when each piece ends,
/// `wait` parks until the count is back to zero.
///
/// ```
/// use greenhub::sync::WaitGroup;
/// greenhub::run(|| {
///     let group = WaitGroup::new();
///     for _ in 0..3 {
///         group.add(1);
///         let group = group.clone();
///         greenhub::spawn(move || group.done());
///     }
///     group.wait().unwrap();
///     assert_eq!(group.count(), 0);
/// });
/// ```
#[derive(Clone)]
pub struct WaitGroup {
    inner: Rc<Inner>,
}

struct Inner {
    count: Cell<usize>,
    waiters: Queue,
}

impl Default for WaitGroup {
    fn default() -> Self {
        WaitGroup {
            inner: Rc::new(Inner {
                count: Cell::new(0),
                waiters: Queue::new("wait group"),
            }),
        }
    }
}

impl WaitGroup {
    /// A group with a count of zero.
    pub fn new() -> WaitGroup {
        WaitGroup::default()
    }

    /// Adds `n` to the count.
    pub fn add(&self, n: usize) {
        self.inner.count.set(self.inner.count.get() + n);
    }

    /// Subtracts one; at zero, wakes every waiter.
    ///
    /// # Panics
    ///
    /// Panics if the count is already zero (more `done`s than `add`s).
    pub fn done(&self) {
        let count = self.inner.count.get();
        assert!(count > 0, "WaitGroup::done called more often than add");
        self.inner.count.set(count - 1);
        if count == 1 {
            self.inner.waiters.notify_all();
        }
    }

    /// The count now.
    pub fn count(&self) -> usize {
        self.inner.count.get()
    }

    /// Parks until the count is zero.
    pub fn wait(&self) -> Result<(), WaitError> {
        wait_while(&self.inner.waiters, None, || self.count() > 0)
    }

    /// Parks until the count is zero, at most `timeout`.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<(), WaitError> {
        wait_while(&self.inner.waiters, Some(timeout), || self.count() > 0)
    }
}

impl fmt::Debug for WaitGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitGroup")
            .field("count", &self.count())
            .finish()
    }
}

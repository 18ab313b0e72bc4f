//! [`RLock`]: a lock its holder may take again (gevent's `RLock`).

use std::cell::Cell;
use std::fmt;
use std::ops::Deref;
use std::time::Duration;

use super::queue::Queue;
use super::{deadline, WaitError};
use crate::sched::HubId;

/// A re-entrant lock: the coroutine that holds it may lock it again (a
/// recursive function, a callback into the same object) without
/// deadlocking; it is released when the last of its guards drops. Another
/// coroutine that wants it parks, FIFO, as with [`Mutex`](super::Mutex).
///
/// Because one coroutine may hold several guards at once, a guard gives
/// shared access only (`&T`); put a `RefCell` or `Cell` inside for state
/// to change, as gevent's `RLock` guards no data at all.
///
/// ```
/// use std::cell::Cell;
/// use greenhub::sync::RLock;
/// greenhub::run(|| {
///     let lock = RLock::new(Cell::new(0));
///     fn bump(lock: &RLock<Cell<u32>>, depth: u32) {
///         let guard = lock.lock().unwrap(); // again and again: no deadlock
///         guard.set(guard.get() + 1);
///         if depth > 0 { bump(lock, depth - 1) }
///     }
///     bump(&lock, 3);
///     assert_eq!(lock.lock().unwrap().get(), 4);
/// });
/// ```
pub struct RLock<T> {
    value: T,
    /// The holding coroutine (its hub and id) and how many guards it holds.
    owner: Cell<Option<(HubId, u64)>>,
    count: Cell<usize>,
    waiters: Queue,
}

impl<T> RLock<T> {
    /// A lock holding `value`, free.
    pub fn new(value: T) -> RLock<T> {
        RLock {
            value,
            owner: Cell::new(None),
            count: Cell::new(0),
            waiters: Queue::new("rlock"),
        }
    }

    /// Takes the lock, or takes it again if this coroutine holds it;
    /// parks while another coroutine does.
    ///
    /// # Panics
    ///
    /// Panics outside a coroutine: a lock that may be held across parks
    /// needs an owner that parks.
    pub fn lock(&self) -> Result<RLockGuard<'_, T>, WaitError> {
        self.lock_timeout_opt(None)
    }

    /// Like [`lock`](Self::lock), parking at most `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> Result<RLockGuard<'_, T>, WaitError> {
        self.lock_timeout_opt(Some(timeout))
    }

    /// Takes the lock if that needs no wait.
    pub fn try_lock(&self) -> Option<RLockGuard<'_, T>> {
        let me = me();
        if self.owner.get() == Some(me) {
            return Some(self.take(me));
        }
        let free = self.owner.get().is_none()
            && self.waiters.outstanding() == 0
            && self.waiters.is_empty();
        free.then(|| self.take(me))
    }

    /// Whether some coroutine holds the lock.
    pub fn is_locked(&self) -> bool {
        self.owner.get().is_some()
    }

    /// Whether the running coroutine holds the lock.
    pub fn is_owned_by_current(&self) -> bool {
        current().is_some_and(|me| self.owner.get() == Some(me))
    }

    fn take(&self, me: (HubId, u64)) -> RLockGuard<'_, T> {
        self.owner.set(Some(me));
        self.count.set(self.count.get() + 1);
        RLockGuard { lock: self }
    }

    fn lock_timeout_opt(&self, timeout: Option<Duration>) -> Result<RLockGuard<'_, T>, WaitError> {
        if let Some(guard) = self.try_lock() {
            return Ok(guard);
        }
        let deadline = deadline(timeout);
        loop {
            WaitError::from_outcome(self.waiters.wait(deadline))?;
            if self.owner.get().is_none() {
                return Ok(self.take(me()));
            }
        }
    }
}

/// The running coroutine's identity: its hub and its id there.
fn current() -> Option<(HubId, u64)> {
    crate::context::with(|hub| hub.sched.with_current(|task| (hub.id, task.id))).flatten()
}

fn me() -> (HubId, u64) {
    current().expect("RLock must be locked from a coroutine")
}

impl<T: fmt::Debug> fmt::Debug for RLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLock")
            .field("locked", &self.is_locked())
            .field("depth", &self.count.get())
            .finish_non_exhaustive()
    }
}

/// One hold of an [`RLock`]; the lock is released when its holder's last
/// guard drops.
pub struct RLockGuard<'a, T> {
    lock: &'a RLock<T>,
}

impl<T> Deref for RLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.lock.value
    }
}

impl<T> Drop for RLockGuard<'_, T> {
    fn drop(&mut self) {
        let count = self.lock.count.get() - 1;
        self.lock.count.set(count);
        if count == 0 {
            self.lock.owner.set(None);
            self.lock.waiters.notify_one();
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for RLockGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

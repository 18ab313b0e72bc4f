//! [`RwLock`]: many readers or one writer, held across parks.

use std::cell::{Cell, Ref, RefCell, RefMut};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use super::queue::Queue;
use super::{deadline, WaitError};

/// A lock held by many readers at once or by one writer, for data that is
/// read often and written rarely; held across parks, like [`Mutex`](super::Mutex).
///
/// Writers go first: once a writer waits, new readers wait behind it, so a
/// stream of readers cannot starve a writer (a stream of writers can starve
/// readers; that is the price). When a writer releases the lock, the next
/// writer gets it if one waits, else every waiting reader does. Guards
/// release on drop, which a kill's unwinding does too.
///
/// ```
/// use greenhub::sync::RwLock;
/// greenhub::run(|| {
///     let config = RwLock::new(String::from("v1"));
///     let a = config.read().unwrap();
///     let b = config.read().unwrap(); // readers share
///     assert_eq!((a.as_str(), b.as_str()), ("v1", "v1"));
///     assert!(config.try_write().is_none());
///     drop((a, b));
///     config.write().unwrap().push_str("+patch");
///     assert_eq!(*config.read().unwrap(), "v1+patch");
/// });
/// ```
pub struct RwLock<T> {
    value: RefCell<T>,
    /// Readers holding the lock.
    readers: Cell<usize>,
    /// A writer holds the lock.
    writer: Cell<bool>,
    read_waiters: Queue,
    write_waiters: Queue,
}

impl<T> RwLock<T> {
    /// A lock holding `value`, free.
    pub fn new(value: T) -> RwLock<T> {
        RwLock {
            value: RefCell::new(value),
            readers: Cell::new(0),
            writer: Cell::new(false),
            read_waiters: Queue::new("rwlock read"),
            write_waiters: Queue::new("rwlock write"),
        }
    }

    /// Writers waiting, or woken and about to take the lock.
    fn writers_waiting(&self) -> bool {
        !self.write_waiters.is_empty() || self.write_waiters.outstanding() > 0
    }

    fn may_read(&self) -> bool {
        !self.writer.get() && !self.writers_waiting()
    }

    fn may_write(&self) -> bool {
        !self.writer.get() && self.readers.get() == 0
    }

    /// Takes a read lock, parking while a writer holds or waits for it.
    pub fn read(&self) -> Result<RwLockReadGuard<'_, T>, WaitError> {
        self.read_timeout_opt(None)
    }

    /// Takes a read lock, parking at most `timeout`.
    pub fn read_timeout(&self, timeout: Duration) -> Result<RwLockReadGuard<'_, T>, WaitError> {
        self.read_timeout_opt(Some(timeout))
    }

    /// Takes a read lock if that needs no wait.
    pub fn try_read(&self) -> Option<RwLockReadGuard<'_, T>> {
        self.may_read().then(|| self.take_read())
    }

    /// Takes the write lock, parking while anyone holds it.
    pub fn write(&self) -> Result<RwLockWriteGuard<'_, T>, WaitError> {
        self.write_timeout_opt(None)
    }

    /// Takes the write lock, parking at most `timeout`.
    pub fn write_timeout(&self, timeout: Duration) -> Result<RwLockWriteGuard<'_, T>, WaitError> {
        self.write_timeout_opt(Some(timeout))
    }

    /// Takes the write lock if it is free and no other writer waits.
    pub fn try_write(&self) -> Option<RwLockWriteGuard<'_, T>> {
        (self.may_write() && !self.writers_waiting()).then(|| self.take_write())
    }

    /// The value, when nobody can hold the lock.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }

    fn take_read(&self) -> RwLockReadGuard<'_, T> {
        self.readers.set(self.readers.get() + 1);
        RwLockReadGuard {
            value: Some(self.value.borrow()),
            lock: self,
        }
    }

    fn take_write(&self) -> RwLockWriteGuard<'_, T> {
        self.writer.set(true);
        RwLockWriteGuard {
            value: Some(self.value.borrow_mut()),
            lock: self,
        }
    }

    /// Hands a free lock on: to one writer if any waits, else to every
    /// waiting reader. Called on each release and by every wait that gives
    /// up (a timeout, a kill), so no waiter sleeps on a lock nobody holds.
    fn dispatch(&self) {
        if self.writer.get() {
            return;
        }
        if self.readers.get() == 0
            && self.write_waiters.outstanding() == 0
            && !self.write_waiters.is_empty()
        {
            self.write_waiters.notify_one();
            return;
        }
        if !self.writers_waiting() {
            self.read_waiters.notify_all();
        }
    }

    fn read_timeout_opt(
        &self,
        timeout: Option<Duration>,
    ) -> Result<RwLockReadGuard<'_, T>, WaitError> {
        if let Some(guard) = self.try_read() {
            return Ok(guard);
        }
        let deadline = deadline(timeout);
        let _giving_up = Dispatch(self);
        loop {
            WaitError::from_outcome(self.read_waiters.wait(deadline))?;
            if self.may_read() {
                return Ok(self.take_read());
            }
        }
    }

    fn write_timeout_opt(
        &self,
        timeout: Option<Duration>,
    ) -> Result<RwLockWriteGuard<'_, T>, WaitError> {
        if let Some(guard) = self.try_write() {
            return Ok(guard);
        }
        let deadline = deadline(timeout);
        let _giving_up = Dispatch(self);
        loop {
            WaitError::from_outcome(self.write_waiters.wait(deadline))?;
            if self.may_write() {
                return Ok(self.take_write());
            }
        }
    }
}

/// Re-dispatches when a wait ends, however it ends: a writer that gave up
/// may have been what held readers back, and a woken waiter that was killed
/// before it ran must pass the lock on.
struct Dispatch<'a, T>(&'a RwLock<T>);

impl<T> Drop for Dispatch<'_, T> {
    fn drop(&mut self) {
        self.0.dispatch();
    }
}

impl<T> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RwLock")
            .field("readers", &self.readers.get())
            .field("writer", &self.writer.get())
            .finish_non_exhaustive()
    }
}

/// Shared access to an [`RwLock`]'s value; released when dropped.
pub struct RwLockReadGuard<'a, T> {
    value: Option<Ref<'a, T>>,
    lock: &'a RwLock<T>,
}

impl<T> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.value.as_deref().expect("present until dropped")
    }
}

impl<T> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        self.value = None;
        self.lock.readers.set(self.lock.readers.get() - 1);
        self.lock.dispatch();
    }
}

impl<T: fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

/// Exclusive access to an [`RwLock`]'s value; released when dropped.
pub struct RwLockWriteGuard<'a, T> {
    value: Option<RefMut<'a, T>>,
    lock: &'a RwLock<T>,
}

impl<T> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.value.as_deref().expect("present until dropped")
    }
}

impl<T> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.value.as_deref_mut().expect("present until dropped")
    }
}

impl<T> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        self.value = None;
        self.lock.writer.set(false);
        self.lock.dispatch();
    }
}

impl<T: fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

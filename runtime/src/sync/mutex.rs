//! [`Mutex`]: mutual exclusion between coroutines, held across parks.

use std::cell::{Cell, RefCell, RefMut};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use super::queue::Queue;
use super::{deadline, WaitError};

/// A lock a coroutine may hold while it parks (say, across a socket write):
/// other coroutines that want it park until it is released; the hub and
/// every other coroutine keep running. FIFO: the lock is handed to waiters in
/// arrival order. Released when the guard drops, which a kill's unwinding
/// does too.
///
/// ```
/// use greenhub::sync::Mutex;
/// use std::rc::Rc;
/// greenhub::run(|| {
///     let log = Rc::new(Mutex::new(Vec::new()));
///     let writers: Vec<_> = (0..3).map(|i| {
///         let log = log.clone();
///         greenhub::spawn(move || {
///             let mut log = log.lock().unwrap();
///             log.push(i);
///             greenhub::sleep(std::time::Duration::from_millis(1)); // still held
///             log.push(i);
///         })
///     }).collect();
///     writers.into_iter().for_each(|w| w.join().unwrap());
///     assert_eq!(*log.lock().unwrap(), [0, 0, 1, 1, 2, 2]);
/// });
/// ```
pub struct Mutex<T> {
    locked: Cell<bool>,
    value: RefCell<T>,
    waiters: Queue,
}

impl<T> Mutex<T> {
    /// A mutex holding `value`, unlocked.
    pub fn new(value: T) -> Mutex<T> {
        Mutex {
            locked: Cell::new(false),
            value: RefCell::new(value),
            waiters: Queue::new("mutex"),
        }
    }

    /// Takes the lock, parking until it is free.
    pub fn lock(&self) -> Result<MutexGuard<'_, T>, WaitError> {
        self.lock_timeout_opt(None)
    }

    /// Takes the lock, parking at most `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> Result<MutexGuard<'_, T>, WaitError> {
        self.lock_timeout_opt(Some(timeout))
    }

    /// Takes the lock if it is free now and nobody waits for it.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        let free = !self.locked.get() && self.waiters.outstanding() == 0 && self.waiters.is_empty();
        free.then(|| self.take())
    }

    /// Whether the lock is held now.
    pub fn is_locked(&self) -> bool {
        self.locked.get()
    }

    /// The value, when nobody can hold the lock.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }

    fn take(&self) -> MutexGuard<'_, T> {
        self.locked.set(true);
        MutexGuard {
            value: Some(self.value.borrow_mut()),
            mutex: self,
        }
    }

    fn lock_timeout_opt(&self, timeout: Option<Duration>) -> Result<MutexGuard<'_, T>, WaitError> {
        if let Some(guard) = self.try_lock() {
            return Ok(guard);
        }
        let deadline = deadline(timeout);
        loop {
            WaitError::from_outcome(self.waiters.wait(deadline))?;
            if !self.locked.get() {
                return Ok(self.take());
            }
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mutex")
            .field("locked", &self.is_locked())
            .finish_non_exhaustive()
    }
}

/// Access to a [`Mutex`]'s value; the lock is released when it drops.
pub struct MutexGuard<'a, T> {
    /// `Some` until the guard drops (taken first, then the lock released).
    value: Option<RefMut<'a, T>>,
    mutex: &'a Mutex<T>,
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.value.as_deref().expect("present until dropped")
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.value.as_deref_mut().expect("present until dropped")
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.value = None;
        self.mutex.locked.set(false);
        self.mutex.waiters.notify_one();
    }
}

impl<T: fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

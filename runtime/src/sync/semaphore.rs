//! [`Semaphore`]: a counted limit, as gevent's `Semaphore` (the connection
//! pool's `max_connections` is one).

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::park::{Outcome, WaitQueue};

/// A counter of permits; `acquire` parks while none is free.
///
/// Cheap to clone: clones share the permits. A permit is returned when its
/// [`SemaphorePermit`] is dropped, which never parks (so it is safe in
/// destructors, during unwinding too). Waiters are woken in arrival order.
///
/// ```
/// use greenhub::sync::Semaphore;
/// greenhub::run(|| {
///     let sem = Semaphore::new(1);
///     let held = sem.acquire().unwrap();
///     assert!(sem.try_acquire().is_none());
///     drop(held);
///     assert!(sem.try_acquire().is_some());
/// });
/// ```
#[derive(Clone)]
pub struct Semaphore {
    inner: Rc<Inner>,
}

struct Inner {
    /// Free permits. Changed by acquire (down) and permit drops (up).
    permits: Cell<usize>,
    waiters: WaitQueue,
}

/// Why [`Semaphore::acquire`] returned no permit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AcquireError {
    /// The deadline (its own or an enclosing `timeout`'s) passed.
    TimedOut,
    /// No coroutine could ever release a permit; the message names who waits.
    Deadlock(String),
    /// The caller may not park: it is not a coroutine, or it is unwinding.
    CannotWait,
}

impl fmt::Display for AcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AcquireError::TimedOut => f.write_str("timed out waiting for a semaphore permit"),
            AcquireError::Deadlock(message) => f.write_str(message),
            AcquireError::CannotWait => {
                f.write_str("cannot wait for a semaphore permit: not in a coroutine, or unwinding")
            }
        }
    }
}

impl std::error::Error for AcquireError {}

impl Semaphore {
    /// A semaphore with `permits` free permits.
    pub fn new(permits: usize) -> Semaphore {
        Semaphore {
            inner: Rc::new(Inner {
                permits: Cell::new(permits),
                waiters: WaitQueue::new("semaphore"),
            }),
        }
    }

    /// Takes a permit, parking until one is free.
    pub fn acquire(&self) -> Result<SemaphorePermit, AcquireError> {
        self.acquire_until(None)
    }

    /// Takes a permit, parking at most `timeout`.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<SemaphorePermit, AcquireError> {
        self.acquire_until(Instant::now().checked_add(timeout))
    }

    /// Takes a permit if one is free now.
    pub fn try_acquire(&self) -> Option<SemaphorePermit> {
        let free = self.inner.permits.get();
        (free > 0).then(|| {
            self.inner.permits.set(free - 1);
            SemaphorePermit { sem: self.clone() }
        })
    }

    /// Free permits now.
    pub fn available(&self) -> usize {
        self.inner.permits.get()
    }

    fn acquire_until(&self, deadline: Option<Instant>) -> Result<SemaphorePermit, AcquireError> {
        loop {
            if let Some(permit) = self.try_acquire() {
                return Ok(permit);
            }
            match self.inner.waiters.wait(deadline) {
                Outcome::Notified => {}
                Outcome::Deadline | Outcome::Elapsed => return Err(AcquireError::TimedOut),
                Outcome::Deadlock(message) => return Err(AcquireError::Deadlock(message)),
                Outcome::Refused => return Err(AcquireError::CannotWait),
            }
        }
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("available", &self.available())
            .finish()
    }
}

/// One permit of a [`Semaphore`], returned when dropped.
#[derive(Debug)]
pub struct SemaphorePermit {
    sem: Semaphore,
}

impl Drop for SemaphorePermit {
    fn drop(&mut self) {
        let inner = &self.sem.inner;
        inner.permits.set(inner.permits.get() + 1);
        inner.waiters.notify_one();
    }
}

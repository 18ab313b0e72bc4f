//! [`Semaphore`]: a counted limit, as gevent's `Semaphore` (the connection
//! pool's `max_connections` and `greenhub::Pool` are built on it).

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use super::queue::Queue;
use super::{deadline, WaitError};

/// A counter of permits; `acquire` parks while none is free.
///
/// Cheap to clone: clones share the permits. A permit is returned when its
/// [`SemaphorePermit`] is dropped, which never parks. Waiters get permits in
/// arrival order: a released permit is spoken for by the waiter it wakes.
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
    /// Free permits, including those spoken for by woken waiters.
    permits: Cell<usize>,
    waiters: Queue,
}

impl Semaphore {
    /// A semaphore with `permits` free permits.
    pub fn new(permits: usize) -> Semaphore {
        Semaphore {
            inner: Rc::new(Inner {
                permits: Cell::new(permits),
                waiters: Queue::new("semaphore"),
            }),
        }
    }

    /// Takes a permit, parking until one is free.
    pub fn acquire(&self) -> Result<SemaphorePermit, WaitError> {
        self.acquire_timeout_opt(None)
    }

    /// Takes a permit, parking at most `timeout`.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<SemaphorePermit, WaitError> {
        self.acquire_timeout_opt(Some(timeout))
    }

    /// Takes a permit if one is free now and nobody waits for it.
    pub fn try_acquire(&self) -> Option<SemaphorePermit> {
        let inner = &self.inner;
        let unclaimed = inner
            .permits
            .get()
            .saturating_sub(inner.waiters.outstanding());
        (unclaimed > 0 && inner.waiters.is_empty()).then(|| self.take())
    }

    /// Adds a permit without a [`SemaphorePermit`] having been taken (gevent's
    /// `Semaphore.release`): for a semaphore used as a signal counter.
    pub fn release(&self) {
        self.inner.permits.set(self.inner.permits.get() + 1);
        self.inner.waiters.notify_one();
    }

    /// Free permits now (some may be spoken for by woken waiters).
    pub fn available(&self) -> usize {
        self.inner.permits.get()
    }

    fn take(&self) -> SemaphorePermit {
        self.inner.permits.set(self.inner.permits.get() - 1);
        SemaphorePermit { sem: self.clone() }
    }

    fn acquire_timeout_opt(&self, timeout: Option<Duration>) -> Result<SemaphorePermit, WaitError> {
        if let Some(permit) = self.try_acquire() {
            return Ok(permit);
        }
        let deadline = deadline(timeout);
        loop {
            WaitError::from_outcome(self.inner.waiters.wait(deadline))?;
            // Woken by a release: a permit was kept for us.
            if self.inner.permits.get() > 0 {
                return Ok(self.take());
            }
        }
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("available", &self.available())
            .field("waiting", &self.inner.waiters.len())
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
        self.sem.release();
    }
}

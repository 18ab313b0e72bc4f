//! [`AsyncResult`]: a value or an error, set once, waited for by many
//! (gevent's `AsyncResult`).

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use super::queue::Queue;
use super::{deadline, WaitError};

/// A one-shot cell: `set` it once (a value or an error); `get` parks until it
/// is set and returns a clone to every waiter.
///
/// ```
/// use greenhub::sync::AsyncResult;
/// greenhub::run(|| {
///     let answer: AsyncResult<u32, String> = AsyncResult::new();
///     let reader = { let answer = answer.clone(); greenhub::spawn(move || answer.get()) };
///     answer.set(Ok(42)).unwrap();
///     assert_eq!(reader.join().unwrap(), Ok(Ok(42)));
///     assert!(answer.set(Ok(7)).is_err(), "only once");
/// });
/// ```
pub struct AsyncResult<T, E = String> {
    inner: Rc<Inner<T, E>>,
}

struct Inner<T, E> {
    value: RefCell<Option<Result<T, E>>>,
    waiters: Queue,
}

impl<T, E> Clone for AsyncResult<T, E> {
    fn clone(&self) -> Self {
        AsyncResult {
            inner: self.inner.clone(),
        }
    }
}

impl<T, E> Default for AsyncResult<T, E> {
    fn default() -> Self {
        AsyncResult {
            inner: Rc::new(Inner {
                value: RefCell::new(None),
                waiters: Queue::new("async result"),
            }),
        }
    }
}

impl<T: Clone, E: Clone> AsyncResult<T, E> {
    /// An empty cell.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the outcome and wakes every waiter; gives it back if already set.
    pub fn set(&self, outcome: Result<T, E>) -> Result<(), Result<T, E>> {
        let mut value = self.inner.value.borrow_mut();
        if value.is_some() {
            return Err(outcome);
        }
        *value = Some(outcome);
        drop(value);
        self.inner.waiters.notify_all();
        Ok(())
    }

    /// Whether it has been set.
    pub fn ready(&self) -> bool {
        self.inner.value.borrow().is_some()
    }

    /// The outcome if set, without waiting.
    pub fn peek(&self) -> Option<Result<T, E>> {
        self.inner.value.borrow().clone()
    }

    /// Parks until set, then returns the outcome.
    pub fn get(&self) -> Result<Result<T, E>, WaitError> {
        self.get_timeout_opt(None)
    }

    /// Parks until set, at most `timeout`.
    pub fn get_timeout(&self, timeout: Duration) -> Result<Result<T, E>, WaitError> {
        self.get_timeout_opt(Some(timeout))
    }

    fn get_timeout_opt(&self, timeout: Option<Duration>) -> Result<Result<T, E>, WaitError> {
        let deadline = deadline(timeout);
        loop {
            if let Some(outcome) = self.peek() {
                return Ok(outcome);
            }
            WaitError::from_outcome(self.inner.waiters.wait(deadline))?;
        }
    }
}

impl<T, E> fmt::Debug for AsyncResult<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncResult")
            .field("ready", &self.inner.value.borrow().is_some())
            .finish()
    }
}

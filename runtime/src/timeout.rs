//! `timeout(d, f)`, gevent's `Timeout` around any blocking section.
//!
//! A scope is a deadline pushed on the running coroutine's task entry for as
//! long as `f` runs. Every `park` inside `f` (a socket read, a sleep, a join,
//! a wait on any primitive) adds the nearest enclosing deadline to its own, so
//! nested scopes work: the nearest deadline wins. When a scope's deadline ends
//! a park, the park reports `Elapsed` (a read returns `ErrorKind::TimedOut`,
//! a sleep ends early) and the scope is marked; `timeout` then returns
//! `Err(Elapsed)`. The error travels back through `f` by ordinary returns,
//! so destructors run on the way as they do for any error. See
//! `docs/architecture.md`, "Timers and timeouts".

use std::fmt;
use std::time::{Duration, Instant};

use crate::sched::Scope;
use crate::timer::far_future;

/// The deadline of a [`timeout`] cut short a wait inside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("greenhub::timeout elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    fn from(_: Elapsed) -> Self {
        std::io::Error::new(std::io::ErrorKind::TimedOut, "greenhub::timeout elapsed")
    }
}

/// Runs `f` with a deadline `d` from now on every wait inside it.
///
/// Returns `Ok` with `f`'s value when no wait was cut short by this deadline,
/// and `Err(Elapsed)` when one was (`f`'s value, which then usually holds the
/// `TimedOut` error it saw, is dropped). Work that does not park is never
/// interrupted: the deadline acts at parks, as in gevent.
///
/// # Panics
///
/// Panics when called outside a coroutine.
///
/// ```
/// use std::time::Duration;
/// greenhub::run(|| {
///     let cut = greenhub::timeout(Duration::from_millis(10), || greenhub::sleep(Duration::from_secs(5)));
///     assert!(cut.is_err());
/// });
/// ```
pub fn timeout<T>(d: Duration, f: impl FnOnce() -> T) -> Result<T, Elapsed> {
    let deadline = Instant::now().checked_add(d).unwrap_or_else(far_future);
    let depth = with_scopes(|scopes| {
        scopes.push(Scope {
            deadline,
            elapsed: false,
        });
        scopes.len() - 1
    })
    .expect("greenhub::timeout must be called from a coroutine");
    // Pops the scope even when `f` unwinds.
    struct Pop(usize);
    impl Drop for Pop {
        fn drop(&mut self) {
            with_scopes(|scopes| scopes.truncate(self.0));
        }
    }
    let pop = Pop(depth);
    let value = f();
    let elapsed =
        with_scopes(|scopes| scopes.get(depth).is_some_and(|scope| scope.elapsed)).unwrap_or(false);
    drop(pop);
    if elapsed {
        Err(Elapsed(()))
    } else {
        Ok(value)
    }
}

fn with_scopes<R>(f: impl FnOnce(&mut Vec<Scope>) -> R) -> Option<R> {
    crate::context::with(|hub| {
        hub.sched
            .with_current(|task| f(&mut task.extras_mut().scopes))
    })
    .flatten()
}

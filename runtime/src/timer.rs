//! [`sleep`] and [`yield_now`]: parking on a deadline alone, and on the back
//! of the run queue. The timer queue itself is `sources/timers.rs`.

use std::time::{Duration, Instant};

use crate::hub::park::{Outcome, WaitOn};

/// Parks the running coroutine for `d` (gevent's `sleep`); other coroutines
/// run meanwhile. `sleep(Duration::ZERO)` is [`yield_now`]. An enclosing
/// [`timeout`](crate::timeout()) ends the sleep early. Outside a coroutine it
/// blocks the thread, like `std::thread::sleep`.
pub fn sleep(d: Duration) {
    if !crate::context::in_coroutine() {
        return std::thread::sleep(d);
    }
    if d.is_zero() {
        return yield_now();
    }
    let deadline = Some(Instant::now().checked_add(d).unwrap_or_else(far_future));
    crate::context::with(|hub| {
        // Only the deadline, a timeout scope or a kill ends the park;
        // anything else is a spurious wake.
        while hub.park(WaitOn::Deadline, deadline) == Outcome::Notified {}
    });
}

/// Lets every other runnable coroutine run, then continues (gevent's
/// `sleep(0)`). Outside a coroutine it is `std::thread::yield_now`.
pub fn yield_now() {
    let outcome = crate::context::with(|hub| hub.yield_now());
    if outcome.is_none_or(|outcome| outcome == Outcome::Refused) && !crate::context::in_coroutine()
    {
        std::thread::yield_now();
    }
}

/// A deadline no program waits for (about 30 years), for a duration that
/// `Instant` cannot represent (`Duration::MAX`, written for "forever").
pub(crate) fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365 * 30)
}

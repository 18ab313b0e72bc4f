//! The timer queue: every deadline a parked coroutine waits for.
//!
//! A park inserts an entry when it has a deadline (a `sleep`, a socket
//! timeout, an enclosing `timeout` scope) and removes it when something else
//! woke the coroutine first. The hub fires due entries before it polls and
//! passes the nearest deadline to `Poll::poll` as its timeout, rounded up to
//! a whole millisecond so that a wait of 0.3 ms does not turn into a busy
//! loop of zero-timeout polls.
//!
//! Entries are ordered by `(deadline, sequence number)`, so two timers with
//! the same `Instant` never collide and fire in the order they were set. A
//! `BTreeMap` gives O(log n) insert, cancel and pop-first; a binary heap would
//! be as fast to insert but cannot cancel, and lazily-deleted entries pile up
//! when every request sets a socket timeout that is then not needed. The
//! queue never calls the hub: `take_due` hands back the waiters to wake.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::sched::Waiter;

/// Identifies one timer entry, so its owner can cancel it.
pub(crate) type TimerKey = (Instant, u64);

/// Deadlines of parked coroutines, nearest first.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    entries: BTreeMap<TimerKey, Waiter>,
    /// Tie-breaker for equal deadlines; only grows.
    next_seq: u64,
}

impl Timers {
    pub(crate) fn insert(&mut self, deadline: Instant, waiter: Waiter) -> TimerKey {
        let key = (deadline, self.next_seq);
        self.next_seq += 1;
        self.entries.insert(key, waiter);
        key
    }

    pub(crate) fn cancel(&mut self, key: TimerKey) {
        self.entries.remove(&key);
    }

    /// Removes and returns the next entry due at or before `now`.
    #[cfg(test)]
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Waiter> {
        let entry = self.entries.first_entry()?;
        if entry.key().0 <= now {
            Some(entry.remove())
        } else {
            None
        }
    }

    /// Moves every entry due at or before `now` into `into`, nearest
    /// first. The due entries leave the map in one split, which costs a
    /// walk down the tree and a look at each entry taken, not a removal
    /// (with its rebalancing) per entry.
    pub(crate) fn take_due(&mut self, now: Instant, into: &mut Vec<Waiter>) {
        match self.entries.first_key_value() {
            Some(((deadline, _), _)) if *deadline <= now => {}
            _ => return,
        }
        // Every key below `(now, u64::MAX)` is due (no sequence number
        // reaches `u64::MAX`: one is taken per timer set).
        let later = self.entries.split_off(&(now, u64::MAX));
        let due = std::mem::replace(&mut self.entries, later);
        into.extend(due.into_values());
    }

    /// The waiter of the nearest deadline, if any.
    pub(crate) fn first_waiter(&self) -> Option<Waiter> {
        self.entries.values().next().copied()
    }

    /// How long `Poll::poll` may sleep: until the nearest deadline, rounded up
    /// to whole milliseconds (epoll's resolution), or `None` with no timers.
    pub(crate) fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        let (deadline, _) = *self.entries.keys().next()?;
        let wait = deadline.saturating_duration_since(now);
        let millis = wait.as_nanos().div_ceil(1_000_000);
        Some(Duration::from_millis(millis as u64))
    }

    /// How long until the earliest deadline, exactly (`None`: no timer).
    pub(crate) fn until_next(&self, now: Instant) -> Option<Duration> {
        let (deadline, _) = *self.entries.keys().next()?;
        Some(deadline.saturating_duration_since(now))
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::Key;

    fn waiter(n: usize) -> Waiter {
        Waiter {
            hub: crate::sched::HubId::for_tests(),
            task: Key::from_usize(n),
            seq: 0,
        }
    }

    #[test]
    fn equal_deadlines_fire_in_insertion_order_and_cancelled_ones_never() {
        let mut timers = Timers::default();
        let now = Instant::now();
        timers.insert(now, waiter(1));
        let cancelled = timers.insert(now, waiter(2));
        timers.insert(now, waiter(3));
        timers.cancel(cancelled);
        assert_eq!(timers.pop_due(now), Some(waiter(1)));
        assert_eq!(timers.pop_due(now), Some(waiter(3)));
        assert_eq!(timers.pop_due(now), None);
        assert_eq!(timers.len(), 0);
    }

    #[test]
    fn take_due_takes_only_due_entries_nearest_first() {
        let mut timers = Timers::default();
        let now = Instant::now();
        timers.insert(now + Duration::from_millis(5), waiter(9));
        timers.insert(now, waiter(2));
        timers.insert(now - Duration::from_millis(1), waiter(1));
        let cancelled = timers.insert(now, waiter(4));
        timers.insert(now, waiter(3));
        timers.cancel(cancelled);
        let mut due = vec![waiter(7)];
        timers.take_due(now, &mut due);
        assert_eq!(due, [waiter(7), waiter(1), waiter(2), waiter(3)]);
        timers.take_due(now, &mut due);
        assert_eq!(due.len(), 4, "nothing more is due");
        assert_eq!(timers.len(), 1, "the entry not due yet stays");
        assert_eq!(timers.poll_timeout(now), Some(Duration::from_millis(5)));
        timers.take_due(now + Duration::from_millis(5), &mut due);
        assert_eq!(due.last(), Some(&waiter(9)));
        assert_eq!(timers.len(), 0);
    }

    #[test]
    fn the_poll_timeout_rounds_a_sub_millisecond_wait_up() {
        let mut timers = Timers::default();
        let now = Instant::now();
        timers.insert(now + Duration::from_micros(300), waiter(1));
        assert_eq!(timers.poll_timeout(now), Some(Duration::from_millis(1)));
        assert_eq!(timers.pop_due(now), None);
    }
}

//! The wait queue as the primitives use it: `sources::wait_queue::WaitQueue`
//! plus the one read of this thread's hub that each call needs (to park on
//! it, or to wake through its scheduler).

use std::time::Instant;

use crate::hub::park::{Outcome, WaitOn};
use crate::sources::wait_queue::WaitQueue;

/// A FIFO of parked coroutines; see `sources/wait_queue.rs`.
#[derive(Debug)]
pub(crate) struct Queue {
    inner: WaitQueue,
}

impl Queue {
    pub(crate) const fn new(label: &'static str) -> Self {
        Queue {
            inner: WaitQueue::new(label),
        }
    }

    /// Parks the running coroutine on this queue.
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> Outcome {
        crate::context::with(|hub| hub.park(WaitOn::Queue(&self.inner), deadline))
            .unwrap_or(Outcome::Refused)
    }

    /// Parks the running coroutine on several queues at once.
    pub(crate) fn wait_any(queues: &[&Queue], deadline: Option<Instant>) -> Outcome {
        let inner: Vec<&WaitQueue> = queues.iter().map(|queue| &queue.inner).collect();
        crate::context::with(|hub| hub.park(WaitOn::Queues(&inner), deadline))
            .unwrap_or(Outcome::Refused)
    }

    /// Wakes the longest-waiting coroutine; false if none was waiting (or
    /// no hub runs here: then nobody can be parked on this thread).
    pub(crate) fn notify_one(&self) -> bool {
        crate::context::with(|hub| self.inner.notify_one(&hub.sched)).unwrap_or(false)
    }

    /// Wakes every waiting coroutine.
    pub(crate) fn notify_all(&self) {
        // Most coroutines end with nobody joining yet: no hub lookup then.
        if self.inner.len() == 0 {
            return;
        }
        crate::context::with(|hub| while self.inner.notify_one(&hub.sched) {});
    }

    /// The queue itself, for a park on several sources (`select`).
    pub(crate) fn raw(&self) -> &WaitQueue {
        &self.inner
    }

    /// Woken waiters that have not run yet.
    pub(crate) fn outstanding(&self) -> usize {
        self.inner.outstanding()
    }

    /// Whether no coroutine is parked here.
    pub(crate) fn is_empty(&self) -> bool {
        self.inner.len() == 0
    }

    /// Parked coroutines.
    pub(crate) fn len(&self) -> usize {
        self.inner.len()
    }
}

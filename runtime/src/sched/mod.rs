//! The scheduler layer: who exists, who may run next, and the identity of a
//! park. It knows nothing of sockets, timers or the hub's loop; the layer
//! above (`sources/`) hands it waiters to wake, and the hub asks it what to
//! resume.
//!
//! - A task is addressed by a generation-checked [`Key`] into the task slab;
//!   every long-lived handle also carries the [`HubId`] of its hub, so a key
//!   from one `run` never names a coroutine of the next.
//! - A [`Waiter`] is one park of one task: its key and the park's `seq`. It
//!   is valid while the task is parked with that seq. Every park ends by
//!   retiring its seq ([`ParkToken`]'s drop), whatever the exit: woken,
//!   deadline already passed, killed, or refused. A stale waiter's wake is
//!   ignored, so a source that still holds one can do no harm.
//! - Two run queues: `woken` (by a timer, readiness, a queue or a kill) runs
//!   ahead of `fresh` (spawned or yielding), with a streak limit so spawns are
//!   not starved. A cron coroutine is not stuck behind 10,000 new spawns.
//!
//! Every method borrows the tables for its own duration only and calls no
//! code outside this module, so none can be re-entered under a borrow.

pub(crate) mod record;
mod slab;
mod task;

pub(crate) use slab::{Key, Slab};
pub(crate) use task::{display_name, ParkedOn, Scope, State, Task, Wake};

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Which hub something belongs to: unique in the process, never reused.
///
/// Every handle that outlives a call (a `JoinHandle`, a socket) carries its
/// hub's id, so using it on another hub (a later `greenhub::run` on the same
/// thread) is detected instead of touching whatever now has the same key.
///
/// Never zero, so a struct holding one (every wait-queue node) has a niche
/// its slab slot's tag fits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HubId(NonZeroU64);

impl HubId {
    /// A fresh id (ids start at 1).
    pub(crate) fn next() -> HubId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        HubId(NonZeroU64::new(id).expect("fewer than 2^64 hubs"))
    }

    /// A fixed id for unit tests of the sources.
    #[cfg(test)]
    pub(crate) fn for_tests() -> HubId {
        HubId(NonZeroU64::MAX)
    }

    /// The id as a number, for logs.
    pub fn as_u64(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Display for HubId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "hub-{}", self.0)
    }
}

/// One park of one coroutine: its hub, the key of its task and the park's
/// sequence number. Wake sources store it; a wake with a retired `seq`, or
/// handed to another hub's scheduler, is ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Waiter {
    pub(crate) hub: HubId,
    pub(crate) task: Key,
    pub(crate) seq: u64,
}

/// Why the running coroutine may not park.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NoPark {
    /// The caller is not a coroutine of this hub.
    NotCoroutine,
    /// The caller is unwinding (killed or panicking): suspending would
    /// leave the thread's panic state to the next coroutine.
    Unwinding,
    /// The caller was killed: it must unwind now.
    Killed,
}

/// Woken coroutines run before fresh spawns, but at most this many in a row
/// while spawns wait.
const WOKEN_STREAK: u32 = 64;

/// The task table and the run queues of one hub.
#[derive(Debug)]
pub(crate) struct Sched {
    pub(crate) hub: HubId,
    /// Every live coroutine. An entry is added by spawn and removed by the
    /// hub when its coroutine returns; keys in queues and waiters may be stale.
    pub(crate) tasks: RefCell<Slab<Task>>,
    /// Coroutines woken by a timer, readiness, a wait queue or a kill, in wake
    /// order. Invariant: each key here names a task in state `Ready`.
    woken: RefCell<RunQueue>,
    /// Coroutines spawned or yielding, not resumed yet. Same invariant.
    fresh: RefCell<RunQueue>,
    /// Woken coroutines run in a row while `fresh` was not empty.
    woken_streak: Cell<u32>,
    /// The coroutine running now; `None` while the hub's loop runs.
    current: Cell<Option<Key>>,
    /// The running coroutine's `killed` flag, copied by [`Sched::enter`] and
    /// kept equal to it by [`Sched::kill`] (only the running coroutine can
    /// kill itself while it runs), so the switch path reads a `Cell`
    /// instead of looking its entry up. False while the loop runs.
    current_killed: Cell<bool>,
    /// Resumes since the hub started.
    pub(crate) switches: Cell<u64>,
    /// The next coroutine id handed out.
    next_id: Cell<u64>,
    /// The trace recorder and the console's pulse; off unless started.
    pub(crate) trace: record::Recorder,
}

/// Run-queue entries whose memory a queue keeps once a burst has drained.
const QUEUE_KEPT: usize = 1024;

/// One run queue: keys in the order they run, and how long it grew in its
/// last two bursts (a burst ends when the queue drains).
///
/// A queue that a burst (a million spawns, or one `Event` waking a million
/// waiters) left empty gives its memory back, 8 bytes a coroutine, unless
/// the burst before it was that long too: a steady cycle of bursts (one
/// event waking 2,000 waiters again and again) keeps its memory instead of
/// freeing and growing it every round.
#[derive(Debug, Default)]
pub(crate) struct RunQueue {
    keys: VecDeque<Key>,
    /// The longest the queue has been, at a pop, since it last drained.
    peak: usize,
    /// `peak` of the burst before.
    last_peak: usize,
}

impl std::ops::Deref for RunQueue {
    type Target = VecDeque<Key>;
    fn deref(&self) -> &VecDeque<Key> {
        &self.keys
    }
}

impl std::ops::DerefMut for RunQueue {
    fn deref_mut(&mut self) -> &mut VecDeque<Key> {
        &mut self.keys
    }
}

impl RunQueue {
    /// Takes the front key; when that drains the queue, gives back memory
    /// the burst before did not need either.
    fn pop(&mut self) -> Option<Key> {
        self.peak = self.peak.max(self.keys.len());
        let key = self.keys.pop_front()?;
        if self.keys.is_empty() {
            let before = std::mem::replace(&mut self.last_peak, std::mem::take(&mut self.peak));
            let kept = before.max(QUEUE_KEPT);
            if self.keys.capacity() > kept.saturating_mul(4) {
                self.keys.shrink_to(kept.saturating_mul(2));
            }
        }
        Some(key)
    }
}

impl Sched {
    pub(crate) fn new(hub: HubId) -> Sched {
        Sched {
            hub,
            tasks: RefCell::new(Slab::new()),
            woken: RefCell::new(RunQueue::default()),
            fresh: RefCell::new(RunQueue::default()),
            woken_streak: Cell::new(0),
            current: Cell::new(None),
            current_killed: Cell::new(false),
            switches: Cell::new(0),
            next_id: Cell::new(0),
            trace: record::Recorder::default(),
        }
    }

    /// Adds a spawned coroutine's entry (its `id` is filled in here) and
    /// queues it to run.
    pub(crate) fn insert(&self, mut task: Task) -> (Key, u64) {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        task.id = id;
        task.state = State::Ready;
        self.trace.spawn(id);
        let key = self.tasks.borrow_mut().insert(task);
        self.fresh.borrow_mut().push_back(key);
        (key, id)
    }

    /// Coroutines spawned since the hub started.
    pub(crate) fn spawned(&self) -> u64 {
        self.next_id.get()
    }

    /// The running coroutine, if a coroutine (not the loop) runs.
    pub(crate) fn current(&self) -> Option<Key> {
        self.current.get()
    }

    /// The hub is about to resume `key`, whose `killed` flag is `killed`.
    pub(crate) fn enter(&self, key: Key, killed: bool) {
        self.current.set(Some(key));
        self.current_killed.set(killed);
    }

    /// The coroutine that ran has parked or returned: the loop runs.
    pub(crate) fn leave(&self) {
        self.current.set(None);
        self.current_killed.set(false);
    }

    /// Makes a parked coroutine runnable, if `waiter` still names its current
    /// park; a stale waiter is ignored (false).
    pub(crate) fn wake(&self, waiter: Waiter, wake: Wake) -> bool {
        if waiter.hub != self.hub {
            return false;
        }
        let mut tasks = self.tasks.borrow_mut();
        let Some(task) = tasks.get_mut(waiter.task) else {
            return false;
        };
        if task.seq != waiter.seq || !matches!(task.state, State::Parked(_)) {
            return false;
        }
        self.trace.wake(task.id, task.state, &wake);
        task.state = State::Ready;
        task.wake = Some(wake);
        drop(tasks);
        self.woken.borrow_mut().push_back(waiter.task);
        true
    }

    /// Marks a coroutine killed and wakes it if it is parked; it unwinds when
    /// it next returns from (or enters) a park, or never starts. A key of
    /// another hub or of a finished coroutine finds nothing.
    pub(crate) fn kill(&self, key: Key) {
        let waiter = {
            let mut tasks = self.tasks.borrow_mut();
            let Some(task) = tasks.get_mut(key) else {
                return;
            };
            task.killed = true;
            if self.current.get() == Some(key) {
                self.current_killed.set(true);
            }
            self.trace.kill(task.id);
            Waiter {
                hub: self.hub,
                task: key,
                seq: task.seq,
            }
        };
        self.wake(waiter, Wake::Killed);
    }

    /// Puts the running coroutine at the back of the fresh queue
    /// (`yield_now`), retiring its park identity; true (and nothing queued)
    /// if it was killed, and must unwind instead.
    pub(crate) fn requeue_current(&self, key: Key) -> bool {
        if self.current_killed.get() {
            return true;
        }
        {
            let mut tasks = self.tasks.borrow_mut();
            let Some(task) = tasks.get_mut(key) else {
                return false;
            };
            task.state = State::Ready;
            task.seq += 1;
        }
        self.fresh.borrow_mut().push_back(key);
        false
    }

    /// The next coroutine to resume.
    pub(crate) fn next_runnable(&self) -> Option<Key> {
        let mut woken = self.woken.borrow_mut();
        if woken.is_empty() || self.woken_streak.get() >= WOKEN_STREAK {
            if let Some(key) = self.fresh.borrow_mut().pop() {
                self.woken_streak.set(0);
                return Some(key);
            }
        }
        let key = woken.pop()?;
        self.woken_streak.set(self.woken_streak.get() + 1);
        Some(key)
    }

    /// The coroutines likely to run after the next one taken from the
    /// woken queue: the first two queued there (a hint: fresh spawns may
    /// come first).
    pub(crate) fn upcoming(&self) -> (Option<Key>, Option<Key>) {
        let woken = self.woken.borrow();
        (woken.front().copied(), woken.get(1).copied())
    }

    /// Starts loading the task entry of `key` into the cache.
    pub(crate) fn prefetch(&self, key: Key) {
        self.tasks.borrow().prefetch(key);
    }

    /// Whether any coroutine is queued to run.
    pub(crate) fn runnable(&self) -> bool {
        !self.woken.borrow().is_empty() || !self.fresh.borrow().is_empty()
    }

    /// The running coroutine's park token: the identity of the park it is
    /// about to make. Refused when the caller is no coroutine of this hub,
    /// is unwinding, or was killed.
    pub(crate) fn token(&self) -> Result<ParkToken<'_>, NoPark> {
        let key = self.current.get().ok_or(NoPark::NotCoroutine)?;
        if std::thread::panicking() {
            return Err(NoPark::Unwinding);
        }
        if self.current_killed.get() {
            return Err(NoPark::Killed);
        }
        let tasks = self.tasks.borrow();
        let task = tasks.get(key).ok_or(NoPark::NotCoroutine)?;
        Ok(ParkToken {
            sched: self,
            waiter: Waiter {
                hub: self.hub,
                task: key,
                seq: task.seq,
            },
            scope: task.scope_deadline(),
        })
    }

    /// Whether the running coroutine was killed.
    pub(crate) fn current_killed(&self) -> bool {
        self.current_killed.get()
    }

    /// Runs `f` on the running coroutine's entry.
    pub(crate) fn with_current<R>(&self, f: impl FnOnce(&mut Task) -> R) -> Option<R> {
        let key = self.current.get()?;
        let mut tasks = self.tasks.borrow_mut();
        tasks.get_mut(key).map(f)
    }
}

/// The identity of one park of the running coroutine, handed out by
/// [`Sched::token`] and consumed by the park.
///
/// Its waiter may be given to wake sources (a helper thread, a remote
/// channel) before the park. Dropping the token retires the seq, whatever
/// path the park took: so no early exit (a deadline that has already passed,
/// a kill, an error before suspending) can leave a waiter that still wakes
/// the coroutine's *next* park.
#[derive(Debug)]
pub(crate) struct ParkToken<'a> {
    sched: &'a Sched,
    waiter: Waiter,
    /// The nearest enclosing `timeout` deadline when the token was taken.
    scope: Option<Instant>,
}

impl ParkToken<'_> {
    /// The waiter a wake source stores.
    pub(crate) fn waiter(&self) -> Waiter {
        self.waiter
    }

    /// The nearest enclosing `timeout` deadline of the parking coroutine.
    pub(crate) fn scope(&self) -> Option<Instant> {
        self.scope
    }

    /// The park has resumed: retires its seq (as the drop would) and, in
    /// the same look at the task, takes why it was woken and whether it
    /// was killed.
    pub(crate) fn resumed(self) -> (Option<Wake>, bool) {
        let outcome = {
            let mut tasks = self.sched.tasks.borrow_mut();
            match tasks.get_mut(self.waiter.task) {
                Some(task) => {
                    if task.seq == self.waiter.seq {
                        task.seq += 1;
                    }
                    (task.wake.take(), task.killed)
                }
                None => (None, self.sched.current_killed.get()),
            }
        };
        std::mem::forget(self); // retired above
        outcome
    }
}

impl Drop for ParkToken<'_> {
    fn drop(&mut self) {
        if let Some(task) = self.sched.tasks.borrow_mut().get_mut(self.waiter.task) {
            if task.seq == self.waiter.seq {
                task.seq += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_queue_a_burst_left_empty_gives_its_memory_back() {
        let mut queue = RunQueue::default();
        queue.extend((0..10 * QUEUE_KEPT).map(Key::from_usize));
        let mut popped = 0;
        while let Some(key) = queue.pop() {
            assert_eq!(key.index(), popped, "in order");
            popped += 1;
            if !queue.is_empty() {
                assert!(queue.capacity() >= queue.len());
            }
        }
        assert_eq!(popped, 10 * QUEUE_KEPT);
        assert!(queue.capacity() <= 2 * QUEUE_KEPT, "{}", queue.capacity());
    }

    #[test]
    fn a_steady_cycle_of_bursts_keeps_its_run_queue_memory() {
        let mut queue = RunQueue::default();
        let burst = 8 * QUEUE_KEPT;
        let mut capacities = Vec::new();
        for _ in 0..6 {
            queue.extend((0..burst).map(Key::from_usize));
            while queue.pop().is_some() {}
            capacities.push(queue.capacity());
        }
        // The first burst follows none and gives its memory back; from the
        // second on, each follows one as long and keeps it.
        assert!(capacities[1] >= burst, "{capacities:?}");
        assert!(
            capacities[1..].windows(2).all(|w| w[0] == w[1]),
            "{capacities:?}"
        );
    }
}

//! `park`: the only way a coroutine blocks. Sleep, socket waits, join,
//! helper-thread waits and every wait queue are built on it.
//!
//! # The protocol
//!
//! 1. A coroutine calls [`park`] with one wake source ([`WaitOn`]) and an
//!    optional deadline. `park` adds the innermost enclosing `timeout` scope's
//!    deadline, registers a [`Waiter`] with the source and, if there is a
//!    deadline, with the timer queue, then suspends to the hub.
//! 2. Whoever fires first wakes it through `Core::wake`: the socket's
//!    readiness, the wait queue's `notify`, the timer, a `kill`, or the hub's
//!    deadlock report. The first wake bumps the coroutine's park sequence
//!    number, so every other source's waiter, which carries the old number,
//!    is now stale and its wake is ignored.
//! 3. Back in `park`, the coroutine cancels what lost the race (removes its
//!    timer and its registration with the source), then returns an
//!    [`Outcome`] — or, if it was killed, unwinds with a kill signal.
//!
//! A wake cannot arrive before the park: everything runs on one thread, and
//! sources are only fired by the hub after the coroutine has suspended. Wakes
//! can be spurious (a readiness event for bytes another reader took), so
//! callers re-check their condition and park again: never trust a wake-up.
//! A coroutine that is unwinding (killed or panicking) never suspends: `park`
//! returns [`Outcome::Refused`] instead, because the thread's panic state is
//! shared by every coroutine on it. See `docs/architecture.md`, "Parking".

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::thread;
use std::time::Instant;

use crate::hub;
use crate::io::Direction;
use crate::slab::Key;
use crate::task::State;

/// One park of one coroutine: the key of its task and the park's sequence
/// number. Wake sources store it; a wake with an old `seq` is ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Waiter {
    pub(crate) task: Key,
    pub(crate) seq: u64,
}

/// The wake source a coroutine parks on.
#[derive(Debug)]
pub(crate) enum WaitOn<'a> {
    /// Readiness of a registered socket in one direction.
    Io(Key, Direction),
    /// A wait queue: join, and the synchronisation primitives.
    Queue(&'a WaitQueue),
    /// Several wait queues at once (`wait_any`); any one wakes the coroutine.
    Queues(&'a [&'a WaitQueue]),
    /// Only the deadline: `sleep`.
    Deadline,
    /// A job on a helper thread, which holds the waiter: `unblock`.
    Unblock,
    /// Another OS thread, which holds the waiter: a remote channel.
    Remote,
    /// The back of the run queue: `yield_now`. Ignores deadlines.
    Yield,
}

/// What a coroutine is parked on, as `stats()` and error messages show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ParkedOn {
    /// A socket's read or write side, and its token.
    Io(Direction, Key),
    Sleep,
    Queue(&'static str),
    Unblock,
    Remote,
}

impl fmt::Display for ParkedOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParkedOn::Io(Direction::Read, _) => f.write_str("socket read"),
            ParkedOn::Io(Direction::Write, _) => f.write_str("socket write"),
            ParkedOn::Sleep => f.write_str("sleep"),
            ParkedOn::Queue(label) => f.write_str(label),
            ParkedOn::Unblock => f.write_str("helper thread"),
            ParkedOn::Remote => f.write_str("another thread"),
        }
    }
}

/// Why the hub woke a parked coroutine; set by the waker, read by `park`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// The wake source fired.
    Notified,
    /// The park's deadline passed.
    Timer,
    /// `kill` was called.
    Killed,
    /// Nothing could ever wake this coroutine (only `main` gets this).
    Deadlock(String),
}

/// How a park ended, as its caller sees it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The wake source fired (perhaps spuriously: re-check and park again).
    Notified,
    /// The deadline passed to `park` itself passed.
    Deadline,
    /// The deadline of an enclosing `timeout` scope passed.
    Elapsed,
    /// Nothing can ever wake this coroutine; the message names who waits.
    Deadlock(String),
    /// The caller may not park: it is not a coroutine, or it is unwinding.
    Refused,
}

/// The payload a killed coroutine unwinds with; caught by its trampoline.
#[derive(Debug)]
pub(crate) struct KillSignal;

/// Parks the running coroutine until `on` fires, `deadline` (or an enclosing
/// `timeout`'s) passes, it is killed, or a deadlock is detected.
pub(crate) fn park(on: WaitOn<'_>, deadline: Option<Instant>) -> Outcome {
    let prepared = hub::with(|hub| {
        let mut core = hub.core.borrow_mut();
        let key = core.current?;
        let core = &mut *core;
        let task = core
            .tasks
            .get_mut(key)
            .expect("the running coroutine exists");
        if thread::panicking() {
            return Some(Err(Outcome::Refused));
        }
        if task.killed {
            return Some(Ok(None));
        }
        let me = Waiter {
            task: key,
            seq: task.seq,
        };
        let scope = task.scope_deadline();
        let effective = match on {
            WaitOn::Yield => None,
            _ => min_deadline(deadline, scope),
        };
        if let Some(due) = effective {
            if due <= Instant::now() {
                return Some(Err(task.expire(due, scope)));
            }
            task.timer = Some(core.timers.insert(due, me));
        }
        let yielder = task.yielder.expect("a running coroutine has a yielder");
        task.state = State::Parked(match on {
            WaitOn::Io(token, dir) => {
                core.io.add_waiter(token, dir, me);
                ParkedOn::Io(dir, token)
            }
            WaitOn::Queue(queue) => {
                queue.waiters.borrow_mut().push_back(me);
                ParkedOn::Queue(queue.label)
            }
            WaitOn::Queues(queues) => {
                for queue in queues {
                    queue.waiters.borrow_mut().push_back(me);
                }
                ParkedOn::Queue(queues.first().map_or("wait", |q| q.label))
            }
            WaitOn::Deadline => ParkedOn::Sleep,
            WaitOn::Unblock => ParkedOn::Unblock,
            WaitOn::Remote => ParkedOn::Remote,
            WaitOn::Yield => {
                task.seq += 1;
                task.state = State::Ready;
                task.wake = Some(Wake::Notified);
                core.fresh.push_back(key);
                return Some(Ok(Some((me, yielder, effective, scope))));
            }
        });
        Some(Ok(Some((me, yielder, effective, scope))))
    })
    .flatten();
    let (me, yielder, effective, scope) = match prepared {
        None => return Outcome::Refused,
        Some(Err(outcome)) => return outcome,
        Some(Ok(None)) => kill_unwind(),
        Some(Ok(Some(parked))) => parked,
    };

    // SAFETY: `yielder` is the running coroutine's own (taken from the
    // current task entry just now), and the hub borrow above has ended.
    unsafe { crate::coroutine::suspend(&yielder) };

    let (outcome, killed) = hub::with(|hub| {
        let mut core = hub.core.borrow_mut();
        let core = &mut *core;
        let task = core
            .tasks
            .get_mut(me.task)
            .expect("a resumed coroutine exists");
        let wake = task.wake.take().unwrap_or(Wake::Notified);
        if let Some(timer) = task.timer.take() {
            if wake != Wake::Timer {
                core.timers.cancel(timer);
            }
        }
        let outcome = match wake {
            Wake::Notified => Outcome::Notified,
            Wake::Timer => task.expire(effective.expect("a timer wake has a deadline"), scope),
            Wake::Killed => Outcome::Refused,
            Wake::Deadlock(message) => Outcome::Deadlock(message),
        };
        let killed = task.killed;
        if outcome != Outcome::Notified {
            if let WaitOn::Io(token, dir) = on {
                core.io.remove_waiter(token, dir, me);
            }
        }
        (outcome, killed)
    })
    .expect("a coroutine resumes inside its hub");
    let queues: &[&WaitQueue] = match &on {
        WaitOn::Queue(queue) => std::slice::from_ref(queue),
        WaitOn::Queues(queues) => queues,
        _ => &[],
    };
    for queue in queues {
        // A lone queue that woke us has already popped our entry (scanning
        // for it would make every wake O(waiters)); any other queue may
        // still hold it and is told to let go.
        let popped = outcome == Outcome::Notified && queues.len() == 1;
        if !popped && queue.remove(me) {
            continue; // still registered here: this queue did not wake us
        }
        if outcome == Outcome::Notified {
            // This queue woke us: its notification is now consumed, or, if
            // we are about to die, passed on so that no permit, message or
            // lock hand-off is lost.
            queue
                .outstanding
                .set(queue.outstanding.get().saturating_sub(1));
            if killed {
                queue.notify_one();
            }
        }
    }
    if killed {
        if thread::panicking() {
            return Outcome::Refused;
        }
        kill_unwind();
    }
    outcome
}

/// The waiter the running coroutine's next park will have: for wake sources
/// on other threads, which must be told before the coroutine parks.
pub(crate) fn current_waiter() -> Option<Waiter> {
    hub::with(|hub| {
        let core = hub.core.borrow();
        let key = core.current?;
        let seq = core.tasks.get(key)?.seq;
        Some(Waiter { task: key, seq })
    })
    .flatten()
}

fn kill_unwind() -> ! {
    // resume_unwind skips the panic hook: a kill is not an error to report.
    std::panic::resume_unwind(Box::new(KillSignal))
}

fn min_deadline(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A FIFO of parked coroutines waiting for something other than a socket or
/// a timer: a coroutine's end (join), and every synchronisation primitive.
#[derive(Debug)]
pub(crate) struct WaitQueue {
    /// What the waiters wait for, shown by `stats()` and deadlock reports.
    label: &'static str,
    /// Parked waiters in arrival order; `park` adds and removes its own.
    waiters: RefCell<VecDeque<Waiter>>,
    /// Waiters woken by `notify_one` that have not run yet. A primitive
    /// counts what they will take (a permit, an item) as spoken for, so a
    /// newcomer cannot overtake them: that is what makes the queues FIFO.
    /// `park` decrements it when the woken coroutine resumes.
    outstanding: Cell<usize>,
}

impl WaitQueue {
    pub(crate) const fn new(label: &'static str) -> Self {
        WaitQueue {
            label,
            waiters: RefCell::new(VecDeque::new()),
            outstanding: Cell::new(0),
        }
    }

    /// Parks the running coroutine on this queue.
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> Outcome {
        park(WaitOn::Queue(self), deadline)
    }

    /// Wakes the longest-waiting coroutine; false if none was waiting.
    pub(crate) fn notify_one(&self) -> bool {
        loop {
            let Some(waiter) = self.waiters.borrow_mut().pop_front() else {
                return false;
            };
            let woke = hub::with(|hub| hub.core.borrow_mut().wake(waiter, Wake::Notified));
            if woke == Some(true) {
                self.outstanding.set(self.outstanding.get() + 1);
                return true;
            }
        }
    }

    /// Wakes every waiting coroutine.
    pub(crate) fn notify_all(&self) {
        while self.notify_one() {}
    }

    /// Parks the running coroutine on several queues at once.
    pub(crate) fn wait_any(queues: &[&WaitQueue], deadline: Option<Instant>) -> Outcome {
        park(WaitOn::Queues(queues), deadline)
    }

    /// Woken waiters that have not run yet (see the field's doc).
    pub(crate) fn outstanding(&self) -> usize {
        self.outstanding.get()
    }

    /// Whether no coroutine is parked here.
    pub(crate) fn is_empty(&self) -> bool {
        self.waiters.borrow().is_empty()
    }

    /// Parked coroutines.
    pub(crate) fn len(&self) -> usize {
        self.waiters.borrow().len()
    }

    /// Removes `waiter`; false if it was not here (a notify took it).
    fn remove(&self, waiter: Waiter) -> bool {
        let mut waiters = self.waiters.borrow_mut();
        let before = waiters.len();
        waiters.retain(|w| *w != waiter);
        waiters.len() != before
    }
}

//! `park`: the only way a coroutine blocks. Sleep, socket waits, join,
//! helper-thread waits and every wait queue are built on it.
//!
//! # The protocol
//!
//! 1. The coroutine takes a [`ParkToken`] (`Sched::token`): the identity of
//!    this park. A source on another thread (a helper job, a remote channel)
//!    is given the token's waiter *before* the park.
//! 2. [`Hub::park_with`] adds the innermost enclosing `timeout` scope's
//!    deadline, registers the waiter with the one wake source ([`WaitOn`]) and,
//!    if there is a deadline, with the timer queue, then suspends to the hub.
//!    A socket side that is ready already (the reactor's cached readiness)
//!    ends the park at once with `Notified`, without suspending.
//!    [`WaitOn::Any`] (`select`) registers the one waiter with several
//!    sources, queues and socket sides alike; it is still one park, so
//!    step 3's rule (the first wake wins) holds across all of them, and
//!    [`Hub::park_any`] tells the caller which queue's hand-off it holds.
//! 3. Whoever fires first makes it ready through `Sched::wake`: the socket's
//!    readiness, the queue's `notify_one`, the timer, a `kill`, or the hub's
//!    deadlock report. The wake moves the task out of `Parked`, so every
//!    other source's wake for this park is ignored.
//! 4. Back in the park, the coroutine cancels what lost the race (its timer,
//!    its registration with the source), then drops the token, which retires
//!    the park's seq: no waiter of this park can ever wake a later one. Then
//!    it returns an [`Outcome`], or, if it was killed, unwinds with a kill
//!    signal.
//!
//! Every exit path goes through step 4's drop, including the early ones (a
//! deadline already passed, a killed or unwinding caller). A wake cannot
//! arrive before the park: everything runs on one thread, and the hub fires
//! sources only while the coroutine is suspended. Wakes can be spurious (a
//! readiness event for bytes another reader took), so callers re-check their
//! condition and park again. A coroutine that is unwinding (killed or
//! panicking) never suspends: it gets [`Outcome::Refused`], because the
//! thread's panic state is shared by every coroutine on it. See
//! `docs/architecture.md`, "Parking".

use std::time::Instant;

use super::Hub;
use crate::sched::{Key, NoPark, ParkToken, ParkedOn, State, Wake};
use crate::sources::reactor::{Direction, Reactor};
use crate::sources::timers::TimerKey;
use crate::sources::wait_queue::{Entry, WaitQueue};

/// The wake source a coroutine parks on.
#[derive(Debug)]
pub(crate) enum WaitOn<'a> {
    /// Readiness of a registered socket in one direction.
    Io(&'a Reactor, Key, Direction),
    /// A wait queue: join, and the synchronisation primitives.
    Queue(&'a WaitQueue),
    /// Several wait queues at once (`wait_any`); any one wakes the coroutine.
    Queues(&'a [&'a WaitQueue]),
    /// Any mix of queues and socket sides (`select`); any one wakes the
    /// coroutine, and [`Hub::park_any`] says which queue did.
    Any(&'a [Source<'a>]),
    /// Only the deadline: `sleep`.
    Deadline,
    /// A job on a helper thread, which holds the waiter: `unblock`.
    Unblock,
    /// Another OS thread, which holds the waiter: a remote channel.
    Remote,
}

/// One wake source of a [`WaitOn::Any`] park.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Source<'a> {
    /// A wait queue; its wake says which source it was.
    Queue(&'a WaitQueue),
    /// Readiness of a registered fd in one direction; a readiness wake does
    /// not say which fd (the reactor's wakes carry no tag), so the caller
    /// re-checks its sockets.
    Io(&'a Reactor, Key, Direction),
}

/// How a park ended, as its caller sees it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The wake source fired (perhaps spuriously: re-check and park again).
    Notified,
    /// The deadline passed to the park itself passed.
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

/// Where a park registered, so that it can take the registrations back.
enum Registered<'a> {
    Nothing,
    Io(&'a Reactor, Key, Direction),
    Queue(&'a WaitQueue, Entry),
    Queues(Vec<(&'a WaitQueue, Entry)>),
    Unblock,
    /// `WaitOn::Any`'s registrations; a queue's tag is its source index
    /// plus one, so no queue's tag is 0, the tag of every readiness wake.
    Any(Vec<AnyEntry<'a>>),
    Remote,
}

enum AnyEntry<'a> {
    Queue(&'a WaitQueue, Entry, usize),
    Io(&'a Reactor, Key, Direction),
}

impl Hub {
    /// Parks the running coroutine until `on` fires, `deadline` (or an
    /// enclosing `timeout`'s) passes, it is killed, or a deadlock is detected.
    pub(crate) fn park(&self, on: WaitOn<'_>, deadline: Option<Instant>) -> Outcome {
        match self.sched.token() {
            Ok(token) => self.park_with(token, on, deadline),
            Err(refused) => refuse(refused),
        }
    }

    /// [`park`](Self::park) with a token taken earlier (see the protocol).
    pub(crate) fn park_with(
        &self,
        token: ParkToken<'_>,
        on: WaitOn<'_>,
        deadline: Option<Instant>,
    ) -> Outcome {
        self.park_inner(token, on, deadline).0
    }

    /// Parks on several `sources` at once (`select`), and says which one
    /// woke the coroutine when a queue did (its index in `sources`): that
    /// queue's hand-off (an item, a slot) is now the caller's, to take or
    /// pass on. `None` for a readiness wake, a deadline or a refusal.
    pub(crate) fn park_any(
        &self,
        sources: &[Source<'_>],
        deadline: Option<Instant>,
    ) -> (Outcome, Option<usize>) {
        let (outcome, from) = match self.sched.token() {
            Ok(token) => self.park_inner(token, WaitOn::Any(sources), deadline),
            Err(refused) => (refuse(refused), 0),
        };
        (outcome, from.checked_sub(1))
    }

    /// The park itself; also returns the tag of the wake (0 unless a queue
    /// of `Queues` or `Any` woke it).
    fn park_inner(
        &self,
        token: ParkToken<'_>,
        on: WaitOn<'_>,
        deadline: Option<Instant>,
    ) -> (Outcome, usize) {
        let me = token.waiter();
        let scope = token.scope();
        let effective = min_deadline(deadline, scope);
        if let Some(due) = effective {
            if due <= Instant::now() {
                return (self.expire(due, scope), 0);
            }
        }
        let (registered, parked_on) = match on {
            WaitOn::Io(reactor, key, dir) => {
                if !reactor.add_waiter(key, dir, me) {
                    return (Outcome::Notified, 0); // ready already, or gone: retry
                }
                let fd = reactor.fd(key).unwrap_or(-1);
                let write = dir == Direction::Write;
                (
                    Registered::Io(reactor, key, dir),
                    ParkedOn::Io { fd, write },
                )
            }
            WaitOn::Queue(queue) => (
                Registered::Queue(queue, queue.push(me, 0)),
                ParkedOn::Queue(queue.label),
            ),
            WaitOn::Queues(queues) => {
                let entries = queues
                    .iter()
                    .enumerate()
                    .map(|(tag, queue)| (*queue, queue.push(me, tag)))
                    .collect();
                let label = queues.first().map_or("wait", |q| q.label);
                (Registered::Queues(entries), ParkedOn::Queue(label))
            }
            WaitOn::Any(sources) => {
                let mut entries = Vec::with_capacity(sources.len());
                for (index, source) in sources.iter().enumerate() {
                    match *source {
                        Source::Queue(queue) => {
                            let tag = index + 1;
                            entries.push(AnyEntry::Queue(queue, queue.push(me, tag), tag));
                        }
                        Source::Io(reactor, key, dir) => {
                            if !reactor.add_waiter(key, dir, me) {
                                // Ready already: take back what was
                                // registered (nothing can have fired yet).
                                for entry in entries {
                                    match entry {
                                        AnyEntry::Queue(queue, entry, _) => {
                                            queue.remove(entry);
                                        }
                                        AnyEntry::Io(reactor, key, dir) => {
                                            reactor.remove_waiter(key, dir, me);
                                        }
                                    }
                                }
                                return (Outcome::Notified, 0);
                            }
                            entries.push(AnyEntry::Io(reactor, key, dir));
                        }
                    }
                }
                (Registered::Any(entries), ParkedOn::Queue("select"))
            }
            WaitOn::Deadline => (Registered::Nothing, ParkedOn::Sleep),
            WaitOn::Unblock => {
                self.parked_unblock.set(self.parked_unblock.get() + 1);
                (Registered::Unblock, ParkedOn::Unblock)
            }
            WaitOn::Remote => {
                self.parked_remote.set(self.parked_remote.get() + 1);
                (Registered::Remote, ParkedOn::Remote)
            }
        };
        let timer: Option<TimerKey> = effective.map(|due| self.timers.borrow_mut().insert(due, me));
        self.sched.with_current(|task| {
            task.state = State::Parked(parked_on);
            task.parked_until = effective;
        });

        self.suspend();

        let (wake, killed) = token.resumed();
        let wake = wake.unwrap_or(Wake::Notified { from: 0 });
        let from = match wake {
            Wake::Notified { from } => from as usize,
            _ => 0,
        };
        if let Some(timer) = timer {
            if wake != Wake::Timer {
                self.timers.borrow_mut().cancel(timer);
            }
        }
        match registered {
            Registered::Nothing => {}
            Registered::Io(reactor, key, dir) => {
                if !matches!(wake, Wake::Notified { .. }) {
                    reactor.remove_waiter(key, dir, me);
                }
            }
            Registered::Queue(queue, entry) => self.leave_queue(queue, entry, 0, &wake, killed),
            Registered::Queues(entries) => {
                for (tag, (queue, entry)) in entries.into_iter().enumerate() {
                    self.leave_queue(queue, entry, tag, &wake, killed);
                }
            }
            Registered::Unblock => self.parked_unblock.set(self.parked_unblock.get() - 1),
            Registered::Any(entries) => {
                for entry in entries {
                    match entry {
                        AnyEntry::Queue(queue, entry, tag) => {
                            self.leave_queue(queue, entry, tag, &wake, killed);
                        }
                        AnyEntry::Io(reactor, key, dir) => reactor.remove_waiter(key, dir, me),
                    }
                }
            }
            Registered::Remote => self.parked_remote.set(self.parked_remote.get() - 1),
        }
        let outcome = match wake {
            Wake::Notified { .. } => Outcome::Notified,
            Wake::Timer => self.expire(effective.expect("a timer wake has a deadline"), scope),
            Wake::Killed => Outcome::Refused,
            Wake::Deadlock => Outcome::Deadlock(self.deadlock.take().unwrap_or_default()),
        };
        if killed {
            if std::thread::panicking() {
                return (Outcome::Refused, 0);
            }
            kill_unwind();
        }
        (outcome, from)
    }

    /// Puts the running coroutine at the back of the run queue and suspends
    /// (`yield_now`); a kill meanwhile unwinds it on return. A yield
    /// registers with no source, so its park identity is retired before it
    /// suspends: one borrow of the task table on each side of the switch.
    pub(crate) fn yield_now(&self) -> Outcome {
        let Some(key) = self.sched.current() else {
            return Outcome::Refused;
        };
        if std::thread::panicking() {
            return Outcome::Refused;
        }
        if self.sched.requeue_current(key) {
            kill_unwind();
        }
        self.suspend();
        if self.sched.current_killed() && !std::thread::panicking() {
            kill_unwind();
        }
        Outcome::Notified
    }

    /// Switches to the hub. No borrow of hub state is held here: every
    /// borrow above ended with its statement.
    fn suspend(&self) {
        crate::sys::switch::suspend();
    }

    /// Takes a registration back from `queue`. If this queue woke us, its
    /// notification is now consumed, or, if we are about to die, passed on
    /// so that no permit, message or lock hand-off is lost.
    fn leave_queue(&self, queue: &WaitQueue, entry: Entry, tag: usize, wake: &Wake, killed: bool) {
        if queue.remove(entry) {
            return; // still registered here: this queue did not wake us
        }
        if *wake == (Wake::Notified { from: tag as u32 }) {
            queue.consumed();
            if killed {
                queue.notify_one(&self.sched);
            }
        }
    }

    /// The park's deadline `due` passed: if it was a `timeout` scope's, mark
    /// every scope due by then as elapsed.
    fn expire(&self, due: Instant, scope: Option<Instant>) -> Outcome {
        if scope.is_none_or(|scope| scope > due) {
            return Outcome::Deadline;
        }
        self.sched.with_current(|task| {
            let scopes = task.extras.iter_mut().flat_map(|extras| &mut extras.scopes);
            for scope in scopes.filter(|s| s.deadline <= due) {
                scope.elapsed = true;
            }
        });
        Outcome::Elapsed
    }
}

/// The outcome for a caller that may not park.
fn refuse(refused: NoPark) -> Outcome {
    match refused {
        NoPark::Killed => kill_unwind(),
        NoPark::NotCoroutine | NoPark::Unwinding => Outcome::Refused,
    }
}

/// Unwinds the killed running coroutine to its trampoline.
pub(crate) fn kill_unwind() -> ! {
    // resume_unwind skips the panic hook: a kill is not an error to report.
    std::panic::resume_unwind(Box::new(KillSignal))
}

fn min_deadline(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The error a wait on a socket (or a helper job) gives when it did not end
/// in readiness.
pub(crate) fn outcome_to_io(outcome: Outcome, what: &'static str) -> std::io::Result<()> {
    match outcome {
        Outcome::Notified => Ok(()),
        Outcome::Deadline => Err(timed_out(what)),
        Outcome::Elapsed => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("{what} interrupted: greenhub::timeout elapsed"),
        )),
        Outcome::Deadlock(message) => Err(std::io::Error::other(message)),
        Outcome::Refused => Err(cannot_wait(what)),
    }
}

/// The error of an operation that would have to park where it may not.
pub(crate) fn cannot_wait(what: &str) -> std::io::Error {
    std::io::Error::other(format!(
        "{what} cannot wait: not in a coroutine, or the coroutine is unwinding (killed or panicking)"
    ))
}

/// `ErrorKind::TimedOut`, naming the operation whose own timeout passed.
pub(crate) fn timed_out(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, format!("{what} timed out"))
}

//! The trace recorder's ring: every scheduler transition of one hub (spawn,
//! resume, park, yield, wake, kill, finish, panic) and the hub's polls, with
//! a monotonic timestamp, into a bounded ring. The scheduler and the hub call
//! its hooks (one line each); `trace/` turns the ring into a `Trace` and
//! exports it, and `console.rs` reads the pulse.
//!
//! Off by default. Every hook starts with one test of `mode` (a `Cell<u8>`
//! of this hub, zero when off) and returns: a predictable branch, no clock
//! read, no borrow. When tracing, each event costs one `Instant::now()` and a
//! push. When the console is on, a resume publishes a switch number and the
//! running coroutine's id and its return publishes "idle": three relaxed
//! atomic stores in all, inlined into the hub's switch, into the [`Pulse`],
//! a slot the hub allocates once and aligns to cache lines of its own (no
//! `RefCell`, no `Option`, no other data on its lines for the console's
//! sampler thread to pull away). Each poll reads the clock twice to measure
//! the hub's poll gap.
//!
//! Beside the ring it keeps what the ring's wrap must not drop: the state of
//! each coroutine alive at `start` ([`AtStart`]), and the names of named
//! coroutines that finish while recording (the living have theirs in the
//! task table).
//!
//! It lives beside the scheduler because `Sched::wake` is the one place
//! every wake passes through (queues, readiness, timers, kills); it knows
//! task ids and park reasons and nothing of sockets or the hub's loop.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{ParkedOn, State, Wake};

/// `mode` bit: events go into the ring.
const TRACE: u8 = 1;
/// `mode` bit: the console's pulse is published.
const PULSE: u8 = 2;
/// `Pulse::running` while no coroutine runs (the hub polls, or idles).
pub(crate) const IDLE: u64 = u64::MAX;

/// What a parked coroutine waits on, as a trace records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Wait {
    /// A socket (or other fd) becoming readable (`write: false`) or
    /// writable (`write: true`).
    Socket {
        /// The file descriptor (-1 if it was closed meanwhile).
        fd: i32,
        /// Which direction.
        write: bool,
    },
    /// Only a deadline: `sleep`.
    Timer,
    /// A wait queue; the label says which (`join`, `channel recv`, ...).
    Queue(&'static str),
    /// A job on a helper thread (`unblock`, name resolution).
    Helper,
    /// Another OS thread (a remote channel or join).
    Remote,
}

impl Wait {
    fn from_parked(on: ParkedOn) -> Wait {
        match on {
            ParkedOn::Io { fd, write } => Wait::Socket { fd, write },
            ParkedOn::Sleep => Wait::Timer,
            ParkedOn::Queue(label) => Wait::Queue(label),
            ParkedOn::Unblock => Wait::Helper,
            ParkedOn::Remote => Wait::Remote,
        }
    }
}

impl std::fmt::Display for Wait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Wait::Socket { fd, write: false } => write!(f, "socket read fd {fd}"),
            Wait::Socket { fd, write: true } => write!(f, "socket write fd {fd}"),
            Wait::Timer => f.write_str("sleep"),
            Wait::Queue(label) => f.write_str(label),
            Wait::Helper => f.write_str("helper thread"),
            Wait::Remote => f.write_str("another thread"),
        }
    }
}

/// What a coroutine alive when a recording started was doing at that
/// moment: the state its track starts in (see
/// [`Trace::at_start`](crate::trace::Trace::at_start)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtStart {
    /// It was running: the coroutine that called `trace::start`.
    Running,
    /// It was queued to run (spawned, woken or yielded before the start).
    Ready,
    /// It was parked on `on`; `deadline` if a timer races it.
    Parked {
        /// What it waits on.
        on: Wait,
        /// Whether a deadline (its own or a `timeout`'s) also wakes it.
        deadline: bool,
    },
}

impl AtStart {
    /// The state of a task in `state`, with a deadline if `deadline`.
    pub(crate) fn of(state: State, deadline: bool) -> AtStart {
        match state {
            State::Running => AtStart::Running,
            State::Ready => AtStart::Ready,
            State::Parked(on) => AtStart::Parked {
                on: Wait::from_parked(on),
                deadline,
            },
        }
    }
}

/// Which source woke a parked coroutine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WakeBy {
    /// Its socket became ready (the hub's poll).
    Readiness,
    /// Its deadline (a `sleep`, a timeout) passed.
    Timer,
    /// A wait queue's notification (a channel send, a join, a lock release).
    Queue,
    /// Its helper-thread job finished.
    Helper,
    /// Another OS thread woke it.
    Remote,
    /// It was killed.
    Kill,
    /// Nothing else could ever wake it: the hub's deadlock report.
    Deadlock,
}

/// One event of a trace. `coroutine` in [`Event`](crate::trace::Event)
/// says whose it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The coroutine was created; `by` is the coroutine that spawned it
    /// (`None`: the hub, for `main` and remote spawns).
    Spawn {
        /// The spawning coroutine.
        by: Option<u64>,
    },
    /// The hub switched to the coroutine.
    Resume,
    /// The coroutine suspended on `on`; `deadline` if a timer races it.
    Park {
        /// What it waits on.
        on: Wait,
        /// Whether a deadline (its own or a `timeout`'s) also wakes it.
        deadline: bool,
    },
    /// The coroutine went back to the run queue (`yield_now`).
    Yield,
    /// The parked coroutine was made ready by `by`; `waker` is the
    /// coroutine that ran the wake (`None`: the hub's poll or timers).
    Wake {
        /// The wake source.
        by: WakeBy,
        /// The waking coroutine.
        waker: Option<u64>,
    },
    /// `kill` was called on the coroutine, by `by` (`None`: the hub's
    /// shutdown).
    Kill {
        /// The killing coroutine.
        by: Option<u64>,
    },
    /// The coroutine returned, or finished unwinding.
    Finish,
    /// The coroutine's closure panicked (a `Finish` follows).
    Panic {
        /// The panic's message.
        message: String,
    },
    /// The hub polled the OS (`coroutine` is `None`): asked to wait at most
    /// `timeout` (`None`: until an event), waited `waited`, got `events`.
    Poll {
        /// The poll's timeout.
        timeout: Option<Duration>,
        /// How long the poll took.
        waited: Duration,
        /// Readiness events it returned.
        events: usize,
    },
}

/// One recorded event, as the ring holds it.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) at: Instant,
    pub(crate) coroutine: Option<u64>,
    pub(crate) kind: EventKind,
}

/// What [`Recorder::stop`] hands back.
#[derive(Debug)]
pub(crate) struct Recording {
    /// The ring's events, oldest first.
    pub(crate) records: VecDeque<Record>,
    /// When the recording started.
    pub(crate) started: Instant,
    /// Events dropped because the ring was full.
    pub(crate) dropped: u64,
    /// The names of named coroutines that finished during the recording
    /// and still have events in the ring (see [`Recorder::finish`]); those
    /// alive at `stop` are in the task table.
    pub(crate) names: HashMap<u64, Rc<str>>,
    /// The coroutines alive when the recording started, by id, and what
    /// each was doing then, less those whose every event the ring dropped.
    pub(crate) at_start: BTreeMap<u64, AtStart>,
}

/// What the console's sampler thread reads: written by the hub on every
/// resume and return (relaxed stores, a single writer), read by one other
/// thread. One per hub, allocated with its recorder and reused by every
/// view; aligned to 128 bytes (a cache line and the one the adjacent-line
/// prefetcher pairs with it) so nothing else lives on its lines: the
/// sampler's reads and its own writes elsewhere never take a line the hub
/// writes on every switch.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Pulse {
    /// Resumes since the pulse started; a new value means a new run.
    pub(crate) switches: AtomicU64,
    /// The id of the coroutine running now, or [`IDLE`].
    pub(crate) running: AtomicU64,
}

/// The poll figures the console shows, since it last took them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PollStats {
    pub(crate) polls: u64,
    /// The longest time between the end of one poll and the start of the
    /// next: the longest a ready socket could have gone unnoticed.
    pub(crate) max_gap: Duration,
    /// Time spent inside polls (waiting for events, or idle).
    pub(crate) waited: Duration,
}

/// The ring and the switches of one hub's recorder. Owned by `Sched`.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    /// `TRACE | PULSE` bits; 0 when off, the one test every hook makes.
    mode: Cell<u8>,
    /// Events, oldest first; at most `capacity`, the oldest dropped first.
    ring: RefCell<VecDeque<Record>>,
    capacity: Cell<usize>,
    /// Events dropped since tracing started because the ring was full.
    dropped: Cell<u64>,
    /// Names of the named coroutines that finished while recording, noted
    /// as each finishes, kept apart from the ring so a name outlives its
    /// dropped `Spawn` record (a coroutine alive at `stop` has its name in
    /// the task table). Pruned to the ids the ring still holds when it
    /// outgrows twice the ring's capacity (at least 1,024): a finished
    /// coroutine with no event left in the ring is in no export.
    names: RefCell<HashMap<u64, Rc<str>>>,
    /// The coroutines alive at `start` and their state then:
    /// kept apart from the ring, so the ring's wrap does not drop them
    /// while they live. When the wrap drops one's `Finish`, every event of
    /// it is gone and so is its entry here: a finished coroutine with no
    /// event left is in no export, as one spawned during the recording.
    at_start: RefCell<BTreeMap<u64, AtStart>>,
    /// When tracing started.
    started: Cell<Option<Instant>>,
    /// The coroutine running now (set by `resume`, cleared when it parks,
    /// yields or finishes): the waker of a wake, the spawner of a spawn.
    running: Cell<Option<u64>>,
    /// The console's pulse; published to only while `mode` has `PULSE`.
    pulse: Arc<Pulse>,
    pulse_switches: Cell<u64>,
    poll_started: Cell<Option<Instant>>,
    last_poll_end: Cell<Option<Instant>>,
    polls: Cell<PollStats>,
}

impl Recorder {
    /// Starts recording into a fresh ring of `capacity` events (at least 1);
    /// `running` is the coroutine that starts it, if one does, and
    /// `at_start` every coroutine alive now with its state.
    pub(crate) fn start(
        &self,
        capacity: usize,
        running: Option<u64>,
        at_start: Vec<(u64, AtStart)>,
    ) {
        self.running.set(running);
        let capacity = capacity.max(1);
        *self.ring.borrow_mut() = VecDeque::with_capacity(capacity.min(1 << 16));
        self.capacity.set(capacity);
        self.dropped.set(0);
        self.names.borrow_mut().clear();
        *self.at_start.borrow_mut() = at_start.into_iter().collect();
        self.started.set(Some(Instant::now()));
        self.mode.set(self.mode.get() | TRACE);
    }

    /// Stops recording; `None` if it was not recording.
    pub(crate) fn stop(&self) -> Option<Recording> {
        if self.mode.get() & TRACE == 0 {
            return None;
        }
        self.mode.set(self.mode.get() & !TRACE);
        Some(Recording {
            records: std::mem::take(&mut *self.ring.borrow_mut()),
            started: self.started.take().unwrap_or_else(Instant::now),
            dropped: self.dropped.get(),
            names: std::mem::take(&mut *self.names.borrow_mut()),
            at_start: std::mem::take(&mut *self.at_start.borrow_mut()),
        })
    }

    /// Notes the name of coroutine `id`, which finished while recording:
    /// the task table, where `stop` finds the names of the living, no
    /// longer has it.
    fn name(&self, id: u64, name: &Rc<str>) {
        let mut names = self.names.borrow_mut();
        names.insert(id, name.clone());
        if names.len() > self.capacity.get().saturating_mul(2).max(1024) {
            // Amortised: after this the map holds at most one name per
            // coroutine in the ring, and the ring is `capacity` long. A
            // pruned coroutine has finished and has no event left to
            // export, and no `at_start` entry either (the wrap that
            // dropped its `Finish` took it), so nothing needs its name.
            let ring = self.ring.borrow();
            let kept: std::collections::HashSet<u64> =
                ring.iter().filter_map(|record| record.coroutine).collect();
            names.retain(|id, _| kept.contains(id));
        }
    }

    /// Whether events go into the ring now.
    pub(crate) fn tracing(&self) -> bool {
        self.mode.get() & TRACE != 0
    }

    /// Starts publishing the pulse; the console's sampler reads it. `None`
    /// while a pulse is already published (one view per hub: a second
    /// would reset the pulse the first one's sampler reads).
    ///
    /// The pulse is reused: the previous view's sampler has been joined
    /// before its `stop_pulse`, so nothing else reads it while it is reset.
    /// `running` is the coroutine that opens the view, if one does: its run
    /// is published as the first, so a long stretch of it is seen too.
    pub(crate) fn start_pulse(&self, running: Option<u64>) -> Option<Arc<Pulse>> {
        if self.mode.get() & PULSE != 0 {
            return None;
        }
        let first = u64::from(running.is_some());
        self.pulse_switches.set(first);
        self.pulse.switches.store(first, Ordering::Relaxed);
        self.pulse
            .running
            .store(running.unwrap_or(IDLE), Ordering::Relaxed);
        self.polls.set(PollStats::default());
        self.last_poll_end.set(None);
        self.mode.set(self.mode.get() | PULSE);
        Some(self.pulse.clone())
    }

    /// Stops publishing the pulse.
    pub(crate) fn stop_pulse(&self) {
        self.mode.set(self.mode.get() & !PULSE);
    }

    /// The poll figures since the last call (the console's refresh).
    pub(crate) fn take_poll_stats(&self) -> PollStats {
        self.polls.take()
    }

    #[inline]
    pub(crate) fn spawn(&self, id: u64) {
        if self.mode.get() & TRACE != 0 {
            self.spawned(id);
        }
    }

    #[inline]
    pub(crate) fn resume(&self, id: u64) {
        let mode = self.mode.get();
        if mode != 0 {
            self.running.set(Some(id));
            if mode & PULSE != 0 {
                let n = self.pulse_switches.get() + 1;
                self.pulse_switches.set(n);
                self.pulse.running.store(id, Ordering::Relaxed);
                self.pulse.switches.store(n, Ordering::Relaxed);
            }
            if mode & TRACE != 0 {
                self.resumed(id);
            }
        }
    }

    /// The coroutine is back in the hub, suspended: parked on what `state`
    /// says (with a deadline racing it if `deadline`), or `Ready` after a
    /// yield. Recorded on the hub's side, not in the park: see [`left`].
    ///
    /// [`left`]: Recorder::left
    #[inline]
    pub(crate) fn suspended(&self, id: u64, state: State, deadline: bool) {
        if self.mode.get() & TRACE != 0 {
            let kind = match state {
                State::Parked(on) => EventKind::Park {
                    on: Wait::from_parked(on),
                    deadline,
                },
                State::Ready | State::Running => EventKind::Yield,
            };
            self.ended(id, kind);
        }
    }

    /// Coroutine `id`, named `name` if it has one, is gone: its name is
    /// noted beside the ring (see [`Recorder::name`]).
    #[inline]
    pub(crate) fn finish(&self, id: u64, name: Option<&Rc<str>>) {
        if self.mode.get() & TRACE != 0 {
            self.ended(id, EventKind::Finish);
            if let Some(name) = name {
                self.name(id, name);
            }
        }
    }

    /// The hub is back from a resume (the coroutine parked, yielded or
    /// finished). Hub-side on purpose: a hook the coroutine calls runs on
    /// its stack, and with thousands of coroutines every deeper frame there
    /// is a cold cache line (the pulse alone cost 50% per switch that way).
    #[inline]
    pub(crate) fn left(&self) {
        let mode = self.mode.get();
        if mode != 0 {
            self.running.set(None);
            if mode & PULSE != 0 {
                self.pulse.running.store(IDLE, Ordering::Relaxed);
            }
        }
    }

    /// `state` is the woken task's state before the wake (a `Parked`).
    #[inline]
    pub(crate) fn wake(&self, id: u64, state: State, wake: &Wake) {
        if self.mode.get() & TRACE != 0 {
            let by = match (wake, state) {
                (Wake::Timer, _) => WakeBy::Timer,
                (Wake::Killed, _) => WakeBy::Kill,
                (Wake::Deadlock, _) => WakeBy::Deadlock,
                (Wake::Notified { .. }, State::Parked(ParkedOn::Io { .. })) => WakeBy::Readiness,
                (Wake::Notified { .. }, State::Parked(ParkedOn::Unblock)) => WakeBy::Helper,
                (Wake::Notified { .. }, State::Parked(ParkedOn::Remote)) => WakeBy::Remote,
                (Wake::Notified { .. }, State::Parked(ParkedOn::Sleep)) => WakeBy::Timer,
                (Wake::Notified { .. }, _) => WakeBy::Queue,
            };
            let waker = self.running.get();
            self.push(Some(id), EventKind::Wake { by, waker });
        }
    }

    #[inline]
    pub(crate) fn kill(&self, id: u64) {
        if self.mode.get() & TRACE != 0 {
            self.push(
                Some(id),
                EventKind::Kill {
                    by: self.running.get(),
                },
            );
        }
    }

    /// The running coroutine's closure panicked with `message`.
    #[inline]
    pub(crate) fn panic(&self, message: impl FnOnce() -> String) {
        if self.mode.get() & TRACE != 0 {
            let message = message();
            self.push(self.running.get(), EventKind::Panic { message });
        }
    }

    /// The hub is about to poll.
    #[inline]
    pub(crate) fn poll_begin(&self) {
        if self.mode.get() != 0 {
            self.poll_started.set(Some(Instant::now()));
        }
    }

    /// The hub polled with `timeout`; `events` counts what it got.
    #[inline]
    pub(crate) fn poll_end(&self, timeout: Option<Duration>, events: impl FnOnce() -> usize) {
        if self.mode.get() != 0 {
            self.polled(timeout, events());
        }
    }

    #[inline(never)]
    fn spawned(&self, id: u64) {
        self.push(
            Some(id),
            EventKind::Spawn {
                by: self.running.get(),
            },
        );
    }

    #[inline(never)]
    fn resumed(&self, id: u64) {
        self.push(Some(id), EventKind::Resume);
    }

    /// The running coroutine's run ended with `kind` (park, yield, finish).
    #[inline(never)]
    fn ended(&self, id: u64, kind: EventKind) {
        self.running.set(None);
        self.push(Some(id), kind);
    }

    #[inline(never)]
    fn polled(&self, timeout: Option<Duration>, events: usize) {
        let end = Instant::now();
        let begin = self.poll_started.take().unwrap_or(end);
        let waited = end.duration_since(begin);
        if self.mode.get() & PULSE != 0 {
            let mut stats = self.polls.get();
            stats.polls += 1;
            stats.waited += waited;
            if let Some(last) = self.last_poll_end.get() {
                stats.max_gap = stats.max_gap.max(begin.duration_since(last));
            }
            self.polls.set(stats);
            self.last_poll_end.set(Some(end));
        }
        if self.mode.get() & TRACE != 0 {
            let kind = EventKind::Poll {
                timeout,
                waited,
                events,
            };
            self.push_at(begin, None, kind);
        }
    }

    #[inline(never)]
    fn push(&self, coroutine: Option<u64>, kind: EventKind) {
        if self.mode.get() & TRACE != 0 {
            self.push_at(Instant::now(), coroutine, kind);
        }
    }

    fn push_at(&self, at: Instant, coroutine: Option<u64>, kind: EventKind) {
        let mut ring = self.ring.borrow_mut();
        if ring.len() >= self.capacity.get() {
            if let Some(Record {
                coroutine: Some(id),
                kind: EventKind::Finish,
                ..
            }) = ring.pop_front()
            {
                self.at_start.borrow_mut().remove(&id);
            }
            self.dropped.set(self.dropped.get() + 1);
        }
        ring.push_back(Record {
            at,
            coroutine,
            kind,
        });
    }
}

//! Introspection: what the hub is doing, for learners, logs and tests.
//!
//! [`stats`] counts coroutines by state and the hub's resources; [`current`]
//! names the running coroutine; [`current_name`] lets a log formatter print
//! that name, as the demo's `(cron)` and `(main)` columns do; [`hub_id`]
//! says which hub is running, so a resource made in one hub (a pooled socket)
//! can tell it is being used in another. None of this is on the switch path:
//! it walks the tables when asked.

use std::fmt;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::hub;
use crate::park::ParkedOn;
use crate::task::State;

/// A snapshot of one hub, from [`stats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Coroutines spawned and not yet finished, `main` included.
    pub alive: usize,
    /// Queued to run (spawned, woken or yielding), plus the one running.
    pub runnable: usize,
    /// Parked on socket readiness.
    pub parked_io: usize,
    /// Parked in `sleep`.
    pub parked_timer: usize,
    /// Parked on anything else: join, a wait queue, a helper thread.
    pub parked_other: usize,
    /// Coroutines spawned since the hub started, `main` included.
    pub spawned: u64,
    /// Resumes since the hub started.
    pub switches: u64,
    /// Stacks of finished coroutines waiting for reuse.
    pub stacks_pooled: usize,
    /// Stacks mapped in all, pooled or in use.
    pub stacks_carved: usize,
    /// Sockets registered with the hub.
    pub sockets: usize,
    /// Deadlines in the timer queue.
    pub timers: usize,
    /// Helper threads started by `unblock`.
    pub helper_threads: usize,
}

/// Counts this thread's hub; all zero outside `run`.
pub fn stats() -> Stats {
    hub::with(|hub| {
        let core = hub.core.borrow();
        let stacks = hub.stacks.borrow();
        let mut stats = Stats {
            alive: core.tasks.len(),
            spawned: core.next_id,
            switches: core.switches,
            stacks_pooled: stacks.pooled(),
            stacks_carved: stacks.carved(),
            sockets: core.io.len(),
            timers: core.timers.len(),
            helper_threads: hub.helpers.threads(),
            ..Stats::default()
        };
        for (_, task) in core.tasks.iter() {
            match task.state {
                State::Ready | State::Running => stats.runnable += 1,
                State::Parked(ParkedOn::Io(..)) => stats.parked_io += 1,
                State::Parked(ParkedOn::Sleep) => stats.parked_timer += 1,
                State::Parked(_) => stats.parked_other += 1,
            }
        }
        stats
    })
    .unwrap_or_default()
}

/// Which hub: unique in the process, never reused, so two hubs run one after
/// the other on the same thread have different ids. From [`hub_id`].
///
/// ```
/// let first = greenhub::run(|| greenhub::hub_id().unwrap());
/// let second = greenhub::run(|| greenhub::hub_id().unwrap());
/// assert_ne!(first, second);
/// assert_eq!(greenhub::hub_id(), None, "outside any hub");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HubId(u64);

impl HubId {
    /// A fresh id, for a hub that is starting.
    pub(crate) fn next() -> HubId {
        /// The last id handed out; ids start at 1.
        static LAST: AtomicU64 = AtomicU64::new(0);
        HubId(LAST.fetch_add(1, Ordering::Relaxed) + 1)
    }
}

/// The id of the hub running on this thread, or `None` outside
/// [`run`](crate::run).
pub fn hub_id() -> Option<HubId> {
    hub::with(|hub| hub.id)
}

/// The running coroutine, from [`current`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Current {
    id: u64,
    name: Option<Rc<str>>,
}

impl Current {
    /// The coroutine's id, unique within its hub (`main` is 0).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The name given at spawn, if any.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

impl fmt::Display for Current {
    /// The name, or `coroutine-ID` for an unnamed coroutine.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => f.write_str(name),
            None => write!(f, "coroutine-{}", self.id),
        }
    }
}

/// The running coroutine, or `None` outside a coroutine.
pub fn current() -> Option<Current> {
    hub::with(|hub| {
        let core = hub.core.borrow();
        let task = core.tasks.get(core.current?)?;
        Some(Current {
            id: task.id,
            name: task.name.clone(),
        })
    })
    .flatten()
}

/// Displays the running coroutine's name (see [`Current`]'s `Display`), or
/// the OS thread's name outside a coroutine. Made for log formatters:
///
/// ```
/// use std::io::Write;
/// env_logger::Builder::new()
///     .format(|buf, record| writeln!(buf, "({}) {}", greenhub::current_name(), record.args()));
/// ```
pub fn current_name() -> CurrentName {
    CurrentName(())
}

/// What [`current_name`] returns: formatting it looks the name up.
#[derive(Debug)]
pub struct CurrentName(());

impl fmt::Display for CurrentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match current() {
            Some(current) => current.fmt(f),
            None => f.write_str(std::thread::current().name().unwrap_or("thread")),
        }
    }
}

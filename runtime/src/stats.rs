//! Introspection: what the hub is doing, for learners, logs and tests.
//!
//! [`stats`] counts coroutines by state and the hub's resources; [`current`]
//! names the running coroutine; [`current_name`] lets a log formatter print
//! that name, as the demo's `(cron)` and `(main)` columns do. None of this is
//! on the switch path: it walks the tables when asked.

use std::fmt;
use std::rc::Rc;

use crate::sched::{HubId, ParkedOn, State};

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

/// Counts this thread's hub; all zero outside `run`. The coroutines a
/// [`Runtime`](crate::Runtime) sends to read its hubs (the probes of
/// `RuntimeHandle::stats`, `dump` and `each_hub`) are left out of the
/// coroutine counts and of `spawned`; their switches and stacks are not.
pub fn stats() -> Stats {
    crate::context::with(|hub| {
        let tasks = hub.sched.tasks.borrow();
        let stacks = hub.stacks.borrow();
        let mut stats = Stats {
            spawned: hub.sched.spawned() - hub.probes_spawned.get(),
            switches: hub.sched.switches.get(),
            stacks_pooled: stacks.pooled(),
            stacks_carved: stacks.carved(),
            sockets: hub.reactor.len(),
            timers: hub.timers.borrow().len(),
            helper_threads: hub.helpers.threads() + hub.resolver.threads(),
            ..Stats::default()
        };
        for (_, task) in tasks.iter() {
            if task.is_probe(&hub.probe_name) {
                continue;
            }
            stats.alive += 1;
            match task.state {
                State::Ready | State::Running => stats.runnable += 1,
                State::Parked(ParkedOn::Io { .. }) => stats.parked_io += 1,
                State::Parked(ParkedOn::Sleep) => stats.parked_timer += 1,
                State::Parked(_) => stats.parked_other += 1,
            }
        }
        stats
    })
    .unwrap_or_default()
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
    crate::context::with(|hub| {
        let key = hub.sched.current()?;
        // try_borrow: a log call made while the table is borrowed (it never
        // is across user code, but a formatter must never panic) gets None.
        let tasks = hub.sched.tasks.try_borrow().ok()?;
        let task = tasks.get(key)?;
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

/// The id of this thread's running hub, or `None` outside `run`. Every hub
/// gets a new id, so a value kept from one `run` tells whether the hub now
/// running is the same one (a pooled socket uses it to know it is being used
/// in another hub).
///
/// ```
/// let first = greenhub::run(|| greenhub::hub_id().unwrap());
/// let second = greenhub::run(|| greenhub::hub_id().unwrap());
/// assert_ne!(first, second);
/// assert_eq!(greenhub::hub_id(), None, "outside any hub");
/// ```
pub fn hub_id() -> Option<HubId> {
    crate::context::with(|hub| hub.id)
}

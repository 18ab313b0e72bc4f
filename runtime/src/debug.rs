//! `dump()`: every live coroutine of the hub, what it waits on and when it
//! last ran, as gevent's `print_run_info` (libtask prints the same on
//! SIGQUIT). For learners, and for finding the coroutine that hangs.

use std::fmt;
use std::time::{Duration, Instant};

use crate::sched::{ParkedOn, State};
use crate::sys::stack::GUARD_BYTES;

/// One coroutine in a [`Dump`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CoroutineInfo {
    /// Its id.
    pub id: u64,
    /// Its name, or `coroutine-ID`.
    pub name: String,
    /// `running`, `runnable` or `parked`.
    pub state: &'static str,
    /// What it waits on: `socket fd 7 read`, `sleep (120 ms left)`, `channel
    /// recv`, `join`, ...; empty unless parked.
    pub waiting_on: String,
    /// Time since the hub last resumed it (to within a millisecond or so).
    pub since_last_run: Duration,
    /// KiB of its stack resident in memory: how deep it (or an earlier user
    /// of the same pooled stack) has gone. Useful for choosing stack sizes.
    pub stack_kib: usize,
}

/// A snapshot of every live coroutine, from [`dump`]. `Display` prints a table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dump {
    /// The coroutines, by id.
    pub coroutines: Vec<CoroutineInfo>,
}

impl Dump {
    /// Logs the table, one `info` line per row.
    pub fn log(&self) {
        for line in self.to_string().lines() {
            log::info!("{line}");
        }
    }
}

impl fmt::Display for Dump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:>6}  {:<20} {:<9} {:<32} {:>10} {:>9}",
            "id", "name", "state", "waiting on", "last ran", "stack"
        )?;
        for c in &self.coroutines {
            writeln!(
                f,
                "{:>6}  {:<20} {:<9} {:<32} {:>7} ms {:>5} KiB",
                c.id,
                c.name,
                c.state,
                c.waiting_on,
                c.since_last_run.as_millis(),
                c.stack_kib
            )?;
        }
        Ok(())
    }
}

/// Every live coroutine of this thread's hub; empty outside `run`. A
/// [`Runtime`](crate::Runtime)'s probes (`RuntimeHandle::stats`, `dump`,
/// `each_hub`) are left out.
///
/// ```
/// greenhub::run(|| {
///     greenhub::Builder::new().name("napper").spawn(|| greenhub::sleep(std::time::Duration::from_secs(1))).unwrap();
///     greenhub::yield_now();
///     let dump = greenhub::dump();
///     let napper = dump.coroutines.iter().find(|c| c.name == "napper").unwrap();
///     assert!(napper.waiting_on.starts_with("sleep"));
///     println!("{dump}");
/// });
/// ```
pub fn dump() -> Dump {
    crate::context::with(|hub| {
        let tasks = hub.sched.tasks.borrow();
        let now = Instant::now();
        let mut coroutines: Vec<CoroutineInfo> = tasks
            .iter()
            .filter(|(_, task)| !task.is_probe(&hub.probe_name))
            .map(|(_, task)| {
                let (state, waiting_on) = match task.state {
                    State::Running => ("running", String::new()),
                    State::Ready => ("runnable", String::new()),
                    State::Parked(on) => {
                        let mut what = match on {
                            ParkedOn::Io { fd, write } => {
                                let side = if write { "write" } else { "read" };
                                format!("socket fd {fd} {side}")
                            }
                            other => other.to_string(),
                        };
                        if let Some(deadline) = task.parked_until {
                            let left = deadline.saturating_duration_since(now).as_millis();
                            what.push_str(&format!(" ({left} ms left)"));
                        }
                        ("parked", what)
                    }
                };
                CoroutineInfo {
                    id: task.id,
                    name: task.display_name(),
                    state,
                    waiting_on,
                    since_last_run: now.saturating_duration_since(task.last_run),
                    stack_kib: resident_kib(task.guard, task.stack_base()),
                }
            })
            .collect();
        coroutines.sort_by_key(|c| c.id);
        Dump { coroutines }
    })
    .unwrap_or_default()
}

/// KiB of a stack (above its guard band) that are resident: a high-water
/// mark of how deep a coroutine on it has gone since it was last trimmed.
fn resident_kib(guard: usize, base: usize) -> usize {
    crate::sys::os::resident_bytes(guard + GUARD_BYTES, base) / 1024
}

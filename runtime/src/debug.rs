//! `dump()`: every live coroutine of the hub, what it waits on and when it
//! last ran, as gevent's `print_run_info` (libtask prints the same on
//! SIGQUIT). For learners, and for finding the coroutine that hangs.

use std::fmt;
use std::time::{Duration, Instant};

use crate::hub;
use crate::io::Direction;
use crate::park::ParkedOn;
use crate::task::State;

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

/// Every live coroutine of this thread's hub; empty outside `run`.
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
    hub::with(|hub| {
        let core = hub.core.borrow();
        let now = Instant::now();
        let mut coroutines: Vec<CoroutineInfo> = core
            .tasks
            .iter()
            .map(|(_, task)| {
                let (state, waiting_on) = match task.state {
                    State::Running => ("running", String::new()),
                    State::Ready => ("runnable", String::new()),
                    State::Parked(on) => {
                        let mut what = match on {
                            ParkedOn::Io(dir, token) => {
                                let side = if dir == Direction::Read {
                                    "read"
                                } else {
                                    "write"
                                };
                                match core.io.fd(token) {
                                    Some(fd) => format!("socket fd {fd} {side}"),
                                    None => format!("socket {side}"),
                                }
                            }
                            other => other.to_string(),
                        };
                        if let Some((deadline, _)) = task.timer {
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
                    stack_kib: crate::coroutine::resident_bytes(task.guard, task.stack_base) / 1024,
                }
            })
            .collect();
        coroutines.sort_by_key(|c| c.id);
        Dump { coroutines }
    })
    .unwrap_or_default()
}

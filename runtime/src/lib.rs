//! greenhub: gevent's model in Rust. One OS thread, thousands of stackful
//! coroutines, and a hub that parks each coroutine on socket readiness or a
//! timer and resumes it when its event arrives.
//!
//! # How control flows
//!
//! [`run`] turns the calling thread into a hub and runs its closure as the
//! `main` coroutine. Code in a coroutine is plain blocking code: it reads a
//! [`net::TcpStream`] with `std::io::Read`, calls [`sleep`], joins a
//! [`JoinHandle`]. When such a call would block, the coroutine *parks*: it
//! tells the hub what would wake it (readiness on a socket, a deadline, a
//! wait queue) and switches to the hub's stack. The hub runs the next
//! runnable coroutine, and when none is left it polls the OS (mio, epoll)
//! until the nearest timer; each event makes its coroutine runnable again.
//! Only the hub resumes coroutines, and a coroutine gives up control only
//! inside a park: between two parks, nothing else runs.
//!
//! ```
//! use std::time::Duration;
//!
//! let order = greenhub::run(|| {
//!     let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
//!     let slow = {
//!         let log = log.clone();
//!         greenhub::spawn(move || { greenhub::sleep(Duration::from_millis(20)); log.borrow_mut().push("slow") })
//!     };
//!     let fast = {
//!         let log = log.clone();
//!         greenhub::spawn(move || { greenhub::sleep(Duration::from_millis(10)); log.borrow_mut().push("fast") })
//!     };
//!     slow.join().unwrap();
//!     fast.join().unwrap();
//!     log.take()
//! });
//! assert_eq!(order, ["fast", "slow"]);
//! ```
//!
//! # Layers (arrows point down only)
//!
//! | layer | folder / file | role |
//! | --- | --- | --- |
//! | API | `run.rs`, `runtime.rs`, `spawn.rs`, `join_error.rs`, `timer.rs`, `timeout.rs`, `unblock.rs`, `remote.rs`, `io.rs`, `local.rs`, `net/`, `process.rs`, `select.rs`, `signal.rs`, `sync/`, `group.rs`, `stats.rs`, `debug.rs`, `panic.rs`, `trace/`, `console.rs` | [`spawn`], [`JoinHandle`], [`sleep`], [`timeout()`], [`unblock()`], [`Handle`], [`Runtime`], [`io::Async`], [`local!`], [`net`], [`process`], [`select`], [`signal`], [`sync`], [`Group`], [`stats`], [`dump`], [`trace`], [`console`] |
//! | context | `context.rs` | the one thread-local, read once per public call to find the hub |
//! | hub | `hub/` | the loop, the park protocol (`hub/park.rs`), the blocking monitor |
//! | sources | `sources/` | the reactor (cached readiness), timers, wait queues, the cross-thread inbox, helper lanes, signal subscriptions |
//! | sched | `sched/` | task ids with their hub's id and a generation, run queues, the park token, the trace recorder's ring (`sched/record.rs`) |
//! | sys | `sys/` | stacks, the context switch, the overflow and signal handlers, `run`'s borrowing `main`: all the `unsafe` |
//!
//! # Beyond TCP: the embedder's toolkit
//!
//! [`net::UdpSocket`] and conversions from and to std's sockets and raw fds
//! (`from_std`, `into_std`, `FromRawFd`, `IntoRawFd`); [`io::Async`] for any
//! other fd (pipes, eventfd, a TTY); [`signal::wait`] for Unix signals;
//! [`process::Command`] for child processes whose pipes and exit park;
//! [`select::Select`] to wait on several of these at once.
//!
//! The concepts are explained in `docs/architecture.md`.

pub mod console;
mod context;
mod debug;
mod group;
mod hub;
pub mod io;
mod join_error;
mod local;
pub mod net;
mod panic;
pub mod process;
mod remote;
mod run;
mod runtime;
mod sched;
pub mod select;
pub mod signal;
mod sources;
mod spawn;
mod stats;
pub mod sync;
mod sys;
mod timeout;
mod timer;
pub mod trace;
mod unblock;

pub use debug::{dump, CoroutineInfo, Dump};
pub use group::{wait_all, wait_any, Group, Imap, ImapUnordered, Pool};
pub use local::LocalKey;
pub use remote::{handle, Handle, HubClosed, RemoteJoinHandle};
pub use run::{default_max_helpers, run, HubBuilder};
pub use runtime::{Runtime, RuntimeBuilder, RuntimeHandle, RuntimeStats, SpawnError};
pub use sched::HubId;
pub use spawn::{spawn, spawn_later, Builder, JoinError, JoinHandle, DEFAULT_STACK_SIZE};
pub use stats::{current, current_name, hub_id, stats, Current, CurrentName, Stats};
pub use timeout::{timeout, Elapsed};
pub use timer::{sleep, yield_now};
pub use unblock::unblock;

// The README's examples, compiled (and run, unless marked `no_run`) as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

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
//! # Module map (the data path, top to bottom)
//!
//! | file | role |
//! | --- | --- |
//! | `task.rs` | [`spawn`], [`Builder`], [`JoinHandle`]: a coroutine's life |
//! | `hub.rs` | [`run`] and the loop: run queue, timers, the only `Poll::poll` |
//! | `park.rs` | `park`, the one way to block, and wait queues |
//! | `timer.rs`, `timeout.rs` | deadlines: [`sleep`], [`yield_now`], [`timeout()`] |
//! | `io.rs`, `net/` | tokens and readiness; [`net`]'s cooperative sockets |
//! | `unblock.rs` | [`unblock()`]: blocking calls on helper threads |
//! | `coroutine.rs` | stacks and switching: all the `unsafe` |
//! | `sync/`, `group.rs` | [`sync`]'s event, channel, semaphore, mutex, ...; [`Group`], [`Pool`], [`wait_any`] |
//! | `remote.rs` | [`Handle`]: other OS threads spawn onto a hub or wake it |
//! | `debug.rs`, `monitor.rs` | [`dump`]; the blocking monitor ([`HubBuilder::max_blocking_time`]) |
//! | `stats.rs` | [`stats`], [`current`], [`current_name`], [`hub_id`] |
//!
//! The concepts are explained in `docs/architecture.md`.

mod coroutine;
mod debug;
mod group;
mod hub;
mod io;
mod monitor;
pub mod net;
mod park;
mod remote;
mod slab;
mod stats;
pub mod sync;
mod task;
mod timeout;
mod timer;
mod unblock;

pub use debug::{dump, CoroutineInfo, Dump};
pub use group::{wait_all, wait_any, Group, Pool};
pub use hub::{run, HubBuilder};
pub use remote::{handle, Handle, HubClosed};
pub use stats::{current, current_name, hub_id, stats, Current, CurrentName, HubId, Stats};
pub use task::{spawn, Builder, JoinError, JoinHandle, DEFAULT_STACK_SIZE};
pub use timeout::{timeout, Elapsed};
pub use timer::{sleep, yield_now};
pub use unblock::{unblock, MAX_HELPERS};

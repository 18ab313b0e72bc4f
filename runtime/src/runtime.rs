//! [`Runtime`]: N hubs on N OS threads, one per core, thread-per-core style.
//! Each hub is the single-threaded hub of `run.rs`, untouched: it owns its
//! coroutines, sockets, timers and stack pool, and nothing is shared between
//! hubs except what is sent (closures through a hub's inbox, values through
//! `Send` channels). There is no work stealing: a coroutine runs on the hub
//! that spawned it until it ends. See `docs/multi-hub.md`.
//!
//! ```text
//!   caller's thread          thread "greenhub-1"  ...  thread "greenhub-N-1"
//!  ┌──────────────────┐     ┌──────────────────┐      ┌──────────────────┐
//!  │ hub 0: block_on  │     │ hub 1: main waits│      │ hub N-1          │
//!  │ main = your f    │     │ on the stop chan │      │                  │
//!  └────────▲─────────┘     └────────▲─────────┘      └────────▲─────────┘
//!           │ inbox (Send jobs, wakes; one eventfd write per drain)
//!           └──────────── RuntimeHandle::spawn_on / spawn_anywhere ───────┘
//! ```
//!
//! Hubs 1..N start in [`RuntimeBuilder::build`]; hub 0 is the calling thread,
//! for the length of [`Runtime::block_on`], so the caller's thread is one of
//! the N (a process running `block_on` has N hub threads, not N + 1). When
//! `block_on`'s closure returns, hub 0 kills its coroutines as `run` does;
//! then every other hub's `main` is told to return (its stop channel closes),
//! each kills and unwinds its coroutines, and its thread is joined.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

use crate::debug::Dump;
use crate::remote::{Handle, HubClosed, RemoteJoinHandle};
use crate::run::HubBuilder;
use crate::sched::HubId;
use crate::stats::Stats;
use crate::sync::RemoteSender;

/// Options for a [`Runtime`], then [`build`](RuntimeBuilder::build).
#[derive(Clone, Debug)]
pub struct RuntimeBuilder {
    hubs: usize,
    thread_name: String,
    thread_stack_size: Option<usize>,
    stack_size: Option<usize>,
    hub: HubBuilder,
}

impl Default for RuntimeBuilder {
    fn default() -> Self {
        RuntimeBuilder::new()
    }
}

impl RuntimeBuilder {
    /// One hub per core (`std::thread::available_parallelism`), threads
    /// named `greenhub-1`, `greenhub-2`, ..., each hub with
    /// [`HubBuilder::new`]'s options.
    pub fn new() -> RuntimeBuilder {
        RuntimeBuilder {
            hubs: thread::available_parallelism().map_or(1, |n| n.get()),
            thread_name: "greenhub".to_owned(),
            thread_stack_size: None,
            stack_size: None,
            hub: HubBuilder::new(),
        }
    }

    /// The number of hubs, at least 1 (hub 0 is `block_on`'s thread).
    pub fn hubs(mut self, hubs: usize) -> RuntimeBuilder {
        self.hubs = hubs.max(1);
        self
    }

    /// The prefix of the hub threads' names: hub `i` runs on `{prefix}-{i}`
    /// (hub 0 keeps the name of the thread that calls `block_on`).
    pub fn thread_name(mut self, prefix: impl Into<String>) -> RuntimeBuilder {
        self.thread_name = prefix.into();
        self
    }

    /// The OS stack of each hub thread (std's default otherwise). The hub's
    /// loop runs there; coroutines have stacks of their own.
    pub fn thread_stack_size(mut self, bytes: usize) -> RuntimeBuilder {
        self.thread_stack_size = Some(bytes);
        self
    }

    /// The stack of each coroutine started by [`RuntimeHandle::spawn_on`]
    /// and [`RuntimeHandle::spawn_anywhere`], as [`Builder::stack_size`]
    /// (default: the 128 KiB a job sent to a hub gets). A coroutine spawned
    /// inside a hub with `spawn` or `Builder` chooses its own.
    ///
    /// [`Builder::stack_size`]: crate::Builder::stack_size
    pub fn stack_size(mut self, bytes: usize) -> RuntimeBuilder {
        self.stack_size = Some(bytes);
        self
    }

    /// The options of every hub (the blocking monitor, helper threads): each
    /// hub gets its own monitor and helper lanes from a copy of `hub`.
    pub fn hub(mut self, hub: HubBuilder) -> RuntimeBuilder {
        self.hub = hub;
        self
    }

    /// Starts hubs 1..N on their threads and waits until each runs. Fails
    /// when a thread cannot be started or a hub's poller cannot be created;
    /// the hubs already started are stopped first.
    pub fn build(self) -> io::Result<Runtime> {
        let shared = Arc::new(Shared {
            hubs: Mutex::new(vec![None; self.hubs]),
            count: self.hubs,
            next: AtomicUsize::new(0),
            stack_size: self.stack_size,
        });
        let mut runtime = Runtime {
            handle: RuntimeHandle { shared },
            workers: Vec::new(),
            hub: self.hub.clone(),
        };
        for index in 1..self.hubs {
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            let hub = self.hub.clone();
            let mut thread = thread::Builder::new().name(format!("{}-{index}", self.thread_name));
            if let Some(bytes) = self.thread_stack_size {
                thread = thread.stack_size(bytes);
            }
            let thread = thread.spawn(move || {
                hub.run(move || {
                    let (stop, stopped) = crate::sync::remote_channel::<()>();
                    if ready_tx.send((crate::handle(), stop)).is_err() {
                        return;
                    }
                    // Returns when the runtime drops the sender: shutdown.
                    let _ = stopped.recv();
                })
            })?;
            let Ok((handle, stop)) = ready_rx.recv() else {
                // The thread's hub panicked before it ran `main` (its panic
                // was printed); `runtime`'s drop stops the hubs started.
                let _ = thread.join();
                return Err(io::Error::other(format!(
                    "greenhub: hub {index} failed to start (cannot create its poller?)"
                )));
            };
            runtime.handle.shared.set(index, Some(handle));
            runtime.workers.push(Worker {
                index,
                stop: Some(stop),
                thread: Some(thread),
            });
        }
        Ok(runtime)
    }
}

/// What every [`RuntimeHandle`] shares.
struct Shared {
    /// Hub `i`'s door, `None` while it does not run (hub 0 outside
    /// `block_on`, any hub after shutdown).
    hubs: Mutex<Vec<Option<Handle>>>,
    /// The number of hubs.
    count: usize,
    /// `spawn_anywhere`'s round-robin cursor.
    next: AtomicUsize,
    /// [`RuntimeBuilder::stack_size`].
    stack_size: Option<usize>,
}

impl Shared {
    fn set(&self, index: usize, handle: Option<Handle>) {
        let old = std::mem::replace(
            &mut self.hubs.lock().unwrap_or_else(PoisonError::into_inner)[index],
            handle,
        );
        drop(old); // outside the lock: a handle's drop wakes its hub
    }

    fn get(&self, index: usize) -> Result<Handle, SpawnError> {
        let hubs = self.hubs.lock().unwrap_or_else(PoisonError::into_inner);
        match hubs.get(index) {
            None => Err(SpawnError::NoSuchHub {
                index,
                hubs: hubs.len(),
            }),
            Some(None) => Err(SpawnError::NotRunning { index }),
            Some(Some(handle)) => Ok(handle.clone()),
        }
    }
}

/// A set of hubs, one per OS thread; see the module docs and
/// `docs/multi-hub.md`.
///
/// ```
/// let runtime = greenhub::Runtime::builder().hubs(2).build().unwrap();
/// let handle = runtime.handle();
/// let hubs = runtime.block_on(move || {
///     let here = greenhub::hub_id().unwrap();
///     let there = handle.spawn_on(1, || greenhub::hub_id().unwrap()).unwrap();
///     (here, there.join().unwrap())
/// });
/// assert_ne!(hubs.0, hubs.1, "hub 0 is the caller's thread, hub 1 its own");
/// ```
pub struct Runtime {
    handle: RuntimeHandle,
    /// Hubs 1..N, stopped and joined on drop.
    workers: Vec<Worker>,
    /// Hub 0's options, for `block_on`.
    hub: HubBuilder,
}

struct Worker {
    index: usize,
    /// Dropping it closes the hub's stop channel: its `main` returns.
    stop: Option<RemoteSender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Runtime {
    /// A builder with one hub per core.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::new()
    }

    /// A runtime with one hub per core and default options.
    pub fn new() -> io::Result<Runtime> {
        RuntimeBuilder::new().build()
    }

    /// A `Send + Sync` handle for spawning onto the hubs and reading their
    /// stats, from any thread or hub.
    pub fn handle(&self) -> RuntimeHandle {
        self.handle.clone()
    }

    /// The number of hubs.
    pub fn hubs(&self) -> usize {
        self.handle.hubs()
    }

    /// Runs `f` as `main` on hub 0, the calling thread (like
    /// [`run`](crate::run): `f` need not be `Send` and may borrow), and
    /// returns its value; then shuts every hub down ([`shutdown`]). While
    /// `f` runs, the runtime holds a [`Handle`] to hub 0 (for `spawn_on(0,
    /// ..)`), so, as with any `Handle`, hub 0 never reports a deadlock:
    /// another hub may still send it work.
    ///
    /// # Panics
    ///
    /// As [`run`](crate::run): inside a running hub, or when `f` panics (the
    /// panic comes out after every hub has shut down).
    ///
    /// [`shutdown`]: Runtime::shutdown
    pub fn block_on<'a, F, T>(self, f: F) -> T
    where
        F: FnOnce() -> T + 'a,
        T: 'a,
    {
        let shared = self.handle.shared.clone();
        // Clears hub 0's door when `main` returns, even by a panic.
        struct Close<'s>(&'s Shared);
        impl Drop for Close<'_> {
            fn drop(&mut self) {
                self.0.set(0, None);
            }
        }
        let value = self.hub.clone().run(|| {
            shared.set(0, Some(crate::handle()));
            let _close = Close(&shared);
            f()
        });
        self.shutdown();
        value
    }

    /// Stops every hub: each one's `main` returns, so it kills every
    /// coroutine it still has (each unwinds at its park, its destructors
    /// running once), and its thread is joined. A coroutine that never parks
    /// holds its hub, and so this call, until it does. Dropping the runtime
    /// does the same. Called on one of its own hubs (from a coroutine a
    /// hub runs), it joins every other hub's thread but not that one's: the
    /// hub stops once the calling coroutine returns or parks, after this
    /// call has returned.
    pub fn shutdown(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        for worker in &mut self.workers {
            self.handle.shared.set(worker.index, None);
            drop(worker.stop.take());
        }
        let me = thread::current().id();
        for worker in &mut self.workers {
            if let Some(thread) = worker.thread.take() {
                if thread.thread().id() == me {
                    // Dropped on this hub's own thread (the runtime is
                    // `Send`): joining itself would deadlock. Its `main` has
                    // been told to return, so the thread ends once the
                    // coroutine doing this drop returns; it is detached.
                    continue;
                }
                if thread.join().is_err() {
                    crate::hub::report(&format!("greenhub: hub {} panicked", worker.index));
                }
            }
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop_all();
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("hubs", &self.hubs())
            .finish_non_exhaustive()
    }
}

/// Why [`RuntimeHandle::spawn_on`] refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpawnError {
    /// There is no hub with that index.
    NoSuchHub {
        /// The index asked for.
        index: usize,
        /// How many hubs the runtime has.
        hubs: usize,
    },
    /// The hub does not run: hub 0 outside `block_on`, or any hub after
    /// shutdown.
    NotRunning {
        /// The index asked for.
        index: usize,
    },
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::NoSuchHub { index, hubs } => {
                write!(f, "no hub {index}: the runtime has {hubs} (0..{hubs})")
            }
            SpawnError::NotRunning { index: 0 } => {
                f.write_str("hub 0 runs only during Runtime::block_on")
            }
            SpawnError::NotRunning { index } => write!(f, "hub {index} has shut down"),
        }
    }
}

impl std::error::Error for SpawnError {}

/// A `Send + Sync + Clone` door to every hub of a [`Runtime`].
#[derive(Clone)]
pub struct RuntimeHandle {
    shared: Arc<Shared>,
}

impl RuntimeHandle {
    /// The number of hubs.
    pub fn hubs(&self) -> usize {
        self.shared.count
    }

    /// The index of the hub the caller runs on, or `None` on a thread that
    /// is not one of this runtime's hubs.
    pub fn current_hub(&self) -> Option<usize> {
        let id = crate::stats::hub_id()?;
        let hubs = self
            .shared
            .hubs
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        hubs.iter()
            .position(|h| h.as_ref().is_some_and(|h| h.hub_id() == id))
    }

    /// The id of hub `index`, while it runs.
    pub fn hub_id(&self, index: usize) -> Option<HubId> {
        self.shared.get(index).ok().map(|h| h.hub_id())
    }

    /// Spawns `f` as a coroutine on hub `index`; it starts when that hub
    /// next polls. The handle joins it from any hub's coroutine (which
    /// parks) or any plain thread (which blocks).
    ///
    /// What belongs to one hub (a `JoinHandle`, a socket, a sync primitive)
    /// is `!Send`, so it cannot be sent to another:
    ///
    /// ```compile_fail
    /// let runtime = greenhub::Runtime::builder().hubs(2).build().unwrap();
    /// let rt = runtime.handle();
    /// runtime.block_on(move || {
    ///     let local = greenhub::spawn(|| 1);
    ///     rt.spawn_on(1, move || local.join()); // error: `JoinHandle` is not `Send`
    /// });
    /// ```
    pub fn spawn_on<F, T>(&self, index: usize, f: F) -> Result<RemoteJoinHandle<T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let handle = self.shared.get(index)?;
        handle
            .spawn_with(self.shared.stack_size, false, f)
            .map_err(|HubClosed| SpawnError::NotRunning { index })
    }

    /// Spawns `f` on the next running hub in round-robin order over the
    /// hubs that run now (hub 0 only during `block_on`): with hub 0 down,
    /// hubs 1..N take turns alike. Round robin, not least-loaded: reading
    /// another hub's load would cost a message to it per spawn, and a
    /// runtime of long-lived connections balances at accept time instead
    /// (each hub's own `SO_REUSEPORT` listener).
    pub fn spawn_anywhere<F, T>(&self, f: F) -> Result<RemoteJoinHandle<T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let turn = self.shared.next.fetch_add(1, Ordering::Relaxed);
        let running: Vec<usize> = {
            let hubs = self
                .shared
                .hubs
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            (0..hubs.len()).filter(|i| hubs[*i].is_some()).collect()
        };
        if running.is_empty() {
            return Err(SpawnError::NotRunning {
                index: turn % self.hubs(),
            });
        }
        self.spawn_on(running[turn % running.len()], f)
    }

    /// Runs `f` once on every running hub and returns what each gave, by hub
    /// index (`None` for a hub that does not run or whose copy did not end
    /// normally). From a coroutine this parks; from a plain thread it
    /// blocks. The per-hub `stats`, `dump` and a client pool's counters are
    /// read this way. Each copy runs as a probe: the hub's [`Stats`] and
    /// [`Dump`] leave it out (its switches excepted), so reading a hub does
    /// not change what it reports.
    pub fn each_hub<F, T>(&self, f: F) -> Vec<Option<T>>
    where
        F: Fn() -> T + Clone + Send + 'static,
        T: Send + 'static,
    {
        let jobs: Vec<_> = (0..self.hubs())
            .map(|i| {
                let f = f.clone();
                self.shared
                    .get(i)
                    .ok()
                    .and_then(|handle| handle.spawn_with(None, true, f).ok())
            })
            .collect();
        jobs.into_iter()
            .map(|job| job.and_then(|job| job.join().ok()))
            .collect()
    }

    /// Every hub's [`Stats`] and their sum. A hub's coroutine counts and
    /// `spawned` leave out every probe (this call's, a concurrent caller's,
    /// `dump`'s and `each_hub`'s), but its `switches` include the probes'
    /// own, and its stacks the probes' stacks.
    pub fn stats(&self) -> RuntimeStats {
        let per_hub = self.each_hub(crate::stats::stats);
        let mut total = Stats::default();
        for stats in per_hub.iter().flatten() {
            add(&mut total, stats);
        }
        RuntimeStats { per_hub, total }
    }

    /// Every hub's [`Dump`] (the probes that read them left out), by hub
    /// index; `None` for a hub that does not run.
    pub fn dump(&self) -> Vec<Option<Dump>> {
        self.each_hub(crate::debug::dump)
    }
}

impl fmt::Debug for RuntimeHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeHandle")
            .field("hubs", &self.hubs())
            .finish_non_exhaustive()
    }
}

/// The stats of every hub of a runtime, from [`RuntimeHandle::stats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuntimeStats {
    /// By hub index; `None` for a hub that does not run.
    pub per_hub: Vec<Option<Stats>>,
    /// The sum over the running hubs.
    pub total: Stats,
}

fn add(total: &mut Stats, hub: &Stats) {
    total.alive += hub.alive;
    total.runnable += hub.runnable;
    total.parked_io += hub.parked_io;
    total.parked_timer += hub.parked_timer;
    total.parked_other += hub.parked_other;
    total.spawned += hub.spawned;
    total.switches += hub.switches;
    total.stacks_pooled += hub.stacks_pooled;
    total.stacks_carved += hub.stacks_carved;
    total.sockets += hub.sockets;
    total.timers += hub.timers;
    total.helper_threads += hub.helper_threads;
}

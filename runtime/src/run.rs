//! [`run`] and [`HubBuilder`]: turn the calling thread into a hub and run
//! `main` on it (the hub itself is `hub/`).

use std::rc::Rc;
use std::time::Duration;

use crate::hub::Hub;

/// Starts a hub on this thread, runs `main` as its first coroutine (named
/// `main`) and returns `main`'s value once it returns.
///
/// Everything `main` spawns runs in this thread, interleaved at parks. When
/// `main` returns, every coroutine still alive is killed: it unwinds at its
/// park, its destructors run, and then `run` returns. [`HubBuilder`] sets
/// options; `run` uses the defaults (and the `GREENHUB_MAX_BLOCKING_MS`
/// environment variable, see [`HubBuilder::max_blocking_time`]).
///
/// `main` may borrow from the caller, since `run` returns only once `main`
/// is gone (coroutines it spawns must still own what they use):
///
/// ```
/// let names = vec!["ann", "bob"];
/// let longest = greenhub::run(|| names.iter().map(|n| n.len()).max());
/// assert_eq!(longest, Some(3));
/// assert_eq!(names.len(), 2, "still the caller's");
/// ```
///
/// A coroutine that `main` spawns may outlive `main`'s borrows (it is
/// killed only after `main` returns), so it cannot capture them:
///
/// ```compile_fail
/// let name = String::from("ann");
/// greenhub::run(|| {
///     greenhub::spawn(|| name.len()); // error: `name` does not live long enough
/// });
/// ```
///
/// # Panics
///
/// Panics when called inside a running hub, when the poller cannot be created
/// (for example when the process is out of file descriptors), and when `main`
/// panics: its panic is propagated after the other coroutines were killed.
///
/// ```
/// let answer = greenhub::run(|| {
///     let worker = greenhub::spawn(|| 6 * 7);
///     worker.join().unwrap()
/// });
/// assert_eq!(answer, 42);
/// ```
pub fn run<'a, F, T>(main: F) -> T
where
    F: FnOnce() -> T + 'a,
    T: 'a,
{
    HubBuilder::new().run(main)
}

/// Options for a hub, then [`run`](HubBuilder::run).
#[derive(Clone, Debug)]
pub struct HubBuilder {
    max_blocking_time: Option<Duration>,
    max_helpers: usize,
    /// The trace ring's capacity, when the hub records from its start.
    trace: Option<usize>,
}

impl Default for HubBuilder {
    fn default() -> Self {
        HubBuilder::new()
    }
}

/// The default bound on `unblock`'s helper threads: four per core, at least
/// eight. Helpers mostly wait (on a disk, a DNS server, a C library), so
/// more of them than cores is the point; the bound keeps a runaway burst
/// from starting thousands of threads.
pub fn default_max_helpers() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores * 4).max(8)
}

impl HubBuilder {
    /// The defaults; `GREENHUB_MAX_BLOCKING_MS=N` in the environment turns
    /// the blocking monitor on with a threshold of N milliseconds.
    pub fn new() -> HubBuilder {
        let from_env = std::env::var("GREENHUB_MAX_BLOCKING_MS")
            .ok()
            .and_then(|ms| ms.parse::<u64>().ok())
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis);
        HubBuilder {
            max_blocking_time: from_env,
            max_helpers: default_max_helpers(),
            trace: None,
        }
    }

    /// Turns on the blocking monitor (gevent's `max_blocking_time`): a
    /// thread that warns, naming any coroutine that runs longer than
    /// `threshold` without parking (through `log` when a logger takes
    /// warnings, on stderr otherwise). Off by default.
    pub fn max_blocking_time(mut self, threshold: Duration) -> HubBuilder {
        self.max_blocking_time = Some(threshold);
        self
    }

    /// The most helper threads `unblock` may start (default
    /// [`default_max_helpers`]); at least 1. Name resolution has two threads
    /// of its own besides these.
    pub fn max_helpers(mut self, threads: usize) -> HubBuilder {
        self.max_helpers = threads.max(1);
        self
    }

    /// Records a trace from the hub's first event (the spawn of `main`) into
    /// a ring of `capacity` events; call [`trace::stop`](crate::trace::stop)
    /// in a coroutine to take it. Off by default.
    pub fn trace(mut self, capacity: usize) -> HubBuilder {
        self.trace = Some(capacity);
        self
    }

    /// Starts the hub on this thread and runs `main`; see [`run`].
    pub fn run<'a, F, T>(self, main: F) -> T
    where
        F: FnOnce() -> T + 'a,
        T: 'a,
    {
        assert!(
            !crate::context::installed(),
            "greenhub::run called inside a running hub"
        );
        crate::panic::install_hook();
        let mut value: Option<T> = None;
        let slot = &mut value;
        // `main` borrows from the caller; `scoped` lets it run as a
        // coroutine and aborts if it could outlive this call (sys/scoped.rs).
        let body: Box<dyn FnOnce() + '_> = Box::new(move || *slot = Some(main()));
        crate::sys::scoped::scoped(body, |body| {
            let hub = Hub::new(self.max_blocking_time, self.max_helpers).unwrap_or_else(|err| {
                panic!("greenhub::run: cannot create the hub's poller: {err}")
            });
            if let Some(capacity) = self.trace {
                hub.sched.trace.start(capacity, None, Vec::new());
            }
            let hub = Rc::new(hub);
            let _installed = crate::context::install(hub.clone());
            let handle = crate::Builder::new()
                .name("main")
                .spawn(move || body.call())
                .unwrap_or_else(|err| panic!("greenhub::run: cannot spawn main: {err}"));
            hub.run_loop(handle.key());
            handle.into_outcome();
            // Dropping `hub` here (the last strong reference once the
            // context is uninstalled) drops any coroutine left, before
            // `scoped` checks that `main`'s closure is gone.
        });
        value.expect("main returned a value")
    }
}

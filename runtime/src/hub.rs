//! The hub: one per OS thread, the only code that resumes coroutines and the
//! only caller of `Poll::poll`.
//!
//! ```text
//!            +-------------------------------------------------------+
//!            |                        run_loop                        |
//!            |                                                        |
//!   spawn -->| fresh queue --+                                        |
//!            |               +--> next_runnable --> resume(coroutine) |
//!   wake  -->| woken queue --+          ^                 |           |
//!            |                          |          parks / returns    |
//!            |   fire due timers <------+-- every 16 resumes, and     |
//!            |   poll(0) at most 1/ms   |   when nothing is runnable: |
//!            |                          +-- poll(until next timer)    |
//!            +-------------------------------------------------------+
//! ```
//!
//! Coroutines woken by timers, readiness or other coroutines run ahead of
//! freshly spawned ones, so a cron coroutine is not stuck behind 10,000 new
//! spawns; a streak limit keeps spawns from starving. While a coroutine runs,
//! no borrow of hub state is held: a coroutine reaches the hub through the
//! thread-local [`with`]. When `main` returns, every coroutine still alive is
//! killed and run until its stack has unwound. See `docs/architecture.md`.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use corosensei::CoroutineResult;
use mio::{Events, Poll, Registry, Token};

use crate::coroutine::{Coro, StackPool};
use crate::io::IoTable;
use crate::monitor::Monitor;
use crate::park::{Waiter, Wake};
use crate::remote::Remote;
use crate::slab::{Key, Slab};
use crate::task::{State, Task};
use crate::timer::TimerQueue;
use crate::unblock::Helpers;

/// Resumes between two looks at the clock: one `Instant::now()` costs about
/// as much as ten switches, so the hub does not read it on every switch.
const CHECK_EVERY: u32 = 16;
/// While coroutines keep the run queue busy, poll for readiness this often.
/// One `epoll_wait(0)` costs about 0.2 µs; once a millisecond is noise.
const POLL_INTERVAL: Duration = Duration::from_millis(1);
/// Woken coroutines run before fresh spawns, but at most this many in a row
/// while spawns wait.
const WOKEN_STREAK: u32 = 64;
/// Readiness events taken per `poll`.
const EVENTS_CAPACITY: usize = 1024;
/// The token of the waker that helper threads use to interrupt `poll`.
pub(crate) const WAKER_TOKEN: Token = Token(usize::MAX);

thread_local! {
    static HUB: RefCell<Option<Rc<Hub>>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's hub, or returns `None` outside `run`.
pub(crate) fn with<R>(f: impl FnOnce(&Hub) -> R) -> Option<R> {
    HUB.try_with(|cell| cell.borrow().as_deref().map(f))
        .ok()
        .flatten()
}

/// Whether the caller is a coroutine of this thread's hub.
pub(crate) fn in_coroutine() -> bool {
    with(|hub| hub.core.borrow().current.is_some()).unwrap_or(false)
}

/// One hub's state. Field order matters: coroutines (in `core`) are dropped
/// before the stacks they run on (in `stacks`).
#[derive(Debug)]
pub(crate) struct Hub {
    /// This hub's process-wide unique id, assigned when it starts.
    pub(crate) id: crate::stats::HubId,
    /// Everything coroutines and the loop share; never borrowed across a switch.
    pub(crate) core: RefCell<Core>,
    /// Stacks of finished coroutines, and the regions all stacks live in.
    pub(crate) stacks: RefCell<StackPool>,
    /// Sockets register here; a clone of the poll's registry.
    pub(crate) registry: Registry,
    /// Completions from helper threads, and the waker that announces them.
    pub(crate) remote: Arc<Remote>,
    /// The helper-thread pool behind `unblock`.
    pub(crate) helpers: Helpers,
    /// The blocking monitor, when `max_blocking_time` is set.
    pub(crate) monitor: Option<Monitor>,
    poll: RefCell<Poll>,
    events: RefCell<Events>,
}

/// The hub's tables and queues.
#[derive(Debug)]
pub(crate) struct Core {
    /// Every live coroutine. An entry is added by spawn and removed by the
    /// loop when its coroutine returns; keys in queues and waiters may be stale.
    pub(crate) tasks: Slab<Task>,
    /// Coroutines woken by a timer, readiness, a wait queue or a kill, in wake
    /// order. Invariant: each key here names a task in state `Ready`.
    woken: VecDeque<Key>,
    /// Coroutines spawned or yielding, not started or resumed yet. Same invariant.
    pub(crate) fresh: VecDeque<Key>,
    /// Woken coroutines run in a row while `fresh` was not empty.
    woken_streak: u32,
    /// Deadlines of parked coroutines.
    pub(crate) timers: TimerQueue,
    /// Registered sockets and the coroutines waiting on each.
    pub(crate) io: IoTable,
    /// The coroutine running now; `None` while the loop itself runs.
    pub(crate) current: Option<Key>,
    /// The coroutine running `run`'s closure.
    pub(crate) main: Option<Key>,
    main_done: bool,
    /// Resumes since the hub started.
    pub(crate) switches: u64,
    /// The next coroutine id handed out (ids are never reused, unlike keys).
    pub(crate) next_id: u64,
    /// Jobs sent to helper threads whose completion has not come back yet.
    pub(crate) pending_unblock: usize,
    last_poll: Instant,
    since_check: u32,
    /// The time at the last service step: a coarse clock, read for free on
    /// the switch path (`Task::last_run`).
    pub(crate) clock: Instant,
}

impl Core {
    /// Makes a parked coroutine runnable, if `waiter` still names its current
    /// park; a stale waiter (the park ended already) is ignored.
    pub(crate) fn wake(&mut self, waiter: Waiter, wake: Wake) -> bool {
        wake_task(&mut self.tasks, &mut self.woken, waiter, wake)
    }

    /// Marks a coroutine killed and wakes it if it is parked; it unwinds when
    /// it next returns from (or enters) `park`.
    pub(crate) fn kill(&mut self, key: Key) {
        let Some(task) = self.tasks.get_mut(key) else {
            return;
        };
        task.killed = true;
        let waiter = Waiter {
            task: key,
            seq: task.seq,
        };
        self.wake(waiter, Wake::Killed);
    }

    fn next_runnable(&mut self) -> Option<Key> {
        if self.woken.is_empty() || (self.woken_streak >= WOKEN_STREAK && !self.fresh.is_empty()) {
            self.woken_streak = 0;
            if let Some(key) = self.fresh.pop_front() {
                return Some(key);
            }
        }
        let key = self.woken.pop_front()?;
        self.woken_streak += 1;
        Some(key)
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some(waiter) = self.timers.pop_due(now) {
            self.wake(waiter, Wake::Timer);
        }
    }

    fn dispatch(&mut self, token: Token, readable: bool, writable: bool) {
        let key = Key::from_usize(token.0);
        let (tasks, woken) = (&mut self.tasks, &mut self.woken);
        self.io.take_ready(key, readable, writable, |waiter| {
            wake_task(tasks, woken, waiter, Wake::Notified);
        });
    }

    /// Nothing can ever run again: fail `main`'s wait, naming who waits on what.
    fn report_deadlock(&mut self) {
        let mut names: Vec<String> = self
            .tasks
            .iter()
            .filter_map(|(_, task)| match &task.state {
                State::Parked(on) => Some(format!("{} ({on})", task.display_name())),
                _ => None,
            })
            .collect();
        let total = names.len();
        names.truncate(20);
        let more = if total > 20 {
            format!(" and {} more", total - 20)
        } else {
            String::new()
        };
        let message = format!(
            "deadlock: this operation would block forever; every coroutine is waiting \
             and no timer, socket or helper thread can wake one: {}{more}",
            names.join(", ")
        );
        let main = self.main.expect("the hub runs a main coroutine");
        let seq = self
            .tasks
            .get(main)
            .map(|task| task.seq)
            .unwrap_or_default();
        if !self.wake(Waiter { task: main, seq }, Wake::Deadlock(message.clone())) {
            panic!("greenhub: the hub has nothing to run and main is not parked: {message}");
        }
    }
}

/// The body of [`Core::wake`], usable while another field of `Core` is borrowed.
fn wake_task(
    tasks: &mut Slab<Task>,
    woken: &mut VecDeque<Key>,
    waiter: Waiter,
    wake: Wake,
) -> bool {
    let Some(task) = tasks.get_mut(waiter.task) else {
        return false;
    };
    if task.seq != waiter.seq || !matches!(task.state, State::Parked(_)) {
        return false;
    }
    task.seq += 1;
    task.state = State::Ready;
    task.wake = Some(wake);
    woken.push_back(waiter.task);
    true
}

impl Hub {
    fn new(max_blocking_time: Option<Duration>) -> std::io::Result<Hub> {
        crate::coroutine::install_overflow_handler();
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let remote = Arc::new(Remote::new(&registry, WAKER_TOKEN)?);
        Ok(Hub {
            id: crate::stats::HubId::next(),
            core: RefCell::new(Core {
                tasks: Slab::new(),
                woken: VecDeque::new(),
                fresh: VecDeque::new(),
                woken_streak: 0,
                timers: TimerQueue::default(),
                io: IoTable::default(),
                current: None,
                main: None,
                main_done: false,
                switches: 0,
                next_id: 0,
                pending_unblock: 0,
                last_poll: Instant::now(),
                since_check: 0,
                clock: Instant::now(),
            }),
            stacks: RefCell::new(StackPool::new()),
            registry,
            helpers: Helpers::new(),
            monitor: max_blocking_time.map(Monitor::start).transpose()?,
            remote,
            poll: RefCell::new(poll),
            events: RefCell::new(Events::with_capacity(EVENTS_CAPACITY)),
        })
    }

    /// Runs coroutines until `main` returns, then kills and drains the rest.
    fn run_loop(&self) {
        loop {
            let next = self.core.borrow_mut().next_runnable();
            let Some(key) = next else {
                self.service(true);
                continue;
            };
            self.resume(key);
            let mut core = self.core.borrow_mut();
            if core.main_done {
                break;
            }
            core.since_check += 1;
            if core.since_check >= CHECK_EVERY {
                core.since_check = 0;
                drop(core);
                self.service(false);
            }
        }
        self.shutdown();
    }

    /// Fires due timers and polls for readiness. With `idle`, nothing is
    /// runnable, so poll may sleep until the next deadline (or forever, when
    /// a socket, helper job or other thread can still wake someone).
    fn service(&self, idle: bool) {
        let now = Instant::now();
        let mut core = self.core.borrow_mut();
        core.clock = now;
        core.fire_timers(now);
        let runnable = !core.woken.is_empty() || !core.fresh.is_empty();
        let timeout = if idle && !runnable {
            match core.timers.poll_timeout(now) {
                Some(timeout) => Some(timeout),
                None if self.wakeable(&core) => None,
                None => {
                    // Nothing left that could wake anyone, unless another
                    // thread already posted to the inbox: look once more.
                    drop(core);
                    self.poll(Some(Duration::ZERO));
                    let mut core = self.core.borrow_mut();
                    if core.woken.is_empty() && core.fresh.is_empty() && !self.wakeable(&core) {
                        core.report_deadlock();
                    }
                    return;
                }
            }
        } else if idle || now.duration_since(core.last_poll) >= POLL_INTERVAL {
            Some(Duration::ZERO)
        } else {
            return;
        };
        drop(core);
        self.poll(timeout);
        let mut core = self.core.borrow_mut();
        let now = Instant::now();
        core.last_poll = now;
        core.clock = now;
        core.fire_timers(now);
    }

    /// Whether anything but a timer can still wake a coroutine: a parked
    /// socket, a helper-thread job, or another thread holding a `Handle`.
    fn wakeable(&self, core: &Core) -> bool {
        core.io.waiting() > 0
            || core.pending_unblock > 0
            || self.remote.handles.load(Ordering::SeqCst) > 0
    }

    fn poll(&self, timeout: Option<Duration>) {
        let mut events = self.events.borrow_mut();
        if let Err(err) = self.poll.borrow_mut().poll(&mut events, timeout) {
            if err.kind() != std::io::ErrorKind::Interrupted {
                // epoll_wait fails only on a programming error (EBADF, EINVAL).
                panic!("greenhub: Poll::poll failed: {err}");
            }
        }
        let mut core = self.core.borrow_mut();
        let mut spawns = Vec::new();
        for event in events.iter() {
            if event.token() == WAKER_TOKEN {
                let inbox = self.remote.take();
                for waiter in inbox.finished_jobs {
                    core.pending_unblock -= 1;
                    core.wake(waiter, Wake::Notified);
                }
                for waiter in inbox.wakes {
                    core.wake(waiter, Wake::Notified);
                }
                spawns.extend(inbox.spawns);
                continue;
            }
            let readable = event.is_readable() || event.is_read_closed() || event.is_error();
            let writable = event.is_writable() || event.is_write_closed() || event.is_error();
            core.dispatch(event.token(), readable, writable);
        }
        drop(core);
        for job in spawns {
            if let Err(err) = crate::Builder::new().name("remote").spawn(job) {
                log::error!("greenhub: cannot spawn a coroutine sent from another thread: {err}");
            }
        }
    }

    /// Switches to one runnable coroutine until it parks or returns.
    fn resume(&self, key: Key) {
        let mut coro: Coro = {
            let mut core = self.core.borrow_mut();
            core.current = Some(key);
            core.switches += 1;
            let clock = core.clock;
            let task = core.tasks.get_mut(key).expect("a queued coroutine exists");
            task.state = State::Running;
            task.last_run = clock;
            if let Some(monitor) = &self.monitor {
                monitor.enter(task.id);
            }
            crate::coroutine::entering(task.guard, task.name.as_deref());
            task.coro.take().expect("a queued coroutine is not running")
        };
        // The trampoline (task.rs) catches every panic of user code; one that
        // escapes here came from the runtime's own code on the coroutine stack.
        let result = panic::catch_unwind(AssertUnwindSafe(|| coro.resume(())));
        crate::coroutine::leaving();
        if let Some(monitor) = &self.monitor {
            monitor.leave();
        }
        let mut core = self.core.borrow_mut();
        core.current = None;
        match result {
            Ok(CoroutineResult::Yield(())) => {
                core.tasks
                    .get_mut(key)
                    .expect("a parked coroutine exists")
                    .coro = Some(coro);
            }
            finished => {
                if let Err(payload) = finished {
                    log::error!(
                        "greenhub: internal panic in a coroutine: {}",
                        crate::task::panic_message(&*payload)
                    );
                }
                let task = core.tasks.remove(key);
                if let (Some(monitor), Some(task)) = (&self.monitor, &task) {
                    monitor.finished(task.id);
                }
                if core.main == Some(key) {
                    core.main_done = true;
                }
                drop(core);
                drop(task);
                if coro.done() {
                    self.stacks.borrow_mut().put(coro.into_stack());
                }
            }
        }
    }

    /// Kills every coroutine still alive and runs them until they have all
    /// unwound (a coroutine spawned while unwinding is killed in turn).
    fn shutdown(&self) {
        self.remote.close();
        loop {
            let alive: Vec<Key> = self
                .core
                .borrow()
                .tasks
                .iter()
                .map(|(key, _)| key)
                .collect();
            if alive.is_empty() {
                return;
            }
            for key in alive {
                self.core.borrow_mut().kill(key);
            }
            loop {
                let next = self.core.borrow_mut().next_runnable();
                let Some(key) = next else { break };
                self.resume(key);
            }
        }
    }
}

/// Starts a hub on this thread, runs `main` as its first coroutine (named
/// `main`) and returns `main`'s value once it returns.
///
/// Everything `main` spawns runs in this thread, interleaved at parks. When
/// `main` returns, every coroutine still alive is killed: it unwinds at its
/// park, its destructors run, and then `run` returns. [`HubBuilder`] sets
/// options; `run` uses the defaults (and the `GREENHUB_MAX_BLOCKING_MS`
/// environment variable, see [`HubBuilder::max_blocking_time`]).
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
pub fn run<F, T>(main: F) -> T
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    HubBuilder::new().run(main)
}

/// Options for a hub, then [`run`](HubBuilder::run).
#[derive(Clone, Debug, Default)]
pub struct HubBuilder {
    max_blocking_time: Option<Duration>,
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
        }
    }

    /// Turns on the blocking monitor (gevent's `max_blocking_time`): a
    /// thread that logs a warning naming any coroutine that runs longer than
    /// `threshold` without parking. Off by default.
    pub fn max_blocking_time(mut self, threshold: Duration) -> HubBuilder {
        self.max_blocking_time = Some(threshold);
        self
    }

    /// Starts the hub on this thread and runs `main`; see [`run`].
    pub fn run<F, T>(self, main: F) -> T
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        assert!(
            with(|_| ()).is_none(),
            "greenhub::run called inside a running hub"
        );
        let hub = Hub::new(self.max_blocking_time)
            .unwrap_or_else(|err| panic!("greenhub::run: cannot create the hub's poller: {err}"));
        let hub = Rc::new(hub);
        HUB.with(|cell| *cell.borrow_mut() = Some(hub.clone()));
        // Clears the thread-local even if the loop itself panics.
        struct Uninstall;
        impl Drop for Uninstall {
            fn drop(&mut self) {
                let _ = HUB.try_with(|cell| cell.borrow_mut().take());
            }
        }
        let _uninstall = Uninstall;

        let handle = crate::Builder::new()
            .name("main")
            .spawn(main)
            .unwrap_or_else(|err| panic!("greenhub::run: cannot spawn main: {err}"));
        hub.core.borrow_mut().main = Some(handle.key());
        hub.run_loop();
        handle.into_outcome()
    }
}

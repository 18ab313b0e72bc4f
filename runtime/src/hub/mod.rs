//! The hub: one per OS thread, the only code that resumes coroutines, the
//! only caller of `Poll::poll`, and the only part that knows every wake
//! source.
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
//! The layers below it (`sched/`, `sources/`, `sys/`) never call up: the
//! reactor and the timers hand the hub the waiters to wake, and the hub
//! wakes them through the scheduler after their borrows have ended. While a
//! coroutine runs, no borrow of hub state is held, and nothing here logs or
//! runs user code under a borrow. When `main` returns, every coroutine still
//! alive is killed and run until its stack has unwound. See
//! `docs/architecture.md`.

pub(crate) mod monitor;
pub(crate) mod park;

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use corosensei::CoroutineResult;
use mio::{Events, Poll, Token};

use crate::sched::{HubId, Key, Sched, State, Task, Waiter, Wake};
use crate::sources::helpers::Lane;
use crate::sources::inbox::Inbox;
use crate::sources::reactor::Reactor;
use crate::sources::timers::Timers;
use crate::sys::stack::StackPool;
use crate::sys::switch::{Coro, YielderPtr};
use monitor::Monitor;

/// Resumes between two looks at the clock: one `Instant::now()` costs about
/// as much as ten switches, so the hub does not read it on every switch.
const CHECK_EVERY: u32 = 16;
/// While coroutines keep the run queue busy, poll for readiness this often.
/// One `epoll_wait(0)` costs about 0.2 µs; once a millisecond is noise.
const POLL_INTERVAL: Duration = Duration::from_millis(1);
/// Readiness events taken per `poll`.
const EVENTS_CAPACITY: usize = 1024;
/// The token of the inbox's waker.
const INBOX_TOKEN: Token = Token(usize::MAX);
/// The stack of a coroutine spawned from another thread (`Handle::spawn`):
/// the default size (see `DEFAULT_STACK_SIZE` in `spawn.rs`).
const REMOTE_STACK_SIZE: usize = 128 * 1024;
/// Helper threads kept for name resolution, apart from user jobs, so a
/// `connect("host:port")` never queues behind a slow `unblock` closure.
const RESOLVER_THREADS: usize = 2;

/// One hub's state. Field order matters: coroutines (in `sched`) are dropped
/// before the stacks they run on (in `stacks`).
#[derive(Debug)]
pub(crate) struct Hub {
    pub(crate) id: HubId,
    /// Tasks and run queues.
    pub(crate) sched: Sched,
    /// Registered sockets; shared with each socket, which deregisters itself.
    pub(crate) reactor: Rc<Reactor>,
    /// Deadlines of parked coroutines.
    pub(crate) timers: RefCell<Timers>,
    /// Posts from other threads; shared with handles and helper jobs.
    pub(crate) inbox: Arc<Inbox>,
    /// Helper threads for `unblock`, and the lane for name resolution.
    pub(crate) helpers: Lane,
    pub(crate) resolver: Lane,
    /// Coroutines parked on a helper-thread job. A job whose park was cut
    /// (a `timeout`, a kill) no longer counts: its completion can wake
    /// nobody, so it must not hold off a deadlock report.
    pub(crate) parked_unblock: Cell<usize>,
    /// Coroutines parked on another thread's wake (a remote channel).
    pub(crate) parked_remote: Cell<usize>,
    /// Stacks of finished coroutines, and the regions all stacks live in.
    pub(crate) stacks: RefCell<StackPool>,
    /// The blocking monitor, when `max_blocking_time` is set.
    pub(crate) monitor: Option<Monitor>,
    /// The coroutine running `run`'s closure, and whether it has returned.
    main: Cell<Option<Key>>,
    main_done: Cell<bool>,
    /// The time at the last service step: a coarse clock, read for free on
    /// the switch path (`Task::last_run`).
    pub(crate) clock: Cell<Instant>,
    last_poll: Cell<Instant>,
    since_check: Cell<u32>,
    poll: RefCell<Poll>,
    events: RefCell<Events>,
    /// Waiters handed back by the reactor during one poll, woken after.
    wakes: RefCell<Vec<Waiter>>,
}

impl Hub {
    /// A hub with the options of `HubBuilder` (`run.rs`).
    pub(crate) fn new(
        max_blocking_time: Option<Duration>,
        max_helpers: usize,
    ) -> std::io::Result<Hub> {
        crate::sys::running::install_overflow_handler();
        let id = HubId::next();
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let inbox = Arc::new(Inbox::new(id, &registry, INBOX_TOKEN)?);
        let now = Instant::now();
        Ok(Hub {
            id,
            sched: Sched::new(id),
            reactor: Rc::new(Reactor::new(id, registry)),
            timers: RefCell::new(Timers::default()),
            inbox,
            helpers: Lane::new("helper", max_helpers),
            resolver: Lane::new("resolver", RESOLVER_THREADS),
            parked_unblock: Cell::new(0),
            parked_remote: Cell::new(0),
            stacks: RefCell::new(StackPool::new()),
            monitor: max_blocking_time.map(Monitor::start).transpose()?,
            main: Cell::new(None),
            main_done: Cell::new(false),
            clock: Cell::new(now),
            last_poll: Cell::new(now),
            since_check: Cell::new(0),
            poll: RefCell::new(poll),
            events: RefCell::new(Events::with_capacity(EVENTS_CAPACITY)),
            wakes: RefCell::new(Vec::new()),
        })
    }

    /// Creates a coroutine running `body` on a pooled stack and queues it.
    /// `body` runs with the coroutine's yielder recorded in its entry; it is
    /// the API layer's trampoline, which catches every panic of user code.
    pub(crate) fn spawn_raw(
        &self,
        name: Option<Rc<str>>,
        stack_size: usize,
        body: impl FnOnce() + 'static,
    ) -> std::io::Result<(Key, u64)> {
        let stack = self.stacks.borrow_mut().get(stack_size)?;
        let (guard, stack_base) = (stack.guard(), stack.base());
        let coro = Coro::with_stack(stack, move |yielder, ()| {
            crate::sys::running::started(YielderPtr::new(yielder));
            body();
        });
        let (key, id) = self.sched.insert(Task {
            id: 0,
            name: name.clone(),
            coro: Some(coro),
            yielder: None,
            state: State::Ready,
            seq: 0,
            wake: None,
            killed: false,
            parked_until: None,
            scopes: Vec::new(),
            locals: Vec::new(),
            last_run: self.clock.get(),
            guard,
            stack_base,
        });
        if let Some(monitor) = &self.monitor {
            monitor.named(id, crate::sched::display_name(name.as_deref(), id));
        }
        Ok((key, id))
    }

    /// Runs coroutines until the coroutine `main` returns, then kills and
    /// drains the rest.
    pub(crate) fn run_loop(&self, main: Key) {
        self.main.set(Some(main));
        loop {
            let Some(key) = self.sched.next_runnable() else {
                self.service(true);
                continue;
            };
            self.resume(key);
            if self.main_done.get() {
                break;
            }
            let since = self.since_check.get() + 1;
            if since >= CHECK_EVERY {
                self.since_check.set(0);
                self.service(false);
            } else {
                self.since_check.set(since);
            }
        }
        self.shutdown();
    }

    /// Fires due timers and polls for readiness. With `idle`, nothing is
    /// runnable, so poll may sleep until the next deadline (or forever, when
    /// a socket, helper job or other thread can still wake someone).
    fn service(&self, idle: bool) {
        let now = Instant::now();
        self.clock.set(now);
        self.fire_timers(now);
        let runnable = self.sched.runnable();
        let timeout = if idle && !runnable {
            // About to wait: the moment to give back deep stacks' memory.
            self.stacks.borrow_mut().trim();
            let next = self.timers.borrow().poll_timeout(now);
            match next {
                Some(timeout) => Some(timeout),
                None if self.wakeable() => None,
                None => {
                    // Nothing left that could wake anyone, unless another
                    // thread already posted to the inbox: look once more.
                    self.poll(Some(Duration::ZERO));
                    if !self.sched.runnable() && !self.wakeable() {
                        self.report_deadlock();
                    }
                    return;
                }
            }
        } else if idle || now.duration_since(self.last_poll.get()) >= POLL_INTERVAL {
            Some(Duration::ZERO)
        } else {
            return;
        };
        self.poll(timeout);
        let now = Instant::now();
        self.last_poll.set(now);
        self.clock.set(now);
        self.fire_timers(now);
    }

    fn fire_timers(&self, now: Instant) {
        loop {
            let due = self.timers.borrow_mut().pop_due(now);
            let Some(waiter) = due else { return };
            self.sched.wake(waiter, Wake::Timer);
        }
    }

    /// Whether anything but a timer can still wake a coroutine: a parked
    /// socket, a coroutine waiting for its helper-thread job, a remote
    /// channel's receiver, or another thread holding a `Handle`.
    fn wakeable(&self) -> bool {
        self.reactor.waiting() > 0
            || self.parked_unblock.get() > 0
            || self.parked_remote.get() > 0
            || self.inbox.handles.load(Ordering::SeqCst) > 0
    }

    fn poll(&self, timeout: Option<Duration>) {
        let mut events = self.events.borrow_mut();
        self.sched.trace.poll_begin();
        if let Err(err) = self.poll.borrow_mut().poll(&mut events, timeout) {
            if err.kind() != std::io::ErrorKind::Interrupted {
                // epoll_wait fails only on a programming error (EBADF, EINVAL).
                panic!("greenhub: Poll::poll failed: {err}");
            }
        }
        self.sched.trace.poll_end(timeout, || events.iter().count());
        let mut wakes = self.wakes.borrow_mut();
        let mut posts = None;
        for event in events.iter() {
            if event.token() == INBOX_TOKEN {
                posts = Some(self.inbox.take());
                continue;
            }
            self.reactor.dispatch(event, &mut wakes);
        }
        drop(events);
        for waiter in wakes.drain(..) {
            self.sched.wake(waiter, Wake::Notified { from: 0 });
        }
        drop(wakes);
        if let Some(posts) = posts {
            for waiter in posts.finished_jobs {
                self.sched.wake(waiter, Wake::Notified { from: 0 });
            }
            for waiter in posts.wakes {
                self.sched.wake(waiter, Wake::Notified { from: 0 });
            }
            for job in posts.spawns {
                // The job is wrapped by `Handle::spawn` (`remote.rs`): it
                // honours a kill before its first run and catches panics.
                let name = Some(Rc::from("remote"));
                if let Err(err) = self.spawn_raw(name, REMOTE_STACK_SIZE, job) {
                    report(&format!(
                        "cannot spawn a coroutine sent from another thread: {err}"
                    ));
                }
            }
        }
    }

    /// Switches to one runnable coroutine until it parks or returns.
    fn resume(&self, key: Key) {
        let (mut coro, id) = {
            let mut tasks = self.sched.tasks.borrow_mut();
            let task = tasks.get_mut(key).expect("a queued coroutine exists");
            task.state = State::Running;
            task.last_run = self.clock.get();
            crate::sys::running::entering(task.guard, task.name.as_deref(), task.yielder);
            let coro = task.coro.take().expect("a queued coroutine is not running");
            (coro, task.id)
        };
        self.sched.set_current(Some(key));
        self.sched.switches.set(self.sched.switches.get() + 1);
        self.sched.trace.resume(id);
        if let Some(monitor) = &self.monitor {
            monitor.enter(id);
        }
        // The trampoline catches every panic of user code; one that escapes
        // here came from the runtime's own code on the coroutine stack.
        let result = panic::catch_unwind(AssertUnwindSafe(|| coro.resume(())));
        let yielder = crate::sys::running::leaving();
        self.sched.trace.left();
        if let Some(monitor) = &self.monitor {
            monitor.leave();
        }
        self.sched.set_current(None);
        if let Ok(CoroutineResult::Yield(())) = result {
            let mut tasks = self.sched.tasks.borrow_mut();
            let task = tasks.get_mut(key).expect("a parked coroutine exists");
            task.coro = Some(coro);
            task.yielder = yielder;
            self.sched
                .trace
                .suspended(id, task.state, task.parked_until.is_some());
            return;
        }
        let task = self.sched.tasks.borrow_mut().remove(key);
        self.sched.trace.finish(id);
        if let Some(monitor) = &self.monitor {
            monitor.finished(id);
        }
        if self.main.get() == Some(key) {
            self.main_done.set(true);
        }
        if let Err(payload) = result {
            report(&format!(
                "internal panic in coroutine {}: {}",
                task.as_ref().map_or_else(String::new, Task::display_name),
                panic_message(&*payload)
            ));
        }
        drop(task);
        if coro.done() {
            self.stacks.borrow_mut().put(coro.into_stack());
        }
    }

    /// Nothing can ever run again: fail `main`'s wait, naming who waits on what.
    fn report_deadlock(&self) {
        let (message, main_seq) = {
            let tasks = self.sched.tasks.borrow();
            let mut names: Vec<String> = tasks
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
            let main = self.main.get().expect("the hub runs a main coroutine");
            (message, tasks.get(main).map(|task| task.seq))
        };
        let main = self.main.get().expect("the hub runs a main coroutine");
        let waiter = Waiter {
            hub: self.id,
            task: main,
            seq: main_seq.unwrap_or_default(),
        };
        if !self.sched.wake(waiter, Wake::Deadlock(message.clone())) {
            panic!("greenhub: the hub has nothing to run and main is not parked: {message}");
        }
    }

    /// Kills every coroutine still alive and runs them until they have all
    /// unwound (a coroutine spawned while unwinding is killed in turn).
    fn shutdown(&self) {
        drop(self.inbox.close());
        loop {
            let alive: Vec<Key> = self
                .sched
                .tasks
                .borrow()
                .iter()
                .map(|(key, _)| key)
                .collect();
            if alive.is_empty() {
                return;
            }
            for key in alive {
                self.sched.kill(key);
            }
            while let Some(key) = self.sched.next_runnable() {
                self.resume(key);
            }
        }
    }
}

/// The text of a panic payload (`&str` or `String`), as `std` prints it.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "Box<dyn Any>".to_owned()
    }
}

/// An error of the runtime itself that no caller can receive: through `log`
/// when a logger takes errors, on stderr otherwise.
pub(crate) fn report(message: &str) {
    if log::log_enabled!(log::Level::Error) {
        log::error!("greenhub: {message}");
    } else {
        eprintln!("greenhub: {message}");
    }
}

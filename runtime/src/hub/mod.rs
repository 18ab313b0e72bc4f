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
//! coroutine runs, no borrow of hub state is held but that of the coroutine
//! table (`coros`), which no code a coroutine runs can reach, and nothing
//! here logs or runs user code under a borrow. When `main` returns, every coroutine still
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
/// The most trimming one idle wait does before it polls, by the pool's
/// estimate of what a stack costs (`StackPool::trim_within`: measured,
/// per stack size), and no more than the time left until the next
/// deadline (exactly, not the poll's rounded timeout). So a trim makes the
/// next deadline late by no more than the estimate is wrong, and an event
/// that ends a wait with no deadline (a socket, another thread) waits about
/// this long at most; a batch deeper than the last the estimate was made on
/// can take longer, once, within the pool's caps (256 stacks, 32 MiB of
/// one size).
const TRIM_AT_MOST: Duration = Duration::from_micros(500);
/// What an idle wait trims, whatever its deadline, once stacks have been
/// owed for `TRIM_OWED_AT_MOST` (at least one stack): a hub whose deadlines
/// are always near (a ticker, thousands of sleepers) gives its stacks back
/// all the same, and a deadline is late by about this much.
const TRIM_OWED_BATCH: Duration = Duration::from_micros(100);
/// While a trim has left stacks for later, an idle hub sleeps at most this
/// long before it trims the next batch, so a hub waiting only on sockets
/// still gives all its stacks back, a batch per millisecond.
const TRIM_RETRY: Duration = Duration::from_millis(1);
/// How long stacks left over by a budgeted trim may wait: every idle wait
/// after this trims `TRIM_OWED_BATCH` of them (at least one stack), however
/// near its deadline. A hub preempted on a loaded machine idles less often
/// than its deadlines say; this bounds how long its stacks stay resident
/// all the same. The clock restarts when spawns took every left-over stack
/// back (`StackPool::drained`).
const TRIM_OWED_AT_MOST: Duration = Duration::from_millis(10);
/// Entries of `Hub::spawned` whose memory is kept after a burst.
const SPAWNED_KEPT: usize = 256;
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

/// Timer entries fired in one batch: their task entries are prefetched
/// together before the first is woken, so the misses overlap.
const FIRE_BATCH: usize = 32;
/// Entries of `Hub::fired` whose memory is kept after a burst.
const FIRED_KEPT: usize = 1024;
/// Bytes of a coroutine's stack prefetched before its resume below where
/// it suspended (the 64 bytes below a local of `suspend`'s frame, near
/// where the switch saves its registers), or, before its first run, below
/// its base (its first frame).
const STACK_PREFETCH: usize = 64;
/// Bytes prefetched above that point: the frames the resume returns
/// through (`suspend`, the park, `sleep` and the coroutine's own: about
/// 1.2 KB parked in `sleep`). Above a fresh stack's base they are the next
/// stack's guard band or unmapped, which a prefetch ignores. With 100,000
/// sleepers it cut the hub's CPU per wake by about 15% and halved the p99
/// lateness in A/B runs (`bench timers`), against 64 bytes below only.
const STACK_PREFETCH_ABOVE: usize = 1024;
/// Bytes of a join state prefetched before a resume: four cache lines from
/// where `spawn` says it starts (its counts and the first of its result),
/// whatever the size of the result it holds. A hint only: bytes past the
/// state's end cost at most a wasted line fill.
const FINISH_PREFETCH: usize = 256;

/// A coroutine as the hub keeps it between two resumes.
struct Resumable {
    coro: Coro,
    /// Its yielder, handed to `sys::running` on every resume; `None` until
    /// it first runs (its first frame records it).
    yielder: Option<YielderPtr>,
    /// Where its next resume first touches its stack: where its stack
    /// pointer was when it last suspended, or its stack base before its
    /// first run.
    sp: usize,
    /// Where the memory its end touches starts (its join state's first
    /// [`FINISH_PREFETCH`] bytes), prefetched as well; 0: none.
    finish: usize,
}

impl Resumable {
    /// Starts loading what resuming this coroutine touches first: its
    /// saved stack and its join state.
    fn prefetch(&self) {
        use crate::sys::prefetch;
        prefetch::range(
            self.sp.saturating_sub(STACK_PREFETCH),
            self.sp + STACK_PREFETCH_ABOVE,
        );
        if self.finish != 0 {
            prefetch::range(self.finish, self.finish + FINISH_PREFETCH);
        }
    }
}

impl std::fmt::Debug for Resumable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resumable")
            .field("started", &self.coro.started())
            .finish_non_exhaustive()
    }
}

/// One hub's state. Field order matters: coroutines (in `sched`, `coros`
/// and `spawned`) are dropped before the stacks they run on (in `stacks`).
#[derive(Debug)]
pub(crate) struct Hub {
    pub(crate) id: HubId,
    /// Tasks and run queues.
    pub(crate) sched: Sched,
    /// The coroutines, at the slot index of their task's key, resumed in
    /// place: the switch path moves no coroutine in or out of a table.
    /// Borrowed only by `resume`, across the switch, which is sound because
    /// no code a coroutine runs can reach this field: a spawn puts its new
    /// coroutine in `spawned`, which `resume` moves here before it borrows.
    coros: RefCell<Vec<Option<Resumable>>>,
    /// Coroutines spawned since the last resume, with their slot index.
    spawned: RefCell<Vec<(usize, Resumable)>>,
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
    /// Timer entries being fired.
    fired: RefCell<Vec<Waiter>>,
    /// The deadlock report for `main`, set with its `Wake::Deadlock` and
    /// taken by its park.
    pub(crate) deadlock: RefCell<Option<String>>,
    /// The name of every introspection probe (`RuntimeHandle::stats`,
    /// `dump`, `each_hub`): one `Rc`, so a probe is told apart from a user's
    /// coroutine of the same name by pointer, and left out of `stats`.
    pub(crate) probe_name: Rc<str>,
    /// The id of the console's coroutine (`console.rs`), once one started:
    /// its sleep between frames wakes nobody else, so its timer does not
    /// hold off a deadlock report, and the report does not list it.
    pub(crate) console: Cell<Option<u64>>,
    /// Probes spawned since the hub started, left out of `Stats::spawned`.
    pub(crate) probes_spawned: Cell<u64>,
    /// Since when a budgeted trim has left pooled stacks untrimmed
    /// (`TRIM_OWED_AT_MOST`), and the pool's `drained` count then.
    trim_owed_since: Cell<Option<(Instant, u64)>>,
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
            coros: RefCell::new(Vec::new()),
            spawned: RefCell::new(Vec::new()),
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
            fired: RefCell::new(Vec::with_capacity(FIRE_BATCH)),
            deadlock: RefCell::new(None),
            probe_name: Rc::from("probe"),
            console: Cell::new(None),
            probes_spawned: Cell::new(0),
            trim_owed_since: Cell::new(None),
        })
    }

    /// Creates a coroutine running `body` on a pooled stack and queues it.
    /// `body` runs with the coroutine's yielder recorded in its entry; it is
    /// the API layer's trampoline, which catches every panic of user code.
    /// `finish` is where memory the coroutine's end touches starts (its
    /// join state; 0: none), prefetched before its resumes; it is only a
    /// hint, never read.
    pub(crate) fn spawn_raw(
        &self,
        name: Option<Rc<str>>,
        stack_size: usize,
        finish: usize,
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
            state: State::Ready,
            seq: 0,
            wake: None,
            killed: false,
            parked_until: None,
            extras: None,
            last_run: self.clock.get(),
            guard,
            // u32::MAX pages are 16 TiB at 4 KiB a page: no stack is that big.
            stack_pages: u32::try_from((stack_base - guard) / crate::sys::os::page_size())
                .unwrap_or(u32::MAX),
        });
        self.spawned.borrow_mut().push((
            key.index(),
            Resumable {
                coro,
                yielder: None,
                sp: stack_base,
                finish,
            },
        ));
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
            // About to wait: the moment to give back deep stacks' memory,
            // as many stacks as fit in the wait (`trim_budget`).
            let drained = self.stacks.borrow().drained();
            let owed = self
                .trim_owed_since
                .get()
                .filter(|&(_, then)| then == drained);
            let owed_long = owed.is_some_and(|(since, _)| {
                now.saturating_duration_since(since) >= TRIM_OWED_AT_MOST
            });
            let wait = self.timers.borrow().until_next(now);
            let (released, more) = self
                .stacks
                .borrow_mut()
                .trim_within(trim_budget(wait, owed_long), owed_long);
            self.trim_owed_since.set(match owed {
                _ if !more => None,
                Some(owed) => Some(owed),
                None => Some((now, drained)),
            });
            let now = if released > 0 { Instant::now() } else { now };
            let next = self.timers.borrow().poll_timeout(now);
            // Stacks left for later: come back for them within TRIM_RETRY.
            let retry = more.then_some(TRIM_RETRY);
            match next {
                // The console's own timer wakes nobody else: with it alone
                // left, only the other sources decide.
                Some(timeout) if !self.only_console_timer() || self.wakeable() => {
                    Some(retry.map_or(timeout, |retry| retry.min(timeout)))
                }
                None if self.wakeable() => retry,
                _ => {
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

    /// Wakes the coroutines whose deadline is `now` or earlier, in
    /// deadline order, `FIRE_BATCH` at a time: a batch's task entries are
    /// prefetched before the first of it is woken.
    fn fire_timers(&self, now: Instant) {
        let mut fired = self.fired.borrow_mut();
        self.timers.borrow_mut().take_due(now, &mut fired);
        for batch in fired.chunks(FIRE_BATCH) {
            for waiter in batch {
                if waiter.hub == self.id {
                    self.sched.prefetch(waiter.task);
                }
            }
            for &waiter in batch {
                self.sched.wake(waiter, Wake::Timer);
            }
        }
        fired.clear();
        fired.shrink_to(FIRED_KEPT);
    }

    /// Whether the one pending timer is the console coroutine's: it wakes
    /// the console, which renders a frame and sleeps again, and never any
    /// other coroutine, so the hub is as deadlocked as with no timer at all.
    fn only_console_timer(&self) -> bool {
        let Some(console) = self.console.get() else {
            return false;
        };
        let timers = self.timers.borrow();
        timers.len() == 1
            && timers.first_waiter().is_some_and(|waiter| {
                let tasks = self.sched.tasks.borrow();
                tasks
                    .get(waiter.task)
                    .is_some_and(|task| task.id == console)
            })
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
            for spawn in posts.spawns {
                // The job is wrapped by `Handle::spawn` (`remote.rs`): it
                // honours a kill before its first run and catches panics.
                let name = if spawn.probe {
                    self.probe_name.clone()
                } else {
                    Rc::from("remote")
                };
                let stack_size = spawn.stack_size.unwrap_or(REMOTE_STACK_SIZE);
                match self.spawn_raw(Some(name), stack_size, 0, spawn.job) {
                    Ok(_) if spawn.probe => self.probes_spawned.set(self.probes_spawned.get() + 1),
                    Ok(_) => {}
                    Err(err) => report(&format!(
                        "cannot spawn a coroutine sent from another thread: {err}"
                    )),
                }
            }
        }
    }

    /// Switches to one runnable coroutine until it parks or returns.
    fn resume(&self, key: Key) {
        if !self.spawned.borrow().is_empty() {
            self.adopt_spawned();
        }
        let mut coros = self.coros.borrow_mut();
        self.prefetch_upcoming(&coros);
        let entry = coros
            .get_mut(key.index())
            .and_then(Option::as_mut)
            .expect("a queued coroutine exists");
        let (id, killed) = {
            let mut tasks = self.sched.tasks.borrow_mut();
            let task = tasks.get_mut(key).expect("a queued coroutine exists");
            task.state = State::Running;
            task.last_run = self.clock.get();
            crate::sys::running::entering(task.guard, task.name.as_deref(), task.id, entry.yielder);
            (task.id, task.killed)
        };
        self.sched.enter(key, killed);
        self.sched.switches.set(self.sched.switches.get() + 1);
        self.sched.trace.resume(id);
        if let Some(monitor) = &self.monitor {
            monitor.enter(id);
        }
        // The trampoline catches every panic of user code; one that escapes
        // here came from the runtime's own code on the coroutine stack.
        let result = panic::catch_unwind(AssertUnwindSafe(|| entry.coro.resume(())));
        let (yielder, sp) = crate::sys::running::leaving();
        self.sched.trace.left();
        if let Some(monitor) = &self.monitor {
            monitor.leave();
        }
        self.sched.leave();
        if let Ok(CoroutineResult::Yield(())) = result {
            entry.yielder = yielder;
            if sp != 0 {
                entry.sp = sp;
            }
            if self.sched.trace.tracing() {
                let tasks = self.sched.tasks.borrow();
                let task = tasks.get(key).expect("a parked coroutine exists");
                self.sched
                    .trace
                    .suspended(id, task.state, task.parked_until.is_some());
            }
            return;
        }
        let coro = coros[key.index()]
            .take()
            .expect("the coroutine that ran is kept")
            .coro;
        drop(coros); // dropping an unfinished coroutine runs its code
        let task = self.sched.tasks.borrow_mut().remove(key);
        self.sched
            .trace
            .finish(id, task.as_ref().and_then(|task| task.name.as_ref()));
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

    /// While one coroutine runs, the memory of the next two queued starts
    /// loading: the next one's saved stack and join state (its
    /// entry here was prefetched a resume earlier, so reading it is cheap),
    /// and the entries of the one after. A hub that is behind resumes
    /// coroutines whose stacks are all cold; this overlaps their misses
    /// with useful work instead of taking them one at a time.
    fn prefetch_upcoming(&self, coros: &[Option<Resumable>]) {
        let (next, after) = self.sched.upcoming();
        if let Some(Some(entry)) = next.and_then(|key| coros.get(key.index())) {
            entry.prefetch();
        }
        if let Some(key) = after {
            if key.index() < coros.len() {
                let low = coros.as_ptr().wrapping_add(key.index()) as usize;
                crate::sys::prefetch::range(low, low + std::mem::size_of::<Option<Resumable>>());
            }
            self.sched.prefetch(key);
        }
    }

    /// Moves the coroutines spawned since the last resume to their slots.
    fn adopt_spawned(&self) {
        let mut coros = self.coros.borrow_mut();
        let mut spawned = self.spawned.borrow_mut();
        for (index, entry) in spawned.drain(..) {
            if coros.len() <= index {
                coros.resize_with(index + 1, || None);
            }
            coros[index] = Some(entry);
        }
        // A burst (a million spawns before the spawner parks) must not keep
        // its list's memory: 64 bytes a coroutine, for nothing.
        spawned.shrink_to(SPAWNED_KEPT);
    }

    /// Nothing can ever run again: fail `main`'s wait, naming who waits on what.
    fn report_deadlock(&self) {
        let (message, main_seq) = {
            let tasks = self.sched.tasks.borrow();
            let console = self.console.get();
            let mut names: Vec<String> = tasks
                .iter()
                .filter(|(_, task)| Some(task.id) != console)
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
        *self.deadlock.borrow_mut() = Some(message.clone());
        if !self.sched.wake(waiter, Wake::Deadlock) {
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

/// How much trimming an idle hub does before a poll whose next deadline is
/// `wait` away (`None`: no deadline): what fits before it, at most
/// `TRIM_AT_MOST`, and at least `TRIM_OWED_BATCH` once stacks have been
/// owed for `TRIM_OWED_AT_MOST`.
fn trim_budget(wait: Option<Duration>, owed_long: bool) -> Duration {
    let fits = wait.map_or(TRIM_AT_MOST, |wait| wait.min(TRIM_AT_MOST));
    if owed_long {
        fits.max(TRIM_OWED_BATCH)
    } else {
        fits
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trim_fits_in_the_wait_before_the_next_deadline() {
        assert_eq!(trim_budget(Some(Duration::ZERO), false), Duration::ZERO);
        let short = Duration::from_micros(300);
        assert_eq!(trim_budget(Some(short), false), short);
    }

    #[test]
    fn no_wait_trims_more_than_one_batch() {
        // A far deadline, or none: a socket may still cut the wait short.
        assert_eq!(
            trim_budget(Some(Duration::from_secs(3600)), false),
            TRIM_AT_MOST
        );
        assert_eq!(trim_budget(None, false), TRIM_AT_MOST);
        assert_eq!(trim_budget(Some(Duration::MAX), false), TRIM_AT_MOST);
    }

    #[test]
    fn stacks_owed_too_long_are_trimmed_a_batch_per_wait_even_before_a_near_deadline() {
        assert_eq!(trim_budget(Some(Duration::ZERO), true), TRIM_OWED_BATCH);
        assert_eq!(trim_budget(None, true), TRIM_AT_MOST);
    }
}

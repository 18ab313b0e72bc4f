//! The floor prototype: the least hub that mio + corosensei allow, built the
//! way greenhub is (one thread, a run queue, coroutines on pooled stacks, a
//! free `yield_now` and `spawn` + `join`), with nothing else: no task table,
//! no names, no timers, no kill, no panic isolation, no stats.
//!
//! It is the reference for two of the runtime's targets (issue 11, "Speed"):
//! greenhub's switch ≤ 1.3× this hub's switch, and its spawn + run + join
//! ≤ 2× this hub's. A bare corosensei resume + suspend (`micro.rs`, the
//! `floor_ns` key) is below both: it has no loop and no queue at all.
//!
//! ```text
//!   run(main) ──> RUN_QUEUE: VecDeque<Rc<Task>> ──pop_front──> resume
//!                      ^   ^                                      │
//!                      │   └── Suspend::Yield: push_back <────────┤
//!                      │       Suspend::Join(child): child.joiner ┤
//!                      └── a finished child's joiner <── Return: ─┘
//!                          (its stack goes back to STACKS)
//!   every CHECK_EVERY resumes: read the clock; poll(0) once per POLL_INTERVAL
//! ```
//!
//! A parked coroutine lives in the thing that will wake it (the joined
//! child's task), as in libtask's `Rendez` or gevent's `Waiter`, so the floor
//! needs no task table; queues move pointers, never coroutines.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::ptr;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corosensei::stack::DefaultStack;
use corosensei::{Coroutine, CoroutineResult, Yielder};
use mio::{Events, Poll};

/// Each coroutine's stack: greenhub's `DEFAULT_STACK_SIZE`, so both hubs map
/// and touch the same amount of memory per coroutine.
const STACK_SIZE: usize = greenhub::DEFAULT_STACK_SIZE;
/// Resumes between two looks at the clock, as in greenhub's hub: one
/// `Instant::now()` costs about as much as ten switches.
const CHECK_EVERY: u32 = 16;
/// While coroutines keep the run queue busy, poll for readiness this often
/// (greenhub's interval): a hub that never polls while busy is not a hub.
const POLL_INTERVAL: Duration = Duration::from_millis(1);
/// Readiness events taken per `poll`; nothing registers here, so few.
const EVENTS_CAPACITY: usize = 64;

/// What a coroutine tells the loop when it suspends.
enum Suspend {
    /// Run me again after every coroutine queued now.
    Yield,
    /// Run me again once this coroutine has returned.
    Join(Rc<Task>),
}

type Coro = Coroutine<(), Suspend, (), DefaultStack>;

/// One coroutine, shared by the run queue (or its joined child) and its
/// `JoinHandle`: one allocation per spawn, and only pointers move in queues.
struct Task {
    /// `None` once it has returned (its stack went back to the pool). Only
    /// the loop borrows it, around each resume.
    coro: RefCell<Option<Coro>>,
    /// Set by the loop when the coroutine returns.
    done: Cell<bool>,
    /// The coroutine parked in `join` on this one, queued again by the loop
    /// when this one returns.
    joiner: Cell<Option<Rc<Task>>>,
}

thread_local! {
    /// Runnable coroutines, in the order they run. Borrowed only for a push
    /// or a pop, never across a switch.
    static RUN_QUEUE: RefCell<VecDeque<Rc<Task>>> = const { RefCell::new(VecDeque::new()) };
    /// Stacks of finished coroutines, reused by the next spawns.
    static STACKS: RefCell<Vec<DefaultStack>> = const { RefCell::new(Vec::new()) };
    /// The running coroutine's yielder; null while the loop runs.
    static YIELDER: Cell<*const Yielder<(), Suspend>> = const { Cell::new(ptr::null()) };
}

/// Suspends the running coroutine with `why`; returns when the loop resumes it.
#[inline]
fn suspend(why: Suspend) {
    let yielder = YIELDER.get();
    assert!(!yielder.is_null(), "floor: suspend outside a coroutine");
    // SAFETY: YIELDER is non-null only while a coroutine runs (its body sets
    // it, the loop clears it after every resume), and then it points at that
    // coroutine's yielder, which lives on its stack until the body returns.
    unsafe { &*yielder }.suspend(why);
    YIELDER.set(yielder); // the loop cleared it while this coroutine was away
}

/// Lets every other runnable coroutine run once, then returns.
#[inline]
pub(crate) fn yield_now() {
    suspend(Suspend::Yield);
}

/// Waits for one spawned coroutine to return.
pub(crate) struct JoinHandle(Rc<Task>);

impl JoinHandle {
    /// Parks until the coroutine has returned (at once if it already has).
    pub(crate) fn join(self) {
        if !self.0.done.get() {
            suspend(Suspend::Join(self.0));
        }
    }
}

/// Queues `f` as a new coroutine on a pooled stack.
pub(crate) fn spawn(f: impl FnOnce() + 'static) -> JoinHandle {
    let stack = STACKS
        .with_borrow_mut(Vec::pop)
        .unwrap_or_else(|| DefaultStack::new(STACK_SIZE).expect("floor: map a stack"));
    let coro = Coro::with_stack(stack, move |yielder, ()| {
        YIELDER.set(yielder);
        f();
    });
    let task = Rc::new(Task {
        coro: RefCell::new(Some(coro)),
        done: Cell::new(false),
        joiner: Cell::new(None),
    });
    RUN_QUEUE.with_borrow_mut(|queue| queue.push_back(task.clone()));
    JoinHandle(task)
}

/// Runs `main` as the first coroutine and the loop until nothing is runnable
/// (the floor has no sockets or timers that could wake anyone later).
pub(crate) fn run<T: 'static>(main: impl FnOnce() -> T + 'static) -> T {
    let result = Rc::new(Cell::new(None));
    let out = result.clone();
    spawn(move || out.set(Some(main())));
    let mut poll = Poll::new().expect("floor: create a poller");
    let mut events = Events::with_capacity(EVENTS_CAPACITY);
    let (mut since_check, mut last_poll) = (0, Instant::now());
    while let Some(task) = RUN_QUEUE.with_borrow_mut(VecDeque::pop_front) {
        let step = task
            .coro
            .borrow_mut()
            .as_mut()
            .expect("floor: a queued coroutine has not returned")
            .resume(());
        YIELDER.set(ptr::null());
        match step {
            CoroutineResult::Yield(Suspend::Yield) => {
                RUN_QUEUE.with_borrow_mut(|queue| queue.push_back(task));
            }
            CoroutineResult::Yield(Suspend::Join(child)) => child.joiner.set(Some(task)),
            CoroutineResult::Return(()) => {
                task.done.set(true);
                let coro = task.coro.take().expect("floor: it ran");
                STACKS.with_borrow_mut(|stacks| stacks.push(coro.into_stack()));
                if let Some(joiner) = task.joiner.take() {
                    RUN_QUEUE.with_borrow_mut(|queue| queue.push_back(joiner));
                }
            }
        }
        since_check += 1;
        if since_check == CHECK_EVERY {
            since_check = 0;
            let now = Instant::now();
            if now.duration_since(last_poll) >= POLL_INTERVAL {
                poll.poll(&mut events, Some(Duration::ZERO))
                    .expect("floor: poll");
                last_poll = now;
            }
        }
    }
    STACKS.with_borrow_mut(Vec::clear); // each run maps its own, like a hub
    result.take().expect("floor: main returned")
}

/// ns per switch: `coroutines` each yield `rounds` times, timed after every
/// one has started (so first touches of fresh stacks are not counted).
pub(crate) fn switch_ns(coroutines: usize, rounds: u64) -> f64 {
    run(move || {
        let started = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..coroutines)
            .map(|_| {
                let started = started.clone();
                spawn(move || {
                    started.fetch_add(1, Ordering::Relaxed);
                    yield_now();
                    (0..rounds).for_each(|_| yield_now());
                })
            })
            .collect();
        while started.load(Ordering::Relaxed) < coroutines {
            yield_now();
        }
        let start = Instant::now();
        workers.into_iter().for_each(JoinHandle::join);
        start.elapsed().as_nanos() as f64 / (coroutines as u64 * rounds) as f64
    })
}

/// ns per spawn + run + join of an empty coroutine, stacks pooled.
pub(crate) fn spawn_ns(rounds: u64) -> f64 {
    run(move || {
        spawn(|| ()).join(); // warm the stack pool
        let start = Instant::now();
        for _ in 0..rounds {
            spawn(|| ()).join();
        }
        start.elapsed().as_nanos() as f64 / rounds as f64
    })
}

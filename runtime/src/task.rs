//! Spawning and joining: the hub's per-coroutine entry, [`Builder`],
//! [`spawn`], [`JoinHandle`] and the trampoline every coroutine starts in.
//!
//! `spawn` takes a stack from the pool, wraps the closure in a trampoline,
//! stores a [`Task`] in the hub's table and queues it; the hub resumes it
//! later. The trampoline runs the closure under `catch_unwind`, so a panic or
//! a kill stops that coroutine only; it then publishes the outcome in the
//! shared [`JoinState`] and wakes whoever joins.
//!
//! ```text
//!            spawn            hub resumes            park            wake
//!   (none) ---------> Fresh -------------> Running -------> Parked ------> Ready
//!                                           |  ^                            |
//!                                  returns, |  +----------------------------+
//!                         panics or killed  v         hub resumes
//!                                         (gone: stack back to the pool)
//! ```
//!
//! See `docs/architecture.md`, "Coroutine states".

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Instant;

use crate::coroutine::{Coro, Yielder, YielderPtr};
use crate::hub;
use crate::park::{KillSignal, Outcome, ParkedOn, WaitQueue, Wake};
use crate::slab::Key;
use crate::timeout::Scope;
use crate::timer::TimerKey;

/// Usable bytes of a coroutine stack unless the `Builder` says otherwise.
///
/// The BRPOP path needs about 1.4 KB, but a panic that captures a backtrace
/// (`RUST_BACKTRACE=1`) needs about 21 KB, and user code formats log lines.
/// Stacks are reserved with `MAP_NORESERVE`: untouched pages cost address
/// space only, so generous is cheap.
pub const DEFAULT_STACK_SIZE: usize = 128 * 1024;

/// The hub's entry for one live coroutine.
pub(crate) struct Task {
    /// Unique for the hub's lifetime (keys are reused, ids are not).
    pub(crate) id: u64,
    pub(crate) name: Option<Rc<str>>,
    /// The coroutine itself; `None` while it runs (the hub holds it then).
    pub(crate) coro: Option<Coro>,
    /// Set by the trampoline when the coroutine first runs.
    pub(crate) yielder: Option<YielderPtr>,
    /// Changed by the hub (Running, Ready) and by `park` (Parked).
    pub(crate) state: State,
    /// Sequence number of the current park; bumped by every successful wake.
    pub(crate) seq: u64,
    /// Why the last wake happened; set by the waker, taken by `park`.
    pub(crate) wake: Option<Wake>,
    /// Set by `kill`; the coroutine unwinds at its next park.
    pub(crate) killed: bool,
    /// Enclosing `timeout` scopes, innermost last.
    pub(crate) scopes: Vec<Scope>,
    /// The timer of the current park, if it has a deadline.
    pub(crate) timer: Option<TimerKey>,
    /// When the hub last resumed it (the hub's coarse clock), for `dump()`.
    pub(crate) last_run: Instant,
    /// Its stack's guard page, for the stack-overflow report.
    pub(crate) guard: usize,
    /// Its stack's base (top address), for `dump()`'s stack figure.
    pub(crate) stack_base: usize,
}

/// Where a coroutine is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// Queued to run (spawned, woken, or yielding).
    Ready,
    /// Running now; exactly one coroutine at a time.
    Running,
    /// Suspended in `park`, waiting on a wake source.
    Parked(ParkedOn),
}

impl Task {
    pub(crate) fn display_name(&self) -> String {
        match &self.name {
            Some(name) => name.to_string(),
            None => format!("coroutine-{}", self.id),
        }
    }

    pub(crate) fn scope_deadline(&self) -> Option<Instant> {
        self.scopes.iter().map(|scope| scope.deadline).min()
    }

    /// The park's deadline `due` passed: if it was a `timeout` scope's, mark
    /// every scope due by then as elapsed.
    pub(crate) fn expire(&mut self, due: Instant, scope: Option<Instant>) -> Outcome {
        if scope.is_some_and(|scope| scope <= due) {
            for scope in self.scopes.iter_mut().filter(|scope| scope.deadline <= due) {
                scope.elapsed = true;
            }
            Outcome::Elapsed
        } else {
            Outcome::Deadline
        }
    }
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("state", &self.state)
            .field("killed", &self.killed)
            .finish_non_exhaustive()
    }
}

/// Why [`JoinHandle::join`] returned no value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JoinError {
    /// The coroutine panicked; the panic message.
    Panicked(String),
    /// The coroutine was killed (gevent's `GreenletExit`); from `wait`, the
    /// waiting coroutine is itself unwinding and may not park.
    Killed,
    /// An enclosing [`timeout`](crate::timeout()) elapsed while waiting; the
    /// coroutine goes on.
    TimedOut,
    /// Nothing could ever finish the coroutine; the message names who waits.
    Deadlock(String),
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Panicked(message) => write!(f, "coroutine panicked: {message}"),
            JoinError::Killed => f.write_str("coroutine was killed"),
            JoinError::TimedOut => f.write_str("timed out waiting for the coroutine"),
            JoinError::Deadlock(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for JoinError {}

/// How a coroutine ended, kept until someone joins it.
enum Ending<T> {
    Returned(T),
    Panicked(Box<dyn Any + Send>),
    Killed,
}

/// What `Group` and `wait_any` need of a coroutine, whatever it returns.
pub(crate) trait Finish {
    fn is_finished(&self) -> bool;
    fn joiners(&self) -> &WaitQueue;
}

impl<T> Finish for JoinState<T> {
    fn is_finished(&self) -> bool {
        self.finished.get()
    }
    fn joiners(&self) -> &WaitQueue {
        &self.joiners
    }
}

/// Shared by a coroutine's trampoline (which fills it) and its handle.
struct JoinState<T> {
    ending: RefCell<Option<Ending<T>>>,
    finished: Cell<bool>,
    joiners: WaitQueue,
}

/// Owns the right to join a coroutine: `join` waits for its value.
///
/// Dropping the handle detaches the coroutine; it keeps running. A handle is
/// tied to its hub's thread:
///
/// ```compile_fail
/// fn assert_send<T: Send>(_: T) {}
/// greenhub::run(|| assert_send(greenhub::spawn(|| ())));
/// ```
pub struct JoinHandle<T> {
    key: Key,
    id: u64,
    name: Option<Rc<str>>,
    state: Rc<JoinState<T>>,
    _not_send: PhantomData<*const ()>,
}

impl<T> JoinHandle<T> {
    /// Waits until the coroutine ends and returns its value (gevent's `get`).
    ///
    /// Parks the caller; honours enclosing `timeout`s ([`JoinError::TimedOut`])
    /// and reports a deadlock instead of waiting forever.
    ///
    /// # Panics
    ///
    /// Panics when called outside a coroutine, where there is nothing to park.
    pub fn join(self) -> Result<T, JoinError> {
        self.wait()?;
        match self
            .state
            .ending
            .borrow_mut()
            .take()
            .expect("a finished coroutine has an ending")
        {
            Ending::Returned(value) => Ok(value),
            Ending::Panicked(payload) => Err(JoinError::Panicked(panic_message(&*payload))),
            Ending::Killed => Err(JoinError::Killed),
        }
    }

    /// Waits until the coroutine ends, without taking its value (gevent's
    /// `join`): several coroutines may wait on one handle shared by `Rc`.
    /// Errors only when the wait itself fails: `TimedOut`, `Deadlock`, or
    /// `Killed` when the *caller* is unwinding and may not park.
    ///
    /// # Panics
    ///
    /// Panics when called outside a coroutine.
    pub fn wait(&self) -> Result<(), JoinError> {
        self.wait_until(None)
    }

    /// Like [`wait`](Self::wait), giving up with [`JoinError::TimedOut`]
    /// after `timeout`.
    pub fn wait_timeout(&self, timeout: std::time::Duration) -> Result<(), JoinError> {
        self.wait_until(Instant::now().checked_add(timeout))
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Result<(), JoinError> {
        while !self.state.finished.get() {
            match self.state.joiners.wait(deadline) {
                Outcome::Notified => {}
                Outcome::Elapsed | Outcome::Deadline => return Err(JoinError::TimedOut),
                Outcome::Deadlock(message) => return Err(JoinError::Deadlock(message)),
                Outcome::Refused if !hub::in_coroutine() => {
                    panic!("JoinHandle::join must be called from a coroutine")
                }
                Outcome::Refused => return Err(JoinError::Killed),
            }
        }
        Ok(())
    }

    /// Asks the coroutine to exit: it unwinds (running its destructors) the
    /// next time it parks, or at once if it is parked now; a coroutine that
    /// has not started never runs. Returns at once; `join` then reports
    /// [`JoinError::Killed`]. Does nothing if the coroutine has finished.
    pub fn kill(&self) {
        hub::with(|hub| hub.core.borrow_mut().kill(self.key));
    }

    /// Whether the coroutine has ended (returned, panicked or been killed).
    pub fn is_finished(&self) -> bool {
        self.state.finished.get()
    }

    pub(crate) fn joiners(&self) -> &WaitQueue {
        &self.state.joiners
    }

    /// The coroutine's id, unique within its hub.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The name given by [`Builder::name`], if any.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    pub(crate) fn key(&self) -> Key {
        self.key
    }

    /// The coroutine's key and its join state, type-erased (for `Group`).
    pub(crate) fn erased(&self) -> (Key, Rc<dyn Finish>)
    where
        T: 'static,
    {
        (self.key, self.state.clone())
    }

    /// `run`'s ending: main's value, or its panic propagated.
    pub(crate) fn into_outcome(self) -> T {
        match self.state.ending.borrow_mut().take() {
            Some(Ending::Returned(value)) => value,
            Some(Ending::Panicked(payload)) => panic::resume_unwind(payload),
            Some(Ending::Killed) | None => panic!("greenhub::run: the main coroutine was killed"),
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Spawns a coroutine with options: a name (shown in logs, `stats`, deadlock
/// reports) and a stack size. Like `std::thread::Builder`.
#[derive(Debug, Default)]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
}

impl Builder {
    /// A builder with no name and the default stack size.
    pub fn new() -> Self {
        Builder::default()
    }

    /// Names the coroutine, as `cron` in the demo's log lines.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Usable stack bytes, rounded up to whole pages
    /// (default [`DEFAULT_STACK_SIZE`]).
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Spawns `f` as a new coroutine on this thread's hub; it starts when the
    /// caller next parks. Fails outside a hub or when no stack can be mapped.
    pub fn spawn<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        let name: Option<Rc<str>> = self.name.map(Rc::from);
        let size = self.stack_size.unwrap_or(DEFAULT_STACK_SIZE);
        hub::with(|hub| {
            let stack = hub.stacks.borrow_mut().get(size)?;
            let (guard, stack_base) = (stack.guard(), stack.base());
            let state = Rc::new(JoinState {
                ending: RefCell::new(None),
                finished: Cell::new(false),
                joiners: WaitQueue::new("join"),
            });
            let coro = Coro::with_stack(stack, trampoline(f, state.clone(), name.clone()));
            let mut core = hub.core.borrow_mut();
            let id = core.next_id;
            core.next_id += 1;
            let clock = core.clock;
            let key = core.tasks.insert(Task {
                id,
                name: name.clone(),
                coro: Some(coro),
                yielder: None,
                state: State::Ready,
                seq: 0,
                wake: None,
                killed: false,
                scopes: Vec::new(),
                timer: None,
                last_run: clock,
                guard,
                stack_base,
            });
            if let Some(monitor) = &hub.monitor {
                monitor.named(
                    id,
                    name.as_deref()
                        .map_or_else(|| format!("coroutine-{id}"), str::to_owned),
                );
            }
            core.fresh.push_back(key);
            Ok(JoinHandle {
                key,
                id,
                name,
                state,
                _not_send: PhantomData,
            })
        })
        .unwrap_or_else(|| {
            Err(io::Error::other(
                "greenhub::spawn must be called inside greenhub::run",
            ))
        })
    }
}

/// Spawns `f` as a new coroutine (gevent's `spawn`); it starts when the caller
/// next parks.
///
/// # Panics
///
/// Panics outside a hub, or when no stack can be mapped (the message names
/// `vm.max_map_count`); use [`Builder::spawn`] to get that as an error.
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    Builder::new()
        .spawn(f)
        .unwrap_or_else(|err| panic!("greenhub::spawn: {err}"))
}

/// The first and last frame of every coroutine.
fn trampoline<F, T>(
    f: F,
    state: Rc<JoinState<T>>,
    name: Option<Rc<str>>,
) -> impl FnOnce(&Yielder, ()) + 'static
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    move |yielder: &Yielder, ()| {
        let (killed, id) = hub::with(|hub| {
            let mut core = hub.core.borrow_mut();
            let key = core.current.expect("a coroutine starts as the current one");
            let task = core
                .tasks
                .get_mut(key)
                .expect("a starting coroutine exists");
            task.yielder = Some(YielderPtr::new(yielder));
            (task.killed, task.id)
        })
        .unwrap_or((true, 0));
        let ending = if killed {
            drop(f);
            Ending::Killed
        } else {
            match panic::catch_unwind(AssertUnwindSafe(f)) {
                Ok(value) => Ending::Returned(value),
                Err(payload) if payload.is::<KillSignal>() => Ending::Killed,
                Err(payload) => {
                    let who = name
                        .as_deref()
                        .map_or_else(|| format!("coroutine-{id}"), str::to_owned);
                    log::error!("coroutine '{who}' panicked: {}", panic_message(&*payload));
                    Ending::Panicked(payload)
                }
            }
        };
        *state.ending.borrow_mut() = Some(ending);
        state.finished.set(true);
        state.joiners.notify_all();
    }
}

/// The text of a panic payload (`&str` or `String`), as `std` prints it.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "Box<dyn Any>".to_owned()
    }
}

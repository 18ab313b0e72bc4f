//! Spawning and joining: [`Builder`], [`spawn`], [`JoinHandle`] and the
//! trampoline every coroutine starts in.
//!
//! `spawn` asks the hub for a coroutine on a pooled stack (`Hub::spawn_raw`)
//! whose body is the trampoline; the hub queues it and resumes it later. The
//! trampoline runs the closure under `catch_unwind`, so a panic or a kill
//! stops that coroutine only; it then publishes the outcome in the shared
//! [`JoinState`], runs the links (a `Group` forgetting its member) and wakes
//! whoever joins. A handle carries its hub's id: used after its hub is gone
//! (a later `run` on the same thread), `kill` does nothing and `join`
//! returns the recorded outcome, never touching the new hub's coroutines.
//! See `docs/architecture.md`, "Coroutine states".

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Instant;

use crate::hub::park::{KillSignal, Outcome};
pub use crate::join_error::JoinError;
use crate::sched::{HubId, Key};
use crate::sync::queue::Queue;

/// Usable bytes of a coroutine stack unless the `Builder` says otherwise.
///
/// The BRPOP path needs about 1.4 KB, but a panic that captures a backtrace
/// (`RUST_BACKTRACE=1`) needs about 21 KB, and user code formats log lines.
/// Stacks are reserved with `MAP_NORESERVE`: untouched pages cost address
/// space only, so generous is cheap.
pub const DEFAULT_STACK_SIZE: usize = 128 * 1024;

/// How a coroutine ended, kept until someone joins it.
enum Ending<T> {
    Returned(T),
    Panicked(Box<dyn Any + Send>),
    Killed,
}

/// What `Group` and `wait_any` need of a coroutine, whatever it returns.
pub(crate) trait Finish {
    fn is_finished(&self) -> bool;
    fn joiners(&self) -> &Queue;
    /// Runs `f` when the coroutine ends (at once if it has ended).
    fn link(&self, f: Box<dyn FnOnce()>);
}

impl<T> Finish for JoinState<T> {
    fn is_finished(&self) -> bool {
        self.finished.get()
    }
    fn joiners(&self) -> &Queue {
        &self.joiners
    }
    fn link(&self, f: Box<dyn FnOnce()>) {
        if self.finished.get() {
            // As the trampoline runs links: a panic stops only the link (the
            // panic hook has reported it), never the caller of `link`.
            if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(f)) {
                drop(payload);
            }
        } else {
            let mut links = self.links.take();
            links.push(f);
            self.links.set(links);
        }
    }
}

/// Shared by a coroutine's trampoline (which fills it) and its handle.
struct JoinState<T> {
    ending: RefCell<Option<Ending<T>>>,
    finished: Cell<bool>,
    joiners: Queue,
    /// Run once when the coroutine ends, before joiners are woken. A
    /// `Cell` (taken and put back): no borrow flag, one word less in every
    /// join state.
    links: Cell<Vec<Box<dyn FnOnce()>>>,
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
    hub: HubId,
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
    /// Panics when called outside a coroutine while the coroutine has not
    /// finished, where there is nothing to park.
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
            Ending::Panicked(payload) => {
                Err(JoinError::Panicked(crate::hub::panic_message(&*payload)))
            }
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
    /// Panics when called outside a coroutine while the coroutine has not
    /// finished.
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
                Outcome::Refused if !crate::context::in_coroutine() => {
                    panic!("JoinHandle::join must be called from a coroutine")
                }
                Outcome::Refused => return Err(JoinError::Killed),
            }
        }
        Ok(())
    }

    /// Asks the coroutine to exit: it unwinds (running its destructors) when
    /// it next runs — a parked one is woken to do so, a woken or yielding
    /// one unwinds when its turn comes, and one that has not started never
    /// runs its closure. Returns at once; `join` then reports
    /// [`JoinError::Killed`]. Does nothing if the coroutine has finished,
    /// or if its hub is not this thread's running hub (a handle kept from an
    /// earlier `run`: that coroutine was killed when its hub shut down).
    ///
    /// The unwinding is Rust's: a destructor that panics during it is a
    /// panic while unwinding, and aborts the process.
    pub fn kill(&self) {
        crate::context::with(|hub| {
            if hub.id == self.hub {
                hub.sched.kill(self.key);
            }
        });
    }

    /// Runs `f` when the coroutine ends (gevent's `link`), with how it
    /// ended: `Ok(&value)`, or the [`JoinError`] `join` would return. At
    /// once if it has ended already.
    ///
    /// `f` runs on the finished coroutine's own stack, after its closure
    /// has returned and before anyone joining it is woken, so a link sees
    /// the end first (a [`Group`](crate::Group) forgets its members this
    /// way). The value is borrowed while `f` runs: keep `f` short, and do
    /// not `join` the handle from inside it. A panic in `f` is reported and
    /// stops only `f`.
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use std::rc::Rc;
    /// greenhub::run(|| {
    ///     let seen = Rc::new(RefCell::new(Vec::new()));
    ///     let worker = greenhub::spawn(|| 6 * 7);
    ///     let log = seen.clone();
    ///     worker.link(move |ended| log.borrow_mut().push(format!("{ended:?}")));
    ///     assert_eq!(worker.join().unwrap(), 42);
    ///     assert_eq!(*seen.borrow(), ["Ok(42)"]);
    /// });
    /// ```
    pub fn link(&self, f: impl FnOnce(Result<&T, JoinError>) + 'static)
    where
        T: 'static,
    {
        let state = self.state.clone();
        let run = move || {
            let ending = state.ending.borrow();
            let view = match &*ending {
                Some(Ending::Returned(value)) => Ok(value),
                Some(Ending::Panicked(payload)) => {
                    Err(JoinError::Panicked(crate::hub::panic_message(&**payload)))
                }
                Some(Ending::Killed) | None => Err(JoinError::Killed),
            };
            f(view);
        };
        self.state.link(Box::new(run));
    }

    /// Whether the coroutine has ended (returned, panicked or been killed).
    pub fn is_finished(&self) -> bool {
        self.state.finished.get()
    }

    pub(crate) fn joiners(&self) -> &Queue {
        &self.state.joiners
    }

    /// The coroutine's id, unique within its hub.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The id of the hub the coroutine runs on.
    pub fn hub_id(&self) -> HubId {
        self.hub
    }

    /// The name given by [`Builder::name`], if any.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    pub(crate) fn key(&self) -> Key {
        self.key
    }

    /// The coroutine's identity and its join state, type-erased (for `Group`).
    pub(crate) fn erased(&self) -> (HubId, Key, Rc<dyn Finish>)
    where
        T: 'static,
    {
        (self.hub, self.key, self.state.clone())
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
            .field("hub", &self.hub)
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
        crate::context::with(|hub| {
            let state = Rc::new(JoinState {
                ending: RefCell::new(None),
                finished: Cell::new(false),
                joiners: Queue::new("join"),
                links: Cell::new(Vec::new()),
            });
            // Where the hub's prefetch before each resume starts (a hint
            // only): the join state's counts, which sit just below the value
            // `as_ptr` names when `JoinState<T>` is aligned to 16 bytes or
            // less (further below otherwise, and the hint misses them).
            let finish = Rc::as_ptr(&state) as usize - 2 * std::mem::size_of::<usize>();
            let (key, id) =
                hub.spawn_raw(name.clone(), size, finish, trampoline(f, state.clone()))?;
            Ok(JoinHandle {
                hub: hub.id,
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

/// Spawns `f` to start after `delay` (gevent's `spawn_later`): the
/// coroutine exists at once (it can be joined or killed) and sleeps first.
/// Killed before `delay` passes, it never runs `f`.
///
/// # Panics
///
/// As [`spawn`].
///
/// ```
/// use std::time::Duration;
/// greenhub::run(|| {
///     let reminder = greenhub::spawn_later(Duration::from_millis(5), || "later");
///     let never = greenhub::spawn_later(Duration::from_secs(60), || unreachable!());
///     never.kill();
///     assert_eq!(reminder.join().unwrap(), "later");
///     assert_eq!(never.join(), Err(greenhub::JoinError::Killed));
/// });
/// ```
pub fn spawn_later<F, T>(delay: std::time::Duration, f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    spawn(move || {
        crate::timer::sleep(delay);
        f()
    })
}

/// The first and last frame of every coroutine. Everything that can run user
/// code (the closure, its drop when killed before starting, coroutine-local
/// values, the links, and the return value's drop when no handle is left)
/// runs inside `catch_unwind`, so a kill signal or a panic never escapes it and
/// the join state is always completed.
fn trampoline<F, T>(f: F, state: Rc<JoinState<T>>) -> impl FnOnce() + 'static
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    move || {
        let killed = crate::context::with(|hub| hub.sched.current_killed()).unwrap_or(true);
        let outcome = panic::catch_unwind(AssertUnwindSafe(move || {
            if killed {
                drop(f); // a kill before the first run: the closure never runs
                None
            } else {
                Some(f())
            }
        }));
        // Coroutine-local values end with the coroutine, dropped here on
        // its own stack (a destructor may still log its name).
        let locals =
            crate::context::with(|hub| hub.sched.with_current(|task| task.extras.take())).flatten();
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(move || drop(locals))) {
            drop(payload); // reported by the panic hook
        }
        let ending = match outcome {
            Ok(Some(value)) => Ending::Returned(value),
            Ok(None) => Ending::Killed,
            Err(payload) if payload.is::<KillSignal>() => Ending::Killed,
            Err(payload) => {
                crate::trace::panicked(&*payload);
                Ending::Panicked(payload) // reported by the panic hook
            }
        };
        *state.ending.borrow_mut() = Some(ending);
        state.finished.set(true);
        let links = state.links.take();
        for link in links {
            if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(link)) {
                drop(payload); // reported by the panic hook
            }
        }
        state.joiners.notify_all();
        // With the handle gone, this is the last reference: dropping it
        // drops the return value (or the panic's payload), which is user
        // code too, and may panic or park (then be killed as the hub ends).
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(move || drop(state))) {
            drop(payload); // reported by the panic hook, unless a kill
        }
    }
}

//! The scheduler's entry for one live coroutine, and the words for where it
//! is in its life and why it was woken.
//!
//! ```text
//!            spawn            hub resumes            park            wake
//!   (none) ---------> Ready -------------> Running -------> Parked ------> Ready
//!                       ^                   |  ^                            |
//!                       |          returns, |  +----------------------------+
//!                       |  panics or killed v         hub resumes
//!                       |                 (gone: stack back to the pool)
//!                       +-- yield_now (from Running)
//! ```

use std::fmt;
use std::rc::Rc;
use std::time::Instant;

/// Where a coroutine is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// Queued to run: spawned and not started, woken, or yielding.
    Ready,
    /// Running now; exactly one coroutine at a time.
    Running,
    /// Suspended in a park, waiting on a wake source.
    Parked(ParkedOn),
}

/// What a coroutine is parked on, as `stats()`, `dump()` and deadlock
/// reports show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ParkedOn {
    /// A socket's read or write side (`true` for write), with its fd.
    Io { fd: i32, write: bool },
    /// Only a deadline: `sleep`.
    Sleep,
    /// A wait queue; the label says what for (`join`, `channel recv`, ...).
    Queue(&'static str),
    /// A job on a helper thread.
    Unblock,
    /// Another OS thread (a remote channel).
    Remote,
}

impl fmt::Display for ParkedOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParkedOn::Io { write: false, .. } => f.write_str("socket read"),
            ParkedOn::Io { write: true, .. } => f.write_str("socket write"),
            ParkedOn::Sleep => f.write_str("sleep"),
            ParkedOn::Queue(label) => f.write_str(label),
            ParkedOn::Unblock => f.write_str("helper thread"),
            ParkedOn::Remote => f.write_str("another thread"),
        }
    }
}

/// Why a parked coroutine was made ready; set by the waker, read by the park.
/// Small and `Copy`: it lives in every task entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// A wake source fired; `from` is the tag the park gave that source's
    /// registration (the index of a queue in `wait_any`, 0 otherwise).
    /// A `u32`, not a `usize`, so that an `Option<Wake>` is one word.
    Notified { from: u32 },
    /// The park's deadline passed.
    Timer,
    /// `kill` was called.
    Killed,
    /// Nothing could ever wake this coroutine (only `main` gets this); the
    /// hub keeps the message that names who waits on what.
    Deadlock,
}

/// One `timeout` scope on a task's scope stack.
#[derive(Debug)]
pub(crate) struct Scope {
    pub(crate) deadline: Instant,
    /// Set by the park whose wait this deadline ended.
    pub(crate) elapsed: bool,
}

/// The scheduler's entry for one live coroutine. Fields are changed by the
/// scheduler (state, seq, wake, killed), by the park protocol (state, scopes)
/// and by the hub's resume (state, last_run). The coroutine itself is kept
/// by the hub beside this table (`Hub::coros`).
pub(crate) struct Task {
    /// Unique among the hub's coroutines for its lifetime (keys are reused,
    /// ids are not).
    pub(crate) id: u64,
    pub(crate) name: Option<Rc<str>>,
    pub(crate) state: State,
    /// The id of the current park. A waiter is valid while its seq equals
    /// this and the task is `Parked`; every park ends by bumping it, so no
    /// registration outlives the park that made it.
    pub(crate) seq: u64,
    /// Why the last wake happened; set by the waker, taken by the park.
    pub(crate) wake: Option<Wake>,
    /// Set by `kill`; the coroutine unwinds at its next park, or never
    /// starts.
    pub(crate) killed: bool,
    /// The deadline of the current park, if it has one, for `dump()`.
    pub(crate) parked_until: Option<Instant>,
    /// Its `timeout` scopes and coroutine-local values, boxed on first use
    /// (most coroutines have neither: 8 bytes instead of two `Vec`s).
    pub(crate) extras: Option<Box<Extras>>,
    /// When the hub last resumed it (the hub's coarse clock), for `dump()`.
    pub(crate) last_run: Instant,
    /// Its stack's guard band (lowest address), for the overflow report,
    /// and the pages from there to its base (highest address), for
    /// `dump()`'s resident-stack figure: a `u32` fits the padding after
    /// `killed`, where a second address would take a word.
    pub(crate) guard: usize,
    pub(crate) stack_pages: u32,
}

/// The parts of a task entry few coroutines use, kept out of line.
#[derive(Debug, Default)]
pub(crate) struct Extras {
    /// Enclosing `timeout` scopes, innermost last.
    pub(crate) scopes: Vec<Scope>,
    /// Coroutine-local values (`greenhub::local!`), keyed by the address of
    /// their `static` key; filled on first use by the coroutine itself and
    /// emptied by its trampoline when it ends, on its own stack.
    pub(crate) locals: Vec<(usize, Rc<dyn std::any::Any>)>,
}

impl Task {
    /// Its extras, boxed now if it had none.
    pub(crate) fn extras_mut(&mut self) -> &mut Extras {
        self.extras.get_or_insert_with(Box::default)
    }

    /// Its `timeout` scopes, innermost last.
    pub(crate) fn scopes(&self) -> &[Scope] {
        self.extras.as_ref().map_or(&[], |extras| &extras.scopes)
    }

    pub(crate) fn display_name(&self) -> String {
        display_name(self.name.as_deref(), self.id)
    }

    /// Whether this is a runtime's introspection probe: its name is the
    /// hub's `probe_name` itself (the same `Rc`, not only the same text).
    pub(crate) fn is_probe(&self, probe_name: &Rc<str>) -> bool {
        self.name
            .as_ref()
            .is_some_and(|name| Rc::ptr_eq(name, probe_name))
    }

    /// The highest address of its stack.
    pub(crate) fn stack_base(&self) -> usize {
        self.guard + self.stack_pages as usize * crate::sys::os::page_size()
    }

    /// The nearest enclosing `timeout` deadline.
    pub(crate) fn scope_deadline(&self) -> Option<Instant> {
        self.scopes().iter().map(|scope| scope.deadline).min()
    }
}

/// A coroutine's name as every report prints it: its own, or `coroutine-ID`.
pub(crate) fn display_name(name: Option<&str>, id: u64) -> String {
    match name {
        Some(name) => name.to_owned(),
        None => format!("coroutine-{id}"),
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

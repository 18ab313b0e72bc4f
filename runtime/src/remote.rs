//! [`Handle`]: the hub's door for other OS threads (spawn work onto a hub,
//! wake it), on the hub's inbox (`sources/inbox.rs`), which helper threads
//! and remote channels post to as well. While a `Handle` or a remote sender
//! is alive, another thread may still post, so the hub never reports a
//! deadlock.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::sched::HubId;
use crate::sources::inbox::Inbox;

/// The hub has finished: its `run` returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HubClosed;

impl fmt::Display for HubClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the hub has shut down")
    }
}

impl std::error::Error for HubClosed {}

/// A `Send` handle to a hub, for other OS threads: spawn a coroutine on it,
/// or wake it. While any handle is alive the hub cannot be deadlocked (the
/// other thread may still spawn), so drop handles you no longer need.
///
/// ```
/// greenhub::run(|| {
///     let handle = greenhub::handle();
///     let (tx, rx) = greenhub::sync::remote_channel();
///     std::thread::spawn(move || {
///         let reply = tx.clone();
///         handle.spawn(move || { reply.send("ran on the hub").unwrap(); }).unwrap();
///         tx.send("sent from a thread").unwrap();
///     });
///     let mut got = vec![rx.recv().unwrap(), rx.recv().unwrap()];
///     got.sort();
///     assert_eq!(got, ["ran on the hub", "sent from a thread"]);
/// });
/// ```
pub struct Handle {
    inbox: Arc<Inbox>,
}

/// A handle to this thread's hub.
///
/// # Panics
///
/// Panics outside `greenhub::run`.
pub fn handle() -> Handle {
    let inbox = crate::context::with(|hub| hub.inbox.clone())
        .expect("greenhub::handle must be called inside greenhub::run");
    Handle::new(inbox)
}

impl Handle {
    pub(crate) fn new(inbox: Arc<Inbox>) -> Handle {
        inbox.handles.fetch_add(1, Ordering::SeqCst);
        Handle { inbox }
    }

    /// The id of the hub this handle reaches.
    pub fn hub_id(&self) -> HubId {
        self.inbox.hub
    }

    /// Sends `f` to the hub, which spawns it as a coroutine (named `remote`)
    /// when it next polls. Fails once the hub has shut down. A job sent just
    /// before `main` returned may be dropped unrun, as every coroutine that
    /// had not started by then is: its captures are dropped on the hub's
    /// thread when the hub closes.
    pub fn spawn<F: FnOnce() + Send + 'static>(&self, f: F) -> Result<(), HubClosed> {
        if self.inbox.spawn(Box::new(move || run_remote(f))) {
            Ok(())
        } else {
            Err(HubClosed)
        }
    }

    /// Interrupts the hub's poll (mio's `Waker`), so it looks at its queues.
    pub fn wake(&self) {
        self.inbox.wake();
    }

    /// Whether the hub is still running.
    pub fn is_open(&self) -> bool {
        self.inbox.is_open()
    }
}

impl Clone for Handle {
    fn clone(&self) -> Self {
        Handle::new(self.inbox.clone())
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.inbox.handles.fetch_sub(1, Ordering::SeqCst);
        // The hub may be idle, waiting only because this handle could wake it.
        self.inbox.wake();
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("open", &self.is_open())
            .finish()
    }
}

/// The body of a coroutine sent from another thread, run on the hub: like
/// the trampoline of `spawn`, a coroutine killed before its first run (at
/// shutdown, say) drops its closure unrun, and a panic stays inside it (the
/// panic hook has reported it).
fn run_remote(f: impl FnOnce()) {
    let killed = crate::context::with(|hub| hub.sched.current_killed()).unwrap_or(true);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        if killed {
            drop(f);
        } else {
            f();
        }
    }));
    drop(outcome);
}

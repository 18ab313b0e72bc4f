//! The hub's door to other OS threads: [`Handle`] (spawn work onto a hub,
//! wake it) and the inbox behind it, which helper threads (`unblock`) and
//! remote channels use too.
//!
//! Another thread never touches the hub's tables. It pushes onto the
//! `Remote`'s inbox (behind a `std::sync::Mutex`) and wakes the hub's
//! `Poll` through mio's `Waker`. The hub drains the inbox in its poll step:
//! finished helper jobs and remote wakes become ordinary wakes, and spawned
//! closures become coroutines. While a `Handle` or a remote sender is alive,
//! another thread may still wake the hub, so it never reports a deadlock.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use mio::{Registry, Token, Waker};

use crate::hub;
use crate::park::Waiter;

/// A closure sent from another thread, to run as a coroutine.
pub(crate) type RemoteJob = Box<dyn FnOnce() + Send>;

/// What other threads have left for the hub since it last looked.
#[derive(Default)]
pub(crate) struct Inbox {
    /// Waiters of finished `unblock` jobs.
    pub(crate) finished_jobs: Vec<Waiter>,
    /// Waiters woken from another thread (remote channels).
    pub(crate) wakes: Vec<Waiter>,
    /// Closures to spawn (`Handle::spawn`).
    pub(crate) spawns: Vec<RemoteJob>,
}

/// The shared part of a hub.
pub(crate) struct Remote {
    waker: Waker,
    inbox: Mutex<Inbox>,
    /// Live `Handle`s and remote senders.
    pub(crate) handles: AtomicUsize,
    /// Cleared when the hub's `run` ends: spawns are refused from then on.
    open: AtomicBool,
}

impl Remote {
    pub(crate) fn new(registry: &Registry, token: Token) -> io::Result<Remote> {
        Ok(Remote {
            waker: Waker::new(registry, token)?,
            inbox: Mutex::new(Inbox::default()),
            handles: AtomicUsize::new(0),
            open: AtomicBool::new(true),
        })
    }

    fn post(&self, put: impl FnOnce(&mut Inbox)) {
        put(&mut self.inbox.lock().unwrap_or_else(PoisonError::into_inner));
        // Waking fails only if the hub's poll is gone; then nobody waits.
        let _ = self.waker.wake();
    }

    /// A helper thread finished the job `waiter` waits for.
    pub(crate) fn complete(&self, waiter: Waiter) {
        self.post(|inbox| inbox.finished_jobs.push(waiter));
    }

    /// Another thread wakes `waiter`.
    pub(crate) fn wake(&self, waiter: Waiter) {
        self.post(|inbox| inbox.wakes.push(waiter));
    }

    /// Everything posted since the last call; called by the hub.
    pub(crate) fn take(&self) -> Inbox {
        std::mem::take(&mut *self.inbox.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Refuses further spawns and drops the ones not run.
    pub(crate) fn close(&self) {
        self.open.store(false, Ordering::SeqCst);
        drop(self.take());
    }
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("handles", &self.handles.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

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
    remote: Arc<Remote>,
}

/// A handle to this thread's hub.
///
/// # Panics
///
/// Panics outside `greenhub::run`.
pub fn handle() -> Handle {
    let remote = hub::with(|hub| hub.remote.clone())
        .expect("greenhub::handle must be called inside greenhub::run");
    Handle::new(remote)
}

impl Handle {
    pub(crate) fn new(remote: Arc<Remote>) -> Handle {
        remote.handles.fetch_add(1, Ordering::SeqCst);
        Handle { remote }
    }

    pub(crate) fn remote(&self) -> &Arc<Remote> {
        &self.remote
    }

    /// Spawns `f` as a coroutine on the hub (named `remote`); it runs at the
    /// hub's next poll. Fails once the hub has shut down.
    pub fn spawn<F: FnOnce() + Send + 'static>(&self, f: F) -> Result<(), HubClosed> {
        if !self.remote.open.load(Ordering::SeqCst) {
            return Err(HubClosed);
        }
        self.remote.post(|inbox| inbox.spawns.push(Box::new(f)));
        Ok(())
    }

    /// Interrupts the hub's poll (mio's `Waker`), so it looks at its queues.
    pub fn wake(&self) {
        let _ = self.remote.waker.wake();
    }

    /// Whether the hub is still running.
    pub fn is_open(&self) -> bool {
        self.remote.open.load(Ordering::SeqCst)
    }
}

impl Clone for Handle {
    fn clone(&self) -> Self {
        Handle::new(self.remote.clone())
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.remote.handles.fetch_sub(1, Ordering::SeqCst);
        // The hub may be idle, waiting only because this handle could wake it.
        let _ = self.remote.waker.wake();
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("open", &self.is_open())
            .finish()
    }
}

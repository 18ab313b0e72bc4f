//! The hub's inbox: what other OS threads leave for it (finished helper jobs,
//! wakes from remote channels, closures to spawn), and the one wake of its
//! poller that announces them.
//!
//! Another thread never touches the hub's tables. It pushes onto the inbox
//! (behind a `std::sync::Mutex`) and, only if no wake is pending yet, writes
//! the poller's waker (mio's `Waker`, an eventfd): a burst of a thousand posts
//! costs one eventfd write and one wake of the hub, not a thousand. The hub
//! clears the pending flag *before* it takes the posts, so a post that misses
//! this drain always sees the flag clear and wakes the poller again.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use mio::{Registry, Token, Waker};

use crate::sched::{HubId, Waiter};

/// A closure sent from another thread, to run as a coroutine.
pub(crate) type RemoteJob = Box<dyn FnOnce() + Send>;

/// A closure to spawn, with how: its stack size (`None`: the hub's default
/// for remote jobs) and whether it is a runtime's introspection probe
/// (`stats`, `dump`, `each_hub`), which the hub's stats leave out.
pub(crate) struct RemoteSpawn {
    pub(crate) job: RemoteJob,
    pub(crate) stack_size: Option<usize>,
    pub(crate) probe: bool,
}

/// What other threads have left for the hub since it last looked.
#[derive(Default)]
pub(crate) struct Posts {
    /// Waiters of finished `unblock` jobs.
    pub(crate) finished_jobs: Vec<Waiter>,
    /// Waiters woken from another thread (remote channels).
    pub(crate) wakes: Vec<Waiter>,
    /// Closures to spawn (`Handle::spawn`).
    pub(crate) spawns: Vec<RemoteSpawn>,
}

/// The shared, `Send + Sync` part of a hub.
pub(crate) struct Inbox {
    pub(crate) hub: HubId,
    waker: Waker,
    posts: Mutex<Posts>,
    /// A wake of the poller is pending: set by the first post after a drain.
    notified: AtomicBool,
    /// Live `Handle`s and remote senders: while any exists, another thread
    /// may still post, so the hub is not deadlocked.
    pub(crate) handles: AtomicUsize,
    /// Cleared when the hub's `run` ends: posts are refused from then on.
    open: AtomicBool,
}

impl Inbox {
    pub(crate) fn new(hub: HubId, registry: &Registry, token: Token) -> io::Result<Inbox> {
        Ok(Inbox {
            hub,
            waker: Waker::new(registry, token)?,
            posts: Mutex::new(Posts::default()),
            notified: AtomicBool::new(false),
            handles: AtomicUsize::new(0),
            open: AtomicBool::new(true),
        })
    }

    fn post(&self, put: impl FnOnce(&mut Posts)) {
        put(&mut self.posts.lock().unwrap_or_else(PoisonError::into_inner));
        self.wake();
    }

    /// Wakes the hub's poller unless a wake is pending already.
    pub(crate) fn wake(&self) {
        if !self.notified.swap(true, Ordering::AcqRel) {
            // Waking fails only if the hub's poll is gone; then nobody waits.
            let _ = self.waker.wake();
        }
    }

    /// A helper thread finished the job `waiter` waits for.
    pub(crate) fn complete(&self, waiter: Waiter) {
        self.post(|posts| posts.finished_jobs.push(waiter));
    }

    /// Another thread wakes `waiter`.
    pub(crate) fn wake_waiter(&self, waiter: Waiter) {
        self.post(|posts| posts.wakes.push(waiter));
    }

    /// Queues a closure to spawn; false once the hub has shut down. The
    /// check and the post happen under the lock `close` takes, so a job is
    /// either refused or taken (and dropped) by `close`, never left behind.
    pub(crate) fn spawn(&self, job: RemoteSpawn) -> bool {
        {
            let mut posts = self.posts.lock().unwrap_or_else(PoisonError::into_inner);
            if !self.open.load(Ordering::SeqCst) {
                return false;
            }
            posts.spawns.push(job);
        }
        self.wake();
        true
    }

    /// Everything posted since the last call; called by the hub.
    pub(crate) fn take(&self) -> Posts {
        self.notified.store(false, Ordering::Release);
        std::mem::take(&mut *self.posts.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Whether the hub still runs.
    pub(crate) fn is_open(&self) -> bool {
        self.open.load(Ordering::SeqCst)
    }

    /// Refuses further spawns and returns the posts not taken.
    pub(crate) fn close(&self) -> Posts {
        let mut posts = self.posts.lock().unwrap_or_else(PoisonError::into_inner);
        self.open.store(false, Ordering::SeqCst);
        std::mem::take(&mut *posts)
    }
}

impl fmt::Debug for Inbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbox")
            .field("hub", &self.hub)
            .field("handles", &self.handles.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

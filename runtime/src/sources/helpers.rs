//! Helper threads: where `unblock` runs blocking closures, off the hub.
//!
//! One pool per lane. A job is queued and, unless an idle thread is free to
//! take it, a new thread is started, up to the lane's limit: a burst of N
//! jobs spreads over N threads (within the limit) instead of queueing behind
//! the one thread that happened to be idle. Threads start on first use and
//! exit when the lane is dropped with the hub. A finished job posts its
//! waiter to the hub's inbox; the pool never calls the hub.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;

/// A blocking closure, wrapped with its completion.
pub(crate) type Job = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    /// Threads waiting for a job now.
    idle: usize,
    /// Threads started.
    threads: usize,
    /// Set when the lane is dropped: threads exit once the queue is empty.
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    ready: Condvar,
}

/// One lane of helper threads.
pub(crate) struct Lane {
    name: &'static str,
    limit: usize,
    shared: Arc<Shared>,
}

impl Lane {
    /// A lane of at most `limit` threads named `greenhub-NAME-N`.
    pub(crate) fn new(name: &'static str, limit: usize) -> Lane {
        Lane {
            name,
            limit: limit.max(1),
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                ready: Condvar::new(),
            }),
        }
    }

    /// Queues `job`, starting a thread when no idle one is free for it.
    pub(crate) fn submit(&self, job: Job) -> io::Result<()> {
        let mut state = self.lock();
        let free = state.idle.saturating_sub(state.queue.len());
        if free == 0 && state.threads < self.limit {
            let shared = self.shared.clone();
            thread::Builder::new()
                .name(format!("greenhub-{}-{}", self.name, state.threads))
                .spawn(move || work(&shared))?;
            state.threads += 1;
        }
        state.queue.push_back(job);
        drop(state);
        self.shared.ready.notify_one();
        Ok(())
    }

    /// Threads started so far.
    pub(crate) fn threads(&self) -> usize {
        self.lock().threads
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        self.lock().closed = true;
        self.shared.ready.notify_all();
    }
}

impl fmt::Debug for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lane")
            .field("name", &self.name)
            .field("limit", &self.limit)
            .field("threads", &self.threads())
            .finish()
    }
}

fn work(shared: &Shared) {
    let mut state = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        if let Some(job) = state.queue.pop_front() {
            drop(state);
            job();
            state = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
            continue;
        }
        if state.closed {
            return;
        }
        state.idle += 1;
        state = shared
            .ready
            .wait(state)
            .unwrap_or_else(PoisonError::into_inner);
        state.idle -= 1;
    }
}

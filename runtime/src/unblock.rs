//! `unblock(f)`: run a blocking closure on a helper thread while the calling
//! coroutine parks and the others keep running.
//!
//! Nothing may block the hub's thread, but some calls only come in blocking
//! form: `getaddrinfo` behind a host name is the one the runtime itself needs.
//! The coroutine sends the closure to a small pool of helper threads (started
//! on first use, at most [`MAX_HELPERS`]) and parks. The helper runs it,
//! stores the result, posts the coroutine's waiter to the hub's inbox
//! (`remote.rs`), which wakes the hub's poll through mio's `Waker`; the hub then wakes the
//! coroutine like any other wake source. While a job is pending the hub
//! cannot be deadlocked. See `docs/architecture.md`, "Helper threads".

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

use crate::hub;
use crate::io::outcome_to_io;
use crate::park::{current_waiter, park, Outcome, WaitOn};

/// Helper threads per hub: name resolution and the odd blocking call, not a
/// compute pool.
pub const MAX_HELPERS: usize = 4;

type Job = Box<dyn FnOnce() + Send>;

/// The helper-thread pool of one hub. Threads exit when the hub is dropped
/// (the job channel closes).
#[derive(Debug)]
pub(crate) struct Helpers {
    jobs: Sender<Job>,
    queue: Arc<Mutex<Receiver<Job>>>,
    /// Threads started, and how many of them wait for a job now.
    started: AtomicUsize,
    idle: Arc<AtomicUsize>,
}

impl Helpers {
    pub(crate) fn new() -> Helpers {
        let (jobs, queue) = mpsc::channel();
        Helpers {
            jobs,
            queue: Arc::new(Mutex::new(queue)),
            started: AtomicUsize::new(0),
            idle: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Number of helper threads started so far.
    pub(crate) fn threads(&self) -> usize {
        self.started.load(Ordering::Relaxed)
    }

    fn submit(&self, job: Job) -> io::Result<()> {
        let started = self.started.load(Ordering::Relaxed);
        if self.idle.load(Ordering::Acquire) == 0 && started < MAX_HELPERS {
            let (queue, idle) = (self.queue.clone(), self.idle.clone());
            thread::Builder::new()
                .name(format!("greenhub-helper-{started}"))
                .spawn(move || helper_loop(&queue, &idle))?;
            self.started.store(started + 1, Ordering::Relaxed);
        }
        self.jobs
            .send(job)
            .map_err(|_| io::Error::other("the hub's helper threads have shut down"))
    }
}

fn helper_loop(queue: &Mutex<Receiver<Job>>, idle: &AtomicUsize) {
    loop {
        idle.fetch_add(1, Ordering::Release);
        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        idle.fetch_sub(1, Ordering::Release);
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

/// Runs the blocking closure `f` on a helper thread and parks the calling
/// coroutine until it returns; other coroutines run meanwhile.
///
/// Outside a coroutine, `f` simply runs on the calling thread. Honours
/// enclosing `timeout`s and kills: the coroutine stops waiting (the closure
/// still runs to its end on the helper, and its result is dropped). A panic
/// in `f` is resumed in the caller.
///
/// ```
/// greenhub::run(|| {
///     let addrs = greenhub::unblock(|| std::net::ToSocketAddrs::to_socket_addrs("localhost:80")).unwrap();
///     assert!(addrs.is_ok());
/// });
/// ```
pub fn unblock<F, R>(f: F) -> io::Result<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    if !hub::in_coroutine() {
        return Ok(f());
    }
    let slot = Arc::new(Mutex::new(None));
    let waiter = current_waiter().expect("checked: in a coroutine");
    hub::with(|hub| {
        let (result, remote) = (slot.clone(), hub.remote.clone());
        hub.helpers.submit(Box::new(move || {
            let value = panic::catch_unwind(AssertUnwindSafe(f));
            *result.lock().unwrap_or_else(PoisonError::into_inner) = Some(value);
            remote.complete(waiter);
        }))?;
        hub.core.borrow_mut().pending_unblock += 1;
        Ok::<_, io::Error>(())
    })
    .expect("checked: in a coroutine")?;
    match park(WaitOn::Unblock, None) {
        Outcome::Notified => {}
        other => {
            outcome_to_io(other, "unblock")?;
        }
    }
    let value = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
    match value {
        Some(Ok(value)) => Ok(value),
        Some(Err(payload)) => panic::resume_unwind(payload),
        None => Err(io::Error::other(
            "unblock: woken before the helper thread finished",
        )),
    }
}

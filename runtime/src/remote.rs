//! [`Handle`]: the hub's door for other OS threads (spawn work onto a hub,
//! wake it), on the hub's inbox (`sources/inbox.rs`), which helper threads
//! and remote channels post to as well. While a `Handle` or a remote sender
//! is alive, another thread may still post, so the hub never reports a
//! deadlock.
//!
//! [`Handle::spawn`] returns a [`RemoteJoinHandle`], which is `Send`: the
//! coroutine's outcome goes into a slot behind a `std::sync::Mutex`, and
//! whoever joins waits the way its own thread can. A coroutine of any hub
//! parks, its waiter posted to its own hub's inbox when the outcome comes
//! (as a remote channel's receiver does); a plain thread blocks on a
//! condition variable.

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::hub::park::{kill_unwind, KillSignal, Outcome, WaitOn};
use crate::join_error::JoinError;
use crate::sched::{HubId, NoPark, Waiter};
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
    /// when it next polls. Fails once the hub has shut down. The returned
    /// handle joins it from any thread: parking there if it is a hub's
    /// coroutine, blocking if it is a plain thread. A job sent just before
    /// `main` returned may be dropped unrun, as every coroutine that had not
    /// started by then is; its handle then joins as `Killed`.
    ///
    /// ```
    /// let (handle_tx, handle_rx) = std::sync::mpsc::channel();
    /// let hub = std::thread::spawn(move || {
    ///     greenhub::run(move || {
    ///         handle_tx.send(greenhub::handle()).unwrap();
    ///         greenhub::sleep(std::time::Duration::from_millis(20));
    ///     })
    /// });
    /// let handle = handle_rx.recv().unwrap();
    /// let job = handle.spawn(|| 6 * 7).unwrap();
    /// assert_eq!(job.join(), Ok(42)); // blocks this plain thread
    /// drop(handle);
    /// hub.join().unwrap();
    /// ```
    pub fn spawn<F, T>(&self, f: F) -> Result<RemoteJoinHandle<T>, HubClosed>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.spawn_with(None, false, f)
    }

    /// As [`spawn`](Handle::spawn), on a stack of `stack_size` bytes
    /// (`None`: the 128 KiB of a remote job) and, with `probe`, as an
    /// introspection probe that the hub's `stats` leave out (the runtime's
    /// `stats`, `dump` and `each_hub`).
    pub(crate) fn spawn_with<F, T>(
        &self,
        stack_size: Option<usize>,
        probe: bool,
        f: F,
    ) -> Result<RemoteJoinHandle<T>, HubClosed>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let shared = Arc::new(Shared {
            slot: Mutex::new(Slot {
                outcome: None,
                waiters: Vec::new(),
            }),
            done: Condvar::new(),
        });
        let completion = Completion(shared.clone());
        let job = move || {
            let completion = completion;
            // As in the trampoline of `spawn`: a coroutine killed before its
            // first run (at shutdown, say) drops its closure unrun.
            let killed = crate::context::with(|hub| hub.sched.current_killed()).unwrap_or(true);
            let run = move || {
                if killed {
                    drop(f);
                    None
                } else {
                    Some(f())
                }
            };
            let outcome = match panic::catch_unwind(AssertUnwindSafe(run)) {
                Ok(Some(value)) => Ok(value),
                Ok(None) => Err(JoinError::Killed),
                Err(payload) if payload.is::<KillSignal>() => Err(JoinError::Killed),
                // The panic hook has reported it, naming the coroutine.
                Err(payload) => Err(JoinError::Panicked(crate::hub::panic_message(&*payload))),
            };
            completion.finish(outcome);
        };
        let spawn = crate::sources::inbox::RemoteSpawn {
            job: Box::new(job),
            stack_size,
            probe,
        };
        if self.inbox.spawn(spawn) {
            Ok(RemoteJoinHandle { shared })
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

/// The outcome of a coroutine spawned from another thread, shared with
/// whoever joins it.
struct Shared<T> {
    slot: Mutex<Slot<T>>,
    /// Signalled when the outcome is set, for plain threads.
    done: Condvar,
}

struct Slot<T> {
    outcome: Option<Result<T, JoinError>>,
    /// Coroutines parked in `join`, each with its own hub's inbox.
    waiters: Vec<(Arc<Inbox>, Waiter)>,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, Slot<T>> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Completes the shared slot: with the coroutine's outcome, or, if the job
/// is dropped without running (its hub shut down first), with `Killed`.
struct Completion<T>(Arc<Shared<T>>);

impl<T> Completion<T> {
    fn finish(&self, outcome: Result<T, JoinError>) {
        let waiters = {
            let mut slot = self.0.lock();
            if slot.outcome.is_some() {
                return;
            }
            slot.outcome = Some(outcome);
            std::mem::take(&mut slot.waiters)
        };
        self.0.done.notify_all();
        for (inbox, waiter) in waiters {
            inbox.wake_waiter(waiter);
        }
    }
}

impl<T> Drop for Completion<T> {
    fn drop(&mut self) {
        self.finish(Err(JoinError::Killed));
    }
}

/// Joins a coroutine spawned with [`Handle::spawn`], from any thread. `Send`
/// when `T` is; dropping it detaches the coroutine.
pub struct RemoteJoinHandle<T> {
    shared: Arc<Shared<T>>,
}

impl<T> RemoteJoinHandle<T> {
    /// Waits until the coroutine ends and returns its value: parks the
    /// calling coroutine (on whichever hub it runs; an enclosing `timeout`
    /// gives `JoinError::TimedOut`), or blocks a plain thread. `Killed` if
    /// the coroutine was killed, or its hub shut down before it ran.
    pub fn join(self) -> Result<T, JoinError> {
        self.wait_until(None)?;
        self.shared
            .lock()
            .outcome
            .take()
            .expect("a finished coroutine has an outcome")
    }

    /// Waits at most `timeout` for the coroutine to end, without taking its
    /// value (that is `join`'s): `Err(JoinError::TimedOut)` if it has not
    /// ended by then (it goes on). Like [`JoinHandle::wait_timeout`].
    ///
    /// [`JoinHandle::wait_timeout`]: crate::JoinHandle::wait_timeout
    pub fn wait_timeout(&self, timeout: Duration) -> Result<(), JoinError> {
        self.wait_until(Instant::now().checked_add(timeout))
    }

    /// Whether the coroutine has ended (or will never run).
    pub fn is_finished(&self) -> bool {
        self.shared.lock().outcome.is_some()
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Result<(), JoinError> {
        match crate::context::hub() {
            Some(hub) if hub.sched.current().is_some() => self.park_until(&hub, deadline),
            _ => self.block_until(deadline),
        }
    }

    /// A plain thread (or a hub's thread outside its coroutines) blocks.
    fn block_until(&self, deadline: Option<Instant>) -> Result<(), JoinError> {
        let mut slot = self.shared.lock();
        loop {
            if slot.outcome.is_some() {
                return Ok(());
            }
            slot = match deadline {
                None => self
                    .shared
                    .done
                    .wait(slot)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(JoinError::TimedOut);
                    }
                    self.shared
                        .done
                        .wait_timeout(slot, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }

    /// A coroutine parks, its waiter posted to its own hub when the
    /// outcome comes.
    fn park_until(
        &self,
        hub: &crate::hub::Hub,
        deadline: Option<Instant>,
    ) -> Result<(), JoinError> {
        loop {
            let token = match hub.sched.token() {
                Ok(token) => token,
                Err(NoPark::Killed) => kill_unwind(),
                Err(_) => return Err(JoinError::Killed),
            };
            let waiter = token.waiter();
            {
                let mut slot = self.shared.lock();
                if slot.outcome.is_some() {
                    return Ok(());
                }
                slot.waiters.push((hub.inbox.clone(), waiter));
            }
            // Takes the waiter back however the park ends, even by a kill.
            struct Leave<'a, T>(&'a Shared<T>, Waiter);
            impl<T> Drop for Leave<'_, T> {
                fn drop(&mut self) {
                    self.0.lock().waiters.retain(|(_, w)| *w != self.1);
                }
            }
            let leave = Leave(&self.shared, waiter);
            let outcome = hub.park_with(token, WaitOn::Remote, deadline);
            drop(leave);
            match outcome {
                Outcome::Notified => {}
                Outcome::Deadline | Outcome::Elapsed => return Err(JoinError::TimedOut),
                Outcome::Deadlock(message) => return Err(JoinError::Deadlock(message)),
                Outcome::Refused => return Err(JoinError::Killed),
            }
        }
    }
}

impl<T> fmt::Debug for RemoteJoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteJoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

//! Signal subscriptions: who waits for which Unix signal, and the helper
//! thread that turns the handler's bytes into wakes.
//!
//! The handler (`sys/signal.rs`) writes each caught signal's number into a
//! self-pipe. One process-wide helper thread, `greenhub-signals`, blocks
//! reading that pipe; for each byte it marks the signal pending in every
//! subscription that asked for it and posts each parked subscriber's waiter
//! to its hub's inbox, as a remote channel's send does. A subscription
//! keeps pending signals as a set in arrival order (the kernel coalesces a
//! signal that arrives twice before it is handled, and so does this), so
//! nothing that arrives while its coroutine is busy is lost.
//!
//! The handler for a signal is installed when its first subscription is
//! made and the previous disposition put back when its last one is
//! dropped: with nobody waiting, SIGTERM kills the process again, as it did
//! before. Lock order: the registry, then a subscription.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{self, Read};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};

use crate::sched::Waiter;
use crate::sources::inbox::Inbox;
use crate::sys::signal::{self as handler, Previous};

/// One subscriber's state: the signals it listens for, those caught and not
/// yet taken, and the waiters of the coroutines parked on it (usually one;
/// all are woken, and those that find nothing left park again).
#[derive(Default)]
struct Subscriber {
    signals: Vec<i32>,
    pending: VecDeque<i32>,
    waiters: Vec<(Arc<Inbox>, Waiter)>,
}

/// The process-wide table of subscriptions and installed handlers.
#[derive(Default)]
struct Registry {
    subscribers: Vec<Weak<Mutex<Subscriber>>>,
    /// Signals with a handler installed: how many subscriptions want each,
    /// and the disposition to put back when none does.
    installed: HashMap<i32, (usize, Previous)>,
    /// The reader thread has started (it never stops: it blocks on the
    /// pipe, which costs nothing while no signal comes).
    reader_started: bool,
}

fn registry() -> MutexGuard<'static, Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

fn lock(subscriber: &Mutex<Subscriber>) -> MutexGuard<'_, Subscriber> {
    subscriber.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A set of signals one coroutine (or several, in turn) waits for.
pub(crate) struct Subscription {
    shared: Arc<Mutex<Subscriber>>,
}

impl Subscription {
    /// Subscribes to `signals`, installing their handlers if needed.
    pub(crate) fn new(signals: &[i32]) -> io::Result<Subscription> {
        for &signal in signals {
            handler::check(signal)?;
        }
        let mut registry = registry();
        if !registry.reader_started {
            start_reader()?;
            registry.reader_started = true;
        }
        let mut installed = Vec::new();
        for &signal in signals {
            if let Some((count, _)) = registry.installed.get_mut(&signal) {
                *count += 1;
                installed.push(signal);
                continue;
            }
            match handler::install(signal) {
                Ok(previous) => {
                    registry.installed.insert(signal, (1, previous));
                    installed.push(signal);
                }
                Err(err) => {
                    release(&mut registry, &installed);
                    return Err(err);
                }
            }
        }
        let shared = Arc::new(Mutex::new(Subscriber {
            signals: installed,
            ..Subscriber::default()
        }));
        registry.subscribers.retain(|weak| weak.strong_count() > 0);
        registry.subscribers.push(Arc::downgrade(&shared));
        Ok(Subscription { shared })
    }

    /// The oldest pending signal, if any.
    pub(crate) fn take(&self) -> Option<i32> {
        lock(&self.shared).pending.pop_front()
    }

    /// Registers a parked coroutine's waiter, unless a signal is pending
    /// already (false: take it instead of parking).
    pub(crate) fn park(&self, inbox: Arc<Inbox>, waiter: Waiter) -> bool {
        let mut state = lock(&self.shared);
        if !state.pending.is_empty() {
            return false;
        }
        state.waiters.push((inbox, waiter));
        true
    }

    /// The park ended: forget its waiter if no signal took it.
    pub(crate) fn unpark(&self, waiter: Waiter) {
        lock(&self.shared).waiters.retain(|(_, w)| *w != waiter);
    }

    /// The signals subscribed to.
    pub(crate) fn signals(&self) -> Vec<i32> {
        lock(&self.shared).signals.clone()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let signals = std::mem::take(&mut lock(&self.shared).signals);
        let mut registry = registry();
        release(&mut registry, &signals);
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.shared);
        f.debug_struct("Subscription")
            .field("signals", &state.signals)
            .field("pending", &state.pending)
            .finish()
    }
}

/// Drops one subscription's claim on each of `signals`, putting back the
/// previous disposition of those nobody waits for any more.
fn release(registry: &mut Registry, signals: &[i32]) {
    for signal in signals {
        let Some((count, _)) = registry.installed.get_mut(signal) else {
            continue;
        };
        *count -= 1;
        if *count == 0 {
            if let Some((_, previous)) = registry.installed.remove(signal) {
                handler::restore(*signal, &previous);
            }
        }
    }
}

/// Creates the self-pipe and the thread that reads it.
fn start_reader() -> io::Result<()> {
    let (mut reader, writer) = io::pipe()?;
    let write_fd = std::os::fd::IntoRawFd::into_raw_fd(writer);
    // The handler must never block: a full pipe drops the byte instead.
    crate::sys::os::set_nonblocking(write_fd, true)?;
    handler::set_pipe(write_fd); // kept open for the life of the process
    std::thread::Builder::new()
        .name("greenhub-signals".into())
        .spawn(move || {
            let mut bytes = [0u8; 64];
            loop {
                match reader.read(&mut bytes) {
                    Ok(0) => return,
                    Ok(n) => bytes[..n].iter().for_each(|&b| deliver(i32::from(b))),
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return,
                }
            }
        })?;
    Ok(())
}

/// One caught signal: mark it pending where it is wanted, wake the parked.
fn deliver(signal: i32) {
    let mut wakes = Vec::new();
    {
        let registry = registry();
        for subscriber in registry.subscribers.iter().filter_map(Weak::upgrade) {
            let mut state = lock(&subscriber);
            if !state.signals.contains(&signal) {
                continue;
            }
            if !state.pending.contains(&signal) {
                state.pending.push_back(signal);
            }
            wakes.append(&mut state.waiters);
        }
    }
    for (inbox, waiter) in wakes {
        inbox.wake_waiter(waiter);
    }
}

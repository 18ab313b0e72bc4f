//! The blocking monitor (gevent's `max_blocking_time`): a thread that notices
//! a coroutine running too long without parking, which stalls every other
//! coroutine, timer and socket of its hub, and logs a warning naming it.
//!
//! Off by default. When on, the hub publishes two atomics per switch (a
//! switch counter and the running coroutine's id); the monitor thread samples
//! them every quarter of the threshold. Names are recorded at spawn, only
//! when the monitor is on. When off, the switch path pays one `is_some` test.
//! The warning goes to the `log` crate when a logger takes warnings, and to
//! stderr otherwise, so it is never lost for want of a logger.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// `running` when the hub itself runs (polling, or idle).
const IDLE: u64 = u64::MAX;

/// The hub's side of the monitor; the thread stops when it is dropped.
#[derive(Debug)]
pub(crate) struct Monitor {
    shared: Arc<Shared>,
    /// The monitor thread, unparked when the monitor is dropped so that it
    /// ends at once instead of at its next sample.
    thread: thread::Thread,
}

#[derive(Debug)]
struct Shared {
    switches: AtomicU64,
    running: AtomicU64,
    names: Mutex<HashMap<u64, String>>,
    stop: AtomicBool,
    threshold: Duration,
}

impl Monitor {
    pub(crate) fn start(threshold: Duration) -> std::io::Result<Monitor> {
        let shared = Arc::new(Shared {
            switches: AtomicU64::new(0),
            running: AtomicU64::new(IDLE),
            names: Mutex::new(HashMap::new()),
            stop: AtomicBool::new(false),
            threshold,
        });
        let watched = shared.clone();
        let thread = thread::Builder::new()
            .name("greenhub-monitor".into())
            .spawn(move || watch(&watched))?
            .thread()
            .clone();
        Ok(Monitor { shared, thread })
    }

    /// The hub is about to resume coroutine `id`.
    pub(crate) fn enter(&self, id: u64) {
        self.shared.switches.fetch_add(1, Ordering::Relaxed);
        self.shared.running.store(id, Ordering::Relaxed);
    }

    /// The coroutine parked or returned.
    pub(crate) fn leave(&self) {
        self.shared.running.store(IDLE, Ordering::Relaxed);
    }

    pub(crate) fn named(&self, id: u64, name: String) {
        self.shared
            .names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, name);
    }

    pub(crate) fn finished(&self, id: u64) {
        self.shared
            .names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.thread.unpark();
    }
}

fn watch(shared: &Shared) {
    let tick = (shared.threshold / 4).max(Duration::from_millis(1));
    // The switch last seen running, when it was first seen, and whether it
    // was already reported.
    let mut seen: Option<(u64, Instant, bool)> = None;
    loop {
        // Unparked early only by the drop (or spuriously: then this sample
        // is early, and the elapsed times below stay true).
        thread::park_timeout(tick);
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        let running = shared.running.load(Ordering::Relaxed);
        let switch = shared.switches.load(Ordering::Relaxed);
        if running == IDLE {
            seen = None;
            continue;
        }
        match &mut seen {
            Some((last, since, reported)) if *last == switch => {
                let ran = since.elapsed();
                if !*reported && ran >= shared.threshold {
                    *reported = true;
                    let names = shared.names.lock().unwrap_or_else(PoisonError::into_inner);
                    let name = names
                        .get(&running)
                        .cloned()
                        .unwrap_or_else(|| format!("coroutine-{running}"));
                    warn(&format!(
                        "coroutine '{name}' (id {running}) has run for {} ms without parking, blocking its hub \
                         (max_blocking_time {} ms)",
                        ran.as_millis(),
                        shared.threshold.as_millis()
                    ));
                }
            }
            _ => seen = Some((switch, Instant::now(), false)),
        }
    }
}

/// A warning through `log` if a logger takes it, else on stderr.
fn warn(message: &str) {
    if log::log_enabled!(log::Level::Warn) {
        log::warn!("{message}");
    } else {
        eprintln!("greenhub: {message}");
    }
}

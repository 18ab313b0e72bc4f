//! The article's "classical approach", for contrast: one OS thread per
//! client, each with the same client code on std sockets, and the cron on a
//! thread of its own. There is no shared pool (the pool belongs to one hub's
//! thread); the same three figures are counted across threads.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use greenhub_redis::prelude::*;
use greenhub_redis::{Connection, ConnectionInfo};

use crate::limits;
use crate::report::{CronGaps, Summary, Tally};
use crate::Config;

/// A client thread's stack: the client needs a few KiB, and 10,000 threads
/// with the default 2 MiB would reserve 20 GiB of address space.
const CLIENT_STACK: usize = 256 * 1024;

#[derive(Debug, Default)]
struct Counters {
    created: AtomicUsize,
    in_use: AtomicUsize,
}

/// Holds every client thread after it connected, until all have: then the
/// one-second wait starts with all N parked in BRPOP, as in coroutines mode
/// (where spawning is instant). Without it, the first threads would be done
/// before the last ones were created.
#[derive(Debug, Default)]
struct Gate {
    /// Threads that arrived, and whether the gate is open.
    state: Mutex<(usize, bool)>,
    changed: Condvar,
}

impl Gate {
    fn arrive_and_wait(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.0 += 1;
        self.changed.notify_all();
        while !state.1 {
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn open_when(&self, arrived: usize) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while state.0 < arrived {
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.1 = true;
        self.changed.notify_all();
    }
}

/// Runs the experiment with one OS thread per client.
pub(crate) fn run(config: &Config, url: &str) -> Summary {
    let info = ConnectionInfo::from_url(url).unwrap_or_else(|err| panic!("bad Redis URL: {err}"));
    let gaps = Arc::new(CronGaps::default());
    let stop = Arc::new(AtomicBool::new(false));
    let cron = {
        let (gaps, stop, interval) = (gaps.clone(), stop.clone(), config.cron_interval);
        thread::Builder::new()
            .name("cron".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    log::info!("Hello from cron thread.");
                    gaps.tick();
                    thread::sleep(interval);
                }
            })
            .expect("spawn the cron thread")
    };

    if config.dump_after.is_some() {
        log::warn!("--dump-after shows coroutines; threads mode has none, so it is ignored");
    }
    log::info!("Spawning {} threads connecting to Redis...", config.clients);
    let start = Instant::now();
    let tally = Arc::new(Tally::default());
    let counters = Arc::new(Counters::default());
    let gate = Arc::new(Gate::default());
    let mut clients = Vec::with_capacity(config.clients);
    for _ in 0..config.clients {
        let (info, client_tally, counters, gate) =
            (info.clone(), tally.clone(), counters.clone(), gate.clone());
        let (key, timeout) = (config.key.clone(), config.timeout);
        let spawned = thread::Builder::new()
            .name("ask_redis".into())
            .stack_size(CLIENT_STACK)
            .spawn(move || ask_redis(&info, &key, timeout, &counters, &gate, &client_tally));
        match spawned {
            Ok(handle) => clients.push(handle),
            Err(err) => tally.error(&format_args!("cannot spawn a thread: {err}")),
        }
    }

    // Wait until all threads have started and connected, then one second.
    gate.open_when(clients.len());
    thread::sleep(Duration::from_secs(1));
    let os_threads = limits::os_threads();
    let (created, in_use) = (
        counters.created.load(Ordering::SeqCst),
        counters.in_use.load(Ordering::SeqCst),
    );
    log::info!("# active OS threads: {os_threads}");
    log::info!("# Redis connections created: {created}");
    log::info!("# Redis connections in use: {in_use}");
    log::info!("# Redis connections available: 0");
    log::info!("Waiting for Redis connection threads to terminate...");
    for client in clients {
        if client.join().is_err() {
            tally.error(&"a client thread panicked");
        }
    }
    let duration = start.elapsed();
    log::info!(
        "All Redis connection threads terminated. Duration: {:.2} s.",
        duration.as_secs_f64()
    );
    stop.store(true, Ordering::Relaxed);
    let _ = cron.join();

    let (nil_replies, errors, _) = tally.totals();
    let peak_in_use = tally.peak_held();
    Summary {
        mode: "threads",
        hubs: 0,
        clients: config.clients,
        timeout_s: config.timeout,
        duration,
        max_cron_gap: gaps.max_gap(),
        os_threads,
        nodes: None,
        created,
        in_use,
        available: 0,
        peak_in_use,
        nil_replies,
        errors,
        peak_rss_kib: limits::peak_rss_kib(),
    }
}

/// The same client code as in a coroutine, blocking this thread instead.
fn ask_redis(
    info: &ConnectionInfo,
    key: &str,
    timeout: f64,
    counters: &Counters,
    gate: &Gate,
    tally: &Tally,
) {
    let connecting = Instant::now();
    let connected = Connection::open(info);
    gate.arrive_and_wait();
    let mut conn = match connected {
        Ok(conn) => conn,
        Err(err) => return tally.error(&err),
    };
    tally.connected(connecting.elapsed());
    counters.created.fetch_add(1, Ordering::SeqCst);
    counters.in_use.fetch_add(1, Ordering::SeqCst);
    match conn.brpop(&[key], timeout) {
        Ok(None) => tally.nil(),
        Ok(Some(_)) => tally.error(&format_args!(
            "BRPOP returned an element instead of nil: is {key:?} in use?"
        )),
        Err(err) => tally.error(&err),
    }
    drop(conn);
    counters.in_use.fetch_sub(1, Ordering::SeqCst);
    tally.released();
}

//! What the experiment measures, shared by both modes: the cron coroutine's
//! (or thread's) gaps, each client's outcome, and the one-line summary.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The largest interval between two consecutive cron lines.
#[derive(Debug, Default)]
pub(crate) struct CronGaps {
    /// The last tick and the largest gap so far.
    state: Mutex<(Option<Instant>, Duration)>,
}

impl CronGaps {
    /// Records a cron line now.
    pub(crate) fn tick(&self) {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(last) = state.0 {
            state.1 = state.1.max(now - last);
        }
        state.0 = Some(now);
    }

    /// The largest gap seen.
    pub(crate) fn max_gap(&self) -> Duration {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).1
    }
}

/// How the clients fared.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    state: Mutex<TallyState>,
}

#[derive(Debug, Default)]
struct TallyState {
    nil: usize,
    errors: usize,
    /// Distinct error messages already logged (the rest are only counted).
    reported: Vec<String>,
    slowest_connect: Duration,
    /// Clients holding a connection now, and the most at once.
    holding: usize,
    peak_holding: usize,
}

/// Distinct error messages logged in full; more are only counted.
const REPORTED_ERRORS: usize = 5;

impl Tally {
    /// A BRPOP returned nil, as expected on an empty list.
    pub(crate) fn nil(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).nil += 1;
    }

    /// A client failed: counted, and logged the first time its message is seen.
    pub(crate) fn error(&self, err: &dyn fmt::Display) {
        let message = err.to_string();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.errors += 1;
        if state.reported.len() < REPORTED_ERRORS && !state.reported.contains(&message) {
            log::error!("a client failed: {message}");
            state.reported.push(message);
        }
    }

    /// A client got its connection, which took `took`; it holds it until
    /// [`Tally::released`].
    pub(crate) fn connected(&self, took: Duration) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.slowest_connect = state.slowest_connect.max(took);
        state.holding += 1;
        state.peak_holding = state.peak_holding.max(state.holding);
    }

    /// A client that [`Tally::connected`] gave its connection back (its
    /// BRPOP returned).
    pub(crate) fn released(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.holding = state.holding.saturating_sub(1);
    }

    /// The most clients that held a connection at once: each its own, so
    /// this many connections were open at once.
    pub(crate) fn peak_held(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .peak_holding
    }

    /// Nil replies, errors, and the slowest connect.
    pub(crate) fn totals(&self) -> (usize, usize, Duration) {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        (state.nil, state.errors, state.slowest_connect)
    }
}

/// The demo's last line: one machine-readable summary.
#[derive(Debug)]
pub(crate) struct Summary {
    /// `coroutines` or `threads`.
    pub(crate) mode: &'static str,
    /// Hubs the clients ran on (`--hubs`; 1 without it, 0 in threads mode).
    pub(crate) hubs: usize,
    /// Clients started.
    pub(crate) clients: usize,
    /// BRPOP's timeout, seconds.
    pub(crate) timeout_s: f64,
    /// From the first spawn to the last client's end.
    pub(crate) duration: Duration,
    /// Largest interval between two cron lines.
    pub(crate) max_cron_gap: Duration,
    /// OS threads of the process, after the one-second wait.
    pub(crate) os_threads: u64,
    /// The cluster's masters (`--cluster`), or `None` for one server.
    pub(crate) nodes: Option<usize>,
    /// The pool's figures after the one-second wait (summed over the
    /// nodes, for a cluster).
    pub(crate) created: usize,
    /// Connections in use then.
    pub(crate) in_use: usize,
    /// Idle connections then.
    pub(crate) available: usize,
    /// The most clients holding their own connection at once, over the
    /// whole run.
    pub(crate) peak_in_use: usize,
    /// BRPOPs that returned nil.
    pub(crate) nil_replies: usize,
    /// Clients that failed.
    pub(crate) errors: usize,
    /// The process's peak resident memory.
    pub(crate) peak_rss_kib: u64,
}

impl Summary {
    /// Whether every client got the nil reply it should.
    pub(crate) fn success(&self) -> bool {
        self.errors == 0 && self.nil_replies == self.clients
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "summary: mode={} hubs={} clients={} timeout_s={} duration_s={:.3} max_cron_gap_s={:.3} os_threads={} ",
            self.mode,
            self.hubs,
            self.clients,
            self.timeout_s,
            self.duration.as_secs_f64(),
            self.max_cron_gap.as_secs_f64(),
            self.os_threads,
        )?;
        if let Some(nodes) = self.nodes {
            write!(f, "nodes={nodes} ")?;
        }
        write!(
            f,
            "created={} in_use={} available={} peak_in_use={} nil_replies={} errors={} peak_rss_kib={}",
            self.created,
            self.in_use,
            self.available,
            self.peak_in_use,
            self.nil_replies,
            self.errors,
            self.peak_rss_kib
        )
    }
}

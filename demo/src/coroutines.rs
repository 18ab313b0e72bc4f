//! The article's experiment in coroutines: one OS thread, one hub, `cron`
//! and N `ask_redis` coroutines, each holding its own pooled connection
//! parked in `BRPOP key timeout`.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use greenhub::sync::Semaphore;
use greenhub_redis::prelude::*;
use greenhub_redis::Client;

use crate::limits;
use crate::report::{CronGaps, Summary, Tally};
use crate::Config;

/// Connects in flight at once. Each connect is a SYN in the server's accept
/// queue until it accepts; pacing them keeps the queue from overflowing
/// (an overflow drops the SYN, and the retry waits a one-second TCP timer).
pub(crate) const CONNECTS_IN_FLIGHT: usize = 256;
/// A connect slower than this waited for a retransmit: said out loud.
pub(crate) const SLOW_CONNECT: Duration = Duration::from_millis(500);

/// Runs the experiment on this thread's new hub.
pub(crate) fn run(config: &Config, url: &str) -> Summary {
    let (config, url) = (config.clone(), url.to_owned());
    greenhub::run(move || experiment(&config, &url))
}

fn experiment(config: &Config, url: &str) -> Summary {
    let redis = Client::open(url).unwrap_or_else(|err| panic!("bad Redis URL: {err}"));
    let gaps = Arc::new(CronGaps::default());
    let cron = {
        let (gaps, interval) = (gaps.clone(), config.cron_interval);
        greenhub::Builder::new()
            .name("cron")
            .spawn(move || cron(&gaps, interval))
            .expect("spawn cron")
    };

    if let Some(after) = config.dump_after {
        greenhub::Builder::new()
            .name("dump")
            .spawn(move || {
                greenhub::sleep(after);
                greenhub::dump().log();
            })
            .expect("spawn dump");
    }

    log::info!(
        "Spawning {} coroutines connecting to Redis...",
        config.clients
    );
    let start = Instant::now();
    let tally = Rc::new(Tally::default());
    let pacing = Semaphore::new(CONNECTS_IN_FLIGHT);
    let mut clients = Vec::with_capacity(config.clients);
    for _ in 0..config.clients {
        let (redis, client_tally, pacing) = (redis.clone(), tally.clone(), pacing.clone());
        let (key, timeout) = (config.key.clone(), config.timeout);
        let spawned = greenhub::Builder::new()
            .name("ask_redis")
            .spawn(move || ask_redis(&redis, &key, timeout, &pacing, &client_tally));
        match spawned {
            Ok(handle) => clients.push(handle),
            Err(err) => tally.error(&format_args!("cannot spawn a coroutine: {err}")),
        }
    }

    // Wait until all coroutines have started and connected.
    greenhub::sleep(Duration::from_secs(1));
    let os_threads = limits::os_threads();
    let stats = redis.stats();
    log::info!("# active OS threads: {os_threads}");
    log::info!("# Redis connections created: {}", stats.created);
    log::info!("# Redis connections in use: {}", stats.in_use);
    log::info!("# Redis connections available: {}", stats.available);
    log::info!("Waiting for Redis connection coroutines to terminate...");
    for client in clients {
        if let Err(err) = client.join() {
            tally.error(&err);
        }
    }
    let duration = start.elapsed();
    log::info!(
        "All Redis connection coroutines terminated. Duration: {:.2} s.",
        duration.as_secs_f64()
    );
    cron.kill();

    let (nil_replies, errors, slowest_connect) = tally.totals();
    if slowest_connect > SLOW_CONNECT {
        log::warn!(
            "the slowest connect took {:.3} s: a connection attempt was dropped and retried",
            slowest_connect.as_secs_f64()
        );
    }
    Summary {
        mode: "coroutines",
        hubs: 1,
        clients: config.clients,
        timeout_s: config.timeout,
        duration,
        max_cron_gap: gaps.max_gap(),
        os_threads,
        created: stats.created,
        in_use: stats.in_use,
        available: stats.available,
        nil_replies,
        errors,
        peak_rss_kib: limits::peak_rss_kib(),
    }
}

/// One client: take a connection (paced), then BRPOP on the empty list.
pub(crate) fn ask_redis(
    redis: &Client,
    key: &str,
    timeout: f64,
    pacing: &Semaphore,
    tally: &Tally,
) {
    let permit = pacing.acquire();
    let connecting = Instant::now();
    let mut conn = match redis.get_connection() {
        Ok(conn) => conn,
        Err(err) => return tally.error(&err),
    };
    tally.connected(connecting.elapsed());
    drop(permit);
    // BRPOP returns (key, value) or nil; the list stays empty, so nil.
    match conn.brpop(&[key], timeout) {
        Ok(None) => tally.nil(),
        Ok(Some((_, value))) => tally.error(&format_args!(
            "BRPOP returned an element ({:?}) instead of nil: is the list {key:?} in use?",
            String::from_utf8_lossy(&value)
        )),
        Err(err) => tally.error(&err),
    }
}

pub(crate) fn cron(gaps: &CronGaps, interval: Duration) {
    loop {
        log::info!("Hello from cron coroutine.");
        gaps.tick();
        greenhub::sleep(interval);
    }
}

//! The experiment on `--hubs N`: a `greenhub::Runtime` of N hubs on N OS
//! threads, the clients dealt round robin over the hubs. Each hub builds its
//! own client (and pool) from one `ClientFactory`, paces its own connects,
//! and after one second reports its pool's figures to `main`, which sums
//! them: the summary's `created` etc. are totals over the hubs, and its
//! `os_threads` counts the N hub threads. `cron` runs on hub 0, as `main`
//! does. See `docs/multi-hub.md`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use greenhub::sync::Semaphore;
use greenhub_redis::{ClientFactory, PoolStats};

use crate::coroutines::{ask_redis, cron, log_pools, warn_if_slow, Target, CONNECTS_IN_FLIGHT};
use crate::limits;
use crate::report::{CronGaps, Summary, Tally};
use crate::Config;

/// How often a hub whose connects outlast the first second looks again.
const CONNECT_POLL: Duration = Duration::from_millis(10);

/// Runs the experiment on `hubs` hubs; this thread is hub 0.
pub(crate) fn run(config: &Config, url: &str, hubs: usize) -> Summary {
    let factory = ClientFactory::open(url).unwrap_or_else(|err| panic!("bad Redis URL: {err}"));
    let runtime = greenhub::Runtime::builder()
        .hubs(hubs)
        .thread_name("hub")
        .build()
        .unwrap_or_else(|err| panic!("cannot start {hubs} hubs: {err}"));
    let handle = runtime.handle();
    let config = config.clone();
    runtime.block_on(move || experiment(&config, &factory, &handle))
}

fn experiment(
    config: &Config,
    factory: &ClientFactory,
    runtime: &greenhub::RuntimeHandle,
) -> Summary {
    let hubs = runtime.hubs();
    let gaps = Arc::new(CronGaps::default());
    let cron = {
        let (gaps, interval) = (gaps.clone(), config.cron_interval);
        greenhub::Builder::new()
            .name("cron")
            .spawn(move || cron(&gaps, interval))
            .expect("spawn cron")
    };
    if let Some(after) = config.dump_after {
        let runtime = runtime.clone();
        greenhub::Builder::new()
            .name("dump")
            .spawn(move || {
                greenhub::sleep(after);
                for (hub, dump) in runtime.dump().into_iter().enumerate() {
                    log::info!("hub {hub}:");
                    dump.unwrap_or_default().log();
                }
            })
            .expect("spawn dump");
    }

    log::info!(
        "Spawning {} coroutines connecting to Redis on {hubs} hubs...",
        config.clients
    );
    let start = Instant::now();
    let tally = Arc::new(Tally::default());
    let (stats_tx, stats_rx) = greenhub::sync::remote_channel::<PoolStats>();
    let shares: Vec<_> = (0..hubs)
        .filter_map(|hub| {
            // Clients hub, hub + N, hub + 2N, ...
            let clients = (config.clients + hubs - 1 - hub) / hubs;
            let (factory, share_tally, stats_tx) =
                (factory.clone(), tally.clone(), stats_tx.clone());
            let (key, timeout) = (config.key.clone(), config.timeout);
            let share = move || {
                share(
                    clients,
                    hubs,
                    &factory,
                    &key,
                    timeout,
                    &share_tally,
                    &stats_tx,
                )
            };
            match runtime.spawn_on(hub, share) {
                Ok(job) => Some(job),
                Err(err) => {
                    tally.error(&format_args!("cannot start hub {hub}'s clients: {err}"));
                    None
                }
            }
        })
        .collect();
    drop(stats_tx);

    // Each hub reports its pool one second after it spawned its clients.
    let mut stats = PoolStats::default();
    for _ in 0..shares.len() {
        match stats_rx.recv() {
            Ok(hub) => stats = stats + hub,
            Err(err) => tally.error(&format_args!("a hub did not report its pool: {err}")),
        }
    }
    let os_threads = limits::os_threads();
    log::info!("# active OS threads: {os_threads} ({hubs} hubs)");
    log_pools(&stats);
    for share in shares {
        if let Err(err) = share.join() {
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
    warn_if_slow(slowest_connect);
    Summary {
        mode: "coroutines",
        hubs,
        clients: config.clients,
        timeout_s: config.timeout,
        duration,
        max_cron_gap: gaps.max_gap(),
        os_threads,
        nodes: None,
        created: stats.created,
        in_use: stats.in_use,
        available: stats.available,
        peak_in_use: tally.peak_held(),
        nil_replies,
        errors,
        peak_rss_kib: limits::peak_rss_kib(),
    }
}

/// One hub's share of the clients, on that hub: its own client and pool,
/// its own connect pacing (the hubs' together stay at
/// [`CONNECTS_IN_FLIGHT`]); reports the pool after one second, then waits
/// for its clients.
fn share(
    clients: usize,
    hubs: usize,
    factory: &ClientFactory,
    key: &str,
    timeout: f64,
    tally: &Arc<Tally>,
    stats: &greenhub::sync::RemoteSender<PoolStats>,
) {
    let redis = factory.client();
    let pacing = Semaphore::new(CONNECTS_IN_FLIGHT.div_ceil(hubs));
    let mut handles = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (redis, pacing, key) = (redis.clone(), pacing.clone(), key.to_owned());
        let client_tally = tally.clone();
        let spawned = greenhub::Builder::new().name("ask_redis").spawn(move || {
            ask_redis(
                &Target::Server(redis),
                &key,
                timeout,
                &pacing,
                &client_tally,
            )
        });
        match spawned {
            Ok(handle) => handles.push(handle),
            Err(err) => tally.error(&format_args!("cannot spawn a coroutine: {err}")),
        }
    }
    // Wait until this hub's coroutines have started and connected: the
    // article's one second, longer while connects are still under way on a
    // loaded machine (but not past BRPOP's timeout, when clients begin to
    // finish and the snapshot would mean nothing).
    let started = Instant::now();
    greenhub::sleep(Duration::from_secs(1));
    let until = started + Duration::from_secs_f64(timeout);
    while redis.stats().created < clients && Instant::now() < until {
        greenhub::sleep(CONNECT_POLL);
    }
    // The receiver is `main`, alive until every hub has reported.
    let _ = stats.send(redis.stats());
    for handle in handles {
        if let Err(err) = handle.join() {
            tally.error(&err);
        }
    }
}

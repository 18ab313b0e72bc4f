//! The article's experiment in coroutines: one OS thread, one hub, `cron`
//! and N `ask_redis` coroutines, each holding its own pooled connection
//! parked in `BRPOP key timeout`.
//!
//! Against one server the clients share a [`Client`] and all wait on `key`.
//! Against a cluster (`--cluster`) they share a [`ClusterClient`] and client
//! i waits on `key:i`, so that the keys spread over every master; each
//! client checks a connection out of its key's master's pool
//! (`ClusterClient::get_connection_for_key`) and holds it for its one
//! BRPOP, and the figures are the sums over the masters, with a line per
//! master before them.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use greenhub::sync::Semaphore;
use greenhub_redis::cluster::ClusterClient;
use greenhub_redis::prelude::*;
use greenhub_redis::{Client, PoolStats};

use crate::report::{CronGaps, Summary, Tally};
use crate::Config;
use crate::{cluster, limits};

/// Connects in flight at once. Each connect is a SYN in the server's accept
/// queue until it accepts; pacing them keeps the queue from overflowing
/// (an overflow drops the SYN, and the retry waits a one-second TCP timer).
pub(crate) const CONNECTS_IN_FLIGHT: usize = 256;
/// A connect slower than this waited for a retransmit: said out loud.
pub(crate) const SLOW_CONNECT: Duration = Duration::from_millis(500);

/// What the clients talk to.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    /// One server: every client waits on `key`.
    Server(Client),
    /// A cluster: client i waits on `key:i`.
    Cluster(ClusterClient),
}

/// Runs the experiment on this thread's new hub.
pub(crate) fn run(config: &Config, url: &str) -> Summary {
    let (config, url) = (config.clone(), url.to_owned());
    let observe = config.observe.clone();
    let (summary, trace) = observe.hub().run(|| {
        let console = observe.console();
        let redis = Client::open(&url).unwrap_or_else(|err| panic!("bad Redis URL: {err}"));
        let summary = experiment(&config, &Target::Server(redis));
        drop(console);
        (summary, observe.stop())
    });
    observe.write(trace.as_ref(), summary.clients);
    summary
}

/// Runs the experiment against the cluster that `urls` belong to, after
/// loading its slot map and checking that each master has room for the
/// clients whose keys it serves.
pub(crate) fn run_cluster(config: &Config, urls: &[String]) -> Result<Summary, String> {
    let (config, urls) = (config.clone(), urls.to_vec());
    let observe = config.observe.clone();
    let (summary, trace) = observe.hub().run(|| {
        let console = observe.console();
        let summary = (|| {
            let client =
                ClusterClient::open(&urls).map_err(|err| format!("bad cluster URL: {err}"))?;
            client.refresh_slots().map_err(|err| {
                format!(
                    "cannot load the slot map from {}: {err} (is it a Redis Cluster node?)",
                    urls.join(", ")
                )
            })?;
            cluster::check_capacity(&client, &urls[0], &client_keys(&config))?;
            Ok(experiment(&config, &Target::Cluster(client)))
        })();
        drop(console);
        (summary, observe.stop())
    });
    if let Ok(summary) = &summary {
        observe.write(trace.as_ref(), summary.clients);
    }
    summary
}

/// The keys of the clients of a cluster: `key:i` for client i.
fn client_keys(config: &Config) -> Vec<String> {
    (0..config.clients)
        .map(|i| format!("{}:{i}", config.key))
        .collect()
}

fn experiment(config: &Config, redis: &Target) -> Summary {
    let keys = match redis {
        Target::Server(_) => vec![config.key.clone(); config.clients],
        Target::Cluster(_) => client_keys(config),
    };
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
    for key in keys {
        let (redis, client_tally, pacing) = (redis.clone(), tally.clone(), pacing.clone());
        let timeout = config.timeout;
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
    let (stats, nodes) = match redis {
        Target::Server(client) => (client.stats(), None),
        Target::Cluster(cluster) => (cluster_stats(cluster), Some(cluster.masters().len())),
    };
    log::info!("# active OS threads: {os_threads}");
    log_pools(&stats);
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
    let peak_in_use = tally.peak_held();
    warn_if_slow(slowest_connect);
    Summary {
        mode: "coroutines",
        hubs: 1,
        clients: config.clients,
        timeout_s: config.timeout,
        duration,
        max_cron_gap: gaps.max_gap(),
        os_threads,
        nodes,
        created: stats.created,
        in_use: stats.in_use,
        available: stats.available,
        peak_in_use,
        nil_replies,
        errors,
        peak_rss_kib: limits::peak_rss_kib(),
    }
}

/// The pool figures of the snapshot, the article's three lines, and the
/// line that starts the wait for the clients.
pub(crate) fn log_pools(stats: &PoolStats) {
    log::info!("# Redis connections created: {}", stats.created);
    log::info!("# Redis connections in use: {}", stats.in_use);
    log::info!("# Redis connections available: {}", stats.available);
    log::info!("Waiting for Redis connection coroutines to terminate...");
}

/// Says so when a connect waited for a retransmit (a dropped SYN).
pub(crate) fn warn_if_slow(slowest_connect: Duration) {
    if slowest_connect > SLOW_CONNECT {
        log::warn!(
            "the slowest connect took {:.3} s: a connection attempt was dropped and retried",
            slowest_connect.as_secs_f64()
        );
    }
}

/// The cluster's figures: a line per master, and the sums over the
/// masters. A replica's pool holds no client's connection (nothing reads
/// from replicas): at most the connection that loaded the slot map from a
/// replica given as the seed, which is not a client's.
fn cluster_stats(cluster: &ClusterClient) -> PoolStats {
    let stats = cluster.stats();
    let mut total = PoolStats::default();
    for node in stats.nodes.iter().filter(|node| node.master) {
        log::info!(
            "# Redis node {} (master): connections created {}, in use {}, available {}",
            node.addr,
            node.pool.created,
            node.pool.in_use,
            node.pool.available
        );
        total.created += node.pool.created;
        total.in_use += node.pool.in_use;
        total.available += node.pool.available;
    }
    total
}

/// One client: take a connection (paced), then BRPOP on the empty list.
pub(crate) fn ask_redis(
    redis: &Target,
    key: &str,
    timeout: f64,
    pacing: &Semaphore,
    tally: &Tally,
) {
    let permit = pacing.acquire();
    let connecting = Instant::now();
    // BRPOP returns (key, value) or nil; the list stays empty, so nil.
    let reply = match redis {
        Target::Server(client) => {
            let mut conn = match client.get_connection() {
                Ok(conn) => conn,
                Err(err) => return tally.error(&err),
            };
            tally.connected(connecting.elapsed());
            drop(permit);
            conn.brpop(&[key], timeout)
        }
        Target::Cluster(cluster) => {
            // The key's master's pool gives this client its own connection,
            // held until its BRPOP returns: one BRPOP on the wire, nothing
            // before it.
            let mut conn = match cluster.get_connection_for_key(key) {
                Ok(conn) => conn,
                Err(err) => return tally.error(&err),
            };
            tally.connected(connecting.elapsed());
            drop(permit);
            conn.brpop(&[key], timeout)
        }
    };
    // The connection went back to its pool when the arm ended.
    tally.released();
    match reply {
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

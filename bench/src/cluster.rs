//! The Redis Cluster suites: `cluster-get` (GETs through `ClusterClient`
//! on a private 3-master cluster, beside `redis-benchmark --cluster` on the
//! same cluster and the plain single-node figures, in the same run) and
//! `cluster-brpop` (the demo's experiment with 10,000 clients on a private
//! cluster, beside the same on one private server).
//!
//! The cluster is the test harness's (`greenhub_tests::RedisCluster`: six
//! nodes, `redis-cli --cluster create`), started once per suite; the demo
//! starts its own (`--redis private-cluster`).

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use greenhub_redis::cluster::ClusterClient;
use greenhub_redis::prelude::*;
use greenhub_redis::{cmd, pipe, Client};
use greenhub_tests::{RedisCluster, RedisServer};

use crate::measure::{cpu_time, interleaved, Stat};
use crate::{Report, RUNS};

/// Concurrent clients, as in the `get` suite.
const CLIENTS: usize = 50;

/// CPU µs per request, and requests per second.
type Cost = (f64, f64);

fn cost(requests: usize, cpu: Duration, wall: Duration) -> Cost {
    (
        cpu.as_secs_f64() * 1e6 / requests as f64,
        requests as f64 / wall.as_secs_f64(),
    )
}

/// Each client's key: `key:small:i`, so the 50 spread over the masters
/// (as `redis-benchmark --cluster` spreads its clients over them).
fn key(i: usize) -> String {
    format!("key:small:{i}")
}

/// 50 coroutines sharing one `ClusterClient`, each GETting its own key
/// (in pipelines of `depth`): every call is routed by its key's slot and
/// checks a connection out of that master's pool.
fn get_cluster(urls: &[String], requests: usize, depth: usize) -> Cost {
    let urls = urls.to_vec();
    greenhub::run(move || {
        let cluster = ClusterClient::open(&urls).unwrap();
        for i in 0..CLIENTS {
            cluster.clone().set(key(i), "xxx").unwrap();
        }
        let per_client = requests / CLIENTS;
        let cpu0 = cpu_time(false);
        let start = Instant::now();
        let workers: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let mut cluster = cluster.clone();
                greenhub::spawn(move || {
                    let get = cmd("GET").arg(key(i)).clone();
                    let mut batch = pipe();
                    for _ in 0..depth {
                        batch.cmd("GET").arg(key(i));
                    }
                    for _ in 0..per_client / depth {
                        if depth == 1 {
                            let _: Vec<u8> = get.query(&mut cluster).unwrap();
                        } else {
                            let _: Vec<Vec<u8>> = batch.query(&mut cluster).unwrap();
                        }
                    }
                })
            })
            .collect();
        workers.into_iter().for_each(|w| w.join().unwrap());
        cost(requests, cpu_time(false) - cpu0, start.elapsed())
    })
}

/// The same on one server through a `Client`: a checkout per call, as the
/// cluster client does (the `get` suite's figure holds one connection per
/// coroutine instead; it is the next row).
fn get_client(url: &str, requests: usize) -> Cost {
    let url = url.to_owned();
    greenhub::run(move || {
        let client = Client::open(&url).unwrap();
        for i in 0..CLIENTS {
            client.clone().set(key(i), "xxx").unwrap();
        }
        let cpu0 = cpu_time(false);
        let start = Instant::now();
        let workers: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let mut client = client.clone();
                greenhub::spawn(move || {
                    let get = cmd("GET").arg(key(i)).clone();
                    for _ in 0..requests / CLIENTS {
                        let _: Vec<u8> = get.query(&mut client).unwrap();
                    }
                })
            })
            .collect();
        workers.into_iter().for_each(|w| w.join().unwrap());
        cost(requests, cpu_time(false) - cpu0, start.elapsed())
    })
}

/// redis-benchmark's own CPU (from the OS) and throughput; `cluster` adds
/// `--cluster` (its clients spread over the masters, each on keys its
/// master serves).
fn redis_benchmark(port: u16, requests: usize, depth: usize, cluster: bool) -> Cost {
    let cpu0 = cpu_time(true);
    let start = Instant::now();
    let mut command = Command::new("redis-benchmark");
    command
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-c", &CLIENTS.to_string(), "-n", &requests.to_string()])
        .args(["-t", "get", "-q", "-P", &depth.to_string()]);
    if cluster {
        command.arg("--cluster");
    }
    let status = command
        .stdout(Stdio::null())
        .status()
        .expect("redis-benchmark on PATH (it comes with redis-server)");
    assert!(status.success(), "redis-benchmark failed");
    cost(requests, cpu_time(true) - cpu0, start.elapsed())
}

/// `cluster-get`: 50 clients GETting small values, on a private 3-master
/// cluster and on one server, one request at a time and in pipelines of 16.
pub(crate) fn get(quick: bool) -> Report {
    let requests = if quick { 20_000 } else { 200_000 };
    let cluster = RedisCluster::start();
    let urls = cluster.urls();
    let cluster_port = cluster.master_ports()[0];
    let server = RedisServer::start();
    let (url, port) = (server.url(), server.addr().port());
    let mut report = Report::new(
        "cluster-get",
        &format!(
            "50 clients, {requests} GETs of a 3-byte value: a private cluster of 3 masters \
             (and 3 replicas) beside one server, over loopback TCP"
        ),
    );
    report.header(&[
        "client",
        "against",
        "client CPU µs per request",
        "requests per second",
    ]);
    let rows: [(&str, &str, &dyn Fn() -> Cost); 7] = [
        ("greenhub ClusterClient, 50 coroutines", "cluster", &|| {
            get_cluster(&urls, requests, 1)
        }),
        ("redis-benchmark --cluster -c 50", "cluster", &|| {
            redis_benchmark(cluster_port, requests, 1, true)
        }),
        (
            "greenhub Client, 50 coroutines, a checkout per call",
            "one server",
            &|| get_client(&url, requests),
        ),
        (
            "greenhub, 50 coroutines on their own connections (as in `get`)",
            "one server",
            &|| crate::redis::get_greenhub(&url, requests, 1),
        ),
        ("redis-benchmark -c 50", "one server", &|| {
            redis_benchmark(port, requests, 1, false)
        }),
        (
            "greenhub ClusterClient, pipelines of 16",
            "cluster",
            &|| get_cluster(&urls, requests, 16),
        ),
        ("redis-benchmark --cluster -P 16", "cluster", &|| {
            redis_benchmark(cluster_port, requests, 16, true)
        }),
    ];
    let systems: Vec<&dyn Fn() -> Cost> = rows.iter().map(|r| r.2).collect();
    let results = if quick {
        systems.iter().map(|s| vec![s()]).collect()
    } else {
        interleaved(&systems)
    };
    let mut medians = Vec::new();
    for ((name, against, _), runs) in rows.iter().zip(results) {
        let cpu = Stat::of(runs.iter().map(|r| r.0).collect());
        let rate = Stat::of(runs.iter().map(|r| r.1).collect());
        report.row(&[name, against, &cpu.to_string(), &rate.to_string()]);
        medians.push((cpu.median, rate.median));
    }
    for (i, key) in [
        "cluster_greenhub",
        "cluster_redis_benchmark",
        "single_client",
        "single_greenhub",
        "single_redis_benchmark",
        "cluster_pipelined_greenhub",
        "cluster_pipelined_redis_benchmark",
    ]
    .iter()
    .enumerate()
    {
        report.field(&format!("{key}_cpu_us"), medians[i].0);
        report.field(&format!("{key}_rps"), medians[i].1);
    }
    report.target(
        "ClusterClient CPU per GET ≤ redis-benchmark --cluster's",
        medians[0].0 <= medians[1].0,
        format!(
            "{:.2} µs vs {:.2} µs ({:.2}×)",
            medians[0].0,
            medians[1].0,
            medians[0].0 / medians[1].0
        ),
    );
    report.note(&format!(
        "ClusterClient minus Client with the same checkout per call: {:+.2} µs of CPU per GET, \
         the cost of routing (finding the key, its slot, its master in the map). The checkout \
         itself is the gap between the two single-server greenhub rows. On one machine the \
         cluster's three masters share the two cores with the clients, so the cluster rows \
         measure the client's cost, not a cluster's capacity.",
        medians[0].0 - medians[2].0
    ));
    if quick {
        report.note("--quick: one run each");
    }
    report
}

/// The `key=value` fields of one demo run's summary line.
fn demo_summary(args: &[&str]) -> HashMap<String, String> {
    let out = Command::new(crate::sibling("demo"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("REDIS_URL")
        .output()
        .expect("run the demo (cargo build --release -p demo)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(
        out.status.success() && summary.starts_with("summary:"),
        "demo {args:?} failed: {stdout}"
    );
    summary
        .trim_start_matches("summary: ")
        .split(' ')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// `cluster-brpop`: the demo with N clients in BRPOP 1 on a private cluster
/// (client i on `list:i`), beside the same on one private server.
pub(crate) fn brpop(quick: bool) -> Report {
    let clients = if quick { 500 } else { 10_000 };
    let runs = if quick { 1 } else { RUNS };
    let n = clients.to_string();
    let mut report = Report::new(
        "cluster-brpop",
        &format!(
            "the demo with {clients} clients in BRPOP 1, cron every 0.2 s: on a private cluster \
             of 3 masters over TCP, and on one private server over its Unix socket"
        ),
    );
    report.header(&[
        "against",
        "N",
        "duration s",
        "max cron gap s",
        "connected at 1 s",
        "peak RSS MiB",
    ]);
    for (name, field, redis, cluster) in [
        (
            "private cluster (3 masters)",
            "cluster",
            "private-cluster",
            true,
        ),
        ("one private server", "single", "private", false),
    ] {
        let mut results = Vec::new();
        for _ in 0..runs {
            if clients >= 5000 {
                // TIME_WAIT and teardown from the last big run skew the next.
                std::thread::sleep(Duration::from_secs(4));
            }
            let mut args = vec!["--clients", &n, "--redis", redis];
            if cluster {
                args.push("--cluster");
            }
            let s = demo_summary(&args);
            let number = |key: &str| s[key].parse::<f64>().unwrap_or(f64::NAN);
            assert_eq!(
                (number("errors"), number("nil_replies")),
                (0.0, clients as f64),
                "every client got its nil reply: {s:?}"
            );
            results.push((
                number("duration_s"),
                number("max_cron_gap_s"),
                number("created"),
                number("peak_rss_kib") / 1024.0,
            ));
        }
        let stat =
            |pick: fn(&(f64, f64, f64, f64)) -> f64| Stat::of(results.iter().map(pick).collect());
        let (duration, gap, connected, rss) =
            (stat(|r| r.0), stat(|r| r.1), stat(|r| r.2), stat(|r| r.3));
        report.row(&[
            name,
            &n,
            &duration.to_string(),
            &gap.to_string(),
            &format!("{:.0}", connected.median),
            &rss.to_string(),
        ]);
        report.field(&format!("{field}_n{clients}_duration_s"), duration.median);
        report.field(&format!("{field}_n{clients}_cron_gap_s"), gap.median);
        report.field(
            &format!("{field}_n{clients}_connected_at_1s"),
            connected.median,
        );
    }
    report.note(
        "\"Connected at 1 s\" is the pool total at the demo's one-second snapshot (summed over \
         the masters for the cluster). Against the cluster every client checks out its own \
         connection to its key's master (ClusterClient::get_connection_for_key), paced at 256 \
         connects in flight, then sends its one BRPOP on it; the time beyond the BRPOP second \
         is those TCP connects, with three masters and the demo sharing two cores.",
    );
    report
}

//! The Redis suites: `brpop` (the demo's experiment, both modes, several N)
//! and `get` (request/response throughput and client CPU against
//! redis-benchmark and against OS threads).

use std::process::Command;
use std::time::{Duration, Instant};

use greenhub_redis::prelude::*;
use greenhub_redis::{cmd, pipe, Client, Connection, ConnectionInfo};

use crate::measure::{cpu_time, sys_time_and_switches, Stat};
use crate::{Report, RUNS};

/// One summary line of the demo, as numbers.
fn demo_run(mode: &str, clients: usize) -> (f64, f64, f64) {
    let out = Command::new(crate::sibling("demo"))
        .args([
            "--mode",
            mode,
            "--clients",
            &clients.to_string(),
            "--redis",
            "private",
        ])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run the demo (cargo build --release -p demo)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(
        out.status.success() && summary.starts_with("summary:"),
        "demo failed: {stdout}"
    );
    let field = |key: &str| -> f64 {
        summary
            .split(' ')
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    (
        field("duration_s"),
        field("max_cron_gap_s"),
        field("peak_rss_kib"),
    )
}

/// `brpop`: the demo's experiment at several client counts, in both modes.
pub(crate) fn brpop(quick: bool) -> (Report, Vec<crate::Series>) {
    let counts: &[usize] = if quick {
        &[500]
    } else {
        &[500, 2000, 5000, 10_000]
    };
    let runs = if quick { 1 } else { RUNS };
    let mut report = Report::new(
        "brpop",
        "the demo: N clients in BRPOP 1 on a private Redis (Unix socket), cron every 0.2 s",
    );
    report.header(&[
        "mode",
        "N",
        "duration s",
        "max cron gap s",
        "peak RSS MiB",
        "RSS per connection KiB",
    ]);
    let empty = Stat::of((0..runs).map(|_| demo_run("coroutines", 1).2).collect()).median;
    let mut series = Vec::new();
    for mode in ["coroutines", "threads"] {
        let mut points = Vec::new();
        for &n in counts {
            let mut results = Vec::new();
            for _ in 0..runs {
                if n >= 5000 {
                    // TIME_WAIT and server teardown from the last big run skew the next.
                    std::thread::sleep(Duration::from_secs(4));
                }
                results.push(demo_run(mode, n));
            }
            let duration = Stat::of(results.iter().map(|r| r.0).collect());
            let gap = Stat::of(results.iter().map(|r| r.1).collect());
            let rss = Stat::of(results.iter().map(|r| r.2 / 1024.0).collect());
            let per_conn = (rss.median * 1024.0 - empty) / n as f64;
            report.row(&[
                mode,
                &n.to_string(),
                &duration.to_string(),
                &gap.to_string(),
                &rss.to_string(),
                &format!("{per_conn:.1}"),
            ]);
            report.field(&format!("{mode}_n{n}_duration_s"), duration.median);
            report.field(&format!("{mode}_n{n}_cron_gap_s"), gap.median);
            report.field(&format!("{mode}_n{n}_kib_per_conn"), per_conn);
            points.push((n as f64, duration.median, rss.median));
            if mode == "coroutines" && n == 10_000 {
                report.target(
                    "N = 10,000: duration ≤ 1.30 s",
                    duration.median <= 1.30,
                    format!("{:.3} s", duration.median),
                );
                report.target(
                    "N = 10,000: cron max gap ≤ 0.21 s",
                    gap.median <= 0.21,
                    format!("{:.3} s", gap.median),
                );
                report.target(
                    "N = 10,000: ≤ 6 KiB RSS per connection",
                    per_conn <= 6.0,
                    format!("{per_conn:.1} KiB"),
                );
            }
        }
        series.push((mode.to_owned(), points));
    }
    report.note("At 10,000 the time beyond the BRPOP second goes to 10,000 Unix-socket connects, with Redis accepting on its one thread, and to Redis answering 10,000 timeouts at once. Runs vary by ±30 ms.");
    (report, series)
}

/// A private redis-server on a free TCP port, killed on drop.
pub(crate) struct Server {
    child: std::process::Child,
    pub(crate) port: u16,
    dir: std::path::PathBuf,
}

impl Server {
    pub(crate) fn start() -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("greenhub-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server on PATH (scripts/test.sh installs it)");
        let info = ConnectionInfo::from_url(&format!("redis://127.0.0.1:{port}")).unwrap();
        let start = Instant::now();
        while Connection::open(&info).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        Server { child, port, dir }
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// CPU µs per request, and requests per second.
type Cost = (f64, f64);

/// Of the last `get_greenhub` run: the share of its CPU time spent in the
/// kernel, and context switches per request. Nearly all of a GET's client
/// CPU is the kernel's loopback TCP path, and a hub that sleeps in
/// `epoll_wait` between replies pays a wake-up each time: these two tell a
/// busier machine from a costlier client when the CPU figure moves.
static GREENHUB_DETAIL: std::sync::Mutex<(f64, f64)> = std::sync::Mutex::new((0.0, 0.0));

/// 50 coroutines, one connection each, GETs (in pipelines of `depth`).
pub(crate) fn get_greenhub(url: &str, requests: usize, depth: usize) -> Cost {
    let url = url.to_owned();
    greenhub::run(move || {
        let client = Client::open(&url).unwrap();
        client.clone().set("key:small", "xxx").unwrap();
        let per_client = requests / 50;
        let cpu0 = cpu_time(false);
        let (sys0, switches0) = sys_time_and_switches();
        let start = Instant::now();
        let workers: Vec<_> = (0..50)
            .map(|_| {
                let client = client.clone();
                greenhub::spawn(move || {
                    let mut conn = client.get_connection().unwrap();
                    let mut batch = pipe();
                    for _ in 0..depth {
                        batch.cmd("GET").arg("key:small");
                    }
                    let get = cmd("GET").arg("key:small").clone();
                    for _ in 0..per_client / depth {
                        if depth == 1 {
                            let _: Vec<u8> = get.query(&mut *conn).unwrap();
                        } else {
                            let _: Vec<Vec<u8>> = batch.query(&mut *conn).unwrap();
                        }
                    }
                })
            })
            .collect();
        workers.into_iter().for_each(|w| w.join().unwrap());
        let (wall, cpu) = (start.elapsed(), cpu_time(false) - cpu0);
        let (sys, switches) = sys_time_and_switches();
        *GREENHUB_DETAIL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = (
            (sys - sys0).as_secs_f64() / cpu.as_secs_f64().max(1e-9),
            (switches - switches0) as f64 / requests as f64,
        );
        (
            cpu.as_secs_f64() * 1e6 / requests as f64,
            requests as f64 / wall.as_secs_f64(),
        )
    })
}

/// The same with 50 OS threads on std sockets.
fn get_threads(url: &str, requests: usize) -> Cost {
    let info = ConnectionInfo::from_url(url).unwrap();
    let cpu0 = cpu_time(false);
    let start = Instant::now();
    let threads: Vec<_> = (0..50)
        .map(|_| {
            let info = info.clone();
            std::thread::spawn(move || {
                let mut conn = Connection::open(&info).unwrap();
                let get = cmd("GET").arg("key:small").clone();
                for _ in 0..requests / 50 {
                    let _: Vec<u8> = get.query(&mut conn).unwrap();
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    let (wall, cpu) = (start.elapsed(), cpu_time(false) - cpu0);
    (
        cpu.as_secs_f64() * 1e6 / requests as f64,
        requests as f64 / wall.as_secs_f64(),
    )
}

/// redis-benchmark's own CPU (from the OS) and throughput.
fn get_redis_benchmark(port: u16, requests: usize, depth: usize) -> Cost {
    let cpu0 = cpu_time(true);
    let start = Instant::now();
    let status = Command::new("redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-c",
            "50",
            "-n",
            &requests.to_string(),
            "-t",
            "get",
            "-q",
        ])
        .args(["-P", &depth.to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("redis-benchmark on PATH (it comes with redis-server)");
    assert!(status.success());
    let (wall, cpu) = (start.elapsed(), cpu_time(true) - cpu0);
    (
        cpu.as_secs_f64() * 1e6 / requests as f64,
        requests as f64 / wall.as_secs_f64(),
    )
}

/// System calls per request of the greenhub client, counted by strace.
fn syscalls_per_request(url: &str, requests: usize) -> Option<f64> {
    let out_file =
        std::env::temp_dir().join(format!("greenhub-bench-strace-{}", std::process::id()));
    let status = Command::new("strace")
        .args(["-f", "-c", "-o"])
        .arg(&out_file)
        .arg(crate::sibling("bench"))
        .args(["get-child", url, &requests.to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .ok()?;
    let text = std::fs::read_to_string(&out_file).ok()?;
    let _ = std::fs::remove_file(&out_file);
    if !status.success() {
        return None;
    }
    let total: f64 = text
        .lines()
        .find(|l| l.trim_end().ends_with("total"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()?;
    Some(total / requests as f64)
}

/// `get`: 50 clients doing GETs of a small key, one request at a time and in
/// pipelines of 16.
pub(crate) fn get(quick: bool) -> (Report, Vec<(String, f64)>) {
    let requests = if quick { 20_000 } else { 200_000 };
    let server = Server::start();
    let url = server.url();
    let mut report = Report::new(
        "get",
        &format!("50 clients, {requests} GETs of a 3-byte value over loopback TCP"),
    );
    report.header(&["client", "client CPU µs per request", "requests per second"]);
    let mut plot = Vec::new();
    let mut medians = Vec::new();
    let mut detail = Vec::new();
    for (name, depth) in [
        ("greenhub, 50 coroutines", 1),
        ("redis-benchmark -c 50", 1),
        ("50 OS threads (std sockets)", 1),
        ("greenhub, pipelines of 16", 16),
        ("redis-benchmark -P 16", 16),
    ] {
        let runs: Vec<Cost> = (0..RUNS)
            .map(|_| match name {
                n if n.starts_with("greenhub") => {
                    let cost = get_greenhub(&url, requests, depth);
                    if depth == 1 {
                        detail.push(
                            *GREENHUB_DETAIL
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner),
                        );
                    }
                    cost
                }
                n if n.starts_with("redis-benchmark") => {
                    get_redis_benchmark(server.port, requests, depth)
                }
                _ => get_threads(&url, requests),
            })
            .collect();
        let cpu = Stat::of(runs.iter().map(|r| r.0).collect());
        let rate = Stat::of(runs.iter().map(|r| r.1).collect());
        report.row(&[name, &cpu.to_string(), &rate.to_string()]);
        plot.push((name.to_owned(), cpu.median));
        medians.push((cpu.median, rate.median));
    }
    let (ours, bench, threads) = (medians[0], medians[1], medians[2]);
    report.field("greenhub_cpu_us", ours.0);
    report.field("redis_benchmark_cpu_us", bench.0);
    report.field("threads_cpu_us", threads.0);
    report.field("greenhub_rps", ours.1);
    report.field("redis_benchmark_rps", bench.1);
    report.field("pipelined_greenhub_rps", medians[3].1);
    report.field(
        "greenhub_sys_share",
        Stat::of(detail.iter().map(|d| d.0).collect()).median,
    );
    report.field(
        "greenhub_switches_per_request",
        Stat::of(detail.iter().map(|d| d.1).collect()).median,
    );
    report.target(
        "client CPU per request ≤ 0.5× redis-benchmark's",
        ours.0 <= 0.5 * bench.0,
        format!(
            "{:.2} µs vs {:.2} µs ({:.2}×)",
            ours.0,
            bench.0,
            ours.0 / bench.0
        ),
    );
    report.target(
        "throughput ≥ 1.7× redis-benchmark's",
        ours.1 >= 1.7 * bench.1,
        format!("{:.2}×", ours.1 / bench.1),
    );
    match syscalls_per_request(&url, requests) {
        Some(calls) => {
            report.row(&[
                "greenhub system calls per request (strace -c -f)",
                &format!("{calls:.2}"),
                "",
            ]);
            report.field("syscalls_per_request", calls);
            report.target(
                "≤ 2.1 system calls per request",
                calls <= 2.1,
                format!("{calls:.2}"),
            );
        }
        None => report.note("strace is not installed: system calls were not counted"),
    }
    (report, plot)
}

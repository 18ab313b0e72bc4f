//! The `get-tls` suite: GET over TLS (`rediss://`) beside plain GET, and
//! `redis-benchmark --tls` beside plain `redis-benchmark`, in the same run
//! against the same server (one `redis-server` with a plaintext port and a
//! `--tls-port`, certificates made for the run by the test harness's
//! `TlsServer`). What TLS costs is the difference between the pairs.

use std::process::Command;
use std::time::Instant;

use greenhub_tests::TlsServer;

use crate::measure::{cpu_time, Stat};
use crate::redis::get_greenhub;
use crate::{Report, RUNS};

/// redis-benchmark's CPU per request (µs) and requests per second, 50
/// connections, over TLS with the server's CA if `tls`.
fn redis_benchmark(server: &TlsServer, requests: usize, tls: bool) -> (f64, f64) {
    let mut command = Command::new("redis-benchmark");
    command.args(["-h", "127.0.0.1", "-c", "50", "-t", "get", "-q"]);
    command.args(["-n", &requests.to_string()]);
    if tls {
        command.args(["-p", &server.tls_port().to_string(), "--tls", "--cacert"]);
        command.arg(&server.files().ca);
    } else {
        command.args(["-p", &server.plain().addr().port().to_string()]);
    }
    let cpu0 = cpu_time(true);
    let start = Instant::now();
    let status = command
        .stdout(std::process::Stdio::null())
        .status()
        .expect("redis-benchmark on PATH (it comes with redis-server)");
    assert!(status.success(), "redis-benchmark failed");
    let (wall, cpu) = (start.elapsed(), cpu_time(true) - cpu0);
    (
        cpu.as_secs_f64() * 1e6 / requests as f64,
        requests as f64 / wall.as_secs_f64(),
    )
}

/// `get-tls`: 50 clients doing GETs of a small key, plaintext and over TLS.
pub(crate) fn get_tls(quick: bool) -> Report {
    let requests = if quick { 20_000 } else { 200_000 };
    let server = TlsServer::start(false);
    let plain_url = server.plain().url();
    let tls_url = server.url(false);
    let mut report = Report::new(
        "get-tls",
        &format!(
            "50 clients, {requests} GETs of a 3-byte value, plaintext and over TLS (loopback)"
        ),
    );
    report.header(&["client", "client CPU µs per request", "requests per second"]);
    let mut medians = Vec::new();
    for name in [
        "greenhub, 50 coroutines, plaintext",
        "greenhub, 50 coroutines, TLS",
        "redis-benchmark -c 50, plaintext",
        "redis-benchmark -c 50 --tls",
    ] {
        let tls = name.ends_with("TLS") || name.ends_with("--tls");
        let runs: Vec<(f64, f64)> = (0..if quick { 1 } else { RUNS })
            .map(|_| match (name.starts_with("greenhub"), tls) {
                (true, false) => get_greenhub(&plain_url, requests, 1),
                (true, true) => get_greenhub(&tls_url, requests, 1),
                (false, tls) => redis_benchmark(&server, requests, tls),
            })
            .collect();
        let cpu = Stat::of(runs.iter().map(|r| r.0).collect());
        let rate = Stat::of(runs.iter().map(|r| r.1).collect());
        report.row(&[name, &cpu.to_string(), &rate.to_string()]);
        medians.push((cpu.median, rate.median));
    }
    let [plain, tls, bench_plain, bench_tls] = medians[..] else {
        unreachable!("four rows")
    };
    report.field("greenhub_plain_cpu_us", plain.0);
    report.field("greenhub_tls_cpu_us", tls.0);
    report.field("redis_benchmark_plain_cpu_us", bench_plain.0);
    report.field("redis_benchmark_tls_cpu_us", bench_tls.0);
    report.field("greenhub_plain_rps", plain.1);
    report.field("greenhub_tls_rps", tls.1);
    report.field("redis_benchmark_plain_rps", bench_plain.1);
    report.field("redis_benchmark_tls_rps", bench_tls.1);
    report.target(
        "TLS client CPU per request ≤ redis-benchmark --tls's",
        tls.0 <= bench_tls.0,
        format!(
            "{:.2} µs vs {:.2} µs ({:.2}×)",
            tls.0,
            bench_tls.0,
            tls.0 / bench_tls.0
        ),
    );
    report.note(&format!(
        "Every row opens its 50 connections inside the timed part, so the TLS rows include 50 \
         handshakes each: a small share of {requests} requests."
    ));
    report
}

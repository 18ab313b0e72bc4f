//! greenhub's benchmark suite: each scenario beside its baseline, in the same
//! run, since this machine is shared and noisy. Figures are medians of
//! several runs with min–max.
//!
//! `cargo run --release -p bench -- <suite>|all [--quick] [--write]`
//!
//! Suites: `switch`, `spawn`, `parked`, `timers` (`micro.rs`; `switch` and
//! `spawn` beside the floor prototype of `floor.rs` and the may and Tokio
//! peers of `peers.rs`), `brpop`, `get` (`redis.rs`, which needs
//! `redis-server` and `redis-benchmark`, and `strace` for the system-call
//! count), `get-tls` (`tls.rs`: GET over TLS beside plain GET and
//! `redis-benchmark --tls`), `echo` (`echo.rs`, beside Tokio, may and OS
//! threads), `cluster-get` and `cluster-brpop` (`cluster.rs`: GETs through
//! `ClusterClient` beside `redis-benchmark --cluster` and one server, and the
//! demo's 10,000 clients on a private cluster; they need `redis-cli` too),
//! `trace` (`trace.rs`: the recorder off, recording, and the console open)
//! and `hubs` (`multi.rs`: a `Runtime` of 1 and N hubs beside Tokio
//! multi-thread and may with N workers, on echo, CPU-bound echo and GET). `--quick`
//! shrinks every suite to a smoke test (CI runs that); `--write` (with
//! `all`) rewrites `docs/benchmarks.md` and its SVG plots. Each suite ends
//! with one machine-readable line: `bench: suite=NAME key=value ...`.

mod cluster;
mod echo;
mod floor;
mod measure;
mod micro;
mod multi;
mod peers;
mod redis;
mod svg;
mod tls;
mod trace;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

/// One mode's `brpop` results: `(clients, duration s, peak RSS MiB)` points.
pub(crate) type Series = (String, Vec<(f64, f64, f64)>);

/// Runs of each measurement; the median is reported, with min–max.
pub(crate) const RUNS: usize = 3;

/// One suite's results: a table, machine-readable fields and its targets.
#[derive(Debug)]
pub(crate) struct Report {
    name: &'static str,
    title: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    fields: Vec<(String, f64)>,
    targets: Vec<(String, bool, String)>,
    notes: Vec<String>,
}

impl Report {
    pub(crate) fn new(name: &'static str, title: &str) -> Report {
        Report {
            name,
            title: title.to_owned(),
            header: vec!["measurement".into(), "median (min–max)".into()],
            rows: Vec::new(),
            fields: Vec::new(),
            targets: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub(crate) fn header(&mut self, columns: &[&str]) {
        self.header = columns.iter().map(|c| c.to_string()).collect();
    }

    pub(crate) fn row(&mut self, cells: &[&str]) {
        self.rows
            .push(cells.iter().map(|c| c.to_string()).collect());
    }

    pub(crate) fn field(&mut self, key: &str, value: f64) {
        self.fields.push((key.to_owned(), value));
    }

    pub(crate) fn target(&mut self, what: &str, met: bool, measured: String) {
        self.targets.push((what.to_owned(), met, measured));
    }

    pub(crate) fn note(&mut self, note: &str) {
        self.notes.push(note.to_owned());
    }

    /// `bench: suite=NAME key=value ...`
    fn line(&self) -> String {
        let mut line = format!("bench: suite={}", self.name);
        for (key, value) in &self.fields {
            let _ = write!(line, " {key}={}", trim(*value));
        }
        line
    }

    fn markdown(&self) -> String {
        let mut out = format!("## `{}`: {}\n\n", self.name, self.title);
        let _ = writeln!(out, "| {} |", self.header.join(" | "));
        let _ = writeln!(out, "|{}", " --- |".repeat(self.header.len()));
        for row in &self.rows {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        if !self.targets.is_empty() {
            out.push_str("\n| target | measured | met |\n| --- | --- | --- |\n");
            for (what, met, measured) in &self.targets {
                let _ = writeln!(
                    out,
                    "| {what} | {measured} | {} |",
                    if *met { "yes" } else { "**no**" }
                );
            }
        }
        for note in &self.notes {
            let _ = writeln!(out, "\n{note}");
        }
        let _ = writeln!(out, "\n`{}`\n", self.line());
        out
    }
}

fn trim(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A binary built beside this one (`demo`, or this one again).
pub(crate) fn sibling(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the bench's own path");
    exe.parent().expect("a directory").join(name)
}

/// Runs this binary again with `args` (a fresh process, so memory figures do
/// not mix) and returns what it printed.
pub(crate) fn child(args: &[&str]) -> String {
    let out = Command::new(std::env::current_exe().expect("own path"))
        .args(args)
        .output()
        .expect("run a child bench");
    assert!(
        out.status.success(),
        "child {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

const SUITES: [&str; 12] = [
    "switch",
    "spawn",
    "parked",
    "timers",
    "brpop",
    "get",
    "get-tls",
    "echo",
    "cluster-get",
    "cluster-brpop",
    "trace",
    "hubs",
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("parked-child") => {
            println!("{}", micro::parked_child(args[1].parse().expect("a count")));
            return ExitCode::SUCCESS;
        }
        Some("parked-floor-child") => {
            println!(
                "{}",
                micro::touch_floor_per_sec(args[1].parse().expect("a count"))
            );
            return ExitCode::SUCCESS;
        }
        Some("console-paired") => {
            // The `trace` suite's targets alone: `console-paired yielding|sockets`.
            return match trace::paired_line(args.get(1).map(String::as_str)) {
                Ok(line) => {
                    println!("{line}");
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("{err}");
                    ExitCode::FAILURE
                }
            };
        }
        Some("hubs-may-child") => {
            println!("{}", multi::may_child(&args[1..]));
            return ExitCode::SUCCESS;
        }
        Some("get-child") => {
            // An optional third argument: the pipeline depth (1 if absent).
            let depth = args.get(3).map_or(1, |d| d.parse().expect("a depth"));
            let _ = redis::get_greenhub(&args[1], args[2].parse().expect("a count"), depth);
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let quick = args.iter().any(|a| a == "--quick");
    let write = args.iter().any(|a| a == "--write");
    let chosen: Vec<&str> = match args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map(String::as_str)
    {
        Some("all") | None => SUITES.to_vec(),
        Some(name) if SUITES.contains(&name) => vec![name],
        Some(other) => {
            eprintln!(
                "unknown suite {other:?}; suites: {} or all",
                SUITES.join(", ")
            );
            return ExitCode::from(2);
        }
    };
    if write && (quick || chosen.len() != SUITES.len()) {
        eprintln!(
            "--write rewrites docs/benchmarks.md and needs the full run: `all` without --quick"
        );
        return ExitCode::from(2);
    }
    let load_before = load_average();
    let mut reports = Vec::new();
    let mut brpop_series = Vec::new();
    let mut get_bars = Vec::new();
    for suite in chosen {
        eprintln!("running {suite}...");
        let report = match suite {
            "switch" => micro::switch(quick),
            "spawn" => micro::spawn(quick),
            "parked" => micro::parked(quick),
            "timers" => micro::timers(quick),
            "trace" => trace::trace(quick),
            "brpop" => {
                let (report, series) = redis::brpop(quick);
                brpop_series = series;
                report
            }
            "get" => {
                let (report, bars) = redis::get(quick);
                get_bars = bars;
                report
            }
            "get-tls" => tls::get_tls(quick),
            "cluster-get" => cluster::get(quick),
            "cluster-brpop" => cluster::brpop(quick),
            "hubs" => multi::hubs(quick),
            _ => echo::echo(quick),
        };
        print!("{}", report.markdown());
        println!("{}", report.line());
        reports.push(report);
    }
    if write {
        let load = format!("{load_before} at the start, {} at the end", load_average());
        write_docs(&reports, &brpop_series, &get_bars, &load);
    }
    ExitCode::SUCCESS
}

/// The one-minute load average (`/proc/loadavg`): how busy the machine was
/// with other work, for the reader of the figures.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// `docs/benchmarks.md` and its plots.
fn write_docs(reports: &[Report], brpop: &[Series], get: &[(String, f64)], load: &str) {
    let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs");
    let line = |index: usize| -> Vec<(&str, Vec<(f64, f64)>)> {
        brpop
            .iter()
            .map(|(mode, points)| {
                (
                    mode.as_str(),
                    points
                        .iter()
                        .map(|p| (p.0, if index == 1 { p.1 } else { p.2 }))
                        .collect(),
                )
            })
            .collect()
    };
    let plots = [
        (
            "bench-brpop-duration.svg",
            svg::line_chart(
                "BRPOP 1 experiment: duration",
                "clients",
                "seconds",
                &line(1),
            ),
        ),
        (
            "bench-brpop-memory.svg",
            svg::line_chart(
                "BRPOP 1 experiment: peak memory",
                "clients",
                "MiB",
                &line(2),
            ),
        ),
        (
            "bench-get-cpu.svg",
            svg::bar_chart("Client CPU per GET (50 clients)", "µs", get),
        ),
    ];
    for (name, svg) in &plots {
        std::fs::write(docs.join(name), svg).expect("write a plot");
    }
    let mut md = String::from(
        "# Benchmarks\n\n\
         Measured by `cargo run --release -p bench -- all --write`, which wrote this page. Each scenario \
         runs beside its baseline in the same run (this machine is shared and noisy), three times; \
         figures are medians with min–max. Machine: 2 cores, 24 GiB, Linux 6.18, Redis 7.0.15. \
         Run one suite with `cargo run --release -p bench -- SUITE` (`switch`, `spawn`, `parked`, \
         `timers`, `brpop`, `get`, `get-tls`, `echo`, `cluster-get`, `cluster-brpop`, `trace`, `hubs`). First-touch memory and network figures vary by up to \
         ±12% from run to run on these VMs.\n\n",
    );
    md.push_str(&format!(
        "This run's one-minute load average (other work on the 2 cores): {load}.\n\n\
         ![duration](bench-brpop-duration.svg)\n![memory](bench-brpop-memory.svg)\n![cpu](bench-get-cpu.svg)\n\n"
    ));
    for report in reports {
        md.push_str(&report.markdown());
    }
    std::fs::write(docs.join("benchmarks.md"), md).expect("write docs/benchmarks.md");
    eprintln!("wrote docs/benchmarks.md and {} plots", plots.len());
}

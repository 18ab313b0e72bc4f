//! The demo: the experiment of "Concurrent connections to Redis with gevent
//! and redis-py", in greenhub.
//!
//! `main` starts a `cron` coroutine that logs every 0.2 s and N coroutines
//! that each send `BRPOP list 1` to a real Redis on their own pooled
//! connection. After one second it logs the process's OS threads and the
//! pool's connections created / in use / available, then waits for every
//! client and logs the duration. The last line is a machine-readable summary.
//! `--mode threads` runs the same clients on one OS thread each, for contrast.
//! `--cluster` runs the coroutines against a Redis Cluster, client i on key
//! `key:i`.
//!
//! Files: `coroutines.rs` and `threads.rs` (the two modes), `server.rs`
//! (which Redis), `cluster.rs` and `private_cluster.rs` (which cluster),
//! `children.rs` (private servers stopped on every exit path), `limits.rs`
//! (what the OS allows and reports), `logs.rs` (the article's log format),
//! `report.rs` (what is measured). See `docs/demo.md`.

mod children;
mod cluster;
mod coroutines;
mod hubs;
mod limits;
mod logs;
mod observe;
mod private_cluster;
mod report;
mod server;
mod threads;

use std::process::ExitCode;
use std::time::Duration;

const HELP: &str = "\
demo: the gevent/redis-py BRPOP experiment on greenhub

USAGE: demo [OPTIONS]

OPTIONS:
  --clients N              clients, each with its own connection in BRPOP [default: 500]
  --timeout SECONDS        BRPOP's timeout [default: 1]
  --cron-interval SECONDS  how often cron logs [default: 0.2]
  --key NAME               the (empty) list to BRPOP [default: list]
  --redis URL              redis://host:port/db or unix:///path, or `private` to start a
                           private redis-server [default: $REDIS_URL, else 127.0.0.1:6379
                           if it answers, else a private redis-server]
  --tls-ca FILE            with --redis rediss://...: the CA that signed the server's certificate
  --tls-cert FILE          with --tls-key: a client certificate, for servers that ask for one
  --tls-key FILE           the client certificate's private key
  --mode MODE              coroutines (one thread) or threads (one per client) [default: coroutines]
  --cluster                against a Redis Cluster: --redis names a node (or several,
                           comma-separated), or is `private-cluster` (the default with
                           --cluster: a private 3-master, 3-replica cluster); client i
                           waits on KEY:i, so that every master holds some
  --dump-after SECONDS     log a table of every coroutine and what it waits on, once,
                           this long after the start (coroutines mode)
  --trace FILE.json        record every park and wake; write Chrome trace-event JSON
                           (open in https://ui.perfetto.dev) (coroutines mode)
  --timeline FILE.svg      record; write an SVG timeline of the coroutines (coroutines mode)
  --console                show a live view of the hub on stderr (coroutines mode)
  --hubs N                 spread the clients over N hubs on N OS threads (coroutines mode)
  -h, --help               print this help

The log level follows RUST_LOG (default: info). The last line is a summary:
  summary: mode=... hubs=... clients=... duration_s=... max_cron_gap_s=... os_threads=... created=... ...
peak_in_use= is the most clients holding their own connection at once.
With --cluster it has nodes=MASTERS, and the connection figures are sums over the masters.
";

/// Which way to run the clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// One hub, one OS thread, a coroutine per client.
    Coroutines,
    /// One OS thread per client.
    Threads,
}

/// The experiment's settings, from the command line.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    clients: usize,
    timeout: f64,
    cron_interval: Duration,
    key: String,
    redis: Option<String>,
    mode: Mode,
    dump_after: Option<Duration>,
    /// `--cluster`, or `--redis private-cluster`: a cluster, through `ClusterClient`.
    cluster: bool,
    observe: observe::Observe,
    /// `--hubs N`: a runtime of N hubs instead of one `run`.
    hubs: Option<usize>,
}

fn parse_args() -> Result<Option<Config>, lexopt::Error> {
    use lexopt::prelude::*;
    let mut config = Config {
        clients: 500,
        timeout: 1.0,
        cron_interval: Duration::from_millis(200),
        key: "list".into(),
        redis: None,
        mode: Mode::Coroutines,
        dump_after: None,
        cluster: false,
        observe: observe::Observe::default(),
        hubs: None,
    };
    let mut tls = Vec::new();
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long(flag @ ("tls-ca" | "tls-cert" | "tls-key")) => {
                tls.push((flag.replace('-', "_"), parser.value()?.string()?))
            }
            Long("clients") => config.clients = parser.value()?.parse()?,
            Long("timeout") => config.timeout = positive(parser.value()?.parse()?, "--timeout")?,
            Long("cron-interval") => {
                let secs = positive(parser.value()?.parse()?, "--cron-interval")?;
                config.cron_interval = Duration::from_secs_f64(secs);
            }
            Long("key") => config.key = parser.value()?.string()?,
            Long("redis") => config.redis = Some(parser.value()?.string()?),
            Long("mode") => {
                config.mode = match parser.value()?.string()?.as_str() {
                    "coroutines" => Mode::Coroutines,
                    "threads" => Mode::Threads,
                    other => {
                        return Err(
                            format!("--mode must be coroutines or threads, not {other:?}").into(),
                        )
                    }
                }
            }
            Long("dump-after") => {
                let secs = positive(parser.value()?.parse()?, "--dump-after")?;
                config.dump_after = Some(Duration::from_secs_f64(secs));
            }
            Long("cluster") => config.cluster = true,
            Long("trace") => config.observe.trace = Some(parser.value()?.into()),
            Long("timeline") => config.observe.timeline = Some(parser.value()?.into()),
            Long("console") => config.observe.console = true,
            Long("hubs") => {
                let hubs: usize = parser.value()?.parse()?;
                if hubs == 0 {
                    return Err("--hubs must be at least 1".into());
                }
                config.hubs = Some(hubs);
            }
            Short('h') | Long("help") => return Ok(None),
            _ => return Err(arg.unexpected()),
        }
    }
    let observe = &config.observe;
    if config.mode == Mode::Threads
        && (observe.trace.is_some() || observe.timeline.is_some() || observe.console)
    {
        return Err("--trace, --timeline and --console need --mode coroutines".into());
    }
    if config.clients == 0 {
        return Err("--clients must be at least 1".into());
    }
    config.cluster |= config.redis.as_deref() == Some("private-cluster");
    if config.cluster && config.mode == Mode::Threads {
        return Err(
            "--cluster runs in coroutines mode: the cluster client's pools belong to one hub"
                .into(),
        );
    }
    // REDIS_URL names one server: a cluster is named by --redis only.
    if config.redis.is_none() && !config.cluster {
        config.redis = std::env::var("REDIS_URL")
            .ok()
            .filter(|url| !url.is_empty());
    }
    if config.hubs.is_some() && config.mode == Mode::Threads {
        return Err("--hubs needs --mode coroutines".into());
    }
    if config.hubs.is_some() && config.cluster {
        return Err("--hubs runs against one server, not with --cluster".into());
    }
    if config.hubs.is_some() && config.observe.watches() {
        return Err("--trace, --timeline and --console watch one hub, not --hubs".into());
    }
    if !tls.is_empty() {
        config.redis = Some(with_tls_options(config.redis.as_deref(), &tls)?);
    }
    Ok(Some(config))
}

/// `--redis rediss://...` with the `--tls-*` files added as URL options
/// (`tls_ca=FILE`, ...; `docs/tls.md`).
fn with_tls_options(
    url: Option<&str>,
    options: &[(String, String)],
) -> Result<String, lexopt::Error> {
    let mut url = match url {
        Some(url) if url.starts_with("rediss://") => url.to_owned(),
        _ => {
            return Err("--tls-ca, --tls-cert and --tls-key need --redis rediss://HOST:PORT".into())
        }
    };
    for (key, path) in options {
        url.push(if url.contains('?') { '&' } else { '?' });
        // Percent-encode what a URL query cannot hold as is.
        let path: String = path
            .chars()
            .map(|c| match c {
                '%' | '&' | '#' | '?' | ' ' | '+' => format!("%{:02X}", c as u32),
                c => c.to_string(),
            })
            .collect();
        url.push_str(&format!("{key}={path}"));
    }
    Ok(url)
}

fn positive(value: f64, flag: &str) -> Result<f64, lexopt::Error> {
    if value.is_finite() && value > 0.0 && value < 1e9 {
        Ok(value)
    } else {
        Err(format!("{flag} must be a positive number of seconds").into())
    }
}

fn main() -> ExitCode {
    let config = match parse_args() {
        Ok(Some(config)) => config,
        Ok(None) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("demo: {err}\n\n{HELP}");
            return ExitCode::from(2);
        }
    };
    logs::init();
    match run(&config) {
        Ok(summary) => {
            let success = summary.success();
            println!("{summary}");
            if success {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(message) => {
            log::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

/// Checks the limits, finds Redis, runs the chosen mode.
fn run(config: &Config) -> Result<report::Summary, String> {
    let files = limits::raise_open_files()
        .map_err(|err| format!("cannot raise the open-files limit: {err}"))?;
    let needed = config.clients as u64 + limits::SPARE_FDS;
    if needed > files {
        return Err(format!(
            "--clients {} needs about {needed} open files (one per connection plus {}), \
             but this process may open at most {files} (the hard limit, ulimit -Hn); lower --clients",
            config.clients,
            limits::SPARE_FDS
        ));
    }
    config.observe.check()?;
    if config.cluster {
        let cluster = cluster::choose(config.redis.as_deref(), config.clients)?;
        log::debug!("using {}", cluster.description);
        let summary = coroutines::run_cluster(config, &cluster.urls);
        drop(cluster);
        return summary;
    }
    let redis = server::choose(config.redis.clone(), config.clients)?;
    log::debug!("using {}", redis.description);
    let summary = match config.mode {
        Mode::Coroutines => match config.hubs {
            Some(hubs) => hubs::run(config, &redis.url, hubs),
            None => coroutines::run(config, &redis.url),
        },
        Mode::Threads => threads::run(config, &redis.url),
    };
    drop(redis);
    Ok(summary)
}

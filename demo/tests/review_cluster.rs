//! Review of the cluster demo (issue 13, Demo part): paths the author's tests
//! did not walk. Each test names the symptom it proved; all are fixed.

use std::collections::HashMap;
use std::process::{Command, Output};

use greenhub_tests::RedisCluster;

fn demo(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_demo"));
    command
        .args(args)
        .env_remove("REDIS_URL")
        .env("RUST_LOG", "info");
    command
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn summary(output: &Output) -> HashMap<String, String> {
    let stdout = stdout(output);
    let last = stdout.lines().last().unwrap_or_default();
    last.strip_prefix("summary: ")
        .unwrap_or_else(|| panic!("no summary line at the end:\n{stdout}"))
        .split(' ')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// A `nodes.conf` from a real cluster node that knows other nodes: made by
/// the harness's cluster, copied before it is stopped.
fn stale_nodes_conf() -> std::path::PathBuf {
    let cluster = RedisCluster::start();
    let port = cluster.ports()[0];
    let dir = cluster.cli(port, &["CONFIG", "GET", "dir"]);
    let dir = dir.lines().nth(1).expect("CONFIG GET dir").to_owned();
    let stale =
        std::env::temp_dir().join(format!("review-stale-nodes-{}.conf", std::process::id()));
    std::fs::copy(std::path::Path::new(&dir).join("nodes.conf"), &stale).unwrap();
    drop(cluster);
    stale
}

/// Runs `demo --redis private-cluster --clients 5` as a process whose pid
/// already names a leftover `greenhub-demo-cluster-PID/` holding a
/// `nodes.conf` of another cluster: what a run killed with SIGKILL leaves
/// behind (docs/demo.md: "the directory then stays behind in the temp dir"),
/// met by a later demo that gets the same pid. `sh` makes the directory for
/// its own pid (`$$`) and then `exec`s the demo, which keeps that pid.
fn demo_over_a_leftover_directory() -> Output {
    let stale = stale_nodes_conf();
    let script = r#"d="${TMPDIR:-/tmp}/greenhub-demo-cluster-$$"; mkdir -p "$d/node0" && cp "$1" "$d/node0/nodes.conf" && exec "$0" --redis private-cluster --clients 5"#;
    let child = Command::new("sh")
        .args(["-c", script, env!("CARGO_BIN_EXE_demo")])
        .arg(&stale)
        .env_remove("REDIS_URL")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let leftover = std::env::temp_dir().join(format!("greenhub-demo-cluster-{}", child.id()));
    let output = child.wait_with_output().unwrap();
    let _ = std::fs::remove_file(&stale);
    assert!(
        leftover.join("node0").join("nodes.conf").exists(),
        "the leftover is another run's: left alone"
    );
    let _ = std::fs::remove_dir_all(&leftover);
    output
}

/// Proves: a leftover directory of a killed run (same pid) makes the next
/// `--redis private-cluster` fail: `create_dir_all` reuses the directory, node0
/// loads the stale `nodes.conf`, knows other nodes, and `redis-cli --cluster
/// create` refuses it ("Node ... is not empty").
#[test]
fn a_leftover_directory_of_a_killed_run_does_not_break_the_next_run() {
    let output = demo_over_a_leftover_directory();
    assert!(output.status.success(), "{}", stdout(&output));
    assert_eq!(summary(&output)["errors"], "0");
}

/// Proves: when `redis-cli --cluster create` fails, the demo's one-sentence
/// error has no reason in it: the "last non-empty line" of redis-cli's stdout
/// is its colour reset `ESC[0m` (the `[ERR] ... is not empty` line comes
/// before it), so the user reads "redis-cli --cluster create failed: " and
/// nothing else.
#[test]
fn a_failed_cluster_create_says_why() {
    // The demo's directories are fresh now, so the failure is forced: a
    // `redis-server` on PATH that gives the first node a stale nodes.conf.
    let stale = stale_nodes_conf();
    let real = Command::new("sh")
        .args(["-c", "command -v redis-server"])
        .output()
        .unwrap();
    let real = String::from_utf8_lossy(&real.stdout).trim().to_owned();
    let dir = std::env::temp_dir().join(format!("review-not-empty-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    let script = format!(
        r##"#!/bin/sh
prev=""; for a in "$@"; do [ "$prev" = "--dir" ] && nodedir="$a"; prev="$a"; done
if mkdir "{d}/once" 2>/dev/null; then cp "{stale}" "$nodedir/nodes.conf"; fi
exec "{real}" "$@"
"##,
        d = dir.display(),
        stale = stale.display()
    );
    let fake = dir.join("bin").join("redis-server");
    std::fs::write(&fake, script).unwrap();
    Command::new("chmod").arg("+x").arg(&fake).status().unwrap();
    let path = format!(
        "{}:{}",
        dir.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = demo(&["--redis", "private-cluster", "--clients", "5"])
        .env("PATH", path)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&stale);
    let text = stdout(&output);
    assert!(!output.status.success(), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("redis-cli --cluster create failed"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains("[ERR]") && line.contains("not empty") && !line.contains('\u{1b}'),
        "the error says why, without escape codes: {line:?}"
    );
}

/// Proves: seeded with a replica's URL (`--cluster --redis` names "a node"),
/// the summary no longer counts the clients' connections only: the seed
/// connection stays in the replica's pool, so `created` = N + 1,
/// `available` = 1, and a "(replica)" line is printed, against docs/demo.md
/// ("each master's pool (only masters: nothing reads from replicas)").
#[test]
fn seeded_at_a_replica_the_figures_are_the_clients_on_the_masters() {
    let cluster = RedisCluster::start();
    let master = cluster.master_ports()[0];
    let replica = cluster.replica_of(master);
    let output = demo(&[
        "--cluster",
        "--clients",
        "60",
        "--timeout",
        "3",
        "--redis",
        &format!("redis://127.0.0.1:{replica}"),
    ])
    .output()
    .unwrap();
    let text = stdout(&output);
    assert!(output.status.success(), "{text}");
    let s = summary(&output);
    assert!(!text.contains("(replica)"), "only masters' lines: {text}");
    assert_eq!(
        (
            s["created"].as_str(),
            s["in_use"].as_str(),
            s["available"].as_str()
        ),
        ("60", "60", "0"),
        "{text}"
    );
    assert_eq!(s["peak_in_use"], "60", "{text}");
}

/// Proves: a node whose port is taken by another process between the demo's
/// free-port check and the node's bind is replaced by that process: the
/// start loop asks "does the port answer PING?" before "did my child
/// exit?", so the other process's server is adopted as node0 and joined
/// into the demo's cluster by `redis-cli --cluster create` (CLUSTER MEET, slot
/// assignment, a replica). The harness's clusters use ports 12,000-22,000,
/// inside the demo's 3,000-22,000, so parallel test runs on one machine can
/// meet this. Simulated with a `redis-server` on PATH that, the first time,
/// lets a foreign (daemonized, not our child) server take the port it was
/// given and exits as a node that could not bind does; later calls are the
/// real server.
#[test]
fn a_node_whose_port_was_taken_is_not_replaced_by_the_other_server() {
    let real = |name: &str| {
        let out = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let (server, cli) = (real("redis-server"), real("redis-cli"));
    let dir = std::env::temp_dir().join(format!("review-hijack-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::create_dir_all(dir.join("foreign")).unwrap();
    let script = format!(
        r##"#!/bin/sh
if mkdir "{d}/hijacked" 2>/dev/null; then
  echo "$2" > "{d}/port"
  cd "{d}/foreign" && "{server}" --port "$2" --bind 127.0.0.1 --cluster-enabled yes \
    --save '' --appendonly no --daemonize yes --pidfile "{d}/foreign.pid" --logfile "{d}/foreign/log"
  for i in $(seq 200); do "{cli}" -p "$2" ping >/dev/null 2>&1 && break; sleep 0.05; done
  echo "# Could not create server TCP listening socket 127.0.0.1:$2: bind: Address already in use" >&2
  exit 1
fi
exec "{server}" "$@"
"##,
        d = dir.display()
    );
    let fake = dir.join("bin").join("redis-server");
    std::fs::write(&fake, script).unwrap();
    Command::new("chmod").arg("+x").arg(&fake).status().unwrap();
    let path = format!(
        "{}:{}",
        dir.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = demo(&["--redis", "private-cluster", "--clients", "30"])
        .env("PATH", path)
        .output()
        .unwrap();
    let port = std::fs::read_to_string(dir.join("port")).unwrap();
    let info = Command::new(&cli)
        .args(["-p", port.trim(), "CLUSTER", "INFO"])
        .output()
        .unwrap();
    let info = String::from_utf8_lossy(&info.stdout).into_owned();
    if let Ok(pid) = std::fs::read_to_string(dir.join("foreign.pid")) {
        let _ = Command::new("kill").arg(pid.trim()).status();
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        info.contains("cluster_known_nodes:1\r") || info.contains("cluster_known_nodes:1\n"),
        "the other process's server on {} was joined into the demo's cluster:\n{info}\ndemo:\n{}",
        port.trim(),
        stdout(&output)
    );
}

/// The sum of `connected_clients` over `ports`, as the nodes report it now
/// (`None` once a node is gone).
fn connected_clients(ports: &[u16]) -> Option<usize> {
    let mut sum = 0;
    for port in ports {
        let out = Command::new("redis-cli")
            .args(["-p", &port.to_string(), "INFO", "clients"])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        sum += text
            .lines()
            .find_map(|l| l.strip_prefix("connected_clients:"))?
            .trim()
            .parse::<usize>()
            .ok()?;
    }
    Some(sum)
}

/// Proves: "10,000 clients must work" (issue 13) is not what the author's
/// `ten_thousand_clients_run_on_a_private_cluster` checks. Every client gets
/// its nil, but the clients that finish their BRPOP give their connection
/// back to the pool, and clients still waiting for a pacing permit take
/// those instead of connecting: on a loaded machine (and in the debug build
/// the test runs) the masters never hold anywhere near 10,000 connections at
/// once (measured here: a peak of ~2,800, 2,920 connections opened in all, for
/// `--clients 10000`). The test here samples the masters' `connected_clients`
/// during the run and asks for the 10,000 the issue and docs/demo.md ("10,000
/// TCP connections from one thread, about 3,300 on each master") describe.
#[test]
fn ten_thousand_clients_on_a_private_cluster_hold_ten_thousand_connections() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    // Each client holds its own connection from its connect to the end of
    // its BRPOP; 30 s is long enough for all 10,000 to connect first, even
    // in a debug build on a loaded machine.
    let mut child = demo(&[
        "--clients",
        "10000",
        "--timeout",
        "30",
        "--redis",
        "private-cluster",
    ])
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        for line in lines {
            let line = line.unwrap();
            if let Some((_, rest)) = line.split_once("# Redis node 127.0.0.1:") {
                let port: u16 = rest.split(' ').next().unwrap().parse().unwrap();
                let _ = tx.send(port);
            }
            all.push(line);
        }
        all
    });
    // The three master lines come at the one-second snapshot.
    let ports: Vec<u16> = (0..3).map(|_| rx.recv().unwrap()).collect();
    let mut peak = 0;
    while let Some(now) = connected_clients(&ports) {
        peak = peak.max(now);
        if child.try_wait().unwrap().is_some() {
            break;
        }
    }
    let status = child.wait().unwrap();
    let out = reader.join().unwrap();
    assert!(status.success(), "{}", out.join("\n"));
    let last = out.last().unwrap();
    assert!(
        peak >= 10_000,
        "the masters held at most {peak} connections at once; summary: {last}"
    );
    assert!(
        last.contains(" peak_in_use=10000 ") && last.contains(" nil_replies=10000 "),
        "the summary says so: {last}"
    );
}

/// Proved (under Redis 6's defaults): the signal handler removes only
/// `nodes.conf` and `redis.log` from each node's directory, relying on the
/// masters' *default* `repl-diskless-sync yes` (Redis 7). Redis 6 (Ubuntu
/// 22.04's `redis-server`, what scripts/ensure-redis.sh installs there)
/// defaults to `no`: each master writes `dump.rdb` (and `temp-*.rdb`) for its
/// replica's first sync, the handler's `rmdir` fails, and Ctrl-C leaves
/// `greenhub-demo-cluster-PID/` behind, against docs/demo.md ("a node writes
/// only nodes.conf and redis.log: the files the signal handler removes").
/// Simulated on Redis 7 by a `redis-server` on PATH that sets Redis 6's
/// default before the demo's own arguments (so an explicit
/// `--repl-diskless-sync yes` from the demo would win).
/// Fixed by passing `--repl-diskless-sync yes` explicitly.
#[test]
fn ctrl_c_removes_the_private_cluster_directory_under_redis_6_defaults() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let real = Command::new("sh")
        .args(["-c", "command -v redis-server"])
        .output()
        .unwrap();
    let real = String::from_utf8_lossy(&real.stdout).trim().to_owned();
    let bin = std::env::temp_dir().join(format!("review-redis6-{}", std::process::id()));
    std::fs::create_dir_all(&bin).unwrap();
    let fake = bin.join("redis-server");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\nexec \"{real}\" --repl-diskless-sync no \"$@\"\n"),
    )
    .unwrap();
    Command::new("chmod").arg("+x").arg(&fake).status().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = demo(&[
        "--clients",
        "30",
        "--timeout",
        "30",
        "--redis",
        "private-cluster",
    ])
    .env("PATH", path)
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let prefix = format!("greenhub-demo-cluster-{}-", child.id());
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines {
        if line
            .unwrap()
            .contains("Waiting for Redis connection coroutines")
        {
            break;
        }
    }
    let dir = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
        })
        .expect("the private cluster's directory, while it runs");
    // The replicas' first syncs are done by now (the cluster reported ok and
    // a second passed); give a slow machine's BGSAVE a moment to rename.
    std::thread::sleep(std::time::Duration::from_secs(2));
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    let left: Vec<_> = walk(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&bin);
    assert_eq!(status.code(), Some(130));
    assert!(left.is_empty(), "left behind after Ctrl-C: {left:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            out.push(entry.path());
            out.extend(walk(&entry.path()));
        }
    }
    out
}

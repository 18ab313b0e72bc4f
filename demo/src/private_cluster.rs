//! `--redis private-cluster`: a private Redis Cluster of three masters and
//! three replicas, started for one run of the demo and stopped after it.
//!
//! Six `redis-server` nodes on free TCP ports of 127.0.0.1 (each also opens
//! its cluster bus on port + 10,000), each in its own directory of one
//! temporary directory, sized for the client count like the private server
//! of `server.rs` (`maxclients`, accept backlog, `hz 100`); joined by
//! `redis-cli --cluster create ... --cluster-replicas 1`; ready once every
//! node reports `cluster_state:ok`. Stopped on every exit path
//! (`children.rs`). The test harness has its own guard
//! (`tests/support/cluster.rs`): it panics where this one returns an error
//! for the demo to print, and it also kills, restarts and reshards nodes for
//! the fault tests; the demo does not depend on the test crate.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use greenhub_redis::{cmd, Connection, ConnectionInfo};

use crate::children;
use crate::server::{answers_ping, find_on_path, MAX_BACKLOG, SPARE_CLIENTS};

/// Three masters, each with one replica.
const NODES: usize = 6;
/// Nodes listen below this port range's end: the bus port (+10,000) must
/// stay under the kernel's ephemeral range (32768 and up on Linux), where
/// the demo's own outgoing connections could take it.
const PORT_RANGE: std::ops::Range<u16> = 3_000..22_000;
/// How long a node may take to answer PING, and the cluster to settle
/// after its creation: a few seconds on a loaded machine, capped here.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
/// What a node writes in its directory, for the signal handler to remove
/// (it cannot list a directory). With no persistence and replicas that load
/// their first sync straight from the socket, there is nothing else.
const NODE_FILES: [&str; 2] = ["nodes.conf", "redis.log"];
/// How often the waits poll the nodes.
const POLL: Duration = Duration::from_millis(20);

/// The running cluster; dropping it kills every node and removes the
/// directory.
#[derive(Debug)]
pub(crate) struct PrivateCluster {
    dir: PathBuf,
    /// The nodes that started, with their ports, in start order.
    nodes: Vec<(Child, u16)>,
}

impl PrivateCluster {
    /// Starts the six nodes, creates the cluster, and waits until it serves.
    pub(crate) fn start(clients: usize) -> Result<PrivateCluster, String> {
        let server = find_on_path("redis-server");
        let cli = find_on_path("redis-cli");
        let (Some(server), Some(cli)) = (server, cli) else {
            return Err(
                "--redis private-cluster needs redis-server and redis-cli, and one is not installed: \
                 install them (Debian/Ubuntu: sudo apt-get install redis-server redis-tools; \
                 scripts/demo.sh does this), or pass --cluster --redis URL"
                    .to_owned(),
            );
        };
        let dir = fresh_dir()?;
        let mut paths = Vec::new();
        for i in 0..NODES {
            let node = dir.join(format!("node{i}"));
            paths.extend(NODE_FILES.iter().map(|file| node.join(file)));
            paths.push(node);
        }
        paths.push(dir.clone());
        children::remove_on_signal(&paths);
        let mut cluster = PrivateCluster {
            dir,
            nodes: Vec::new(),
        };
        for i in 0..NODES {
            let node_dir = cluster.dir.join(format!("node{i}"));
            std::fs::create_dir(&node_dir)
                .map_err(|err| format!("cannot create {}: {err}", node_dir.display()))?;
            cluster.start_node(&server, &node_dir, clients)?;
        }
        cluster.create(&cli)?;
        cluster.wait_until_ok()?;
        Ok(cluster)
    }

    /// A URL for each node (any one is enough for `ClusterClient::open`).
    pub(crate) fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|(_, port)| format!("redis://127.0.0.1:{port}"))
            .collect()
    }

    /// Where the nodes live (each in `nodeN/`, with its `redis.log`).
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts one node on a free port (another if that one was taken before
    /// the node could bind it) and waits until it answers PING.
    fn start_node(&mut self, binary: &Path, dir: &Path, clients: usize) -> Result<(), String> {
        let log = dir.join("redis.log");
        let mut last = String::new();
        for _ in 0..10 {
            let port = self.free_port()?;
            let mut command = Command::new(binary);
            command
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args([
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                ])
                .args(["--save", "", "--appendonly", "no"])
                // A master sends its first sync straight to the socket (Redis
                // 6 defaults to an RDB file the signal handler cannot remove)
                // and waits no longer for more replicas (5 s by default).
                .args([
                    "--repl-diskless-sync",
                    "yes",
                    "--repl-diskless-sync-delay",
                    "0",
                ])
                // A replica loads that sync from the socket: no RDB file.
                .args(["--repl-diskless-load", "on-empty-db"])
                // Each master holds its share of the clients; a client count
                // whose keys all hash to one master must still fit.
                .args(["--maxclients", &(clients + SPARE_CLIENTS).to_string()])
                .args([
                    "--tcp-backlog",
                    &clients.clamp(511, MAX_BACKLOG).to_string(),
                ])
                // BRPOP timeouts fire on the server's tick: 10 ms late at most.
                .args(["--hz", "100"])
                .arg("--dir")
                .arg(dir)
                .arg("--logfile")
                .arg(&log)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            children::die_with_parent(&mut command);
            let mut child = command
                .spawn()
                .map_err(|err| format!("cannot start {}: {err}", binary.display()))?;
            children::register(&child);
            let url = format!("redis://127.0.0.1:{port}");
            let start = Instant::now();
            loop {
                // Whether the child exited first: a server that answers on
                // the port while the child is gone (or that is not the
                // child) is another process's, which took the port first.
                let exited = child.try_wait().ok().flatten().is_some();
                if !exited && answers_ping(&url) {
                    if server_pid(&url) == Some(child.id()) {
                        self.nodes.push((child, port));
                        return Ok(());
                    }
                    children::stop(&mut child);
                    last = format!("127.0.0.1:{port} is served by another process");
                    break;
                }
                if exited || start.elapsed() > SETTLE_TIMEOUT {
                    children::stop(&mut child);
                    last = last_line(&log);
                    break;
                }
                std::thread::sleep(POLL);
            }
        }
        Err(format!(
            "a node of the private cluster did not start: {last}"
        ))
    }

    /// A port in [`PORT_RANGE`] free now, with its bus port free too.
    fn free_port(&self) -> Result<u16, String> {
        let free = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
        let span = u32::from(PORT_RANGE.end - PORT_RANGE.start);
        // Start where this process's id points, so that demos (and test
        // runs) side by side rarely try the same ports.
        let seed = std::process::id() % span;
        (0..span)
            .map(|n| PORT_RANGE.start + ((seed + n * 7) % span) as u16)
            .find(|&port| {
                !self.nodes.iter().any(|(_, p)| *p == port) && free(port) && free(port + 10_000)
            })
            .ok_or_else(|| format!("no free port pair for a cluster node in {PORT_RANGE:?}"))
    }

    /// `redis-cli --cluster create`: slots split over three masters, one
    /// replica each.
    fn create(&self, cli: &Path) -> Result<(), String> {
        let mut command = Command::new(cli);
        command.args(["--cluster", "create"]);
        for (_, port) in &self.nodes {
            command.arg(format!("127.0.0.1:{port}"));
        }
        command
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null());
        children::die_with_parent(&mut command);
        let output = command
            .output()
            .map_err(|err| format!("cannot run {}: {err}", cli.display()))?;
        if output.status.success() {
            return Ok(());
        }
        Err(format!(
            "redis-cli --cluster create failed: {}",
            create_failure(&output.stdout, &output.stderr)
        ))
    }

    /// Polls every node until each reports `cluster_state:ok`: every slot
    /// is served and the node knows it.
    fn wait_until_ok(&self) -> Result<(), String> {
        let start = Instant::now();
        for (_, port) in &self.nodes {
            let info = ConnectionInfo::from_url(&format!("redis://127.0.0.1:{port}"))
                .map_err(|err| err.to_string())?;
            loop {
                let state = Connection::open(&info)
                    .and_then(|mut conn| cmd("CLUSTER").arg("INFO").query::<String>(&mut conn));
                if state
                    .as_deref()
                    .is_ok_and(|s| s.contains("cluster_state:ok"))
                {
                    break;
                }
                if start.elapsed() > SETTLE_TIMEOUT {
                    return Err(format!(
                        "the private cluster did not settle within {SETTLE_TIMEOUT:?}: \
                         127.0.0.1:{port} is not cluster_state:ok ({})",
                        match state {
                            Ok(_) => "not yet".to_owned(),
                            Err(err) => err.to_string(),
                        }
                    ));
                }
                std::thread::sleep(POLL);
            }
        }
        Ok(())
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        for (child, _) in &mut self.nodes {
            children::stop(child);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The last non-empty line of a node's log, to say why it did not start.
fn last_line(log: &Path) -> String {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("(no log)")
        .to_owned()
}

/// A new directory for the nodes, `greenhub-demo-cluster-PID-SUFFIX` in the
/// temp dir, made here and now: never one left behind by an earlier run
/// (a run killed with SIGKILL leaves its directory, and a later process
/// may get the same pid). The suffix mixes the clock and a counter; a name
/// that exists already is skipped, not reused.
fn fresh_dir() -> Result<PathBuf, String> {
    use std::hash::{BuildHasher, Hasher};
    let pid = std::process::id();
    let mut last = String::new();
    for attempt in 0u32..16 {
        let mut hasher = std::hash::RandomState::new().build_hasher();
        hasher.write_u32(attempt);
        if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            hasher.write_u128(now.as_nanos());
        }
        let suffix = hasher.finish() & 0xffff_ffff;
        let dir = std::env::temp_dir().join(format!("greenhub-demo-cluster-{pid}-{suffix:08x}"));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                last = format!("{} exists", dir.display());
            }
            Err(err) => return Err(format!("cannot create {}: {err}", dir.display())),
        }
    }
    Err(format!(
        "cannot create a fresh directory for the private cluster: {last}"
    ))
}

/// The `process_id` that the server at `url` reports in `INFO server`.
fn server_pid(url: &str) -> Option<u32> {
    let info = ConnectionInfo::from_url(url).ok()?;
    let mut conn = Connection::open(&info).ok()?;
    let text: String = cmd("INFO").arg("server").query(&mut conn).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
}

/// Why `redis-cli --cluster create` failed, from its output: its `[ERR]`
/// lines (else its last line) and its stderr, without the colour escapes
/// it writes around them.
fn create_failure(stdout: &[u8], stderr: &[u8]) -> String {
    let stdout = strip_ansi(&String::from_utf8_lossy(stdout));
    let stderr = strip_ansi(&String::from_utf8_lossy(stderr));
    let lines = |text: &str| -> Vec<String> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let out = lines(&stdout);
    let mut reason: Vec<String> = out
        .iter()
        .filter(|l| l.starts_with("[ERR]"))
        .cloned()
        .collect();
    if reason.is_empty() {
        reason.extend(out.last().cloned());
    }
    reason.extend(lines(&stderr));
    if reason.is_empty() {
        "(no output)".to_owned()
    } else {
        reason.join("; ")
    }
}

/// `text` without ANSI escape sequences (`ESC [ ... letter`, and any other
/// `ESC x` pair).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        if chars.next() == Some('[') {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() || c == '~' {
                    break;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_create_gives_its_err_line_and_stderr_without_escapes() {
        let stdout = b">>> Creating cluster\n\x1b[31;1m[ERR] Node 127.0.0.1:3001 is not empty. \
            Either the node already knows other nodes (check with CLUSTER NODES) or contains \
            some key in database 0.\x1b[0m\n\x1b[0m\n";
        let reason = create_failure(stdout, b"Could not connect\n");
        assert_eq!(
            reason,
            "[ERR] Node 127.0.0.1:3001 is not empty. Either the node already knows other nodes \
             (check with CLUSTER NODES) or contains some key in database 0.; Could not connect"
        );
        assert_eq!(create_failure(b"\x1b[0m\n", b""), "(no output)");
        assert_eq!(create_failure(b"last words\n", b""), "last words");
    }

    #[test]
    fn fresh_dirs_are_new_each_time() {
        let (a, b) = (fresh_dir().unwrap(), fresh_dir().unwrap());
        assert_ne!(a, b);
        assert!(a.is_dir() && b.is_dir());
        let _ = std::fs::remove_dir(&a);
        let _ = std::fs::remove_dir(&b);
    }
}

//! A real Redis Cluster behind a guard: [`RedisCluster::start`] runs six
//! `redis-server` nodes (three masters, three replicas) in a fresh temp dir,
//! joins them with `redis-cli --cluster create`, and waits (polling, never a
//! fixed sleep) until every node reports `cluster_state:ok`, every replica's
//! link to its master is up and all nodes agree on who serves which slot.
//! Dropping the guard kills every node and removes the directory.
//!
//! Fault tests kill a node ([`RedisCluster::kill_node`], SIGKILL: the
//! replica is promoted after about `cluster-node-timeout`), start it again
//! ([`RedisCluster::restart_node`]: it rejoins from its `nodes.conf`), take
//! the whole cluster down and up, and move slots with
//! `redis-cli --cluster reshard` ([`RedisCluster::reshard`]). The harness
//! talks to the nodes with `redis-cli` only, so it shares no code with the
//! client under test. See `docs/testing.md`, "The cluster guard".

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a node may take to start, and the cluster to settle after a
/// create, a failover, a restart or a reshard. Each takes a few seconds on
/// a loaded machine; this is a cap on polling, not a wait.
pub const CLUSTER_TIMEOUT: Duration = Duration::from_secs(60);

/// `cluster-node-timeout`: a master unreachable this long is marked failing
/// and its replica takes over, so a failover in a test takes about two to
/// three seconds instead of Redis's default fifteen-plus.
pub const NODE_TIMEOUT_MS: u64 = 1000;

/// Nodes listen below this port: each also opens its cluster bus on
/// port + 10,000, and both must stay under the kernel's ephemeral range
/// (32768 and up on Linux), where outgoing connections could take them.
const PORT_RANGE: std::ops::Range<u16> = 12_000..22_000;

/// How often the waits poll the nodes.
const POLL: Duration = Duration::from_millis(50);

/// One node of the cluster.
#[derive(Debug)]
struct Node {
    port: u16,
    dir: PathBuf,
    /// The running process; `None` while killed.
    child: Option<Child>,
    /// Its TLS port, in a TLS cluster ([`RedisCluster::start_tls`]).
    tls_port: Option<u16>,
    /// Extra `redis-server` arguments (the TLS ones), kept for restarts.
    extra: Vec<String>,
}

/// A private six-node Redis Cluster, killed when dropped.
#[derive(Debug)]
pub struct RedisCluster {
    dir: PathBuf,
    nodes: Vec<Node>,
}

/// One line of `CLUSTER NODES`, as the harness needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    /// The node's id (40 hex digits).
    pub id: String,
    /// Its client port.
    pub port: u16,
    /// Whether it is a master (else a replica).
    pub master: bool,
    /// The master's id, for a replica.
    pub master_id: Option<String>,
    /// Whether this node is seen as failing (`fail` or `fail?`).
    pub failing: bool,
    /// Slot ranges it serves (masters), inclusive.
    pub slots: Vec<(u16, u16)>,
}

impl RedisCluster {
    /// Starts three masters with one replica each and waits until the
    /// cluster is ready.
    pub fn start() -> RedisCluster {
        RedisCluster::start_with(None)
    }

    /// [`RedisCluster::start`] with TLS: each node serves clients on a TLS
    /// port with `files`' server certificate (its plaintext port stays, for
    /// the harness's own `redis-cli`), speaks TLS on the cluster bus and to
    /// its replicas (`--tls-cluster yes`, `--tls-replication yes`), and
    /// requires no client certificate. The cluster is created over TLS
    /// (`redis-cli --tls --cluster create` on the TLS ports), so the nodes
    /// know each other by their TLS ports; the bus is each TLS port +10,000.
    pub fn start_tls(files: &crate::TlsFiles) -> RedisCluster {
        RedisCluster::start_with(Some(files))
    }

    fn start_with(tls: Option<&crate::TlsFiles>) -> RedisCluster {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "greenhub-cluster-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create the cluster's temp dir");
        let mut cluster = RedisCluster {
            dir,
            nodes: Vec::new(),
        };
        let mut taken = Vec::new();
        for i in 0..6 {
            let node_dir = cluster.dir.join(format!("node{i}"));
            std::fs::create_dir_all(&node_dir).expect("create a node's dir");
            let mut node = Node {
                port: 0,
                dir: node_dir,
                child: None,
                tls_port: None,
                extra: Vec::new(),
            };
            // A port found free can be taken before the node binds it:
            // then try another.
            let started = (0..10).any(|_| {
                node.port = free_cluster_port(&taken);
                if let Some(files) = tls {
                    let tls_port = free_cluster_port(&[&taken[..], &[node.port]].concat());
                    node.tls_port = Some(tls_port);
                    node.extra = files.server_args(tls_port, &files.server, false);
                    node.extra.extend(
                        ["--tls-cluster", "yes", "--tls-replication", "yes"].map(String::from),
                    );
                }
                spawn_node(&mut node)
            });
            assert!(started, "a cluster node did not start on any port");
            taken.push(node.port);
            taken.extend(node.tls_port);
            cluster.nodes.push(node);
        }
        let mut create = Command::new("redis-cli");
        if let Some(files) = tls {
            create.args(tls_cli_args(files));
        }
        create.arg("--cluster").arg("create");
        for node in &cluster.nodes {
            create.arg(format!("127.0.0.1:{}", node.tls_port.unwrap_or(node.port)));
        }
        create.args(["--cluster-replicas", "1", "--cluster-yes"]);
        let output = run(&mut create);
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        cluster.wait_until_ready();
        cluster
    }

    /// Every node's URL, `redis://127.0.0.1:PORT`, masters and replicas.
    pub fn urls(&self) -> Vec<String> {
        self.ports().iter().map(|p| url(*p)).collect()
    }

    /// Every node's `rediss://127.0.0.1:TLS_PORT?tls_ca=...` URL, in a
    /// cluster from [`RedisCluster::start_tls`] with these `files`.
    pub fn tls_urls(&self, files: &crate::TlsFiles) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| {
                let port = n.tls_port.expect("a cluster started with start_tls");
                format!("rediss://127.0.0.1:{port}?{}", files.url_options(false))
            })
            .collect()
    }

    /// The TLS port of the node whose plaintext port is `port`.
    pub fn tls_port(&self, port: u16) -> u16 {
        self.nodes
            .iter()
            .find(|n| n.port == port)
            .and_then(|n| n.tls_port)
            .expect("a node of a cluster started with start_tls")
    }

    /// Every node's port, in start order.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// The ports of the nodes running now.
    pub fn live_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.port)
            .collect()
    }

    /// The cluster as a live node sees it (`CLUSTER NODES`).
    pub fn topology(&self) -> Vec<NodeInfo> {
        let port = *self.live_ports().first().expect("a live node");
        self.topology_from(port)
            .expect("CLUSTER NODES from a live node")
    }

    /// The ports of the masters that serve slots, in slot order.
    pub fn master_ports(&self) -> Vec<u16> {
        let mut masters: Vec<NodeInfo> = self
            .topology()
            .into_iter()
            .filter(|n| n.master && !n.slots.is_empty())
            .collect();
        masters.sort_by_key(|n| n.slots[0]);
        masters.iter().map(|n| n.port).collect()
    }

    /// The port of the master serving `slot`.
    pub fn master_of_slot(&self, slot: u16) -> u16 {
        self.topology()
            .iter()
            .find(|n| n.master && n.slots.iter().any(|&(a, b)| a <= slot && slot <= b))
            .map(|n| n.port)
            .unwrap_or_else(|| panic!("no master serves slot {slot}"))
    }

    /// The port of `master`'s replica. Gossip may not have told every node
    /// of a replica yet (seen on a fresh cluster in CI), so this polls, with
    /// the cluster's generous cap, until the node it asks lists one.
    pub fn replica_of(&self, master: u16) -> u16 {
        let start = Instant::now();
        loop {
            let topology = self.topology();
            let id = &topology
                .iter()
                .find(|n| n.port == master)
                .expect("the master is known")
                .id;
            if let Some(replica) = topology.iter().find(|n| n.master_id.as_ref() == Some(id)) {
                return replica.port;
            }
            assert!(
                start.elapsed() < CLUSTER_TIMEOUT,
                "127.0.0.1:{master} has no replica after {CLUSTER_TIMEOUT:?}"
            );
            std::thread::sleep(POLL);
        }
    }

    /// Kills a node with SIGKILL (no goodbye to the cluster or its
    /// clients) and waits for it to die.
    pub fn kill_node(&mut self, port: u16) {
        let node = self.node_mut(port);
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a killed node again on its port and directory: it rejoins
    /// with its identity from `nodes.conf` (its data is gone: no
    /// persistence). Does not wait for the cluster to settle.
    pub fn restart_node(&mut self, port: u16) {
        self.kill_node(port);
        let node = self.node_mut(port);
        assert!(spawn_node(node), "node 127.0.0.1:{port} did not restart");
    }

    /// Kills every node.
    pub fn kill_all(&mut self) {
        for port in self.ports() {
            self.kill_node(port);
        }
    }

    /// Starts every killed node again and waits until the cluster is ready.
    pub fn restart_all(&mut self) {
        for port in self.ports() {
            if self.node_mut(port).child.is_none() {
                self.restart_node(port);
            }
        }
        self.wait_until_ready();
    }

    /// Moves `slots` slots from the master on `from` to the master on `to`
    /// with `redis-cli --cluster reshard` (the lowest-numbered slots of
    /// `from` go first), in the background. Wait on the returned [`Reshard`].
    pub fn reshard(&self, from: u16, to: u16, slots: usize) -> Reshard {
        let topology = self.topology();
        let id = |port: u16| {
            topology
                .iter()
                .find(|n| n.port == port)
                .map(|n| n.id.clone())
                .unwrap_or_else(|| panic!("no node on port {port}"))
        };
        // Its output (a line per slot and per key moved) goes to a file: a
        // pipe nobody reads until the end would fill and stall it.
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let log = self.dir.join(format!(
            "reshard-{}.log",
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let file = std::fs::File::create(&log).expect("create the reshard log");
        let child = Command::new("redis-cli")
            .args(["--cluster", "reshard", &format!("127.0.0.1:{from}")])
            .args(["--cluster-from", &id(from), "--cluster-to", &id(to)])
            .args(["--cluster-slots", &slots.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("share the log"))
            .stderr(file)
            .spawn()
            .expect("run redis-cli --cluster reshard");
        Reshard {
            child: Some(child),
            log,
        }
    }

    /// Runs one command with `redis-cli` on the node at `port` and returns
    /// its output (trimmed; an error reply is in the text).
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        cli(port, args).unwrap_or_else(|err| panic!("redis-cli -p {port}: {err}"))
    }

    /// Waits until every live node reports `cluster_state:ok`, every slot
    /// is served by a live master, no live master is without slots (a node
    /// that came back and is turning replica), every live replica's link is
    /// up and all live nodes agree on the slot map: after a start, a
    /// failover, a restart or a reshard.
    pub fn wait_until_ready(&self) {
        let start = Instant::now();
        loop {
            let Err(last) = self.readiness() else {
                return;
            };
            assert!(
                start.elapsed() < CLUSTER_TIMEOUT,
                "the cluster did not settle within {CLUSTER_TIMEOUT:?}: {last}"
            );
            std::thread::sleep(POLL);
        }
    }

    /// Waits until the replica on `port` has been promoted to master and
    /// the cluster is ready again.
    pub fn wait_for_promotion(&self, port: u16) {
        let start = Instant::now();
        while !self.cli(port, &["ROLE"]).starts_with("master") {
            assert!(
                start.elapsed() < CLUSTER_TIMEOUT,
                "127.0.0.1:{port} was not promoted within {CLUSTER_TIMEOUT:?}"
            );
            std::thread::sleep(POLL);
        }
        self.wait_until_ready();
    }

    /// `Ok` when the cluster is ready, or why it is not.
    fn readiness(&self) -> Result<(), String> {
        let mut maps = Vec::new();
        for port in self.live_ports() {
            let info = cli(port, &["CLUSTER", "INFO"])?;
            if !info.contains("cluster_state:ok") {
                return Err(format!("127.0.0.1:{port} is not cluster_state:ok"));
            }
            let nodes = self.topology_from(port)?;
            let me = nodes
                .iter()
                .find(|n| n.port == port)
                .ok_or_else(|| format!("127.0.0.1:{port} does not list itself"))?;
            if !me.master {
                let replication = cli(port, &["INFO", "replication"])?;
                if !replication.contains("master_link_status:up") {
                    return Err(format!("replica 127.0.0.1:{port} has no link up"));
                }
            }
            let live = self.live_ports();
            // This harness never makes an empty master: one is a node that
            // came back and has lost its slots but not yet turned replica.
            if let Some(empty) = nodes
                .iter()
                .find(|n| n.master && n.slots.is_empty() && !n.failing && live.contains(&n.port))
            {
                return Err(format!(
                    "127.0.0.1:{port} sees 127.0.0.1:{} as a master without slots",
                    empty.port
                ));
            }
            let mut map = BTreeMap::new();
            for node in nodes.iter().filter(|n| n.master && !n.slots.is_empty()) {
                if node.failing || !live.contains(&node.port) {
                    return Err(format!(
                        "127.0.0.1:{port} sees slots on a dead master 127.0.0.1:{}",
                        node.port
                    ));
                }
                map.insert(node.slots.clone(), node.port);
            }
            let served: usize = map
                .keys()
                .flatten()
                .map(|&(a, b)| usize::from(b - a) + 1)
                .sum();
            if served != 16384 {
                return Err(format!("127.0.0.1:{port} sees {served} slots served"));
            }
            maps.push(map);
        }
        if maps.windows(2).any(|w| w[0] != w[1]) {
            return Err("the nodes disagree about the slot map".into());
        }
        Ok(())
    }

    fn topology_from(&self, port: u16) -> Result<Vec<NodeInfo>, String> {
        let text = cli(port, &["CLUSTER", "NODES"])?;
        text.lines().map(parse_node_line).collect()
    }

    fn node_mut(&mut self, port: u16) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("no cluster node on port {port}"))
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        self.kill_all();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A `redis-cli --cluster reshard` running in the background.
#[derive(Debug)]
pub struct Reshard {
    child: Option<Child>,
    /// Where redis-cli's output goes.
    log: PathBuf,
}

impl Reshard {
    /// Whether it has finished (successfully or not).
    pub fn is_finished(&mut self) -> bool {
        match &mut self.child {
            Some(child) => !matches!(child.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// Waits for it to end; panics with the end of its output if it failed.
    pub fn wait(mut self) {
        let mut child = self.child.take().expect("waited once");
        let status = child.wait().expect("wait for redis-cli");
        let output = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: String = output.lines().rev().take(20).collect::<Vec<_>>().join("\n");
        assert!(
            status.success(),
            "redis-cli --cluster reshard failed; the end of its output, last line first:\n{tail}"
        );
    }
}

impl Drop for Reshard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn url(port: u16) -> String {
    format!("redis://127.0.0.1:{port}")
}

/// Starts a node on `node.port`; true once it answers PING with its own
/// pid in `INFO server`, false if it exited or another process answers
/// there (its port was taken).
fn spawn_node(node: &mut Node) -> bool {
    let mut child = Command::new("redis-server")
        .args(["--port", &node.port.to_string(), "--bind", "127.0.0.1"])
        .args(["--cluster-enabled", "yes"])
        .args(["--cluster-config-file", "nodes.conf"])
        .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        // A master waits this long for more replicas before a diskless full
        // sync (5 s by default): with one replica each, start at once.
        .args(["--repl-diskless-sync-delay", "0"])
        .arg("--dir")
        .arg(&node.dir)
        .arg("--logfile")
        .arg(node.dir.join("redis.log"))
        .args(&node.extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|err| {
            panic!("cannot start redis-server ({err}); run scripts/test.sh, which installs it")
        });
    let start = Instant::now();
    loop {
        // Whether the child exited comes first: a server answering on the
        // port after the child is gone, or with another pid, is another
        // process's that took the port, never adopted as this node.
        if matches!(child.try_wait(), Ok(Some(_))) {
            return false;
        }
        if cli(node.port, &["PING"]).is_ok_and(|reply| reply == "PONG") {
            if server_pid(node.port) == Some(child.id()) {
                node.child = Some(child);
                return true;
            }
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        if start.elapsed() > CLUSTER_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The `process_id` in `INFO server` of the server on `port`.
fn server_pid(port: u16) -> Option<u32> {
    let info = cli(port, &["INFO", "server"]).ok()?;
    info.lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
}

/// A port in [`PORT_RANGE`] free now, with its bus port (+10,000) free too.
fn free_cluster_port(taken: &[u16]) -> u16 {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let span = usize::from(PORT_RANGE.end - PORT_RANGE.start);
    // Spread test processes over the range (pid) and nodes within one
    // (a counter), so parallel suites rarely even try the same port.
    let seed = std::process::id() as usize * 7919;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = PORT_RANGE.start + ((seed + n * 13) % span) as u16;
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if !taken.contains(&port) && free(port) && free(port + 10_000) {
            return port;
        }
    }
    panic!("no free port pair for a cluster node in {PORT_RANGE:?}");
}

/// `redis-cli` arguments to speak TLS to the nodes of a TLS cluster.
fn tls_cli_args(files: &crate::TlsFiles) -> Vec<String> {
    vec![
        "--tls".into(),
        "--cacert".into(),
        files.ca.display().to_string(),
    ]
}

/// Runs `redis-cli -p PORT ARGS` (one command); its trimmed output, or why
/// it could not connect.
fn cli(port: u16, args: &[&str]) -> Result<String, String> {
    let output = run(Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args));
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let err = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() || text.starts_with("Could not connect") || err.contains("refused")
    {
        return Err(format!("127.0.0.1:{port} unreachable: {text}{err}"));
    }
    Ok(text)
}

fn run(command: &mut Command) -> Output {
    command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("cannot run redis-cli ({err}); it comes with redis-server"))
}

/// Parses one line of `CLUSTER NODES`:
/// `id ip:port@bus flags master-id ping pong epoch link slot slot...`.
fn parse_node_line(line: &str) -> Result<NodeInfo, String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let bad = || format!("unexpected CLUSTER NODES line: {line}");
    if fields.len() < 8 {
        return Err(bad());
    }
    let port = fields[1]
        .split('@')
        .next()
        .and_then(|addr| addr.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .ok_or_else(bad)?;
    let flags: Vec<&str> = fields[2].split(',').collect();
    let mut slots = Vec::new();
    // Importing/migrating markers (`[slot->-id]`) are not served slots.
    for range in fields[8..].iter().filter(|s| !s.starts_with('[')) {
        let (a, b) = range.split_once('-').unwrap_or((range, range));
        slots.push((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?));
    }
    Ok(NodeInfo {
        id: fields[0].to_owned(),
        port,
        master: flags.contains(&"master"),
        master_id: (fields[3] != "-").then(|| fields[3].to_owned()),
        failing: flags.iter().any(|f| f.starts_with("fail")),
        slots,
    })
}

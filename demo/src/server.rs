//! Which Redis the demo talks to, and the private server it may start.
//!
//! In order: `--redis URL` or `REDIS_URL`; else `redis://127.0.0.1:6379` if a
//! server answers there; else a private `redis-server` from `PATH`, on a Unix
//! socket in a temporary directory, sized for the client count (`maxclients`,
//! accept backlog), and stopped on every exit path (`children.rs`). A server
//! that cannot hold the clients is refused before anything is spawned. The
//! private cluster (`--redis private-cluster`) is `private_cluster.rs`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use greenhub_redis::{cmd, Connection, ConnectionInfo};

use crate::children;

/// Connections beyond the clients: the capacity check's own, and slack.
pub(crate) const SPARE_CLIENTS: usize = 32;
/// How long a private server may take to answer its first PING.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// The kernel caps any listen backlog at `net.core.somaxconn` (4096 here).
pub(crate) const MAX_BACKLOG: usize = 4096;

/// The Redis the experiment runs against.
#[derive(Debug)]
pub(crate) struct Redis {
    /// Where to connect.
    pub(crate) url: String,
    /// What it is, for the log.
    pub(crate) description: String,
    /// The private server, stopped when this is dropped.
    _private: Option<PrivateServer>,
}

/// Finds or starts a Redis that can hold `clients` connections. `explicit`
/// is a URL, or `private` to always start a private server.
pub(crate) fn choose(explicit: Option<String>, clients: usize) -> Result<Redis, String> {
    let always_private = explicit.as_deref() == Some("private");
    if let Some(url) = explicit.filter(|_| !always_private) {
        check_capacity(&url, clients)?;
        return Ok(Redis {
            description: format!("Redis at {url}"),
            url,
            _private: None,
        });
    }
    let default = "redis://127.0.0.1:6379";
    if !always_private && answers_ping(default) {
        check_capacity(default, clients)?;
        return Ok(Redis {
            url: default.to_owned(),
            description: "the Redis server at 127.0.0.1:6379".to_owned(),
            _private: None,
        });
    }
    let binary = find_on_path("redis-server").ok_or_else(|| {
        let why = if always_private { "--redis private needs redis-server" } else { "no Redis server answers at 127.0.0.1:6379" };
        format!(
            "{why}, and redis-server is not installed: install it (Debian/Ubuntu: sudo apt-get install redis-server; \
             scripts/demo.sh does this), or pass --redis URL"
        )
    })?;
    let private = PrivateServer::start(&binary, clients)?;
    let url = format!("unix://{}", private.socket.display());
    Ok(Redis {
        description: format!("a private redis-server on {}", private.socket.display()),
        url,
        _private: Some(private),
    })
}

pub(crate) fn answers_ping(url: &str) -> bool {
    let Ok(mut info) = ConnectionInfo::from_url(url) else {
        return false;
    };
    info.connect_timeout = Some(Duration::from_millis(300));
    info.socket_timeout = Some(Duration::from_millis(500));
    Connection::open(&info).is_ok_and(|mut conn| cmd("PING").query::<String>(&mut conn).is_ok())
}

/// Refuses a client count the server's `maxclients` cannot hold (counting the
/// clients already connected), with the numbers in the message.
fn check_capacity(url: &str, clients: usize) -> Result<(), String> {
    let info = ConnectionInfo::from_url(url).map_err(|err| format!("bad Redis URL: {err}"))?;
    let Some((maxclients, connected)) = room(&info, url)? else {
        return Ok(());
    };
    let free = maxclients.saturating_sub(connected);
    if clients > free {
        return Err(format!(
            "--clients {clients} cannot fit: the server at {url} has maxclients {maxclients} \
             with {connected} connected, so room for {free}; lower --clients, raise maxclients \
             (redis-cli CONFIG SET maxclients {}), or pass --redis private for a server sized for N",
            clients + connected + SPARE_CLIENTS
        ));
    }
    Ok(())
}

/// The `maxclients` of the server at `info` (called `url` in messages) and
/// its clients connected now, or `None` (and a warning) if it refuses
/// `CONFIG GET`.
pub(crate) fn room(info: &ConnectionInfo, url: &str) -> Result<Option<(usize, usize)>, String> {
    let mut conn =
        Connection::open(info).map_err(|err| format!("cannot reach Redis at {url}: {err}"))?;
    let Ok((_, maxclients)) = cmd("CONFIG")
        .arg("GET")
        .arg("maxclients")
        .query::<(String, usize)>(&mut conn)
    else {
        log::warn!(
            "cannot read the maxclients of {url} (CONFIG GET refused); not checking capacity"
        );
        return Ok(None);
    };
    let info_text: String = cmd("INFO")
        .arg("clients")
        .query(&mut conn)
        .unwrap_or_default();
    let connected = info_text
        .lines()
        .find_map(|line| line.strip_prefix("connected_clients:"))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap_or(1);
    Ok(Some((maxclients, connected)))
}

pub(crate) fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A `redis-server` child process in its own temporary directory.
#[derive(Debug)]
struct PrivateServer {
    child: Child,
    dir: PathBuf,
    socket: PathBuf,
}

impl PrivateServer {
    fn start(binary: &Path, clients: usize) -> Result<PrivateServer, String> {
        let dir = std::env::temp_dir().join(format!("greenhub-demo-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
        let socket = dir.join("redis.sock");
        let log = dir.join("redis.log");
        let maxclients = clients + SPARE_CLIENTS;
        let backlog = clients.clamp(511, MAX_BACKLOG);
        // Redis checks BRPOP timeouts on its cron tick: at the default 10 Hz
        // a one-second timeout fires up to 100 ms late; at 100 Hz, 10 ms.
        let mut command = Command::new(binary);
        command
            .args(["--port", "0", "--save", "", "--appendonly", "no"])
            .arg("--unixsocket")
            .arg(&socket)
            .args(["--unixsocketperm", "700"])
            .args([
                "--maxclients",
                &maxclients.to_string(),
                "--tcp-backlog",
                &backlog.to_string(),
            ])
            .args(["--hz", "100"])
            .arg("--dir")
            .arg(&dir)
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        children::die_with_parent(&mut command);
        let child = command
            .spawn()
            .map_err(|err| format!("cannot start {}: {err}", binary.display()))?;
        children::register(&child);
        children::remove_on_signal(&[socket.clone(), log.clone(), dir.clone()]);
        let mut server = PrivateServer { child, dir, socket };
        server.wait_until_ready(&log)?;
        Ok(server)
    }

    fn wait_until_ready(&mut self, log: &Path) -> Result<(), String> {
        let start = Instant::now();
        let url = format!("unix://{}", self.socket.display());
        loop {
            if answers_ping(&url) {
                return Ok(());
            }
            let exited = self.child.try_wait().ok().flatten();
            if exited.is_some() || start.elapsed() > START_TIMEOUT {
                let tail = std::fs::read_to_string(log).unwrap_or_default();
                let last = tail
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("(no log)");
                return Err(format!("the private redis-server did not start: {last}"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        children::stop(&mut self.child);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

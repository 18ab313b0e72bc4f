//! Test support shared by the workspace's end-to-end tests: a real
//! `redis-server` behind a guard.
//!
//! [`RedisServer::start`] runs a private server on a free TCP port and a Unix
//! socket in a fresh temp dir (`--save ''`, `--appendonly no`), waits until it
//! answers `PING` (polling, no fixed sleep) and kills it when dropped. Fault
//! tests stop, resume, kill and restart it on purpose. A six-node Redis
//! Cluster behind the same kind of guard lives in `cluster.rs`
//! ([`RedisCluster`]). See `docs/testing.md`.

mod cluster;
pub use cluster::{NodeInfo, RedisCluster, Reshard, CLUSTER_TIMEOUT, NODE_TIMEOUT_MS};

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a server may take to answer its first PING.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A private `redis-server` process, killed when dropped.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    dir: PathBuf,
    port: u16,
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts a server with default settings.
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// Starts a server with extra command-line settings, such as
    /// `["--maxclients", "20"]` or `["--requirepass", "secret"]`.
    pub fn start_with(extra: &[&str]) -> RedisServer {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "greenhub-redis-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create the server's temp dir");
        let mut server = RedisServer {
            child: None,
            dir,
            port: free_port(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        server.spawn(true);
        server
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `unix://PATH`.
    pub fn unix_url(&self) -> String {
        format!("unix://{}", self.socket_path().display())
    }

    /// The TCP address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The Unix socket's path.
    pub fn socket_path(&self) -> PathBuf {
        self.dir.join("redis.sock")
    }

    /// Kills the server (SIGKILL) and waits for it to die.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and socket.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn(false);
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: libc::c_int) {
        let child = self.child.as_ref().expect("the server is running");
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        let rc = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        assert_eq!(
            rc,
            0,
            "kill({signal}) failed: {}",
            std::io::Error::last_os_error()
        );
    }

    /// Starts the server; on a fresh start, tries another port if the
    /// chosen one was taken meanwhile (another test can grab it between
    /// `free_port` and the server's bind). A restart keeps its port.
    fn spawn(&mut self, may_move: bool) {
        for attempt in 0..5 {
            if attempt > 0 {
                self.port = free_port();
            }
            if self.try_spawn() {
                return;
            }
            if !may_move {
                break;
            }
        }
        panic!(
            "redis-server did not start and answer PING (port {})",
            self.port
        );
    }

    /// One start: true once the server answers PING, false if it exited.
    fn try_spawn(&mut self) -> bool {
        let socket = self.socket_path();
        let _ = std::fs::remove_file(&socket);
        let mut child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--unixsocket")
            .arg(&socket)
            .args([
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!("cannot start redis-server ({err}); run scripts/test.sh, which installs it")
            });
        let up = wait_for_pong(&socket, &mut child);
        self.child = Some(child);
        up
    }

    /// Runs one command over a plain std socket, returning the raw reply
    /// bytes (for setting up and checking state independently of the client).
    pub fn raw_command(&self, args: &[&str]) -> Vec<u8> {
        let mut conn = UnixStream::connect(self.socket_path()).expect("connect to the test server");
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        conn.write_all(request.as_bytes()).unwrap();
        let mut reply = vec![0u8; 64 * 1024];
        let n = conn.read(&mut reply).unwrap();
        reply.truncate(n);
        reply
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.child.is_some() {
            // A paused server ignores SIGKILL only until it is resumed.
            self.resume();
        }
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Polls until the server answers PING (true) or exits (false).
fn wait_for_pong(socket: &Path, child: &mut Child) -> bool {
    let start = Instant::now();
    loop {
        if let Ok(mut conn) = UnixStream::connect(socket) {
            let mut reply = [0u8; 7];
            conn.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
            // A server with a password answers -NOAUTH: it is up all the same.
            if conn.write_all(b"PING\r\n").is_ok()
                && conn.read_exact(&mut reply).is_ok()
                && (&reply == b"+PONG\r\n" || reply.starts_with(b"-NOAUTH"))
            {
                return true;
            }
        }
        if matches!(child.try_wait(), Ok(Some(_))) {
            return false;
        }
        assert!(
            start.elapsed() < START_TIMEOUT,
            "redis-server did not answer PING within {START_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A TCP port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs an example built by `cargo test` beside the calling test
/// (`target/<profile>/examples/NAME`), with `REDIS_URL` set if given, and
/// returns what it printed. Panics if it failed or was not built.
pub fn run_example(name: &str, redis_url: Option<&str>) -> String {
    let exe = std::env::current_exe().expect("the test's own path");
    let path = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run the whole `cargo test -p <crate>`, which builds the examples",
        path.display()
    );
    let mut command = Command::new(&path);
    if let Some(url) = redis_url {
        command.env("REDIS_URL", url);
    }
    let output = command.output().expect("run the example");
    assert!(
        output.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// The output an example promises: the ```text block of its `//!` header.
pub fn promised_output(source: &str) -> String {
    let lines: Vec<&str> = source
        .lines()
        .skip_while(|l| !l.starts_with("//! ```text"))
        .skip(1)
        .take_while(|l| !l.starts_with("//! ```"))
        .map(|l| {
            l.strip_prefix("//! ")
                .or_else(|| l.strip_prefix("//!"))
                .unwrap_or(l)
        })
        .collect();
    lines.join("\n") + "\n"
}

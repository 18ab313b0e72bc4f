//! Test support shared by the workspace's end-to-end tests: a real
//! `redis-server` behind a guard.
//!
//! [`RedisServer::start`] runs a private server on a free TCP port and a Unix
//! socket in a fresh temp dir (`--save ''`, `--appendonly no`), waits until it
//! answers `PING` (polling, no fixed sleep) and kills it when dropped. Fault
//! tests stop, resume, kill and restart it on purpose. A six-node Redis
//! Cluster behind the same kind of guard lives in `cluster.rs`
//! ([`RedisCluster`]); certificates and a server with a TLS port live in
//! `tls.rs` ([`TlsFiles`], [`TlsServer`]). A TCP fault proxy to put between
//! client and server is in `proxy.rs` ([`FaultProxy`]). See `docs/testing.md`.

mod cluster;
mod proxy;
pub use cluster::{NodeInfo, RedisCluster, Reshard, CLUSTER_TIMEOUT, NODE_TIMEOUT_MS};
mod tls;
pub use proxy::{Fault, FaultProxy};
pub use tls::{CertFiles, TlsFiles, TlsServer};

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a server may take to answer its first PING.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`wait_until`] polls a condition before the test fails: far
/// more than any machine needs, however busy, so that running out means the
/// condition was never going to hold.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Polls `condition` every 5 ms until it holds, and panics, naming `what`,
/// if it still does not after [`PATIENCE`]. This is how a test waits for
/// "the other side is ready" instead of sleeping a fixed time. It sleeps with
/// `greenhub::sleep`, so inside a coroutine the hub goes on running the
/// coroutines the test waits for, and on a plain thread it blocks.
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < PATIENCE,
            "still not {what} after {PATIENCE:?}"
        );
        greenhub::sleep(Duration::from_millis(5));
    }
}

/// Sends `GET k` to `url` every millisecond, without retries, until the
/// server refuses it with `LOADING`, and returns that refusal. Refusals and
/// resets while a restarted server dies and starts again, and answers from
/// the old server, are passed over. Call it in a coroutine.
pub fn until_refused_while_loading(url: &str) -> greenhub_redis::Error {
    use greenhub_redis::prelude::*;
    let mut plain = greenhub_redis::Client::open(url)
        .unwrap()
        .with_retry(greenhub_redis::RetryPolicy::never());
    let start = Instant::now();
    loop {
        match plain.get::<Option<String>>("k") {
            Err(err) if err.code() == Some("LOADING") => return err,
            Err(err) => assert!(err.is_io(), "{err}"),
            Ok(_) => {}
        }
        assert!(start.elapsed() < PATIENCE, "never saw LOADING");
        greenhub::sleep(Duration::from_millis(1));
    }
}

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

    /// Starts a server whose data set takes about a second to load: after a
    /// `restart` it answers `LOADING` for that long (5,000 keys at 200 µs
    /// each, with the event loop run every KiB of the file so that clients
    /// are answered meanwhile). It holds `k` = `"v"` and `n` = 0.
    pub fn start_loading_for_a_second() -> RedisServer {
        let server = RedisServer::start_with(&[
            "--key-load-delay",
            "200",
            "--loading-process-events-interval-bytes",
            "1024",
        ]);
        let fill = "for i = 1, 5000 do redis.call('SET', 'fill:' .. i, i) end \
                    redis.call('SET', 'k', 'v') redis.call('SET', 'n', 0) return 1";
        assert_eq!(server.raw_command(&["EVAL", fill, "0"]), b":1\r\n");
        assert_eq!(server.raw_command(&["SAVE"]), b"+OK\r\n");
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
    /// It blocks the calling thread, a hub's too, until the server has
    /// answered and let go of the connection.
    pub fn raw_command(&self, args: &[&str]) -> Vec<u8> {
        let mut conn = UnixStream::connect(self.socket_path()).expect("connect to the test server");
        conn.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        conn.write_all(request.as_bytes()).unwrap();
        // Read until the reply is complete: one read may return part of it.
        let mut reply = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        while reply_len(&reply).is_none() {
            let n = conn.read(&mut chunk).expect("the test server's reply");
            assert!(n > 0, "the test server closed the connection mid-reply");
            reply.extend_from_slice(&chunk[..n]);
        }
        hang_up(conn);
        reply
    }

    /// How many clients the server holds in a blocking command such as
    /// BRPOP (`blocked_clients` in `INFO clients`): the server's own word
    /// that a request has arrived and is waiting.
    pub fn blocked_clients(&self) -> usize {
        let info = self.raw_command(&["INFO", "clients"]);
        String::from_utf8_lossy(&info)
            .lines()
            .find_map(|line| line.strip_prefix("blocked_clients:"))
            .and_then(|n| n.trim().parse().ok())
            .expect("INFO clients reports blocked_clients")
    }
}

/// The length of the first complete RESP2 reply in `buf`, or `None` while
/// it is incomplete.
fn reply_len(buf: &[u8]) -> Option<usize> {
    let line_end = buf.windows(2).position(|w| w == b"\r\n")?;
    let after_line = line_end + 2;
    let number = || -> i64 {
        std::str::from_utf8(&buf[1..line_end])
            .ok()
            .and_then(|n| n.parse().ok())
            .expect("a RESP length")
    };
    match buf[0] {
        b'$' => match number() {
            n if n < 0 => Some(after_line),
            n => {
                let end = after_line + n as usize + 2;
                (buf.len() >= end).then_some(end)
            }
        },
        b'*' => {
            let mut at = after_line;
            for _ in 0..number().max(0) {
                at += reply_len(&buf[at..])?;
            }
            Some(at)
        }
        _ => Some(after_line),
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
                hang_up(conn);
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

/// Closes a connection to the server and returns once the server has let go
/// of it: the server reads end of file, frees the client and closes its
/// side, which reads here as end of file. A test that counts the server's
/// clients (maxclients, CLIENT KILL) then finds none of the harness's left.
fn hang_up(mut conn: UnixStream) {
    let _ = conn.shutdown(Shutdown::Write);
    let _ = conn.set_read_timeout(Some(PATIENCE));
    let mut rest = [0u8; 256];
    while matches!(conn.read(&mut rest), Ok(n) if n > 0) {}
}

/// Starts a private server and runs `body` in a hub with a client for it;
/// `options` is appended to the URL (`"?socket_timeout=5"`, or `""`).
pub fn with_client(options: &str, body: impl FnOnce(greenhub_redis::Client) + 'static) {
    let server = RedisServer::start();
    let url = server.url() + options;
    greenhub::run(move || body(greenhub_redis::Client::open(&url).unwrap()));
}

/// The process's peak resident memory (`VmHWM`), in bytes.
pub fn peak_rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: usize = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmHWM line");
    kib * 1024
}

/// A small deterministic random number generator (xorshift64*), so that a
/// test's "random" inputs are the same on every run and a failure can be
/// replayed from its seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value; zero is remapped).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
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

//! Helpers shared by the runtime's integration tests.
#![allow(dead_code, unreachable_pub)]

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The one timing tolerance: how late a timer may fire, or how long the
/// hub's thread may go without the CPU, on a busy machine before a test calls
/// it wrong. Tests assert order and completion, and use this only as a loose
/// upper bound. With every core busy and the suite running (what
/// `scripts/stress-tests.sh` does), a 5 ms sleep was seen to end 0.3 s late;
/// a second leaves room for worse.
pub const SLACK: Duration = Duration::from_secs(1);

/// Sets a flag when dropped: proves a coroutine's stack was unwound.
pub struct DropFlag(pub Rc<RefCell<Vec<&'static str>>>, pub &'static str);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.borrow_mut().push(self.1);
    }
}

/// A shared log that coroutines append to.
pub fn journal() -> Rc<RefCell<Vec<&'static str>>> {
    Rc::new(RefCell::new(Vec::new()))
}

/// Goes 100 KiB deep on the calling coroutine's stack: the frame's pages are
/// all written (stack probes touch each one), so the stack keeps them
/// resident until the hub trims it.
#[inline(never)]
pub fn touch_100k() -> u8 {
    let mut frame = [0u8; 100 * 1024];
    frame[0] = 1;
    frame[100 * 1024 - 1] = 1;
    std::hint::black_box(&mut frame);
    frame[0]
}

/// Runs `n` coroutines at once that each go 100 KiB deep (`touch_100k`) and
/// joins them: their `n` stacks go back to the pool with those pages
/// resident. Call it on a hub.
pub fn deep_wave(n: usize) {
    let wave: Vec<_> = (0..n).map(|_| greenhub::spawn(touch_100k)).collect();
    for coroutine in wave {
        coroutine.join().unwrap();
    }
}

/// Parks `n` fresh coroutines, which take their stacks from the pool, and
/// counts those whose stack holds more than 64 KiB resident (`dump()`'s
/// `stack_kib`); kills them before returning, so their stacks go back to
/// the pool. Call it on a hub.
pub fn deep_stacks_of_fresh(n: usize) -> usize {
    deep_stacks_of_fresh_sized(n, None, 64)
}

/// As [`deep_stacks_of_fresh`], on stacks of `size` (`None`: the default)
/// and counting those holding more than `over_kib`.
pub fn deep_stacks_of_fresh_sized(n: usize, size: Option<usize>, over_kib: usize) -> usize {
    let parked: Vec<_> = (0..n)
        .map(|_| {
            let builder = match size {
                Some(size) => greenhub::Builder::new().stack_size(size),
                None => greenhub::Builder::new(),
            };
            builder
                .spawn(|| greenhub::sleep(Duration::from_secs(3600)))
                .unwrap()
        })
        .collect();
    greenhub::yield_now();
    let deep = greenhub::dump()
        .coroutines
        .iter()
        .filter(|c| c.stack_kib > over_kib)
        .count();
    for coroutine in &parked {
        coroutine.kill();
    }
    for coroutine in parked {
        let _ = coroutine.join();
    }
    deep
}

/// Idles the hub in 50 ms sleeps until at most 64 of `n` fresh coroutines'
/// stacks hold more than 64 KiB, or for 5 s at most, and returns the last
/// count (`deep_stacks_of_fresh`). A loaded machine gives the hub fewer
/// idle waits per sleep, so the test waits for the trim rather than timing it.
pub fn deep_stacks_after_idling(n: usize) -> usize {
    let mut deep = usize::MAX;
    for _ in 0..100 {
        greenhub::sleep(Duration::from_millis(50));
        deep = deep_stacks_of_fresh(n);
        if deep <= 64 {
            break;
        }
    }
    deep
}

/// Checks a Chrome trace-event JSON as the exports write it (one event a
/// line): on every track each `E` closes a `B`, one span at most is open at
/// a time and none is left open, and timestamps never go back. The error
/// names the first line that breaks one of these.
pub fn chrome_json_balanced(json: &str) -> Result<(), String> {
    let field = |line: &str, key: &str| -> Option<String> {
        let at = line.find(&format!("\"{key}\":"))? + key.len() + 3;
        let rest = &line[at..];
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        Some(rest[..end].trim_matches('"').to_owned())
    };
    let mut depth = std::collections::BTreeMap::<u64, i64>::new();
    let mut last = f64::MIN;
    for line in json.lines().filter(|l| l.starts_with("{\"ph\"")) {
        let ph = field(line, "ph").unwrap();
        if ph == "M" {
            continue;
        }
        let tid: u64 = field(line, "tid").unwrap().parse().unwrap();
        let ts: f64 = field(line, "ts").unwrap().parse().unwrap();
        if ts < last {
            return Err(format!("ts {ts} after {last}: {line}"));
        }
        last = ts;
        let d = depth.entry(tid).or_default();
        match ph.as_str() {
            "B" => *d += 1,
            "E" if *d == 0 => return Err(format!("E without B: {line}")),
            "E" => *d -= 1,
            _ => {}
        }
        if *d > 1 {
            return Err(format!("two spans open on track {tid}: {line}"));
        }
    }
    match depth.iter().find(|(_, d)| **d != 0) {
        Some((tid, d)) => Err(format!("track {tid} left {d} open")),
        None => Ok(()),
    }
}

/// A writer for the console that holds every write until `release` is set
/// (a reader that stopped reading: a full pipe, a terminal after Ctrl-S, or
/// the writer thread preempted), then keeps what it was given in `out`.
/// `taken` is set as a write begins. Clones share all three.
#[derive(Clone, Debug, Default)]
pub struct HeldWriter {
    pub out: Arc<Mutex<Vec<u8>>>,
    pub taken: Arc<AtomicBool>,
    pub release: Arc<AtomicBool>,
}

impl Write for HeldWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.taken.store(true, Ordering::SeqCst);
        while !self.release.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.out.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether this process is the child that [`run_child`] started for test
/// `name` (its environment variable `var` names the test).
pub fn is_child(var: &str, name: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v == name)
}

/// Whether this process is a child started for another test: the tests
/// that are not its own return at once.
pub fn other_child(var: &str, name: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v != name)
}

/// Re-runs this test binary for the one test `name`, with `var` set to it,
/// and returns (success, stdout, stderr); a child still running after 20 s
/// is killed and reported as a hang. For checks of panics, aborts, stderr
/// and process-wide counts that other tests must not disturb.
pub fn run_child(var: &str, name: &str) -> (bool, String, String) {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(var, name)
        .env_remove("RUST_BACKTRACE")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "child {name} hung (killed after 20 s); stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

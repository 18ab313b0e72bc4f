//! Review (branch review-console2) of the fixes to the trace recorder and
//! the console (3e05c73..267821f). `review_*` tests state one defect each
//! and failed while it was there; `holds_*` tests document what was checked
//! and found sound.

mod util;

use std::cell::Cell;
use std::io::Write;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use greenhub::sync::Channel;
use greenhub::JoinError;
use util::{chrome_json_balanced, HeldWriter, SLACK};

/// The console tests count this process's console threads: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

/// Threads of this process whose name starts `greenhub-consol` (the
/// sampler `greenhub-console` and the writer `greenhub-console-out`, both
/// cut to 15 bytes by the kernel).
fn console_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.starts_with("greenhub-consol"))
        .count()
}

/// Waits up to `limit` for the console threads to be gone; their count.
fn console_threads_after(limit: Duration) -> usize {
    let start = Instant::now();
    loop {
        let n = console_threads();
        if n == 0 || start.elapsed() > limit {
            return n;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn fast() -> greenhub::console::Options {
    greenhub::console::Options {
        refresh: Duration::from_millis(10),
        ..Default::default()
    }
}

/// A writer that blocks in its writes until `release` (a reader that
/// stopped reading), with its `taken` and `release` flags.
fn stuck() -> (HeldWriter, Arc<AtomicBool>, Arc<AtomicBool>) {
    let writer = HeldWriter::default();
    let (taken, release) = (writer.taken.clone(), writer.release.clone());
    (writer, taken, release)
}

/// Spawns `n` coroutines named `w0`, `w1`, ..., each of which, once it has
/// run (the caller yields), waits for one message on `gate`.
fn named_waiters(n: usize, gate: &Channel<()>) -> Vec<greenhub::JoinHandle<()>> {
    (0..n)
        .map(|i| {
            let gate = gate.clone();
            greenhub::Builder::new()
                .name(format!("w{i}"))
                .spawn(move || {
                    let _ = gate.recv();
                })
                .unwrap()
        })
        .collect()
}

/// Sleeps in steps until `flag` (the writer took a frame), at most SLACK.
fn until(flag: &AtomicBool) {
    let start = Instant::now();
    while !flag.load(Ordering::SeqCst) && start.elapsed() < SLACK {
        greenhub::sleep(Duration::from_millis(1));
    }
    assert!(flag.load(Ordering::SeqCst), "the writer took a frame");
}

/// A coroutine that counts its 5 ms sleeps: whether the hub runs on.
fn ticker() -> (Rc<Cell<u32>>, greenhub::JoinHandle<()>) {
    let ticks = Rc::new(Cell::new(0));
    let count = ticks.clone();
    let handle = greenhub::spawn(move || loop {
        greenhub::sleep(Duration::from_millis(5));
        count.set(count.get() + 1);
    });
    (ticks, handle)
}

// ---- defects the review found (each failed before its fix) ----

/// Finding A: "the calling coroutine sleeps meanwhile, so the hub runs on"
/// (docs/tracing.md, `Console` docs). `Mailbox::wait_idle` slept in 1 ms
/// steps, but inside a `timeout` scope that has elapsed every park returns
/// at once (no suspend), so the loop spun the hub's thread for the whole
/// second: a ticker sleeping 5 ms got 0 ticks while `stop` waited ~1 s.
/// Now `stop` there waits no more than any other wait in that scope: it
/// closes the mailbox and returns at once, and the hub runs on.
#[test]
fn review_stop_in_an_elapsed_timeout_scope_lets_the_hub_run() {
    let _serial = serial();
    let (writer, taken, release) = stuck();
    let waited = greenhub::run(move || {
        let console = greenhub::console::start_with_writer(fast(), Box::new(writer)).unwrap();
        until(&taken);
        let waited = Rc::new(Cell::new(Duration::ZERO));
        let out = waited.clone();
        let _ = greenhub::timeout(Duration::from_millis(5), move || {
            greenhub::sleep(Duration::from_millis(50)); // the scope elapses
            let start = Instant::now();
            console.stop();
            out.set(start.elapsed());
        });
        waited.get()
    });
    release.store(true, Ordering::SeqCst);
    // It spun for the whole second (1.000 s) before.
    assert!(
        waited < Duration::from_millis(500),
        "stop in an elapsed scope waited {waited:?}"
    );
}

/// A writer whose write panics (a custom `Write` with a bug).
struct Panicking;

impl Write for Panicking {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        panic!("review: the writer panics (expected in this test)");
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Finding B: a writer thread that dies inside a write (its `Write`
/// panics) leaves `Slot::writing` true forever (`write_frames` sets it
/// before the write and clears it only after, console.rs:484 and :495), and
/// `failed` never set: the console never ends (its view stays open, it
/// keeps rendering into a mailbox nobody reads), and every `stop` waits the
/// full second for a write that no thread is doing.
#[test]
fn review_a_writer_that_died_is_not_waited_for() {
    let _serial = serial();
    let (stop_took, reopened) = greenhub::run(|| {
        let console = greenhub::console::start_with_writer(fast(), Box::new(Panicking)).unwrap();
        // The writer is dead once the console, seeing it, has closed its
        // view. (A fixed 200 ms sleep here was too short on a loaded
        // machine: the writer was still printing its panic, a write in
        // progress, and `stop` rightly waited its full second for it.)
        let start = Instant::now();
        let reopened = loop {
            let reopened = greenhub::console::View::new(Default::default())
                .map(drop)
                .map_err(|e| e.kind());
            if reopened.is_ok() || start.elapsed() > Duration::from_secs(30) {
                break reopened;
            }
            greenhub::sleep(Duration::from_millis(5));
        };
        let start = Instant::now();
        console.stop();
        (start.elapsed(), reopened)
    });
    assert_eq!(reopened, Ok(()), "the console ended: its view closed");
    assert!(
        stop_took < Duration::from_millis(500),
        "stop waited {stop_took:?} for a dead writer thread"
    );
}

/// Finding C: `Trace::at_start` puts every coroutine alive at `start` in
/// the exports, but `Recorder::name` (record.rs:319-330) still prunes the
/// finished coroutines' names to "the ids the ring still holds", on the
/// claim that "a pruned coroutine ... has no event left to export". One
/// alive at start that finished has a track (from `at_start`) but lost its
/// name: with a ring of 16 and 1,100 named coroutines parked at start that
/// then finish, most are exported as `coroutine-N`.
#[test]
fn review_names_of_coroutines_parked_at_start_survive_the_prune() {
    let (trace, named) = greenhub::run(|| {
        let gate = Channel::<()>::unbounded();
        let workers = named_waiters(1100, &gate);
        greenhub::yield_now(); // all park on the channel
        greenhub::trace::start_with_capacity(16);
        let named: Vec<(u64, String)> = workers
            .iter()
            .enumerate()
            .map(|(i, w)| (w.id(), format!("w{i}")))
            .collect();
        for _ in 0..1100 {
            gate.send(()).unwrap();
        }
        for w in workers {
            w.join().unwrap();
        }
        (greenhub::trace::stop(), named)
    });
    let lost: Vec<&(u64, String)> = named
        .iter()
        .filter(|(id, name)| trace.at_start.contains_key(id) && trace.name_of(*id) != *name)
        .collect();
    assert!(
        lost.is_empty(),
        "{} of 1100 coroutines in at_start are exported nameless, e.g. {:?} as {:?}",
        lost.len(),
        lost.first().map(|l| &l.1),
        lost.first().map(|l| trace.name_of(l.0))
    );
}

/// Finding D: `at_start` is "never dropped by its wrap", but the events
/// after it are: a coroutine parked at start whose wake and `Finish` the
/// ring dropped is drawn parked until the end of the recording, though it
/// finished long before (the JSON's open span is closed "at the trace's
/// end", export_json.rs:144; svg.rs:208 `spans` likewise). Before the
/// change it was absent; now it is a ghost. Here 20 coroutines finish at
/// once, then main sleeps 60 ms; with a ring of 8, w0's track ends at the
/// end of the trace.
#[test]
fn review_a_finished_coroutine_is_not_drawn_alive_to_the_end() {
    let (trace, id, finished_at) = greenhub::run(|| {
        let gate = Channel::<()>::unbounded();
        let workers = named_waiters(20, &gate);
        greenhub::yield_now();
        let start = Instant::now();
        greenhub::trace::start_with_capacity(8);
        let id = workers[0].id();
        gate.close();
        for w in workers {
            w.join().unwrap();
        }
        let finished_at = start.elapsed();
        greenhub::sleep(Duration::from_millis(60));
        (greenhub::trace::stop(), id, finished_at)
    });
    assert!(trace.dropped > 0, "the ring wrapped");
    let json = trace.to_chrome_json();
    let track = format!("\"tid\":{},", id + 1);
    let last_end: f64 = json
        .lines()
        .filter(|l| l.contains("\"ph\":\"E\"") && l.contains(&track))
        .filter_map(|l| {
            let at = l.find("\"ts\":")? + 5;
            let rest = &l[at..];
            rest[..rest.find([',', '}'])?].parse().ok()
        })
        .fold(0.0, f64::max);
    let finished_us = finished_at.as_secs_f64() * 1e6;
    assert!(
        last_end <= finished_us + 30_000.0,
        "w0 finished by {finished_us:.0} µs but its track is open until {last_end:.0} µs \
         (trace lasts {:?})",
        trace.duration
    );
}

/// Finding E (leak): a `Console` that outlives its hub's `run` (returned
/// from `main`) keeps its view, so its sampler thread goes on waking every
/// millisecond after `run` returned, for as long as the value is held:
/// `run`'s shutdown kills the console coroutine (whose `Sender` closes the
/// writer) but the `View` is in the `Rc` the `Console` shares
/// (console.rs:293). The docs say the console coroutine's end when `run`
/// ends behaves as a stop.
#[test]
fn review_a_console_outliving_its_run_keeps_no_thread() {
    let _serial = serial();
    assert_eq!(console_threads_after(SLACK), 0, "no console thread before");
    let console = greenhub::run(|| {
        let console =
            greenhub::console::start_with_writer(fast(), Box::new(std::io::sink())).unwrap();
        greenhub::sleep(Duration::from_millis(30));
        console
    });
    let left = console_threads_after(Duration::from_millis(300));
    drop(console);
    assert_eq!(
        left, 0,
        "{left} console thread(s) still running 300 ms after run returned, while the \
         Console is held"
    );
}

// ---- checked and found sound ----

/// Holds: a console plus a child parked forever on a channel, with main
/// joining it: the deadlock is reported (no hang), and the report names
/// every parked coroutine but the console.
#[test]
fn holds_deadlock_with_a_console_names_every_parked_but_the_console() {
    let _serial = serial();
    let result = within(SLACK * 5, || {
        greenhub::run(|| {
            let _console =
                greenhub::console::start_with_writer(fast(), Box::new(std::io::sink())).unwrap();
            let never = Channel::<u32>::unbounded();
            let children: Vec<_> = (0..3)
                .map(|i| {
                    let never = never.clone();
                    greenhub::Builder::new()
                        .name(format!("stuck{i}"))
                        .spawn(move || {
                            let _ = never.recv();
                        })
                        .unwrap()
                })
                .collect();
            greenhub::sleep(Duration::from_millis(30)); // a frame or two
            let first = children.into_iter().next().unwrap();
            match first.join() {
                Err(JoinError::Deadlock(message)) => Ok(message),
                other => Err(format!("{other:?}")),
            }
        })
    });
    let message = result
        .expect("a console turned the deadlock into a hang")
        .unwrap();
    for name in ["main (join)", "stuck0 (", "stuck1 (", "stuck2 ("] {
        assert!(message.contains(name), "{name} missing: {message}");
    }
    assert!(!message.contains("console"), "{message}");
}

/// Holds: a console plus user timers (some due near the console's own
/// deadlines) and nothing else is no deadlock: every timer fires and main's
/// wait ends normally; the same after the user timers are gone and a new
/// one is set while the console alone sleeps.
#[test]
fn holds_a_console_and_user_timers_is_no_deadlock() {
    let _serial = serial();
    let got = within(SLACK * 5, || {
        greenhub::run(|| {
            let _console =
                greenhub::console::start_with_writer(fast(), Box::new(std::io::sink())).unwrap();
            let ch = Channel::<u32>::unbounded();
            for i in 0..20u32 {
                let ch = ch.clone();
                greenhub::spawn(move || {
                    greenhub::sleep(Duration::from_millis(10 * u64::from(i % 5) + 10));
                    ch.send(i).unwrap();
                });
            }
            let mut sum = 0;
            for _ in 0..20 {
                sum += ch.recv().unwrap();
            }
            greenhub::sleep(Duration::from_millis(25)); // the console alone
            let late = greenhub::spawn_later(Duration::from_millis(40), || 7);
            sum + late.join().unwrap()
        })
    });
    assert_eq!(got, Some((0..20).sum::<u32>() + 7));
}

/// Holds (documented): with the writer stuck, `stop` from a coroutine
/// returns after about a second and the hub runs on meanwhile; dropped
/// while its owner unwinds (killed), the thread waits, at most about a
/// second; and `run`'s end does not hang on the stuck writer either.
#[test]
fn holds_stop_with_a_stuck_writer_is_bounded_inside_and_while_unwinding() {
    let _serial = serial();
    let (writer, taken, release) = stuck();
    let (writer2, taken2, release2) = stuck();
    let outcome = within(SLACK * 10, move || {
        let start = Instant::now();
        let r = greenhub::run(move || {
            let console = greenhub::console::start_with_writer(fast(), Box::new(writer)).unwrap();
            until(&taken);
            let (ticks, t) = ticker();
            let began = Instant::now();
            console.stop();
            let stop = (began.elapsed(), ticks.get());
            // A console owned by a coroutine that is killed.
            let console = greenhub::console::start_with_writer(fast(), Box::new(writer2)).unwrap();
            until(&taken2);
            let owner = greenhub::spawn(move || {
                let _console = console;
                greenhub::sleep(SLACK * 100);
            });
            greenhub::sleep(Duration::from_millis(5));
            let began = Instant::now();
            owner.kill();
            let _ = owner.join();
            t.kill();
            (stop, began.elapsed())
        });
        (r, start.elapsed())
    });
    release.store(true, Ordering::SeqCst);
    release2.store(true, Ordering::SeqCst);
    let (((stop, ticks), unwinding), total) = outcome.expect("stop or run hung on a stuck writer");
    assert!(
        stop >= Duration::from_millis(900) && stop < SLACK * 2,
        "{stop:?}"
    );
    assert!(ticks >= 20, "the hub ran on during stop: {ticks} ticks");
    assert!(unwinding < SLACK * 2, "{unwinding:?}");
    assert!(total < SLACK * 6, "{total:?}");
}

/// Holds: consoles started and stopped (or dropped) in a loop on one hub,
/// and across runs on one thread, each open right after the last closed and
/// leave no console thread behind; the console of an earlier `run` does not
/// hide the next `run`'s deadlock.
#[test]
fn holds_consoles_in_a_loop_and_across_runs_leave_no_thread() {
    let _serial = serial();
    assert_eq!(console_threads_after(SLACK), 0, "no console thread before");
    greenhub::run(|| {
        for i in 0..30 {
            let console =
                greenhub::console::start_with_writer(fast(), Box::new(std::io::sink())).unwrap();
            greenhub::sleep(Duration::from_millis(if i % 3 == 0 { 12 } else { 1 }));
            if i % 2 == 0 {
                console.stop();
            } else {
                drop(console);
            }
        }
    });
    for _ in 0..3 {
        let deadlock = within(SLACK * 5, || {
            greenhub::run(|| {
                let _console =
                    greenhub::console::start_with_writer(fast(), Box::new(std::io::sink()))
                        .unwrap();
                greenhub::sleep(Duration::from_millis(15));
                Channel::<u32>::unbounded().recv().is_err()
            })
        });
        assert_eq!(deadlock, Some(true));
    }
    assert_eq!(console_threads_after(SLACK), 0, "console threads left");
}

/// Holds: start/stop repeatedly with coroutines spawned, parked, killed
/// while parked before the start, and finished in between, into rings of
/// 1..=24: every JSON is balanced (one span open at a time per track) and
/// in time order, `at_start` holds exactly the coroutines alive at start
/// (the caller `Running`, the parked `Parked`), and the living keep their
/// names.
#[test]
fn holds_repeated_recordings_with_kills_before_start_balance() {
    use greenhub::trace::AtStart;
    for capacity in 1..=24 {
        greenhub::run(|| {
            let mut parked = Vec::new();
            for round in 0..4 {
                for i in 0..3 {
                    let gate = Channel::<()>::unbounded();
                    let inner = gate.clone();
                    let handle = greenhub::Builder::new()
                        .name(format!("r{round}p{i}"))
                        .spawn(move || {
                            let _ = inner.recv();
                        })
                        .unwrap();
                    parked.push((handle, gate));
                }
                let short = greenhub::spawn(|| greenhub::sleep(Duration::from_millis(1)));
                greenhub::yield_now();
                greenhub::trace::start_with_capacity(capacity);
                let (victim, _) = parked.remove(0);
                victim.kill();
                let _ = victim.join();
                let (released, gate) = parked.remove(0);
                gate.send(()).unwrap();
                released.join().unwrap();
                short.join().unwrap();
                let fresh = greenhub::spawn(|| greenhub::sleep(Duration::from_millis(1)));
                fresh.join().unwrap();
                let trace = greenhub::trace::stop();
                chrome_json_balanced(&trace.to_chrome_json())
                    .unwrap_or_else(|e| panic!("capacity {capacity} round {round}: {e}"));
                assert_eq!(trace.at_start.get(&0), Some(&AtStart::Running));
                for (p, _) in &parked {
                    assert!(
                        matches!(trace.at_start.get(&p.id()), Some(AtStart::Parked { .. })),
                        "{:?}",
                        trace.at_start
                    );
                    assert_eq!(trace.name_of(p.id()), p.name().unwrap());
                }
                let _ = trace.to_svg(&Default::default());
            }
            for (p, _) in parked {
                p.kill();
            }
        });
    }
}

//! A randomized schedule: thousands of coroutines park on sockets, queues,
//! timers and helper jobs, inside nested timeouts, while a killer kills
//! random ones. Every operation must end exactly once with the outcome its
//! inputs decide, and when it is over nothing may be left registered: no
//! timer, no socket, no parked coroutine. The seed is fixed (and printed),
//! so a failure replays; `SCHEDULE_SEED=N` tries another.

use std::cell::Cell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenhub::net::UnixStream;
use greenhub::sync::{Channel, Event, Semaphore};

const COROUTINES: usize = 2000;
const OPS_EACH: usize = 12;

/// xorshift64*: small, fast, reproducible.
struct Rng(Cell<u64>);

impl Rng {
    fn below(&self, n: u64) -> u64 {
        let mut x = self.0.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// Counts each operation's end: by return or by unwinding.
struct Ledger {
    started: Cell<u64>,
    ended: Cell<u64>,
    wrong: Cell<u64>,
}

struct Ends<'a>(&'a Ledger);

impl Drop for Ends<'_> {
    fn drop(&mut self) {
        self.0.ended.set(self.0.ended.get() + 1);
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// One random operation; an error says what it was and how it ended when
/// its outcome was the wrong one.
fn operation(rng: &Rng, shared: &Shared) -> Result<(), String> {
    let kind = rng.below(6);
    let mut what = String::new();
    let right = match kind {
        // A sleep inside a timeout. One at least as long as the timeout is
        // always cut: its deadline is taken later. One that ends well before
        // the timeout (a 50 ms timeout) is never cut, unless the thread
        // stalled for that long before the sleep took its deadline: the
        // stall up to the sleep's call is measured, and only the few
        // instructions from there to its deadline are not. A sleep a
        // millisecond or two shorter than its timeout is not judged: a
        // preemption that long between the two deadlines (a loaded machine
        // gives them) cuts it rightly.
        0 => {
            let sleep = rng.below(4);
            let limit = [0, 1, 2, 3, 50][rng.below(5) as usize];
            let started = Instant::now();
            let sleeps_at = Cell::new(started);
            let outcome = greenhub::timeout(ms(limit), || {
                sleeps_at.set(Instant::now());
                greenhub::sleep(ms(sleep))
            });
            let stalled = sleeps_at.get() - started;
            what = format!(
                "sleep {sleep} ms in a timeout of {limit} ms: {outcome:?} after {:?}, \
                 {stalled:?} of it before the sleep",
                started.elapsed()
            );
            if sleep == 0 {
                outcome.is_ok() // a zero sleep does not park
            } else if sleep >= limit {
                outcome.is_err()
            } else if limit == 50 {
                outcome.is_ok() || stalled + ms(sleep + 30) >= ms(limit)
            } else {
                true
            }
        }
        // A round trip through a socket pair, echoed by a partner coroutine.
        1 => {
            let (mut a, b) = UnixStream::pair().unwrap();
            let echo = greenhub::spawn(move || {
                let mut b = b;
                let mut byte = [0; 1];
                if b.read_exact(&mut byte).is_ok() {
                    let _ = b.write_all(&byte);
                }
            });
            let sent = [rng.below(256) as u8];
            a.write_all(&sent).unwrap();
            let mut got = [0; 1];
            let read = a.read_exact(&mut got);
            what = format!("socket round trip: {read:?}, sent {sent:?}, got {got:?}");
            let _ = echo.join();
            read.is_ok() && got == sent
        }
        // A hand-off through a bounded channel: what is sent is received.
        2 => {
            let value = rng.below(1_000_000);
            shared.channel.send(value).unwrap();
            let got = shared.channel.recv();
            what = format!("channel hand-off: {got:?}");
            got.is_ok()
        }
        // An event nobody sets, waited with a timeout: always times out.
        3 => {
            let waited = shared.never.wait_timeout(ms(rng.below(3)));
            what = format!("wait on an event nobody sets: {waited:?}");
            waited.is_err()
        }
        // A permit of a small semaphore, held across a sleep.
        4 => {
            let permit = shared.permits.acquire().unwrap();
            greenhub::sleep(ms(rng.below(2)));
            drop(permit);
            true
        }
        // A helper-thread job, perhaps cut by a timeout of its own.
        _ => {
            let cut = rng.below(2) == 0;
            let job = greenhub::timeout(if cut { ms(0) } else { ms(10_000) }, || {
                greenhub::unblock(|| 6 * 7)
            });
            what = format!("helper job, cut: {cut}: {job:?}");
            match job {
                Ok(Ok(42)) => !cut,
                Err(_) => cut,
                _ => false,
            }
        }
    };
    if right {
        Ok(())
    } else {
        Err(format!("operation {kind}: {what}"))
    }
}

struct Shared {
    channel: Channel<u64>,
    never: Event,
    permits: Semaphore,
}

#[test]
fn random_parks_under_random_kills_and_timeouts_end_exactly_once_and_leave_nothing() {
    let seed: u64 = std::env::var("SCHEDULE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234_abcd);
    eprintln!("schedule seed {seed}");
    let (ledger, killed, left) = greenhub::run(move || {
        let ledger = Rc::new(Ledger {
            started: Cell::new(0),
            ended: Cell::new(0),
            wrong: Cell::new(0),
        });
        let shared = Rc::new(Shared {
            channel: Channel::bounded(COROUTINES),
            never: Event::new(),
            permits: Semaphore::new(8),
        });
        let workers: Vec<_> = (0..COROUTINES)
            .map(|n| {
                let (ledger, shared) = (ledger.clone(), shared.clone());
                let rng = Rng(Cell::new(seed ^ (n as u64 + 1).wrapping_mul(0x9E37_79B9)));
                greenhub::Builder::new()
                    .stack_size(32 * 1024)
                    .spawn(move || {
                        for _ in 0..OPS_EACH {
                            ledger.started.set(ledger.started.get() + 1);
                            let _ends = Ends(&ledger);
                            if let Err(what) = operation(&rng, &shared) {
                                eprintln!("wrong outcome: {what}");
                                ledger.wrong.set(ledger.wrong.get() + 1);
                            }
                        }
                    })
                    .unwrap()
            })
            .collect();
        let rng = Rng(Cell::new(seed));
        let mut killed = 0;
        for _ in 0..COROUTINES / 10 {
            greenhub::sleep(ms(rng.below(2)));
            let victim = &workers[rng.below(COROUTINES as u64) as usize];
            if !victim.is_finished() {
                victim.kill();
                killed += 1;
            }
        }
        for worker in workers {
            let _ = worker.join();
        }
        drop(shared);
        let stats = greenhub::stats();
        let left = (stats.alive, stats.timers, stats.sockets, stats.parked_other);
        let ledger = Rc::try_unwrap(ledger).ok().expect("every worker is gone");
        (
            (ledger.started.get(), ledger.ended.get(), ledger.wrong.get()),
            killed,
            left,
        )
    });
    let (started, ended, wrong) = ledger;
    assert!(
        killed > 0,
        "the killer killed nobody: the test tests nothing"
    );
    assert_eq!(started, ended, "an operation ended twice or never");
    assert_eq!(wrong, 0, "{wrong} operations had the wrong outcome");
    assert_eq!(
        left,
        (1, 0, 0, 0),
        "(alive, timers, sockets, parked) after the run"
    );
}

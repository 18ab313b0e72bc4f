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

/// One random operation; returns whether its outcome was the right one.
fn operation(rng: &Rng, shared: &Shared) -> bool {
    match rng.below(6) {
        // A sleep inside a timeout: cut exactly when the timeout's deadline
        // comes first (timers fire in deadline order). A sleep at least as
        // long as the timeout is always cut: its deadline is taken later.
        // A shorter one is cut only if the thread stalled between taking
        // the two deadlines (a loaded machine preempts it for milliseconds):
        // a cut is wrong when the whole operation took no longer than the
        // timeout's own length, so nothing stalled.
        0 => {
            let (sleep, limit) = (rng.below(4), rng.below(4));
            let started = Instant::now();
            let outcome = greenhub::timeout(ms(limit), || greenhub::sleep(ms(sleep)));
            if sleep == 0 {
                outcome.is_ok() // a zero sleep does not park
            } else if sleep < limit {
                outcome.is_ok() || started.elapsed() > ms(limit + 1)
            } else {
                outcome.is_err()
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
            let ok = a.read_exact(&mut got).is_ok() && got == sent;
            let _ = echo.join();
            ok
        }
        // A hand-off through a bounded channel: what is sent is received.
        2 => {
            let value = rng.below(1_000_000);
            shared.channel.send(value).unwrap();
            shared.channel.recv().is_ok()
        }
        // An event nobody sets, waited with a timeout: always times out.
        3 => shared.never.wait_timeout(ms(rng.below(3))).is_err(),
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
            match job {
                Ok(Ok(42)) => !cut,
                Err(_) => cut,
                _ => false,
            }
        }
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
                            if !operation(&rng, &shared) {
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

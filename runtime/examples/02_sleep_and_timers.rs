//! Sleep and timers: sleepers wake in deadline order, whatever order they
//! were spawned in, and a cron coroutine (every 25 ms) keeps its rhythm.
//!
//! Run it with `cargo run -p greenhub --example 02_sleep_and_timers`. It prints:
//!
//! ```text
//! cron tick 1
//! woke after 10 ms
//! woke after 20 ms
//! cron tick 2
//! woke after 30 ms
//! woke after 40 ms
//! everyone slept at once: 5 coroutines parked on timers together
//! ```
//!
//! Each `sleep` parks its coroutine with a deadline in the hub's timer queue;
//! the hub sleeps in `epoll_wait` until the nearest one. They all sleep at
//! once, so the run lasts about as long as the longest sleep (cron's 50 ms),
//! not the 150 ms the sleeps add up to.
//!
//! The clock starts once everyone is ready (waiting at an `Event`, the
//! gate), and every deadline counts from that one start, so a late tick does
//! not push the next one later. Each coroutine notes what it did in a log
//! that `main` prints at the end: a write to the terminal on the way could
//! cost the thread the CPU just when the others should be falling asleep.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenhub::sync::Event;

/// How long to sleep to reach `ms` after `start`.
fn until(start: Instant, ms: u64) -> Duration {
    (start + Duration::from_millis(ms)).saturating_duration_since(Instant::now())
}

fn main() {
    greenhub::run(|| {
        let gate = Event::new();
        let start = Rc::new(Cell::new(Instant::now()));
        let log = Rc::new(RefCell::new(Vec::new()));
        let cron = {
            let (gate, start, log) = (gate.clone(), start.clone(), log.clone());
            greenhub::spawn(move || {
                gate.wait().expect("the gate opens");
                for tick in 1..=2 {
                    log.borrow_mut().push(format!("cron tick {tick}"));
                    greenhub::sleep(until(start.get(), 25 * tick));
                }
            })
        };
        let sleepers: Vec<_> = [30u64, 10, 40, 20]
            .into_iter()
            .map(|ms| {
                let (gate, start, log) = (gate.clone(), start.clone(), log.clone());
                greenhub::spawn(move || {
                    gate.wait().expect("the gate opens");
                    greenhub::sleep(until(start.get(), ms));
                    log.borrow_mut().push(format!("woke after {ms} ms"));
                })
            })
            .collect();
        // yield_now lets every coroutine spawned so far run up to its park:
        // all five wait at the gate. Start the clock and open it; the second
        // yield_now lets all five go to sleep.
        greenhub::yield_now();
        start.set(Instant::now());
        gate.set();
        greenhub::yield_now();
        let asleep = greenhub::stats().parked_timer;
        sleepers.into_iter().for_each(|s| s.join().expect("join"));
        cron.join().expect("join");
        for line in log.borrow().iter() {
            println!("{line}");
        }
        println!("everyone slept at once: {asleep} coroutines parked on timers together");
    });
}

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
//! everyone slept at once: the whole run took less than the 100 ms they add up to
//! ```
//!
//! Each `sleep` parks its coroutine with a deadline in the hub's timer queue;
//! the hub sleeps in `epoll_wait` until the nearest one.

use std::time::{Duration, Instant};

fn main() {
    greenhub::run(|| {
        let start = Instant::now();
        let cron = greenhub::spawn(move || {
            for tick in 1u64.. {
                println!("cron tick {tick}");
                // Sleep to absolute deadlines (every 25 ms from the start), so
                // a late tick does not push the next one later.
                let next = start + Duration::from_millis(25 * tick);
                greenhub::sleep(next.saturating_duration_since(Instant::now()));
            }
        });
        let sleepers: Vec<_> = [30u64, 10, 40, 20]
            .into_iter()
            .map(|ms| {
                greenhub::spawn(move || {
                    greenhub::sleep(Duration::from_millis(ms));
                    println!("woke after {ms} ms");
                })
            })
            .collect();
        sleepers.into_iter().for_each(|s| s.join().expect("join"));
        cron.kill();
        let took = start.elapsed().as_millis();
        let verdict = if took < 100 {
            "less than the 100 ms they add up to"
        } else {
            "as long as one after another"
        };
        println!("everyone slept at once: the whole run took {verdict}");
    });
}

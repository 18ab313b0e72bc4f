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
//! not the 150 ms the sleeps add up to. Every deadline counts from the same
//! start: a coroutine that gets the CPU late on a busy machine still wakes in
//! its place, and a late tick does not push the next one later.

use std::time::{Duration, Instant};

fn main() {
    greenhub::run(|| {
        let start = Instant::now();
        // How long to sleep to reach `ms` after the start.
        let until = move |ms: u64| {
            (start + Duration::from_millis(ms)).saturating_duration_since(Instant::now())
        };
        let cron = greenhub::spawn(move || {
            for tick in 1..=2 {
                println!("cron tick {tick}");
                greenhub::sleep(until(25 * tick));
            }
        });
        let sleepers: Vec<_> = [30u64, 10, 40, 20]
            .into_iter()
            .map(|ms| {
                greenhub::spawn(move || {
                    greenhub::sleep(until(ms));
                    println!("woke after {ms} ms");
                })
            })
            .collect();
        // yield_now lets every coroutine spawned so far run up to its park.
        greenhub::yield_now();
        let asleep = greenhub::stats().parked_timer;
        sleepers.into_iter().for_each(|s| s.join().expect("join"));
        cron.join().expect("join");
        println!("everyone slept at once: {asleep} coroutines parked on timers together");
    });
}

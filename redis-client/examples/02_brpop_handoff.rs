//! A work queue: a producer pushes jobs, three consumer coroutines BRPOP
//! them, each parked on its own connection until a job arrives.
//!
//! Run it with
//! `REDIS_URL=redis://127.0.0.1:6379 cargo run -p greenhub-redis --example 02_brpop_handoff`.
//! It prints:
//!
//! ```text
//! 3 consumers parked in BRPOP: in use 3
//! jobs done: job-1, job-2, job-3, job-4, job-5, job-6
//! every job was taken by exactly one consumer; all three stopped at an end-of-work marker
//! ```
//!
//! BRPOP holds its connection while it waits: that is why each parked
//! consumer shows as a connection in use. The producer waits until the
//! server itself says the three are blocked (`INFO clients`), not for a fixed
//! time, and ends the work with one `stop` marker per consumer: LPUSH and
//! BRPOP make a FIFO queue, so every job is taken before any marker. The read
//! deadline of a BRPOP is its own timeout plus the socket timeout, never
//! shorter.

use std::time::{Duration, Instant};

use greenhub_redis::prelude::*;
use greenhub_redis::Client;

/// How many clients the server holds in a blocking command such as BRPOP.
fn blocked_clients(redis: &Client) -> usize {
    let info: String = redis.cmd("INFO").arg("clients").query().expect("INFO");
    info.lines()
        .find_map(|line| line.strip_prefix("blocked_clients:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    greenhub::run(move || {
        let mut redis = Client::open(&url).expect("a redis:// or unix:// URL");
        redis.del(&["example:jobs"]).expect("DEL");
        let consumers: Vec<_> = (0..3)
            .map(|_| {
                let mut redis = redis.clone();
                greenhub::spawn(move || {
                    let mut done = Vec::new();
                    // A minute without any job is a stuck producer: give up.
                    while let Some((_, job)) = redis.brpop(&["example:jobs"], 60.0).expect("BRPOP")
                    {
                        if job == b"stop" {
                            return (done, true);
                        }
                        done.push(String::from_utf8(job).expect("text"));
                    }
                    (done, false)
                })
            })
            .collect();
        let start = Instant::now();
        while blocked_clients(&redis) < 3 && start.elapsed() < Duration::from_secs(30) {
            greenhub::sleep(Duration::from_millis(5));
        }
        println!(
            "3 consumers parked in BRPOP: in use {}",
            redis.stats().in_use
        );
        for n in 1..=6 {
            redis
                .lpush("example:jobs", &[format!("job-{n}")])
                .expect("LPUSH");
        }
        redis
            .lpush("example:jobs", &["stop", "stop", "stop"])
            .expect("LPUSH");
        let mut done = Vec::new();
        let mut stopped = 0;
        for consumer in consumers {
            let (jobs, at_marker) = consumer.join().expect("join");
            done.extend(jobs);
            stopped += usize::from(at_marker);
        }
        done.sort();
        println!("jobs done: {}", done.join(", "));
        let unique = done.windows(2).all(|pair| pair[0] != pair[1]);
        if unique && done.len() == 6 && stopped == 3 {
            println!(
                "every job was taken by exactly one consumer; all three stopped at an end-of-work marker"
            );
        }
    });
}

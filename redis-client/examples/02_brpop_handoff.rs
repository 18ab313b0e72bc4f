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
//! every job was taken by exactly one consumer; all three stopped on the empty queue
//! ```
//!
//! BRPOP holds its connection while it waits: that is why each parked
//! consumer shows as a connection in use. The read deadline of a BRPOP is
//! its own timeout plus the socket timeout, never shorter.

use std::time::Duration;

use greenhub_redis::prelude::*;
use greenhub_redis::Client;

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
                    // Stop when no job comes for half a second.
                    while let Some((_, job)) = redis.brpop(&["example:jobs"], 0.5).expect("BRPOP") {
                        done.push(String::from_utf8(job).expect("text"));
                    }
                    done
                })
            })
            .collect();
        greenhub::sleep(Duration::from_millis(100));
        println!(
            "3 consumers parked in BRPOP: in use {}",
            redis.stats().in_use
        );
        for n in 1..=6 {
            redis
                .lpush("example:jobs", &[format!("job-{n}")])
                .expect("LPUSH");
            greenhub::sleep(Duration::from_millis(5));
        }
        let mut done: Vec<String> = consumers
            .into_iter()
            .flat_map(|c| c.join().expect("join"))
            .collect();
        done.sort();
        println!("jobs done: {}", done.join(", "));
        let unique = done.windows(2).all(|pair| pair[0] != pair[1]);
        if unique && done.len() == 6 {
            println!(
                "every job was taken by exactly one consumer; all three stopped on the empty queue"
            );
        }
    });
}

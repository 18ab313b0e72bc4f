//! The reliable-queue pattern: a worker takes a job with BLMOVE, which moves
//! it to a processing list in the same step, and removes it from there
//! (LREM) only once the job is done. A worker that dies mid-job leaves its
//! job in the processing list, where a recovery step finds it and queues it
//! again: nothing is lost even when the whole client process dies, which no
//! client-side mechanism (the reaper included) can cover for BRPOP.
//!
//! Run it with
//! `REDIS_URL=redis://127.0.0.1:6379 cargo run -p greenhub-redis --example 04_reliable_queue`.
//! It prints:
//!
//! ```text
//! worker 0 took job-1 and died before finishing it
//! recovered 1 job from the processing list
//! jobs done: job-1, job-2, job-3, job-4, job-5
//! processing list empty: true
//! ```
//!
//! Here the "death" is a worker that returns without its LREM; a real one is
//! a crashed process, and the recovery runs at start-up (or on a timer, for
//! jobs in processing longer than any job takes). `docs/reliability.md`,
//! "The reliable queue", explains the choice of BLMOVE over BRPOP.

use greenhub_redis::commands::Direction;
use greenhub_redis::prelude::*;
use greenhub_redis::{cmd, Client};

const JOBS: &str = "example:reliable:jobs";
const PROCESSING: &str = "example:reliable:processing";

/// Takes the next job, moving it to the processing list; `None` after a
/// second with no job.
fn take(redis: &mut Client) -> Option<String> {
    redis
        .blmove(JOBS, PROCESSING, Direction::Right, Direction::Left, 1.0)
        .expect("BLMOVE")
}

/// Marks a job done: it leaves the processing list.
fn done(redis: &mut Client, job: &str) {
    let removed: usize = cmd("LREM")
        .arg(PROCESSING)
        .arg(1)
        .arg(job)
        .query(redis)
        .expect("LREM");
    assert_eq!(removed, 1, "a job in progress is in the processing list");
}

fn main() {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    greenhub::run(move || {
        let mut redis = Client::open(&url).expect("a redis:// or unix:// URL");
        redis.del(&[JOBS, PROCESSING]).expect("DEL");
        for n in 1..=5 {
            redis.lpush(JOBS, &[format!("job-{n}")]).expect("LPUSH");
        }
        // Worker 0 takes the oldest job and dies before its LREM.
        let mut doomed = redis.clone();
        let taken = greenhub::spawn(move || take(&mut doomed))
            .join()
            .expect("join");
        println!(
            "worker 0 took {} and died before finishing it",
            taken.expect("a job")
        );
        // Recovery: whatever sits in the processing list goes back to the
        // end of the queue that is taken next.
        let mut recovered = 0;
        let lmove = cmd("LMOVE")
            .arg(PROCESSING)
            .arg(JOBS)
            .arg("RIGHT")
            .arg("RIGHT")
            .clone();
        while lmove
            .query::<Option<String>>(&mut redis)
            .expect("LMOVE")
            .is_some()
        {
            recovered += 1;
        }
        println!("recovered {recovered} job from the processing list");
        let workers: Vec<_> = (1..=2)
            .map(|_| {
                let mut redis = redis.clone();
                greenhub::spawn(move || {
                    let mut finished = Vec::new();
                    while let Some(job) = take(&mut redis) {
                        done(&mut redis, &job);
                        finished.push(job);
                    }
                    finished
                })
            })
            .collect();
        let mut finished: Vec<String> = workers
            .into_iter()
            .flat_map(|w| w.join().expect("join"))
            .collect();
        finished.sort();
        println!("jobs done: {}", finished.join(", "));
        let left: usize = redis.llen(PROCESSING).expect("LLEN");
        println!("processing list empty: {}", left == 0);
    });
}

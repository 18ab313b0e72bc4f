//! Load with nothing lost: 2,000 coroutines doing mixed INCR, LPUSH/BRPOP
//! hand-offs, SET/GET of unique values and pipelines, for a bounded time.
//! At the end every INCR is accounted for, every pushed item was popped
//! exactly once, and every GET returned the value that was set.
//!
//! The short form runs in every `cargo test`; the long one is ignored by
//! default and runs with:
//!
//! ```sh
//! SOAK_SECONDS=120 cargo test --release -p greenhub-tests --test soak -- --ignored --nocapture
//! ```

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenhub_redis::prelude::*;
use greenhub_redis::{pipe, Client};
use greenhub_tests::RedisServer;

const COROUTINES: usize = 2000;

#[derive(Default)]
struct Ledger {
    ops: Cell<u64>,
    errors: Cell<u64>,
    incrs: Cell<i64>,
    pushed: RefCell<Vec<String>>,
    popped: RefCell<Vec<String>>,
    mismatches: Cell<u64>,
}

fn descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn soak(duration: Duration) {
    let server = RedisServer::start_with(&["--maxclients", "4000"]);
    let url = server.unix_url();
    let report = greenhub::run(move || {
        let redis = Client::open(&url).unwrap();
        redis.clone().ping().unwrap();
        let (fds_start, rss_start) = (descriptors(), rss_kib());
        let ledger = Rc::new(Ledger::default());
        let until = Instant::now() + duration;
        let workers: Vec<_> = (0..COROUTINES)
            .map(|i| {
                let (mut redis, ledger) = (redis.clone(), ledger.clone());
                greenhub::spawn(move || {
                    let mut round = 0u64;
                    while Instant::now() < until {
                        let outcome = match i % 4 {
                            0 => redis
                                .incr("soak:counter")
                                .map(|_| ledger.incrs.set(ledger.incrs.get() + 1)),
                            1 => {
                                let item = format!("{i}:{round}");
                                redis
                                    .lpush("soak:handoff", &[&item])
                                    .map(|_| ledger.pushed.borrow_mut().push(item))
                            }
                            2 => redis.brpop(&["soak:handoff"], 0.1).map(|popped| {
                                if let Some((_, item)) = popped {
                                    ledger
                                        .popped
                                        .borrow_mut()
                                        .push(String::from_utf8(item).unwrap());
                                }
                            }),
                            _ => {
                                let (key, value) = (format!("soak:v:{i}"), format!("{i}-{round}"));
                                pipe()
                                    .cmd("SET")
                                    .arg(&key)
                                    .arg(&value)
                                    .cmd("INCR")
                                    .arg("soak:counter")
                                    .cmd("GET")
                                    .arg(&key)
                                    .query::<((), i64, String)>(&mut redis)
                                    .map(|((), _, got)| {
                                        ledger.incrs.set(ledger.incrs.get() + 1);
                                        if got != value {
                                            ledger.mismatches.set(ledger.mismatches.get() + 1);
                                        }
                                    })
                            }
                        };
                        match outcome {
                            Ok(()) => ledger.ops.set(ledger.ops.get() + 1),
                            Err(err) => {
                                eprintln!("soak error: {err}");
                                ledger.errors.set(ledger.errors.get() + 1);
                            }
                        }
                        round += 1;
                    }
                })
            })
            .collect();
        workers.into_iter().for_each(|w| w.join().unwrap());
        // Whatever is still queued was pushed and not yet popped: drain it.
        let mut drain = redis.clone();
        while let Some(item) = drain.rpop::<Option<String>>("soak:handoff").unwrap() {
            ledger.popped.borrow_mut().push(item);
        }
        let counter: i64 = drain.get("soak:counter").unwrap();
        let (fds_end, rss_end) = (descriptors(), rss_kib());
        let pushed: HashSet<String> = ledger.pushed.take().into_iter().collect();
        let popped = ledger.popped.take();
        let popped_set: HashSet<String> = popped.iter().cloned().collect();
        assert_eq!(popped.len(), popped_set.len(), "an item was popped twice");
        assert_eq!(
            pushed, popped_set,
            "every pushed item was popped exactly once"
        );
        assert_eq!(counter, ledger.incrs.get(), "every INCR is accounted for");
        assert_eq!(
            ledger.mismatches.get(),
            0,
            "every GET returned the value that was set"
        );
        assert_eq!(ledger.errors.get(), 0, "no errors");
        let open = redis.stats().created;
        assert!(
            fds_end <= fds_start + open + 16,
            "descriptors: {fds_start} -> {fds_end} with {open} pooled connections"
        );
        assert!(
            rss_end <= rss_start + 64 * COROUTINES as u64,
            "RSS grew from {rss_start} to {rss_end} KiB"
        );
        format!(
            "soak: seconds={} coroutines={COROUTINES} ops={} errors={} items={} fds_start={fds_start} fds_end={fds_end} \
             rss_start_kib={rss_start} rss_end_kib={rss_end}",
            duration.as_secs_f64(),
            ledger.ops.get(),
            ledger.errors.get(),
            pushed.len()
        )
    });
    println!("{report}");
}

#[test]
fn a_short_soak_loses_nothing() {
    soak(Duration::from_millis(1500));
}

#[test]
#[ignore = "minutes long: SOAK_SECONDS=120 cargo test --release -p greenhub-tests --test soak -- --ignored"]
fn a_long_soak_loses_nothing() {
    let seconds = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120.0);
    soak(Duration::from_secs_f64(seconds));
}

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
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenhub_redis::prelude::*;
use greenhub_redis::{pipe, Client};
use greenhub_tests::RedisServer;

const COROUTINES: usize = 2000;

/// What the coroutines did, in constant space per producer: a soak of
/// minutes moves millions of items, and the ledger must not be what grows.
#[derive(Default)]
struct Ledger {
    ops: Cell<u64>,
    errors: Cell<u64>,
    incrs: Cell<i64>,
    /// Items pushed by each producer: its sequence numbers 0..n.
    pushed: RefCell<Vec<u64>>,
    /// Which sequence numbers of each producer were popped, as bits.
    popped: RefCell<Vec<Vec<u64>>>,
    duplicates: Cell<u64>,
    mismatches: Cell<u64>,
}

impl Ledger {
    /// Records a popped item `producer:seq`; a second pop is a duplicate.
    fn pop(&self, item: &str) {
        let (producer, seq) = item.split_once(':').expect("producer:seq");
        let (producer, seq): (usize, u64) = (producer.parse().unwrap(), seq.parse().unwrap());
        let mut popped = self.popped.borrow_mut();
        let bits = &mut popped[producer];
        let word = (seq / 64) as usize;
        if bits.len() <= word {
            bits.resize(word + 1, 0);
        }
        if bits[word] & (1 << (seq % 64)) != 0 {
            self.duplicates.set(self.duplicates.get() + 1);
        }
        bits[word] |= 1 << (seq % 64);
    }

    /// Items pushed and not popped, or popped but never pushed.
    fn unmatched(&self) -> u64 {
        let (pushed, popped) = (self.pushed.borrow(), self.popped.borrow());
        let mut unmatched = 0;
        for (n, bits) in pushed.iter().zip(popped.iter()) {
            let seen: u64 = bits.iter().map(|w| w.count_ones() as u64).sum();
            let in_range: u64 = (0..*n)
                .filter(|s| {
                    bits.get((s / 64) as usize)
                        .is_some_and(|w| w & (1 << (s % 64)) != 0)
                })
                .count() as u64;
            unmatched += (n - in_range) + (seen - in_range);
        }
        unmatched
    }
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
        let ledger = Rc::new(Ledger {
            pushed: RefCell::new(vec![0; COROUTINES]),
            popped: RefCell::new(vec![Vec::new(); COROUTINES]),
            ..Ledger::default()
        });
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
                                    .map(|_| ledger.pushed.borrow_mut()[i] += 1)
                            }
                            2 => redis.brpop(&["soak:handoff"], 0.1).map(|popped| {
                                if let Some((_, item)) = popped {
                                    ledger.pop(std::str::from_utf8(&item).unwrap());
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
            ledger.pop(&item);
        }
        let counter: i64 = drain.get("soak:counter").unwrap();
        let (fds_end, rss_end) = (descriptors(), rss_kib());
        let items: u64 = ledger.pushed.borrow().iter().sum();
        assert_eq!(ledger.duplicates.get(), 0, "an item was popped twice");
        assert_eq!(
            ledger.unmatched(),
            0,
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
            items
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

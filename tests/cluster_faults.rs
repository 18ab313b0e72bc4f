//! A real cluster resharded, failed over and taken down while a thousand
//! coroutines use it through one `ClusterClient`. What must hold: a
//! resharding costs no error and loses no increment; a failover costs
//! errors only on the failed shard's calls inside the failover window, and
//! nothing acknowledged by `WAIT 1` is lost; a cluster that goes down and
//! comes back is served again by the same client. The window and the error
//! counts are printed (`cargo test --test cluster_faults -- --nocapture`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use greenhub_redis::cluster::{key_slot, ClusterClient};
use greenhub_redis::prelude::*;
use greenhub_redis::{pipe, Error};
use greenhub_tests::{wait_until, RedisCluster};

/// Coroutines in each load test.
const WORKERS: usize = 1000;

/// Runs a blocking harness call on a helper thread while the hub goes on.
fn harness<T: Send + 'static>(
    cluster: &Arc<Mutex<RedisCluster>>,
    call: impl FnOnce(&mut RedisCluster) -> T + Send + 'static,
) -> T {
    let cluster = cluster.clone();
    greenhub::unblock(move || call(&mut cluster.lock().unwrap())).unwrap()
}

#[test]
fn a_reshard_of_1000_slots_under_1000_coroutines_costs_no_error_and_loses_no_increment() {
    let cluster = Arc::new(RedisCluster::start());
    let masters = cluster.master_ports();
    let urls = cluster.urls();
    greenhub::run(move || {
        let client = ClusterClient::open(&urls).unwrap();
        // The 1000 lowest slots of the first master move to the second;
        // every worker's keys live in them.
        let keys: Vec<String> = (0..)
            .map(|i| format!("hot:{i}"))
            .filter(|k| key_slot(k.as_bytes()) < 1000)
            .take(WORKERS)
            .collect();
        let stop = Rc::new(Cell::new(false));
        let errors = Rc::new(RefCell::new(Vec::<String>::new()));
        let started = Rc::new(Cell::new(0usize));
        let workers: Vec<_> = keys
            .iter()
            .cloned()
            .map(|key| {
                let (mut r, stop, errors, started) = (
                    client.clone(),
                    stop.clone(),
                    errors.clone(),
                    started.clone(),
                );
                greenhub::spawn(move || {
                    let counter = format!("{{{key}}}:n");
                    let mut incremented = 0i64;
                    let mut round = 0u64;
                    started.set(started.get() + 1);
                    while !stop.get() {
                        round += 1;
                        let outcome = r
                            .set(&key, round)
                            .and_then(|()| r.get::<u64>(&key))
                            .and_then(|got| {
                                assert_eq!(got, round, "{key} reads back what was written");
                                r.incr(&counter)
                            });
                        match outcome {
                            Ok(n) => {
                                incremented += 1;
                                assert_eq!(n, incremented, "{counter} counts every INCR once");
                            }
                            Err(err) => errors.borrow_mut().push(format!("{key}: {err}")),
                        }
                    }
                    (counter, incremented)
                })
            })
            .collect();
        wait_until("every worker has started", || started.get() == WORKERS);
        let began = Instant::now();
        let mut reshard = Some(cluster.reshard(masters[0], masters[1], 1000));
        wait_until("redis-cli --cluster reshard has ended", || {
            reshard.as_mut().unwrap().is_finished()
        });
        let took = began.elapsed();
        reshard.take().unwrap().wait();
        stop.set(true);
        let mut increments = 0;
        let mut checker = client.clone();
        for worker in workers {
            let (counter, incremented) = worker.join().unwrap();
            assert_eq!(
                checker.get::<i64>(&counter).unwrap(),
                incremented,
                "{counter}"
            );
            increments += incremented;
        }
        let errors = errors.borrow();
        println!(
            "resharding 1000 slots took {took:.1?} under {WORKERS} coroutines: \
             {increments} INCRs, {} errors, {} slot map loads",
            errors.len(),
            client.stats().map_loads
        );
        assert!(
            errors.is_empty(),
            "errors during the reshard: {:?}",
            &errors[..errors.len().min(5)]
        );
        assert_eq!(
            client.master_of_slot(999).map(|a| a.port),
            Some(masters[1]),
            "the client's map followed the reshard"
        );
    });
}

/// What one worker saw in the failover test.
#[derive(Default)]
struct Seen {
    /// Every call: when it ended and whether it succeeded.
    calls: Vec<(Instant, bool)>,
    /// INCRs sent (some may have run though their reply was lost).
    attempted: i64,
    /// INCRs that `WAIT 1` confirmed reached the replica.
    acknowledged: i64,
}

#[test]
fn a_master_killed_under_1000_coroutines_errors_only_its_shards_calls_inside_the_failover_window() {
    let cluster = Arc::new(Mutex::new(RedisCluster::start()));
    let urls = cluster.lock().unwrap().urls();
    greenhub::run(move || {
        let client = ClusterClient::open(&urls).unwrap();
        let (victim, replica) = harness(&cluster, |c| {
            let victim = c.master_ports()[1];
            (victim, c.replica_of(victim))
        });
        let stop = Rc::new(Cell::new(false));
        let promoted_at: Rc<Cell<Option<Instant>>> = Rc::new(Cell::new(None));
        let after_promotion = Rc::new(Cell::new(0usize));
        let successes = Rc::new(Cell::new(0usize));
        let workers: Vec<_> = (0..WORKERS)
            .map(|i| {
                let (mut r, stop, promoted_at, after_promotion, successes) = (
                    client.clone(),
                    stop.clone(),
                    promoted_at.clone(),
                    after_promotion.clone(),
                    successes.clone(),
                );
                greenhub::spawn(move || {
                    let key = format!("failover:{i}");
                    let mut seen = Seen::default();
                    let mut counted = false;
                    while !stop.get() {
                        seen.attempted += 1;
                        // WAIT 1 rides with the INCR on its connection: a
                        // reply of 1 means the replica has the increment.
                        let reply: Result<(i64, i64), Error> = pipe()
                            .cmd("INCR")
                            .arg(&key)
                            .cmd("WAIT")
                            .arg(1)
                            .arg(100)
                            .query(&mut r);
                        let ok = reply.is_ok();
                        successes.set(successes.get() + usize::from(ok));
                        if let Ok((_, replicas)) = reply {
                            if replicas >= 1 {
                                seen.acknowledged += 1;
                            }
                        }
                        let now = Instant::now();
                        seen.calls.push((now, ok));
                        if ok && !counted && promoted_at.get().is_some_and(|t| now > t) {
                            counted = true;
                            after_promotion.set(after_promotion.get() + 1);
                        }
                    }
                    (key, seen)
                })
            })
            .collect();
        // Let the load run a while, then kill the master.
        wait_until("the load has made 3 calls per worker", || {
            successes.get() >= 3 * WORKERS
        });
        let kill_sent = Instant::now();
        harness(&cluster, move |c| c.kill_node(victim));
        // The process is gone: no call can reach it from here on.
        let killed_at = Instant::now();
        harness(&cluster, move |c| c.wait_for_promotion(replica));
        promoted_at.set(Some(Instant::now()));
        // The old master comes back as the new master's replica, so WAIT 1
        // can be satisfied again.
        harness(&cluster, move |c| {
            c.restart_node(victim);
            c.wait_until_ready();
        });
        wait_until("every worker has succeeded after the promotion", || {
            after_promotion.get() == WORKERS
        });
        stop.set(true);
        let dead_slots = |key: &str| {
            // The keys the victim served are the ones the replica serves now.
            client
                .master_of_slot(key_slot(key.as_bytes()))
                .map(|a| a.port)
                == Some(replica)
        };
        let mut checker = client.clone();
        let (mut dead_errors, mut other_errors, mut lost) = (0, 0, 0);
        let (mut first_error, mut last_error): (Option<Instant>, Option<Instant>) = (None, None);
        let mut back: Option<Instant> = None;
        for worker in workers {
            let (key, seen) = worker.join().unwrap();
            let value: i64 = checker.get::<Option<i64>>(&key).unwrap().unwrap_or(0);
            // Acknowledged increments survived; no increment ran twice.
            if value < seen.acknowledged {
                lost += 1;
            }
            assert!(
                value <= seen.attempted,
                "{key}: {value} > {} sent",
                seen.attempted
            );
            let on_dead = dead_slots(&key);
            let errors: Vec<Instant> = seen.calls.iter().filter(|c| !c.1).map(|c| c.0).collect();
            if on_dead {
                dead_errors += errors.len();
                let recovered = seen
                    .calls
                    .iter()
                    .find(|c| c.1 && c.0 > killed_at)
                    .map(|c| c.0);
                back = match (back, recovered) {
                    (Some(b), Some(r)) => Some(b.min(r)),
                    (b, r) => b.or(r),
                };
            } else {
                other_errors += errors.len();
            }
            first_error = first_error.into_iter().chain(errors.first().copied()).min();
            last_error = last_error.into_iter().chain(errors.last().copied()).max();
            // Once a call succeeded after the promotion, none failed after it.
            let promoted = promoted_at.get().unwrap();
            if let Some(good) = seen.calls.iter().find(|c| c.1 && c.0 > promoted) {
                assert!(
                    seen.calls.iter().all(|c| c.1 || c.0 < good.0),
                    "{key} failed after it had recovered"
                );
            }
            // No error before the kill.
            assert!(
                errors.iter().all(|&t| t >= kill_sent),
                "{key} failed before the kill"
            );
        }
        let since_kill = |t: Option<Instant>| match t {
            Some(t) => format!("{:.2?}", t.saturating_duration_since(kill_sent)),
            None => "never".to_owned(),
        };
        println!(
            "failover under {WORKERS} coroutines: the failed shard's first success came {} after \
             the kill (the harness saw the promotion at {}); errors: {dead_errors} on the failed \
             shard, {other_errors} on the others, from {} to {} after the kill; {} slot map \
             loads; acknowledged increments lost: {lost}",
            since_kill(back),
            since_kill(promoted_at.get()),
            since_kill(first_error),
            since_kill(last_error),
            client.stats().map_loads,
        );
        assert_eq!(lost, 0, "an increment acknowledged by WAIT 1 was lost");
        assert!(back.is_some(), "the failed shard came back");
    });
}

#[test]
fn a_write_to_a_killed_masters_slot_waits_for_the_promoted_replica_within_its_retry_time() {
    let cluster = Arc::new(Mutex::new(RedisCluster::start()));
    let urls = cluster.lock().unwrap().urls();
    greenhub::run(move || {
        let (victim, replica) = harness(&cluster, |c| {
            let victim = c.master_ports()[0];
            (victim, c.replica_of(victim))
        });
        harness(&cluster, move |c| c.kill_node(victim));
        // A client that rides out a failover: its retry time is longer.
        let mut r = ClusterClient::builder(&urls)
            .retry_timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let key = (0..)
            .map(|i| format!("w{i}"))
            .find(|k| key_slot(k.as_bytes()) < 100)
            .unwrap();
        // The slot's master refuses connections: the client refreshes from
        // the other nodes and pauses between tries until the replica serves.
        r.set(&key, "after").unwrap();
        assert_eq!(r.get::<String>(&key).unwrap(), "after");
        assert_eq!(
            r.master_of_slot(key_slot(key.as_bytes())).map(|a| a.port),
            Some(replica)
        );
        println!(
            "one SET waited out the failover with {} slot map loads",
            r.stats().map_loads
        );
    });
}

#[test]
fn a_whole_cluster_down_gives_clear_errors_then_the_same_client_recovers() {
    let cluster = Arc::new(Mutex::new(RedisCluster::start()));
    let urls = cluster.lock().unwrap().urls();
    greenhub::run(move || {
        let client = ClusterClient::builder(&urls)
            .retry_timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let keys: Vec<String> = (0..100).map(|i| format!("down:{i}")).collect();
        let mut r = client.clone();
        for key in &keys {
            r.set(key, 1).unwrap();
        }
        harness(&cluster, |c| c.kill_all());
        let callers: Vec<_> = keys
            .iter()
            .cloned()
            .map(|key| {
                let mut r = client.clone();
                greenhub::spawn(move || r.get::<Option<i64>>(&key))
            })
            .collect();
        for caller in callers {
            let err = caller.join().unwrap().unwrap_err();
            let text = err.to_string();
            assert!(
                err.is_io()
                    && text.contains("cannot connect to 127.0.0.1:")
                    && text.contains("refused"),
                "a clear error naming the node: {text}"
            );
        }
        harness(&cluster, |c| c.restart_all());
        // The same client, no restart: its map still holds, its pools were
        // retired on the failures, fresh connections succeed.
        for key in &keys {
            r.set(key, 2).unwrap();
        }
        let values: Vec<Option<i64>> = r.mget(&keys).unwrap();
        assert!(values.iter().all(|v| *v == Some(2)));
        println!("whole cluster down: 100 callers failed clearly; recovered without a restart");
    });
}

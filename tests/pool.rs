//! The pool: the article's figures, limits in both modes, and no poisoned
//! connection after a kill or a timeout in the middle of a BRPOP.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenhub_redis::prelude::*;
use greenhub_redis::{Client, ConnectionInfo, Error, PoolConfig, PoolStats, WhenFull};
use greenhub_tests::{wait_until, RedisServer};

fn client(url: &str, config: PoolConfig) -> Client {
    Client::with_config(ConnectionInfo::from_url(url).unwrap(), config)
}

#[test]
fn a_thousand_coroutines_in_brpop_hold_a_thousand_connections_and_finish_together() {
    let server = RedisServer::start();
    let url = server.unix_url();
    let (during, after, popped) = greenhub::run(move || {
        let redis = Client::open(&url).unwrap();
        let waiters: Vec<_> = (0..1000)
            .map(|_| {
                let mut redis = redis.clone();
                greenhub::spawn(move || redis.brpop(&["list"], 0.0))
            })
            .collect();
        // Wait (a condition, not a fixed time) until every one is connected
        // and parked in its BRPOP, which waits as long as it takes.
        wait_until("1,000 connections in use", || redis.stats().in_use == 1000);
        let during = redis.stats();
        // One RPUSH of 1,000 jobs releases them all together.
        let mut rpush = vec!["RPUSH", "list"];
        rpush.extend(["job"; 1000]);
        assert_eq!(server.raw_command(&rpush), b":1000\r\n");
        let popped = waiters
            .into_iter()
            .map(|w| w.join().unwrap())
            .filter(|reply| matches!(reply, Ok(Some((_, job))) if job == b"job"))
            .count();
        (during, redis.stats(), popped)
    });
    assert_eq!(
        during,
        PoolStats {
            created: 1000,
            in_use: 1000,
            available: 0
        }
    );
    assert_eq!(
        after,
        PoolStats {
            created: 1000,
            in_use: 0,
            available: 1000
        }
    );
    assert_eq!(popped, 1000);
}

#[test]
fn brpop_outlives_a_socket_timeout_shorter_than_its_own() {
    let server = RedisServer::start();
    let url = format!("{}?socket_timeout=0.2", server.url());
    greenhub::run(move || {
        let mut redis = Client::open(&url).unwrap();
        let start = Instant::now();
        assert_eq!(
            redis.brpop(&["empty"], 0.5).unwrap(),
            None,
            "no socket timeout error"
        );
        // Redis times BRPOP on the wall clock, which the host may step
        // forward meanwhile (by 50 ms, seen here): allow for it. 0.4 s is
        // still twice the socket timeout the BRPOP outlived.
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(400), "{waited:?}");
        assert_eq!(redis.stats().available, 1);
    });
}

#[test]
fn a_full_pool_set_to_fail_says_too_many_connections() {
    let server = RedisServer::start();
    let url = server.url();
    greenhub::run(move || {
        let redis = client(
            &url,
            PoolConfig {
                max_connections: Some(2),
                ..Default::default()
            },
        );
        // The holders wait in BRPOP until the test pushes two jobs.
        let holders: Vec<_> = (0..2)
            .map(|_| {
                let mut redis = redis.clone();
                greenhub::spawn(move || redis.brpop(&["hold"], 0.0))
            })
            .collect();
        wait_until("both holders connected", || redis.stats().in_use == 2);
        let err = redis.clone().ping().unwrap_err();
        assert!(matches!(err, Error::PoolExhausted { max: 2 }), "{err}");
        assert!(err.to_string().contains("too many connections"));
        assert_eq!(server.raw_command(&["RPUSH", "hold", "a", "b"]), b":2\r\n");
        holders
            .into_iter()
            .for_each(|h| assert!(h.join().unwrap().unwrap().is_some()));
        assert_eq!(redis.clone().ping().unwrap(), "PONG", "capacity came back");
    });
}

#[test]
fn a_full_pool_set_to_wait_parks_callers_until_a_connection_frees_up() {
    let server = RedisServer::start();
    let url = server.url();
    greenhub::run(move || {
        let redis = client(
            &url,
            PoolConfig {
                max_connections: Some(2),
                when_full: WhenFull::Wait(None),
                ..Default::default()
            },
        );
        let workers: Vec<_> = (0..10)
            .map(|i| {
                let mut redis = redis.clone();
                greenhub::spawn(move || {
                    redis.blpop(&["nothing"], 0.05).unwrap();
                    redis.incr("done").unwrap();
                    i
                })
            })
            .collect();
        let finished: i32 = workers.into_iter().map(|w| w.join().unwrap()).sum();
        assert_eq!(finished, (0..10).sum());
        assert_eq!(redis.clone().get::<i64>("done").unwrap(), 10);
        assert!(
            redis.stats().created <= 2,
            "never more than max_connections: {:?}",
            redis.stats()
        );

        let single = client(
            &url,
            PoolConfig {
                max_connections: Some(1),
                when_full: WhenFull::Wait(Some(Duration::from_millis(50))),
                ..Default::default()
            },
        );
        let mut holder = single.clone();
        // It holds the only connection until the test pushes a job.
        let held = greenhub::spawn(move || holder.brpop(&["hold"], 0.0));
        greenhub::yield_now();
        let err = single.clone().ping().unwrap_err();
        assert!(
            matches!(err, Error::PoolExhausted { max: 1 }),
            "the wait timed out: {err}"
        );
        assert_eq!(server.raw_command(&["RPUSH", "hold", "a"]), b":1\r\n");
        assert!(held.join().unwrap().unwrap().is_some());
    });
}

#[test]
fn a_coroutine_killed_mid_brpop_leaves_no_poisoned_connection() {
    let server = RedisServer::start();
    let url = server.url();
    greenhub::run(move || {
        let redis = Client::open(&url).unwrap();
        let mut victim_client = redis.clone();
        let victim = greenhub::spawn(move || victim_client.brpop(&["jobs"], 5.0));
        wait_until("the victim blocked in BRPOP", || {
            server.blocked_clients() == 1
        });
        victim.kill();
        assert!(victim.join().is_err());
        // The reaper ends the victim's BRPOP on the server (CLIENT UNBLOCK),
        // reads its nil, and pools the connection back, in step.
        wait_until("the reaper finished", || {
            redis.pool().reaper_stats().running == 0
        });
        assert_eq!(
            redis.stats(),
            PoolStats {
                created: 1,
                in_use: 0,
                available: 1
            },
            "reaped and pooled, never handed out half-read"
        );
        assert_eq!(server.blocked_clients(), 0, "no ghost BRPOP is left");

        let mut next = redis.clone();
        next.set("mine", "my value").unwrap();
        next.lpush("jobs", &["job-1"]).unwrap();
        assert_eq!(
            next.get::<String>("mine").unwrap(),
            "my value",
            "the next user reads its own reply"
        );
        assert_eq!(
            next.brpop(&["jobs"], 1.0).unwrap(),
            Some((b"jobs".to_vec(), b"job-1".to_vec())),
            "the job was not swallowed"
        );
    });
}

#[test]
fn a_brpop_cut_by_a_timeout_leaves_no_poisoned_connection() {
    let server = RedisServer::start();
    let url = server.url();
    greenhub::run(move || {
        let mut redis = Client::open(&url).unwrap();
        let cut = greenhub::timeout(Duration::from_millis(50), || redis.brpop(&["queue"], 5.0));
        assert!(cut.is_err(), "the deadline elapsed");
        let inner = greenhub::timeout(Duration::from_secs(10), || {
            greenhub::timeout(Duration::from_millis(20), || redis.brpop(&["queue"], 5.0)).ok()
        });
        assert!(
            inner.unwrap().is_none(),
            "the inner timeout elapsed, the outer did not"
        );
        // Both cut BRPOPs were reaped (ended on the server, their replies
        // read); no BRPOP of theirs is left to take an item.
        wait_until("the cut BRPOPs gone from the server", || {
            server.blocked_clients() == 0
        });
        for round in 0..20 {
            let key = format!("own-{round}");
            redis.set(&key, round).unwrap();
            redis.lpush("queue", &[format!("item-{round}")]).unwrap();
            assert_eq!(
                redis.get::<i64>(&key).unwrap(),
                round,
                "round {round} read someone else's reply"
            );
        }
        assert_eq!(
            redis.llen("queue").unwrap(),
            20,
            "no ghost BRPOP took an item"
        );
    });
}

#[test]
fn an_idle_connection_past_the_health_check_interval_is_pinged_before_reuse() {
    let server = RedisServer::start();
    let url = server.url();
    greenhub::run(move || {
        let mut redis = client(
            &url,
            PoolConfig {
                health_check_interval: Some(Duration::from_millis(10)),
                ..Default::default()
            },
        );
        redis.set("k", "v").unwrap();
        let admin = Client::open(&url).unwrap();
        let killed: i64 = admin
            .cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("normal")
            .arg("SKIPME")
            .arg("yes")
            .query()
            .unwrap();
        assert_eq!(killed, 1);
        greenhub::sleep(Duration::from_millis(20));
        assert_eq!(
            redis.get::<String>("k").unwrap(),
            "v",
            "the dead idle connection was replaced"
        );
        assert_eq!(redis.stats().created, 2);
    });
}

#[test]
fn min_idle_connections_are_opened_up_front_and_topped_up_after_a_discard() {
    let server = RedisServer::start();
    let url = server.url();
    greenhub::run(move || {
        let redis = client(
            &url,
            PoolConfig {
                min_idle: 5,
                max_connections: Some(8),
                ..Default::default()
            },
        );
        assert_eq!(redis.fill().unwrap(), 5);
        assert_eq!(redis.stats().available, 5, "opened before any command");
        assert_eq!(redis.fill().unwrap(), 0, "already there");
        let clients: usize = redis
            .clone()
            .cmd("CLIENT")
            .arg("LIST")
            .query::<String>()
            .unwrap()
            .lines()
            .count();
        assert_eq!(clients, 5, "the server sees them");
        // A connection left inside MULTI is closed; the next checkout tops up.
        redis
            .get_connection()
            .unwrap()
            .req_command(&greenhub_redis::cmd("MULTI"))
            .unwrap();
        assert_eq!(redis.stats().available, 4);
        assert_eq!(redis.clone().ping().unwrap(), "PONG");
        let stats = redis.stats();
        assert_eq!((stats.created, stats.available), (6, 5));
        // Never beyond max_connections.
        let capped = client(
            &url,
            PoolConfig {
                min_idle: 50,
                max_connections: Some(3),
                ..Default::default()
            },
        );
        assert_eq!(capped.fill().unwrap(), 3);
    });
}

#[test]
fn a_first_checkout_fills_min_idle_on_its_own() {
    let server = RedisServer::start();
    let url = server.url();
    greenhub::run(move || {
        let mut redis = client(
            &url,
            PoolConfig {
                min_idle: 3,
                ..Default::default()
            },
        );
        redis.set("k", 1).unwrap();
        assert_eq!(redis.stats().created, 3);
        assert_eq!(redis.stats().available, 3);
    });
}

/// Regression: a command run by a `Drop` during a kill was written (and
/// ran), but its error said only "not in a coroutine".
#[test]
fn a_command_run_while_a_killed_coroutine_unwinds_says_it_may_have_run() {
    struct ReleaseOnDrop {
        redis: Client,
        outcome: Rc<RefCell<Option<String>>>,
    }
    impl Drop for ReleaseOnDrop {
        fn drop(&mut self) {
            let result = self.redis.clone().set("released", "yes");
            *self.outcome.borrow_mut() = Some(match result {
                Ok(()) => "ok".into(),
                Err(err) => err.to_string(),
            });
        }
    }
    let server = RedisServer::start();
    let url = server.url();
    greenhub::run(move || {
        let redis = Client::open(&url).unwrap();
        let outcome = Rc::new(RefCell::new(None));
        let guard = ReleaseOnDrop {
            redis: redis.clone(),
            outcome: outcome.clone(),
        };
        let holder = {
            let mut redis = redis.clone();
            greenhub::spawn(move || {
                let _guard = guard;
                redis.brpop(&["never"], 0.0)
            })
        };
        while redis.stats().in_use == 0 {
            greenhub::yield_now();
        }
        holder.kill();
        assert!(holder.join().is_err());
        let message = outcome.borrow().clone().expect("the guard ran");
        assert!(
            message.contains("may have run") && message.contains("unwinding"),
            "{message}"
        );
        // It did run: the SET reaches the server.
        let mut check = redis.clone();
        while check.get::<Option<String>>("released").unwrap().is_none() {
            greenhub::yield_now();
        }
        // The BRPOP's connection went to the reaper, which returns it.
        wait_until("the reaper finished", || {
            redis.pool().reaper_stats().running == 0
        });
        assert_eq!(
            redis.stats().in_use,
            0,
            "both connections came back or were closed"
        );
    });
}

//! Retries after a lost connection (`redis-client/src/retry.rs`): only what
//! is safe to repeat is sent again, and what may have run says so
//! (`Error::is_ambiguous`). See `docs/reliability.md`, "Retries".

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use greenhub_redis::prelude::*;
use greenhub_redis::{cmd, Client, RetryPolicy};
use greenhub_tests::{until_refused_while_loading, RedisServer};

/// Restarts the server from a plain thread while the hub's coroutines run:
/// the restart blocks that thread, not the hub.
fn restart_soon(server: RedisServer, after: Duration) -> std::thread::JoinHandle<RedisServer> {
    std::thread::spawn(move || {
        let mut server = server;
        std::thread::sleep(after);
        server.restart();
        server
    })
}

#[test]
fn a_get_loop_across_a_server_restart_sees_no_error() {
    let server = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let url = server.url();
    greenhub::run(move || {
        let mut redis = Client::open(&url).unwrap().with_retry(RetryPolicy {
            max_time: Duration::from_secs(20),
        });
        redis.set("k", "v").unwrap();
        let restarting = Rc::new(Cell::new(Some(restart_soon(
            server,
            Duration::from_millis(100),
        ))));
        let mut gets = 0;
        let mut restarted = None;
        while restarted.is_none() || gets < 2_000 {
            let value: String = redis
                .get("k")
                .unwrap_or_else(|err| panic!("GET {gets}: {err}"));
            assert_eq!(value, "v");
            gets += 1;
            let handle = restarting.take();
            match handle {
                Some(h) if h.is_finished() => restarted = Some(h.join().unwrap()),
                other => restarting.set(other),
            }
            greenhub::yield_now();
        }
        println!(
            "{gets} GETs across a restart, all answered; pool {:?}",
            redis.stats()
        );
        drop(restarted);
    });
}

#[test]
fn an_incr_loop_across_a_restart_counts_every_acknowledged_incr_and_at_most_the_ambiguous() {
    let server = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let url = server.url();
    greenhub::run(move || {
        let mut redis = Client::open(&url).unwrap();
        let restarting = restart_soon(server, Duration::from_millis(100));
        let (mut acked, mut ambiguous, mut unsent) = (0i64, 0i64, 0i64);
        while !restarting.is_finished() || acked < 2_000 {
            match redis.incr("counter") {
                Ok(_) => acked += 1,
                Err(err) if err.is_ambiguous() => ambiguous += 1,
                Err(_) => unsent += 1,
            }
            greenhub::yield_now();
        }
        let _server = restarting.join().unwrap();
        let total: i64 = redis.get("counter").unwrap();
        println!("INCR across a restart: acknowledged {acked}, ambiguous {ambiguous}, never sent {unsent}, counter {total}");
        assert!(
            total >= acked && total <= acked + ambiguous,
            "{total} vs {acked} + {ambiguous}"
        );
    });
}

#[test]
fn an_incr_is_never_repeated_but_a_marked_command_and_a_read_are() {
    let mut server = RedisServer::start();
    let url = server.url();
    greenhub::run(move || {
        let mut redis = Client::open(&url).unwrap();
        redis.set("n", 0).unwrap();
        // Every pooled connection is cut by the server between calls: the
        // next write succeeds into a dead socket, its reply never comes.
        let kill_all = |redis: &mut Client| {
            let _: i64 = redis
                .req_command(
                    cmd("CLIENT")
                        .arg("KILL")
                        .arg("TYPE")
                        .arg("normal")
                        .arg("SKIPME")
                        .arg("no"),
                )
                .and_then(greenhub_redis::FromValue::from_value)
                .unwrap_or(0);
        };
        let mut other = Client::open(&url).unwrap();
        let _: String = redis.get("n").unwrap();
        kill_all(&mut other);
        let incr = redis.incr("n");
        if let Err(err) = &incr {
            assert!(err.is_ambiguous(), "{err}");
        }
        let _: String = redis.get("n").unwrap();
        kill_all(&mut other);
        // A read and a command marked idempotent come through.
        let n: i64 = redis.get("n").unwrap();
        assert!(n <= 1);
        kill_all(&mut other);
        let ok: String = cmd("SET")
            .arg("m")
            .arg(7)
            .idempotent()
            .query(&mut redis)
            .unwrap();
        assert_eq!(ok, "OK");
        server.kill();
        let never = RetryPolicy::never();
        let mut plain = Client::open(&url).unwrap().with_retry(never);
        let err = plain.incr("n").unwrap_err();
        assert!(
            !err.is_ambiguous(),
            "refused: never sent, safe to retry by hand: {err}"
        );
    });
}

#[test]
fn commands_refused_while_the_server_loads_are_retried_and_each_runs_once() {
    let server = RedisServer::start_loading_for_a_second();
    let url = server.url();
    greenhub::run(move || {
        let restarting = restart_soon(server, Duration::ZERO);
        // Without retries the refusal is the caller's: an error reply, not
        // ambiguous (nothing ran).
        let mut plain = Client::open(&url).unwrap().with_retry(RetryPolicy::never());
        let refusal = until_refused_while_loading(&url);
        assert!(!refusal.is_ambiguous(), "{refusal}");
        // With retries (the test's policy outlasts the loading), writes are
        // repeated too: a LOADING refusal ran nothing. A single command, a
        // pipeline and a transaction, all sent while the server loads.
        let patient = Client::open(&url).unwrap().with_retry(RetryPolicy {
            max_time: Duration::from_secs(30),
        });
        let mut single = patient.clone();
        let single = greenhub::spawn(move || {
            let n = single.incr("n").unwrap();
            let k: String = single.get("k").unwrap();
            (vec![n], k)
        });
        let mut piped = patient.clone();
        let piped = greenhub::spawn(move || {
            let mut pipe = greenhub_redis::pipe();
            pipe.cmd("INCR").arg("n").cmd("GET").arg("k");
            let (n, k): (i64, String) = pipe.query(&mut piped).unwrap();
            (vec![n], k)
        });
        let mut atomic = patient.clone();
        let atomic = greenhub::spawn(move || {
            let mut tx = greenhub_redis::pipe();
            tx.atomic()
                .cmd("INCR")
                .arg("n")
                .cmd("INCR")
                .arg("n")
                .cmd("GET")
                .arg("k");
            let (a, b, k): (i64, i64, String) = tx.query(&mut atomic).unwrap();
            assert_eq!(b, a + 1, "a transaction's INCRs are adjacent");
            (vec![a, b], k)
        });
        greenhub::yield_now();
        let still = plain.get::<Option<String>>("k").unwrap_err();
        assert_eq!(
            still.code(),
            Some("LOADING"),
            "the calls went out while loading"
        );
        let mut counted = Vec::new();
        for call in [single, piped, atomic] {
            let (ns, k) = call.join().unwrap();
            assert_eq!(k, "v");
            counted.extend(ns);
        }
        counted.sort();
        assert_eq!(counted, [1, 2, 3, 4]);
        let _server = restarting.join().unwrap();
        let n: i64 = plain.get("n").unwrap();
        assert_eq!(n, 4, "each INCR ran exactly once");
    });
}

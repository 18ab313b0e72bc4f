//! Review of issue 12 (second pass): failing tests for what was found,
//! each ignored with the symptom it shows, against a real redis-server.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenhub_redis::prelude::*;
use greenhub_redis::{cmd, Client};
use greenhub_tests::RedisServer;

/// As docs/testing.md: a bound for "not too late" on a loaded machine.
const SLACK: Duration = Duration::from_secs(1);

/// Regression: `hgetall`'s doc promised "a `Vec` of pairs", which was a
/// type error over both protocols. It now says what reads: a map type or a
/// flat `Vec`, over RESP2 and RESP3 alike; a `Vec` of pairs is a clear type
/// error, and the connection stays usable.
#[test]
fn hgetall_reads_what_its_doc_says_over_both_protocols() {
    let server = RedisServer::start();
    for query in ["", "?protocol=3"] {
        let url = format!("{}{query}", server.url());
        greenhub::run(move || {
            let mut r = Client::open(&url).unwrap();
            r.hset("h", &[("a", "1"), ("b", "2")]).unwrap();
            let map: std::collections::BTreeMap<String, String> = r.hgetall("h").unwrap();
            let want = [("a", "1"), ("b", "2")].map(|(f, v)| (f.to_owned(), v.to_owned()));
            assert_eq!(map.into_iter().collect::<Vec<_>>(), want, "{query}");
            let mut flat: Vec<String> = r.hgetall("h").unwrap();
            flat.sort();
            assert_eq!(flat, ["1", "2", "a", "b"], "{query}");
            let pairs: Result<Vec<(String, String)>, _> = r.hgetall("h");
            assert!(
                matches!(pairs, Err(greenhub_redis::Error::Type { .. })),
                "{query}: {pairs:?}"
            );
            assert_eq!(
                r.hget::<String>("h", "a").unwrap(),
                "1",
                "{query}: still in step"
            );
        });
    }
}

/// Redis parses XREADGROUP's options in any order (`t_stream.c`
/// `xreadCommand` loops over BLOCK, COUNT, STREAMS, GROUP, NOACK), so
/// `XREADGROUP BLOCK 1000 GROUP g c STREAMS s >` is valid and blocks.
/// `Cmd::server_timeout` skips the first four arguments of every
/// XREADGROUP, assuming `GROUP g c` comes first: it sees no BLOCK, the
/// command gets the plain socket timeout as its deadline, and a wait the
/// server will answer in time fails as a timeout and costs the connection.
#[test]
fn xreadgroup_with_block_before_group_is_a_blocking_command() {
    let mut read = cmd("XREADGROUP");
    read.arg("BLOCK")
        .arg(1000)
        .arg("GROUP")
        .arg("g")
        .arg("c")
        .arg("STREAMS")
        .arg("s")
        .arg(">");
    assert_eq!(read.server_timeout(), Some(Duration::from_secs(1)));
}

/// The same, end to end: with `socket_timeout=0.1`, an XREADGROUP that
/// blocks 300 ms and is answered by an XADD after 100 ms must return the
/// entry; it times out instead (the server's own answer comes later).
#[test]
fn xreadgroup_with_block_before_group_waits_for_its_entry() {
    let server = RedisServer::start();
    let url = format!("{}?socket_timeout=0.1", server.url());
    let plain = server.url();
    greenhub::run(move || {
        let mut r = Client::open(&url).unwrap();
        r.xgroup_create("s", "g", "$", true).unwrap();
        let adder = greenhub::spawn(move || {
            greenhub::sleep(Duration::from_millis(100));
            Client::open(&plain)
                .unwrap()
                .xadd("s", "*", &[("f", "v")])
                .unwrap()
        });
        let got = cmd("XREADGROUP")
            .arg("BLOCK")
            .arg(SLACK.as_millis() as u64 + 300)
            .arg("GROUP")
            .arg("g")
            .arg("c")
            .arg("STREAMS")
            .arg("s")
            .arg(">")
            .query::<greenhub_redis::Value>(&mut r);
        adder.join().unwrap();
        assert!(got.is_ok(), "{got:?}");
    });
}

/// A parked BRPOP lends its read buffer (`Reader::wrote_blocking`); a RESP3
/// invalidation push that arrives during the wait is read with the lent
/// buffer taken back, routed to the handler, and the wait goes on with the
/// buffer lent again. Several pushes, then the reply: all in step.
#[test]
fn invalidations_during_a_lent_blocking_wait_are_routed_and_the_reply_arrives() {
    let server = RedisServer::start();
    let url = format!("{}?protocol=3", server.url());
    let plain = server.url();
    greenhub::run(move || {
        let r = Client::open(&url).unwrap();
        let seen = Rc::new(RefCell::new(0usize));
        let seen2 = seen.clone();
        r.on_invalidate(move |_| *seen2.borrow_mut() += 1);
        let mut con = r.get_connection().unwrap();
        cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .query::<()>(&mut *con)
            .unwrap();
        for i in 0..5 {
            let _: Option<String> = con.get(format!("t{i}")).unwrap();
        }
        let writer = greenhub::spawn(move || {
            let mut w = Client::open(&plain).unwrap();
            for i in 0..5 {
                greenhub::sleep(Duration::from_millis(20));
                w.set(format!("t{i}"), "x").unwrap();
            }
            greenhub::sleep(Duration::from_millis(20));
            w.rpush("q", &["done"]).unwrap();
        });
        let start = Instant::now();
        let got = con.brpop(&["q"], 5.0 + SLACK.as_secs_f64()).unwrap();
        writer.join().unwrap();
        assert_eq!(got, Some((b"q".to_vec(), b"done".to_vec())));
        assert!(start.elapsed() < Duration::from_secs(5));
        assert_eq!(*seen.borrow(), 5, "each invalidation routed");
        assert_eq!(con.ping().unwrap(), "PONG");
    });
}

/// A coroutine killed while its BRPOP waits with the buffer lent: the
/// reaper ends the block (CLIENT UNBLOCK) and reads the owed reply into a
/// buffer it takes anew; the connection goes back to the pool in step, and
/// a value pushed afterwards is not lost to the dead caller.
#[test]
fn a_brpop_killed_during_its_lent_wait_is_reaped_and_the_pool_goes_on() {
    let server = RedisServer::start();
    let url = server.url();
    greenhub::run(move || {
        let r = Client::open(&url).unwrap();
        let r2 = r.clone();
        let waiter = greenhub::spawn(move || {
            let mut r2 = r2;
            r2.brpop(&["kq"], 30.0).unwrap()
        });
        greenhub::sleep(Duration::from_millis(50));
        waiter.kill();
        let _ = waiter.join();
        greenhub_tests::wait_until("the reaper gives the connection back", || {
            greenhub::sleep(Duration::from_millis(10));
            r.stats().available >= 1
        });
        let mut r = r;
        r.rpush("kq", &["after"]).unwrap();
        r.set("k", "mine").unwrap();
        assert_eq!(r.get::<String>("k").unwrap(), "mine");
        assert_eq!(
            r.llen("kq").unwrap(),
            1,
            "nothing popped for the dead caller"
        );
        assert_eq!(r.stats().created, 1, "the reaped connection was reused");
    });
}

/// The body shared by the lent-wait checks below: on `url`, a connection
/// with CLIENT TRACKING (RESP3) parks in BRPOP; invalidation pushes arrive
/// during the wait, then a 1 MiB value, then a small one, then its timeout;
/// each reply whole, each push routed, the connection in step after.
fn lent_wait_round_trips(url: String, pusher: String) {
    let r = Client::open(&url).unwrap();
    let seen = Rc::new(RefCell::new(0usize));
    let seen2 = seen.clone();
    r.on_invalidate(move |_| *seen2.borrow_mut() += 1);
    let mut con = r.get_connection().unwrap();
    cmd("CLIENT")
        .arg("TRACKING")
        .arg("ON")
        .query::<()>(&mut *con)
        .unwrap();
    let big: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    for (round, value) in [big.clone(), b"y".to_vec()].into_iter().enumerate() {
        for i in 0..3 {
            let _: Option<Vec<u8>> = con.get(format!("t{i}")).unwrap();
        }
        let (pusher, value2) = (pusher.clone(), value.clone());
        let push = greenhub::spawn(move || {
            let mut w = Client::open(&pusher).unwrap();
            for i in 0..3 {
                greenhub::sleep(Duration::from_millis(15));
                w.set(format!("t{i}"), "x").unwrap();
            }
            greenhub::sleep(Duration::from_millis(15));
            w.rpush("q", &[value2]).unwrap()
        });
        let got = con.brpop(&["q"], 10.0).unwrap();
        push.join().unwrap();
        assert!(got == Some((b"q".to_vec(), value)), "round {round}");
        assert_eq!(
            *seen.borrow(),
            3 * (round + 1),
            "round {round}: pushes routed"
        );
        assert_eq!(con.incr("n").unwrap(), round as i64 + 1, "in step");
    }
    assert_eq!(con.brpop(&["q"], 0.05).unwrap(), None);
    assert_eq!(con.ping().unwrap(), "PONG");
}

/// Over TLS (rustls holds decrypted bytes the socket no longer shows).
#[test]
fn a_lent_blocking_wait_over_tls_reads_pushes_and_replies_whole() {
    let server = greenhub_tests::TlsServer::start(false);
    let url = format!("{}&protocol=3", server.url(false));
    let pusher = server.plain().url();
    greenhub::run(move || lent_wait_round_trips(url, pusher));
}

/// Through a proxy that forwards one byte per segment: every frame,
/// push or reply, arrives split at every byte.
#[test]
fn a_lent_blocking_wait_with_every_byte_split_reads_pushes_and_replies_whole() {
    let server = RedisServer::start();
    let proxy = greenhub_tests::FaultProxy::start(server.addr());
    proxy.set(greenhub_tests::Fault::Slice);
    let url = format!("{}?protocol=3", proxy.url());
    let pusher = server.url();
    greenhub::run(move || lent_wait_round_trips(url, pusher));
}

/// An idle pooled connection the server closed (an admin's `CLIENT KILL`,
/// the server's `timeout`, a restart): the next caller must get its reply,
/// not "the server closed the connection" from a pooled corpse.
fn kill_idle_then_use(server: &RedisServer, r: &mut Client, pause: &dyn Fn()) {
    r.set("k", "v").unwrap();
    assert_eq!(r.stats().available, 1);
    let killed = server.raw_command(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"]);
    assert_eq!(killed, b":1\r\n", "the pooled connection was killed");
    pause();
    let got = r.get::<String>("k");
    assert_eq!(got.map_err(|e| e.to_string()), Ok("v".to_owned()));
}

#[test]
fn an_idle_connection_the_server_closed_does_not_fail_the_next_caller() {
    let server = RedisServer::start();
    let url = server.url();
    greenhub::run(move || {
        let mut r = Client::open(&url).unwrap();
        kill_idle_then_use(&server, &mut r, &|| {
            greenhub::sleep(Duration::from_millis(20))
        });
    });
}

/// The same on a plain thread (std sockets).
#[test]
fn an_idle_connection_the_server_closed_does_not_fail_the_next_caller_on_a_thread() {
    let server = RedisServer::start();
    let mut r = Client::open(&server.url()).unwrap();
    kill_idle_then_use(&server, &mut r, &|| {
        std::thread::sleep(Duration::from_millis(20))
    });
}

/// The first blocking command of a connection goes out behind CLIENT ID
/// (for the reaper's CLIENT UNBLOCK). Killed before even CLIENT ID's reply
/// is read: the reaper reads the id first, ends the block, and the
/// connection goes back to the pool in step; a later push is not lost.
#[test]
fn a_first_brpop_killed_before_its_client_id_reply_is_read_is_reaped_in_step() {
    let server = RedisServer::start();
    let url = server.url();
    greenhub::run(move || {
        let r = Client::open(&url).unwrap();
        r.clone().ping().unwrap();
        for round in 0..20 {
            let r2 = r.clone();
            let waiter = greenhub::spawn(move || {
                let mut r2 = r2;
                r2.brpop(&["fq"], 30.0)
            });
            // Let it write and park, then kill it at once.
            greenhub::yield_now();
            waiter.kill();
            let _ = waiter.join();
            greenhub_tests::wait_until("the reaper gives the connection back", || {
                greenhub::sleep(Duration::from_millis(5));
                r.stats().available >= 1
            });
            let mut r = r.clone();
            assert_eq!(r.incr("n").unwrap(), round + 1, "round {round}: in step");
        }
        let mut r = r.clone();
        r.rpush("fq", &["after"]).unwrap();
        assert_eq!(r.llen("fq").unwrap(), 1, "nothing popped for a dead caller");
    });
}

/// Session state set *inside* MULTI/EXEC (an atomic pipeline): CLIENT
/// TRACKING ON and SELECT run when EXEC does. The pool must not hand the
/// connection on as if it were fresh: the next GET must read db 0, and no
/// invalidation push may answer a later command.
#[test]
fn tracking_and_select_inside_an_atomic_pipeline_are_not_inherited() {
    let server = RedisServer::start();
    let url = format!("{}?protocol=3", server.url());
    let plain = server.url();
    greenhub::run(move || {
        let mut r = Client::open(&url).unwrap();
        r.set("k", "db0").unwrap();
        let _: greenhub_redis::Value = greenhub_redis::pipe()
            .atomic()
            .cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .cmd("SELECT")
            .arg(5)
            .cmd("SET")
            .arg("k")
            .arg("db5")
            .cmd("GET")
            .arg("k")
            .query(&mut r)
            .unwrap();
        Client::open(&plain).unwrap().select_then_set();
        assert_eq!(r.get::<String>("k").unwrap(), "db0");
        for _ in 0..3 {
            assert_eq!(r.ping().unwrap(), "PONG");
        }
    });
}

/// Invalidates db 5's `k` (and db 0's) from another connection.
trait SelectThenSet {
    fn select_then_set(self);
}

impl SelectThenSet for Client {
    fn select_then_set(mut self) {
        let _: greenhub_redis::Value = greenhub_redis::pipe()
            .cmd("SELECT")
            .arg(5)
            .cmd("SET")
            .arg("k")
            .arg("changed")
            .query(&mut self)
            .unwrap();
    }
}

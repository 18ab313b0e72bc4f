//! The client through the fault proxy (`tests/support/proxy.rs`) in front
//! of a real server: every reply identical when every byte arrives alone,
//! and for each fault a clear error, no reuse of a half-read connection, and
//! recovery once the fault lifts. See `docs/reliability.md`.

use std::time::Duration;

use greenhub_redis::prelude::*;
use greenhub_redis::{cmd, Client, Cmd, Error, RetryPolicy, Value};
use greenhub_tests::{wait_until, Fault, FaultProxy, RedisServer};

/// A mixed corpus: every reply type, binary and large values, error
/// replies, nesting, blocking commands that time out.
fn corpus() -> Vec<Cmd> {
    let big: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    let mut cmds = vec![
        cmd("SET").arg("s").arg(b"a\r\nb\x00c\xff").clone(),
        cmd("GET").arg("s").clone(),
        cmd("SET").arg("big").arg(&big[..]).clone(),
        cmd("GET").arg("big").clone(),
        cmd("INCRBY")
            .arg("n")
            .arg(-9_223_372_036_854_775_807i64)
            .clone(),
        cmd("INCR").arg("s").clone(),
        cmd("HSET")
            .arg("h")
            .arg("f1")
            .arg("v1")
            .arg("f2")
            .arg("")
            .clone(),
        cmd("HGETALL").arg("h").clone(),
        cmd("RPUSH").arg("l").arg("a").arg("b").arg("c").clone(),
        cmd("LRANGE").arg("l").arg(0).arg(-1).clone(),
        cmd("SADD").arg("set").arg(3).arg(1).arg(2).clone(),
        cmd("SMEMBERS").arg("set").clone(),
        cmd("ZADD")
            .arg("z")
            .arg(1.5)
            .arg("a")
            .arg("-inf")
            .arg("b")
            .clone(),
        cmd("ZRANGE")
            .arg("z")
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .clone(),
        cmd("ZSCORE").arg("z").arg("a").clone(),
        cmd("XADD").arg("x").arg("1-1").arg("f").arg("v").clone(),
        cmd("XRANGE").arg("x").arg("-").arg("+").clone(),
        cmd("EVAL")
            .arg("return {1, {2, {3, 'x'}}, redis.status_reply('OK')}")
            .arg(0)
            .clone(),
        cmd("LPOP").arg("h").clone(),
        cmd("BRPOP").arg("empty").arg(0.05).clone(),
        cmd("GET").arg("missing").clone(),
        cmd("EXISTS").arg("s").arg("h").arg("nope").clone(),
    ];
    for i in 0..50 {
        cmds.push(cmd("SET").arg(format!("k{i}")).arg(i).clone());
        cmds.push(cmd("GET").arg(format!("k{i}")).clone());
    }
    cmds
}

/// Runs the corpus one by one, as a pipeline and as a transaction.
fn run_corpus(redis: &mut Client) -> Vec<String> {
    let _: Value = redis.req_command(&cmd("FLUSHDB")).unwrap();
    let cmds = corpus();
    let mut out: Vec<String> = cmds
        .iter()
        .map(|c| format!("{:?}", redis.req_command(c).map_err(|e| e.to_string())))
        .collect();
    let _: Value = redis.req_command(&cmd("FLUSHDB")).unwrap();
    out.push(format!(
        "{:?}",
        redis.req_pipeline(&cmds, false).map_err(|e| e.to_string())
    ));
    let _: Value = redis.req_command(&cmd("FLUSHDB")).unwrap();
    let atomic: Vec<Cmd> = cmds
        .iter()
        .filter(|c| !format!("{c:?}").contains("BRPOP"))
        .cloned()
        .collect();
    out.push(format!(
        "{:?}",
        redis.req_pipeline(&atomic, true).map_err(|e| e.to_string())
    ));
    out
}

#[test]
fn every_command_and_pipeline_gets_identical_replies_through_the_one_byte_slicer() {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.addr());
    proxy.set(Fault::Slice);
    let (direct, sliced) = (server.url(), proxy.url());
    greenhub::run(move || {
        for protocol in ["", "?protocol=3"] {
            let mut direct = Client::open(&format!("{direct}/1{protocol}")).unwrap();
            let mut sliced = Client::open(&format!("{sliced}/2{protocol}")).unwrap();
            let expected = run_corpus(&mut direct);
            let got = run_corpus(&mut sliced);
            assert_eq!(expected.len(), got.len());
            for (i, (e, g)) in expected.iter().zip(&got).enumerate() {
                assert_eq!(e, g, "reply {i} differs through the slicer ({protocol})");
            }
        }
    });
    drop(proxy);
}

/// `count` distinct keys set and read back, each GET its own value: no
/// reply reached a caller that did not ask for it.
fn each_gets_its_own(redis: &mut Client, count: usize) {
    for i in 0..count {
        redis.set(format!("own{i}"), i).unwrap();
    }
    for i in 0..count {
        let value: usize = redis.get(format!("own{i}")).unwrap();
        assert_eq!(value, i);
    }
}

#[test]
fn added_latency_past_the_socket_timeout_is_a_timeout_and_the_connection_is_not_reused() {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.addr());
    let url = proxy.url() + "?socket_timeout=1";
    greenhub::run(move || {
        let mut redis = Client::open(&url).unwrap();
        each_gets_its_own(&mut redis, 10);
        proxy.set(Fault::Latency(Duration::from_millis(10)));
        each_gets_its_own(&mut redis, 10);
        proxy.set(Fault::Latency(Duration::from_secs(3)));
        let err = redis.get::<Option<String>>("own1").unwrap_err();
        assert!(err.is_timeout() && err.is_ambiguous(), "{err}");
        assert_eq!(
            redis.stats().available,
            0,
            "the late connection was not pooled"
        );
        proxy.set(Fault::None);
        // The late reply arrives on a closed connection; the next caller
        // gets a fresh one and its own answers.
        each_gets_its_own(&mut redis, 10);
        assert!(redis.pool().discards().broken >= 1);
    });
}

#[test]
fn a_reply_cut_in_its_middle_is_a_connection_error_and_then_the_client_recovers() {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.addr());
    let url = proxy.url();
    greenhub::run(move || {
        let mut redis = Client::open(&url).unwrap().with_retry(RetryPolicy::never());
        let big = vec![b'x'; 200_000];
        redis.set("big", &big[..]).unwrap();
        proxy.set(Fault::CutMidReply);
        let err = redis.get::<Vec<u8>>("big").unwrap_err();
        assert!(matches!(err, Error::Io(_)) && err.is_ambiguous(), "{err}");
        assert!(proxy.cut_replies() >= 1);
        assert_eq!(
            redis.stats().available,
            0,
            "a half-read connection is never pooled"
        );
        proxy.set(Fault::None);
        assert_eq!(redis.get::<Vec<u8>>("big").unwrap(), big);
        each_gets_its_own(&mut redis, 10);
    });
}

#[test]
fn a_read_cut_in_its_middle_is_retried_and_an_incr_is_not() {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.addr());
    let url = proxy.url();
    greenhub::run(move || {
        let mut redis = Client::open(&url).unwrap();
        redis.set("n", 0).unwrap();
        let handle = greenhub::spawn({
            let mut redis = redis.clone();
            move || redis.get::<i64>("n")
        });
        proxy.set(Fault::CutMidReply);
        greenhub::sleep(Duration::from_millis(20));
        proxy.set(Fault::None);
        assert_eq!(handle.join().unwrap().unwrap(), 0, "the GET was retried");
        proxy.set(Fault::CutMidReply);
        let err = redis.incr("n").unwrap_err();
        assert!(err.is_ambiguous(), "{err}");
        proxy.set(Fault::None);
        let n: i64 = redis.get("n").unwrap();
        assert_eq!(n, 1, "the INCR ran once, and was not repeated");
    });
}

#[test]
fn a_blackhole_is_a_timeout_and_the_client_recovers_when_it_lifts() {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.addr());
    let url = proxy.url() + "?socket_timeout=0.1";
    greenhub::run(move || {
        let mut redis = Client::open(&url).unwrap();
        each_gets_its_own(&mut redis, 5);
        proxy.set(Fault::Blackhole);
        proxy.cut_all();
        let err = redis.get::<Option<String>>("own1").unwrap_err();
        assert!(err.is_timeout(), "{err}");
        assert_eq!(redis.stats().available, 0);
        proxy.set(Fault::None);
        each_gets_its_own(&mut redis, 5);
    });
}

#[test]
fn refused_connections_are_never_sent_errors_and_retries_bridge_a_short_refusal() {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.addr());
    let url = proxy.url();
    greenhub::run(move || {
        proxy.set(Fault::Refuse);
        // The proxy closes its listener on its own thread: wait until a new
        // client's connection is refused (each probe opens its own).
        wait_until("the proxy refuses connections", || {
            let mut probe = Client::open(&url).unwrap().with_retry(RetryPolicy::never());
            probe.req_command(&cmd("PING")).is_err()
        });
        let mut plain = Client::open(&url).unwrap().with_retry(RetryPolicy::never());
        let err = plain.incr("n").unwrap_err();
        assert!(err.is_io() && !err.is_ambiguous(), "{err}");
        // An INCR that was never sent is retried: it runs once, when the
        // proxy accepts again.
        let mut redis = Client::open(&url).unwrap();
        let lift = greenhub::spawn(move || {
            greenhub::sleep(Duration::from_millis(100));
            proxy.set(Fault::None);
            proxy
        });
        assert_eq!(redis.incr("n").unwrap(), 1);
        let _proxy = lift.join().unwrap();
    });
}

#[test]
fn connections_cut_under_a_brpop_fail_it_clearly_and_lose_no_connection() {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.addr());
    let url = proxy.url();
    greenhub::run(move || {
        let redis = Client::open(&url).unwrap();
        let waiters: Vec<_> = (0..20)
            .map(|_| {
                let mut redis = redis.clone();
                greenhub::spawn(move || redis.brpop(&["q"], 5.0))
            })
            .collect();
        greenhub_tests::wait_until("all blocked", || proxy.accepted() >= 20);
        greenhub::sleep(Duration::from_millis(50));
        proxy.cut_all();
        for waiter in waiters {
            let err = waiter.join().unwrap().unwrap_err();
            assert!(err.is_io() && err.is_ambiguous(), "{err}");
        }
        assert_eq!(redis.stats().in_use, 0);
        assert_eq!(redis.stats().available, 0);
        let mut redis = redis;
        each_gets_its_own(&mut redis, 5);
    });
}

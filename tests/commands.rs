//! Every command family, against a real redis-server.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use greenhub_redis::commands::{Direction, Expiry, SetOptions};
use greenhub_redis::prelude::*;
use greenhub_redis::{cmd, Client, Error, Value};
use greenhub_tests::RedisServer;

/// Runs `body` against a fresh server twice: over RESP2, then over RESP3
/// (`?protocol=3`), where many replies change shape (maps, sets, doubles,
/// nested pairs) and every typed command must read both alike.
fn on_server(body: impl Fn(Client) + Clone + 'static) {
    let server = RedisServer::start();
    for query in ["", "?protocol=3"] {
        server.raw_command(&["FLUSHALL"]);
        let url = format!("{}{query}", server.url());
        let body = body.clone();
        greenhub::run(move || body(Client::open(&url).unwrap()));
    }
}

#[test]
fn strings() {
    on_server(|mut r| {
        r.set("s", "hello").unwrap();
        assert_eq!(r.get::<String>("s").unwrap(), "hello");
        assert_eq!(r.get::<Option<String>>("missing").unwrap(), None);
        assert_eq!(r.append("s", " world").unwrap(), 11);
        assert_eq!(r.strlen("s").unwrap(), 11);
        assert!(!r
            .set_with(
                "s",
                "x",
                SetOptions {
                    only_if_absent: true,
                    ..Default::default()
                }
            )
            .unwrap());
        assert!(r
            .set_with(
                "t",
                "x",
                SetOptions {
                    expiry: Some(Expiry::Seconds(100)),
                    ..Default::default()
                }
            )
            .unwrap());
        assert!(r.ttl("t").unwrap() > 90);
        assert!(r
            .set_with(
                "t",
                "y",
                SetOptions {
                    expiry: Some(Duration::from_millis(50_000).into()),
                    only_if_present: true,
                    ..Default::default()
                }
            )
            .unwrap());
        r.mset(&[("a", "1"), ("b", "2")]).unwrap();
        assert_eq!(
            r.mget::<_, i64>(&["a", "b", "nope"]).unwrap(),
            [Some(1), Some(2), None]
        );
        assert_eq!(r.incr("n").unwrap(), 1);
        assert_eq!(r.incr_by("n", 10).unwrap(), 11);
        assert_eq!(r.decr("n").unwrap(), 10);
        assert_eq!(r.decr_by("n", 4).unwrap(), 6);
        assert_eq!(r.getdel::<Option<i64>>("n").unwrap(), Some(6));
        assert_eq!(r.exists(&["n"]).unwrap(), 0);
        let binary: Vec<u8> = vec![0, 255, b'\r', b'\n', 7];
        r.set("bin", &binary).unwrap();
        assert_eq!(
            r.get::<Vec<u8>>("bin").unwrap(),
            binary,
            "values are binary-safe"
        );
    });
}

#[test]
fn keys() {
    on_server(|mut r| {
        r.mset(&[("k1", "1"), ("k2", "2"), ("other", "3")]).unwrap();
        assert_eq!(r.exists(&["k1", "k2", "zz"]).unwrap(), 2);
        assert!(r.expire("k1", Duration::from_secs(100)).unwrap());
        assert!(r.ttl("k1").unwrap() > 0);
        assert_eq!(r.ttl("k2").unwrap(), -1);
        assert_eq!(r.key_type("k2").unwrap(), "string");
        r.rename("k2", "k3").unwrap();
        let mut found: Vec<String> = r.scan_match::<String>("k*").map(Result::unwrap).collect();
        found.sort();
        found.dedup();
        assert_eq!(found, ["k1", "k3"]);
        assert_eq!(r.del(&["k1", "k3", "other"]).unwrap(), 3);
        assert_eq!(r.dbsize().unwrap(), 0);
    });
}

#[test]
fn scan_walks_a_large_keyspace_in_batches() {
    on_server(|mut r| {
        let mut pipe = greenhub_redis::pipe();
        for i in 0..1000 {
            pipe.cmd("SET").arg(format!("many:{i}")).arg(i);
        }
        pipe.query::<()>(&mut r).unwrap();
        let found: HashSet<String> = r
            .scan_match::<String>("many:*")
            .map(Result::unwrap)
            .collect();
        assert_eq!(found.len(), 1000);
    });
}

#[test]
fn lists_including_the_blocking_ones() {
    on_server(|mut r| {
        assert_eq!(r.rpush("l", &["b", "c"]).unwrap(), 2);
        assert_eq!(r.lpush("l", &["a"]).unwrap(), 3);
        assert_eq!(r.lrange::<String>("l", 0, -1).unwrap(), ["a", "b", "c"]);
        assert_eq!(r.llen("l").unwrap(), 3);
        assert_eq!(r.lpop::<Option<String>>("l").unwrap().as_deref(), Some("a"));
        assert_eq!(r.rpop::<Option<String>>("l").unwrap().as_deref(), Some("c"));
        assert_eq!(
            r.brpop(&["l"], 1.0).unwrap(),
            Some((b"l".to_vec(), b"b".to_vec()))
        );
        assert_eq!(r.blpop(&["empty"], 0.05).unwrap(), None);
        r.rpush("src", &["x"]).unwrap();
        let moved: Option<String> = r
            .blmove("src", "dst", Direction::Left, Direction::Right, 1.0)
            .unwrap();
        assert_eq!(moved.as_deref(), Some("x"));
        assert_eq!(r.lrange::<String>("dst", 0, -1).unwrap(), ["x"]);
    });
}

#[test]
fn hashes() {
    on_server(|mut r| {
        assert_eq!(r.hset("h", &[("f1", "1"), ("f2", "2")]).unwrap(), 2);
        assert_eq!(r.hget::<Option<i64>>("h", "f1").unwrap(), Some(1));
        assert_eq!(r.hincr_by("h", "f1", 5).unwrap(), 6);
        let all: HashMap<String, i64> = r.hgetall("h").unwrap();
        assert_eq!(
            all,
            HashMap::from([("f1".to_owned(), 6), ("f2".to_owned(), 2)])
        );
        let sorted: BTreeMap<String, String> = r.hgetall("h").unwrap();
        assert_eq!(sorted.keys().collect::<Vec<_>>(), ["f1", "f2"]);
        let scanned: HashMap<String, i64> = r.hscan("h", "*").map(Result::unwrap).collect();
        assert_eq!(scanned, all);
        assert_eq!(r.hdel("h", &["f1", "nope"]).unwrap(), 1);
    });
}

#[test]
fn sets() {
    on_server(|mut r| {
        assert_eq!(r.sadd("s", &["a", "b", "a"]).unwrap(), 2);
        assert!(r.sismember("s", "a").unwrap());
        assert!(!r.sismember("s", "z").unwrap());
        let members: HashSet<String> = r.smembers("s").unwrap();
        assert_eq!(members, HashSet::from(["a".to_owned(), "b".to_owned()]));
        assert_eq!(r.srem("s", &["a"]).unwrap(), 1);
    });
}

#[test]
fn sorted_sets() {
    on_server(|mut r| {
        assert_eq!(
            r.zadd("z", &[(2.0, "two"), (1.0, "one"), (3.5, "three")])
                .unwrap(),
            3
        );
        assert_eq!(
            r.zrange::<String>("z", 0, -1).unwrap(),
            ["one", "two", "three"]
        );
        assert_eq!(
            r.zrange_withscores::<String>("z", 0, 1).unwrap(),
            [("one".to_owned(), 1.0), ("two".to_owned(), 2.0)]
        );
        assert_eq!(r.zscore("z", "three").unwrap(), Some(3.5));
        assert_eq!(r.zscore("z", "none").unwrap(), None);
        assert_eq!(r.zincr_by("z", "one", 10.0).unwrap(), 11.0);
        assert_eq!(
            r.bzpopmin::<_, String>(&["z"], 1.0).unwrap(),
            Some(("z".to_owned(), "two".to_owned(), 2.0))
        );
        assert_eq!(r.bzpopmin::<_, String>(&["nothing"], 0.05).unwrap(), None);
    });
}

#[test]
fn server_commands_and_the_generic_builder() {
    on_server(|mut r| {
        assert_eq!(r.ping().unwrap(), "PONG");
        assert_eq!(r.echo::<String>("hi").unwrap(), "hi");
        assert!(r.info("server").unwrap().contains("redis_version"));
        r.cmd("SET").arg("k").arg(b"v").query::<()>().unwrap();
        assert_eq!(r.cmd("GET").arg("k").query::<String>().unwrap(), "v");
        assert_eq!(
            greenhub_redis::cmd("STRLEN")
                .arg("k")
                .query::<i64>(&mut r)
                .unwrap(),
            1
        );
        r.flushdb().unwrap();
        assert_eq!(r.dbsize().unwrap(), 0);
    });
}

#[test]
fn server_errors_carry_redis_code_and_leave_the_connection_usable() {
    on_server(|mut r| {
        r.set("str", "x").unwrap();
        let err = r.lpush("str", &["y"]).unwrap_err();
        assert_eq!(err.code(), Some("WRONGTYPE"), "{err}");
        assert!(err.to_string().contains("WRONGTYPE"));
        let err = r.cmd("NOSUCHCOMMAND").query::<()>().unwrap_err();
        assert_eq!(err.code(), Some("ERR"));
        let err = r.get::<i64>("str").unwrap_err();
        assert!(
            matches!(
                err,
                Error::Type {
                    expected: "i64",
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(r.ping().unwrap(), "PONG");
        assert_eq!(
            r.stats().created,
            1,
            "the one connection survived every error"
        );
    });
}

#[test]
fn a_unix_socket_url_with_a_database_selects_it() {
    let server = RedisServer::start();
    let url = format!("{}?db=3", server.unix_url());
    greenhub::run(move || {
        let mut r = Client::open(&url).unwrap();
        r.set("in-db-3", "yes").unwrap();
    });
    assert_eq!(server.raw_command(&["SELECT", "3"]), b"+OK\r\n");
}

#[test]
fn auth_with_the_right_password_works_and_a_wrong_one_is_a_clear_error() {
    let server = RedisServer::start_with(&["--requirepass", "s3cret-pw"]);
    let (good, wrong, missing) = (
        format!("redis://:s3cret-pw@127.0.0.1:{}", server.addr().port()),
        format!("redis://:not-it@127.0.0.1:{}", server.addr().port()),
        server.url(),
    );
    greenhub::run(move || {
        let mut ok = Client::open(&good).unwrap();
        assert_eq!(ok.ping().unwrap(), "PONG");
        let err = Client::open(&wrong).unwrap().ping().unwrap_err();
        assert!(
            matches!(err.code(), Some("WRONGPASS") | Some("ERR")),
            "{err}"
        );
        assert!(
            !err.to_string().contains("not-it"),
            "the password leaked: {err}"
        );
        let err = Client::open(&missing).unwrap().ping().unwrap_err();
        assert_eq!(err.code(), Some("NOAUTH"), "{err}");
        assert!(!format!("{:?}", Client::open(&good).unwrap()).contains("s3cret-pw"));
    });
}

#[test]
fn the_url_can_name_the_connection_with_client_setname() {
    let server = RedisServer::start();
    let url = format!("{}?client_name=worker-7", server.url());
    greenhub::run(move || {
        let mut redis = Client::open(&url).unwrap();
        let name: Option<String> = redis.cmd("CLIENT").arg("GETNAME").query().unwrap();
        assert_eq!(name.as_deref(), Some("worker-7"));
        let _ = redis.ping();
    });
}

/// Regression: a status or error line with a byte that is not UTF-8 was a
/// protocol error that dropped the connection; Redis echoes user bytes.
#[test]
fn status_and_error_replies_that_echo_non_utf8_bytes_keep_the_connection() {
    on_server(|mut r| {
        let status: Vec<u8> = cmd("EVAL")
            .arg("return redis.status_reply(ARGV[1])")
            .arg(0)
            .arg(&b"caf\xe9"[..])
            .query(&mut r)
            .unwrap();
        assert_eq!(status, b"caf\xe9");
        let err = cmd("OBJECT")
            .arg(&b"\xff\xfe"[..])
            .query::<Value>(&mut r)
            .unwrap_err();
        assert_eq!(err.code(), Some("ERR"), "{err}");
        assert!(err.to_string().contains('\u{fffd}'), "{err}");
        // The text is lossy; the bytes the server sent stay with the error.
        let Error::Server(server) = &err else {
            panic!("not a server error: {err}");
        };
        let raw = server
            .raw
            .as_deref()
            .expect("the raw bytes of a non-UTF-8 error");
        assert!(raw.starts_with(b"ERR "), "{raw:?}");
        assert!(
            raw.windows(2).any(|w| w == b"\xff\xfe"),
            "the echoed bytes are not in {raw:?}"
        );
        assert_eq!(&*server.bytes(), raw);
        assert_eq!(r.ping().unwrap(), "PONG");
        assert_eq!(r.stats().created, 1, "the connection stayed");
    });
}

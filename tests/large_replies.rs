//! Large and deep replies from the real server: each arrives whole, parsed
//! once as its reads come in (`resp/decode.rs`), within `max_reply_bytes`.

use greenhub_redis::prelude::*;
use greenhub_redis::{cmd, resp, Client, Error, Value};
use greenhub_tests::{with_client, RedisServer};

#[test]
fn a_list_of_200000_elements_arrives_whole() {
    with_client("", |mut r| {
        for batch in 0..20 {
            let items: Vec<String> = (batch * 10_000..(batch + 1) * 10_000)
                .map(|i| format!("element-{i}"))
                .collect();
            r.rpush("big", &items).unwrap();
        }
        let all: Vec<String> = r.lrange("big", 0, -1).unwrap();
        assert_eq!(all.len(), 200_000);
        assert!(all
            .iter()
            .enumerate()
            .all(|(i, e)| *e == format!("element-{i}")));
        assert_eq!(r.stats().created, 1, "the connection stayed in step");
    });
}

#[test]
fn a_sixteen_megabyte_value_round_trips() {
    with_client("", |mut r| {
        let value: Vec<u8> = (0..16 << 20).map(|i| (i % 251) as u8).collect();
        r.set("huge", &value).unwrap();
        let back: Vec<u8> = r.get("huge").unwrap();
        assert!(back == value, "the value came back changed");
        assert_eq!(r.strlen("huge").unwrap(), 16 << 20);
    });
}

#[test]
fn a_reply_over_max_reply_bytes_is_refused_and_its_connection_closed() {
    with_client("?max_reply_bytes=1048576", |mut r| {
        r.set("two-mib", vec![b'x'; 2 << 20]).unwrap();
        let err = r.get::<Vec<u8>>("two-mib").unwrap_err();
        assert!(
            matches!(err, Error::Protocol(_)) && err.to_string().contains("reply size limit"),
            "{err}"
        );
        // A list of small elements that add up to more is refused too.
        let items = vec!["0123456789"; 100_000];
        r.rpush("many", &items).unwrap();
        let err = r.lrange::<String>("many", 0, -1).unwrap_err();
        assert!(matches!(err, Error::Protocol(_)), "{err}");
        let stats = r.stats();
        assert_eq!((stats.created, stats.available), (2, 0), "both closed");
        assert_eq!(r.strlen("two-mib").unwrap(), 2 << 20, "a fresh one works");
    });
}

/// Regression: replies nested deeper than 64 were refused, and Redis sends
/// whatever a script builds (hiredis accepts 1024 levels).
#[test]
fn a_script_reply_nested_1024_deep_parses_on_a_default_coroutine_stack() {
    with_client("", |mut r| {
        let script = "local t = 1; for i = 1, 1024 do t = {t} end; return t";
        let reply: Value = cmd("EVAL").arg(script).arg(0).query(&mut r).unwrap();
        let mut depth = 0;
        let mut at = &reply;
        while let Value::Array(items) = at {
            assert_eq!(items.len(), 1);
            depth += 1;
            at = &items[0];
        }
        assert_eq!((depth, at), (1024, &Value::Int(1)));
        // The compiler's drop glue would recurse once per level.
        resp::dismantle(reply);
    });
}

#[test]
fn large_replies_arrive_whole_on_a_plain_thread_too() {
    let server = RedisServer::start();
    let mut r = Client::open(&server.url()).unwrap();
    let value = vec![b'p'; 3 << 20];
    r.set("plain", &value).unwrap();
    assert!(r.get::<Vec<u8>>("plain").unwrap() == value);
    let items: Vec<i64> = (0..50_000).collect();
    r.rpush("nums", &items).unwrap();
    assert_eq!(r.lrange::<i64>("nums", 0, -1).unwrap(), items);
}

/// A parked blocking pop lends its read buffer back while it waits
/// (`Reader::wrote_blocking`): whatever wakes it (a 1 MiB value, a small
/// one, its timeout, a value already there) must arrive whole, and the same
/// connection must go on in step, over both protocols.
#[test]
fn a_blocking_pop_woken_by_any_reply_reads_it_whole_and_goes_on() {
    for query in ["", "?protocol=3"] {
        let server = RedisServer::start();
        let url = format!("{}{query}", server.url());
        let pusher = server.url();
        greenhub::run(move || {
            let redis = Client::open(&url).unwrap();
            let mut conn = redis.get_connection().unwrap();
            let big: Vec<u8> = (0..1 << 20).map(|i| (i % 253) as u8).collect();
            for (round, value) in [big.clone(), b"x".to_vec(), big.clone()]
                .into_iter()
                .enumerate()
            {
                let (pusher, value2) = (pusher.clone(), value.clone());
                let push = greenhub::spawn(move || {
                    greenhub::sleep(std::time::Duration::from_millis(30));
                    Client::open(&pusher)
                        .unwrap()
                        .rpush("q", &[value2])
                        .unwrap()
                });
                let got: Option<(Vec<u8>, Vec<u8>)> = conn.brpop(&["q"], 5.0).unwrap();
                assert!(got == Some((b"q".to_vec(), value)), "round {round} {query}");
                assert_eq!(push.join().unwrap(), 1);
                assert_eq!(conn.incr("n").unwrap(), round as i64 + 1, "in step");
            }
            // Its timeout, then a value that was there before it asked.
            let none: Option<(Vec<u8>, Vec<u8>)> = conn.brpop(&["q"], 0.05).unwrap();
            assert_eq!(none, None);
            conn.rpush("q", &[&big]).unwrap();
            let got: Option<(Vec<u8>, Vec<u8>)> = conn.brpop(&["q"], 5.0).unwrap();
            assert!(got == Some((b"q".to_vec(), big)), "{query}");
            assert_eq!(conn.get::<i64>("n").unwrap(), 3);
            drop(conn);
            assert_eq!(redis.stats().created, 1, "one connection all along");
        });
    }
}

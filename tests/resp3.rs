//! RESP3 (`?protocol=3`): richer reply types, and pushes that never answer a
//! command: pub/sub messages go to the message handler, invalidations to the
//! tracking handler (`redis-client/src/push.rs`).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use greenhub_redis::prelude::*;
use greenhub_redis::{cmd, pipe, Client, Value};
use greenhub_tests::{with_client, RedisServer};

#[test]
fn protocol_3_in_the_url_speaks_resp3_after_hello_3() {
    with_client("?protocol=3", |mut r| {
        let hello: Value = cmd("HELLO").query(&mut r).unwrap();
        let Value::Map(fields) = hello else {
            panic!("HELLO answers a map in RESP3: {hello:?}")
        };
        assert!(fields.contains(&(Value::Bulk(b"proto".to_vec()), Value::Int(3))));
        r.zadd("z", &[(1.5, "a")]).unwrap();
        let score: Value = cmd("ZSCORE").arg("z").arg("a").query(&mut r).unwrap();
        assert_eq!(score, Value::Double(1.5));
        r.hset("h", &[("f", "v")]).unwrap();
        let all: Value = cmd("HGETALL").arg("h").query(&mut r).unwrap();
        assert_eq!(
            all,
            Value::Map(vec![(
                Value::Bulk(b"f".to_vec()),
                Value::Bulk(b"v".to_vec())
            )])
        );
        for _ in 0..5 {
            assert_eq!(r.get::<Option<String>>("missing").unwrap(), None);
        }
        assert_eq!(r.stats().created, 1, "RESP3 is the baseline: pooled");
    });
}

#[test]
fn an_invalidation_push_never_answers_a_command() {
    with_client("?protocol=3", |r| {
        let invalidated = Rc::new(RefCell::new(Vec::new()));
        let seen = invalidated.clone();
        r.on_invalidate(move |keys| seen.borrow_mut().push(keys));
        let mut con = r.get_connection().unwrap();
        cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .query::<()>(&mut *con)
            .unwrap();
        // The SET invalidates the key this connection read: the server sends
        // the push after SET's reply, before PING's.
        let (got, set, pong): (Option<String>, String, String) = pipe()
            .cmd("GET")
            .arg("tracked")
            .cmd("SET")
            .arg("tracked")
            .arg("1")
            .cmd("PING")
            .query(&mut *con)
            .unwrap();
        assert_eq!((got, set.as_str(), pong.as_str()), (None, "OK", "PONG"));
        assert_eq!(con.get::<String>("tracked").unwrap(), "1");
        assert_eq!(con.ping().unwrap(), "PONG");
        assert_eq!(*invalidated.borrow(), [Some(vec![b"tracked".to_vec()])]);
        drop(con);
        assert_eq!(
            r.stats().available,
            0,
            "a tracking connection is not pooled"
        );
    });
}

#[test]
fn a_message_pushed_to_a_subscribed_resp3_connection_goes_to_the_message_handler() {
    with_client("?protocol=3", |r| {
        let messages = Rc::new(RefCell::new(Vec::new()));
        let seen = messages.clone();
        r.on_message(move |message| seen.borrow_mut().push(message.text()));
        let mut con = r.get_connection().unwrap();
        let confirmation: Value = cmd("SUBSCRIBE").arg("news").query(&mut *con).unwrap();
        assert!(matches!(confirmation, Value::Push(_)), "{confirmation:?}");
        let receivers: i64 = r.cmd("PUBLISH").arg("news").arg("hello").query().unwrap();
        assert_eq!(receivers, 1);
        // Every command still gets its own reply while the message is routed.
        while messages.borrow().is_empty() {
            assert_eq!(con.ping().unwrap(), "PONG");
            greenhub::sleep(Duration::from_millis(1));
        }
        assert_eq!(*messages.borrow(), ["hello"]);
        assert_eq!(con.get::<Option<String>>("k").unwrap(), None);
    });
}

#[test]
fn a_pubsub_session_over_resp3_receives_what_others_publish() {
    let server = RedisServer::start();
    let url = server.url() + "?protocol=3";
    greenhub::run(move || {
        let client = Client::open(&url).unwrap();
        let mut sub = client.pubsub().unwrap();
        sub.subscribe(&["news"]).unwrap();
        let confirmation = sub
            .get_message(Some(Duration::from_secs(10)))
            .unwrap()
            .unwrap();
        assert_eq!(confirmation.kind, "subscribe");
        let receivers: i64 = client
            .cmd("PUBLISH")
            .arg("news")
            .arg("story")
            .query()
            .unwrap();
        assert_eq!(receivers, 1);
        let message = sub.next_message().unwrap();
        assert_eq!(
            (message.kind.as_str(), message.text()),
            ("message", "story".to_owned())
        );
    });
}

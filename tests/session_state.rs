//! Session state left by a command, pipelined or not, never reaches the next
//! user of a pooled connection: the pool closes a connection whose session is
//! not the one its URL set up (`redis-client/src/session.rs`), and a
//! connection back at that baseline (the URL's `?db=N` included) is reused.

use greenhub_redis::prelude::*;
use greenhub_redis::{cmd, pipe, Client, PoolStats, Value};
use greenhub_tests::with_client;

fn stats(r: &Client) -> (usize, usize) {
    let PoolStats {
        created, available, ..
    } = r.stats();
    (created, available)
}

#[test]
fn a_select_inside_a_pipeline_does_not_leak_into_the_next_get() {
    with_client("", |mut r| {
        r.set("k", "db0").unwrap();
        pipe()
            .cmd("SELECT")
            .arg(5)
            .cmd("SET")
            .arg("k")
            .arg("db5")
            .query::<()>(&mut r)
            .unwrap();
        assert_eq!(stats(&r), (1, 0), "the connection on db 5 was closed");
        assert_eq!(r.get::<String>("k").unwrap(), "db0");
        let in_db5: String = pipe()
            .cmd("SELECT")
            .arg(5)
            .cmd("GET")
            .arg("k")
            .query::<((), String)>(&mut r)
            .unwrap()
            .1;
        assert_eq!(in_db5, "db5", "the SET did run in db 5");
    });
}

#[test]
fn a_pipelined_subscribe_does_not_hand_messages_to_the_next_commands() {
    with_client("", |mut r| {
        r.set("k", "value").unwrap();
        let confirmation: Value = pipe()
            .cmd("SUBSCRIBE")
            .arg("news")
            .query::<(Value,)>(&mut r)
            .unwrap()
            .0;
        assert_eq!(
            confirmation,
            Value::Array(vec![
                Value::Bulk(b"subscribe".to_vec()),
                Value::Bulk(b"news".to_vec()),
                Value::Int(1)
            ])
        );
        assert_eq!(stats(&r), (1, 0), "the subscribed connection was closed");
        // Were it pooled, these would read the message instead of their replies.
        let receivers: i64 = r.cmd("PUBLISH").arg("news").arg("hello").query().unwrap();
        assert_eq!(receivers, 0, "nobody is subscribed any more");
        assert_eq!(r.get::<String>("k").unwrap(), "value");
        assert_eq!(r.incr("n").unwrap(), 1);
    });
}

#[test]
fn a_subscribe_to_two_channels_gets_both_confirmations_as_its_reply() {
    with_client("", |mut r| {
        let (both, pong): (Vec<Value>, Vec<Value>) = pipe()
            .cmd("SUBSCRIBE")
            .arg("a")
            .arg("b")
            .cmd("PING")
            .query(&mut r)
            .unwrap();
        assert_eq!(both.len(), 2);
        assert_eq!(
            both[1],
            Value::Array(vec![
                Value::Bulk(b"subscribe".to_vec()),
                Value::Bulk(b"b".to_vec()),
                Value::Int(2)
            ])
        );
        assert_eq!(pong, [Value::Bulk(b"pong".to_vec()), Value::Bulk(vec![])]);
        // Unsubscribing from all expects one confirmation per channel held.
        let mut con = r.get_connection().unwrap();
        let two: Vec<Value> = cmd("SUBSCRIBE").arg("x").arg("y").query(&mut *con).unwrap();
        assert_eq!(two.len(), 2);
        let all: Vec<Vec<Value>> = cmd("UNSUBSCRIBE").query(&mut *con).unwrap();
        assert_eq!(all.len(), 2);
        assert!(all
            .iter()
            .all(|c| c[0] == Value::Bulk(b"unsubscribe".to_vec())));
        assert_eq!(
            con.ping().unwrap(),
            "PONG",
            "in step after the confirmations"
        );
        drop(con);
        assert_eq!(
            stats(&r).1,
            0,
            "a connection that subscribed is never pooled"
        );
    });
}

#[test]
fn a_pipeline_left_inside_multi_is_not_reused() {
    with_client("", |mut r| {
        pipe()
            .cmd("MULTI")
            .cmd("SET")
            .arg("k")
            .arg("v")
            .query_values(&mut r)
            .unwrap();
        assert_eq!(stats(&r), (1, 0));
        assert_eq!(
            r.get::<Option<String>>("k").unwrap(),
            None,
            "never executed"
        );
        assert_eq!(r.ping().unwrap(), "PONG", "not QUEUED");
    });
}

#[test]
fn a_multi_and_exec_in_one_plain_pipeline_leave_the_connection_reusable() {
    with_client("", |mut r| {
        let replies = pipe()
            .cmd("MULTI")
            .cmd("INCR")
            .arg("n")
            .cmd("EXEC")
            .query_values(&mut r)
            .unwrap();
        assert_eq!(replies[2], Value::Array(vec![Value::Int(1)]));
        assert_eq!(stats(&r), (1, 1));
    });
}

#[test]
fn a_pipelined_watch_is_not_inherited() {
    with_client("", |mut r| {
        pipe().cmd("WATCH").arg("w").query::<()>(&mut r).unwrap();
        assert_eq!(stats(&r), (1, 0));
        // A transaction on a fresh connection is not aborted by that WATCH.
        r.set("w", "changed").unwrap();
        let (set,): (String,) = pipe()
            .atomic()
            .cmd("SET")
            .arg("w")
            .arg("mine")
            .query(&mut r)
            .unwrap();
        assert_eq!(set, "OK");
    });
}

#[test]
fn client_tracking_readonly_and_hello_set_in_a_pipeline_are_not_inherited() {
    with_client("", |mut r| {
        let id: i64 = r.cmd("CLIENT").arg("ID").query().unwrap();
        for session_changer in [
            ["CLIENT", "TRACKING", "ON", "REDIRECT", &id.to_string()].as_slice(),
            &["READONLY"],
            &["HELLO", "3"],
        ] {
            let before = stats(&r);
            let mut p = pipe();
            p.add(cmd(session_changer[0]).args(&session_changer[1..]).clone());
            p.query_values(&mut r).unwrap();
            assert_eq!(
                stats(&r),
                (before.0, before.1 - 1),
                "{session_changer:?}: the connection was closed"
            );
            // The next command runs on a fresh RESP2 connection.
            assert_eq!(r.get::<Option<String>>("missing").unwrap(), None);
            assert_eq!(
                r.cmd("TYPE").arg("missing").query::<String>().unwrap(),
                "none"
            );
        }
    });
}

#[test]
fn a_single_select_on_a_checked_out_connection_is_not_inherited() {
    with_client("", |mut r| {
        {
            let mut con = r.get_connection().unwrap();
            con.req_command(cmd("SELECT").arg(3)).unwrap();
        }
        assert_eq!(stats(&r), (1, 0));
        {
            let mut con = r.get_connection().unwrap();
            con.req_command(cmd("SELECT").arg(3)).unwrap();
            con.req_command(cmd("SELECT").arg(0)).unwrap();
        }
        assert_eq!(stats(&r), (2, 1), "back on the baseline: pooled");
        r.set("x", 1).unwrap();
        assert_eq!(stats(&r), (2, 1));
    });
}

#[test]
fn twenty_sequential_gets_on_a_db_2_client_create_one_connection() {
    for options in ["/2", "?db=2"] {
        with_client(options, |mut r| {
            r.set("k", "in db 2").unwrap();
            for _ in 0..20 {
                assert_eq!(r.get::<String>("k").unwrap(), "in db 2");
            }
            assert_eq!(stats(&r), (1, 1), "the URL's db is the baseline, not dirt");
            // SELECT 0 and back to 2 in a pipeline ends on the baseline too.
            pipe()
                .cmd("SELECT")
                .arg(0)
                .cmd("SELECT")
                .arg(2)
                .query::<()>(&mut r)
                .unwrap();
            assert_eq!(stats(&r), (1, 1));
        });
    }
}

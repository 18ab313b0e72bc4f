//! Pipelines, transactions and WATCH through a `ClusterClient` on a real
//! cluster: split per node, sent at once, replies in the caller's order,
//! each command redirected on its own; MULTI/EXEC and WATCH bound to one
//! slot.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use greenhub_redis::cluster::{key_slot, ClusterClient};
use greenhub_redis::prelude::*;
use greenhub_redis::{cmd, pipe, Value};
use greenhub_tests::{wait_until, RedisCluster};

fn on_cluster(body: impl FnOnce(ClusterClient) + 'static) {
    let cluster = RedisCluster::start();
    let urls = cluster.urls();
    greenhub::run(move || body(ClusterClient::open(&urls).unwrap()));
}

/// The port in an `INFO server` reply: which node answered.
fn port_in_info(info: &Value) -> u16 {
    let Value::Bulk(text) = info else {
        panic!("INFO is a bulk string: {info:?}");
    };
    let text = String::from_utf8_lossy(text);
    text.lines()
        .find_map(|l| l.strip_prefix("tcp_port:"))
        .and_then(|p| p.trim().parse().ok())
        .expect("INFO server names its port")
}

#[test]
fn a_pipeline_spanning_every_master_comes_back_in_the_callers_order() {
    on_cluster(|mut r| {
        let keys: Vec<String> = (0..100).map(|i| format!("p:{i}")).collect();
        let mut pipeline = pipe();
        for (i, key) in keys.iter().enumerate() {
            pipeline
                .cmd("SET")
                .arg(key)
                .arg(i)
                .cmd("INCR")
                .arg(key)
                .cmd("GET")
                .arg(key);
        }
        let replies = pipeline.query_values(&mut r).unwrap();
        assert_eq!(replies.len(), 300);
        for (i, chunk) in replies.chunks(3).enumerate() {
            assert_eq!(chunk[0], Value::Status("OK".into()));
            assert_eq!(chunk[1], Value::Int(i as i64 + 1));
            assert_eq!(chunk[2], Value::Bulk((i + 1).to_string().into_bytes()));
        }
        let masters: std::collections::HashSet<u16> = keys
            .iter()
            .map(|k| r.master_of_slot(key_slot(k.as_bytes())).unwrap().port)
            .collect();
        assert_eq!(masters.len(), 3, "the keys span every master");
        for node in r.stats().nodes.iter().filter(|n| n.master) {
            assert_eq!(
                node.pool.created, 1,
                "one connection per node for the whole pipeline"
            );
        }
        let (a, b): (i64, String) = pipe()
            .cmd("INCR")
            .arg("p:0")
            .cmd("GET")
            .arg("p:99")
            .query(&mut r)
            .unwrap();
        assert_eq!((a, b.as_str()), (2, "100"));
    });
}

#[test]
fn error_replies_stay_in_their_place_and_query_returns_the_first() {
    on_cluster(|mut r| {
        r.set("text", "not a number").unwrap();
        let mut pipeline = pipe();
        pipeline
            .cmd("INCR")
            .arg("n1")
            .cmd("INCR")
            .arg("text")
            .cmd("INCR")
            .arg("n2");
        let replies = pipeline.query_values(&mut r).unwrap();
        assert_eq!(replies[0], Value::Int(1));
        assert!(matches!(&replies[1], Value::Error(e) if e.message.contains("not an integer")));
        assert_eq!(replies[2], Value::Int(1));
        let err = pipeline.query::<(i64, i64, i64)>(&mut r).unwrap_err();
        assert!(err.to_string().contains("not an integer"), "{err}");
    });
}

#[test]
fn split_commands_inside_a_pipeline_come_back_as_one_reply_each() {
    on_cluster(|mut r| {
        let replies = pipe()
            .cmd("MSET")
            .arg("a")
            .arg(1)
            .arg("b")
            .arg(2)
            .arg("c")
            .arg(3)
            .cmd("MGET")
            .arg("c")
            .arg("nothing")
            .arg("a")
            .cmd("DEL")
            .arg("a")
            .arg("b")
            .arg("nothing")
            .query_values(&mut r)
            .unwrap();
        assert_eq!(replies.len(), 3);
        assert_eq!(replies[0], Value::Status("OK".into()));
        assert_eq!(
            replies[1],
            Value::Array(vec![
                Value::Bulk(b"3".to_vec()),
                Value::Nil,
                Value::Bulk(b"1".to_vec())
            ])
        );
        assert_eq!(replies[2], Value::Int(2));
    });
}

#[test]
fn a_keyless_command_in_a_pipeline_runs_on_the_node_of_the_command_before_it() {
    on_cluster(|mut r| {
        let keys: Vec<String> = (0..12).map(|i| format!("w:{i}")).collect();
        let mut pipeline = pipe();
        for key in &keys {
            // INFO has no key: it joins the SET before it, as WAIT must.
            pipeline
                .cmd("SET")
                .arg(key)
                .arg(1)
                .cmd("INFO")
                .arg("server");
        }
        let replies = pipeline.query_values(&mut r).unwrap();
        for (key, pair) in keys.iter().zip(replies.chunks(2)) {
            let master = r.master_of_slot(key_slot(key.as_bytes())).unwrap();
            assert_eq!(port_in_info(&pair[1]), master.port, "INFO after SET {key}");
        }
        // What WAIT is for: the write before it, on the same connection,
        // has reached the replica.
        let (_, replicas): (i64, i64) = pipe()
            .cmd("INCR")
            .arg("durable")
            .cmd("WAIT")
            .arg(1)
            .arg(5000)
            .query(&mut r)
            .unwrap();
        assert_eq!(replicas, 1);
    });
}

#[test]
fn each_command_of_a_pipeline_follows_its_own_moved_after_a_reshard() {
    let cluster = Arc::new(RedisCluster::start());
    let masters = cluster.master_ports();
    let urls = cluster.urls();
    greenhub::run(move || {
        let mut r = ClusterClient::open(&urls).unwrap();
        let keys: Vec<String> = (0..300).map(|i| format!("r:{i}")).collect();
        for key in &keys {
            r.set(key, key).unwrap();
        }
        let moving = keys.iter().filter(|k| key_slot(k.as_bytes()) < 500).count();
        assert!(moving > 0, "some keys are in the slots that move");
        let resharding = cluster.clone();
        let (from, to) = (masters[0], masters[2]);
        greenhub::unblock(move || {
            resharding.reshard(from, to, 500).wait();
            resharding.wait_until_ready();
        })
        .unwrap();
        // The client's map is stale for 500 slots; each command finds its
        // way, and a transaction is resent whole after its MOVED.
        let mut in_moved_slots = keys.iter().filter(|k| key_slot(k.as_bytes()) < 500);
        let watched = in_moved_slots.next().unwrap();
        let ((), value): ((), String) = r
            .transaction(&[watched], |con, pipe| {
                let value: String = con.get(watched)?;
                pipe.cmd("SET")
                    .arg(watched)
                    .arg(format!("{value}!"))
                    .cmd("GET")
                    .arg(watched);
                Ok(())
            })
            .unwrap();
        assert_eq!(value, format!("{watched}!"));
        let moved = in_moved_slots
            .find(|k| key_slot(k.as_bytes()) != key_slot(watched.as_bytes()))
            .unwrap();
        let counter = format!("{{{moved}}}:n");
        let (n, value): (i64, String) = pipe()
            .atomic()
            .cmd("INCR")
            .arg(&counter)
            .cmd("GET")
            .arg(moved)
            .query(&mut r)
            .unwrap();
        assert_eq!((n, value.as_str()), (1, moved.as_str()));
        let mut pipeline = pipe();
        for key in &keys {
            pipeline.cmd("GET").arg(key);
        }
        let values: Vec<String> = pipeline.query(&mut r).unwrap();
        let expected: Vec<String> = keys
            .iter()
            .map(|k| {
                if k == watched {
                    format!("{k}!")
                } else {
                    k.clone()
                }
            })
            .collect();
        assert_eq!(values, expected);
    });
}

#[test]
fn an_atomic_pipeline_runs_on_its_slots_master_and_one_across_slots_is_refused_unsent() {
    on_cluster(|mut r| {
        let (a, b): (i64, i64) = pipe()
            .atomic()
            .cmd("INCR")
            .arg("{acct}:a")
            .cmd("INCRBY")
            .arg("{acct}:b")
            .arg(10)
            .query(&mut r)
            .unwrap();
        assert_eq!((a, b), (1, 10));
        let err = pipe()
            .atomic()
            .cmd("INCR")
            .arg("a")
            .cmd("INCR")
            .arg("b")
            .query::<(i64, i64)>(&mut r)
            .unwrap_err();
        assert_eq!(err.code(), Some("CROSSSLOT"), "{err}");
        assert_eq!(r.exists(&["a", "b"]).unwrap(), 0, "nothing was sent");
        // A keyless transaction runs on any master.
        let (pong,): (String,) = pipe().atomic().cmd("PING").query(&mut r).unwrap();
        assert_eq!(pong, "PONG");
    });
}

#[test]
fn a_watch_transaction_runs_on_its_slots_master_and_retries_when_a_watched_key_changes() {
    on_cluster(|r| {
        let mut other = r.clone();
        other.set("{acct:1}:balance", 100).unwrap();
        let attempts = Rc::new(Cell::new(0));
        let seen = attempts.clone();
        let ((), balance): ((), i64) = r
            .transaction(&["{acct:1}:balance"], move |con, pipe| {
                seen.set(seen.get() + 1);
                let balance: i64 = con.get("{acct:1}:balance")?;
                if seen.get() == 1 {
                    // Someone else writes the watched key: EXEC aborts.
                    other.incr("{acct:1}:balance")?;
                }
                pipe.cmd("SET")
                    .arg("{acct:1}:balance")
                    .arg(balance + 10)
                    .cmd("GET")
                    .arg("{acct:1}:balance");
                Ok(())
            })
            .unwrap();
        assert_eq!(attempts.get(), 2, "the first EXEC was aborted");
        assert_eq!(balance, 111);
        let err = r
            .transaction::<_, ()>(&["a", "b"], |_, _| Ok(()))
            .unwrap_err();
        assert_eq!(err.code(), Some("CROSSSLOT"), "{err}");
        let mut r = r;
        let value: i64 = cmd("GET").arg("{acct:1}:balance").query(&mut r).unwrap();
        assert_eq!(value, 111);
    });
}

#[test]
fn a_caller_killed_mid_pipeline_takes_its_node_coroutines_with_it_and_no_half_read_connection_is_pooled(
) {
    let cluster = Arc::new(RedisCluster::start());
    let urls = cluster.urls();
    greenhub::run(move || {
        let mut r = ClusterClient::open(&urls).unwrap();
        r.ping().unwrap();
        // One list per master, each a BLPOP that waits forever.
        let mut lists: Vec<(String, u16)> = Vec::new();
        for key in (0..).map(|i| format!("forever:{i}")) {
            let master = r.master_of_slot(key_slot(key.as_bytes())).unwrap().port;
            if lists.iter().all(|(_, m)| *m != master) {
                lists.push((key, master));
            }
            if lists.len() == 3 {
                break;
            }
        }
        let caller = {
            let mut r = r.clone();
            let lists = lists.clone();
            greenhub::spawn(move || {
                let mut pipeline = pipe();
                for (list, _) in &lists {
                    pipeline.cmd("BLPOP").arg(list).arg(0);
                }
                pipeline.query_values(&mut r)
            })
        };
        let blocked = |port: u16| {
            let info = cluster.cli(port, &["INFO", "clients"]);
            info.lines()
                .find_map(|l| l.strip_prefix("blocked_clients:"))
                .and_then(|n| n.trim().parse::<usize>().ok())
                .unwrap_or(0)
        };
        wait_until("a BLPOP is blocked on every master", || {
            lists.iter().all(|(_, port)| blocked(*port) == 1)
        });
        let before = r.stats().total;
        assert_eq!(before.in_use, 3, "a connection per master");
        caller.kill();
        assert!(caller.join().is_err(), "killed");
        wait_until("every node coroutine has let its connection go", || {
            r.stats().total.in_use == 0
        });
        // Each node's batch was one BLPOP: the reaper ended its block
        // (CLIENT UNBLOCK), read the nil, and pooled the connection back in
        // step; a half-read connection is never pooled.
        assert_eq!(
            r.stats().total.available,
            before.available + 3,
            "the three reaped connections went back to their pools"
        );
        // No blocked request is left: a push now is not taken by a ghost BLPOP.
        wait_until("the servers hold no blocked client", || {
            lists.iter().all(|(_, port)| blocked(*port) == 0)
        });
        r.rpush(&lists[0].0, &["kept"]).unwrap();
        assert_eq!(r.lrange::<String>(&lists[0].0, 0, -1).unwrap(), ["kept"]);
    });
}

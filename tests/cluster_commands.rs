//! Every command family through a `ClusterClient`, against a real
//! six-node cluster started by the `RedisCluster` guard: the same calls as
//! `commands.rs` makes on one server, plus what only a cluster has (keys
//! in several slots, fan-out to every master, CROSSSLOT refused before it
//! is sent). Pipelines and transactions are in `cluster_pipelines.rs`,
//! faults in `cluster_faults.rs`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use greenhub_redis::cluster::{key_slot, ClusterClient};
use greenhub_redis::commands::{Direction, Expiry, SetOptions};
use greenhub_redis::prelude::*;
use greenhub_redis::{cmd, Error, Script, Value};
use greenhub_tests::{wait_until, RedisCluster};

fn on_cluster(body: impl FnOnce(ClusterClient) + 'static) {
    let cluster = RedisCluster::start();
    let urls = cluster.urls();
    greenhub::run(move || body(ClusterClient::open(&urls).unwrap()));
}

/// Keys `prefix0`, `prefix1`, ... until they cover slots of every master:
/// 30 keys land on all three (each master holds a third of the slots).
fn spread_keys(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

fn assert_cross_slot(result: Result<impl std::fmt::Debug, Error>) {
    match result {
        Err(err) => assert_eq!(err.code(), Some("CROSSSLOT"), "{err}"),
        Ok(value) => panic!("expected CROSSSLOT, got {value:?}"),
    }
}

#[test]
fn string_commands_run_on_the_master_of_each_key() {
    on_cluster(|mut r| {
        r.set("s", "hello").unwrap();
        assert_eq!(r.get::<String>("s").unwrap(), "hello");
        assert_eq!(r.get::<Option<String>>("missing").unwrap(), None);
        assert_eq!(r.append("s", " world").unwrap(), 11);
        assert_eq!(r.strlen("s").unwrap(), 11);
        let nx = SetOptions {
            only_if_absent: true,
            ..Default::default()
        };
        assert!(!r.set_with("s", "x", nx).unwrap());
        let ex = SetOptions {
            expiry: Some(Expiry::Seconds(100)),
            ..Default::default()
        };
        assert!(r.set_with("t", "x", ex).unwrap());
        assert!(r.ttl("t").unwrap() > 90);
        assert_eq!(r.incr("n").unwrap(), 1);
        assert_eq!(r.incr_by("n", 10).unwrap(), 11);
        assert_eq!(r.decr("n").unwrap(), 10);
        assert_eq!(r.decr_by("n", 5).unwrap(), 5);
        assert_eq!(r.getdel::<i64>("n").unwrap(), 5);
        assert_eq!(r.get::<Option<i64>>("n").unwrap(), None);
        // Keys with the same tag share a slot; without, they spread.
        assert_eq!(key_slot(b"{user:1}:a"), key_slot(b"{user:1}:b"));
        r.mset(&[("{user:1}:a", "1"), ("{user:1}:b", "2")]).unwrap();
        assert_eq!(
            r.mget::<_, i64>(&["{user:1}:a", "{user:1}:b", "{user:1}:c"])
                .unwrap(),
            [Some(1), Some(2), None]
        );
        let slots: HashSet<u16> = ["s", "t", "n", "missing"]
            .iter()
            .map(|k| key_slot(k.as_bytes()))
            .collect();
        assert!(slots.len() > 1, "the keys above live in several slots");
    });
}

#[test]
fn key_commands_work_and_rename_across_slots_is_refused_before_sending() {
    on_cluster(|mut r| {
        r.set("{k}1", "v").unwrap();
        assert_eq!(r.key_type("{k}1").unwrap(), "string");
        assert!(r.expire("{k}1", Duration::from_secs(100)).unwrap());
        assert!(r.ttl("{k}1").unwrap() > 90);
        r.rename("{k}1", "{k}2").unwrap();
        assert_eq!(r.exists(&["{k}1", "{k}2"]).unwrap(), 1);
        r.set("a", "1").unwrap();
        assert_ne!(key_slot(b"a"), key_slot(b"b"));
        assert_cross_slot(r.rename("a", "b"));
        assert_eq!(r.get::<String>("a").unwrap(), "1", "nothing was sent");
        assert_eq!(r.del(&["{k}2"]).unwrap(), 1);
    });
}

#[test]
fn hash_list_set_and_sorted_set_commands_run_through_a_cluster_client() {
    on_cluster(|mut r| {
        assert_eq!(r.hset("h", &[("a", "1"), ("b", "2")]).unwrap(), 2);
        assert_eq!(r.hget::<Option<i64>>("h", "a").unwrap(), Some(1));
        let all: HashMap<String, i64> = r.hgetall("h").unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(r.hincr_by("h", "a", 5).unwrap(), 6);
        let scanned: Vec<(String, i64)> = r.hscan("h", "*").collect::<Result<_, _>>().unwrap();
        assert_eq!(scanned.len(), 2);
        assert_eq!(r.hdel("h", &["a", "b"]).unwrap(), 2);

        assert_eq!(r.rpush("l", &["a", "b", "c"]).unwrap(), 3);
        assert_eq!(r.lpush("l", &["z"]).unwrap(), 4);
        assert_eq!(
            r.lrange::<String>("l", 0, -1).unwrap(),
            ["z", "a", "b", "c"]
        );
        assert_eq!(r.llen("l").unwrap(), 4);
        assert_eq!(r.lpop::<String>("l").unwrap(), "z");
        assert_eq!(r.rpop::<String>("l").unwrap(), "c");
        assert_eq!(
            r.blpop(&["l"], 1.0).unwrap(),
            Some((b"l".to_vec(), b"a".to_vec()))
        );
        let moved: Option<String> = r
            .blmove("{q}src", "{q}dst", Direction::Left, Direction::Right, 0.1)
            .unwrap();
        assert_eq!(moved, None, "an empty list times out on the server");

        assert_eq!(r.sadd("set", &["a", "b", "a"]).unwrap(), 2);
        assert!(r.sismember("set", "a").unwrap());
        let members: HashSet<String> = r.smembers("set").unwrap();
        assert_eq!(members.len(), 2);
        assert_eq!(r.srem("set", &["a"]).unwrap(), 1);

        assert_eq!(r.zadd("z", &[(1.0, "a"), (2.0, "b")]).unwrap(), 2);
        assert_eq!(r.zrange::<String>("z", 0, -1).unwrap(), ["a", "b"]);
        assert_eq!(r.zscore("z", "b").unwrap(), Some(2.0));
        assert_eq!(r.zincr_by("z", "a", 5.0).unwrap(), 6.0);
        let with: Vec<(String, f64)> = r.zrange_withscores("z", 0, 0).unwrap();
        assert_eq!(with, [("b".to_string(), 2.0)]);
        assert_eq!(
            r.bzpopmin::<_, String>(&["z"], 1.0).unwrap(),
            Some(("z".to_string(), "b".to_string(), 2.0))
        );
    });
}

#[test]
fn a_blocking_pop_waits_on_the_master_of_its_key_until_another_coroutine_pushes() {
    on_cluster(|r| {
        let waiter = {
            let mut r = r.clone();
            // No timeout: the push below ends it.
            greenhub::spawn(move || r.brpop(&["jobs"], 0.0))
        };
        let mut pusher = r.clone();
        // The pop holds a connection of its own: wait until it does.
        wait_until("the BRPOP has a connection", || r.stats().total.in_use == 1);
        pusher.lpush("jobs", &["job-1"]).unwrap();
        assert_eq!(
            waiter.join().unwrap().unwrap(),
            Some((b"jobs".to_vec(), b"job-1".to_vec()))
        );
        let mut r = r;
        assert_cross_slot(r.brpop(&["a", "b"], 0.1));
    });
}

#[test]
fn server_commands_about_the_data_set_fan_out_to_every_master() {
    on_cluster(|mut r| {
        assert_eq!(r.ping().unwrap(), "PONG");
        assert_eq!(r.echo::<String>("hi").unwrap(), "hi");
        assert!(r.info("server").unwrap().contains("redis_version"));
        let keys = spread_keys("k", 30);
        for key in &keys {
            r.set(key, 1).unwrap();
        }
        let masters: HashSet<_> = keys
            .iter()
            .map(|k| r.master_of_slot(key_slot(k.as_bytes())).unwrap())
            .collect();
        assert_eq!(masters.len(), 3, "30 keys reach every master");
        assert_eq!(r.dbsize().unwrap(), 30, "DBSIZE sums every master's");
        let mut listed: Vec<String> = r.cmd("KEYS").arg("k*").query().unwrap();
        listed.sort();
        let mut expected = keys.clone();
        expected.sort();
        assert_eq!(listed, expected, "KEYS gathers every master's");
        r.flushdb().unwrap();
        assert_eq!(r.dbsize().unwrap(), 0, "FLUSHDB ran on every master");
    });
}

#[test]
fn mget_mset_del_exists_and_unlink_across_slots_are_split_and_come_back_in_order() {
    on_cluster(|mut r| {
        let keys = spread_keys("key:", 100);
        let pairs: Vec<(String, usize)> = keys.iter().cloned().zip(0..).collect();
        r.mset(&pairs).unwrap();
        let mut asked = keys.clone();
        asked.insert(50, "never-set".into());
        asked.reverse();
        let values: Vec<Option<usize>> = r.mget(&asked).unwrap();
        let expected: Vec<Option<usize>> = asked
            .iter()
            .map(|k| keys.iter().position(|x| x == k))
            .collect();
        assert_eq!(values, expected);
        assert_eq!(r.exists(&asked).unwrap(), 100);
        assert_eq!(r.del(&keys[..40]).unwrap(), 40);
        assert_eq!(
            r.cmd("UNLINK").args(&keys[40..]).query::<usize>().unwrap(),
            60
        );
        assert_eq!(r.exists(&keys).unwrap(), 0);
        assert_eq!(r.dbsize().unwrap(), 0);
    });
}

#[test]
fn other_multi_key_commands_across_slots_are_a_crossslot_error_before_anything_is_sent() {
    on_cluster(|mut r| {
        assert_ne!(key_slot(b"a"), key_slot(b"b"));
        assert_cross_slot(
            r.cmd("MSETNX")
                .arg("a")
                .arg(1)
                .arg("b")
                .arg(2)
                .query::<i64>(),
        );
        assert_eq!(r.exists(&["a", "b"]).unwrap(), 0, "MSETNX was not sent");
        assert_cross_slot(r.cmd("SUNION").arg("a").arg("b").query::<Vec<String>>());
        assert_cross_slot(
            Script::new("return 1")
                .prepare()
                .key("a")
                .key("b")
                .invoke::<i64>(&mut r),
        );
        let err = r
            .cmd("SUNION")
            .arg("a")
            .arg("b")
            .query::<Vec<String>>()
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("slot") && text.contains("hash tag"), "{text}");
        let err = r.cmd("MULTI").query::<()>().unwrap_err();
        assert!(err.to_string().contains("atomic pipeline"), "{err}");
        let err = r.cmd("SELECT").arg(1).query::<()>().unwrap_err();
        assert!(err.to_string().contains("only database 0"), "{err}");
    });
}

#[test]
fn scripts_run_on_the_master_of_their_keys_and_keyless_ones_on_any_master() {
    on_cluster(|mut r| {
        let add = Script::new("return redis.call('INCRBY', KEYS[1], ARGV[1])");
        // EVALSHA first (NOSCRIPT), then EVAL, on the key's master each time.
        for key in spread_keys("counter:", 10) {
            assert_eq!(
                add.prepare()
                    .key(&key)
                    .arg(5)
                    .invoke::<i64>(&mut r)
                    .unwrap(),
                5
            );
            assert_eq!(
                add.prepare()
                    .key(&key)
                    .arg(5)
                    .invoke::<i64>(&mut r)
                    .unwrap(),
                10
            );
        }
        let pair =
            Script::new("redis.call('SET', KEYS[1], ARGV[1]); return redis.call('GET', KEYS[2])");
        r.set("{p}b", "old").unwrap();
        let got: String = pair
            .prepare()
            .key("{p}a")
            .key("{p}b")
            .arg("x")
            .invoke(&mut r)
            .unwrap();
        assert_eq!(got, "old");
        let keyless = Script::new("return 42");
        for _ in 0..3 {
            assert_eq!(keyless.prepare().invoke::<i64>(&mut r).unwrap(), 42);
        }
        // SCRIPT LOAD fans out: every master knows the script after it.
        let sha: String = r.cmd("SCRIPT").arg("LOAD").arg("return 7").query().unwrap();
        let known: Vec<i64> = r.cmd("SCRIPT").arg("EXISTS").arg(&sha).query().unwrap();
        assert_eq!(known, [1]);
        let seven: i64 = cmd("EVALSHA")
            .arg(&sha)
            .arg(1)
            .arg("k")
            .query(&mut r)
            .unwrap();
        assert_eq!(seven, 7);
    });
}

#[test]
fn classic_pubsub_hears_a_publish_sent_through_any_master() {
    on_cluster(|r| {
        let mut subscriber = r.pubsub().unwrap();
        subscriber.subscribe(&["news"]).unwrap();
        let first = subscriber
            .get_message(Some(Duration::from_secs(5)))
            .unwrap()
            .unwrap();
        assert_eq!(first.kind, "subscribe");
        // PUBLISH has no key: each goes to the next master in turn, and the
        // cluster forwards it to every node.
        for i in 0..3 {
            r.cmd("PUBLISH").arg("news").arg(i).query::<i64>().unwrap();
        }
        for i in 0..3 {
            let message = subscriber.next_message().unwrap();
            assert_eq!(message.text(), i.to_string());
        }
    });
}

#[test]
fn stats_count_connections_per_node_and_in_total() {
    on_cluster(|r| {
        let workers: Vec<_> = (0..60)
            .map(|i| {
                let mut r = r.clone();
                greenhub::spawn(move || r.incr(format!("n:{i}")).unwrap())
            })
            .collect();
        for worker in workers {
            assert_eq!(worker.join().unwrap(), 1);
        }
        let stats = r.stats();
        assert_eq!(stats.nodes.iter().filter(|n| n.master).count(), 3);
        let created: usize = stats.nodes.iter().map(|n| n.pool.created).sum();
        assert_eq!(stats.total.created, created);
        assert_eq!(stats.total.in_use, 0);
        assert_eq!(stats.total.available, stats.total.created);
        assert!(stats.total.created >= 3, "a connection per master at least");
    });
}

#[test]
fn a_thousand_coroutines_starting_on_a_fresh_client_share_one_slot_map_load() {
    let cluster = RedisCluster::start();
    // The first seed accepts connections and never answers: the load asks
    // it first and waits a second for it, which is ample time for all
    // the callers to find the load in flight and wait on it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut urls = vec![format!("redis://{}", silent.local_addr().unwrap())];
    urls.extend(cluster.urls());
    greenhub::run(move || {
        let r = ClusterClient::open(&urls).unwrap();
        let callers: Vec<_> = (0..1000)
            .map(|i| {
                let mut r = r.clone();
                greenhub::spawn(move || r.get::<Option<String>>(format!("k{i}")))
            })
            .collect();
        for caller in callers {
            assert_eq!(caller.join().unwrap().unwrap(), None);
        }
        assert_eq!(r.stats().map_loads, 1, "one load; 999 callers waited on it");
    });
    drop(silent);
}

#[test]
fn a_client_whose_first_seed_is_down_loads_the_map_from_the_next() {
    let cluster = RedisCluster::start();
    let mut urls = vec!["redis://127.0.0.1:1".to_string()];
    urls.extend(cluster.urls());
    greenhub::run(move || {
        let mut r = ClusterClient::open(&urls).unwrap();
        r.set("x", 1).unwrap();
        assert_eq!(r.masters().len(), 3);
    });
}

#[test]
fn a_cluster_client_works_on_a_plain_thread_too() {
    let cluster = RedisCluster::start();
    let mut r = ClusterClient::open(&cluster.urls()).unwrap();
    let keys = spread_keys("t:", 20);
    for key in &keys {
        r.set(key, key).unwrap();
    }
    let values: Vec<Option<String>> = r.mget(&keys).unwrap();
    assert_eq!(values, keys.iter().cloned().map(Some).collect::<Vec<_>>());
}

#[test]
fn scan_match_walks_every_master_and_a_plain_scan_is_refused() {
    on_cluster(|mut r| {
        let keys: HashSet<String> = spread_keys("scan:", 200).into_iter().collect();
        for key in &keys {
            r.set(key, 1).unwrap();
        }
        r.set("other", 1).unwrap();
        let found: HashSet<String> = r
            .scan_match::<String>("scan:*")
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            found, keys,
            "every master's keys, and only the matching ones"
        );
        let err = cmd("SCAN").arg(0).query::<Value>(&mut r).unwrap_err();
        assert!(err.to_string().contains("scan_match"), "{err}");
    });
}

#[test]
fn with_read_from_replicas_reads_go_to_replicas_and_writes_to_masters() {
    let cluster = RedisCluster::start();
    let urls = cluster.urls();
    greenhub::run(move || {
        let mut r = ClusterClient::builder(&urls)
            .read_from_replicas(true)
            .build()
            .unwrap();
        let keys = spread_keys("replicated:", 30);
        for key in &keys {
            // WAIT 1 after the write, on its connection: the replica has it.
            let (_, replicas): ((), i64) = greenhub_redis::pipe()
                .cmd("SET")
                .arg(key)
                .arg(key)
                .cmd("WAIT")
                .arg(1)
                .arg(5000)
                .query(&mut r)
                .unwrap();
            assert_eq!(replicas, 1);
        }
        for key in &keys {
            assert_eq!(&r.get::<String>(key).unwrap(), key);
        }
        let values: Vec<Option<String>> = r.mget(&keys).unwrap();
        assert!(values
            .iter()
            .zip(&keys)
            .all(|(v, k)| v.as_deref() == Some(k.as_str())));
        let stats = r.stats();
        let replicas: Vec<_> = stats.nodes.iter().filter(|n| !n.master).collect();
        assert_eq!(replicas.len(), 3, "every replica served reads: {stats:?}");
        for replica in replicas {
            assert!(replica.pool.created >= 1);
            assert_eq!(
                replica.pool.available, replica.pool.created,
                "READWRITE put each replica connection back as it came: {replica:?}"
            );
        }
        // A write is never sent to a replica.
        assert_eq!(r.incr("counter").unwrap(), 1);
    });
}

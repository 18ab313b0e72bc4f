//! MOVED, ASK and TRYAGAIN from a real cluster whose slots the tests move
//! by hand (`CLUSTER SETSLOT`, `MIGRATE`) or with `redis-cli --cluster
//! reshard`: what the client does with each, and what the caller sees.

use std::sync::Arc;
use std::time::Duration;

use greenhub_redis::cluster::{key_slot, ClusterClient};
use greenhub_redis::prelude::*;
use greenhub_tests::{wait_until, RedisCluster};

/// A slot being moved by hand from one master to another.
struct Migration {
    slot: String,
    source: u16,
    target: u16,
    source_id: String,
    target_id: String,
}

impl Migration {
    /// Marks `key`'s slot as migrating from its master to another master.
    fn start(cluster: &RedisCluster, key: &str) -> Migration {
        let slot = key_slot(key.as_bytes());
        let source = cluster.master_of_slot(slot);
        let target = *cluster
            .master_ports()
            .iter()
            .find(|&&p| p != source)
            .unwrap();
        let id = |port: u16| {
            cluster
                .topology()
                .into_iter()
                .find(|n| n.port == port)
                .unwrap()
                .id
        };
        let migration = Migration {
            slot: slot.to_string(),
            source,
            target,
            source_id: id(source),
            target_id: id(target),
        };
        let s = migration.slot.as_str();
        let ok = |reply: String| assert_eq!(reply, "OK");
        ok(cluster.cli(
            target,
            &["CLUSTER", "SETSLOT", s, "IMPORTING", &migration.source_id],
        ));
        ok(cluster.cli(
            source,
            &["CLUSTER", "SETSLOT", s, "MIGRATING", &migration.target_id],
        ));
        migration
    }

    /// Moves one key to the target (`MIGRATE`).
    fn migrate_key(&self, cluster: &RedisCluster, key: &str) {
        let port = self.target.to_string();
        let reply = cluster.cli(
            self.source,
            &["MIGRATE", "127.0.0.1", &port, key, "0", "5000"],
        );
        assert_eq!(reply, "OK", "MIGRATE {key}");
    }

    /// Gives the slot to the target on every master, as `redis-cli
    /// --cluster reshard` ends each slot's move.
    fn finish(&self, cluster: &RedisCluster) {
        let s = self.slot.as_str();
        for port in [self.target, self.source] {
            let reply = cluster.cli(port, &["CLUSTER", "SETSLOT", s, "NODE", &self.target_id]);
            assert_eq!(reply, "OK");
        }
        for port in cluster.master_ports() {
            if port != self.source && port != self.target {
                cluster.cli(port, &["CLUSTER", "SETSLOT", s, "NODE", &self.target_id]);
            }
        }
        cluster.wait_until_ready();
    }
}

fn port_of(addr: Option<greenhub_redis::cluster::NodeAddr>) -> u16 {
    addr.expect("the client knows the slot's master").port
}

#[test]
fn a_moved_reply_updates_the_slot_and_the_command_is_resent_to_the_named_master() {
    let cluster = Arc::new(RedisCluster::start());
    let masters = cluster.master_ports();
    let urls = cluster.urls();
    greenhub::run(move || {
        let mut client = ClusterClient::open(&urls).unwrap();
        // Keys in the first 100 slots of the first master, which move.
        let keys: Vec<String> = (0..)
            .map(|i| format!("moving:{i}"))
            .filter(|k| key_slot(k.as_bytes()) < 100)
            .take(20)
            .collect();
        for key in &keys {
            client.set(key, key).unwrap();
        }
        let resharding = cluster.clone();
        let (from, to) = (masters[0], masters[1]);
        greenhub::unblock(move || {
            resharding.reshard(from, to, 100).wait();
            resharding.wait_until_ready();
        })
        .unwrap();
        let slot = key_slot(keys[0].as_bytes());
        assert_eq!(
            port_of(client.master_of_slot(slot)),
            masters[0],
            "the map is stale"
        );
        for key in &keys {
            assert_eq!(&client.get::<String>(key).unwrap(), key, "no error seen");
        }
        assert_eq!(
            port_of(client.master_of_slot(slot)),
            masters[1],
            "patched by MOVED"
        );
        // The background refresh the MOVED started brings the rest of the
        // map; wait for it (a condition, not a time).
        wait_until("the slot map is refreshed", || {
            port_of(client.master_of_slot(99)) == masters[1]
        });
        assert!(client.stats().map_loads >= 2);
    });
}

#[test]
fn an_ask_is_followed_with_asking_for_that_command_only_and_the_map_is_not_changed() {
    let cluster = RedisCluster::start();
    let urls = cluster.urls();
    let mut client = ClusterClient::open(&urls).unwrap();
    client.set("{mig}a", "A").unwrap();
    client.set("{mig}b", "B").unwrap();
    let migration = Migration::start(&cluster, "{mig}a");
    migration.migrate_key(&cluster, "{mig}a");
    let slot = key_slot(b"{mig}a");
    // `a` is on the target now: the source answers ASK.
    assert_eq!(client.get::<String>("{mig}a").unwrap(), "A");
    assert_eq!(
        port_of(client.master_of_slot(slot)),
        migration.source,
        "ASK changes no map"
    );
    // `b` is still on the source, which serves it.
    assert_eq!(client.get::<String>("{mig}b").unwrap(), "B");
    // A new key in a migrating slot is created on the target, after ASK.
    client.set("{mig}c", "C").unwrap();
    let on_target = cluster.cli(migration.target, &["EXISTS", "{mig}c"]);
    assert!(
        on_target.starts_with("MOVED"),
        "not served without ASKING: {on_target}"
    );
    assert_eq!(
        cluster.cli(migration.target, &["DBSIZE"]),
        "2",
        "a and c are on the target"
    );
    migration.migrate_key(&cluster, "{mig}b");
    migration.finish(&cluster);
    let values: Vec<Option<String>> = client.mget(&["{mig}a", "{mig}b", "{mig}c"]).unwrap();
    assert_eq!(
        values,
        [Some("A".into()), Some("B".into()), Some("C".into())]
    );
    assert_eq!(
        port_of(client.master_of_slot(slot)),
        migration.target,
        "MOVED did"
    );
}

#[test]
fn a_multi_key_command_during_a_migration_gets_tryagain_only_once_its_retry_time_is_spent() {
    let cluster = RedisCluster::start();
    let impatient = ClusterClient::builder(&cluster.urls())
        .retry_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let mut client = impatient.clone();
    client.set("{t}a", "A").unwrap();
    client.set("{t}b", "B").unwrap();
    let migration = Migration::start(&cluster, "{t}a");
    migration.migrate_key(&cluster, "{t}a");
    // The keys are split between the nodes: TRYAGAIN, again and again.
    let err = client.mget::<_, String>(&["{t}a", "{t}b"]).unwrap_err();
    assert_eq!(err.code(), Some("TRYAGAIN"), "{err}");
    migration.migrate_key(&cluster, "{t}b");
    migration.finish(&cluster);
    let values: Vec<Option<String>> = client.mget(&["{t}a", "{t}b"]).unwrap();
    assert_eq!(values, [Some("A".into()), Some("B".into())]);
}

#[test]
fn a_multi_key_command_waits_out_a_migration_that_ends_within_its_retry_time() {
    let cluster = Arc::new(RedisCluster::start());
    let patient = ClusterClient::builder(&cluster.urls())
        .retry_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut client = patient;
    client.set("{w}a", "A").unwrap();
    client.set("{w}b", "B").unwrap();
    let migration = Migration::start(&cluster, "{w}a");
    migration.migrate_key(&cluster, "{w}a");
    let finisher = {
        let cluster = cluster.clone();
        std::thread::spawn(move || {
            // Ends the migration once the MGET below has been told TRYAGAIN.
            wait_until("the source has answered TRYAGAIN", || {
                cluster
                    .cli(migration.source, &["INFO", "errorstats"])
                    .contains("errorstat_TRYAGAIN")
            });
            migration.migrate_key(&cluster, "{w}b");
            migration.finish(&cluster);
        })
    };
    let values: Vec<Option<String>> = client.mget(&["{w}a", "{w}b"]).unwrap();
    assert_eq!(values, [Some("A".into()), Some("B".into())]);
    finisher.join().unwrap();
}

#[test]
fn a_blocked_brpop_whose_slot_moves_is_resent_to_the_new_master_and_gets_the_push() {
    let cluster = Arc::new(RedisCluster::start());
    let urls = cluster.urls();
    let mover = cluster.clone();
    greenhub::run(move || {
        let client = ClusterClient::open(&urls).unwrap();
        let waiter = {
            let mut client = client.clone();
            // Far longer than the test's steps; what is left of it is what
            // the client resends after the MOVED.
            greenhub::spawn(move || client.brpop(&["{blocked}list"], 60.0))
        };
        let migration = Migration::start(&mover, "{blocked}list");
        // Wait (polling the server) until the BRPOP is blocked there.
        wait_until("the BRPOP is blocked on its master", || {
            mover
                .cli(migration.source, &["CLIENT", "LIST"])
                .contains("cmd=brpop")
        });
        // The list is empty, so the slot moves with nothing to migrate. The
        // source tells the blocked client MOVED on its next cron tick.
        let finish = {
            let mover = mover.clone();
            greenhub::unblock(move || migration.finish(&mover))
        };
        finish.unwrap();
        let mut pusher = client.clone();
        pusher.lpush("{blocked}list", &["item"]).unwrap();
        assert_eq!(
            waiter.join().unwrap().unwrap(),
            Some((b"{blocked}list".to_vec(), b"item".to_vec()))
        );
    });
}

/// The port the server on the other end of `conn` listens on.
fn served_by(conn: &mut impl ConnectionLike) -> u16 {
    let reply: Vec<String> = greenhub_redis::cmd("CONFIG")
        .arg("GET")
        .arg("port")
        .query(conn)
        .unwrap();
    reply[1].parse().unwrap()
}

#[test]
fn a_checked_out_connection_talks_to_the_keys_master_and_gives_its_moved_to_the_caller() {
    let cluster = RedisCluster::start();
    let client = ClusterClient::open(&cluster.urls()).unwrap();
    let key = "{out}a";
    let slot = key_slot(key.as_bytes());
    let master = cluster.master_of_slot(slot);
    // Before any command: the check-out loads the map itself.
    let mut conn = client.get_connection_for_key(key).unwrap();
    assert_eq!(served_by(&mut conn), master, "the key's master");
    let () = conn.set(key, "A").unwrap();
    let node = |client: &ClusterClient, port: u16| {
        client
            .stats()
            .nodes
            .into_iter()
            .find(|n| n.addr.port == port)
            .unwrap()
            .pool
    };
    assert_eq!(node(&client, master).in_use, 1, "held, and counted");
    drop(conn);
    assert_eq!(node(&client, master).in_use, 0, "back in its pool");
    assert_eq!(node(&client, master).available, 1);

    // The slot moves; the client's map does not know yet.
    let migration = Migration::start(&cluster, key);
    migration.migrate_key(&cluster, key);
    migration.finish(&cluster);
    assert_eq!(port_of(client.master_of_slot(slot)), master, "stale map");
    let mut conn = client.get_connection_for_key(key).unwrap();
    assert_eq!(served_by(&mut conn), master, "the map's master, still");
    let err = conn.get::<String>(key).unwrap_err();
    assert_eq!(err.code(), Some("MOVED"), "the node's reply, as is: {err}");
    // The connection read that reply whole: it still works.
    assert_eq!(served_by(&mut conn), master);
    drop(conn);
    client.refresh_slots().unwrap();
    let mut conn = client.get_connection_for_key(key).unwrap();
    assert_eq!(served_by(&mut conn), migration.target, "after the refresh");
    assert_eq!(conn.get::<String>(key).unwrap(), "A");
}

//! Sharded pub/sub through a `ClusterClient`: SPUBLISH reaches the
//! subscriber on its slot's master, and the subscriber follows the slot
//! when a resharding moves it or a failover promotes the replica.

use std::sync::{Arc, Mutex};

use greenhub_redis::cluster::{key_slot, ClusterClient};
use greenhub_tests::{wait_until, RedisCluster};

/// SPUBLISHes `payload` until one subscriber hears it (SPUBLISH answers
/// how many did): the subscriber may be between two nodes for a moment.
fn publish_until_heard(client: &ClusterClient, channel: &str, payload: &str) {
    wait_until("a subscriber on the slot's master hears SPUBLISH", || {
        client
            .cmd("SPUBLISH")
            .arg(channel)
            .arg(payload)
            .query::<i64>()
            .is_ok_and(|heard| heard == 1)
    });
}

#[test]
fn a_sharded_subscriber_hears_spublish_on_its_slots_master() {
    let cluster = RedisCluster::start();
    let urls = cluster.urls();
    greenhub::run(move || {
        let client = ClusterClient::open(&urls).unwrap();
        let mut subscriber = client.sharded_pubsub(&["{news}:a", "{news}:b"]).unwrap();
        assert_eq!(
            subscriber.node(),
            client.master_of_slot(key_slot(b"{news}:a")).as_ref()
        );
        publish_until_heard(&client, "{news}:b", "hello");
        let message = subscriber.next_message().unwrap();
        assert_eq!(
            (message.kind.as_str(), message.text()),
            ("smessage", "hello".into())
        );
        assert_eq!(message.channel, b"{news}:b");
        let err = client.sharded_pubsub(&["a", "b"]).unwrap_err();
        assert_eq!(err.code(), Some("CROSSSLOT"), "{err}");
    });
}

#[test]
fn a_sharded_subscriber_follows_its_slot_through_a_reshard_and_a_failover() {
    let cluster = Arc::new(Mutex::new(RedisCluster::start()));
    let urls = cluster.lock().unwrap().urls();
    greenhub::run(move || {
        let client = ClusterClient::open(&urls).unwrap();
        // A channel in the lowest slots of the first master, which move.
        let channel = (0..)
            .map(|i| format!("feed:{i}"))
            .find(|c| key_slot(c.as_bytes()) < 10)
            .unwrap();
        let mut subscriber = client.sharded_pubsub(&[&channel]).unwrap();
        let listener = {
            let channel = channel.clone();
            greenhub::spawn(move || {
                let mut heard = Vec::new();
                while heard.last().map(String::as_str) != Some("after failover") {
                    let message = subscriber.next_message().unwrap();
                    assert_eq!(message.channel, channel.as_bytes());
                    heard.push(message.text());
                }
                heard
            })
        };
        publish_until_heard(&client, &channel, "before");
        let handle = cluster.clone();
        let (from, to) = greenhub::unblock(move || {
            let cluster = handle.lock().unwrap();
            let masters = cluster.master_ports();
            cluster.reshard(masters[0], masters[1], 10).wait();
            cluster.wait_until_ready();
            (masters[0], masters[1])
        })
        .unwrap();
        publish_until_heard(&client, &channel, "after reshard");
        let handle = cluster.clone();
        greenhub::unblock(move || {
            let mut cluster = handle.lock().unwrap();
            let replica = cluster.replica_of(to);
            cluster.kill_node(to);
            cluster.wait_for_promotion(replica);
        })
        .unwrap();
        publish_until_heard(&client, &channel, "after failover");
        let heard = listener.join().unwrap();
        for expected in ["before", "after reshard", "after failover"] {
            assert!(
                heard.iter().any(|h| h == expected),
                "{expected} in {heard:?}"
            );
        }
        assert_ne!(from, to);
    });
}

//! Pub/sub between coroutines: a subscriber loops on messages while others
//! publish.

use std::time::Duration;

use greenhub_redis::Client;
use greenhub_tests::RedisServer;

#[test]
fn a_subscriber_coroutine_receives_what_others_publish() {
    let server = RedisServer::start();
    let url = server.url();
    let received = greenhub::run(move || {
        let client = Client::open(&url).unwrap();
        let mut sub = client.pubsub().unwrap();
        sub.subscribe(&["news"]).unwrap();
        sub.psubscribe(&["log.*"]).unwrap();
        // Wait for both confirmations so that nothing is published too early.
        for kind in ["subscribe", "psubscribe"] {
            assert_eq!(
                sub.get_message(Some(Duration::from_secs(5)))
                    .unwrap()
                    .unwrap()
                    .kind,
                kind
            );
        }
        let subscriber = greenhub::spawn(move || {
            let mut got = Vec::new();
            while got.len() < 4 {
                let message = sub.next_message().unwrap();
                got.push((
                    message.kind.clone(),
                    String::from_utf8(message.channel.clone()).unwrap(),
                    message.text(),
                ));
            }
            assert_eq!(
                sub.get_message(Some(Duration::from_millis(20))).unwrap(),
                None,
                "a quiet wait times out cleanly"
            );
            got
        });
        let publishers: Vec<_> = (0..3)
            .map(|i| {
                let client = client.clone();
                greenhub::spawn(move || {
                    client
                        .cmd("PUBLISH")
                        .arg("news")
                        .arg(format!("story {i}"))
                        .query::<i64>()
                        .unwrap()
                })
            })
            .collect();
        let receivers: i64 = publishers.into_iter().map(|p| p.join().unwrap()).sum();
        assert_eq!(receivers, 3, "each message reached one subscriber");
        client
            .cmd("PUBLISH")
            .arg("log.errors")
            .arg("disk full")
            .query::<i64>()
            .unwrap();
        subscriber.join().unwrap()
    });
    let mut stories: Vec<_> = received[..3]
        .iter()
        .map(|(_, _, text)| text.clone())
        .collect();
    stories.sort();
    assert_eq!(stories, ["story 0", "story 1", "story 2"]);
    assert_eq!(
        received[3],
        (
            "pmessage".to_owned(),
            "log.errors".to_owned(),
            "disk full".to_owned()
        )
    );
}

#[test]
fn a_message_that_arrives_while_the_subscriber_is_busy_is_read_without_waiting_for_the_next() {
    let server = RedisServer::start();
    let url = server.url();
    greenhub::run(move || {
        let client = Client::open(&url).unwrap();
        let mut sub = client.pubsub().unwrap();
        sub.subscribe(&["news"]).unwrap();
        let confirmation = sub.get_message(Some(Duration::from_secs(10))).unwrap();
        assert_eq!(confirmation.unwrap().kind, "subscribe");
        for i in 0..20 {
            // While the subscriber is busy here (not parked on its socket),
            // the message is published and lands in its kernel buffer: the
            // edge that announces it finds nobody waiting.
            let receivers: i64 = client
                .cmd("PUBLISH")
                .arg("news")
                .arg(format!("story {i}"))
                .query()
                .unwrap();
            assert_eq!(receivers, 1);
            // The server writes to subscribers before it reads the next
            // command: once PING is answered, the message is in our kernel.
            let pong: String = client.cmd("PING").query().unwrap();
            assert_eq!(pong, "PONG");
            // With no later message to come, only a read that tries first
            // sees it; a park-first read would wait out the whole timeout.
            let message = sub.get_message(Some(Duration::from_secs(10))).unwrap();
            assert_eq!(
                message.map(|m| m.text()),
                Some(format!("story {i}")),
                "the message sent while the subscriber was busy"
            );
        }
    });
}

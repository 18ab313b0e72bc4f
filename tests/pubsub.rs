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

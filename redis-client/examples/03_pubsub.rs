//! Pub/sub between coroutines: a subscriber loops on messages while another
//! coroutine publishes.
//!
//! Run it with
//! `REDIS_URL=redis://127.0.0.1:6379 cargo run -p greenhub-redis --example 03_pubsub`.
//! It prints:
//!
//! ```text
//! subscribed to news
//! news: first story
//! news: second story
//! news: last story
//! the subscriber saw 3 messages; the publisher reached 1 subscriber each time
//! ```
//!
//! A subscription gets its own connection (`Client::pubsub`), never one from
//! the pool: a subscribed connection can do nothing else.

use greenhub_redis::Client;

fn main() {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    greenhub::run(move || {
        let redis = Client::open(&url).expect("a redis:// or unix:// URL");
        let mut subscription = redis.pubsub().expect("a subscriber connection");
        subscription.subscribe(&["news"]).expect("SUBSCRIBE");
        let confirmed = subscription
            .get_message(None)
            .expect("confirmation")
            .expect("a message");
        println!(
            "subscribed to {}",
            String::from_utf8_lossy(&confirmed.channel)
        );

        let subscriber = greenhub::spawn(move || {
            let mut seen = 0;
            loop {
                let message = subscription.next_message().expect("a message");
                println!(
                    "{}: {}",
                    String::from_utf8_lossy(&message.channel),
                    message.text()
                );
                seen += 1;
                if message.text() == "last story" {
                    return seen;
                }
            }
        });
        let mut reached = Vec::new();
        for story in ["first story", "second story", "last story"] {
            reached.push(
                redis
                    .cmd("PUBLISH")
                    .arg("news")
                    .arg(story)
                    .query::<i64>()
                    .expect("PUBLISH"),
            );
        }
        let seen = subscriber.join().expect("join");
        let each = if reached.iter().all(|r| *r == 1) {
            "1 subscriber"
        } else {
            "not 1 subscriber"
        };
        println!("the subscriber saw {seen} messages; the publisher reached {each} each time");
    });
}

//! GET and SET from coroutines sharing one client.
//!
//! Run it against a server with
//! `REDIS_URL=redis://127.0.0.1:6379 cargo run -p greenhub-redis --example 01_get_set`
//! (without `REDIS_URL` it uses 127.0.0.1:6379). It prints:
//!
//! ```text
//! greeting = hello from greenhub
//! visits after 100 coroutines each INCR once: 100
//! missing key: None
//! pool: nothing in use, every connection created is back in the pool
//! ```
//!
//! One `Client` is cloned into each coroutine; each command checks a
//! connection out of the shared pool for its duration only. How many
//! connections the hundred coroutines needed depends on how their INCRs
//! overlapped (`stats().created`); afterwards all of them are idle.

use greenhub_redis::prelude::*;
use greenhub_redis::Client;

fn main() {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    greenhub::run(move || {
        let mut redis = Client::open(&url).expect("a redis:// or unix:// URL");
        redis
            .del(&["example:greeting", "example:visits", "example:missing"])
            .expect("DEL");
        redis
            .set("example:greeting", "hello from greenhub")
            .expect("SET");
        let greeting: String = redis.get("example:greeting").expect("GET");
        println!("greeting = {greeting}");

        let visitors: Vec<_> = (0..100)
            .map(|_| {
                let mut redis = redis.clone();
                greenhub::spawn(move || redis.incr("example:visits").expect("INCR"))
            })
            .collect();
        visitors.into_iter().for_each(|v| {
            v.join().expect("join");
        });
        let visits: i64 = redis.get("example:visits").expect("GET");
        println!("visits after 100 coroutines each INCR once: {visits}");

        let missing: Option<String> = redis.get("example:missing").expect("GET");
        println!("missing key: {missing:?}");
        let stats = redis.stats();
        if stats.in_use == 0 && stats.available == stats.created {
            println!("pool: nothing in use, every connection created is back in the pool");
        }
    });
}

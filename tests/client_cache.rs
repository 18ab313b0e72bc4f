//! Client-side caching (`redis-client/src/cache.rs`): read replies answered
//! locally until the server's tracking says the key changed, through a
//! listener connection of the cache's own.

use std::time::{Duration, Instant};

use greenhub_redis::prelude::*;
use greenhub_redis::{CacheConfig, Client, ConnectionInfo, PoolConfig};
use greenhub_tests::RedisServer;

/// A hang guard for "eventually": far longer than an invalidation takes.
const EVENTUALLY: Duration = Duration::from_secs(10);

fn cached(url: &str, max_entries: usize) -> Client {
    Client::with_cache(
        ConnectionInfo::from_url(url).unwrap(),
        PoolConfig::default(),
        CacheConfig { max_entries },
    )
}

/// Reads `key` through the cache until it is `wanted` (the invalidation is
/// on its way), failing only if it never comes.
fn until_cached_value_is(redis: &mut Client, key: &str, wanted: Option<&str>) {
    let start = Instant::now();
    loop {
        let got: Option<String> = redis.get(key).unwrap();
        if got.as_deref() == wanted {
            return;
        }
        assert!(
            start.elapsed() < EVENTUALLY,
            "still {got:?}, never {wanted:?}"
        );
        if greenhub::hub_id().is_some() {
            greenhub::sleep(Duration::from_millis(1));
        } else {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

fn local_reads_until_another_client_writes(url: &str) {
    let mut redis = cached(url, 100);
    let mut other = Client::open(url).unwrap();
    other.set("k", "one").unwrap();
    assert_eq!(redis.get::<String>("k").unwrap(), "one");
    for _ in 0..10 {
        assert_eq!(redis.get::<String>("k").unwrap(), "one");
    }
    let stats = redis.cache_stats().unwrap();
    assert_eq!((stats.misses, stats.hits, stats.entries), (1, 10, 1));
    other.set("k", "two").unwrap();
    until_cached_value_is(&mut redis, "k", Some("two"));
    assert!(redis.cache_stats().unwrap().invalidations >= 1);
    // The client's own writes invalidate too.
    redis.set("k", "three").unwrap();
    until_cached_value_is(&mut redis, "k", Some("three"));
    other.del(&["k"]).unwrap();
    until_cached_value_is(&mut redis, "k", None);
}

#[test]
fn a_cached_read_is_answered_locally_until_the_key_changes() {
    let server = RedisServer::start();
    let url = server.url();
    greenhub::run(move || local_reads_until_another_client_writes(&url));
}

#[test]
fn the_cache_works_over_resp3_and_on_a_plain_thread() {
    let server = RedisServer::start();
    let url = server.url() + "?protocol=3";
    let in_hub = url.clone();
    greenhub::run(move || local_reads_until_another_client_writes(&in_hub));
    local_reads_until_another_client_writes(&server.url());
}

#[test]
fn values_fetched_while_their_key_keeps_changing_are_never_kept_stale() {
    let server = RedisServer::start();
    let url = server.url();
    greenhub::run(move || {
        let redis = cached(&url, 1000);
        let writer = {
            let mut other = Client::open(&url).unwrap();
            greenhub::spawn(move || {
                for _ in 0..300 {
                    other.incr("counter").unwrap();
                    greenhub::yield_now();
                }
            })
        };
        let readers: Vec<_> = (0..20)
            .map(|_| {
                let mut redis = redis.clone();
                greenhub::spawn(move || {
                    for _ in 0..100 {
                        let _: Option<i64> = redis.get("counter").unwrap();
                    }
                })
            })
            .collect();
        writer.join().unwrap();
        readers.into_iter().for_each(|r| r.join().unwrap());
        until_cached_value_is(&mut redis.clone(), "counter", Some("300"));
        for _ in 0..10 {
            assert_eq!(redis.clone().get::<i64>("counter").unwrap(), 300);
        }
    });
}

#[test]
fn a_flush_empties_the_cache() {
    let server = RedisServer::start();
    let url = server.url();
    greenhub::run(move || {
        let mut redis = cached(&url, 100);
        redis.set("a", 1).unwrap();
        redis.hset("h", &[("f", "v")]).unwrap();
        assert_eq!(redis.get::<i64>("a").unwrap(), 1);
        assert_eq!(redis.hget::<String>("h", "f").unwrap(), "v");
        let mut other = Client::open(&url).unwrap();
        other.cmd("FLUSHALL").query::<()>().unwrap();
        until_cached_value_is(&mut redis, "a", None);
        assert_eq!(redis.hget::<Option<String>>("h", "f").unwrap(), None);
        let _ = &mut other;
    });
}

#[test]
fn a_restarted_server_leaves_nothing_stale_in_the_cache() {
    let mut server = RedisServer::start();
    let mut redis = cached(&server.url(), 100);
    redis.set("k", "before").unwrap();
    assert_eq!(redis.get::<String>("k").unwrap(), "before");
    assert_eq!(redis.get::<String>("k").unwrap(), "before");
    server.restart();
    // The server lost its data (no persistence); the listener saw the close.
    let start = Instant::now();
    loop {
        match redis.get::<Option<String>>("k") {
            Ok(None) => break,
            Ok(Some(stale)) => panic!("served {stale:?} after a restart"),
            // The old pooled connection fails once; a fresh one follows.
            Err(err) => assert!(err.is_io(), "{err}"),
        }
        assert!(start.elapsed() < EVENTUALLY);
    }
    assert_eq!(redis.cache_stats().unwrap().listeners, 2);
    redis.set("k", "after").unwrap();
    until_cached_value_is(&mut redis, "k", Some("after"));
}

#[test]
fn the_cache_holds_at_most_max_entries() {
    let server = RedisServer::start();
    let mut redis = cached(&server.url(), 10);
    for i in 0..50 {
        let _: Option<String> = redis.get(format!("key-{i}")).unwrap();
    }
    assert_eq!(redis.cache_stats().unwrap().entries, 10);
    for i in 40..50 {
        let _: Option<String> = redis.get(format!("key-{i}")).unwrap();
    }
    assert_eq!(redis.cache_stats().unwrap().hits, 10, "the newest are kept");
}

//! The same client code on plain OS threads: outside a coroutine, the
//! connection uses std sockets and blocks its thread, and every command works
//! the same.

use greenhub_redis::prelude::*;
use greenhub_redis::{pipe, Client};
use greenhub_tests::RedisServer;

/// What BRPOP returns: the list and the element, or `None` on timeout.
type Popped = Option<(Vec<u8>, Vec<u8>)>;

/// One test body, run in a coroutine and on OS threads.
fn body(url: &str, worker: usize) -> (i64, Popped, Vec<String>) {
    let mut redis = Client::open(url).unwrap();
    let counter = redis.incr("shared-counter").unwrap();
    let key = format!("worker-{worker}");
    redis.set(&key, worker).unwrap();
    assert_eq!(redis.get::<usize>(&key).unwrap(), worker);
    let nil = redis.brpop(&[format!("empty-{worker}")], 0.1).unwrap();
    let (_, listed): (i64, Vec<String>) = pipe()
        .cmd("RPUSH")
        .arg(format!("l-{worker}"))
        .arg("a")
        .arg("b")
        .cmd("LRANGE")
        .arg(format!("l-{worker}"))
        .arg(0)
        .arg(-1)
        .query(&mut redis)
        .unwrap();
    (counter, nil, listed)
}

#[test]
fn the_same_body_runs_in_coroutines_and_on_os_threads() {
    let server = RedisServer::start();
    let url = server.url();

    let green_url = url.clone();
    let in_coroutines = greenhub::run(move || {
        let workers: Vec<_> = (0..4)
            .map(|worker| {
                let url = green_url.clone();
                greenhub::spawn(move || body(&url, worker))
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap())
            .collect::<Vec<_>>()
    });

    let on_threads: Vec<_> = (4..8)
        .map(|worker| {
            let url = url.clone();
            std::thread::spawn(move || {
                assert!(greenhub::current().is_none(), "a plain thread, no hub");
                body(&url, worker)
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();

    for (counter, nil, listed) in in_coroutines.iter().chain(&on_threads) {
        assert!((1..=8).contains(counter));
        assert_eq!(*nil, None);
        assert_eq!(listed, &["a", "b"]);
    }
    let mut counters: Vec<i64> = in_coroutines
        .iter()
        .chain(&on_threads)
        .map(|r| r.0)
        .collect();
    counters.sort();
    assert_eq!(
        counters,
        (1..=8).collect::<Vec<_>>(),
        "every INCR counted once"
    );
}

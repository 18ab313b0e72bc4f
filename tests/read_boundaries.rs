//! Replies that end exactly where a read ended. Readiness is edge-triggered:
//! when one read returns a whole number of replies, the next read must try
//! the socket before it parks, or the replies still in the kernel (whose edge
//! was already announced) are never read. Every test here sets a socket
//! timeout, so a regression fails with a timeout instead of hanging.

use greenhub_redis::prelude::*;
use greenhub_redis::{pipe, Client, Value};
use greenhub_tests::{RedisServer, Rng};

/// A generous bound on each read: long enough never to fire on a loaded
/// machine, short enough that a lost edge fails the test instead of hanging it.
const HANG_GUARD: &str = "?socket_timeout=10";

fn on_server(body: impl FnOnce(Client) + 'static) {
    let server = RedisServer::start();
    let url = server.url() + HANG_GUARD;
    greenhub::run(move || body(Client::open(&url).unwrap()));
}

#[test]
fn a_pipeline_of_65_or_more_exists_returns_every_reply() {
    on_server(|mut r| {
        // `:0\r\n` is 4 bytes: 64 of them end exactly at a 256-byte read.
        for count in (1..=300).chain([1000, 5000]) {
            let mut exists = pipe();
            for i in 0..count {
                exists.cmd("EXISTS").arg(format!("missing-{i}"));
            }
            let replies: Vec<i64> = exists.query(&mut r).unwrap();
            assert_eq!(replies, vec![0; count], "a pipeline of {count} EXISTS");
        }
        assert_eq!(r.stats().created, 1, "one connection, always back in step");
    });
}

#[test]
fn a_hundred_pipelines_of_fifty_gets_with_random_values_all_complete() {
    on_server(|mut r| {
        let mut rng = Rng::new(12);
        for round in 0..100 {
            let values: Vec<Vec<u8>> = (0..50)
                .map(|_| {
                    let len = rng.below(41);
                    rng.bytes(len)
                })
                .collect();
            let mut set = pipe();
            for (i, value) in values.iter().enumerate() {
                set.cmd("SET").arg(format!("k{i}")).arg(value);
            }
            set.query::<()>(&mut r).unwrap();
            let mut get = pipe();
            for i in 0..values.len() {
                get.cmd("GET").arg(format!("k{i}"));
            }
            let got: Vec<Vec<u8>> = get.query(&mut r).unwrap();
            assert_eq!(got, values, "round {round}");
        }
    });
}

#[test]
fn replies_that_end_exactly_at_a_read_buffer_boundary_are_all_read() {
    on_server(|mut r| {
        // A GET reply of a value of n bytes is `$n\r\n` + n + `\r\n`: choose
        // n so that the first reply alone is `size` bytes, for every size up
        // to 600 and for each power of two a buffer may have, then follow it
        // with more replies that are already in the kernel.
        let digits = |n: usize| n.to_string().len();
        let reply_len = |n: usize| 1 + digits(n) + 2 + n + 2;
        let sizes = (5..=600).chain((7..=20).map(|p| 1usize << p));
        for size in sizes {
            let Some(n) = (0..size).find(|&n| reply_len(n) == size) else {
                continue;
            };
            let value = vec![b'v'; n];
            r.set("first", &value).unwrap();
            let (first, a, b, c): (Vec<u8>, i64, i64, Value) = pipe()
                .cmd("GET")
                .arg("first")
                .cmd("EXISTS")
                .arg("first")
                .cmd("STRLEN")
                .arg("first")
                .cmd("GET")
                .arg("missing")
                .query(&mut r)
                .unwrap();
            assert_eq!(
                (first.len(), a, b, c),
                (n, 1, n as i64, Value::Nil),
                "size {size}"
            );
        }
    });
}

#[test]
fn a_multi_exec_whose_replies_end_at_a_read_boundary_completes() {
    on_server(|mut r| {
        // MULTI's +OK (5 bytes) and 62 +QUEUED (9 bytes each) end at 563;
        // sweeping the count crosses every small boundary.
        for count in 1..=200 {
            let mut tx = pipe();
            tx.atomic();
            for _ in 0..count {
                tx.cmd("INCR").arg("counter");
            }
            let replies: Vec<i64> = tx.query(&mut r).unwrap();
            assert_eq!(replies.len(), count);
        }
    });
}

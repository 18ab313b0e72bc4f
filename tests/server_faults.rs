//! The server killed, paused and restarted under the client: clear errors,
//! no hang, nothing stale, and recovery without rebuilding the client.

use std::time::{Duration, Instant};

use greenhub_redis::prelude::*;
use greenhub_redis::{Client, Error};
use greenhub_tests::{wait_until, RedisServer};

#[test]
fn a_killed_server_fails_every_parked_brpop_and_a_restart_heals_the_pool() {
    let mut server = RedisServer::start();
    let url = server.url();
    greenhub::run(move || {
        let redis = Client::open(&url).unwrap();
        let parked: Vec<_> = (0..50)
            .map(|_| {
                let mut redis = redis.clone();
                greenhub::spawn(move || redis.brpop(&["never"], 30.0))
            })
            .collect();
        wait_until("50 BRPOPs holding their connections", || {
            redis.stats().in_use == 50
        });

        let start = Instant::now();
        server.kill();
        for waiter in parked {
            let err = waiter.join().unwrap().unwrap_err();
            assert!(matches!(err, Error::Io(_)), "{err}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "errors took {:?}",
            start.elapsed()
        );
        let stats = redis.stats();
        assert_eq!(
            (stats.in_use, stats.available),
            (0, 0),
            "no broken connection kept: {stats:?}"
        );

        let mut probe = redis.clone();
        let down = probe.ping().unwrap_err();
        assert!(
            down.is_io() && down.to_string().contains("cannot connect"),
            "{down}"
        );

        server.restart();
        assert_eq!(probe.ping().unwrap(), "PONG", "the same client reconnects");
    });
}

#[test]
fn a_paused_server_gives_timeouts_and_no_stale_reply_after_it_resumes() {
    use std::sync::mpsc::channel;

    let server = RedisServer::start();
    assert_eq!(server.raw_command(&["SET", "k", "right"]), b"+OK\r\n");
    let url = format!("{}?socket_timeout=0.2", server.url());
    // Hand-offs between the hub's thread and this one, so that nothing here
    // depends on how long anything takes.
    let (connected_tx, connected) = channel();
    let (paused_tx, paused) = channel::<()>();
    let (timed_out_tx, timed_out) = channel();
    let (resumed_tx, resumed) = channel::<()>();
    let checker = std::thread::spawn(move || {
        greenhub::run(move || {
            let mut redis = Client::open(&url).unwrap();
            redis.ping().unwrap();
            connected_tx.send(()).unwrap();
            greenhub::unblock(move || paused.recv()).unwrap().unwrap();

            let err = redis.get::<String>("k").unwrap_err();
            assert!(err.is_timeout(), "{err}");
            let start = Instant::now();
            let err = redis.brpop(&["q"], 0.3).unwrap_err();
            assert!(err.is_timeout(), "{err}");
            assert!(
                start.elapsed() >= Duration::from_millis(500),
                "BRPOP 0.3 + socket 0.2: {:?}",
                start.elapsed()
            );
            assert_eq!(
                redis.stats().available,
                0,
                "timed-out connections were closed"
            );
            timed_out_tx.send(()).unwrap();
            greenhub::unblock(move || resumed.recv()).unwrap().unwrap();

            for round in 0..10 {
                redis.set(format!("r{round}"), round).unwrap();
                assert_eq!(
                    redis.get::<i64>(format!("r{round}")).unwrap(),
                    round,
                    "a stale reply was delivered"
                );
            }
            redis.get::<String>("k").unwrap()
        })
    });
    connected.recv().unwrap();
    server.pause();
    paused_tx.send(()).unwrap();
    timed_out.recv().unwrap();
    server.resume();
    resumed_tx.send(()).unwrap();
    assert_eq!(checker.join().unwrap(), "right");
}

//! Faults under load, with the real server: killed, connections killed
//! server-side, requests interrupted at random points, maxclients, and the
//! client out of file descriptors. Each gives a clear error, nothing is lost
//! and no connection is reused after a half-read reply.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenhub_redis::prelude::*;
use greenhub_redis::{Client, Error};
use greenhub_tests::{wait_until, RedisServer};

#[test]
fn a_sigkill_under_a_thousand_brpops_and_a_hundred_loops_fails_every_call_and_a_restart_heals() {
    let mut server = RedisServer::start();
    let url = server.unix_url();
    greenhub::run(move || {
        let redis = Client::open(&url).unwrap();
        let parked: Vec<_> = (0..1000)
            .map(|_| {
                let mut redis = redis.clone();
                greenhub::spawn(move || redis.brpop(&["never"], 30.0))
            })
            .collect();
        let loops: Vec<_> = (0..100)
            .map(|i| {
                let mut redis = redis.clone();
                greenhub::spawn(move || loop {
                    let key = format!("loop:{i}");
                    if let Err(err) = redis.set(&key, i).and_then(|()| redis.get::<usize>(&key)) {
                        return err;
                    }
                })
            })
            .collect();
        wait_until("1,000 BRPOPs holding their connections", || {
            redis.stats().in_use >= 1000
        });
        let start = Instant::now();
        server.kill();
        for waiter in parked {
            let err = waiter.join().unwrap().unwrap_err();
            assert!(err.is_io(), "{err}");
        }
        for looped in loops {
            let err = looped.join().unwrap();
            assert!(err.is_io(), "{err}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "every call failed within {:?}",
            start.elapsed()
        );
        assert_eq!(greenhub::stats().alive, 1, "no coroutine left behind");
        let stats = redis.stats();
        assert_eq!(
            (stats.in_use, stats.available),
            (0, 0),
            "no broken connection kept: {stats:?}"
        );

        server.restart();
        let mut again = redis.clone();
        again.set("after", "restart").unwrap();
        assert_eq!(
            again.get::<String>("after").unwrap(),
            "restart",
            "the same client serves new commands"
        );
    });
}

#[test]
fn connections_killed_server_side_fail_cleanly_and_the_pool_replaces_them() {
    let server = RedisServer::start();
    let url = server.url();
    let (wrong, errors, created) = greenhub::run(move || {
        let redis = Client::open(&url).unwrap();
        let stop = Rc::new(Cell::new(false));
        let (wrong, errors) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
        let rounds = Rc::new(Cell::new(0u64));
        let workers: Vec<_> = (0..200)
            .map(|i| {
                let (mut redis, stop, wrong, errors, rounds) = (
                    redis.clone(),
                    stop.clone(),
                    wrong.clone(),
                    errors.clone(),
                    rounds.clone(),
                );
                greenhub::spawn(move || {
                    let mut round = 0u64;
                    while !stop.get() {
                        let (key, value) = (format!("w:{i}"), format!("{i}:{round}"));
                        match redis
                            .set(&key, &value)
                            .and_then(|()| redis.get::<String>(&key))
                        {
                            Ok(got) if got == value => {}
                            Ok(_) => wrong.set(wrong.get() + 1),
                            Err(err) => {
                                assert!(err.is_io(), "{err}");
                                errors.set(errors.get() + 1);
                            }
                        }
                        round += 1;
                        rounds.set(rounds.get() + 1);
                    }
                    // After the storm, this coroutine is served again.
                    redis.set(format!("w:{i}"), "final").unwrap();
                })
            })
            .collect();
        let mut admin = Client::open(&url).unwrap();
        // Each kill comes once the workers have done 200 more rounds (a
        // condition, not a fixed time), so every kill hits connections in
        // use, and the storm ends with the workers running again.
        let busy_again = || {
            let seen = rounds.get();
            wait_until("the workers running again", || rounds.get() >= seen + 200);
        };
        for _ in 0..5 {
            busy_again();
            let _: i64 = admin
                .cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg("normal")
                .arg("SKIPME")
                .arg("yes")
                .query()
                .unwrap();
        }
        busy_again();
        stop.set(true);
        workers.into_iter().for_each(|w| w.join().unwrap());
        let _ = admin.ping();
        (wrong.get(), errors.get(), redis.stats().created)
    });
    assert_eq!(wrong, 0, "no call ever saw another call's reply");
    assert!(errors > 0, "the kills did interrupt calls");
    assert!(
        created > 200,
        "the pool opened replacements ({created} created)"
    );
}

#[test]
fn requests_interrupted_at_random_points_never_poison_the_pool() {
    let server = RedisServer::start();
    let url = server.unix_url();
    greenhub::run(move || {
        let redis = Client::open(&url).unwrap();
        let big = "x".repeat(256 * 1024);
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut random = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _round in 0..20 {
            let victims: Vec<_> = (0..30)
                .map(|i| {
                    let (mut redis, big) = (redis.clone(), big.clone());
                    let cut = Duration::from_micros(random(3000));
                    let by_timeout = random(2) == 0;
                    let worker = greenhub::spawn(move || {
                        let mut work = || {
                            redis.set(format!("big:{i}"), &big)?;
                            let _: String = redis.get(format!("big:{i}"))?;
                            redis.brpop(&[format!("q:{i}")], 0.01)
                        };
                        if by_timeout {
                            let _ = greenhub::timeout(cut, work);
                        } else {
                            let _ = work();
                        }
                    });
                    (worker, cut, by_timeout)
                })
                .collect();
            for (worker, cut, by_timeout) in &victims {
                if !by_timeout {
                    greenhub::sleep(*cut / 30);
                    worker.kill();
                }
            }
            for (worker, _, _) in victims {
                let _ = worker.join();
            }
        }
        // Every pooled connection now answers its own requests.
        let checkers: Vec<_> = (0..30)
            .map(|i| {
                let mut redis = redis.clone();
                greenhub::spawn(move || {
                    for round in 0..20 {
                        let (key, value) = (format!("check:{i}"), format!("{i}-{round}"));
                        redis.set(&key, &value).unwrap();
                        assert_eq!(redis.get::<String>(&key).unwrap(), value);
                        assert_eq!(
                            redis.rpush(format!("own:{i}"), &[round]).unwrap(),
                            round as usize + 1
                        );
                    }
                })
            })
            .collect();
        checkers.into_iter().for_each(|c| c.join().unwrap());
    });
}

#[test]
fn maxclients_gives_the_servers_error_and_a_correct_pool() {
    // Six slots: one for the test's own connection, opened first, and five
    // for the ten callers.
    let server = RedisServer::start_with(&["--maxclients", "6"]);
    let url = server.unix_url();
    let (refused, stats) = greenhub::run(move || {
        let mut admin = Client::open(&url).unwrap();
        admin.ping().unwrap();
        let redis = Client::open(&url).unwrap();
        // The five that get in wait in BRPOP until the test pushes jobs, so
        // they still hold their slots when the last callers connect.
        let callers: Vec<_> = (0..10)
            .map(|_| {
                let mut redis = redis.clone();
                greenhub::spawn(move || redis.brpop(&["full"], 0.0))
            })
            .collect();
        wait_until("five callers refused", || {
            callers.iter().filter(|c| c.is_finished()).count() >= 5
        });
        admin.rpush("full", &["a", "b", "c", "d", "e"]).unwrap();
        let refused: Vec<String> = callers
            .into_iter()
            .filter_map(|c| c.join().unwrap().err())
            .map(|err| err.to_string())
            .collect();
        (refused, redis.stats())
    });
    assert_eq!(refused.len(), 5, "{refused:?}");
    assert!(
        refused
            .iter()
            .all(|e| e.contains("max number of clients reached")),
        "{refused:?}"
    );
    assert_eq!(
        (stats.created, stats.in_use, stats.available),
        (10, 0, 5),
        "refused connections were discarded"
    );
}

/// Regression: a server at `maxclients` accepts, writes its error and
/// closes. When that beat the caller's first request (the server is quick,
/// the caller was descheduled), the write failed with a broken pipe and the
/// caller got that instead of the server's error, which sat unread in the
/// socket. Here the server refuses and closes before the request, always.
#[test]
fn maxclients_gives_the_servers_error_even_when_the_server_closed_first() {
    let server = RedisServer::start_with(&["--maxclients", "1"]);
    let url = server.unix_url();
    let err = greenhub::run(move || {
        let mut holder = Client::open(&url).unwrap();
        holder.ping().unwrap();
        let refused = Client::open(&url).unwrap();
        // Connecting sends nothing (no password, db or name in the URL).
        let mut conn = refused.get_connection().unwrap();
        wait_until("the server refused the second connection", || {
            let stats: String = holder.cmd("INFO").arg("stats").query().unwrap();
            stats.contains("rejected_connections:1\r\n")
        });
        let err = conn.ping().unwrap_err();
        drop(conn);
        assert_eq!(
            refused.stats().available,
            0,
            "the refused connection was discarded"
        );
        err
    });
    assert!(
        err.to_string().contains("max number of clients reached"),
        "{err}"
    );
}

/// When set, this test binary runs as the child of the file-descriptor test.
const FD_CHILD: &str = "GREENHUB_FD_EXHAUSTION_CHILD";

#[test]
fn running_out_of_file_descriptors_is_a_clear_error_and_recovers() {
    if let Ok(url) = std::env::var(FD_CHILD) {
        return fd_exhaustion_child(&url);
    }
    let server = RedisServer::start();
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "running_out_of_file_descriptors_is_a_clear_error_and_recovers",
            "--nocapture",
        ])
        .env(FD_CHILD, server.unix_url())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("fd-child: ok"), "{stdout}");
}

fn fd_exhaustion_child(url: &str) {
    let limit = libc::rlimit {
        rlim_cur: 64,
        rlim_max: 64,
    };
    // SAFETY: setrlimit reads one struct we own; this is a child process of its own.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    let url = url.to_owned();
    greenhub::run(move || {
        let redis = Client::open(&url).unwrap();
        let held = Rc::new(RefCell::new(Vec::new()));
        let mut failure = None;
        for _ in 0..100 {
            match redis.get_connection() {
                Ok(conn) => held.borrow_mut().push(conn),
                Err(err) => {
                    failure = Some(err);
                    break;
                }
            }
        }
        let err = failure.expect("64 descriptors cannot hold 100 connections");
        assert!(
            matches!(err, Error::Io(_)) && err.to_string().contains("Too many open files"),
            "{err}"
        );
        held.borrow_mut().truncate(10);
        let mut again = redis.clone();
        again.set("fd", "recovered").unwrap();
        assert_eq!(again.get::<String>("fd").unwrap(), "recovered");
        println!("fd-child: ok");
    });
}

#[test]
fn an_acl_user_without_permission_gets_a_clear_error_and_no_retry_loop() {
    let server = RedisServer::start();
    assert_eq!(
        server.raw_command(&["ACL", "SETUSER", "reader", "on", ">readpw", "~*", "+get", "+ping"]),
        b"+OK\r\n"
    );
    let url = format!("redis://reader:readpw@127.0.0.1:{}", server.addr().port());
    let wrong = format!("redis://reader:nope@127.0.0.1:{}", server.addr().port());
    greenhub::run(move || {
        let mut reader = Client::open(&url).unwrap();
        assert_eq!(reader.get::<Option<String>>("k").unwrap(), None);
        let err = reader.set("k", "v").unwrap_err();
        assert_eq!(err.code(), Some("NOPERM"), "{err}");
        assert_eq!(
            reader.stats().created,
            1,
            "one connection, still usable: no retry loop"
        );
        let err = Client::open(&wrong).unwrap().ping().unwrap_err();
        assert_eq!(err.code(), Some("WRONGPASS"), "{err}");
        assert!(!err.to_string().contains("nope"), "{err}");
    });
}

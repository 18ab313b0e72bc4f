//! Kill-, timeout- and drop-safe blocking commands (`redis-client/src/reaper.rs`):
//! a BRPOP whose caller is gone never takes an item with it. Each race ends
//! with the item either delivered to the caller or back in its list, and the
//! pool's figures whole (the reaper returned every connection it took).
//! See `docs/reliability.md`, "Kill-safe blocking commands".

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use greenhub_redis::prelude::*;
use greenhub_redis::{cmd, Client, OrphanedItem, Value};
use greenhub_tests::{wait_until, RedisServer, Rng};

/// Waits until every reaper of `redis`'s pool has finished and every
/// connection is back (none lost to a reaper that never came back).
fn settled(redis: &Client) {
    wait_until("reapers finished", || {
        redis.pool().reaper_stats().running == 0
    });
    let stats = redis.stats();
    assert_eq!(stats.in_use, 0, "{stats:?}");
    let reaper = redis.pool().reaper_stats();
    assert_eq!(reaper.handed, reaper.returned + reaper.closed, "{reaper:?}");
}

/// A blocking pop to cut short: its name, a setup, the command, and what
/// must hold after its item was put back.
type Case = (
    &'static str,
    Box<dyn Fn(&mut Client)>,
    greenhub_redis::Cmd,
    Box<dyn Fn(&mut Client)>,
);

/// How one race ended for its item.
#[derive(Default, Debug)]
struct Outcome {
    delivered: usize,
    put_back: usize,
    lost: usize,
}

/// One race: a victim BRPOPs `key`; `cut` decides how its caller goes away
/// while the item arrives; then the item is either the victim's or in the list.
fn race(redis: &Client, key: &str, item: &str, kill: bool, rng: &mut Rng, outcome: &mut Outcome) {
    let mut victim_redis = redis.clone();
    let victim_key = key.to_owned();
    let window = Duration::from_millis(10);
    let victim = greenhub::spawn(move || {
        let popped = if kill {
            victim_redis.brpop(&[&victim_key], 5.0).ok().flatten()
        } else {
            greenhub::timeout(window, || victim_redis.brpop(&[&victim_key], 5.0))
                .ok()
                .and_then(|r| r.ok().flatten())
        };
        popped.map(|(_, value)| value)
    });
    // Let the victim write its BRPOP (and park); some rounds push before
    // the server has even read it, some a little later.
    for _ in 0..rng.below(3) {
        greenhub::yield_now();
    }
    if !kill {
        greenhub::sleep(Duration::from_micros(rng.below(10_000) as u64));
    }
    let mut pusher = redis.clone();
    pusher.lpush(key, &[item]).unwrap();
    if kill {
        // No join, no sleep: the kill right after the push was acknowledged.
        victim.kill();
    }
    let got = victim.join().ok().flatten();
    settled(redis);
    let left: Vec<String> = pusher.lrange(key, 0, -1).unwrap();
    match got {
        Some(value) => {
            assert_eq!(value, item.as_bytes());
            assert!(left.is_empty(), "delivered and still queued: {left:?}");
            outcome.delivered += 1;
        }
        None if left == [item] => {
            outcome.put_back += 1;
            let _: Option<String> = pusher.rpop(key).unwrap();
        }
        None => {
            assert!(left.is_empty(), "{left:?}");
            outcome.lost += 1;
        }
    }
}

#[test]
fn a_kill_right_after_the_push_leaves_the_item_delivered_or_in_the_list() {
    let server = RedisServer::start();
    let url = server.url();
    greenhub::run(move || {
        let redis = Client::open(&url).unwrap();
        let mut rng = Rng::new(1);
        let mut outcome = Outcome::default();
        for round in 0..100 {
            race(
                &redis,
                "kill",
                &format!("item-{round}"),
                true,
                &mut rng,
                &mut outcome,
            );
        }
        println!("kill right after push, 100 rounds: {outcome:?}");
        assert_eq!(outcome.lost, 0, "{outcome:?}");
        assert!(outcome.put_back > 0, "no round raced the kill: {outcome:?}");
    });
}

#[test]
fn a_ten_ms_timeout_around_a_brpop_that_gets_a_push_in_that_window_loses_nothing() {
    let server = RedisServer::start();
    let url = server.url();
    greenhub::run(move || {
        let redis = Client::open(&url).unwrap();
        let mut rng = Rng::new(2);
        let mut outcome = Outcome::default();
        for round in 0..100 {
            race(
                &redis,
                "timeout",
                &format!("item-{round}"),
                false,
                &mut rng,
                &mut outcome,
            );
        }
        println!("10 ms timeout around BRPOP, 100 rounds: {outcome:?}");
        assert_eq!(outcome.lost, 0, "{outcome:?}");
    });
}

#[test]
fn a_thousand_kill_or_timeout_races_lose_no_item_and_no_connection() {
    let server = RedisServer::start();
    let url = server.url();
    greenhub::run(move || {
        let redis = Client::open(&url).unwrap();
        let mut rng = Rng::new(3);
        let mut outcome = Outcome::default();
        for round in 0..1000 {
            let kill = rng.below(2) == 0;
            race(
                &redis,
                "mixed",
                &format!("item-{round}"),
                kill,
                &mut rng,
                &mut outcome,
            );
        }
        let reaper = redis.pool().reaper_stats();
        println!(
            "1,000 kill-or-timeout races: {outcome:?}; reaper {reaper:?}; pool {:?}",
            redis.stats()
        );
        assert_eq!(outcome.lost, 0, "{outcome:?}");
        assert_eq!(reaper.lost, 0, "{reaper:?}");
        // An item still queued was put back by a reaper, or was never
        // popped: a timed-out BRPOP whose block the reaper ended before the
        // push arrived leaves it in the list untouched.
        assert!(
            reaper.restored <= outcome.put_back && reaper.restored > 0,
            "{reaper:?} {outcome:?}"
        );
        // Every reaped connection went back: the pool did not have to open
        // one per race.
        assert!(redis.stats().created < 100, "{:?}", redis.stats());
    });
}

#[test]
fn every_blocking_pop_is_undone_at_the_place_it_took_from() {
    let server = RedisServer::start();
    let url = server.url();
    greenhub::run(move || {
        let mut redis = Client::open(&url).unwrap();
        // Each case: set up, the blocking command, what must hold after.
        let cases: Vec<Case> = vec![
            // The push adds x with other items, so the list is not empty
            // when x comes back: the check sees which end it went to.
            (
                "BLPOP",
                Box::new(|_| {}),
                cmd("BLPOP").arg("l").arg(5).clone(),
                Box::new(|r| assert_eq!(r.lrange::<String>("l", 0, -1).unwrap(), ["x", "a", "b"])),
            ),
            (
                "BRPOP",
                Box::new(|_| {}),
                cmd("BRPOP").arg("r").arg(5).clone(),
                Box::new(|r| assert_eq!(r.lrange::<String>("r", 0, -1).unwrap(), ["a", "b", "x"])),
            ),
            (
                "BLMOVE",
                Box::new(|r| {
                    let pushed = r.req_command(cmd("RPUSH").arg("dst").arg("d1").arg("d2"));
                    assert_eq!(pushed.unwrap(), Value::Int(2));
                }),
                cmd("BLMOVE")
                    .arg("src")
                    .arg("dst")
                    .arg("RIGHT")
                    .arg("LEFT")
                    .arg(5)
                    .clone(),
                Box::new(|r| {
                    assert_eq!(r.lrange::<String>("src", 0, -1).unwrap(), ["a", "b", "x"]);
                    assert_eq!(r.lrange::<String>("dst", 0, -1).unwrap(), ["d1", "d2"]);
                }),
            ),
            (
                "BZPOPMIN",
                Box::new(|_| {}),
                cmd("BZPOPMIN").arg("z").arg(5).clone(),
                Box::new(|r| {
                    let score: Option<f64> = r.zscore("z", "x").unwrap();
                    assert_eq!(score, Some(2.5));
                    let other: Option<f64> = r.zscore("z", "y").unwrap();
                    assert_eq!(other, Some(3.0));
                }),
            ),
        ];
        for (name, setup, blocking, check) in cases {
            setup(&mut redis);
            let mut conn = redis.get_connection().unwrap();
            let victim = greenhub::spawn(move || conn.req_command(&blocking));
            wait_until("the victim blocked", || {
                redis.info("clients").unwrap().contains("blocked_clients:1")
            });
            // The push from a plain socket blocks the hub until it is
            // acknowledged: the server has popped for the victim, which has
            // not run since, when the kill lands.
            match name {
                "BZPOPMIN" => server.raw_command(&["ZADD", "z", "2.5", "x", "3", "y"]),
                "BLMOVE" => server.raw_command(&["RPUSH", "src", "a", "b", "x"]),
                "BRPOP" => server.raw_command(&["RPUSH", "r", "a", "b", "x"]),
                _ => server.raw_command(&["RPUSH", "l", "x", "a", "b"]),
            };
            victim.kill();
            assert!(victim.join().is_err());
            settled(&redis);
            check(&mut redis);
            let _: usize = redis.del(&["l", "r", "src", "dst", "z"]).unwrap();
        }
    });
}

#[test]
fn a_blmove_cut_short_is_moved_back_unless_a_consumer_took_it() {
    let server = RedisServer::start();
    let url = server.url();
    greenhub::run(move || {
        let mut redis = Client::open(&url).unwrap();
        let mut conn = redis.get_connection().unwrap();
        let victim = greenhub::spawn(move || {
            conn.req_command(
                cmd("BLMOVE")
                    .arg("jobs")
                    .arg("processing")
                    .arg("RIGHT")
                    .arg("LEFT")
                    .arg(5),
            )
        });
        wait_until("the victim blocked", || server.blocked_clients() == 1);
        server.raw_command(&["LPUSH", "jobs", "job-1"]);
        victim.kill();
        let _ = victim.join();
        settled(&redis);
        assert_eq!(redis.lrange::<String>("jobs", 0, -1).unwrap(), ["job-1"]);
        assert_eq!(redis.llen("processing").unwrap(), 0);
    });
}

#[test]
fn an_orphaned_item_goes_to_the_callback_when_one_is_set() {
    let server = RedisServer::start();
    let url = server.url();
    greenhub::run(move || {
        let mut redis = Client::open(&url).unwrap();
        let seen: Rc<RefCell<Vec<OrphanedItem>>> = Rc::default();
        let log = seen.clone();
        redis.on_orphaned_item(move |item| log.borrow_mut().push(item));
        let mut victim_redis = redis.clone();
        let victim = greenhub::spawn(move || victim_redis.brpop(&["q"], 5.0));
        wait_until("the victim blocked", || {
            redis.info("clients").unwrap().contains("blocked_clients:1")
        });
        // The push is acknowledged after the server handed the item to the
        // blocked BRPOP, and from a plain socket that blocks the hub: the
        // victim's reply is in flight, unread, when it is killed.
        server.raw_command(&["LPUSH", "q", "x"]);
        victim.kill();
        let _ = victim.join();
        settled(&redis);
        let seen = seen.borrow();
        if let [item] = seen.as_slice() {
            assert_eq!(item.name(), "BRPOP");
            assert_eq!(
                item.reply,
                Value::Array(vec![Value::Bulk(b"q".to_vec()), Value::Bulk(b"x".to_vec())])
            );
            assert_eq!(redis.llen("q").unwrap(), 0, "handed over, not put back");
        } else {
            panic!("expected the one orphaned item, got {seen:?}");
        }
    });
}

#[test]
fn an_xreadgroup_cut_short_leaves_its_entry_pending() {
    let server = RedisServer::start();
    let url = server.url();
    greenhub::run(move || {
        let mut redis = Client::open(&url).unwrap();
        let _: Value = redis
            .req_command(
                cmd("XGROUP")
                    .arg("CREATE")
                    .arg("s")
                    .arg("g")
                    .arg("$")
                    .arg("MKSTREAM"),
            )
            .unwrap();
        let mut victim_redis = redis.clone();
        let victim = greenhub::spawn(move || {
            victim_redis.req_command(
                cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg("g")
                    .arg("c")
                    .arg("BLOCK")
                    .arg(5000)
                    .arg("STREAMS")
                    .arg("s")
                    .arg(">"),
            )
        });
        wait_until("the victim blocked", || server.blocked_clients() == 1);
        let id: String = redis
            .req_command(cmd("XADD").arg("s").arg("*").arg("f").arg("v"))
            .and_then(greenhub_redis::FromValue::from_value)
            .unwrap();
        victim.kill();
        let _ = victim.join();
        settled(&redis);
        let pending = redis
            .req_command(cmd("XPENDING").arg("s").arg("g"))
            .unwrap();
        let Value::Array(summary) = pending else {
            panic!("{pending:?}")
        };
        assert_eq!(
            summary[0],
            Value::Int(1),
            "the entry stays pending: {summary:?}"
        );
        assert_eq!(summary[1], Value::Bulk(id.into_bytes()));
    });
}

#[test]
fn the_demo_wire_stays_one_brpop_per_client_per_call() {
    let server = RedisServer::start();
    let url = server.url();
    greenhub::run(move || {
        let mut redis = Client::open(&url).unwrap();
        let _: Value = redis.req_command(cmd("CONFIG").arg("RESETSTAT")).unwrap();
        let (clients, calls) = (50, 3);
        let waiters: Vec<_> = (0..clients)
            .map(|_| {
                let mut redis = redis.clone();
                greenhub::spawn(move || {
                    for _ in 0..calls {
                        assert_eq!(redis.brpop(&["empty"], 0.1).unwrap(), None);
                    }
                })
            })
            .collect();
        for waiter in waiters {
            waiter.join().unwrap();
        }
        let stats = redis.info("commandstats").unwrap();
        let calls_of = |name: &str| -> usize {
            stats
                .lines()
                .find_map(|l| l.strip_prefix(&format!("cmdstat_{name}:calls=")))
                .and_then(|rest| rest.split(',').next()?.parse().ok())
                .unwrap_or(0)
        };
        let created = redis.stats().created;
        println!("{stats}");
        assert_eq!(calls_of("brpop"), clients * calls);
        // CLIENT ID rides in the first BRPOP's write of each connection:
        // one per connection, no round trip of its own, none per call.
        assert!(
            calls_of("client|id") <= created,
            "{}",
            calls_of("client|id")
        );
        let others: usize = stats
            .lines()
            .filter_map(|l| l.strip_prefix("cmdstat_"))
            .filter(|l| !l.starts_with("brpop:") && !l.starts_with("client|id:"))
            .filter(|l| !l.starts_with("config|resetstat:") && !l.starts_with("info:"))
            .count();
        assert_eq!(others, 0, "{stats}");
    });
}

#[test]
fn a_reaper_whose_server_died_closes_the_connection_and_returns_its_place() {
    let mut server = RedisServer::start();
    let url = server.url();
    greenhub::run(move || {
        let redis = Client::open(&format!("{url}?socket_timeout=1")).unwrap();
        let mut victim_redis = redis.clone();
        let victim = greenhub::spawn(move || victim_redis.brpop(&["q"], 0.0));
        wait_until("the victim blocked", || server.blocked_clients() == 1);
        server.kill();
        victim.kill();
        let _ = victim.join();
        settled(&redis);
        let reaper = redis.pool().reaper_stats();
        assert_eq!(reaper.closed, 1, "{reaper:?}");
        server.restart();
        let mut redis = redis;
        let pong: String = redis
            .req_command(&cmd("PING"))
            .and_then(greenhub_redis::FromValue::from_value)
            .unwrap();
        assert_eq!(pong, "PONG");
    });
}

#[test]
fn a_hub_shutting_down_with_a_cut_short_brpop_closes_it_without_hanging() {
    let server = RedisServer::start();
    let url = server.url();
    greenhub::run(move || {
        let redis = Client::open(&url).unwrap();
        let mut victim_redis = redis.clone();
        // Left parked in BRPOP when main returns: the shutdown kills it, its
        // reaper is killed in turn before it runs, and the hub still ends.
        greenhub::spawn(move || victim_redis.brpop(&["q"], 0.0));
        wait_until("the victim blocked", || server.blocked_clients() == 1);
    });
}

/// An ACL user refused `CLIENT UNBLOCK`: the reaper cannot end the block.
/// A `BRPOP q 1` (a short server timeout) is waited out: its nil is read and
/// the connection goes back to the pool in step. A `BRPOP q 0` (no timeout)
/// has its connection closed at once.
#[test]
fn without_client_unblock_a_short_timeout_is_waited_out_and_a_long_one_closed() {
    let server = RedisServer::start();
    server.raw_command(&[
        "ACL",
        "SETUSER",
        "worker",
        "on",
        ">pw",
        "~*",
        "&*",
        "+@all",
        "-client|unblock",
    ]);
    let url = format!("redis://worker:pw@{}", server.addr());
    greenhub::run(move || {
        let redis = Client::open(&url).unwrap();
        for (timeout, returned, closed) in [(1.0, 1, 0), (0.0, 1, 1)] {
            let mut victim_redis = redis.clone();
            let victim = greenhub::spawn(move || victim_redis.brpop(&["q"], timeout));
            wait_until("the victim blocked", || server.blocked_clients() == 1);
            victim.kill();
            let _ = victim.join();
            wait_until("the reaper finished", || {
                redis.pool().reaper_stats().running == 0
            });
            let stats = redis.pool().reaper_stats();
            assert_eq!(
                (stats.returned, stats.closed),
                (returned, closed),
                "{stats:?}"
            );
            assert_eq!(stats.lost, 0, "{stats:?}");
        }
    });
}

//! The chaos soak: 2,000 coroutines of mixed work through the fault proxy
//! while the server is SIGKILLed and restarted every few seconds (AOF with
//! `appendfsync always`, so an acknowledged write survives) and the proxy
//! injects latency, 1-byte slicing, replies cut in their middle and cuts of
//! every connection. The work: an INCR ledger, a reliable queue (LPUSH,
//! BLMOVE to a processing list, LREM once done), BRPOP consumers killed and
//! timed out at random, pipelines, pub/sub, GET loops.
//!
//! At the end: every acknowledged INCR is counted (and at most the
//! ambiguous ones more); every item acknowledged into the reliable queue was
//! consumed exactly once or is still queued; every BRPOP item was consumed
//! at most once, and the ones missing are no more than the BRPOPs whose
//! connection was lost after they were sent (the reply in flight when the
//! server died or the proxy cut it: kills and timeouts lose nothing, the
//! reaper sees to that); no reply reached a caller that did not ask for it;
//! no descriptor or RSS growth; no coroutine left.
//!
//! The short form (12 s of chaos) runs in every `cargo test`; by hand:
//!
//! ```sh
//! SOAK_SECONDS=600 cargo test --release -p greenhub-tests --test chaos -- --nocapture
//! ```

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use greenhub_redis::prelude::*;
use greenhub_redis::{cmd, Client, Cmd, ConnectionInfo, PoolConfig, Value, WhenFull};
use greenhub_tests::{wait_until, Fault, FaultProxy, RedisServer, Rng};

const INCRS: usize = 400;
const QUEUE_PRODUCERS: usize = 150;
const QUEUE_CONSUMERS: usize = 150;
const BRPOP_PRODUCERS: usize = 100;
const BRPOP_VICTIMS: usize = 300;
const PIPELINES: usize = 300;
const SUBSCRIBERS: usize = 100;
const PUBLISHERS: usize = 10;
/// The rest of the 2,000 run GET loops.
const GETTERS: usize = 2000
    - INCRS
    - QUEUE_PRODUCERS
    - QUEUE_CONSUMERS
    - BRPOP_PRODUCERS
    - BRPOP_VICTIMS
    - PIPELINES
    - SUBSCRIBERS
    - PUBLISHERS
    - 1;

/// Item states, one byte per item `producer:seq` (a soak of minutes moves
/// millions; the ledger must not be what grows).
const ACKED: u8 = 1;
const MAYBE: u8 = 2;
const CONSUMED: u8 = 4;
const TWICE: u8 = 8;
/// Consumed, but its LREM from the processing list failed: it may still be
/// there (at-least-once, as the reliable-queue pattern says).
const UNACKED: u8 = 16;

#[derive(Default)]
struct Items(RefCell<Vec<Vec<u8>>>);

impl Items {
    fn new(producers: usize) -> Items {
        Items(RefCell::new(vec![Vec::new(); producers]))
    }
    fn mark(&self, producer: usize, seq: usize, flag: u8) {
        let mut all = self.0.borrow_mut();
        let states = &mut all[producer];
        if states.len() <= seq {
            states.resize(seq + 1, 0);
        }
        if flag == CONSUMED && states[seq] & CONSUMED != 0 {
            states[seq] |= TWICE;
        }
        states[seq] |= flag;
    }
    fn consumed(&self, item: &[u8]) -> Option<(usize, usize)> {
        let (p, s) = parse(item)?;
        self.mark(p, s, CONSUMED);
        Some((p, s))
    }
}

fn parse(item: &[u8]) -> Option<(usize, usize)> {
    let text = std::str::from_utf8(item).ok()?;
    let (p, s) = text.split_once(':')?;
    Some((p.parse().ok()?, s.parse().ok()?))
}

/// Counters of the run.
#[derive(Default, Debug)]
struct Counts {
    ops: Cell<u64>,
    errors: Cell<u64>,
    incr_acked: Cell<i64>,
    incr_ambiguous: Cell<i64>,
    brpop_lost_in_flight: Cell<u64>,
    kills: Cell<u64>,
    timeouts: Cell<u64>,
    messages: Cell<u64>,
    foreign_replies: Cell<u64>,
}

fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|r| r.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .unwrap()
        * 1024
}

fn q(redis: &mut Client, c: &Cmd) -> greenhub_redis::Result<Value> {
    redis.req_command(c)
}

#[test]
fn two_thousand_coroutines_through_kills_restarts_and_faults_lose_nothing_acknowledged() {
    let seconds: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let server = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let direct = server.url();
    let proxy = FaultProxy::start(server.addr());
    let url = proxy.url() + "?socket_timeout=2";
    // CHAOS_QUIET=1: the same work with no restarts and no proxy faults,
    // only kills and timeouts: then not one BRPOP item may go missing.
    let quiet = std::env::var("CHAOS_QUIET").is_ok_and(|v| v == "1");
    let stop = Arc::new(AtomicBool::new(false));
    let restarts = Arc::new(AtomicUsize::new(0));
    let faults = Arc::new(AtomicUsize::new(0));
    // The chaos: SIGKILL and restart every 2 to 4 s, and proxy faults in
    // between, from a plain thread (a restart blocks it, not the hub).
    let chaos = {
        let (stop, restarts, faults) = (stop.clone(), restarts.clone(), faults.clone());
        std::thread::spawn(move || {
            let (mut server, proxy) = (server, proxy);
            let mut rng = Rng::new(7);
            let mut next_kill =
                Instant::now() + Duration::from_millis(2000 + rng.below(2000) as u64);
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(100 + rng.below(300) as u64));
                if quiet {
                    continue;
                }
                if Instant::now() >= next_kill {
                    server.restart();
                    restarts.fetch_add(1, Ordering::SeqCst);
                    next_kill =
                        Instant::now() + Duration::from_millis(2000 + rng.below(2000) as u64);
                    continue;
                }
                let fault = match rng.below(5) {
                    0 => Fault::Latency(Duration::from_millis(5)),
                    1 => Fault::Slice,
                    2 => Fault::CutMidReply,
                    3 => {
                        proxy.cut_all();
                        Fault::None
                    }
                    _ => Fault::None,
                };
                faults.fetch_add(1, Ordering::SeqCst);
                proxy.set(fault);
                std::thread::sleep(Duration::from_millis(20 + rng.below(80) as u64));
                proxy.set(Fault::None);
            }
            proxy.set(Fault::None);
            (server, proxy)
        })
    };
    let (report, rest) = greenhub::run(move || {
        let fds_before = fds();
        let info = ConnectionInfo::from_url(&url).unwrap();
        let config = PoolConfig {
            max_connections: Some(1500),
            when_full: WhenFull::Wait(Some(Duration::from_secs(5))),
            ..PoolConfig::default()
        };
        let redis = Client::with_config(info, config);
        let mut setup = Client::open(&direct).unwrap();
        setup.set("fixed", "value").unwrap();
        let counts = Rc::new(Counts::default());
        let queue = Rc::new(Items::new(QUEUE_PRODUCERS));
        let brpops = Rc::new(Items::new(BRPOP_PRODUCERS));
        let running = Rc::new(Cell::new(true));
        let mut handles: Vec<greenhub::JoinHandle<()>> = Vec::new();
        let spawn = |handles: &mut Vec<greenhub::JoinHandle<()>>, f: Box<dyn FnOnce()>| {
            handles.push(greenhub::spawn(f));
        };
        for _ in 0..INCRS {
            let (mut redis, counts, running) = (redis.clone(), counts.clone(), running.clone());
            spawn(
                &mut handles,
                Box::new(move || {
                    while running.get() {
                        bump(&counts.ops);
                        match redis.incr("ledger") {
                            Ok(_) => counts.incr_acked.set(counts.incr_acked.get() + 1),
                            Err(err) if err.is_ambiguous() => {
                                counts.incr_ambiguous.set(counts.incr_ambiguous.get() + 1)
                            }
                            Err(_) => bump(&counts.errors),
                        }
                        greenhub::sleep(Duration::from_millis(5));
                    }
                }),
            );
        }
        for p in 0..QUEUE_PRODUCERS {
            let (mut redis, counts, running, queue) = (
                redis.clone(),
                counts.clone(),
                running.clone(),
                queue.clone(),
            );
            spawn(
                &mut handles,
                Box::new(move || {
                    let mut seq = 0;
                    while running.get() {
                        bump(&counts.ops);
                        match redis.lpush("rq", &[format!("{p}:{seq}")]) {
                            Ok(_) => queue.mark(p, seq, ACKED),
                            Err(err) if err.is_ambiguous() => queue.mark(p, seq, MAYBE),
                            Err(_) => bump(&counts.errors),
                        }
                        seq += 1;
                        greenhub::sleep(Duration::from_millis(20));
                    }
                }),
            );
        }
        for _ in 0..QUEUE_CONSUMERS {
            let (mut redis, counts, running, queue) = (
                redis.clone(),
                counts.clone(),
                running.clone(),
                queue.clone(),
            );
            spawn(
                &mut handles,
                Box::new(move || {
                    let blmove = cmd("BLMOVE")
                        .arg("rq")
                        .arg("processing")
                        .arg("RIGHT")
                        .arg("LEFT")
                        .arg(1)
                        .clone();
                    while running.get() {
                        bump(&counts.ops);
                        match q(&mut redis, &blmove) {
                            Ok(Value::Bulk(item)) => {
                                let Some((p, s)) = queue.consumed(&item) else {
                                    bump(&counts.foreign_replies);
                                    continue;
                                };
                                let lrem =
                                    cmd("LREM").arg("processing").arg(1).arg(&item[..]).clone();
                                if q(&mut redis, &lrem).is_err() {
                                    queue.mark(p, s, UNACKED);
                                }
                            }
                            Ok(Value::Nil) => {}
                            Ok(_) => bump(&counts.foreign_replies),
                            Err(_) => {
                                bump(&counts.errors);
                                greenhub::sleep(Duration::from_millis(20));
                            }
                        }
                    }
                }),
            );
        }
        for p in 0..BRPOP_PRODUCERS {
            let (mut redis, counts, running, brpops) = (
                redis.clone(),
                counts.clone(),
                running.clone(),
                brpops.clone(),
            );
            spawn(
                &mut handles,
                Box::new(move || {
                    let mut seq = 0;
                    while running.get() {
                        bump(&counts.ops);
                        match redis.lpush("bq", &[format!("{p}:{seq}")]) {
                            Ok(_) => brpops.mark(p, seq, ACKED),
                            Err(err) if err.is_ambiguous() => brpops.mark(p, seq, MAYBE),
                            Err(_) => bump(&counts.errors),
                        }
                        seq += 1;
                        greenhub::sleep(Duration::from_millis(30));
                    }
                }),
            );
        }
        // BRPOP victims, each under a random short timeout, and a killer
        // that kills one at random and starts another in its place.
        let victim = {
            let (redis, counts, running, brpops) = (
                redis.clone(),
                counts.clone(),
                running.clone(),
                brpops.clone(),
            );
            move |seed: u64| {
                let (mut redis, counts, running, brpops) = (
                    redis.clone(),
                    counts.clone(),
                    running.clone(),
                    brpops.clone(),
                );
                greenhub::spawn(move || {
                    let mut rng = Rng::new(seed);
                    while running.get() {
                        bump(&counts.ops);
                        let limit = Duration::from_millis(1 + rng.below(200) as u64);
                        match greenhub::timeout(limit, || redis.brpop(&["bq"], 1.0)) {
                            Err(_) => bump(&counts.timeouts),
                            Ok(Ok(Some((_, item)))) => {
                                if brpops.consumed(&item).is_none() {
                                    bump(&counts.foreign_replies);
                                }
                            }
                            Ok(Ok(None)) => {}
                            Ok(Err(err)) => {
                                if err.is_io() && err.is_ambiguous() {
                                    bump(&counts.brpop_lost_in_flight);
                                }
                                bump(&counts.errors);
                                greenhub::sleep(Duration::from_millis(20));
                            }
                        }
                    }
                })
            }
        };
        let killed: Rc<RefCell<Vec<greenhub::JoinHandle<()>>>> = Rc::default();
        let victims: Rc<RefCell<Vec<greenhub::JoinHandle<()>>>> = Rc::new(RefCell::new(
            (0..BRPOP_VICTIMS as u64).map(&victim).collect(),
        ));
        {
            let (victims, counts, running) = (victims.clone(), counts.clone(), running.clone());
            let killed = killed.clone();
            spawn(
                &mut handles,
                Box::new(move || {
                    let mut rng = Rng::new(99);
                    let mut seed = 10_000;
                    while running.get() {
                        greenhub::sleep(Duration::from_millis(1 + rng.below(10) as u64));
                        let i = rng.below(BRPOP_VICTIMS);
                        victims.borrow()[i].kill();
                        bump(&counts.kills);
                        seed += 1;
                        let fresh = victim(seed);
                        let old = std::mem::replace(&mut victims.borrow_mut()[i], fresh);
                        // Joined at the end: the killer does not wait for each.
                        killed.borrow_mut().push(old);
                    }
                }),
            );
        }
        for i in 0..PIPELINES {
            let (mut redis, counts, running) = (redis.clone(), counts.clone(), running.clone());
            spawn(
                &mut handles,
                Box::new(move || {
                    let mut n = 0u64;
                    while running.get() {
                        bump(&counts.ops);
                        n += 1;
                        let key = format!("p{i}");
                        let cmds = [
                            cmd("SET").arg(&key).arg(n).clone(),
                            cmd("GET").arg(&key).clone(),
                            cmd("ECHO").arg(format!("{i}:{n}")).clone(),
                        ];
                        match redis.req_pipeline(&cmds, false) {
                            // A restarted server answers LOADING until its
                            // data is back: an error, not another's reply.
                            Ok(replies) if replies.iter().any(|r| matches!(r, Value::Error(_))) => {
                                bump(&counts.errors)
                            }
                            Ok(replies) => {
                                let want = [
                                    Value::Status("OK".into()),
                                    Value::Bulk(n.to_string().into_bytes()),
                                    Value::Bulk(format!("{i}:{n}").into_bytes()),
                                ];
                                if replies != want {
                                    bump(&counts.foreign_replies);
                                }
                            }
                            Err(_) => bump(&counts.errors),
                        }
                        greenhub::sleep(Duration::from_millis(10));
                    }
                }),
            );
        }
        for _ in 0..SUBSCRIBERS {
            let (redis, counts, running) = (redis.clone(), counts.clone(), running.clone());
            spawn(
                &mut handles,
                Box::new(move || {
                    while running.get() {
                        let Ok(mut sub) = redis.pubsub() else {
                            bump(&counts.errors);
                            greenhub::sleep(Duration::from_millis(50));
                            continue;
                        };
                        if sub.subscribe(&["chaos"]).is_err() {
                            continue;
                        }
                        while running.get() {
                            match sub.get_message(Some(Duration::from_millis(200))) {
                                Ok(Some(message)) if message.kind != "message" => {}
                                Ok(Some(message)) => {
                                    if message.channel != b"chaos"
                                        || !message.text().starts_with("m")
                                    {
                                        bump(&counts.foreign_replies);
                                    }
                                    bump(&counts.messages);
                                }
                                Ok(None) => {}
                                Err(_) => {
                                    bump(&counts.errors);
                                    break;
                                }
                            }
                        }
                    }
                }),
            );
        }
        for i in 0..PUBLISHERS {
            let (mut redis, counts, running) = (redis.clone(), counts.clone(), running.clone());
            spawn(
                &mut handles,
                Box::new(move || {
                    let mut n = 0;
                    while running.get() {
                        bump(&counts.ops);
                        n += 1;
                        let publish = cmd("PUBLISH").arg("chaos").arg(format!("m{i}:{n}")).clone();
                        if q(&mut redis, &publish).is_err() {
                            bump(&counts.errors);
                        }
                        greenhub::sleep(Duration::from_millis(10));
                    }
                }),
            );
        }
        for _ in 0..GETTERS {
            let (mut redis, counts, running) = (redis.clone(), counts.clone(), running.clone());
            spawn(
                &mut handles,
                Box::new(move || {
                    while running.get() {
                        bump(&counts.ops);
                        match redis.get::<Option<String>>("fixed") {
                            Ok(Some(v)) if v == "value" => {}
                            Ok(_) => bump(&counts.foreign_replies),
                            Err(_) => bump(&counts.errors),
                        }
                        greenhub::sleep(Duration::from_millis(10));
                    }
                }),
            );
        }
        let start = Instant::now();
        let mut rss_mid = 0;
        while start.elapsed() < Duration::from_secs(seconds) {
            greenhub::sleep(Duration::from_millis(100));
            if rss_mid == 0 && start.elapsed() > Duration::from_secs(seconds) / 3 {
                rss_mid = rss();
            }
        }
        running.set(false);
        for handle in handles {
            handle.join().unwrap();
        }
        for victim in victims
            .borrow_mut()
            .drain(..)
            .chain(killed.borrow_mut().drain(..))
        {
            let _ = victim.join();
        }
        wait_until("the reapers finished", || {
            redis.pool().reaper_stats().running == 0
        });
        let reaper = redis.pool().reaper_stats();
        let pool = redis.stats();
        drop(redis);
        drop(victims);
        let alive = greenhub::stats().alive;
        (
            (
                counts,
                queue,
                brpops,
                reaper,
                pool,
                fds_before,
                rss_mid,
                start.elapsed(),
                alive,
            ),
            setup,
        )
    });
    stop.store(true, Ordering::SeqCst);
    let (server, proxy) = chaos.join().unwrap();
    let (counts, queue, brpops, reaper, pool, fds_before, rss_mid, elapsed, alive) = report;
    drop(rest);
    let direct = server.url();
    greenhub::run(move || {
        let mut redis = Client::open(&direct).unwrap();
        let ledger: i64 = redis.get::<Option<i64>>("ledger").unwrap().unwrap_or(0);
        let (acked, ambiguous) = (counts.incr_acked.get(), counts.incr_ambiguous.get());
        let left =
            |redis: &mut Client, key: &str| -> Vec<Vec<u8>> { redis.lrange(key, 0, -1).unwrap() };
        let (rq, processing, bq) = (
            left(&mut redis, "rq"),
            left(&mut redis, "processing"),
            left(&mut redis, "bq"),
        );
        // The reliable queue: every acknowledged item consumed exactly once
        // or still queued (in rq or processing).
        let mut queued = Items::new(QUEUE_PRODUCERS);
        for item in rq.iter().chain(&processing) {
            let (p, s) = parse(item).expect("a queue item");
            queued.mark(p, s, CONSUMED);
        }
        let (mut q_acked, mut q_consumed, mut q_still, mut q_lost, mut q_dup) = (0, 0, 0, 0, 0);
        for (states, in_queue) in queue.0.borrow().iter().zip(queued.0.get_mut().iter()) {
            for (seq, &state) in states.iter().enumerate() {
                let still = in_queue.get(seq).is_some_and(|s| s & CONSUMED != 0);
                let consumed = state & CONSUMED != 0;
                q_acked += usize::from(state & ACKED != 0);
                q_consumed += usize::from(consumed);
                q_still += usize::from(still && !consumed);
                if state & TWICE != 0 || (consumed && still && state & UNACKED == 0) {
                    q_dup += 1;
                }
                if state & ACKED != 0 && !consumed && !still {
                    q_lost += 1;
                }
            }
        }
        // The BRPOP queue: nothing consumed twice; missing items bounded by
        // the BRPOPs whose reply was lost in flight.
        let mut b_queued = Items::new(BRPOP_PRODUCERS);
        for item in &bq {
            let (p, s) = parse(item).expect("a bq item");
            b_queued.mark(p, s, CONSUMED);
        }
        let (mut b_acked, mut b_consumed, mut b_missing, mut b_dup) = (0, 0, 0, 0);
        for (states, in_queue) in brpops.0.borrow().iter().zip(b_queued.0.get_mut().iter()) {
            for (seq, &state) in states.iter().enumerate() {
                let still = in_queue.get(seq).is_some_and(|s| s & CONSUMED != 0);
                let consumed = state & CONSUMED != 0;
                b_acked += usize::from(state & ACKED != 0);
                b_consumed += usize::from(consumed);
                if state & TWICE != 0 || (consumed && still) {
                    b_dup += 1;
                }
                if state & ACKED != 0 && !consumed && !still {
                    b_missing += 1;
                }
            }
        }
        // The proxy closes its side of each connection as the client's
        // closes arrive: wait for that, then count.
        let mut fds_after = fds();
        let settle = Instant::now();
        while fds_after > fds_before + 8 && settle.elapsed() < Duration::from_secs(5) {
            greenhub::sleep(Duration::from_millis(20));
            fds_after = fds();
        }
        let rss_end = rss();
        println!(
            "chaos soak: {:.1} s, {} restarts, {} proxy faults; ops {}, errors {}, kills {}, timeouts {}, messages {}\n\
             INCR: acknowledged {acked}, ambiguous {ambiguous}, counter {ledger}\n\
             reliable queue: acknowledged {q_acked}, consumed {q_consumed}, still queued {q_still}, lost {q_lost}, duplicates {q_dup}\n\
             BRPOP queue: acknowledged {b_acked}, consumed {b_consumed}, missing {b_missing} (BRPOP replies lost in flight: {}), duplicates {b_dup}\n\
             reaper {reaper:?}\npool {pool:?}\nforeign replies {}; fds {fds_before} -> {fds_after}; RSS {} MiB at a third -> {} MiB at the end; coroutines alive {alive}",
            elapsed.as_secs_f64(),
            restarts.load(Ordering::SeqCst),
            faults.load(Ordering::SeqCst),
            counts.ops.get(),
            counts.errors.get(),
            counts.kills.get(),
            counts.timeouts.get(),
            counts.messages.get(),
            counts.brpop_lost_in_flight.get(),
            counts.foreign_replies.get(),
            rss_mid >> 20,
            rss_end >> 20,
        );
        assert!(
            ledger >= acked && ledger <= acked + ambiguous,
            "INCR {ledger} vs {acked} + {ambiguous}"
        );
        assert_eq!(q_lost, 0, "reliable-queue items lost");
        assert_eq!(q_dup, 0, "reliable-queue items consumed twice");
        assert_eq!(b_dup, 0, "BRPOP items consumed twice");
        // A BRPOP item is lost only in flight: popped, and the connection
        // lost before its reply was read, by the caller or by a reaper.
        let in_flight = counts.brpop_lost_in_flight.get() + reaper.closed as u64;
        assert!(
            b_missing as u64 <= in_flight,
            "BRPOP items missing beyond those lost in flight"
        );
        if quiet {
            assert_eq!(
                b_missing, 0,
                "with no connection lost, kills and timeouts lose nothing"
            );
        }
        assert_eq!(reaper.lost, 0, "{reaper:?}");
        assert_eq!(
            counts.foreign_replies.get(),
            0,
            "a reply reached a caller that did not ask for it"
        );
        assert_eq!(pool.in_use, 0, "{pool:?}");
        assert!(
            fds_after <= fds_before + 8,
            "descriptors {fds_before} -> {fds_after}"
        );
        assert!(
            rss_end <= rss_mid + (64 << 20),
            "RSS grew {} -> {} MiB",
            rss_mid >> 20,
            rss_end >> 20
        );
        assert_eq!(alive, 1, "only main is left");
        assert!(
            quiet || restarts.load(Ordering::SeqCst) >= 1,
            "the server was never restarted"
        );
    });
    drop((server, proxy));
}

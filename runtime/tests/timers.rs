//! Sleep and timers: order, rough accuracy, and many at once.

mod util;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use util::SLACK;

#[test]
fn sleepers_wake_in_deadline_order_not_spawn_order() {
    let order = greenhub::run(|| {
        let order = Rc::new(RefCell::new(Vec::new()));
        let handles: Vec<_> = [30u64, 10, 20, 0]
            .into_iter()
            .map(|ms| {
                let order = order.clone();
                greenhub::spawn(move || {
                    greenhub::sleep(Duration::from_millis(ms));
                    order.borrow_mut().push(ms);
                })
            })
            .collect();
        handles.into_iter().for_each(|h| h.join().unwrap());
        order.take()
    });
    assert_eq!(order, [0, 10, 20, 30]);
}

#[test]
fn a_sleep_is_never_early_and_only_loosely_late() {
    greenhub::run(|| {
        for ms in [1u64, 5, 20] {
            let wanted = Duration::from_millis(ms);
            let start = Instant::now();
            greenhub::sleep(wanted);
            let slept = start.elapsed();
            assert!(slept >= wanted, "woke after {slept:?}, before {wanted:?}");
            assert!(
                slept < wanted + SLACK,
                "woke after {slept:?}, wanted {wanted:?}"
            );
        }
    });
}

#[test]
fn ten_thousand_coroutines_sleeping_at_once_all_wake() {
    let (woken, stats_while_parked, stats_after) = greenhub::run(|| {
        let woken = Rc::new(RefCell::new(0usize));
        let handles: Vec<_> = (0..10_000u64)
            .map(|i| {
                let woken = woken.clone();
                greenhub::spawn(move || {
                    greenhub::sleep(Duration::from_millis(200 + i % 50));
                    *woken.borrow_mut() += 1;
                })
            })
            .collect();
        // yield_now queues main behind every fresh spawn: when it returns,
        // all 10,000 have run up to their sleep.
        greenhub::yield_now();
        let while_parked = greenhub::stats();
        handles.into_iter().for_each(|h| h.join().unwrap());
        let woken = *woken.borrow();
        (woken, while_parked, greenhub::stats())
    });
    assert_eq!(woken, 10_000);
    assert_eq!(stats_while_parked.parked_timer, 10_000);
    assert_eq!(stats_after.alive, 1, "only main is left");
    assert!(
        stats_after.stacks_pooled >= 10_000,
        "finished stacks wait in the pool"
    );
}

#[test]
fn yield_now_lets_the_others_run_first() {
    let order = greenhub::run(|| {
        let order = Rc::new(RefCell::new(Vec::new()));
        let other = {
            let order = order.clone();
            greenhub::spawn(move || order.borrow_mut().push("other"))
        };
        order.borrow_mut().push("main before");
        greenhub::yield_now();
        order.borrow_mut().push("main after");
        other.join().unwrap();
        order.take()
    });
    assert_eq!(order, ["main before", "other", "main after"]);
}

#[test]
fn outside_a_hub_sleep_blocks_the_thread_like_std() {
    let start = Instant::now();
    greenhub::sleep(Duration::from_millis(5));
    assert!(start.elapsed() >= Duration::from_millis(5));
}

/// Regression (found in review): `sleep(Duration::MAX)`, a common way to
/// write "forever", parked with no deadline; in `main` with nothing else
/// alive the hub reported a deadlock and the sleep swallowed it and
/// returned. The hub runs on a thread of its own, left asleep.
#[test]
fn a_sleep_of_duration_max_keeps_sleeping_instead_of_returning() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        greenhub::run(move || {
            greenhub::sleep(Duration::MAX);
            tx.send("sleep(Duration::MAX) returned").unwrap();
        })
    });
    let got = rx.recv_timeout(Duration::from_millis(500));
    assert!(got.is_err(), "{got:?}");
}

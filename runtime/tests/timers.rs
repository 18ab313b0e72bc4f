//! Sleep and timers: order, rough accuracy, and many at once.

mod util;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenhub::sync::Event;
use util::SLACK;

#[test]
fn sleepers_wake_in_deadline_order_not_spawn_order() {
    let order = greenhub::run(|| {
        let order = Rc::new(RefCell::new(Vec::new()));
        // Every deadline counts from one instant, 100 ms apart: a sleeper
        // that starts late (the thread was descheduled) still sleeps to its
        // own deadline, so only a stall of 100 ms before these four have
        // even started could reorder them.
        let start = Instant::now();
        let handles: Vec<_> = [300u64, 100, 200, 0]
            .into_iter()
            .map(|ms| {
                let order = order.clone();
                greenhub::spawn(move || {
                    let deadline = start + Duration::from_millis(ms);
                    greenhub::sleep(deadline.saturating_duration_since(Instant::now()));
                    order.borrow_mut().push(ms);
                })
            })
            .collect();
        handles.into_iter().for_each(|h| h.join().unwrap());
        order.take()
    });
    assert_eq!(order, [0, 100, 200, 300]);
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
        let (asleep, woken) = (Rc::new(Cell::new(0usize)), Rc::new(Cell::new(0usize)));
        let gate = Event::new();
        let nap = Rc::new(Cell::new(Duration::ZERO));
        let started = Instant::now();
        let handles: Vec<_> = (0..10_000u64)
            .map(|i| {
                let (asleep, woken) = (asleep.clone(), woken.clone());
                let (gate, nap) = (gate.clone(), nap.clone());
                greenhub::spawn(move || {
                    gate.wait().unwrap();
                    asleep.set(asleep.get() + 1);
                    greenhub::sleep(nap.get() + Duration::from_millis(i % 50));
                    woken.set(woken.get() + 1);
                })
            })
            .collect();
        // yield_now queues main behind every fresh spawn: when it returns,
        // all 10,000 wait at the gate, where nothing but `set` wakes them.
        greenhub::yield_now();
        assert_eq!(greenhub::stats().parked_other, 10_000);
        // The naps start at the gate. Bringing everyone from the gate to
        // sleep costs less than bringing them to the gate did, so a nap twice
        // that long, plus SLACK for a stall, cannot end before the last one
        // has fallen asleep, however slow the machine is today.
        nap.set(started.elapsed() * 2 + SLACK);
        gate.set();
        while asleep.get() < 10_000 {
            greenhub::yield_now();
        }
        let while_parked = greenhub::stats();
        assert_eq!(woken.get(), 0, "a nap ended before all had fallen asleep");
        handles.into_iter().for_each(|h| h.join().unwrap());
        (woken.get(), while_parked, greenhub::stats())
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

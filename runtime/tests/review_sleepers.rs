//! Review of the batched timer firing (`Timers::take_due`, 32 wakes at a
//! time) and the resume prefetch: what a batch of due timers does when the
//! coroutines woken in it act on each other, and a pair of workloads that
//! differ only in the size of their join states, for counting the resume
//! prefetch's cost under callgrind (it prefetches the whole join state,
//! result slot included, before every resume from the woken queue).

mod util;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenhub::sync::Event;
use greenhub::JoinError;

/// Sleepers due in one split, more than a batch of 32.
const SAME_DEADLINE: usize = 100;

/// Keeps the hub's thread busy without a park until `until`, so every
/// timer due before it fires in one `take_due` afterwards.
/// The caller yields first, so the coroutines it spawned have parked.
fn hold_the_hub_past(until: Instant) {
    greenhub::yield_now();
    std::thread::sleep(until.saturating_duration_since(Instant::now()));
}

#[test]
fn sleepers_taken_in_one_split_wake_once_each_in_deadline_order() {
    let order = greenhub::run(|| {
        let order = Rc::new(RefCell::new(Vec::new()));
        let start = Instant::now() + Duration::from_millis(20);
        let handles: Vec<_> = (0..SAME_DEADLINE)
            .map(|i| {
                let order = order.clone();
                // 100 us apart: `sleep` adds its duration to its own
                // `Instant::now()`, so only spacing orders them.
                let deadline = start + Duration::from_micros(100 * i as u64);
                greenhub::spawn(move || {
                    greenhub::sleep(deadline.saturating_duration_since(Instant::now()));
                    order.borrow_mut().push(i);
                    assert!(Instant::now() >= deadline, "woken early");
                })
            })
            .collect();
        hold_the_hub_past(start + Duration::from_millis(30));
        for handle in handles {
            handle.join().unwrap();
        }
        order.take()
    });
    assert_eq!(order, (0..SAME_DEADLINE).collect::<Vec<_>>());
}

#[test]
fn the_first_woken_of_a_batch_kills_the_rest_and_they_unwind_not_run_on() {
    let (ran_on, killed) = greenhub::run(|| {
        let ran_on = Rc::new(Cell::new(0usize));
        let deadline = Instant::now() + Duration::from_millis(20);
        let handles: Rc<RefCell<Vec<greenhub::JoinHandle<()>>>> = Rc::default();
        let killer = {
            let handles = handles.clone();
            greenhub::spawn(move || {
                let early = deadline - Duration::from_millis(5);
                greenhub::sleep(early.saturating_duration_since(Instant::now()));
                for handle in handles.borrow().iter() {
                    handle.kill();
                }
            })
        };
        for _ in 0..SAME_DEADLINE {
            let ran_on = ran_on.clone();
            // Due after the killer, but taken in the same split: the hub
            // is held past both deadlines, so none runs before it.
            handles.borrow_mut().push(greenhub::spawn(move || {
                greenhub::sleep(deadline.saturating_duration_since(Instant::now()));
                ran_on.set(ran_on.get() + 1);
            }));
        }
        hold_the_hub_past(deadline + Duration::from_millis(10));
        killer.join().unwrap();
        let killed = handles
            .take()
            .into_iter()
            .map(greenhub::JoinHandle::join)
            .filter(|outcome| matches!(outcome, Err(JoinError::Killed)))
            .count();
        (ran_on.get(), killed)
    });
    assert_eq!(ran_on, 0, "a sleeper killed after its timer wake ran on");
    assert_eq!(killed, SAME_DEADLINE);
}

#[test]
fn a_waiter_whose_timer_fired_in_the_setters_batch_sees_the_set_after() {
    let (finished, rewaits) = greenhub::run(|| {
        let event = Event::new();
        let deadline = Instant::now() + Duration::from_millis(20);
        // The setter's timer is first in the batch; every waiter's is due
        // in the same one, so each was woken by its timer before the set.
        let setter = {
            let event = event.clone();
            greenhub::spawn(move || {
                greenhub::sleep(deadline.saturating_duration_since(Instant::now()));
                event.set();
            })
        };
        let waiters: Vec<_> = (0..SAME_DEADLINE)
            .map(|_| {
                let event = event.clone();
                greenhub::spawn(move || {
                    let _ = event.wait_timeout(deadline.saturating_duration_since(Instant::now()));
                    // Whatever the first wait said, a second one must see
                    // the set event.
                    event.wait_timeout(Duration::from_secs(5)).is_ok()
                })
            })
            .collect();
        setter.join().unwrap();
        let results: Vec<_> = waiters.into_iter().map(|h| h.join().unwrap()).collect();
        let rewaits = results.iter().filter(|ok| **ok).count();
        (results.len(), rewaits)
    });
    assert_eq!(finished, SAME_DEADLINE);
    assert_eq!(rewaits, SAME_DEADLINE, "a wait after the set saw it");
}

#[test]
fn sleepers_that_sleep_again_from_a_batch_fire_in_a_later_round() {
    let rounds = greenhub::run(|| {
        let rounds = Rc::new(Cell::new(0usize));
        let deadline = Instant::now() + Duration::from_millis(10);
        let handles: Vec<_> = (0..SAME_DEADLINE)
            .map(|_| {
                let rounds = rounds.clone();
                greenhub::spawn(move || {
                    greenhub::sleep(deadline.saturating_duration_since(Instant::now()));
                    // A new timer while the batch that woke us is still
                    // being handed out: due at once, never lost.
                    greenhub::sleep(Duration::from_micros(1));
                    greenhub::sleep(Duration::from_millis(1));
                    rounds.set(rounds.get() + 1);
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        rounds.get()
    });
    assert_eq!(rounds, SAME_DEADLINE);
}

/// Rounds of `BIG` coroutines whose result is `BYTES` long (their join
/// states hold a slot that size), all woken together by one `Event` per
/// round: the hub resumes them from its woken queue back to back, and
/// prefetches each next one's join state while the one before runs.
/// Returns the rounds every coroutine went through.
fn rounds<const BYTES: usize>() -> usize {
    // Spawning builds the join state on the spawner's stack first: spawn
    // from a coroutine with room for it. An unoptimised build copies the
    // result through several frames on its way to the join state, so each
    // stack has room for many copies of it (four were too few in debug).
    greenhub::run(|| {
        greenhub::Builder::new()
            .stack_size(16 * BYTES + 256 * 1024)
            .spawn(rounds_body::<BYTES>)
            .unwrap()
            .join()
            .unwrap()
    })
}

fn rounds_body<const BYTES: usize>() -> usize {
    const BIG: usize = 16;
    const ROUNDS: usize = 200;
    let events: Rc<Vec<Event>> = Rc::new((0..ROUNDS).map(|_| Event::new()).collect());
    let seen = Rc::new(Cell::new(0usize));
    let handles: Vec<_> = (0..BIG)
        .map(|_| {
            let (events, seen) = (events.clone(), seen.clone());
            greenhub::Builder::new()
                .stack_size(16 * BYTES + 256 * 1024)
                .spawn(move || {
                    for event in events.iter() {
                        event.wait().unwrap();
                        seen.set(seen.get() + 1);
                    }
                    [1u8; BYTES]
                })
                .unwrap()
        })
        .collect();
    for event in events.iter() {
        greenhub::yield_now();
        event.set();
    }
    for handle in &handles {
        // `wait`, not `join`: the value stays in the join state.
        assert!(handle.wait().is_ok());
    }
    seen.get() / BIG
}

/// With `rounds_with_a_large_result`, for callgrind: the two differ only
/// in the size of the woken coroutines' result.
#[test]
fn rounds_with_a_small_result() {
    assert_eq!(rounds::<8>(), 200);
}

#[test]
fn rounds_with_a_large_result() {
    assert_eq!(rounds::<{ 256 * 1024 }>(), 200);
}

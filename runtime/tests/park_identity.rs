//! Every park ends by retiring its identity, whatever path it took: a wake
//! source that still holds the waiter of an ended park (a helper job, a
//! remote channel) can never wake a later park of the same coroutine
//! (regression: `timeout(ZERO, || unblock(slow))` then another `unblock`
//! returned "woken before the helper thread finished").

use std::time::Duration;

#[test]
fn an_unblock_cut_by_an_expired_timeout_does_not_wake_the_next_unblock() {
    let (first, second) = greenhub::run(|| {
        let first = greenhub::timeout(Duration::ZERO, || {
            greenhub::unblock(|| std::thread::sleep(Duration::from_millis(30)))
        });
        let second = greenhub::unblock(|| {
            std::thread::sleep(Duration::from_millis(100));
            "second"
        });
        (first.is_err(), second.map_err(|e| e.to_string()))
    });
    assert!(first, "the zero timeout cut the first wait");
    assert_eq!(second, Ok("second"));
}

#[test]
fn an_unblock_cut_mid_wait_does_not_wake_the_next_unblock() {
    let second = greenhub::run(|| {
        let cut = greenhub::timeout(Duration::from_millis(5), || {
            greenhub::unblock(|| std::thread::sleep(Duration::from_millis(40)))
        });
        assert!(cut.is_err());
        greenhub::unblock(|| {
            std::thread::sleep(Duration::from_millis(100));
            42
        })
        .map_err(|e| e.to_string())
    });
    assert_eq!(second, Ok(42));
}

#[test]
fn a_remote_receive_cut_by_an_expired_timeout_does_not_wake_the_next_sleep() {
    let slept_fully = greenhub::run(|| {
        let (tx, rx) = greenhub::sync::remote_channel::<u32>();
        let cut = greenhub::timeout(Duration::ZERO, || rx.recv());
        assert!(cut.is_err() || matches!(cut, Ok(Err(_))));
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            tx.send(1).unwrap();
        });
        let start = std::time::Instant::now();
        greenhub::sleep(Duration::from_millis(60));
        let slept = start.elapsed();
        sender.join().unwrap();
        slept >= Duration::from_millis(60)
    });
    assert!(slept_fully, "a stale remote wake ended the sleep early");
}

#[test]
fn a_sleep_with_a_past_deadline_leaves_no_timer_behind() {
    let timers = greenhub::run(|| {
        for _ in 0..100 {
            let _ = greenhub::timeout(Duration::ZERO, || greenhub::sleep(Duration::from_secs(1)));
        }
        greenhub::stats().timers
    });
    assert_eq!(timers, 0);
}

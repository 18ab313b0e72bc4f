//! Other OS threads reaching a hub: spawning onto it, waking it, sending to
//! a coroutine. The hub's own thread never blocks.

use std::time::Duration;

use greenhub::sync::{remote_channel, ChannelError};

#[test]
fn another_thread_spawns_work_onto_the_hub_and_sends_it_values() {
    let (sum, ran_on) = greenhub::run(|| {
        let hub_thread = std::thread::current().id();
        let handle = greenhub::handle();
        let (tx, rx) = remote_channel();
        let worker = std::thread::spawn(move || {
            let reply = tx.clone();
            handle
                .spawn(move || {
                    let on_hub = std::thread::current().id();
                    reply.send((0, Some(on_hub))).unwrap();
                })
                .unwrap();
            for n in 1..=100 {
                tx.send((n, None)).unwrap();
                if n % 10 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
        let mut sum = 0;
        let mut ran_on = None;
        while let Ok((n, thread)) = rx.recv() {
            sum += n;
            ran_on = ran_on.or(thread);
        }
        worker.join().unwrap();
        (sum, ran_on == Some(hub_thread))
    });
    assert_eq!(sum, 5050, "every value arrived, then the channel closed");
    assert!(ran_on, "the spawned closure ran on the hub's thread");
}

#[test]
fn a_live_handle_is_not_a_deadlock_and_a_dropped_one_is_noticed() {
    greenhub::run(|| {
        let (tx, rx) = remote_channel::<u8>();
        let (parked_tx, parked) = std::sync::mpsc::channel();
        let sender = std::thread::spawn(move || {
            // Send only once main is parked in recv (a hand-off, not a
            // guess), and a little later still, so the hub has gone idle.
            parked.recv().unwrap();
            std::thread::sleep(Duration::from_millis(30));
            tx.send(1).unwrap();
            // tx drops here: the receiver then sees Closed.
        });
        // Spawned coroutines first run when main parks: this one says so.
        greenhub::spawn(move || parked_tx.send(()).unwrap());
        assert_eq!(
            rx.recv(),
            Ok(1),
            "main parked with only another thread to wake it"
        );
        assert_eq!(rx.recv(), Err(ChannelError::Closed));
        sender.join().unwrap();
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(1)),
            Err(ChannelError::Closed)
        );
    });
}

#[test]
fn spawning_onto_a_finished_hub_is_a_clear_error() {
    let handle = greenhub::run(greenhub::handle);
    let err = handle.spawn(|| ()).unwrap_err();
    assert_eq!(err.to_string(), "the hub has shut down");
    assert!(!handle.is_open());
}

#[test]
fn a_sender_outliving_its_receiver_gets_its_value_back() {
    let tx = greenhub::run(|| {
        let (tx, rx) = remote_channel::<&str>();
        drop(rx);
        tx
    });
    assert_eq!(tx.send("lost?"), Err("lost?"));
}

/// Regression: the last remote sender posted a wake and dropped its handle;
/// the hub, seeing no handle and nothing runnable, called it a deadlock
/// before draining the wake from its inbox.
#[test]
fn a_wake_posted_by_the_last_remote_sender_is_not_taken_for_a_deadlock() {
    let got = greenhub::run(|| {
        let (tx, rx) = remote_channel();
        greenhub::spawn(move || tx.send(5).unwrap());
        rx.recv()
    });
    assert_eq!(got, Ok(5));
}

/// Regression: a `RemoteReceiver` moved to another hub registered its
/// waiter with the hub that created it, and `recv_timeout` timed out with a
/// value queued.
#[test]
fn a_remote_receiver_moved_to_another_hub_is_woken_there() {
    let (tx_out, rx_out) = std::sync::mpsc::channel();
    let creator = std::thread::spawn(move || {
        greenhub::run(move || {
            let (tx, rx) = remote_channel::<&'static str>();
            tx_out.send((tx, rx)).unwrap();
        })
    });
    let (tx, rx) = rx_out.recv().unwrap();
    creator.join().unwrap();
    let receiver = std::thread::spawn(move || {
        greenhub::run(move || {
            let sender = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                tx.send("across hubs").unwrap();
            });
            let got = rx.recv_timeout(Duration::from_secs(10));
            sender.join().unwrap();
            got
        })
    });
    assert_eq!(receiver.join().unwrap(), Ok("across hubs"));
}

/// Regression: the receiver held one waiter, so of two coroutines waiting
/// on one receiver, one lost its wake.
#[test]
fn two_coroutines_waiting_on_one_remote_receiver_both_get_a_value() {
    let mut got = greenhub::run(|| {
        let (tx, rx) = remote_channel::<u32>();
        let rx = std::rc::Rc::new(rx);
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let rx = rx.clone();
                greenhub::spawn(move || rx.recv_timeout(Duration::from_secs(10)))
            })
            .collect();
        greenhub::yield_now(); // both parked
        let sender = std::thread::spawn(move || {
            tx.send(1).unwrap();
            tx.send(2).unwrap();
        });
        let got: Vec<u32> = waiters
            .into_iter()
            .map(|w| w.join().unwrap().unwrap())
            .collect();
        sender.join().unwrap();
        got
    });
    got.sort();
    assert_eq!(got, [1, 2]);
}

/// A burst of posts from another thread, far more than the poller's event
/// batch: every one arrives, in order (the inbox wakes the hub once per
/// drain, not once per post).
#[test]
fn a_hundred_thousand_remote_messages_all_arrive_in_order() {
    let last = greenhub::run(|| {
        let (tx, rx) = remote_channel::<u32>();
        let sender = std::thread::spawn(move || {
            for n in 0..100_000 {
                tx.send(n).unwrap();
            }
        });
        let mut expected = 0;
        while let Ok(n) = rx.recv() {
            assert_eq!(n, expected);
            expected += 1;
        }
        sender.join().unwrap();
        expected
    });
    assert_eq!(last, 100_000);
}

/// Regression (found in review): the body of a coroutine sent with
/// `Handle::spawn` ran its closure even when shutdown had killed it before
/// its first run. Here main's timer and the remote spawn are taken in the
/// same service step; main runs first and returns, and shutdown kills the
/// remote coroutine before it starts.
#[test]
fn a_remote_spawn_killed_before_its_first_run_never_runs_its_closure() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    greenhub::run(move || {
        let handle = greenhub::handle();
        // Blocks the hub for 5 ms, so main's 1 ms timer is due at the same
        // service step whose poll takes the remote spawn: main is queued on
        // the woken queue, the remote coroutine on the fresh one, and main
        // runs (and returns) first.
        greenhub::spawn(|| std::thread::sleep(Duration::from_millis(5)));
        handle
            .spawn(move || flag.store(true, Ordering::SeqCst))
            .unwrap();
        drop(handle);
        greenhub::sleep(Duration::from_millis(1));
    });
    assert!(
        !ran.load(Ordering::SeqCst),
        "the remote closure ran although shutdown killed it before its first run"
    );
}

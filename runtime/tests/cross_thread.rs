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

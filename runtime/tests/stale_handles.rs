//! Handles carry their hub's identity: a `JoinHandle`, a socket or a sync
//! primitive kept from one `run` never reaches into the next `run` on the
//! same thread (regressions: a kept handle killed an unrelated coroutine, a
//! kept socket unregistered another socket when dropped).

use std::io::{Read, Write};
use std::time::Duration;

use greenhub::net::UnixStream;

#[test]
fn a_join_handle_kept_from_an_earlier_run_kills_nothing_in_the_next() {
    let old = greenhub::run(|| {
        let sleeper = greenhub::spawn(|| greenhub::sleep(Duration::from_secs(3600)));
        greenhub::yield_now();
        sleeper // killed when this run ends
    });
    let (victim, old_outcome, hubs_differ) = greenhub::run(move || {
        let victim = greenhub::spawn(|| {
            greenhub::sleep(Duration::from_millis(20));
            7
        });
        greenhub::yield_now();
        old.kill(); // the same key as `victim`, from another hub
        let hubs_differ = Some(old.hub_id()) != greenhub::hub_id();
        (victim.join(), old.join(), hubs_differ)
    });
    assert_eq!(victim, Ok(7));
    assert_eq!(old_outcome, Err(greenhub::JoinError::Killed));
    assert!(hubs_differ);
}

#[test]
fn a_socket_kept_from_an_earlier_run_neither_works_nor_breaks_the_next_runs_sockets() {
    let (old_a, old_b) = greenhub::run(|| UnixStream::pair().unwrap());
    let (echoed, misuse) = greenhub::run(move || {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        drop(old_a); // deregisters from its own (finished) hub only
        let mut old_b = old_b;
        let misuse = old_b
            .read(&mut [0; 1])
            .map_err(|e| e.to_string())
            .unwrap_err();
        a.write_all(b"ping").unwrap();
        b.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = [0; 4];
        b.read_exact(&mut got).unwrap();
        (got, misuse)
    });
    assert_eq!(&echoed, b"ping");
    assert!(misuse.contains("another hub"), "{misuse}");
}

#[test]
fn an_event_kept_from_an_earlier_run_wakes_nobody_in_the_next() {
    let event = greenhub::sync::Event::new();
    let kept = event.clone();
    greenhub::run(move || {
        let waiter = {
            let kept = kept.clone();
            greenhub::spawn(move || kept.wait())
        };
        greenhub::yield_now();
        drop(waiter); // killed at the end of this run, leaving the queue
    });
    let outcome = greenhub::run(move || {
        let sleeper = greenhub::spawn(|| {
            greenhub::sleep(Duration::from_millis(20));
            "slept"
        });
        greenhub::yield_now();
        event.set(); // nobody of this hub waits on it
        sleeper.join()
    });
    assert_eq!(outcome, Ok("slept"));
}

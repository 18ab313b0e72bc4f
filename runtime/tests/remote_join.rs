//! `Handle::spawn` returns a handle that joins from another thread, and
//! `run` takes a `main` that borrows from its caller.

use std::sync::mpsc;
use std::time::Duration;

use greenhub::sync::remote_channel;
use greenhub::{Handle, JoinError};

/// Starts a hub on a thread of its own; returns its handle and a sender
/// that ends it.
fn hub_thread() -> (Handle, mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (handle_tx, handle_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        greenhub::run(move || {
            handle_tx.send(greenhub::handle()).unwrap();
            // Wait for the stop word without blocking the hub.
            greenhub::unblock(move || stop_rx.recv()).unwrap().ok();
        })
    });
    (handle_rx.recv().unwrap(), stop_tx, thread)
}

#[test]
fn a_plain_thread_blocks_until_the_remote_coroutine_returns() {
    let (handle, stop, thread) = hub_thread();
    let job = handle
        .spawn(|| {
            greenhub::sleep(Duration::from_millis(5));
            greenhub::current().map(|c| c.to_string())
        })
        .unwrap();
    assert_eq!(job.join(), Ok(Some("remote".to_owned())));
    let panicked = handle.spawn(|| -> u8 { panic!("remote boom") }).unwrap();
    assert!(matches!(panicked.join(), Err(JoinError::Panicked(m)) if m.contains("remote boom")));
    drop(handle);
    stop.send(()).unwrap();
    thread.join().unwrap();
}

#[test]
fn a_coroutine_of_another_hub_parks_on_the_join_while_its_own_hub_runs() {
    let (handle_a, stop_a, thread_a) = hub_thread();
    let answer = greenhub::run(move || {
        // The job on hub A can finish only after a coroutine of this hub
        // (B) has run and sent it a word: so B's join must have parked.
        let (word_tx, word_rx) = remote_channel::<&'static str>();
        let job = handle_a.spawn(move || word_rx.recv().unwrap()).unwrap();
        greenhub::spawn(move || {
            greenhub::sleep(Duration::from_millis(2));
            word_tx.send("from hub B").unwrap();
        });
        let answer = job.join();
        drop(handle_a);
        answer
    });
    assert_eq!(answer, Ok("from hub B"));
    stop_a.send(()).unwrap();
    thread_a.join().unwrap();
}

#[test]
fn a_remote_coroutine_killed_by_its_hubs_shutdown_joins_as_killed() {
    let (handle_tx, handle_rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        greenhub::run(move || {
            handle_tx.send(greenhub::handle()).unwrap();
            // Return once the remote coroutine is alive: shutdown kills it.
            while greenhub::stats().alive < 2 {
                greenhub::sleep(Duration::from_millis(1));
            }
        })
    });
    let handle = handle_rx.recv().unwrap();
    let job = handle
        .spawn(|| greenhub::sleep(Duration::from_secs(60)))
        .unwrap();
    drop(handle);
    assert_eq!(job.join(), Err(JoinError::Killed));
    thread.join().unwrap();
}

#[test]
fn join_timeout_gives_up_and_the_coroutine_goes_on() {
    let (handle, stop, thread) = hub_thread();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let job = handle
        .spawn(move || {
            greenhub::unblock(move || go_rx.recv())
                .unwrap()
                .map(|()| "went")
        })
        .unwrap();
    assert_eq!(
        job.join_timeout(Duration::from_millis(10)),
        Err(JoinError::TimedOut)
    );
    go_tx.send(()).unwrap();
    assert_eq!(job.join(), Ok(Ok("went")));
    drop((handle, go_tx));
    stop.send(()).unwrap();
    thread.join().unwrap();
}

#[test]
fn run_takes_a_main_that_borrows_from_its_caller() {
    let mut total = 0;
    let words = vec!["one".to_owned(), "three".to_owned()];
    let longest: &str = greenhub::run(|| {
        for word in &words {
            greenhub::yield_now();
            total += word.len();
        }
        words.iter().max_by_key(|w| w.len()).unwrap().as_str()
    });
    assert_eq!(longest, "three");
    assert_eq!(total, 8);
}

#[test]
fn a_borrowing_main_that_panics_propagates_its_panic() {
    let label = String::from("borrowed");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        greenhub::run(|| -> usize { panic!("{} main failed", label) })
    }));
    let payload = result.unwrap_err();
    let message = payload.downcast_ref::<String>().unwrap();
    assert_eq!(message, "borrowed main failed");
}

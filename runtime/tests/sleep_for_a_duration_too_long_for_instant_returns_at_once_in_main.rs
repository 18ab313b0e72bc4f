//! `sleep(d)` "parks the running coroutine for d". For a `d` that
//! `Instant::checked_add` cannot represent (`Duration::MAX`, as people write
//! for "forever"), `timer.rs` parks with no deadline at all; in `main`, with
//! nothing else alive, the hub then reports a deadlock, and `sleep`'s loop
//! (`while park(..) == Notified {}`) swallows `Outcome::Deadlock` and simply
//! returns. So `sleep(Duration::MAX)` in `main` returns at once, silently,
//! where `timeout(Duration::MAX, ..)` (which uses a far-future instant) does
//! not. The hub runs on its own thread here so a correct runtime (one that
//! keeps sleeping) leaves that thread parked instead of hanging the test.

use std::sync::mpsc;
use std::time::Duration;

#[test]
fn sleep_for_a_duration_too_long_for_instant_returns_at_once_in_main() {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        greenhub::run(move || {
            greenhub::sleep(Duration::MAX);
            tx.send("sleep(Duration::MAX) returned").unwrap();
        })
    });
    let got = rx.recv_timeout(Duration::from_millis(500));
    assert!(got.is_err(), "{got:?}");
}

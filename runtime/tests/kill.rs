//! `kill`: the target unwinds at its park, its destructors run, and `join`
//! reports `Killed`; when `main` returns, the survivors are killed the same way.

mod util;

use std::cell::RefCell;
use std::io::Read;
use std::rc::Rc;
use std::time::Duration;

use greenhub::net::UnixStream;
use greenhub::JoinError;
use util::{journal, DropFlag};

#[test]
fn a_coroutine_parked_on_a_read_unwinds_when_killed() {
    let dropped = journal();
    let seen = dropped.clone();
    greenhub::run(move || {
        let reader = greenhub::spawn(move || {
            let _guard = DropFlag(seen, "reader");
            let (mut quiet, _peer) = UnixStream::pair().unwrap();
            let _ = quiet.read(&mut [0u8; 8]);
            unreachable!("a killed read does not return");
        });
        // yield_now runs the reader first, up to its park on the read.
        greenhub::yield_now();
        assert_eq!(greenhub::stats().parked_io, 1);
        reader.kill();
        assert_eq!(reader.join(), Err(JoinError::Killed));
        assert_eq!(
            greenhub::stats().sockets,
            0,
            "the unwinding closed the sockets"
        );
    });
    assert_eq!(*dropped.borrow(), ["reader"]);
}

#[test]
fn a_coroutine_parked_in_sleep_or_join_unwinds_when_killed() {
    let dropped = journal();
    let seen = dropped.clone();
    greenhub::run(move || {
        let sleeper = {
            let seen = seen.clone();
            greenhub::spawn(move || {
                let _guard = DropFlag(seen, "sleeper");
                greenhub::sleep(Duration::from_secs(3600));
            })
        };
        let joiner = greenhub::spawn(move || {
            let _guard = DropFlag(seen, "joiner");
            let forever = greenhub::spawn(|| greenhub::sleep(Duration::from_secs(3600)));
            let _ = forever.join();
        });
        // Both run up to their parks before main continues.
        greenhub::yield_now();
        sleeper.kill();
        joiner.kill();
        assert_eq!(sleeper.join(), Err(JoinError::Killed));
        assert_eq!(joiner.join(), Err(JoinError::Killed));
    });
    assert_eq!(*dropped.borrow(), ["sleeper", "joiner"]);
}

#[test]
fn a_coroutine_killed_before_it_starts_never_runs() {
    let ran = greenhub::run(|| {
        let ran = std::rc::Rc::new(std::cell::Cell::new(false));
        let flag = ran.clone();
        let never = greenhub::spawn(move || flag.set(true));
        never.kill();
        assert_eq!(never.join(), Err(JoinError::Killed));
        ran.get()
    });
    assert!(!ran);
}

#[test]
fn a_killed_coroutine_cannot_park_while_unwinding() {
    let dropped = journal();
    let seen = dropped.clone();
    greenhub::run(move || {
        struct SleepsOnDrop(#[allow(dead_code)] DropFlag);
        impl Drop for SleepsOnDrop {
            fn drop(&mut self) {
                // Parking during an unwind is refused: the sleep ends at once.
                greenhub::sleep(Duration::from_secs(3600));
            }
        }
        let victim = greenhub::spawn(move || {
            let _guard = SleepsOnDrop(DropFlag(seen, "victim"));
            greenhub::sleep(Duration::from_secs(3600));
        });
        greenhub::yield_now();
        victim.kill();
        assert_eq!(victim.join(), Err(JoinError::Killed));
    });
    assert_eq!(*dropped.borrow(), ["victim"]);
}

#[test]
fn when_main_returns_the_survivors_are_killed_and_unwound() {
    let dropped = journal();
    let seen = dropped.clone();
    let value = greenhub::run(move || {
        for name in ["a", "b"] {
            let seen = seen.clone();
            greenhub::spawn(move || {
                let _guard = DropFlag(seen, name);
                greenhub::sleep(Duration::from_secs(3600));
            });
        }
        let seen = seen.clone();
        greenhub::spawn(move || {
            let _guard = DropFlag(seen, "never started");
        });
        greenhub::sleep(Duration::from_millis(1));
        "main's value"
    });
    assert_eq!(value, "main's value");
    let mut dropped = dropped.take();
    dropped.sort();
    assert_eq!(dropped, ["a", "b", "never started"]);
}

/// Regression: a kill before the first run dropped the closure outside the
/// trampoline's `catch_unwind`; a `Drop` in it that parked sent the kill
/// signal out of the coroutine, and `join` reported a false deadlock.
#[test]
fn a_kill_before_the_first_run_of_a_closure_whose_drop_parks_is_a_clean_kill() {
    struct SleepsOnDrop(Rc<RefCell<Vec<&'static str>>>);
    impl Drop for SleepsOnDrop {
        fn drop(&mut self) {
            self.0.borrow_mut().push("dropped");
            // The coroutine is killed: this park unwinds the drop at once.
            greenhub::sleep(Duration::from_secs(3600));
            self.0.borrow_mut().push("slept");
        }
    }
    let log = util::journal();
    let seen = log.clone();
    let outcome = greenhub::run(move || {
        let guard = SleepsOnDrop(seen);
        let victim = greenhub::spawn(move || {
            let _guard = guard;
            "ran"
        });
        victim.kill();
        victim.join()
    });
    assert_eq!(outcome, Err(greenhub::JoinError::Killed));
    assert_eq!(*log.borrow(), ["dropped"]);
}

/// A kill while the victim is woken but not yet resumed unwinds it when its
/// turn comes, and the value it was woken for is passed on.
#[test]
fn a_kill_while_woken_unwinds_and_passes_the_wake_on() {
    let (first, second) = greenhub::run(|| {
        let channel = greenhub::sync::Channel::<u32>::unbounded();
        let victim = {
            let channel = channel.clone();
            greenhub::spawn(move || channel.recv())
        };
        let other = {
            let channel = channel.clone();
            greenhub::spawn(move || channel.recv())
        };
        greenhub::yield_now(); // both parked, victim first
        channel.send(1).unwrap(); // wakes the victim
        victim.kill(); // before it runs
        (victim.join().map(|_| ()), other.join().unwrap())
    });
    assert_eq!(first, Err(greenhub::JoinError::Killed));
    assert_eq!(second, Ok(1));
}

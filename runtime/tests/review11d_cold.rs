//! Review 11d (cold reviewer): 36eb880 and the Event/select parts of
//! f1ebe86 (Event set counting, select event arms counting sets during the
//! wait, the unblock resumed-panic line). Public API only; stderr checks run
//! in a child process (this binary re-run with `REVIEW11D_CHILD=<name>`).

mod util;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use greenhub::select::Select;
use greenhub::sync::{Channel, Event, WaitError};

const CHILD: &str = "REVIEW11D_CHILD";
const HANG: Duration = Duration::from_secs(3);

/// Lets every runnable coroutine run (and park) a few times.
fn settle() {
    for _ in 0..5 {
        greenhub::yield_now();
    }
}

// ---------------------------------------------------------------------------
// Event

/// A timed waiter whose timer has expired but who has not run yet, when set
/// is called: it returns TimedOut although the flag is set as it returns
/// (Python's Event.wait returns the flag on exit; the doc claims Python's
/// semantics and "parks until the flag is set").
#[test]
fn a_timed_wait_that_returns_with_the_flag_set_is_not_timed_out() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    greenhub::run(|| {
        let ev = Event::new();
        type Seen = Option<(Result<(), WaitError>, bool)>;
        let seen: Rc<RefCell<Seen>> = Rc::default();
        let w = {
            let (ev, seen) = (ev.clone(), seen.clone());
            greenhub::spawn(move || {
                let r = ev.wait_timeout(Duration::from_millis(20));
                *seen.borrow_mut() = Some((r, ev.is_set()));
            })
        };
        settle(); // w parks
        std::thread::sleep(Duration::from_millis(60)); // its timer expires, unseen
        greenhub::yield_now(); // the hub sees the expired timer
        ev.set();
        greenhub::timeout(HANG, || w.join().unwrap()).unwrap();
        let (r, set) = seen.borrow_mut().take().unwrap();
        eprintln!("timed wait vs set: {r:?} set={set}");
        assert!(
            !(set && r.is_err()),
            "wait_timeout returned {r:?} while the flag it waits for is set"
        );
    });
}

/// wait_timeout(0): set -> Ok, set then cleared before -> TimedOut, never
/// set -> TimedOut; none of them park for long.
#[test]
fn wait_timeout_zero() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    greenhub::run(|| {
        let ev = Event::new();
        assert_eq!(ev.wait_timeout(Duration::ZERO), Err(WaitError::TimedOut));
        ev.set();
        assert_eq!(ev.wait_timeout(Duration::ZERO), Ok(()));
        ev.clear();
        assert_eq!(ev.wait_timeout(Duration::ZERO), Err(WaitError::TimedOut));
        ev.set();
        ev.clear();
        assert_eq!(ev.wait_timeout(Duration::ZERO), Err(WaitError::TimedOut));
    });
}

/// A pulse (set; clear) wakes exactly the coroutines parked at that time;
/// ones that start waiting after it park (time out); a clone is the same
/// event.
#[test]
fn a_pulse_releases_the_parked_and_not_the_late() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    greenhub::run(|| {
        let ev = Event::new();
        let early: Vec<_> = (0..10)
            .map(|_| {
                let ev = ev.clone();
                greenhub::spawn(move || ev.wait_timeout(Duration::from_secs(3)))
            })
            .collect();
        settle();
        ev.clone().set();
        ev.clear();
        let late: Vec<_> = (0..10)
            .map(|_| {
                let ev = ev.clone();
                greenhub::spawn(move || ev.wait_timeout(Duration::from_millis(30)))
            })
            .collect();
        for h in early {
            assert_eq!(h.join().unwrap(), Ok(()));
        }
        for h in late {
            assert_eq!(h.join().unwrap(), Err(WaitError::TimedOut));
        }
        assert!(!ev.is_set());
    });
}

/// Kill a waiter right after set (before it runs) and right before set:
/// the other waiters still return Ok, the killed one reports Killed.
#[test]
fn kill_around_set_does_not_lose_the_others() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    greenhub::run(|| {
        let ev = Event::new();
        let spawn_w = |ev: &Event| {
            let ev = ev.clone();
            greenhub::spawn(move || ev.wait())
        };
        let a = spawn_w(&ev);
        let b = spawn_w(&ev);
        let c = spawn_w(&ev);
        settle();
        a.kill();
        ev.set();
        ev.clear();
        b.kill();
        assert!(a.join().is_err());
        assert!(b.join().is_err());
        assert_eq!(
            greenhub::timeout(HANG, || c.join().unwrap()).unwrap(),
            Ok(())
        );
    });
}

/// An enclosing timeout that expires in the same tick as set.
#[test]
fn enclosing_timeout_and_set_in_the_same_tick() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    greenhub::run(|| {
        let ev = Event::new();
        let seen: Rc<Cell<Option<bool>>> = Rc::default();
        let w = {
            let (ev, seen) = (ev.clone(), seen.clone());
            greenhub::spawn(move || {
                let r = greenhub::timeout(Duration::from_millis(20), || ev.wait());
                seen.set(Some(matches!(r, Ok(Ok(())))));
                (r.is_ok(), ev.is_set())
            })
        };
        settle();
        std::thread::sleep(Duration::from_millis(60));
        greenhub::yield_now();
        ev.set();
        let (ok, set) = greenhub::timeout(HANG, || w.join().unwrap()).unwrap();
        // Only report: either outcome must at least terminate.
        eprintln!("enclosing timeout vs set: ok={ok} set={set}");
    });
}

// ---------------------------------------------------------------------------
// Select

/// A select reused in a loop over set / clear / set: each wait returns the
/// event arm once per set and parks (times out) after a clear.
#[test]
fn reused_select_set_clear_set() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    greenhub::run(|| {
        let ev = Event::new();
        let mut sel = Select::new();
        let arm = sel.event(&ev);
        let idle = sel.after(Duration::from_secs(3600));
        let _ = idle;
        for round in 0..5 {
            let setter = {
                let ev = ev.clone();
                greenhub::spawn(move || {
                    ev.set();
                    ev.clear();
                })
            };
            let r = greenhub::timeout(HANG, || sel.wait().map(|s| s.index())).unwrap();
            assert_eq!(r, Ok(arm), "round {round}");
            setter.join().unwrap();
            // cleared, no set: must park
            let again =
                greenhub::timeout(Duration::from_millis(20), || sel.wait().map(|s| s.index()));
            assert!(
                again.is_err(),
                "round {round}: ready after a clear: {again:?}"
            );
            ev.set();
            assert_eq!(sel.wait().map(|s| s.index()), Ok(arm));
            ev.clear();
        }
    });
}

/// Several event arms, and the same event twice.
#[test]
fn several_event_arms_and_one_event_twice() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    greenhub::run(|| {
        let (a, b) = (Event::new(), Event::new());
        let mut sel = Select::new();
        let ia = sel.event(&a);
        let ib = sel.event(&b);
        let ia2 = sel.event(&a);
        let _ = ia2;
        // b pulsed while waiting
        let s = {
            let b = b.clone();
            greenhub::spawn(move || {
                b.set();
                b.clear();
            })
        };
        assert_eq!(
            greenhub::timeout(HANG, || sel.wait().map(|s| s.index())).unwrap(),
            Ok(ib)
        );
        s.join().unwrap();
        // a pulsed while waiting: the first arm on a
        let s = {
            let a = a.clone();
            greenhub::spawn(move || {
                a.set();
                a.clear();
            })
        };
        assert_eq!(
            greenhub::timeout(HANG, || sel.wait().map(|s| s.index())).unwrap(),
            Ok(ia)
        );
        s.join().unwrap();
        // nothing: parks
        assert!(
            greenhub::timeout(Duration::from_millis(20), || sel.wait().map(|s| s.index())).is_err()
        );
        // a waiter on a alone still works after all that
        let w = {
            let a = a.clone();
            greenhub::spawn(move || a.wait())
        };
        settle();
        a.set();
        a.clear();
        assert_eq!(
            greenhub::timeout(HANG, || w.join().unwrap()).unwrap(),
            Ok(())
        );
    });
}

/// A select [recv ch, event stop] is woken by a value (a hand-off), then
/// stop is pulsed before it runs; it drops the recv Selected (it looks at
/// stop first) — the value must reach the other receiver.
#[test]
fn a_dropped_recv_hand_off_reaches_the_next_receiver() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    greenhub::run(|| {
        let ch: Channel<u32> = Channel::unbounded();
        let stop = Event::new();
        let got: Rc<RefCell<Vec<String>>> = Rc::default();
        let s = {
            let (ch, stop, got) = (ch.clone(), stop.clone(), got.clone());
            greenhub::spawn(move || {
                let mut sel = Select::new();
                let r = sel.recv(&ch);
                let e = sel.event(&stop);
                let ready = sel.wait().unwrap();
                got.borrow_mut()
                    .push(format!("sel {} {}", ready.index() == r, ready.index() == e));
                drop(ready);
            })
        };
        let other = {
            let ch = ch.clone();
            greenhub::spawn(move || ch.recv_timeout(Duration::from_secs(3)))
        };
        settle();
        ch.send(5).unwrap();
        stop.set();
        stop.clear();
        assert_eq!(
            greenhub::timeout(HANG, || other.join().unwrap()).unwrap(),
            Ok(5)
        );
        s.join().unwrap();
        assert_eq!(*got.borrow(), ["sel true false"]);
    });
}

/// The event wins while a channel value arrives for the select later in
/// the same tick: the value stays in the channel (nothing lost), and a
/// parked plain receiver behind the select gets it.
#[test]
fn event_wins_and_the_value_is_not_lost() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    greenhub::run(|| {
        let ch: Channel<u32> = Channel::bounded(1);
        let stop = Event::new();
        let idx: Rc<Cell<Option<usize>>> = Rc::default();
        let s = {
            let (ch, stop, idx) = (ch.clone(), stop.clone(), idx.clone());
            greenhub::spawn(move || {
                let mut sel = Select::new();
                let _r = sel.recv(&ch);
                let e = sel.event(&stop);
                let ready = sel.wait().unwrap();
                idx.set(Some(ready.index()));
                assert_eq!(ready.index(), e);
            })
        };
        let other = {
            let ch = ch.clone();
            greenhub::spawn(move || ch.recv_timeout(Duration::from_secs(3)))
        };
        settle();
        stop.set();
        ch.send(9).unwrap();
        s.join().unwrap();
        assert_eq!(idx.get(), Some(1));
        assert_eq!(
            greenhub::timeout(HANG, || other.join().unwrap()).unwrap(),
            Ok(9)
        );
    });
}

/// A select waiter killed right after set; a select waiter timed out (its
/// deadline arm due) when set happens: the deadline arm, added first, or
/// the event; either way nothing hangs and other waiters still wake.
#[test]
fn kill_of_a_select_waiter_right_after_set() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    greenhub::run(|| {
        let ev = Event::new();
        let mk = |ev: &Event| {
            let ev = ev.clone();
            greenhub::spawn(move || {
                let mut sel = Select::new();
                let e = sel.event(&ev);
                sel.wait().map(|s| s.index() == e)
            })
        };
        let a = mk(&ev);
        let b = mk(&ev);
        settle();
        ev.set();
        a.kill();
        ev.clear();
        assert!(a.join().is_err());
        assert_eq!(
            greenhub::timeout(HANG, || b.join().unwrap()).unwrap(),
            Ok(true)
        );
    });
}

/// The event arm of a select whose timer expired unseen, set before it
/// runs: the doc ("the one whose queue woke the select before the others",
/// "earlier arms win ties") — the event arm is first, and it is set.
#[test]
fn select_deadline_expired_then_set_before_it_runs() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    greenhub::run(|| {
        let ev = Event::new();
        let w = {
            let ev = ev.clone();
            greenhub::spawn(move || {
                let mut sel = Select::new();
                let e = sel.event(&ev);
                let _d = sel.after(Duration::from_millis(20));
                sel.wait().map(|s| s.index() == e)
            })
        };
        settle();
        std::thread::sleep(Duration::from_millis(60));
        greenhub::yield_now();
        ev.set();
        ev.clear();
        let r = greenhub::timeout(HANG, || w.join().unwrap()).unwrap();
        eprintln!("select deadline-then-pulse: {r:?}");
    });
}

/// A select that was woken by a channel value while an event arm was
/// pulsed (set; clear) in the same tick returns the recv arm; the pulse is
/// then gone for the next wait, although it happened while the select
/// waited with an event arm on it.
#[test]
fn a_pulse_during_a_select_woken_by_a_channel_is_not_lost() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    greenhub::run(|| {
        let ch: Channel<u32> = Channel::unbounded();
        let stop = Event::new();
        let log: Rc<RefCell<Vec<&'static str>>> = Rc::default();
        let s = {
            let (ch, stop, log) = (ch.clone(), stop.clone(), log.clone());
            greenhub::spawn(move || {
                let mut sel = Select::new();
                let r = sel.recv(&ch);
                let e = sel.event(&stop);
                for _ in 0..2 {
                    match greenhub::timeout(Duration::from_millis(200), || {
                        let Ok(ready) = sel.wait() else {
                            return "timed out";
                        };
                        if ready.index() == r {
                            ready.recv(&ch).unwrap();
                            "recv"
                        } else {
                            assert_eq!(ready.index(), e);
                            "stop"
                        }
                    }) {
                        Ok(what) => log.borrow_mut().push(what),
                        Err(_) => log.borrow_mut().push("timed out (scope)"),
                    }
                }
            })
        };
        settle();
        ch.send(1).unwrap();
        stop.set();
        stop.clear();
        greenhub::timeout(HANG, || s.join().unwrap()).unwrap();
        assert_eq!(*log.borrow(), ["recv", "stop"]);
    });
}

// ---------------------------------------------------------------------------
// unblock

#[test]
fn unblock_resumed_panic_line_once_per_panic_and_never_for_ok_jobs() {
    const NAME: &str = "unblock_resumed_panic_line_once_per_panic_and_never_for_ok_jobs";
    if util::other_child(CHILD, NAME) {
        return;
    }
    if util::is_child(CHILD, NAME) {
        greenhub::run(|| {
            let h = greenhub::Builder::new()
                .name("jobber")
                .spawn(|| {
                    assert_eq!(greenhub::unblock(|| 1u32).unwrap(), 1);
                    for i in 0..3 {
                        let r = std::panic::catch_unwind(|| {
                            greenhub::unblock(move || -> u32 { panic!("job boom {i}") })
                        });
                        assert!(r.is_err());
                    }
                    // a job that catches its own panic: not resumed
                    let v =
                        greenhub::unblock(|| std::panic::catch_unwind(|| panic!("inner")).is_err())
                            .unwrap();
                    assert!(v);
                    // a job returning a Result::Err: not a panic
                    let e: Result<u32, String> =
                        greenhub::unblock(|| Err("plain".to_string())).unwrap();
                    assert!(e.is_err());
                    7
                })
                .unwrap();
            println!("JOINED {:?}", h.join().ok());
            let u = greenhub::spawn(|| greenhub::unblock(|| -> u32 { panic!("uncaught job") }));
            println!("UNCAUGHT {}", u.join().is_err());
        });
        return;
    }
    let (ok, out, err) = util::run_child(CHILD, NAME);
    assert!(ok, "child failed:\n{err}");
    assert!(out.contains("JOINED Some(7)"), "{out}");
    assert!(out.contains("UNCAUGHT true"), "{out}");
    for i in 0..3 {
        let line = format!("coroutine 'jobber' resumes the panic of its unblock job: job boom {i}");
        assert_eq!(err.matches(&line).count(), 1, "{line}:\n{err}");
    }
    assert_eq!(err.matches("resumes the panic").count(), 4, "{err}");
    assert!(
        !err.contains("inner\n") || !err.contains("resumes the panic of its unblock job: inner"),
        "{err}"
    );
    assert!(
        !err.contains("resumes the panic of its unblock job: plain"),
        "{err}"
    );
    assert!(
        err.contains("resumes the panic of its unblock job: uncaught job"),
        "{err}"
    );
    assert!(!err.contains("coroutine 'jobber' panicked"), "{err}");
}

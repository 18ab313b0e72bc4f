//! gevent's pieces that had no equivalent: spawn_later, Pool::map/imap,
//! RwLock, RLock, broadcast and watch channels, coroutine-local storage,
//! and link.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use greenhub::sync::{broadcast, watch, BroadcastError, ChannelError, Event, RLock, RwLock};
use greenhub::{JoinError, Pool};

mod util;

#[test]
fn spawn_later_runs_after_its_delay_and_never_if_killed_first() {
    greenhub::run(|| {
        let journal = util::journal();
        let later = {
            let journal = journal.clone();
            greenhub::spawn_later(Duration::from_millis(5), move || {
                journal.borrow_mut().push("later")
            })
        };
        let never = {
            let journal = journal.clone();
            greenhub::spawn_later(Duration::from_secs(60), move || {
                journal.borrow_mut().push("never")
            })
        };
        journal.borrow_mut().push("now");
        later.join().unwrap();
        never.kill();
        assert_eq!(never.join(), Err(JoinError::Killed));
        assert_eq!(*journal.borrow(), ["now", "later"]);
    });
}

#[test]
fn pool_map_keeps_item_order_and_runs_at_most_size_at_once() {
    let (results, most) = greenhub::run(|| {
        let pool = Pool::new(3);
        let running = Rc::new(Cell::new(0));
        let most = Rc::new(Cell::new(0));
        let results = {
            let (running, most) = (running.clone(), most.clone());
            pool.map(0..10u64, move |n| {
                running.set(running.get() + 1);
                most.set(most.get().max(running.get()));
                greenhub::sleep(Duration::from_millis(10 - n)); // later items finish first
                running.set(running.get() - 1);
                n * 10
            })
        };
        (results, most.get())
    });
    let values: Vec<u64> = results.into_iter().map(Result::unwrap).collect();
    assert_eq!(values, (0..10).map(|n| n * 10).collect::<Vec<_>>());
    assert_eq!(most, 3);
}

#[test]
fn imap_is_lazy_and_ordered_and_imap_unordered_yields_in_finish_order() {
    greenhub::run(|| {
        let pool = Pool::new(4);
        let started = Rc::new(Cell::new(0));
        let mut ordered = {
            let started = started.clone();
            pool.imap(0..100u64, move |n| {
                started.set(started.get() + 1);
                greenhub::sleep(Duration::from_millis(n % 3));
                n
            })
        };
        assert_eq!(started.get(), 0, "nothing starts before the first next()");
        assert_eq!(ordered.next().unwrap().unwrap(), 0);
        assert!(
            started.get() <= 4,
            "at most the pool's size ahead: {}",
            started.get()
        );
        let rest: Vec<u64> = ordered.map(Result::unwrap).collect();
        assert_eq!(rest, (1..100).collect::<Vec<_>>());

        // Handed in as 30, 1, 15, they finish as 1, 15, 30: each but the
        // first waits for the one before it to finish (sleeps of 30, 1 and
        // 15 ms finished as 1, 30, 15 on a loaded machine, whose hub started
        // the 15 more than 15 ms after the 30).
        let done: Rc<[Event; 3]> = Rc::new(Default::default());
        let unordered: Vec<u64> = pool
            .imap_unordered([30u64, 1, 15], move |n| {
                let rank = [1, 15, 30].iter().position(|&m| m == n).unwrap();
                if rank > 0 {
                    done[rank - 1].wait().unwrap();
                }
                greenhub::yield_now();
                done[rank].set();
                n
            })
            .map(Result::unwrap)
            .collect();
        assert_eq!(unordered, [1, 15, 30]);
    });
}

#[test]
fn a_panic_in_map_is_that_items_error_and_the_others_go_on() {
    let results = greenhub::run(|| {
        Pool::new(2).map(0..4, |n: i32| {
            assert_ne!(n, 2, "two is refused");
            n
        })
    });
    assert_eq!(results[0], Ok(0));
    assert_eq!(results[1], Ok(1));
    assert!(matches!(&results[2], Err(JoinError::Panicked(m)) if m.contains("two is refused")));
    assert_eq!(results[3], Ok(3));
}

#[test]
fn rwlock_readers_share_and_a_waiting_writer_holds_new_readers_back() {
    greenhub::run(|| {
        let lock = Rc::new(RwLock::new(0));
        let journal = util::journal();
        let first = lock.read().unwrap();
        let writer = {
            let (lock, journal) = (lock.clone(), journal.clone());
            greenhub::spawn(move || {
                *lock.write().unwrap() += 1;
                journal.borrow_mut().push("wrote");
            })
        };
        greenhub::yield_now(); // the writer parks behind the reader
        assert!(lock.try_read().is_none(), "a waiting writer goes first");
        let late_reader = {
            let (lock, journal) = (lock.clone(), journal.clone());
            greenhub::spawn(move || {
                let value = *lock.read().unwrap();
                journal.borrow_mut().push("read");
                value
            })
        };
        greenhub::yield_now();
        drop(first);
        writer.join().unwrap();
        assert_eq!(late_reader.join().unwrap(), 1);
        assert_eq!(*journal.borrow(), ["wrote", "read"]);
    });
}

#[test]
fn rwlock_a_writer_that_gives_up_lets_the_readers_behind_it_in() {
    greenhub::run(|| {
        let lock = Rc::new(RwLock::new("v"));
        let held = lock.read().unwrap();
        let writer = {
            let lock = lock.clone();
            greenhub::spawn(move || lock.write_timeout(Duration::from_millis(10)).is_err())
        };
        greenhub::yield_now();
        let reader = {
            let lock = lock.clone();
            greenhub::spawn(move || *lock.read().unwrap())
        };
        assert!(writer.join().unwrap(), "the writer timed out");
        assert_eq!(
            reader.join().unwrap(),
            "v",
            "the reader got in when the writer left"
        );
        drop(held);
    });
}

#[test]
fn rlock_is_reentrant_for_its_holder_and_excludes_the_others() {
    greenhub::run(|| {
        let lock = Rc::new(RLock::new(RefCell::new(Vec::new())));
        let outer = lock.lock().unwrap();
        let inner = lock
            .lock()
            .expect("the holder locks again without deadlock");
        assert!(lock.is_owned_by_current());
        let other = {
            let lock = lock.clone();
            greenhub::spawn(move || lock.lock().unwrap().borrow_mut().push("other"))
        };
        greenhub::yield_now();
        assert!(!other.is_finished(), "another coroutine waits");
        inner.borrow_mut().push("holder");
        drop(inner);
        greenhub::yield_now();
        assert!(!other.is_finished(), "still held by the outer guard");
        drop(outer);
        other.join().unwrap();
        assert_eq!(*lock.lock().unwrap().borrow(), ["holder", "other"]);
    });
}

#[test]
fn broadcast_delivers_every_value_to_every_receiver_and_reports_lag() {
    greenhub::run(|| {
        let (tx, rx) = broadcast(4);
        let fast = tx.subscribe();
        let reader = greenhub::spawn(move || {
            let mut got = Vec::new();
            while let Ok(v) = fast.recv() {
                got.push(v);
            }
            got
        });
        for n in 0..10 {
            tx.send(n);
            greenhub::yield_now(); // the fast reader keeps up
        }
        drop(tx);
        assert_eq!(reader.join().unwrap(), (0..10).collect::<Vec<_>>());
        // `rx` never read: it missed the six values that fell out of the
        // last four kept, is told so, then reads the rest.
        assert_eq!(rx.recv(), Err(BroadcastError::Lagged(6)));
        let rest: Vec<i32> = std::iter::from_fn(|| rx.recv().ok()).collect();
        assert_eq!(rest, [6, 7, 8, 9]);
        assert_eq!(rx.recv(), Err(BroadcastError::Closed));
    });
}

#[test]
fn watch_wakes_on_change_and_a_slow_receiver_sees_only_the_latest() {
    greenhub::run(|| {
        let (tx, rx) = watch(0);
        let slow = rx.clone();
        let waiter = greenhub::spawn(move || {
            rx.changed().unwrap();
            rx.get()
        });
        greenhub::yield_now();
        tx.send(1);
        assert_eq!(waiter.join().unwrap(), 1);
        tx.send(2);
        tx.send_modify(|v| *v += 1);
        assert!(slow.has_changed());
        slow.changed().unwrap();
        assert_eq!(slow.get(), 3, "only the latest value");
        assert!(!slow.has_changed());
        drop(tx);
        assert_eq!(slow.changed(), Err(ChannelError::Closed));
    });
}

greenhub::local! {
    static NAME: RefCell<String> = RefCell::new(String::from("unset"));
    static DROPS: Rc<Cell<u32>> = Rc::new(Cell::new(0));
}

#[test]
fn each_coroutine_sees_its_own_local_and_it_is_dropped_when_the_coroutine_ends() {
    greenhub::run(|| {
        struct Noisy(Rc<Cell<u32>>);
        impl Drop for Noisy {
            fn drop(&mut self) {
                self.0.set(self.0.get() + 1);
            }
        }
        greenhub::local! {
            static GUARD: RefCell<Option<Noisy>> = RefCell::new(None);
        }
        let drops = Rc::new(Cell::new(0));
        let workers: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|name| {
                let drops = drops.clone();
                greenhub::spawn(move || {
                    NAME.with(|n| *n.borrow_mut() = name.to_owned());
                    GUARD.with(|g| *g.borrow_mut() = Some(Noisy(drops)));
                    greenhub::yield_now();
                    NAME.with(|n| n.borrow().clone())
                })
            })
            .collect();
        let names: Vec<String> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(NAME.with(|n| n.borrow().clone()), "unset");
        assert_eq!(drops.get(), 2, "each coroutine's value dropped at its end");
        assert_eq!(DROPS.with(|d| d.get()), 0);
    });
    assert!(NAME.try_with(|_| ()).is_none(), "outside a coroutine");
}

#[test]
fn link_runs_on_completion_with_the_value_or_the_error() {
    greenhub::run(|| {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let log = |seen: &Rc<RefCell<Vec<String>>>| {
            let seen = seen.clone();
            move |ended: Result<&i32, JoinError>| seen.borrow_mut().push(format!("{ended:?}"))
        };
        let ok = greenhub::spawn(|| 1);
        ok.link(log(&seen));
        let panicked = greenhub::spawn(|| -> i32 { panic!("boom") });
        panicked.link(log(&seen));
        let killed = greenhub::spawn(|| {
            greenhub::sleep(Duration::from_secs(60));
            3
        });
        killed.link(log(&seen));
        assert_eq!(ok.join(), Ok(1));
        assert!(panicked.join().is_err());
        killed.kill();
        killed.wait().unwrap();
        // Linked after the end: runs at once.
        killed.link(log(&seen));
        assert_eq!(
            *seen.borrow(),
            [
                "Ok(1)",
                "Err(Panicked(\"boom\"))",
                "Err(Killed)",
                "Err(Killed)"
            ]
        );
    });
}

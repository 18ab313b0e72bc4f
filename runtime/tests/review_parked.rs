//! Review of the smaller per-coroutine state: wait queues that link their
//! nodes by slot index, under mass timeouts, kills and selects over several
//! queues.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use greenhub::sync::{Event, Semaphore};

/// Thousands of waiters on one semaphore, timing out in waves, some killed,
/// while permits trickle in: every permit released ends up either held by
/// exactly one waiter or still free. A stale slot index naming another
/// waiter would hand a permit to a coroutine that already left, or to two.
#[test]
fn mass_timeouts_and_kills_on_one_queue_lose_and_duplicate_no_permit() {
    const WAITERS: usize = 4000;
    const PERMITS: usize = 1500;
    let (held, free, timed_out) = greenhub::run(|| {
        let sem = Rc::new(Semaphore::new(0));
        let held = Rc::new(RefCell::new(Vec::new()));
        let timed_out = Rc::new(Cell::new(0usize));
        let mut handles = Vec::new();
        for n in 0..WAITERS {
            let (sem, held, timed_out) = (sem.clone(), held.clone(), timed_out.clone());
            handles.push(greenhub::spawn(move || {
                match sem.acquire_timeout(Duration::from_millis(1 + (n % 7) as u64)) {
                    Ok(permit) => held.borrow_mut().push(permit),
                    Err(_) => timed_out.set(timed_out.get() + 1),
                }
            }));
        }
        greenhub::yield_now();
        for round in 0..PERMITS {
            sem.release();
            if round % 100 == 0 {
                greenhub::sleep(Duration::from_micros(700));
            }
            if round % 3 == 0 {
                if let Some(h) = handles.get(round * 2) {
                    h.kill();
                }
            }
            greenhub::yield_now();
        }
        for h in handles {
            let _ = h.join();
        }
        let held = held.borrow().len();
        (held, sem.available(), timed_out.get())
    });
    assert_eq!(
        held + free,
        PERMITS,
        "held {held} free {free} timed out {timed_out}"
    );
}

/// A coroutine selecting over several events, killed or timing out while
/// others wait on the same events: each `set` wakes every waiter still
/// registered, and none that left.
#[test]
fn select_over_several_events_with_leavers_wakes_every_stayer() {
    use greenhub::select::Select;
    let woken = greenhub::run(|| {
        let events: Rc<Vec<Event>> = Rc::new((0..4).map(|_| Event::new()).collect());
        let woken = Rc::new(Cell::new(0usize));
        let mut stayers = Vec::new();
        let mut leavers = Vec::new();
        for n in 0..3000usize {
            let (events, woken) = (events.clone(), woken.clone());
            let leaver = n % 3 != 0;
            let h = greenhub::spawn(move || {
                let mut select = Select::new();
                for event in events.iter() {
                    select.event(event);
                }
                if leaver && n % 2 == 0 {
                    select.after(Duration::from_millis(1 + (n % 5) as u64));
                }
                if select.wait().is_ok() && events.iter().any(Event::is_set) {
                    woken.set(woken.get() + 1);
                }
            });
            if leaver {
                leavers.push((n, h))
            } else {
                stayers.push(h)
            }
        }
        greenhub::yield_now();
        for (n, h) in &leavers {
            if n % 2 == 1 {
                h.kill();
            }
        }
        greenhub::sleep(Duration::from_millis(10));
        events[2].set();
        for h in stayers {
            h.join().unwrap();
        }
        for (_, h) in leavers {
            let _ = h.join();
        }
        woken.get()
    });
    assert_eq!(woken, 1000);
}

//! `Group`, `Pool`, `wait_any` and `wait_all`: many coroutines at once.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use greenhub::sync::{Event, WaitError};
use greenhub::{wait_all, wait_any, Group, Pool};

#[test]
fn a_pool_never_runs_more_than_its_limit() {
    let (peak, done) = greenhub::run(|| {
        let pool = Pool::new(5);
        let (running, peak, done) = (
            Rc::new(Cell::new(0)),
            Rc::new(Cell::new(0)),
            Rc::new(Cell::new(0)),
        );
        for n in 0..100u64 {
            let (running, peak, done) = (running.clone(), peak.clone(), done.clone());
            pool.spawn(move || {
                running.set(running.get() + 1);
                peak.set(peak.get().max(running.get()));
                greenhub::sleep(Duration::from_millis(n % 3));
                running.set(running.get() - 1);
                done.set(done.get() + 1);
            })
            .unwrap();
            assert!(pool.len() <= 5);
        }
        pool.join_all(None).unwrap();
        assert_eq!(pool.free_count(), 5);
        (peak.get(), done.get())
    });
    assert_eq!(peak, 5, "counted inside the coroutines");
    assert_eq!(done, 100);
}

#[test]
fn a_group_joins_and_kills_all_its_members() {
    greenhub::run(|| {
        let group = Group::new();
        for n in 0..5 {
            group.spawn(move || greenhub::sleep(Duration::from_millis(n)));
        }
        let outside = greenhub::spawn(|| 1);
        group.add(&outside);
        assert_eq!(group.len(), 6);
        group.join_all(None).unwrap();
        assert!(group.is_empty());

        let sleepers: Vec<_> = (0..5)
            .map(|_| group.spawn(|| greenhub::sleep(Duration::from_secs(3600))))
            .collect();
        assert_eq!(
            group.join_all(Some(Duration::from_millis(5))),
            Err(WaitError::TimedOut)
        );
        group.kill_all().unwrap();
        assert!(group.is_empty());
        assert!(sleepers
            .into_iter()
            .all(|s| s.join() == Err(greenhub::JoinError::Killed)));
    });
}

#[test]
fn wait_any_returns_the_first_to_finish_and_wait_all_waits_for_every_one() {
    greenhub::run(|| {
        // Only the middle one can finish on its own: the others wait for
        // `release`, so no stall of the machine can let them finish first.
        let release = Event::new();
        let held = |release: &Event| {
            let release = release.clone();
            greenhub::spawn(move || {
                release.wait().unwrap();
                greenhub::sleep(Duration::from_millis(1));
            })
        };
        let handles = [
            held(&release),
            greenhub::spawn(|| greenhub::sleep(Duration::from_millis(5))),
            held(&release),
        ];
        assert_eq!(wait_any(&handles, None), Ok(1));
        assert_eq!(
            wait_all(&handles, Some(Duration::from_millis(1))),
            Err(WaitError::TimedOut)
        );
        release.set();
        wait_all(&handles, None).unwrap();
        assert!(handles.iter().all(|h| h.is_finished()));
        let forever = [greenhub::spawn(|| {
            greenhub::sleep(Duration::from_secs(3600))
        })];
        assert_eq!(
            wait_any(&forever, Some(Duration::from_millis(2))),
            Err(WaitError::TimedOut)
        );
    });
}

/// Regression: a group kept every finished member, and its return value,
/// until `len()` was called, so an accept loop leaked one entry per
/// connection; and a value whose `Drop` called `group.len()` panicked.
#[test]
fn finished_members_leave_the_group_with_their_values_at_once() {
    use std::cell::Cell;
    use std::rc::Rc;
    struct Counted(Rc<Cell<usize>>, Rc<greenhub::Group>);
    impl Drop for Counted {
        fn drop(&mut self) {
            let _ = self.1.len(); // must not panic
            self.0.set(self.0.get() + 1);
        }
    }
    let (dropped_before_len, len) = greenhub::run(|| {
        let dropped = Rc::new(Cell::new(0));
        let group = Rc::new(greenhub::Group::new());
        let done = greenhub::sync::WaitGroup::new();
        for _ in 0..1000 {
            let (dropped, inner, done) = (dropped.clone(), group.clone(), done.clone());
            done.add(1);
            drop(group.spawn(move || {
                done.done();
                Counted(dropped, inner)
            }));
        }
        done.wait().unwrap();
        greenhub::yield_now(); // let the last members return
        (dropped.get(), group.len())
    });
    assert_eq!(dropped_before_len, 1000);
    assert_eq!(len, 0);
}

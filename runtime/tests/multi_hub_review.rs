//! Review of issue 16 (`Runtime`): the paths the author's tests do not walk.
//! Every wait here is bounded by a watchdog, so a hang fails instead of
//! stalling the suite. The tests whose doc begins "Proves:" showed a
//! defect (they were ignored until it was fixed); the others are probes
//! that passed and are kept as regressions.

mod util;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use greenhub::{JoinError, Runtime, SpawnError};
use util::SLACK;

/// Runs `f` on a plain thread and fails if it has not returned in `limit`.
fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(value)) => value,
        Ok(Err(payload)) => std::panic::resume_unwind(payload),
        Err(_) => panic!("hang: {what} did not return within {limit:?}"),
    }
}

struct Dropped(Arc<Mutex<Vec<usize>>>, usize);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.lock().unwrap().push(self.1);
    }
}

/// Proves: a `Runtime` (which is `Send`) moved to one of its own hubs and
/// dropped there does not stop cleanly. `stop_all` joins that hub's own
/// thread from itself: `pthread_join` gives EDEADLK and std panics
/// ("failed to join thread: Resource deadlock avoided"), so the job ends
/// `Panicked` and the threads after it in the list are never joined.
#[test]
fn dropping_a_runtime_on_one_of_its_own_hubs_stops_it_without_a_panic() {
    let outcome = within(10 * SLACK, "drop on own hub", || {
        let runtime = Runtime::builder().hubs(3).build().unwrap();
        let handle = runtime.handle();
        let job = handle.spawn_on(1, move || drop(runtime)).unwrap();
        job.join()
    });
    assert_eq!(outcome, Ok(()), "the drop panicked on its own hub");
}

/// Probe (sound): a panic in `block_on`'s closure comes out after every
/// other hub has stopped and unwound its coroutines.
#[test]
fn a_panic_in_block_on_stops_every_hub_before_it_comes_out() {
    let dropped = Arc::new(Mutex::new(Vec::new()));
    let seen = dropped.clone();
    let result = within(10 * SLACK, "block_on panic", move || {
        let runtime = Runtime::builder().hubs(3).build().unwrap();
        let handle = runtime.handle();
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            runtime.block_on(move || {
                let (tx, rx) = greenhub::sync::remote_channel::<()>();
                for hub in 1..3 {
                    let (d, tx) = (seen.clone(), tx.clone());
                    handle
                        .spawn_on(hub, move || {
                            let _g = Dropped(d, hub);
                            tx.send(()).unwrap();
                            greenhub::sleep(Duration::from_secs(3600));
                        })
                        .unwrap();
                }
                rx.recv().unwrap();
                rx.recv().unwrap();
                panic!("main gives up");
            })
        }))
        .is_err()
    });
    assert!(result, "the panic came out of block_on");
    let mut ids = dropped.lock().unwrap().clone();
    ids.sort_unstable();
    assert_eq!(ids, [1, 2], "both hubs unwound before block_on returned");
}

/// Probe (sound): shutdown while coroutines on every hub park on each
/// other's remote handles and channels returns, each destructor once.
#[test]
fn shutdown_with_coroutines_parked_across_hubs_runs_each_destructor_once() {
    const PER_HUB: usize = 50;
    let dropped = Arc::new(Mutex::new(Vec::new()));
    let seen = dropped.clone();
    within(20 * SLACK, "cross-hub shutdown", move || {
        let runtime = Runtime::builder().hubs(3).build().unwrap();
        let handle = runtime.handle();
        runtime.block_on(move || {
            let (ready_tx, ready_rx) = greenhub::sync::remote_channel::<()>();
            let mut keep = Vec::new();
            for hub in 0..3 {
                for k in 0..PER_HUB {
                    let id = hub * PER_HUB + k;
                    let (d, ready) = (seen.clone(), ready_tx.clone());
                    // The sleeper lives on the next hub; this one joins it.
                    let sleeper = handle
                        .spawn_on((hub + 1) % 3, || greenhub::sleep(Duration::from_secs(3600)))
                        .unwrap();
                    let (tx, rx) = greenhub::sync::remote_channel::<u8>();
                    keep.push(tx);
                    handle
                        .spawn_on(hub, move || {
                            let _g = Dropped(d, id);
                            ready.send(()).unwrap();
                            if k % 2 == 0 {
                                let _ = sleeper.join();
                            } else {
                                let _ = rx.recv();
                            }
                            // A join that ends Killed (the other hub went
                            // first) parks again, so only a kill ends it.
                            greenhub::sleep(Duration::from_secs(3600));
                        })
                        .unwrap();
                }
            }
            for _ in 0..3 * PER_HUB {
                ready_rx.recv().unwrap();
            }
            // Senders move to hub 2, alive until it stops.
            handle
                .spawn_on(2, move || {
                    let _keep = keep;
                    greenhub::sleep(Duration::from_secs(3600));
                })
                .unwrap();
        });
    });
    let mut ids = dropped.lock().unwrap().clone();
    ids.sort_unstable();
    assert_eq!(
        ids,
        (0..3 * PER_HUB).collect::<Vec<_>>(),
        "each destructor once"
    );
}

/// Probe (sound): a job still queued when the runtime drops joins as
/// `Killed` afterwards, from a plain thread, without hanging; one that ran
/// keeps its value.
#[test]
fn handles_joined_after_the_runtime_is_dropped_do_not_hang() {
    within(10 * SLACK, "join after drop", || {
        let runtime = Runtime::builder().hubs(2).build().unwrap();
        let handle = runtime.handle();
        let done = handle.spawn_on(1, || 5).unwrap();
        done.wait_timeout(10 * SLACK).unwrap();
        let queued: Vec<_> = (0..1000)
            .map(|_| {
                handle
                    .spawn_on(1, || greenhub::sleep(Duration::from_secs(3600)))
                    .unwrap()
            })
            .collect();
        drop(runtime);
        assert_eq!(done.join(), Ok(5));
        for job in queued {
            assert_eq!(job.join(), Err(JoinError::Killed));
        }
        assert_eq!(
            handle.spawn_on(1, || ()).unwrap_err(),
            SpawnError::NotRunning { index: 1 }
        );
    });
}

/// Probe (sound): plain threads spawning in a loop while the runtime drops
/// get either a refusal or a handle that joins.
#[test]
fn spawn_on_from_plain_threads_during_shutdown_never_leaves_a_handle_hanging() {
    within(20 * SLACK, "spawn during shutdown", || {
        let runtime = Runtime::builder().hubs(3).build().unwrap();
        let handle = runtime.handle();
        let ran = Arc::new(AtomicUsize::new(0));
        let spammers: Vec<_> = (0..2)
            .map(|t| {
                let (handle, ran) = (handle.clone(), ran.clone());
                std::thread::spawn(move || {
                    let mut joined = 0;
                    loop {
                        let ran = ran.clone();
                        match handle.spawn_on(1 + t, move || ran.fetch_add(1, Ordering::SeqCst)) {
                            Ok(job) => {
                                let _ = job.join(); // Ok or Killed, never a hang
                                joined += 1;
                            }
                            Err(SpawnError::NotRunning { .. }) => return joined,
                            Err(err) => panic!("{err}"),
                        }
                    }
                })
            })
            .collect();
        while ran.load(Ordering::SeqCst) < 100 {
            std::thread::yield_now();
        }
        drop(runtime);
        for s in spammers {
            assert!(s.join().unwrap() >= 1);
        }
    });
}

/// Probe: a Runtime built and dropped inside a coroutine of another hub
/// (plain `run`), and `block_on` there refused with `run`'s panic.
#[test]
fn a_runtime_inside_a_hub_builds_spawns_and_refuses_block_on() {
    within(10 * SLACK, "runtime in a hub", || {
        greenhub::run(|| {
            let runtime = Runtime::builder().hubs(2).build().unwrap();
            let handle = runtime.handle();
            // Joined from the outer hub's coroutine: parks, not blocks.
            let job = handle.spawn_on(1, || 6 * 7).unwrap();
            let beside = greenhub::spawn(|| 1);
            assert_eq!(job.join(), Ok(42));
            assert_eq!(beside.join().unwrap(), 1);
            let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                runtime.block_on(|| ())
            }));
            assert!(refused.is_err(), "block_on inside a hub panics as run does");
            assert_eq!(
                handle.spawn_on(1, || ()).unwrap_err(),
                SpawnError::NotRunning { index: 1 },
                "the refused block_on still stopped the hubs"
            );
        });
    });
}

/// Proves: `stats()` hides its own probes from `spawned` (cumulatively,
/// `spawned -= probes`), but `dump()` and `each_hub` probes are counted, so
/// merely reading the runtime's dump changes what `stats` reports as
/// spawned, and a hub that spawned nothing of the user's shows more than
/// its `main`.
#[test]
fn reading_dump_does_not_change_the_spawned_count() {
    within(10 * SLACK, "stats", || {
        let runtime = Runtime::builder().hubs(2).build().unwrap();
        let handle = runtime.handle();
        let before = handle.stats().per_hub[1].clone().unwrap().spawned;
        for _ in 0..5 {
            handle.dump();
            handle.each_hub(|| ());
        }
        let after = handle.stats().per_hub[1].clone().unwrap().spawned;
        assert_eq!(after, before, "introspection counted as spawned coroutines");
    });
}

/// Probe: each_hub from a coroutine of hub 1 runs once on every hub
/// (including its own, where it parks rather than deadlocks), by index.
#[test]
fn each_hub_from_a_hub_coroutine_runs_once_on_each_hub_in_order() {
    within(10 * SLACK, "each_hub", || {
        let runtime = Runtime::builder().hubs(3).build().unwrap();
        let handle = runtime.handle();
        let inner = handle.clone();
        runtime.block_on(move || {
            let ids = inner
                .spawn_on(1, {
                    let h = inner.clone();
                    move || h.each_hub(|| greenhub::hub_id().unwrap())
                })
                .unwrap()
                .join()
                .unwrap();
            let expected: Vec<_> = (0..3).map(|i| inner.hub_id(i)).collect();
            assert_eq!(ids, expected);
            assert_eq!(inner.current_hub(), Some(0));
        });
        // After block_on: hub 0 and the others gone, every slot None.
        assert_eq!(handle.each_hub(|| 1), vec![None, None, None]);
    });
}

/// Probe (issue-11 class): a remote receiver created on hub 0, first
/// parked there, then moved to hub 1 and parked there: the wake reaches
/// hub 1 (the waiter's hub), not the hub that made the channel.
#[test]
fn a_remote_receiver_moved_to_another_hub_is_woken_there() {
    within(10 * SLACK, "moved receiver", || {
        let runtime = Runtime::builder().hubs(2).build().unwrap();
        let handle = runtime.handle();
        runtime.block_on(move || {
            let (tx, rx) = greenhub::sync::remote_channel::<u32>();
            let t2 = tx.clone();
            greenhub::spawn(move || {
                greenhub::sleep(Duration::from_millis(5));
                t2.send(1).unwrap();
            });
            assert_eq!(rx.recv(), Ok(1)); // parked on hub 0 once
            let (parked_tx, parked_rx) = greenhub::sync::remote_channel::<()>();
            let got = handle
                .spawn_on(1, move || {
                    parked_tx.send(()).unwrap();
                    rx.recv()
                })
                .unwrap();
            parked_rx.recv().unwrap();
            greenhub::sleep(Duration::from_millis(5));
            tx.send(2).unwrap();
            assert_eq!(got.join().unwrap(), Ok(2));
        });
    });
}

/// Proves: with `RuntimeBuilder::stack_size`, each `spawn_on` job is two
/// coroutines (the job's, which waits, and the inner one with the asked
/// stack, `with_stack`), and `stats()` counts both: one parked job on a
/// hub reads as two alive, two spawned, and the stacks counted double.
#[test]
fn with_a_runtime_stack_size_one_job_is_one_coroutine_in_stats() {
    within(10 * SLACK, "stack_size stats", || {
        let runtime = Runtime::builder()
            .hubs(2)
            .stack_size(256 * 1024)
            .build()
            .unwrap();
        let handle = runtime.handle();
        let base = handle.stats().per_hub[1].clone().unwrap();
        let (tx, rx) = mpsc::channel();
        let _job = handle
            .spawn_on(1, move || {
                tx.send(()).unwrap();
                greenhub::sleep(Duration::from_secs(3600));
            })
            .unwrap();
        rx.recv().unwrap();
        let now = handle.stats().per_hub[1].clone().unwrap();
        assert_eq!(now.alive, base.alive + 1, "alive: {now:?}");
        assert_eq!(now.spawned, base.spawned + 1, "spawned: {now:?}");
    });
}

/// Probe: two plain threads reading `stats()` at once. Each probe leaves
/// only itself out, so when both run on a hub together one sees the
/// other as alive and runnable: hub 1 (only its `main`) may read 2 alive.
#[test]
fn concurrent_stats_readers_never_see_each_others_probes() {
    within(60 * SLACK, "concurrent stats", || {
        let runtime = Runtime::builder().hubs(2).build().unwrap();
        let handle = runtime.handle();
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let handle = handle.clone();
                std::thread::spawn(move || {
                    (0..2000)
                        .map(|_| handle.stats().per_hub[1].clone().unwrap().alive)
                        .max()
                        .unwrap()
                })
            })
            .collect();
        let worst = readers
            .into_iter()
            .map(|r| r.join().unwrap())
            .max()
            .unwrap();
        assert_eq!(worst, 1, "hub 1 runs only its main");
    });
}

/// Proves: `spawn_anywhere` is not round robin over the running hubs when
/// one does not run (hub 0 outside `block_on`): the cursor's turn for hub 0
/// falls through to hub 1, so of three hubs hub 1 gets two closures in
/// three and hub 2 one.
#[test]
fn spawn_anywhere_deals_evenly_over_the_running_hubs() {
    within(20 * SLACK, "spawn_anywhere balance", || {
        let runtime = Runtime::builder().hubs(3).build().unwrap();
        let handle = runtime.handle();
        let mut counts = [0usize; 3];
        for _ in 0..300 {
            let id = handle
                .spawn_anywhere(greenhub::hub_id)
                .unwrap()
                .join()
                .unwrap();
            let index = (0..3).find(|i| handle.hub_id(*i) == id).unwrap();
            counts[index] += 1;
        }
        assert_eq!(counts, [0, 150, 150], "hubs 1 and 2 alike");
        drop(runtime);
    });
}

/// Probe: shutdown while a hub's coroutine waits on a helper thread
/// (`unblock` of a long blocking call) returns without waiting for the call.
#[test]
fn shutdown_while_a_hub_waits_on_unblock_does_not_wait_for_the_helper() {
    within(5 * SLACK, "shutdown with unblock", || {
        let runtime = Runtime::builder().hubs(2).build().unwrap();
        let handle = runtime.handle();
        let (tx, rx) = mpsc::channel();
        let job = handle
            .spawn_on(1, move || {
                tx.send(()).unwrap();
                greenhub::unblock(|| std::thread::sleep(Duration::from_secs(30)))
            })
            .unwrap();
        rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        drop(runtime);
        assert!(matches!(job.join(), Err(JoinError::Killed)));
    });
}

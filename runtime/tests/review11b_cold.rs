//! Review 11b (cold reviewer): the neighbours of issue 11's items 7 to 12,
//! written against the public API only. Memory, panic-hook, overflow and
//! thread-count checks run in a child process (this binary re-run with
//! `REVIEW11B_CHILD=<test name>`), so tests running in parallel do not
//! disturb what they measure.

mod util;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use greenhub::{Group, JoinError, Pool};

const CHILD: &str = "REVIEW11B_CHILD";

/// Resident bytes of this process (`/proc/self/statm`).
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Threads of this process.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

const MIB: usize = 1 << 20;

/// Goes `bytes` deep on the stack in one frame (stack probes touch each page).
#[inline(never)]
fn touch<const N: usize>() -> u8 {
    let mut frame = [0u8; N];
    frame[0] = 1;
    frame[N - 1] = 1;
    std::hint::black_box(&mut frame);
    frame[0]
}

/// Idles the hub for about `ms` in several sleeps (each an idle wait that trims).
fn idle(ms: u64) {
    for _ in 0..(ms / 50).max(1) {
        greenhub::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------
// Item 8: pooled stacks must not keep their peak RSS forever.
// ---------------------------------------------------------------------------

/// 2,016 finished coroutines that each went 100 KiB deep, spread over 32
/// custom stack sizes (63 a size): the pool keeps 64 stacks *per size*
/// warm, so none is ever trimmed and ~200 MiB stay resident after idling.
#[test]
fn custom_stack_sizes_keep_2000_deep_finished_stacks_resident() {
    const NAME: &str = "custom_stack_sizes_keep_2000_deep_finished_stacks_resident";
    if util::other_child(CHILD, NAME) {
        return;
    }
    if util::is_child(CHILD, NAME) {
        let grown = greenhub::run(|| {
            idle(100);
            let before = rss();
            let handles: Vec<_> = (0..32usize)
                .flat_map(|size| {
                    (0..63).map(move |_| {
                        greenhub::Builder::new()
                            .stack_size(192 * 1024 + size * 4096)
                            .spawn(touch::<{ 100 * 1024 }>)
                            .unwrap()
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            idle(1000);
            rss().saturating_sub(before)
        });
        println!("GROWN {}", grown / MIB);
        assert!(
            grown < 64 * MIB,
            "after 1 s idle, {} MiB of 2,016 finished 100 KiB-deep stacks (32 custom sizes) are still resident",
            grown / MIB
        );
        return;
    }
    let (ok, out, err) = util::run_child(CHILD, NAME);
    assert!(ok, "child failed:\n{out}\n{err}");
}

/// 64 finished coroutines on 4 MiB stacks that each went 3 MiB deep: the
/// pool's 64 warm stacks are counted by number, not bytes, so 192 MiB stay
/// resident forever (the module doc says "64 deep stacks ... pin 8 MiB at most").
#[test]
fn sixty_four_big_custom_stacks_stay_resident_after_idling() {
    const NAME: &str = "sixty_four_big_custom_stacks_stay_resident_after_idling";
    if util::other_child(CHILD, NAME) {
        return;
    }
    if util::is_child(CHILD, NAME) {
        let grown = greenhub::run(|| {
            idle(100);
            let before = rss();
            let handles: Vec<_> = (0..64)
                .map(|_| {
                    greenhub::Builder::new()
                        .stack_size(4 * MIB)
                        .spawn(touch::<{ 3 * 1024 * 1024 }>)
                        .unwrap()
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            idle(1000);
            rss().saturating_sub(before)
        });
        println!("GROWN {}", grown / MIB);
        assert!(
            grown < 64 * MIB,
            "after 1 s idle, {} MiB of 64 finished 3 MiB-deep 4 MiB stacks are still resident",
            grown / MIB
        );
        return;
    }
    let (ok, out, err) = util::run_child(CHILD, NAME);
    assert!(ok, "child failed:\n{out}\n{err}");
}

#[test]
fn one_custom_size_is_trimmed_while_many_sleepers_stay_parked() {
    const NAME: &str = "one_custom_size_is_trimmed_while_many_sleepers_stay_parked";
    if util::other_child(CHILD, NAME) {
        return;
    }
    if util::is_child(CHILD, NAME) {
        let grown = greenhub::run(|| {
            let stop = Rc::new(Cell::new(false));
            let sleepers: Vec<_> = (0..100u64)
                .map(|i| {
                    let stop = stop.clone();
                    greenhub::spawn(move || {
                        while !stop.get() {
                            greenhub::sleep(Duration::from_micros(2000 + i * 20));
                        }
                    })
                })
                .collect();
            idle(100);
            let before = rss();
            let handles: Vec<_> = (0..2000)
                .map(|_| {
                    greenhub::Builder::new()
                        .stack_size(256 * 1024)
                        .spawn(util::touch_100k)
                        .unwrap()
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            idle(2000);
            let grown = rss().saturating_sub(before);
            stop.set(true);
            for s in sleepers {
                s.join().unwrap();
            }
            grown
        });
        println!("GROWN {}", grown / MIB);
        assert!(grown < 64 * MIB, "{} MiB still resident", grown / MIB);
        return;
    }
    let (ok, out, err) = util::run_child(CHILD, NAME);
    assert!(ok, "child failed:\n{out}\n{err}");
}

/// Many hubs one after another, each with a wave of deep coroutines: a
/// hub's pool is unmapped with it, so RSS does not add up.
#[test]
fn many_hubs_in_sequence_do_not_add_up_their_stacks() {
    const NAME: &str = "many_hubs_in_sequence_do_not_add_up_their_stacks";
    if util::other_child(CHILD, NAME) {
        return;
    }
    if util::is_child(CHILD, NAME) {
        greenhub::run(|| util::deep_wave(100));
        let before = rss();
        for _ in 0..20 {
            greenhub::run(|| util::deep_wave(500));
        }
        let grown = rss().saturating_sub(before);
        println!("GROWN {}", grown / MIB);
        assert!(
            grown < 64 * MIB,
            "{} MiB kept by 20 ended hubs",
            grown / MIB
        );
        return;
    }
    let (ok, out, err) = util::run_child(CHILD, NAME);
    assert!(ok, "child failed:\n{out}\n{err}");
}

// ---------------------------------------------------------------------------
// Item 9: stack overflow reports.
// ---------------------------------------------------------------------------

#[inline(never)]
fn recurse_big(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 1024]); // 8 KiB a frame
    if depth == u64::MAX {
        return 0;
    }
    std::hint::black_box(recurse_big(depth + 1)) + frame[0]
}

/// An unnamed coroutine that overflows: the report should name it the way
/// every other report does (`coroutine-ID`), not "(unnamed)", which says
/// nothing about which of thousands it was.
#[test]
fn an_unnamed_coroutine_that_overflows_is_named_by_its_id() {
    const NAME: &str = "an_unnamed_coroutine_that_overflows_is_named_by_its_id";
    if util::other_child(CHILD, NAME) {
        return;
    }
    if util::is_child(CHILD, NAME) {
        greenhub::run(|| {
            let h = greenhub::spawn(|| recurse_big(0));
            println!("ID {}", h.id());
            let _ = h.join();
        });
        return;
    }
    let (ok, out, err) = util::run_child(CHILD, NAME);
    assert!(!ok);
    let id: u64 = out
        .lines()
        .find_map(|l| l.split("ID ").nth(1))
        .expect("child printed its id")
        .trim()
        .parse()
        .unwrap();
    assert!(err.contains("has overflowed its stack"), "{err}");
    assert!(
        err.contains(&format!("coroutine-{id}")),
        "the overflow report does not name coroutine-{id}:\n{err}"
    );
}

/// One frame bigger than the 64 KiB guard, on a small custom stack, next
/// to a live neighbour: reported as an overflow by name, no corruption.
#[test]
fn a_frame_bigger_than_the_guard_on_a_small_stack_is_an_overflow_by_name() {
    const NAME: &str = "a_frame_bigger_than_the_guard_on_a_small_stack_is_an_overflow_by_name";
    if util::other_child(CHILD, NAME) {
        return;
    }
    if util::is_child(CHILD, NAME) {
        greenhub::run(|| {
            let neighbours: Vec<_> = (0..4)
                .map(|_| {
                    greenhub::Builder::new()
                        .stack_size(32 * 1024)
                        .spawn(|| {
                            let canary = [0x5au8; 16 * 1024];
                            greenhub::sleep(Duration::from_millis(200));
                            assert!(canary.iter().all(|&b| b == 0x5a), "neighbour corrupted");
                        })
                        .unwrap()
                })
                .collect();
            greenhub::yield_now();
            let big = greenhub::Builder::new()
                .name("bigframe")
                .stack_size(32 * 1024)
                .spawn(touch::<{ 128 * 1024 }>)
                .unwrap();
            let _ = big.join();
            for n in neighbours {
                n.join().unwrap();
            }
            println!("SURVIVED");
        });
        return;
    }
    let (ok, out, err) = util::run_child(CHILD, NAME);
    assert!(
        !ok,
        "a 128 KiB frame on a 32 KiB stack ran to the end:\n{out}\n{err}"
    );
    assert!(
        err.contains("coroutine 'bigframe' has overflowed its stack"),
        "{err}"
    );
}

/// A frame of 5 KiB at a time (bigger than a page, smaller than the
/// guard) in a remote-spawned coroutine (named `remote`).
#[test]
fn a_remote_coroutine_that_overflows_is_reported_by_name() {
    const NAME: &str = "a_remote_coroutine_that_overflows_is_reported_by_name";
    if util::other_child(CHILD, NAME) {
        return;
    }
    if util::is_child(CHILD, NAME) {
        greenhub::run(|| {
            let handle = greenhub::handle();
            let job = handle.spawn(|| recurse_big(0)).unwrap();
            drop(handle);
            let _ = job.join();
        });
        return;
    }
    let (ok, _out, err) = util::run_child(CHILD, NAME);
    assert!(!ok);
    assert!(
        err.contains("coroutine 'remote' has overflowed its stack"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// Item 12: panic reports.
// ---------------------------------------------------------------------------

/// A user installs a panic hook (to count panics, send them to Sentry...)
/// before starting the hub. A coroutine's panic must still reach it
/// (chained), besides greenhub's own named report.
#[test]
fn a_users_panic_hook_set_before_run_sees_coroutine_panics() {
    const NAME: &str = "a_users_panic_hook_set_before_run_sees_coroutine_panics";
    if util::other_child(CHILD, NAME) {
        return;
    }
    if util::is_child(CHILD, NAME) {
        static SEEN: AtomicUsize = AtomicUsize::new(0);
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            SEEN.fetch_add(1, Ordering::SeqCst);
            eprintln!("USER HOOK SAW A PANIC");
            previous(info);
        }));
        let result = greenhub::run(|| {
            greenhub::Builder::new()
                .name("worker")
                .spawn(|| panic!("worker failed"))
                .unwrap()
                .join()
        });
        assert_eq!(result, Err(JoinError::Panicked("worker failed".into())));
        println!("SEEN {}", SEEN.load(Ordering::SeqCst));
        return;
    }
    let (ok, out, err) = util::run_child(CHILD, NAME);
    assert!(ok, "child failed:\n{out}\n{err}");
    assert!(err.contains("coroutine 'worker' panicked"), "{err}");
    assert!(
        out.contains("SEEN 1"),
        "the user's own panic hook never saw the coroutine's panic:\nstdout: {out}\nstderr: {err}"
    );
}

/// A user hook installed after greenhub's (inside `main`), chaining to the
/// previous one: greenhub's named report must still come.
#[test]
fn a_users_hook_chained_after_greenhubs_keeps_the_named_report() {
    const NAME: &str = "a_users_hook_chained_after_greenhubs_keeps_the_named_report";
    if util::other_child(CHILD, NAME) {
        return;
    }
    if util::is_child(CHILD, NAME) {
        greenhub::run(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                eprintln!("USER HOOK SAW A PANIC");
                previous(info);
            }));
            let r = greenhub::Builder::new()
                .name("worker2")
                .spawn(|| panic!("worker2 failed"))
                .unwrap()
                .join();
            assert!(r.is_err());
        });
        return;
    }
    let (ok, out, err) = util::run_child(CHILD, NAME);
    assert!(ok, "child failed:\n{out}\n{err}");
    assert!(err.contains("USER HOOK SAW A PANIC"), "{err}");
    assert!(err.contains("coroutine 'worker2' panicked"), "{err}");
}

/// A panic inside an `unblock` job is resumed in the calling coroutine,
/// which dies of it: the report should name that coroutine, not only the
/// helper thread.
#[test]
fn a_panic_resumed_from_an_unblock_job_names_the_coroutine() {
    const NAME: &str = "a_panic_resumed_from_an_unblock_job_names_the_coroutine";
    if util::other_child(CHILD, NAME) {
        return;
    }
    if util::is_child(CHILD, NAME) {
        let r = greenhub::run(|| {
            greenhub::Builder::new()
                .name("jobber")
                .spawn(|| greenhub::unblock(|| -> u32 { panic!("job exploded") }))
                .unwrap()
                .join()
        });
        assert_eq!(r.unwrap_err(), JoinError::Panicked("job exploded".into()));
        return;
    }
    let (ok, out, err) = util::run_child(CHILD, NAME);
    assert!(ok, "child failed:\n{out}\n{err}");
    assert!(err.contains("job exploded"), "{err}");
    assert!(
        err.contains("'jobber'"),
        "the coroutine killed by the job's panic is never named:\n{err}"
    );
}

/// A detached coroutine's return value whose `Drop` panics: user code, so
/// reported as the coroutine's panic (the hook names it), and the hub
/// goes on; it must not be called an "internal panic" of the runtime.
#[test]
fn a_panicking_drop_of_a_detached_return_value_is_not_an_internal_panic() {
    const NAME: &str = "a_panicking_drop_of_a_detached_return_value_is_not_an_internal_panic";
    if util::other_child(CHILD, NAME) {
        return;
    }
    if util::is_child(CHILD, NAME) {
        struct Bomb;
        impl Drop for Bomb {
            fn drop(&mut self) {
                panic!("bomb in drop");
            }
        }
        let n = greenhub::run(|| {
            drop(
                greenhub::Builder::new()
                    .name("bomber")
                    .spawn(|| Bomb)
                    .unwrap(),
            );
            greenhub::sleep(Duration::from_millis(10));
            let after: Vec<_> = (0..10).map(|i| greenhub::spawn(move || i)).collect();
            after.into_iter().map(|h| h.join().unwrap()).sum::<i32>()
        });
        assert_eq!(n, 45);
        println!("HUB WENT ON");
        return;
    }
    let (ok, out, err) = util::run_child(CHILD, NAME);
    assert!(ok, "child failed:\n{out}\n{err}");
    assert!(out.contains("HUB WENT ON"));
    assert!(err.contains("coroutine 'bomber' panicked"), "{err}");
    assert!(
        !err.contains("internal panic"),
        "a user destructor's panic is reported as the runtime's internal panic:\n{err}"
    );
}

/// A destructor that panics while a coroutine unwinds from its own panic:
/// Rust aborts; the report must still name the coroutine first.
#[test]
fn a_panic_in_drop_during_a_panic_names_the_coroutine_before_the_abort() {
    const NAME: &str = "a_panic_in_drop_during_a_panic_names_the_coroutine_before_the_abort";
    if util::other_child(CHILD, NAME) {
        return;
    }
    if util::is_child(CHILD, NAME) {
        struct Bomb;
        impl Drop for Bomb {
            fn drop(&mut self) {
                panic!("second panic in drop");
            }
        }
        greenhub::run(|| {
            let _ = greenhub::Builder::new()
                .name("doubly")
                .spawn(|| {
                    let _b = Bomb;
                    panic!("first panic");
                })
                .unwrap()
                .join();
        });
        return;
    }
    let (_ok, _out, err) = util::run_child(CHILD, NAME);
    assert!(err.contains("coroutine 'doubly' panicked"), "{err}");
    assert!(err.contains("first panic"), "{err}");
    assert!(err.contains("second panic in drop"), "{err}");
}

/// The blocking monitor with no `log` backend writes to stderr, also for
/// a coroutine that blocks in its return value's destructor.
#[test]
fn the_monitor_writes_to_stderr_without_a_logger() {
    const NAME: &str = "the_monitor_writes_to_stderr_without_a_logger";
    if util::other_child(CHILD, NAME) {
        return;
    }
    if util::is_child(CHILD, NAME) {
        struct Slow;
        impl Drop for Slow {
            fn drop(&mut self) {
                std::thread::sleep(Duration::from_millis(400));
            }
        }
        greenhub::HubBuilder::new()
            .max_blocking_time(Duration::from_millis(50))
            .run(|| {
                let spinner = greenhub::Builder::new()
                    .name("spinner")
                    .spawn(|| std::thread::sleep(Duration::from_millis(400)))
                    .unwrap();
                spinner.join().unwrap();
                drop(
                    greenhub::Builder::new()
                        .name("slowdrop")
                        .spawn(|| Slow)
                        .unwrap(),
                );
                greenhub::sleep(Duration::from_millis(500));
            });
        return;
    }
    let (ok, out, err) = util::run_child(CHILD, NAME);
    assert!(ok, "child failed:\n{out}\n{err}");
    assert!(err.contains("'spinner'"), "{err}");
    assert!(err.contains("'slowdrop'"), "{err}");
}

/// Many short hubs with the blocking monitor on (a long threshold, as
/// `GREENHUB_MAX_BLOCKING_MS=60000` gives every hub): each hub's monitor
/// thread should end with its hub, not linger a quarter of the threshold.
#[test]
fn monitor_threads_do_not_pile_up_over_many_short_hubs() {
    const NAME: &str = "monitor_threads_do_not_pile_up_over_many_short_hubs";
    if util::other_child(CHILD, NAME) {
        return;
    }
    if util::is_child(CHILD, NAME) {
        let before = threads();
        for _ in 0..40 {
            greenhub::HubBuilder::new()
                .max_blocking_time(Duration::from_secs(60))
                .run(|| greenhub::sleep(Duration::from_millis(1)));
        }
        std::thread::sleep(Duration::from_millis(500));
        let after = threads();
        println!("THREADS {before} -> {after}");
        assert!(
            after < before + 10,
            "40 ended hubs left {} threads behind ({before} -> {after})",
            after - before
        );
        return;
    }
    let (ok, out, err) = util::run_child(CHILD, NAME);
    assert!(ok, "child failed:\n{out}\n{err}");
}

// ---------------------------------------------------------------------------
// Item 10: unblock.
// ---------------------------------------------------------------------------

/// Helper threads of ended hubs exit: 20 hubs in a row, each with a burst
/// of 16 jobs, leave no helper threads behind.
#[test]
fn helper_threads_of_ended_hubs_exit() {
    const NAME: &str = "helper_threads_of_ended_hubs_exit";
    if util::other_child(CHILD, NAME) {
        return;
    }
    if util::is_child(CHILD, NAME) {
        let before = threads();
        for _ in 0..20 {
            greenhub::HubBuilder::new().max_helpers(16).run(|| {
                let jobs: Vec<_> = (0..16)
                    .map(|_| {
                        greenhub::spawn(|| {
                            greenhub::unblock(|| std::thread::sleep(Duration::from_millis(20)))
                                .unwrap()
                        })
                    })
                    .collect();
                jobs.into_iter().for_each(|j| j.join().unwrap());
            });
        }
        std::thread::sleep(Duration::from_millis(500));
        let after = threads();
        println!("THREADS {before} -> {after}");
        assert!(after < before + 8, "{before} -> {after}");
        return;
    }
    let (ok, out, err) = util::run_child(CHILD, NAME);
    assert!(ok, "child failed:\n{out}\n{err}");
}

/// A job still running when its hub ends: `run` returns without waiting for
/// it (the job blocks until after `run` returned), and its late completion
/// harms nothing; a second hub on the thread works.
#[test]
fn a_job_finishing_after_its_hub_ended_is_harmless() {
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Arc::new(Mutex::new(release_rx));
    let finished = Arc::new(AtomicUsize::new(0));
    let (done_tx, done_rx) = mpsc::channel();
    let watchdog = {
        let finished = finished.clone();
        std::thread::spawn(move || {
            let r = release_rx.clone();
            let f = finished.clone();
            greenhub::run(move || {
                let r = r.clone();
                let f = f.clone();
                greenhub::spawn(move || {
                    let _ = greenhub::unblock(move || {
                        let _ = r.lock().unwrap().recv_timeout(Duration::from_secs(10));
                        f.fetch_add(1, Ordering::SeqCst);
                        vec![0u8; 1024]
                    });
                });
                greenhub::sleep(Duration::from_millis(20));
            });
            done_tx.send(()).unwrap();
            assert_eq!(greenhub::run(|| 7), 7);
        })
    };
    done_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("run waited for a helper job whose coroutine was killed at shutdown");
    assert_eq!(finished.load(Ordering::SeqCst), 0);
    release_tx.send(()).unwrap();
    watchdog.join().unwrap();
    let start = Instant::now();
    while finished.load(Ordering::SeqCst) == 0 && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(finished.load(Ordering::SeqCst), 1);
}

/// Jobs whose coroutines timed out do not hold helpers hostage from the
/// hub's point of view: with max_helpers(2) and two abandoned (still
/// running) jobs, a third unblock still completes once one frees, and the
/// timed-out callers got TimedOut errors.
#[test]
fn timed_out_jobs_still_finish_and_later_jobs_run() {
    let got = greenhub::HubBuilder::new().max_helpers(2).run(|| {
        let mut errs = Vec::new();
        for _ in 0..2 {
            let r = greenhub::timeout(Duration::from_millis(10), || {
                greenhub::unblock(|| std::thread::sleep(Duration::from_millis(300)))
            });
            errs.push(format!("{r:?}"));
        }
        let v = greenhub::unblock(|| 5).unwrap();
        (errs, v)
    });
    assert_eq!(got.1, 5);
    for e in &got.0 {
        assert!(
            e.contains("Elapsed") || e.contains("TimedOut") || e.contains("Err"),
            "{e}"
        );
    }
}

/// A host-name connect must not queue behind long user jobs even when the
/// user's jobs outnumber every thread (helpers *and* resolvers).
#[test]
fn localhost_connect_is_not_stuck_behind_a_flood_of_user_jobs() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release = Arc::new(Mutex::new(release_rx));
    let outcome = greenhub::HubBuilder::new().max_helpers(2).run(move || {
        let _jobs: Vec<_> = (0..8)
            .map(|_| {
                let release = release.clone();
                greenhub::spawn(move || {
                    greenhub::unblock(move || {
                        let _ = release.lock().unwrap().recv_timeout(Duration::from_secs(5));
                    })
                })
            })
            .collect();
        greenhub::sleep(Duration::from_millis(20));
        let r = greenhub::timeout(Duration::from_secs(3), || {
            greenhub::net::TcpStream::connect(format!("localhost:{port}"))
        });
        drop(release_tx);
        r.map(|c| c.is_ok())
    });
    assert_eq!(
        outcome.ok(),
        Some(true),
        "connect(localhost) queued behind user jobs"
    );
}

// ---------------------------------------------------------------------------
// Item 11: cross-thread posting.
// ---------------------------------------------------------------------------

/// 4 threads post 3,000 spawns each while the hub alternates between busy
/// (a coroutine yielding in a loop) and idle: every job runs exactly once,
/// in order per sender.
#[test]
fn remote_spawns_from_many_threads_run_once_in_order_per_sender() {
    let log = greenhub::run(|| {
        let log = Arc::new(Mutex::new(Vec::<(usize, usize)>::new()));
        let handle = greenhub::handle();
        let busy = Rc::new(Cell::new(true));
        let spinner = {
            let busy = busy.clone();
            greenhub::spawn(move || {
                let start = Instant::now();
                while busy.get() && start.elapsed() < Duration::from_secs(8) {
                    // busy for 2 ms, idle for 2 ms
                    let t = Instant::now();
                    while t.elapsed() < Duration::from_millis(2) {
                        greenhub::yield_now();
                    }
                    greenhub::sleep(Duration::from_millis(2));
                }
            })
        };
        let senders: Vec<_> = (0..4)
            .map(|s| {
                let handle = handle.clone();
                let log = log.clone();
                std::thread::spawn(move || {
                    let mut joins = Vec::new();
                    for i in 0..3000 {
                        let log = log.clone();
                        joins.push(
                            handle
                                .spawn(move || log.lock().unwrap().push((s, i)))
                                .unwrap(),
                        );
                        if i % 500 == 0 {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    }
                    joins.into_iter().for_each(|j| j.join().unwrap());
                })
            })
            .collect();
        drop(handle);
        for s in senders {
            greenhub::unblock(move || s.join().unwrap()).unwrap();
        }
        busy.set(false);
        spinner.join().unwrap();
        let log = log.lock().unwrap().clone();
        log
    });
    assert_eq!(log.len(), 12_000);
    for s in 0..4 {
        let mine: Vec<usize> = log
            .iter()
            .filter(|(w, _)| *w == s)
            .map(|(_, i)| *i)
            .collect();
        assert_eq!(mine, (0..3000).collect::<Vec<_>>(), "sender {s}");
    }
}

/// A thread that keeps posting while the hub ends: every accepted post
/// either runs once or joins as Killed, the first refusal is HubClosed,
/// and nothing hangs.
#[test]
fn posting_while_the_hub_ends_is_run_or_killed_then_refused() {
    let (tx, rx) = mpsc::channel();
    let ran = Arc::new(AtomicUsize::new(0));
    let hub = std::thread::spawn(move || {
        greenhub::run(move || {
            tx.send(greenhub::handle()).unwrap();
            greenhub::sleep(Duration::from_millis(30));
        })
    });
    let handle = rx.recv().unwrap();
    let mut accepted = Vec::new();
    let start = Instant::now();
    let refused = loop {
        let ran = ran.clone();
        match handle.spawn(move || {
            ran.fetch_add(1, Ordering::SeqCst);
        }) {
            Ok(j) => accepted.push(j),
            Err(e) => break e,
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "posts never refused"
        );
    };
    assert_eq!(refused, greenhub::HubClosed);
    assert!(!handle.is_open());
    let mut ok = 0;
    for j in accepted {
        match j.join() {
            Ok(()) => ok += 1,
            Err(JoinError::Killed) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    hub.join().unwrap();
    assert_eq!(ok, ran.load(Ordering::SeqCst));
    handle.wake(); // after the end: harmless
}

// ---------------------------------------------------------------------------
// Item 7: Group / Pool.
// ---------------------------------------------------------------------------

/// A member's return value whose Drop calls back into the group in every
/// way: len, spawn, join_all, kill_all. No "already borrowed", no deadlock.
#[test]
fn a_return_value_dropping_into_its_group_in_every_way() {
    struct Back(Rc<Group>, Rc<RefCell<Vec<String>>>, u32);
    impl Drop for Back {
        fn drop(&mut self) {
            let g = &self.0;
            self.1.borrow_mut().push(format!("len {}", g.len()));
            match self.2 {
                0 => {
                    let log = self.1.clone();
                    drop(g.spawn(move || log.borrow_mut().push("child ran".into())));
                }
                1 => {
                    let r = g.join_all(Some(Duration::from_secs(2)));
                    self.1.borrow_mut().push(format!("join {r:?}"));
                }
                _ => {
                    let r = g.kill_all();
                    self.1.borrow_mut().push(format!("kill {r:?}"));
                }
            }
        }
    }
    let (log, left) = greenhub::run(|| {
        let log = Rc::new(RefCell::new(Vec::new()));
        let group = Rc::new(Group::new());
        // a long member that kill_all will kill
        group.spawn(|| greenhub::sleep(Duration::from_secs(3600)));
        for k in 0..3 {
            let (g, l) = (group.clone(), log.clone());
            drop(group.spawn(move || {
                greenhub::sleep(Duration::from_millis(5 * (k as u64 + 1)));
                Back(g, l, k)
            }));
        }
        let r = greenhub::timeout(Duration::from_secs(5), || group.join_all(None));
        // let the destructors still parked in join_all / kill_all finish
        for _ in 0..100 {
            if log.borrow().len() >= 6 {
                break;
            }
            greenhub::sleep(Duration::from_millis(10));
        }
        (log.take(), (r.map(|r| r.is_ok()), group.len()))
    });
    assert_eq!(left, (Ok(true), 0), "log: {log:?}");
    assert!(log.iter().any(|l| l == "child ran"), "{log:?}");
    assert!(log.iter().any(|l| l.starts_with("kill Ok")), "{log:?}");
    assert!(log.iter().any(|l| l.starts_with("join Ok")), "{log:?}");
}

/// A pool of 2, full: a member's return value spawns into the pool from
/// its Drop (parking for a slot); a member is killed; one panics. All
/// slots come back and everything finishes.
#[test]
fn a_full_pool_with_reentrant_drops_kills_and_panics_gives_every_slot_back() {
    struct Again(Rc<Pool>, Rc<Cell<u32>>);
    impl Drop for Again {
        fn drop(&mut self) {
            let n = self.1.clone();
            let r = self.0.spawn(move || n.set(n.get() + 1));
            assert!(r.is_ok(), "{:?}", r.err());
        }
    }
    let (free, size, len, ran) = greenhub::run(|| {
        let pool = Rc::new(Pool::new(2));
        let ran = Rc::new(Cell::new(0));
        let victim = pool
            .spawn(|| greenhub::sleep(Duration::from_secs(3600)))
            .unwrap();
        let (p, r) = (pool.clone(), ran.clone());
        drop(
            pool.spawn(move || {
                greenhub::sleep(Duration::from_millis(5));
                Again(p, r)
            })
            .unwrap(),
        );
        // full now: this parks until the victim is killed
        let killer = greenhub::spawn(move || {
            greenhub::sleep(Duration::from_millis(20));
            victim.kill();
        });
        let panicker = pool
            .spawn(|| -> () {
                greenhub::sleep(Duration::from_millis(5));
                panic!("pool member fails")
            })
            .unwrap();
        let _ = pool.spawn(|| ()).unwrap();
        assert!(matches!(panicker.join(), Err(JoinError::Panicked(_))));
        killer.join().unwrap();
        greenhub::timeout(Duration::from_secs(5), || pool.join_all(None))
            .unwrap()
            .unwrap();
        greenhub::sleep(Duration::from_millis(5));
        (pool.free_count(), pool.size(), pool.len(), ran.get())
    });
    assert_eq!(ran, 1);
    assert_eq!(len, 0);
    assert_eq!(free, size);
}

/// An accept loop spawning a member per connection into a group (values
/// and handles dropped): memory and the group stay flat over 50,000
/// short-lived members with 1 KiB return values.
#[test]
fn a_group_fed_by_an_accept_loop_stays_flat() {
    let (len, grown) = greenhub::run(|| {
        let group = Group::new();
        let wave = |n: usize| {
            for _ in 0..n {
                drop(group.spawn(|| {
                    greenhub::yield_now();
                    vec![7u8; 1024]
                }));
                if group.len() > 100 {
                    greenhub::sleep(Duration::from_millis(1));
                }
            }
            group.join_all(None).unwrap();
        };
        wave(5_000);
        let before = rss();
        wave(50_000);
        (group.len(), rss().saturating_sub(before))
    });
    assert_eq!(len, 0);
    assert!(grown < 32 * MIB, "grew {} MiB", grown / MIB);
}

/// `Pool::imap_unordered` over a pool where one item runs long: each
/// `next` waits on every running handle; the long one must not collect a
/// waiter per call (checked through memory over many items).
#[test]
fn imap_unordered_with_one_long_item_stays_flat() {
    let (count, grown) = greenhub::run(|| {
        let pool = Pool::new(4);
        let items = 0..40_000u32;
        let it = pool.imap_unordered(items, |i| {
            if i == 0 {
                greenhub::sleep(Duration::from_millis(1500));
            } else {
                greenhub::yield_now();
            }
            i
        });
        let mut count = 0;
        let mut before = 0;
        for r in it {
            r.unwrap();
            count += 1;
            if count == 2000 {
                before = rss();
            }
        }
        (count, rss().saturating_sub(before))
    });
    assert_eq!(count, 40_000);
    assert!(grown < 32 * MIB, "grew {} MiB", grown / MIB);
}

/// A detached coroutine's return value whose `Drop` parks (it flushes a
/// buffer to a socket, say) when the hub ends: the shutdown's kill
/// unwinds out of that destructor, outside the trampoline's
/// `catch_unwind`, and the runtime reports its own kill signal as an
/// "internal panic ... Box<dyn Any>".
#[test]
fn a_return_value_whose_drop_parks_at_shutdown_is_no_internal_panic() {
    const NAME: &str = "a_return_value_whose_drop_parks_at_shutdown_is_no_internal_panic";
    if util::other_child(CHILD, NAME) {
        return;
    }
    if util::is_child(CHILD, NAME) {
        struct Flush;
        impl Drop for Flush {
            fn drop(&mut self) {
                greenhub::sleep(Duration::from_secs(3600));
            }
        }
        greenhub::run(|| {
            drop(
                greenhub::Builder::new()
                    .name("flusher")
                    .spawn(|| Flush)
                    .unwrap(),
            );
            greenhub::sleep(Duration::from_millis(20));
        });
        println!("RUN RETURNED");
        return;
    }
    let (ok, out, err) = util::run_child(CHILD, NAME);
    assert!(ok, "child failed:\n{out}\n{err}");
    assert!(out.contains("RUN RETURNED"));
    assert!(
        !err.contains("internal panic"),
        "a kill at shutdown is reported as an internal panic:\n{err}"
    );
}

/// A member kills its own group (a supervisor giving up): the others are
/// killed and unwound, the caller unwinds at its next park, nothing hangs.
#[test]
fn a_member_killing_its_own_group_does_not_hang() {
    let (outcome, len, log) = greenhub::run(|| {
        let log = util::journal();
        let group = Rc::new(Group::new());
        for _ in 0..5 {
            let log = log.clone();
            group.spawn(move || {
                let _f = util::DropFlag(log, "worker unwound");
                greenhub::sleep(Duration::from_secs(3600));
            });
        }
        let g = group.clone();
        let l = log.clone();
        let boss = group.spawn(move || {
            let _f = util::DropFlag(l, "boss unwound");
            greenhub::sleep(Duration::from_millis(5));
            let _ = g.kill_all();
            greenhub::sleep(Duration::from_secs(3600));
        });
        let outcome = greenhub::timeout(Duration::from_secs(5), || boss.join());
        let len = group.len();
        let log = log.borrow().clone();
        (format!("{outcome:?}"), len, log)
    });
    assert_eq!(outcome, "Ok(Err(Killed))");
    assert_eq!(len, 0);
    assert_eq!(log.iter().filter(|l| **l == "worker unwound").count(), 5);
    assert!(log.contains(&"boss unwound"));
}

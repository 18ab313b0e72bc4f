//! `unblock` and host names: blocking calls leave the hub free.

use std::cell::Cell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use greenhub::net::{TcpListener, TcpStream};

#[test]
fn a_blocking_call_on_a_helper_thread_leaves_cron_ticking() {
    let (ticks_during_call, value) = greenhub::run(|| {
        let ticks = Arc::new(AtomicU32::new(0));
        let counter = ticks.clone();
        let cron = greenhub::Builder::new()
            .name("cron")
            .spawn(move || loop {
                greenhub::sleep(Duration::from_millis(2));
                counter.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        let before = ticks.load(Ordering::SeqCst);
        let seen = ticks.clone();
        // The helper blocks its thread until cron has ticked three times (a
        // condition, not a fixed time); if the hub were blocked too, cron
        // could not tick and the call would give up after a minute.
        let value = greenhub::unblock(move || {
            let start = Instant::now();
            while seen.load(Ordering::SeqCst) < before + 3
                && start.elapsed() < Duration::from_secs(60)
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            42
        })
        .unwrap();
        cron.kill();
        (ticks.load(Ordering::SeqCst) - before, value)
    });
    assert_eq!(value, 42);
    assert!(
        ticks_during_call >= 3,
        "cron did not keep ticking while the helper thread blocked"
    );
}

#[test]
fn connecting_by_host_name_resolves_off_the_hub_while_cron_ticks() {
    let (reply, helpers, ticks) = greenhub::run(|| {
        let ticks = Rc::new(Cell::new(0u32));
        let counter = ticks.clone();
        let cron = greenhub::spawn(move || loop {
            counter.set(counter.get() + 1);
            greenhub::sleep(Duration::from_millis(1));
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = greenhub::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            conn.write_all(b"hello").unwrap();
        });
        let mut conn = TcpStream::connect(("localhost", port))
            .or_else(|_| TcpStream::connect(format!("localhost:{port}")))
            .unwrap();
        let mut reply = String::new();
        conn.read_to_string(&mut reply).unwrap();
        server.join().unwrap();
        cron.kill();
        (reply, greenhub::stats().helper_threads, ticks.get())
    });
    assert_eq!(reply, "hello");
    assert_eq!(helpers, 1, "the name was resolved on a helper thread");
    assert!(ticks > 0);
}

#[test]
fn a_panic_in_a_helper_job_comes_back_to_the_caller() {
    greenhub::run(|| {
        let caught = std::panic::catch_unwind(|| greenhub::unblock(|| panic!("helper failed")));
        assert!(caught.is_err());
        assert_eq!(greenhub::unblock(|| 3).unwrap(), 3, "the pool survives");
    });
}

#[test]
fn the_helper_pool_is_bounded_and_every_job_still_runs() {
    let (done, helpers) = greenhub::HubBuilder::new().max_helpers(4).run(|| {
        let jobs: Vec<_> = (0..12)
            .map(|n| {
                greenhub::spawn(move || {
                    greenhub::unblock(move || {
                        std::thread::sleep(Duration::from_millis(20));
                        n
                    })
                })
            })
            .collect();
        let done: usize = jobs.into_iter().map(|j| j.join().unwrap().unwrap()).sum();
        (done, greenhub::stats().helper_threads)
    });
    assert_eq!(done, (0..12).sum());
    assert!(helpers <= 4, "{helpers} helper threads");
}

/// Regression: a burst of jobs ran one after another on the one helper that
/// happened to be idle. Each job here waits until all eight run at once, so
/// they only all succeed if the burst was spread over eight threads.
#[test]
fn a_burst_of_unblock_jobs_runs_on_as_many_helpers_at_once() {
    use std::sync::{Arc, Condvar, Mutex};
    const JOBS: usize = 8;
    let met = Arc::new((Mutex::new(0usize), Condvar::new()));
    let all_met = greenhub::HubBuilder::new().max_helpers(JOBS).run(move || {
        // One finished job first, so an idle helper exists when the burst
        // comes: the case that used to serialise it.
        greenhub::unblock(|| ()).unwrap();
        let jobs: Vec<_> = (0..JOBS)
            .map(|_| {
                let met = met.clone();
                greenhub::spawn(move || {
                    greenhub::unblock(move || {
                        let (count, cv) = &*met;
                        let mut count = count.lock().unwrap();
                        *count += 1;
                        cv.notify_all();
                        let (count, _) = cv
                            .wait_timeout_while(count, Duration::from_secs(30), |n| *n < JOBS)
                            .unwrap();
                        *count >= JOBS
                    })
                    .unwrap()
                })
            })
            .collect();
        jobs.into_iter().all(|job| job.join().unwrap())
    });
    assert!(all_met, "the burst did not run on {JOBS} helpers at once");
}

#[test]
fn unblock_while_the_hub_shuts_down_is_an_error_not_a_hang() {
    let outcome = std::rc::Rc::new(std::cell::RefCell::new(None));
    let seen = outcome.clone();
    greenhub::run(move || {
        struct CallsUnblockOnDrop(std::rc::Rc<std::cell::RefCell<Option<String>>>);
        impl Drop for CallsUnblockOnDrop {
            fn drop(&mut self) {
                let result = greenhub::unblock(|| 1).map_err(|e| e.to_string());
                *self.0.borrow_mut() = Some(format!("{result:?}"));
            }
        }
        greenhub::spawn(move || {
            let _guard = CallsUnblockOnDrop(seen);
            greenhub::sleep(Duration::from_secs(3600));
        });
        greenhub::yield_now();
        // main returns: the sleeper is killed, and its destructor runs
    });
    let outcome = outcome.borrow().clone().expect("the destructor ran");
    assert!(
        outcome.starts_with("Err(") && outcome.contains("unwinding"),
        "{outcome}"
    );
}

/// Name resolution has its own lane: a host-name connect completes while
/// every `unblock` helper is busy.
#[test]
fn a_host_name_resolves_while_every_helper_thread_is_busy() {
    let reply = greenhub::HubBuilder::new().max_helpers(1).run(|| {
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let busy = greenhub::spawn(move || {
            greenhub::unblock(move || blocked.recv_timeout(Duration::from_secs(30))).unwrap()
        });
        greenhub::yield_now();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = greenhub::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            conn.write_all(b"ok").unwrap();
        });
        let mut conn = TcpStream::connect(("localhost", port))
            .or_else(|_| TcpStream::connect(format!("localhost:{port}")))
            .unwrap();
        let mut reply = String::new();
        conn.read_to_string(&mut reply).unwrap();
        server.join().unwrap();
        release.send(()).unwrap();
        busy.join().unwrap().unwrap();
        reply
    });
    assert_eq!(reply, "ok");
}

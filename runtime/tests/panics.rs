//! A panic stops its own coroutine only; `join` reports it, `run` propagates
//! a panic of `main`.

use std::time::Duration;

use greenhub::JoinError;

#[test]
fn a_panicking_coroutine_stops_alone_and_join_reports_it() {
    let (healthy, failed) = greenhub::run(|| {
        let healthy: Vec<_> = (0..10u64)
            .map(|i| {
                greenhub::spawn(move || {
                    greenhub::sleep(Duration::from_millis(i));
                    i
                })
            })
            .collect();
        let failing = greenhub::Builder::new()
            .name("doomed")
            .spawn(|| -> u64 {
                greenhub::sleep(Duration::from_millis(3));
                panic!("boom in doomed")
            })
            .unwrap();
        let failed = failing.join();
        let healthy: u64 = healthy.into_iter().map(|h| h.join().unwrap()).sum();
        (healthy, failed)
    });
    assert_eq!(healthy, (0..10).sum());
    assert_eq!(failed, Err(JoinError::Panicked("boom in doomed".into())));
}

#[test]
fn a_panic_in_main_propagates_out_of_run() {
    let caught = std::panic::catch_unwind(|| {
        greenhub::run(|| {
            greenhub::spawn(|| greenhub::sleep(Duration::from_secs(3600)));
            greenhub::sleep(Duration::from_millis(1));
            panic!("main gives up");
        })
    });
    let payload = caught.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"main gives up"));
    // The hub is gone and the thread can run another.
    assert_eq!(greenhub::run(|| 5), 5);
}

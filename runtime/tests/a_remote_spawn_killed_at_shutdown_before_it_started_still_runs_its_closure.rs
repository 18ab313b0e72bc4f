//! A coroutine that has not started when it is killed "never runs its
//! closure" (`JoinHandle::kill`'s doc, and what `shutdown` promises every
//! survivor). A coroutine sent with `Handle::spawn` is the neighbour that
//! breaks it: its body in `hub/mod.rs` (`Hub::poll`, the `posts.spawns`
//! loop) runs `job` without looking at `killed`, so when `main` returns in
//! the same service step that spawned it, shutdown kills it before its first
//! run and it then runs the user's closure anyway, after `run` is over for
//! everybody else.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn a_remote_spawn_killed_at_shutdown_before_it_started_still_runs_its_closure() {
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    greenhub::run(move || {
        let handle = greenhub::handle();
        // Blocks the hub for 5 ms, so main's 1 ms timer is due at the same
        // service step whose poll takes the remote spawn: main is queued on
        // the woken queue, the remote coroutine on the fresh one, and main
        // runs (and returns) first.
        greenhub::spawn(|| std::thread::sleep(Duration::from_millis(5)));
        handle
            .spawn(move || flag.store(true, Ordering::SeqCst))
            .unwrap();
        drop(handle);
        greenhub::sleep(Duration::from_millis(1));
    });
    assert!(
        !ran.load(Ordering::SeqCst),
        "the remote closure ran although shutdown killed it before its first run"
    );
}

//! Pooled stacks are given back in batches while the hub idles: a batch per
//! wait, and, while stacks are left, a wait no longer than a millisecond, so
//! a hub whose only wait is a long one (a socket, a far deadline) gives them
//! all back during it rather than at its end.

mod util;

use std::io::{Read, Write};
use std::time::Duration;

use greenhub::net::UnixStream;
use util::{deep_stacks_of_fresh, deep_wave};

const DEEP: usize = 2000;

/// Runs `DEEP` coroutines that each go 100 KiB deep, lets `idle` wait once,
/// then counts the fresh coroutines whose reused stack still holds more
/// than 64 KiB.
fn deep_stacks_left_after(idle: impl FnOnce() + 'static) -> usize {
    greenhub::run(move || {
        deep_wave(DEEP);
        idle();
        deep_stacks_of_fresh(DEEP)
    })
}

#[test]
fn a_hub_waiting_only_on_a_socket_gives_every_deep_stack_back_during_the_wait() {
    let deep = deep_stacks_left_after(|| {
        let (mut ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let theirs = UnixStream::from_std(theirs).unwrap();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            ours.write_all(b"x").unwrap();
            ours
        });
        let mut byte = [0u8; 1];
        (&theirs).read_exact(&mut byte).unwrap();
        drop(writer.join().unwrap());
    });
    assert!(
        deep <= 64,
        "{deep} reused stacks still hold more than 64 KiB after a 300 ms wait"
    );
}

#[test]
fn a_hub_sleeping_to_a_far_deadline_gives_every_deep_stack_back_during_the_sleep() {
    let deep = deep_stacks_left_after(|| greenhub::sleep(Duration::from_millis(300)));
    assert!(
        deep <= 64,
        "{deep} reused stacks still hold more than 64 KiB after a 300 ms sleep"
    );
}

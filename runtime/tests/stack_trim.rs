//! Pooled stacks are given back in batches while the hub idles: a batch per
//! wait, and, while stacks are left, a wait no longer than a millisecond, so
//! a hub whose only wait is a long one (a socket, a far deadline) gives them
//! all back during it rather than at its end.

mod util;

use std::io::{Read, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use greenhub::net::UnixStream;
use util::{deep_stacks_after_idling, deep_wave};

const DEEP: usize = 2000;

/// Held by both tests: each watches the process's resident memory, which
/// the other's deep wave would move.
static SERIAL: Mutex<()> = Mutex::new(());

/// The process's resident memory, in bytes (`/proc/self/statm`).
fn resident() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize
}

/// On another thread: waits (30 s at most) until the resident memory is at
/// most `below`, then calls `end` with whether it got there. The hub's wait
/// is ended by what the hub gave back, not by a time: on a loaded machine a
/// fixed 300 ms gave the hub too few wakes to trim 2,000 stacks.
fn when_resident_drops(
    below: usize,
    end: impl FnOnce(bool) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let start = Instant::now();
        while resident() > below && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(1));
        }
        end(resident() <= below);
    })
}

/// Runs `DEEP` coroutines that each go 100 KiB deep, then `wait`s with the
/// resident memory to give back, which must end its wait (it is told
/// whether half of what the wave made resident was given back while it
/// waited); then waits for the trim to end (`deep_stacks_after_idling`) and
/// returns whether the wait saw half given back, and how many fresh
/// coroutines' reused stacks still hold more than 64 KiB.
fn trims_during(wait: impl FnOnce(usize) -> bool + 'static) -> (bool, usize) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    greenhub::run(move || {
        let before = resident();
        deep_wave(DEEP);
        let half = (resident() - before) / 2;
        let during = wait(before + half);
        (during, deep_stacks_after_idling(DEEP))
    })
}

#[test]
fn a_hub_waiting_only_on_a_socket_gives_every_deep_stack_back_during_the_wait() {
    let (during, deep) = trims_during(|below| {
        let (mut ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let theirs = UnixStream::from_std(theirs).unwrap();
        let watcher = when_resident_drops(below, move |dropped| {
            ours.write_all(&[dropped as u8]).unwrap();
        });
        let mut byte = [0u8; 1];
        (&theirs).read_exact(&mut byte).unwrap();
        watcher.join().unwrap();
        byte[0] == 1
    });
    assert!(
        during,
        "a socket wait gave back no half of the deep stacks in 30 s"
    );
    assert!(
        deep <= 64,
        "{deep} reused stacks still hold more than 64 KiB"
    );
}

#[test]
fn a_hub_waiting_for_a_far_deadline_gives_every_deep_stack_back_during_the_wait() {
    let (during, deep) = trims_during(|below| {
        let (tx, rx) = greenhub::sync::remote_channel::<bool>();
        let watcher = when_resident_drops(below, move |dropped| {
            tx.send(dropped).unwrap();
        });
        // The hub's next deadline is a minute away: it must not wait for it
        // to trim.
        let dropped = rx.recv_timeout(Duration::from_secs(60)).unwrap();
        watcher.join().unwrap();
        dropped
    });
    assert!(
        during,
        "a wait for a far deadline gave back no half of the deep stacks in 30 s"
    );
    assert!(
        deep <= 64,
        "{deep} reused stacks still hold more than 64 KiB"
    );
}

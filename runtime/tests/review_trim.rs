//! Review of the batched stack trim: what a trim costs a hub's deadlines
//! and sockets (the pool's estimate is measured per stack size, so a batch
//! of deep stacks is a short one), and whether an idle hub with owed stacks
//! ever stops waking.
//!
//! Costs are read as the hub thread's own CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`, read from a coroutine, which runs on the
//! hub's thread), not wall time: a loaded machine makes a wait longer, never
//! a trim's CPU cost several times bigger. Tests that map a lot of memory
//! take `BIG` so they never run at the same time.

mod util;

use std::io::{Read, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use greenhub::net::UnixStream;
use util::{deep_stacks_of_fresh, deep_wave};

/// Held by the tests that keep ~600 MiB of deep stacks resident.
static BIG: Mutex<()> = Mutex::new(());

/// CPU time of the calling thread, to the nanosecond (`getrusage` lags by
/// up to a scheduler tick for the running thread).
fn thread_cpu() -> Duration {
    // SAFETY: a zeroed timespec is a valid out-parameter.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: fills `ts` with the calling thread's CPU time.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Voluntary context switches of the calling thread: one per `epoll_wait`
/// that actually slept.
fn thread_sleeps() -> i64 {
    // SAFETY: a zeroed rusage is a valid out-parameter.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_THREAD fills `usage` for the calling thread.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    assert_eq!(rc, 0);
    usage.ru_nvcsw
}

/// Goes `frames` × 64 KiB deep (every page written).
#[inline(never)]
fn go_deep(frames: usize) -> u8 {
    let mut frame = [0u8; 64 * 1024];
    frame[0] = 1;
    frame[64 * 1024 - 1] = 1;
    std::hint::black_box(&mut frame);
    if frames > 1 {
        frame[0].wrapping_add(go_deep(frames - 1))
    } else {
        frame[0]
    }
}

/// 64 warm + 256 to trim: one full `TRIM_BATCH`.
const WAVE: usize = 64 + 256;

/// Runs `WAVE` coroutines on 2 MiB stacks that each go 1.75 MiB deep
/// (`Builder::stack_size` is public; 2 MiB is a thread's default).
fn deep_wave_2mib() {
    let wave: Vec<_> = (0..WAVE)
        .map(|_| {
            greenhub::Builder::new()
                .stack_size(2 << 20)
                .spawn(|| go_deep(28))
                .unwrap()
        })
        .collect();
    for coroutine in wave {
        coroutine.join().unwrap();
    }
}

/// The hub's CPU time while `main` waits on a socket that is readable by
/// the time the hub goes idle, and the wall time of that wait. A coroutine
/// of the same hub writes the byte after `main` parked, so the hub does
/// exactly one idle wait: one budgeted trim, then a poll that finds the
/// socket ready. (A writer on another thread could be scheduled late on a
/// busy machine; the hub would then trim a batch every `TRIM_RETRY` until
/// it came, and the CPU measured would be several batches'.)
fn socket_wait_cost() -> (Duration, Duration) {
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    let (cpu, start) = (thread_cpu(), Instant::now());
    let writer = greenhub::spawn(move || {
        ours.write_all(b"x").unwrap();
        ours
    });
    let mut byte = [0u8; 1];
    (&theirs).read_exact(&mut byte).unwrap();
    let (cpu, wall) = (thread_cpu() - cpu, start.elapsed());
    drop(writer.join().unwrap());
    (cpu, wall)
}

/// A trim's cost grows with what the stacks hold (`MADV_DONTNEED` costs by
/// the resident page): stacks of 2 MiB that went 1.75 MiB deep cost about
/// 120 µs each. A budget counted in stacks (250 before a 2 ms sleep) spent
/// ~30 ms before the poll, and the deadline fired that late; the pool's
/// estimate, by size and measured, keeps the trim inside the wait.
#[test]
fn a_trim_before_a_near_deadline_fits_in_the_wait_whatever_the_stacks_hold() {
    let _big = BIG.lock().unwrap_or_else(|e| e.into_inner());
    let (cpu, wall) = greenhub::run(|| {
        deep_wave_2mib();
        let (cpu, start) = (thread_cpu(), Instant::now());
        greenhub::sleep(Duration::from_millis(2));
        (thread_cpu() - cpu, start.elapsed())
    });
    eprintln!("2 ms sleep: hub CPU {cpu:?}, wall {wall:?}");
    assert!(
        cpu < Duration::from_millis(10),
        "the hub spent {cpu:?} of CPU (trimming) inside a 2 ms sleep, which ended after {wall:?}"
    );
}

/// The same on the socket side: a wait with no deadline trims at most
/// about half a millisecond's worth before it polls, however deep the
/// stacks (it trimmed 256 of them, ~30 ms, before seeing a ready socket).
#[test]
fn a_socket_event_waits_at_most_about_half_a_millisecond_for_a_trim_of_deep_stacks() {
    let _big = BIG.lock().unwrap_or_else(|e| e.into_inner());
    let (cpu, wall) = greenhub::run(|| {
        deep_wave_2mib();
        socket_wait_cost()
    });
    eprintln!("socket wait: hub CPU {cpu:?}, wall {wall:?}");
    assert!(
        cpu < Duration::from_millis(5),
        "a ready socket waited behind {cpu:?} of trimming (wall {wall:?})"
    );
}

/// With the default 128 KiB stacks, each 100 KiB deep (about 8 µs a stack
/// here), a batch of 256 held a ready socket ~2 ms; now about half a
/// millisecond. The bound asserted is three times that.
#[test]
fn a_batch_of_default_stacks_holds_a_socket_event_about_half_a_millisecond() {
    let _big = BIG.lock().unwrap_or_else(|e| e.into_inner());
    let (cpu, wall) = greenhub::run(|| {
        deep_wave(WAVE);
        socket_wait_cost()
    });
    eprintln!("socket wait, 100 KiB-deep stacks: hub CPU {cpu:?}, wall {wall:?}");
    assert!(
        cpu < Duration::from_micros(1500),
        "a ready socket waited behind {cpu:?} of trimming default stacks (wall {wall:?})"
    );
}

/// Stacks owed since an old wait, then all taken back by spawns and
/// returned dirty, are owed afresh (`StackPool::drained` restarts the
/// clock): the wait before a 200 µs deadline (a 1 ms poll) trims what fits
/// in its budget, not a forced batch.
#[test]
fn stacks_pooled_just_now_are_not_owed_since_an_old_wait() {
    let _big = BIG.lock().unwrap_or_else(|e| e.into_inner());
    let trimmed = greenhub::run(|| {
        deep_wave(WAVE);
        // One wait with a 1 ms poll: 125 trimmed, stacks left: owed from now.
        greenhub::sleep(Duration::from_micros(200));
        // Busy (never idle) for 30 ms, then take every pooled stack and
        // give it back dirty: nothing pooled now has waited at all.
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(30) {
            greenhub::yield_now();
        }
        deep_wave(WAVE);
        let before = deep_stacks_of_fresh(WAVE);
        assert_eq!(before, WAVE, "every pooled stack is deep again");
        // One wait before a deadline 200 µs away (a 1 ms poll): 125 fit.
        greenhub::sleep(Duration::from_micros(200));
        let trimmed = before - deep_stacks_of_fresh(WAVE);
        eprintln!("trimmed in one wait: {trimmed}");
        trimmed
    });
    assert!(
        trimmed <= 125,
        "the wait before a 200 µs deadline trimmed {trimmed} stacks pooled a moment earlier"
    );
}

/// Control for the test above: the same hub without the early wait.
#[test]
fn control_a_wait_before_a_near_deadline_trims_what_fits() {
    let _big = BIG.lock().unwrap_or_else(|e| e.into_inner());
    let trimmed = greenhub::run(|| {
        deep_wave(WAVE);
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(30) {
            greenhub::yield_now();
        }
        let before = deep_stacks_of_fresh(WAVE);
        greenhub::sleep(Duration::from_micros(200));
        let trimmed = before - deep_stacks_of_fresh(WAVE);
        eprintln!("control: trimmed in one wait: {trimmed}");
        trimmed
    });
    assert!(trimmed <= 125, "{trimmed}");
}

/// Sound: a hub with owed stacks and nothing else to do wakes every 1 ms
/// only until they are trimmed (a batch of about half a millisecond per
/// wake: some 60 stacks 100 KiB deep), keeps 64 warm without waking for
/// them, and then sleeps through.
#[test]
fn an_idle_hub_stops_waking_once_its_pool_is_trimmed() {
    let _big = BIG.lock().unwrap_or_else(|e| e.into_inner());
    let (first, second) = greenhub::run(|| {
        deep_wave(2000);
        let sleeps = thread_sleeps();
        greenhub::sleep(Duration::from_millis(500));
        let first = thread_sleeps() - sleeps;
        let sleeps = thread_sleeps();
        greenhub::sleep(Duration::from_millis(500));
        (first, thread_sleeps() - sleeps)
    });
    eprintln!("sleeps while trimming {first}, after {second}");
    assert!(first <= 200, "{first} wakes to trim 1,936 stacks");
    assert!(
        second <= 2,
        "{second} wakes in a 500 ms sleep with nothing owed"
    );
}

/// Sound: the same on a wait with no deadline (a socket only).
#[test]
fn a_hub_waiting_on_a_socket_stops_waking_once_its_pool_is_trimmed() {
    let _big = BIG.lock().unwrap_or_else(|e| e.into_inner());
    let wakes = greenhub::run(|| {
        deep_wave(2000);
        let (mut ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let theirs = UnixStream::from_std(theirs).unwrap();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            ours.write_all(b"x").unwrap();
            ours
        });
        let sleeps = thread_sleeps();
        let mut byte = [0u8; 1];
        (&theirs).read_exact(&mut byte).unwrap();
        let wakes = thread_sleeps() - sleeps;
        drop(writer.join().unwrap());
        wakes
    });
    eprintln!("sleeps during a 500 ms socket wait: {wakes}");
    assert!(wakes <= 200, "{wakes} wakes during one socket wait");
}

//! The runtime's own costs: a switch, a spawn, a parked coroutine, a timer.
//! Each beside its floor (the floor prototype of `floor.rs`, and bare
//! corosensei), its peers (may and Tokio, `peers.rs`) or its ideal (exact
//! wake times).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use corosensei::{Coroutine, CoroutineResult};
use greenhub::sync::Event;

use crate::measure::{interleaved, mappings, rss_kib, thread_cpu_time, Rng, Stat};
use crate::peers::TokioYield;
use crate::{floor, peers, Report, RUNS};

/// Yields each of the 2 coroutines makes in `switch`.
const PAIR_ROUNDS: u64 = 2_000_000;
/// Coroutines in the crowded case of `switch`: the C10K count of the demo,
/// where every switch lands on a stack and task entry that is cold in cache.
const CROWD: usize = 10_000;
/// Yields each of the [`CROWD`] makes: 2,000,000 switches, as many as the
/// 2-coroutine case makes per coroutine.
const CROWD_ROUNDS: u64 = 200;
/// `--quick` divides every round count by this (CI only checks that it runs).
const QUICK_DIVISOR: u64 = 20;

/// `switch`: a coroutine yields and the hub resumes the next one, with 2
/// coroutines and with [`CROWD`], on greenhub, the floor prototype, may and
/// Tokio, interleaved.
pub(crate) fn switch(quick: bool) -> Report {
    let scale = |rounds: u64| {
        if quick {
            rounds / QUICK_DIVISOR
        } else {
            rounds
        }
    };
    let (pair, crowd) = (scale(PAIR_ROUNDS), scale(CROWD_ROUNDS));
    let stats = |runs: Vec<Vec<f64>>| runs.into_iter().map(Stat::of).collect::<Vec<_>>();
    let two = stats(interleaved(&[
        &|| hub_switch_ns(2, pair),
        &|| floor::switch_ns(2, pair),
        &|| peers::may_switch_ns(2, pair),
        &|| peers::tokio_switch_ns(2, pair, TokioYield::YieldNow),
        &|| peers::tokio_switch_ns(2, pair, TokioYield::SelfWake),
        &|| corosensei_pair_ns(pair),
    ]));
    let many = stats(interleaved(&[
        &|| hub_switch_ns(CROWD, crowd),
        &|| floor::switch_ns(CROWD, crowd),
        &|| peers::may_switch_ns(CROWD, crowd),
        &|| peers::tokio_switch_ns(CROWD, crowd, TokioYield::YieldNow),
        &|| peers::tokio_switch_ns(CROWD, crowd, TokioYield::SelfWake),
    ]));
    let mut report = Report::new(
        "switch",
        "a coroutine yields, the scheduler resumes the next (ns per switch)",
    );
    report.header(&["system", "2 coroutines", "10,000 coroutines"]);
    let names = [
        "greenhub `yield_now`",
        "floor prototype hub (`floor.rs`)",
        "may `yield_now`, 1 worker",
        "Tokio current-thread `yield_now`",
        "Tokio current-thread, self-waking task",
        "bare corosensei resume+suspend (no hub)",
    ];
    for (row, name) in names.iter().enumerate() {
        let crowded = many.get(row).map_or("—".to_owned(), Stat::to_string);
        report.row(&[name, &two[row].to_string(), &crowded]);
    }
    for (key, stat) in [
        "ns_per_switch",
        "floor_hub_ns",
        "may_ns",
        "tokio_ns",
        "tokio_wake_ns",
        "floor_ns",
    ]
    .iter()
    .zip(&two)
    {
        report.field(key, stat.median);
    }
    for (key, stat) in [
        "ns_per_switch_10k",
        "floor_hub_ns_10k",
        "may_ns_10k",
        "tokio_ns_10k",
        "tokio_wake_ns_10k",
    ]
    .iter()
    .zip(&many)
    {
        report.field(key, stat.median);
    }
    report.target(
        "≤ 20 ns per switch",
        two[0].median <= 20.0,
        format!("{:.1} ns", two[0].median),
    );
    for (count, set, suffix) in [("2", &two, ""), ("10,000", &many, "_10k")] {
        let (hub, floor, may) = (set[0].median, set[1].median, set[2].median);
        ratio_target(
            &mut report,
            &format!("{count} coroutines: ≤ 1.3× the floor prototype's hub switch"),
            &format!("vs_floor_hub{suffix}"),
            (hub, floor, 1.3),
        );
        ratio_target(
            &mut report,
            &format!("{count} coroutines: ≤ 0.4× may's switch"),
            &format!("vs_may{suffix}"),
            (hub, may, 0.4),
        );
    }
    report.note("Each switch is one coroutine → scheduler → coroutine round (one yield), timed once every coroutine has started, so first touches of fresh stacks are not counted. All rows run in turn, three rounds, each round starting one row further down. The floor prototype is this design with nothing but a run queue of corosensei coroutines on pooled stacks and a poll every millisecond (`bench/src/floor.rs`); the bare corosensei figure has no hub at all. may runs on one worker thread. Tokio's `yield_now` defers the task until the scheduler has polled its driver, so each round of yields costs one `epoll_wait`; a self-waking task shows Tokio's scheduler without that.");
    report.note("A switch goes coroutine → hub → coroutine: two stack switches plus the bookkeeping that keeps the design's promises (the park's identity, the kill check, the run queues, the running record for overflow reports, a `catch_unwind` per resume). `valgrind --tool=callgrind` counts about 396 instructions per switch (in a program that runs only this loop: the difference between 200,000 and 400,000 rounds of 2 coroutines), spread over `Hub::resume`, `Hub::yield_now` and the run queue with no single hot spot (the coroutine is resumed in place and its task looked up once per resume); the floor prototype (`bench/src/floor.rs`) keeps none of those promises and runs 132. A spawn + run + join is 2,417 instructions against the floor's 627, counted the same way. With 10,000 coroutines each switch also lands on a cold stack page.");
    report
}

/// A target "greenhub ≤ `limit` × a reference", its ratio as a field too.
fn ratio_target(
    report: &mut Report,
    what: &str,
    key: &str,
    (measured, reference, limit): (f64, f64, f64),
) {
    let ratio = measured / reference;
    report.field(key, ratio);
    report.target(
        what,
        ratio <= limit,
        format!("{ratio:.2}× ({measured:.1} / {reference:.1} ns)"),
    );
}

/// greenhub: ns per switch, `coroutines` each yielding `rounds` times,
/// timed once every one has started (as `floor::switch_ns`).
fn hub_switch_ns(coroutines: usize, rounds: u64) -> f64 {
    greenhub::run(move || {
        let started = Rc::new(Cell::new(0));
        let workers: Vec<_> = (0..coroutines)
            .map(|_| {
                let started = started.clone();
                greenhub::spawn(move || {
                    started.set(started.get() + 1);
                    greenhub::yield_now();
                    (0..rounds).for_each(|_| greenhub::yield_now());
                })
            })
            .collect();
        while started.get() < coroutines {
            greenhub::yield_now();
        }
        let start = Instant::now();
        workers.into_iter().for_each(|w| w.join().unwrap());
        start.elapsed().as_nanos() as f64 / (coroutines as u64 * rounds) as f64
    })
}

fn corosensei_pair_ns(rounds: u64) -> f64 {
    let mut coroutine: Coroutine<(), (), ()> = Coroutine::new(|yielder, ()| loop {
        yielder.suspend(());
    });
    let start = Instant::now();
    for _ in 0..rounds {
        assert!(matches!(coroutine.resume(()), CoroutineResult::Yield(())));
    }
    start.elapsed().as_nanos() as f64 / rounds as f64
}

/// Spawns + joins per run of `spawn`.
const SPAWN_ROUNDS: u64 = 500_000;
/// A fresh stack costs about 40 spawns from the pool: fewer rounds of it.
const FRESH_DIVISOR: u64 = 20;

/// `spawn`: spawn, run and join an empty coroutine, on greenhub, the floor
/// prototype, may and Tokio, interleaved.
pub(crate) fn spawn(quick: bool) -> Report {
    let rounds = if quick {
        SPAWN_ROUNDS / 25
    } else {
        SPAWN_ROUNDS
    };
    let runs = interleaved(&[
        &|| hub_spawn_ns(rounds),
        &|| floor::spawn_ns(rounds),
        &|| peers::may_spawn_ns(rounds),
        &|| peers::tokio_spawn_ns(rounds),
        &|| corosensei_fresh_ns(rounds / FRESH_DIVISOR),
    ]);
    let stats: Vec<Stat> = runs.into_iter().map(Stat::of).collect();
    let mut report = Report::new(
        "spawn",
        "spawn + run + join of an empty coroutine (ns each)",
    );
    let rows = [
        ("greenhub spawn + join (pooled stacks)", "ns_per_spawn"),
        (
            "floor prototype spawn + join (pooled stacks)",
            "floor_spawn_ns",
        ),
        ("may `go!` + join, 1 worker", "may_spawn_ns"),
        ("Tokio current-thread spawn + await", "tokio_spawn_ns"),
        (
            "corosensei on a fresh DefaultStack each time",
            "fresh_stack_ns",
        ),
    ];
    for ((name, key), stat) in rows.iter().zip(&stats) {
        report.row(&[name, &stat.to_string()]);
        report.field(key, stat.median);
    }
    let (pooled, floor) = (stats[0].median, stats[1].median);
    report.target("≤ 150 ns", pooled <= 150.0, format!("{pooled:.0} ns"));
    ratio_target(
        &mut report,
        "≤ 2× the floor prototype's spawn + run + join",
        "vs_floor_spawn",
        (pooled, floor, 2.0),
    );
    report.note("Each figure is one spawn of an empty coroutine (or task), run to its end, and joined by the spawner, itself a coroutine of the same scheduler; the five rows run in turn, three rounds. The floor prototype takes a pooled stack, pushes the coroutine, parks the spawner in the child's task and queues it again when the child returns. may's `go!` queues every new coroutine on its global queue and writes its worker's eventfd, one system call per spawn; a Tokio task is a heap allocation with no stack.");
    report.note("Spawn + join is two switches, a task entry moved into the task table, one allocation (the join state: a wait queue keeps its first waiter inline) and the trampoline's `catch_unwind`: callgrind counts about 2,200 instructions in all. A fresh stack would cost far more; the pool avoids it.");
    report
}
fn hub_spawn_ns(rounds: u64) -> f64 {
    greenhub::run(move || {
        greenhub::spawn(|| ()).join().unwrap(); // warm the stack pool
        let start = Instant::now();
        for _ in 0..rounds {
            greenhub::spawn(|| ()).join().unwrap();
        }
        start.elapsed().as_nanos() as f64 / rounds as f64
    })
}

fn corosensei_fresh_ns(rounds: u64) -> f64 {
    let start = Instant::now();
    for _ in 0..rounds {
        let mut coroutine: Coroutine<(), (), ()> = Coroutine::new(|_, ()| ());
        let _ = coroutine.resume(());
    }
    start.elapsed().as_nanos() as f64 / rounds as f64
}

/// `parked`: N coroutines parked at once, each in a fresh child process so
/// memory figures do not mix.
pub(crate) fn parked(quick: bool) -> Report {
    let counts: &[usize] = if quick {
        &[10_000]
    } else {
        &[10_000, 100_000, 1_000_000]
    };
    let mut report = Report::new(
        "parked",
        "N coroutines parked on one Event, in a fresh process each",
    );
    report.header(&[
        "N",
        "created per second",
        "RSS per coroutine",
        "mappings added",
        "machine floor: fresh guarded stacks touched per second",
    ]);
    for &n in counts {
        // The floor first, in a child of its own: run after greenhub in the
        // same process, it would reuse memory greenhub had just freed,
        // which the kernel has zeroed pages for and the host has backed.
        let touch: f64 = crate::child(&["parked-floor-child", &n.to_string()])
            .parse()
            .unwrap_or(f64::NAN);
        let out = crate::child(&["parked-child", &n.to_string()]);
        let fields: Vec<f64> = out
            .split_whitespace()
            .map(|f| f.parse().unwrap_or(f64::NAN))
            .collect();
        let (rate, kib_each, maps) = (fields[0], fields[1], fields[2]);
        report.row(&[
            &n.to_string(),
            &format!("{:.0}", rate),
            &format!("{kib_each:.2} KiB"),
            &format!("{maps:.0}"),
            &format!("{touch:.0}"),
        ]);
        report.field(&format!("n{n}_kib_each"), kib_each);
        report.field(&format!("n{n}_per_sec"), rate);
        report.field(&format!("n{n}_maps_added"), maps);
        report.field(&format!("n{n}_touch_floor_per_sec"), touch);
        if n == *counts.last().unwrap() {
            let ok = kib_each <= 8.0 && n >= 1_000_000;
            report.target(
                "1,000,000 parked, guard pages kept, ≤ 8 KiB RSS each",
                ok,
                format!("{n} parked, {kib_each:.2} KiB each, {maps:.0} mappings added"),
            );
            report.target(
                "1,000,000 parked: ≥ 400,000 created per second",
                rate >= 400_000.0 && n >= 1_000_000,
                format!("{rate:.0} per second (this machine's floor: {touch:.0})"),
            );
            report.target(
                "1,000,000 parked: ≤ 4.5 KiB RSS each",
                kib_each <= 4.5 && n >= 1_000_000,
                format!("{kib_each:.2} KiB"),
            );
        }
    }
    report.note("The machine floor is a child process of its own, run just before greenhub's, mapping as many fresh stacks as greenhub parks (192 KiB slots, 64 a region; per region one `process_madvise` installs the guard bands and one prefaults the top pages, as greenhub does) and writing one byte into the top page of each, with no runtime at all: making a fresh page resident (the prefault), which the kernel must zero and, on a VM, the host must back, bounds every figure in this column from above. On a VM, a child may also pay the host's backing of memory the guest had not touched or had given back (a 1,000,000 run on a freshly booted one measured several times slower); that is why the floor no longer runs in greenhub's child after it, where it reused the pages greenhub had just freed.");
    report
}

/// The child side of `parked`: prints `rate kib_each maps_added`.
pub(crate) fn parked_child(n: usize) -> String {
    greenhub::run(move || {
        let event = Event::new();
        let (rss0, maps0) = (rss_kib(), mappings());
        let start = Instant::now();
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let event = event.clone();
                greenhub::spawn(move || event.wait().unwrap())
            })
            .collect();
        greenhub::yield_now(); // every one has run up to its park
        let took = start.elapsed();
        assert_eq!(greenhub::stats().parked_other, n);
        let (rss1, maps1) = (rss_kib(), mappings());
        event.set();
        handles.into_iter().for_each(|h| h.join().unwrap());
        format!(
            "{} {} {}",
            n as f64 / took.as_secs_f64(),
            (rss1 - rss0) as f64 / n as f64,
            maps1 as i64 - maps0 as i64
        )
    })
}

/// The machine's own limit for `parked`, run in a child of its own:
/// stacks per second when each is a fresh 128 KiB slot above a 64 KiB
/// guard band, made as greenhub makes them (per region of 64, one
/// `process_madvise` installs the guards and one prefaults the top
/// pages), whose top page is then written once, and nothing else. Every
/// parked coroutine costs at least this first touch of a page the kernel
/// must zero (and, on a VM, the host must back).
pub(crate) fn touch_floor_per_sec(n: usize) -> f64 {
    const SLOT: usize = (128 + 64) * 1024;
    const GUARD: usize = 64 * 1024;
    const PAGE: usize = 4096;
    const PER_REGION: usize = 64;
    let start = Instant::now();
    let mut regions = Vec::new();
    for first in (0..n).step_by(PER_REGION) {
        let count = PER_REGION.min(n - first);
        // SAFETY: an anonymous private mapping at an address of the
        // kernel's choosing touches no existing memory.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                SLOT * count,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert_ne!(addr, libc::MAP_FAILED, "map a floor region");
        let ranges = |offset: usize, len: usize| -> Vec<libc::iovec> {
            (0..count)
                .map(|i| libc::iovec {
                    iov_base: (addr as usize + i * SLOT + offset) as *mut libc::c_void,
                    iov_len: len,
                })
                .collect()
        };
        // -10000 is PIDFD_SELF and 102 MADV_GUARD_INSTALL. A kernel without
        // them fails the calls: the floor then has no guards, and its pages
        // fault in on the write below.
        for (iov, advice) in [
            (ranges(0, GUARD), 102),
            (ranges(SLOT - PAGE, PAGE), libc::MADV_POPULATE_WRITE),
        ] {
            // SAFETY: the iovecs name ranges of the region just mapped and
            // live for the call; the kernel only reads them.
            unsafe {
                libc::syscall(
                    libc::SYS_process_madvise,
                    -10000,
                    iov.as_ptr(),
                    iov.len(),
                    advice,
                    0,
                )
            };
        }
        for i in 0..count {
            let top = (addr as usize + (i + 1) * SLOT - 64) as *mut u8;
            // SAFETY: `top` is inside the region, above its guard band.
            unsafe { top.write_volatile(1) };
        }
        regions.push((addr, SLOT * count));
    }
    let took = start.elapsed();
    for (addr, len) in regions {
        // SAFETY: exactly what mmap returned, used by nothing else.
        unsafe { libc::munmap(addr, len) };
    }
    n as f64 / took.as_secs_f64()
}

/// `timers`: coroutines sleeping random 0–100 ms, 10,000 and 100,000 of them.
pub(crate) fn timers(quick: bool) -> Report {
    let counts: &[usize] = if quick { &[10_000] } else { &[10_000, 100_000] };
    let mut report = Report::new(
        "timers",
        "N coroutines sleeping random 0–100 ms: lateness against the ideal wake time (ms)",
    );
    report.header(&["N", "p50", "p99", "max", "woke early"]);
    for &n in counts {
        let runs: Vec<(f64, f64, f64, usize, f64)> =
            (0..RUNS).map(|seed| lateness(n, seed as u64 + 1)).collect();
        let wake_cpu = Stat::of(runs.iter().map(|r| r.4).collect());
        let p50 = Stat::of(runs.iter().map(|r| r.0).collect());
        let p99 = Stat::of(runs.iter().map(|r| r.1).collect());
        let max = Stat::of(runs.iter().map(|r| r.2).collect());
        let early: usize = runs.iter().map(|r| r.3).sum();
        report.row(&[
            &n.to_string(),
            &p50.to_string(),
            &p99.to_string(),
            &max.to_string(),
            &early.to_string(),
        ]);
        report.field(&format!("n{n}_p50_ms"), p50.median);
        report.field(&format!("n{n}_p99_ms"), p99.median);
        report.field(&format!("n{n}_early"), early as f64);
        report.field(&format!("n{n}_wake_cpu_ns"), wake_cpu.median);
        if n == *counts.last().unwrap() {
            report.target(
                &format!("{n} sleepers: p99 lateness ≤ 2 ms, none early"),
                p99.median <= 2.0 && early == 0,
                format!("p99 {:.2} ms, {early} early", p99.median),
            );
        }
    }
    let queue = Stat::of((0..RUNS).map(|_| queue_timeouts_s(40_000)).collect());
    report.note(&format!(
        "40,000 coroutines waiting on one `Event`, all timing out at one deadline, have all run {queue} s \
         after it (median, min–max): each timed-out waiter leaves the queue in O(1)."
    ));
    report.field("queue_timeouts_40k_s", queue.median);
    report.target(
        "40,000 timeouts on one queue: ≤ 0.1 s",
        queue.median <= 0.1,
        format!("{:.3} s", queue.median),
    );
    report.note(
        "With 100,000 sleepers the deadlines come 1,000 per millisecond, and each wake touches a cold \
         stack page, task entry and join state (the hub prefetches the next queued coroutine's while \
         one runs): when the hub cannot resume that many a millisecond, the wakes queue up and \
         lateness grows through the window. No coroutine ever wakes early. `nN_wake_cpu_ns` is the \
         hub thread's CPU time (`RUSAGE_THREAD`) from the first wake to the last join, per sleeper: \
         the cost of a wake whatever else the machine runs (at 10,000 it includes the hub's idle \
         polls and stack trims between the wakes).",
    );
    report
}

/// Seconds from a common deadline until `n` waiters on one `Event`, all
/// timing out at that deadline, have run. The deadline is far enough ahead
/// (0.5 s) that every waiter has parked before it.
fn queue_timeouts_s(n: usize) -> f64 {
    greenhub::run(move || {
        let event = Event::new();
        let deadline = Instant::now() + Duration::from_millis(500);
        let waiters: Vec<_> = (0..n)
            .map(|_| {
                let event = event.clone();
                greenhub::spawn(move || {
                    let left = deadline.saturating_duration_since(Instant::now());
                    event.wait_timeout(left).is_err()
                })
            })
            .collect();
        let timed_out = waiters
            .into_iter()
            .map(|w| w.join().unwrap())
            .filter(|&cut| cut)
            .count();
        assert_eq!(timed_out, n);
        Instant::now()
            .saturating_duration_since(deadline)
            .as_secs_f64()
    })
}

/// Lateness percentiles (ms), the count of early wakes, and the hub
/// thread's CPU time per wake (ns) from the first wake to the last join:
/// the cost of a wake (timer fire, resume, return, finish, join) apart
/// from what else the machine runs.
fn lateness(n: usize, seed: u64) -> (f64, f64, f64, usize, f64) {
    greenhub::run(move || {
        let first_wake: Rc<Cell<Option<Duration>>> = Rc::new(Cell::new(None));
        let late = Rc::new(RefCell::new(Vec::with_capacity(n)));
        let (go, start) = (Event::new(), Rc::new(std::cell::Cell::new(Instant::now())));
        let mut rng = Rng::new(seed);
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let offset = Duration::from_micros(rng.below(100_000));
                let (late, go, start) = (late.clone(), go.clone(), start.clone());
                let first_wake = first_wake.clone();
                greenhub::spawn(move || {
                    go.wait().unwrap();
                    let wake = start.get() + offset;
                    greenhub::sleep(wake.saturating_duration_since(Instant::now()));
                    let now = Instant::now();
                    if first_wake.get().is_none() {
                        first_wake.set(Some(thread_cpu_time()));
                    }
                    late.borrow_mut().push((
                        now.saturating_duration_since(wake).as_secs_f64() * 1000.0,
                        now < wake,
                    ));
                })
            })
            .collect();
        // Every coroutine is spawned and parked; the clock starts far enough
        // ahead (waking 100,000 to compute their deadlines takes about
        // 0.3 s) that every one is asleep before the first deadline.
        greenhub::yield_now();
        start.set(Instant::now() + Duration::from_secs(1));
        go.set();
        handles.into_iter().for_each(|h| h.join().unwrap());
        let woke = thread_cpu_time().saturating_sub(first_wake.get().unwrap_or_default());
        let mut late = late.take();
        let early = late.iter().filter(|l| l.1).count();
        late.sort_by(|a, b| a.0.total_cmp(&b.0));
        let at = |q: f64| late[((late.len() - 1) as f64 * q) as usize].0;
        let wake_cpu_ns = woke.as_nanos() as f64 / n as f64;
        (at(0.5), at(0.99), at(1.0), early, wake_cpu_ns)
    })
}

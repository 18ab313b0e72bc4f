//! The runtime's own costs: a switch, a spawn, a parked coroutine, a timer.
//! Each beside its floor (bare corosensei) or its ideal (exact wake times).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use corosensei::{Coroutine, CoroutineResult};
use greenhub::sync::Event;

use crate::measure::{mappings, rss_kib, Rng, Stat};
use crate::{Report, RUNS};

/// `switch`: a coroutine yields and the hub resumes the next one.
pub(crate) fn switch(quick: bool) -> Report {
    let rounds: u64 = if quick { 100_000 } else { 2_000_000 };
    let hub = Stat::of((0..RUNS).map(|_| hub_switch_ns(rounds)).collect());
    let floor = Stat::of((0..RUNS).map(|_| corosensei_pair_ns(rounds)).collect());
    let mut report = Report::new(
        "switch",
        "a coroutine yields, the hub resumes the next (ns per switch)",
    );
    report.row(&["greenhub yield_now, 2 coroutines", &hub.to_string()]);
    report.row(&["bare corosensei resume+suspend (floor)", &floor.to_string()]);
    report.field("ns_per_switch", hub.median);
    report.field("floor_ns", floor.median);
    report.target(
        "≤ 20 ns per switch",
        hub.median <= 20.0,
        format!("{:.1} ns", hub.median),
    );
    report.note("A switch goes coroutine → hub → coroutine: two stack switches, two lookups of the hub in its thread-local, and the run-queue bookkeeping. `perf` spreads the cost over `park` (27%), the hub lookups (32%) and `Hub::resume` (13%), with no single hot spot. Reaching 20 ns needs another design: coroutines switching to each other directly, and hub state without `RefCell`.");
    report
}

fn hub_switch_ns(rounds: u64) -> f64 {
    greenhub::run(move || {
        let workers: Vec<_> = (0..2)
            .map(|_| greenhub::spawn(move || (0..rounds).for_each(|_| greenhub::yield_now())))
            .collect();
        let before = greenhub::stats().switches;
        let start = Instant::now();
        workers.into_iter().for_each(|w| w.join().unwrap());
        let switches = greenhub::stats().switches - before;
        start.elapsed().as_nanos() as f64 / switches as f64
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

/// `spawn`: spawn, run and join an empty coroutine.
pub(crate) fn spawn(quick: bool) -> Report {
    let rounds: u64 = if quick { 20_000 } else { 500_000 };
    let pooled = Stat::of((0..RUNS).map(|_| hub_spawn_ns(rounds)).collect());
    let fresh = Stat::of(
        (0..RUNS)
            .map(|_| corosensei_fresh_ns(rounds / 20))
            .collect(),
    );
    let mut report = Report::new(
        "spawn",
        "spawn + run + join of an empty coroutine (ns each)",
    );
    report.row(&["greenhub spawn + join (pooled stacks)", &pooled.to_string()]);
    report.row(&[
        "corosensei on a fresh DefaultStack each time",
        &fresh.to_string(),
    ]);
    report.field("ns_per_spawn", pooled.median);
    report.field("fresh_stack_ns", fresh.median);
    report.target(
        "≤ 150 ns",
        pooled.median <= 150.0,
        format!("{:.0} ns", pooled.median),
    );
    report.note("Spawn + join is two switches (the child runs, then `main` is woken) plus one allocation for the join state and a task-table entry: about three switches' worth. A fresh stack would cost 40 times more; the pool avoids it.");
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
    ]);
    for &n in counts {
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
        ]);
        report.field(&format!("n{n}_kib_each"), kib_each);
        report.field(&format!("n{n}_per_sec"), rate);
        report.field(&format!("n{n}_maps_added"), maps);
        if n == *counts.last().unwrap() {
            let ok = kib_each <= 8.0 && n >= 1_000_000;
            report.target(
                "1,000,000 parked, guard pages kept, ≤ 8 KiB RSS each",
                ok,
                format!("{n} parked, {kib_each:.2} KiB each, {maps:.0} mappings added"),
            );
        }
    }
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

/// `timers`: coroutines sleeping random 0–100 ms, 10,000 and 100,000 of them.
pub(crate) fn timers(quick: bool) -> Report {
    let counts: &[usize] = if quick { &[10_000] } else { &[10_000, 100_000] };
    let mut report = Report::new(
        "timers",
        "N coroutines sleeping random 0–100 ms: lateness against the ideal wake time (ms)",
    );
    report.header(&["N", "p50", "p99", "max", "woke early"]);
    for &n in counts {
        let runs: Vec<(f64, f64, f64, usize)> =
            (0..RUNS).map(|seed| lateness(n, seed as u64 + 1)).collect();
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
        if n == *counts.last().unwrap() {
            report.target(
                &format!("{n} sleepers: p99 lateness ≤ 2 ms, none early"),
                p99.median <= 2.0 && early == 0,
                format!("p99 {:.2} ms, {early} early", p99.median),
            );
        }
    }
    report.note(
        "With 100,000 sleepers the deadlines come 1,000 per millisecond, and the hub resumes about \
         one coroutine per microsecond when 100,000 are alive (each resume touches a cold stack \
         page, task entry and timer node): the wakes queue up and lateness grows through the \
         window. At 10,000 they are on time. No coroutine ever wakes early.",
    );
    report
}

/// Lateness percentiles (ms) and the count of early wakes.
fn lateness(n: usize, seed: u64) -> (f64, f64, f64, usize) {
    greenhub::run(move || {
        let late = Rc::new(RefCell::new(Vec::with_capacity(n)));
        let (go, start) = (Event::new(), Rc::new(std::cell::Cell::new(Instant::now())));
        let mut rng = Rng::new(seed);
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let offset = Duration::from_micros(rng.below(100_000));
                let (late, go, start) = (late.clone(), go.clone(), start.clone());
                greenhub::spawn(move || {
                    go.wait().unwrap();
                    let wake = start.get() + offset;
                    greenhub::sleep(wake.saturating_duration_since(Instant::now()));
                    let now = Instant::now();
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
        let mut late = late.take();
        let early = late.iter().filter(|l| l.1).count();
        late.sort_by(|a, b| a.0.total_cmp(&b.0));
        let at = |q: f64| late[((late.len() - 1) as f64 * q) as usize].0;
        (at(0.5), at(0.99), at(1.0), early)
    })
}

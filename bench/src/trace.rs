//! `trace`: what seeing the hub costs. The `switch` scenario (2 and 10,000
//! coroutines yielding) and a socket scenario (10,000 coroutines: 5,000
//! Unix socket pairs playing ping-pong, every switch a real read or write)
//! run with the recorder off, with a trace recording, and with the console
//! open (refreshing four times per second into a sink), interleaved.

use std::cell::Cell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::Instant;

use greenhub::net::UnixStream;

use crate::measure::{interleaved, interleaved_rounds, thread_cpu_time, Stat};
use crate::Report;

/// Yields per coroutine, as in `switch` (`micro.rs`).
const PAIR_ROUNDS: u64 = 2_000_000;
const CROWD: usize = 10_000;
const CROWD_ROUNDS: u64 = 200;
/// Socket pairs of the socket scenario: 10,000 coroutines, one per end.
const PAIRS: usize = 5_000;
/// Ping-pong rounds per pair: 400,000 one-byte reads and writes in all.
const PING_ROUNDS: usize = 20;
/// Rounds of the 10,000-coroutine scenarios (the others take `RUNS`).
const CROWD_RUNS: usize = 7;
/// `--quick` divides every round count by this.
const QUICK_DIVISOR: u64 = 20;
/// The recording's ring: it fills within the first run and then wraps, so
/// the steady cost of a push that drops the oldest event is measured.
const RING: usize = 1 << 16;

/// What is watching the hub.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Watch {
    Off,
    Trace,
    Console,
}

pub(crate) fn trace(quick: bool) -> Report {
    let divisor = if quick { QUICK_DIVISOR } else { 1 };
    let (pair, crowd) = (PAIR_ROUNDS / divisor, CROWD_ROUNDS / divisor);
    let pings = (PING_ROUNDS / divisor as usize).max(1);
    let watches = [Watch::Off, Watch::Trace, Watch::Console];
    // Each run gives (wall, hub thread CPU); the figures are medians of each.
    let stats = |runs: Vec<Vec<(f64, f64)>>| -> (Vec<Stat>, Vec<Stat>) {
        let wall = runs
            .iter()
            .map(|r| Stat::of(r.iter().map(|x| x.0).collect()))
            .collect();
        let cpu = runs
            .iter()
            .map(|r| Stat::of(r.iter().map(|x| x.1).collect()))
            .collect();
        (wall, cpu)
    };
    let two = stats(interleaved(&[
        &|| switch_ns(2, pair, Watch::Off),
        &|| switch_ns(2, pair, Watch::Trace),
        &|| switch_ns(2, pair, Watch::Console),
    ]));
    // The 10,000-coroutine scenarios vary from one process to the next by
    // more than the 5% they are asked about (a crowd's memory layout):
    // seven rounds each, where the rest take three.
    let many = stats(interleaved_rounds(
        &[
            &|| switch_ns(CROWD, crowd, Watch::Off),
            &|| switch_ns(CROWD, crowd, Watch::Trace),
            &|| switch_ns(CROWD, crowd, Watch::Console),
        ],
        CROWD_RUNS,
    ));
    let sockets = stats(interleaved_rounds(
        &[
            &|| ping_pong_ms(pings, Watch::Off),
            &|| ping_pong_ms(pings, Watch::Trace),
            &|| ping_pong_ms(pings, Watch::Console),
        ],
        CROWD_RUNS,
    ));
    let mut report = Report::new(
        "trace",
        "what the trace recorder and the console cost the hub (wall time; hub thread CPU time)",
    );
    report.header(&[
        "watching",
        "switch, 2 coroutines (ns)",
        "switch, 10,000 coroutines (ns)",
        "10,000 coroutines on sockets (ms)",
    ]);
    let labels = ["nothing (recorder off)", "a trace recording", "the console"];
    for (i, watch) in watches.iter().enumerate() {
        let cell = |set: &(Vec<Stat>, Vec<Stat>)| format!("{}; CPU {}", set.0[i], set.1[i]);
        report.row(&[labels[i], &cell(&two), &cell(&many), &cell(&sockets)]);
        let key = match watch {
            Watch::Off => "off",
            Watch::Trace => "trace",
            Watch::Console => "console",
        };
        report.field(&format!("switch_{key}_ns"), two.0[i].median);
        report.field(&format!("switch_{key}_ns_10k"), many.0[i].median);
        report.field(&format!("sockets_{key}_ms_10k"), sockets.0[i].median);
        report.field(&format!("switch_{key}_cpu_ns"), two.1[i].median);
        report.field(&format!("switch_{key}_cpu_ns_10k"), many.1[i].median);
        report.field(&format!("sockets_{key}_cpu_ms_10k"), sockets.1[i].median);
    }
    let ratio = |set: &[Stat], i: usize| set[i].median / set[0].median;
    report.field("console_vs_off_sockets_10k", ratio(&sockets.0, 2));
    report.field("console_vs_off_switch_10k", ratio(&many.0, 2));
    report.field("console_vs_off_sockets_cpu_10k", ratio(&sockets.1, 2));
    report.field("console_vs_off_switch_cpu_10k", ratio(&many.1, 2));
    report.field("trace_vs_off_sockets_10k", ratio(&sockets.0, 1));
    report.target(
        "the console over 10,000 coroutines on sockets: ≤ 1.05× the hub thread's CPU time without it",
        ratio(&sockets.1, 2) <= 1.05,
        format!("{:.3}× (wall {:.3}×)", ratio(&sockets.1, 2), ratio(&sockets.0, 2)),
    );
    report.target(
        "the console over 10,000 yielding coroutines: ≤ 1.05× the hub thread's CPU time without it",
        ratio(&many.1, 2) <= 1.05,
        format!("{:.3}× (wall {:.3}×)", ratio(&many.1, 2), ratio(&many.0, 2)),
    );
    report.note("Each row runs the same program on a fresh hub; rows run in turn, each round starting one row further down: three rounds for the 2-coroutine switch, seven for the 10,000-coroutine scenarios, whose run-to-run spread is wider. Each cell is the wall time, then the CPU time of the hub's own thread (`RUSAGE_THREAD`, which the other work on this shared machine does not inflate); the console's sampler thread is not counted in the latter. \"Nothing\" is the recorder compiled in and off: each hook tests one `Cell<u8>` and returns, so it should match `switch`'s greenhub row within noise. A trace recording pays one `Instant::now()` and a ring push per event (a switch is two events: resume and yield). The console pays three relaxed atomic stores per switch (hub-side: a hook on the coroutine's side would run on its cold stack), two clock reads per poll, and a walk of the task table four times per second; its run lengths come from a sampler thread, not the hub's clock. The socket scenario is 5,000 Unix socket pairs, a coroutine at each end, playing one-byte ping-pong, so every switch does a real `read` or `write` and the hub polls epoll as it would under load.");
    report
}

/// Starts what `watch` asks for on the current hub.
fn watch(watch: Watch) -> Option<greenhub::console::Console> {
    match watch {
        Watch::Off => None,
        Watch::Trace => {
            greenhub::trace::start_with_capacity(RING);
            None
        }
        Watch::Console => Some(
            greenhub::console::start_with_writer(
                greenhub::console::Options::default(),
                Box::new(std::io::sink()),
            )
            .expect("start the console"),
        ),
    }
}

/// ns per switch (wall, hub thread CPU), `coroutines` each yielding `rounds` times, timed once
/// every one has started (as `micro::hub_switch_ns`).
fn switch_ns(coroutines: usize, rounds: u64, watching: Watch) -> (f64, f64) {
    greenhub::run(move || {
        let console = watch(watching);
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
        let (start, cpu) = (Instant::now(), thread_cpu_time());
        workers.into_iter().for_each(|w| w.join().unwrap());
        let switches = (coroutines as u64 * rounds) as f64;
        let ns = (
            start.elapsed().as_nanos() as f64 / switches,
            (thread_cpu_time() - cpu).as_nanos() as f64 / switches,
        );
        drop(console);
        drop(greenhub::trace::stop());
        ns
    })
}

/// ms (wall, hub thread CPU) for [`PAIRS`] socket pairs to play `rounds` rounds of one-byte
/// ping-pong, timed once every pair is connected and every coroutine parked.
fn ping_pong_ms(rounds: usize, watching: Watch) -> (f64, f64) {
    greenhub::run(move || {
        let console = watch(watching);
        let go = greenhub::sync::Event::new();
        let mut players = Vec::with_capacity(PAIRS * 2);
        for _ in 0..PAIRS {
            let (mut ping, mut pong) = UnixStream::pair().expect("a socket pair");
            let start = go.clone();
            players.push(greenhub::spawn(move || {
                start.wait().unwrap();
                let mut byte = [0u8; 1];
                for _ in 0..rounds {
                    ping.write_all(b"p").unwrap();
                    ping.read_exact(&mut byte).unwrap();
                }
            }));
            players.push(greenhub::spawn(move || {
                let mut byte = [0u8; 1];
                for _ in 0..rounds {
                    pong.read_exact(&mut byte).unwrap();
                    pong.write_all(b"q").unwrap();
                }
            }));
        }
        greenhub::yield_now(); // every player runs up to its first park
        let (start, cpu) = (Instant::now(), thread_cpu_time());
        go.set();
        players.into_iter().for_each(|p| p.join().unwrap());
        let ms = (
            start.elapsed().as_secs_f64() * 1e3,
            (thread_cpu_time() - cpu).as_secs_f64() * 1e3,
        );
        drop(console);
        drop(greenhub::trace::stop());
        ms
    })
}

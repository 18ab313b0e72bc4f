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
/// Phases of each kind in the paired measurement (console off, console on,
/// alternating in one hub over the same coroutines).
const PAIRED_PHASES: usize = 8;
/// Length of one phase: the console's first two frames (it renders one
/// [`refresh`] after it starts, then every [`refresh`]) fall inside an on
/// phase.
const PHASE: std::time::Duration = std::time::Duration::from_millis(550);

/// The console's refresh in phases of `phase`: 5/11 of it, the default
/// 250 ms for a full [`PHASE`] and 50 ms for `--quick`'s fifth of one, so
/// two frames fall inside every on phase.
fn refresh(phase: std::time::Duration) -> std::time::Duration {
    phase * 5 / 11
}
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
    // The targets: the same hub, console off and on in alternating phases.
    let phases = if quick { 2 } else { PAIRED_PHASES };
    let phase = if quick { PHASE / 5 } else { PHASE };
    let paired_switch = paired_console(Crowd::Yielding, phases, phase);
    let paired_sockets = paired_console(Crowd::Sockets, phases, phase);
    let paired_ratio = |set: &(Stat, Stat)| set.1.median / set.0.median;
    report.field("paired_off_cpu_ns_switch_10k", paired_switch.0.median);
    report.field("paired_console_cpu_ns_switch_10k", paired_switch.1.median);
    report.field(
        "paired_off_cpu_ns_round_sockets_10k",
        paired_sockets.0.median,
    );
    report.field(
        "paired_console_cpu_ns_round_sockets_10k",
        paired_sockets.1.median,
    );
    report.field(
        "console_paired_vs_off_switch_cpu_10k",
        paired_ratio(&paired_switch),
    );
    report.field(
        "console_paired_vs_off_sockets_cpu_10k",
        paired_ratio(&paired_sockets),
    );
    report.note(&format!(
        "The targets are measured in one hub: 10,000 coroutines yield (or 5,000 socket pairs play \
         ping-pong) throughout, and the main coroutine times {phases} phases of {} ms with the console \
         off and {phases} with it on, alternating (off, on, on, off, off, …), each figure the hub \
         thread's CPU time over the work done in the phase. The console is opened at the start of its \
         phase and closed at its end, so its start, its first two frames ({} and {} ms in) and its close are counted. Fresh hubs, \
         as in the table above, differ from each other by more than the console costs (each crowd's \
         stacks land differently in memory); one hub keeps the layout the same on both sides.\n\n\
         | one hub, phases alternating | 10,000 yielding: hub CPU ns per switch | 5,000 socket pairs: hub CPU ns per round trip |\n\
         | --- | --- | --- |\n\
         | console off | {} | {} |\n\
         | console on | {} | {} |",
        phase.as_millis(),
        refresh(phase).as_millis(),
        (refresh(phase) * 2).as_millis(),
        paired_switch.0,
        paired_sockets.0,
        paired_switch.1,
        paired_sockets.1,
    ));
    report.target(
        "the console over 10,000 coroutines on sockets: ≤ 1.05× the hub thread's CPU time without it",
        paired_ratio(&paired_sockets) <= 1.05,
        format!(
            "{:.3}× in one hub (fresh hubs: {:.3}×, wall {:.3}×)",
            paired_ratio(&paired_sockets),
            ratio(&sockets.1, 2),
            ratio(&sockets.0, 2)
        ),
    );
    report.target(
        "the console over 10,000 yielding coroutines: ≤ 1.05× the hub thread's CPU time without it",
        paired_ratio(&paired_switch) <= 1.05,
        format!(
            "{:.3}× in one hub (fresh hubs: {:.3}×, wall {:.3}×)",
            paired_ratio(&paired_switch),
            ratio(&many.1, 2),
            ratio(&many.0, 2)
        ),
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

/// The load of the paired measurement: what the crowd does while the main
/// coroutine times phases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Crowd {
    /// [`CROWD`] coroutines yielding; a unit is one switch.
    Yielding,
    /// [`PAIRS`] socket pairs playing one-byte ping-pong; a unit is one
    /// round trip (a write and a read at each end).
    Sockets,
}

/// Hub-thread CPU ns per unit of `crowd`'s work with the console off and on:
/// (medians off, on) over [`PAIRED_PHASES`] phases of each, alternating in
/// one hub over the same coroutines, so that the crowd's memory layout,
/// which differs from one fresh hub to the next by more than the console
/// costs, is the same on both sides. Each phase is [`PHASE`] long and the
/// console, when on, is opened at its start and closed at its end: its
/// start, its frames and its close are all counted.
fn paired_console(crowd: Crowd, phases: usize, phase: std::time::Duration) -> (Stat, Stat) {
    greenhub::run(move || {
        let (done, stop) = (Rc::new(Cell::new(0u64)), Rc::new(Cell::new(false)));
        let mut workers = Vec::new();
        match crowd {
            Crowd::Yielding => {
                for _ in 0..CROWD {
                    let (done, stop) = (done.clone(), stop.clone());
                    workers.push(greenhub::spawn(move || {
                        while !stop.get() {
                            greenhub::yield_now();
                            done.set(done.get() + 1);
                        }
                    }));
                }
            }
            Crowd::Sockets => {
                for _ in 0..PAIRS {
                    let (mut ping, mut pong) = UnixStream::pair().expect("a socket pair");
                    let (done, stop) = (done.clone(), stop.clone());
                    workers.push(greenhub::spawn(move || {
                        let mut byte = [0u8; 1];
                        while !stop.get() {
                            ping.write_all(b"p").unwrap();
                            ping.read_exact(&mut byte).unwrap();
                            done.set(done.get() + 1);
                        }
                        // Tells the other end to stop too.
                        drop(ping);
                    }));
                    workers.push(greenhub::spawn(move || {
                        let mut byte = [0u8; 1];
                        while pong.read_exact(&mut byte).is_ok() {
                            if pong.write_all(b"q").is_err() {
                                break;
                            }
                        }
                    }));
                }
            }
        }
        // Warm up: every coroutine has run, and the first touches are done.
        greenhub::sleep(phase / 2);
        let (mut off, mut on) = (Vec::new(), Vec::new());
        for i in 0..phases * 2 {
            // off, on, on, off, off, on, ...: each kind follows each as often.
            let console_on = i.div_ceil(2) % 2 == 1;
            let (units, cpu) = (done.get(), thread_cpu_time());
            let console = console_on.then(|| {
                let options = greenhub::console::Options {
                    refresh: refresh(phase),
                    ..Default::default()
                };
                greenhub::console::start_with_writer(options, Box::new(std::io::sink()))
                    .expect("start the console")
            });
            greenhub::sleep(phase);
            // `stop` joins the console coroutine: it has unwound before the
            // next phase starts, which would otherwise pay for it.
            if let Some(console) = console {
                console.stop();
            }
            let ns =
                (thread_cpu_time() - cpu).as_nanos() as f64 / (done.get() - units).max(1) as f64;
            if console_on {
                on.push(ns)
            } else {
                off.push(ns)
            }
        }
        stop.set(true);
        workers.into_iter().for_each(|w| w.join().unwrap());
        (Stat::of(off), Stat::of(on))
    })
}

/// `console-paired yielding|sockets`: the paired measurement alone, as
/// `off=MEDIAN (MIN–MAX) on=... ratio=...`.
pub(crate) fn paired_line(crowd: Option<&str>) -> Result<String, String> {
    let crowd = match crowd {
        Some("yielding") => Crowd::Yielding,
        Some("sockets") => Crowd::Sockets,
        other => {
            return Err(format!(
                "console-paired: expected `yielding` or `sockets`, got {other:?}"
            ))
        }
    };
    let (off, on) = paired_console(crowd, PAIRED_PHASES, PHASE);
    Ok(format!(
        "off={off} on={on} ratio={:.3}",
        on.median / off.median
    ))
}

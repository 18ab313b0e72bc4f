//! Measuring: repeated runs summarised as median with min–max, CPU time from
//! `getrusage`, and memory and mappings from `/proc/self`.

use std::fmt;
use std::time::Duration;

/// Several runs of one figure.
#[derive(Clone, Debug)]
pub(crate) struct Stat {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

impl Stat {
    pub(crate) fn of(mut values: Vec<f64>) -> Stat {
        values.sort_by(f64::total_cmp);
        Stat {
            median: values[values.len() / 2],
            min: values[0],
            max: values[values.len() - 1],
        }
    }
}

impl fmt::Display for Stat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = if self.median.abs() >= 100.0 {
            0
        } else if self.median.abs() >= 10.0 {
            1
        } else {
            2
        };
        write!(
            f,
            "{:.*} ({:.*}–{:.*})",
            digits, self.median, digits, self.min, digits, self.max
        )
    }
}

/// User plus system CPU time of this process (`RUSAGE_SELF`) or of its
/// waited-for children (`RUSAGE_CHILDREN`).
pub(crate) fn cpu_time(children: bool) -> Duration {
    let mut usage: libc::rusage = unsafe_zeroed();
    let who = if children {
        libc::RUSAGE_CHILDREN
    } else {
        libc::RUSAGE_SELF
    };
    // SAFETY: getrusage writes one rusage struct that we own.
    unsafe { libc::getrusage(who, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// User plus system CPU time of the calling thread (`RUSAGE_THREAD`): a
/// hub's own work, whatever else the machine's cores are doing.
pub(crate) fn thread_cpu_time() -> Duration {
    let mut usage: libc::rusage = unsafe_zeroed();
    // SAFETY: getrusage writes one rusage struct that we own.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// System CPU time and context switches (voluntary plus involuntary) of
/// this process (`RUSAGE_SELF`): how much of a client's CPU went to the
/// kernel, and how often its threads slept or were preempted.
pub(crate) fn sys_time_and_switches() -> (Duration, u64) {
    let mut usage: libc::rusage = unsafe_zeroed();
    // SAFETY: getrusage writes one rusage struct that we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let sys = Duration::new(
        usage.ru_stime.tv_sec as u64,
        usage.ru_stime.tv_usec as u32 * 1000,
    );
    (sys, (usage.ru_nvcsw + usage.ru_nivcsw) as u64)
}

fn unsafe_zeroed() -> libc::rusage {
    // SAFETY: rusage is a plain C struct of integers; all zeroes is valid.
    unsafe { std::mem::zeroed() }
}

fn proc_status(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Resident memory now, KiB.
pub(crate) fn rss_kib() -> u64 {
    proc_status("VmRSS")
}

/// Memory mappings of this process (what `vm.max_map_count` limits).
pub(crate) fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .map(|maps| maps.lines().count())
        .unwrap_or(0)
}

/// A small fast PRNG (xorshift), so the timers suite needs no crate.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Runs every one of `systems` once per round, [`RUNS`](crate::RUNS) rounds,
/// and returns each one's results in its own list. Each round starts one
/// further along the list, so on this shared machine a burst of someone
/// else's work lands on every system alike and none always runs first.
pub(crate) fn interleaved<T>(systems: &[&dyn Fn() -> T]) -> Vec<Vec<T>> {
    interleaved_rounds(systems, crate::RUNS)
}

/// [`interleaved`] with `rounds` rounds: for scenarios whose run-to-run
/// spread is wider than the difference they are asked to show.
pub(crate) fn interleaved_rounds<T>(systems: &[&dyn Fn() -> T], rounds: usize) -> Vec<Vec<T>> {
    let mut results: Vec<Vec<T>> = systems.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        for turn in 0..systems.len() {
            let which = (round + turn) % systems.len();
            results[which].push(systems[which]());
        }
    }
    results
}

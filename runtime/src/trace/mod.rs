//! Traces: a recording of every park and wake of one hub, to look at
//! afterwards. [`start`] turns the hub's recorder on (`sched/record.rs`: a
//! bounded ring, one predictable branch per event while off), [`stop`] hands
//! back a [`Trace`], which exports to the Chrome trace-event JSON format
//! ([`Trace::to_chrome_json`], `export_json.rs`) and to a self-contained SVG
//! timeline ([`Trace::to_svg`], `svg.rs`). See `docs/tracing.md`.
//!
//! ```
//! use std::time::Duration;
//!
//! let trace = greenhub::run(|| {
//!     greenhub::trace::start();
//!     let sleeper = greenhub::Builder::new()
//!         .name("sleeper")
//!         .spawn(|| greenhub::sleep(Duration::from_millis(5)))
//!         .unwrap();
//!     sleeper.join().unwrap();
//!     greenhub::trace::stop()
//! });
//! assert_eq!(trace.name_of(1), "sleeper");
//! assert!(trace.to_chrome_json().starts_with('{'));
//! ```

mod export_json;
mod svg;

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::sched::record::Record;

pub use crate::sched::record::{AtStart, EventKind, Wait, WakeBy};
pub use svg::TimelineOptions;

/// The ring's size when [`start`] is called without one: 65,536 events of
/// 72 bytes, 4.5 MiB once full (the ring grows to it as events come).
/// [`stop`] turns the ring's buffer into [`Trace::events`] in place, so the
/// peak stays 4.5 MiB plus the names. The demo's default 500 clients record
/// about 3,300 to 4,600 events from start to end (7 to 10 per client).
pub const DEFAULT_CAPACITY: usize = 1 << 16;

/// One event of a [`Trace`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Time since the trace started (a monotonic clock).
    pub at: Duration,
    /// The coroutine's id (`current().id()`); `None` for the hub's polls.
    pub coroutine: Option<u64>,
    /// What happened.
    pub kind: EventKind,
}

/// A finished recording of one hub, oldest event first.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// The events, in the order they happened; `at` never decreases.
    pub events: Vec<Event>,
    /// Names of the coroutines that have one (spawned with a name): every
    /// one alive at [`stop`], and those that finished during the recording
    /// with an event still in [`events`](Trace::events).
    pub names: BTreeMap<u64, String>,
    /// The coroutines alive when the recording started, by id, and what
    /// each was doing then (the coroutine that called [`start`] is
    /// [`AtStart::Running`]): their tracks start in that state at 0, so a
    /// coroutine parked throughout the recording is in the trace without
    /// an event of its own. Kept beside the ring (one entry per coroutine
    /// alive at the start); the ring's wrap drops an entry only with the
    /// coroutine's `Finish`, when no event of it is left.
    pub at_start: BTreeMap<u64, AtStart>,
    /// Events lost because the ring was full (the oldest go first).
    pub dropped: u64,
    /// How long the recording ran.
    pub duration: Duration,
}

impl Trace {
    /// A coroutine's name as reports print it: its own, or `coroutine-ID`.
    pub fn name_of(&self, id: u64) -> String {
        self.names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("coroutine-{id}"))
    }

    /// Every coroutine id that appears in the trace (in its events or
    /// [`at_start`](Trace::at_start)), in ascending order.
    pub fn coroutines(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.events.iter().filter_map(|e| e.coroutine).collect();
        ids.extend(self.at_start.keys());
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The trace in the Chrome trace-event JSON format, for Perfetto
    /// (<https://ui.perfetto.dev>) or `chrome://tracing`: one track per
    /// coroutine with its running, ready and parked spans (parked spans
    /// named by what they wait on), the hub's polls on a track of their own,
    /// and flow arrows from each waking coroutine to the one it woke.
    pub fn to_chrome_json(&self) -> String {
        export_json::render(self)
    }

    /// The trace as a self-contained SVG timeline: a row per coroutine
    /// coloured by state (running, ready, parked by what it waits on), or,
    /// past `options.bundle_above` coroutines, a band per state showing how
    /// many are in it; the resumes of the coroutine named `options.mark`
    /// drawn as ticks.
    pub fn to_svg(&self, options: &TimelineOptions) -> String {
        svg::render(self, options)
    }
}

/// Starts recording this hub's events into a ring of
/// [`DEFAULT_CAPACITY`] events; see [`start_with_capacity`].
pub fn start() -> bool {
    start_with_capacity(DEFAULT_CAPACITY)
}

/// Starts recording this hub's events into a fresh ring of `capacity`
/// events (at least 1); once full, each new event drops the oldest. The
/// coroutines alive now, and what each is doing (running, ready, or parked
/// on what), are noted beside the ring: [`Trace::at_start`]. A recording
/// already running is discarded. Returns false, and records nothing,
/// outside a hub.
pub fn start_with_capacity(capacity: usize) -> bool {
    crate::context::with(|hub| {
        let running = hub.sched.with_current(|task| task.id);
        // Coroutines alive now have their `Spawn` before the recording,
        // and a parked one no event until its wake: their state now is
        // where their tracks start.
        let at_start = hub
            .sched
            .tasks
            .borrow()
            .iter()
            .map(|(_, task)| {
                let deadline = task.parked_until.is_some();
                (task.id, AtStart::of(task.state, deadline))
            })
            .collect();
        hub.sched.trace.start(capacity, running, at_start);
    })
    .is_some()
}

/// Stops recording and returns what was recorded: an empty trace when
/// nothing was (outside a hub, or [`start`] was not called).
pub fn stop() -> Trace {
    crate::context::with(|hub| {
        let recording = hub.sched.trace.stop()?;
        let events = events_of(recording.records, recording.started);
        let mut names: BTreeMap<u64, String> = recording
            .names
            .into_iter()
            .map(|(id, name)| (id, name.to_string()))
            .collect();
        // The recorder noted the names of those that finished; the task
        // table has the living.
        for (_, task) in hub.sched.tasks.borrow().iter() {
            if let Some(name) = &task.name {
                names.entry(task.id).or_insert_with(|| name.to_string());
            }
        }
        Some(Trace {
            events,
            names,
            at_start: recording.at_start,
            dropped: recording.dropped,
            duration: recording.started.elapsed(),
        })
    })
    .flatten()
    .unwrap_or_default()
}

/// The ring's records as events, timed from `started`. `Record` and `Event`
/// have the same size and alignment, so the collect reuses the ring's
/// buffer (the unit test below checks it): no second copy at the peak.
fn events_of(records: VecDeque<Record>, started: Instant) -> Vec<Event> {
    Vec::from(records)
        .into_iter()
        .map(|record| Event {
            at: record.at.saturating_duration_since(started),
            coroutine: record.coroutine,
            kind: record.kind,
        })
        .collect()
}

/// Whether this hub is recording now.
pub fn is_recording() -> bool {
    crate::context::with(|hub| hub.sched.trace.tracing()).unwrap_or(false)
}

/// Records the running coroutine's panic (its trampoline calls this).
pub(crate) fn panicked(payload: &(dyn std::any::Any + Send)) {
    crate::context::with(|hub| hub.sched.trace.panic(|| crate::hub::panic_message(payload)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_the_size_of_an_event() {
        assert_eq!(std::mem::size_of::<Record>(), std::mem::size_of::<Event>());
        assert_eq!(
            std::mem::align_of::<Record>(),
            std::mem::align_of::<Event>()
        );
        assert_eq!(std::mem::size_of::<Event>(), 72);
    }

    #[test]
    fn stop_turns_the_ring_into_events_in_place() {
        let started = Instant::now();
        let mut ring = VecDeque::with_capacity(64);
        for i in 0..100u64 {
            if ring.len() == 64 {
                ring.pop_front(); // wrapped, as a full ring is
            }
            ring.push_back(Record {
                at: started + Duration::from_micros(i),
                coroutine: Some(i),
                kind: EventKind::Resume,
            });
        }
        let capacity = ring.capacity();
        let head = ring.as_slices().0.as_ptr() as usize;
        let events = events_of(ring, started);
        assert_eq!(events.len(), 64);
        assert_eq!(events[0].coroutine, Some(36));
        assert_eq!(events[63].at, Duration::from_micros(99));
        assert_eq!(events.capacity(), capacity);
        // The same allocation: the deque's head was inside it.
        let start = events.as_ptr() as usize;
        let end = start + capacity * std::mem::size_of::<Event>();
        assert!(start <= head && head < end, "a new buffer");
    }
}

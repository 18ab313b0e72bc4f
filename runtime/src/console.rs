//! A live view of the hub in the terminal, tokio-console's idea in one
//! screen: the coroutines by state and by what they wait on, the longest
//! runs since the last refresh (the blocking monitor's view), switches per
//! second and the hub's poll gap.
//!
//! [`View`] measures; [`View::frame`] renders one frame as text. [`start`]
//! spawns a `console` coroutine that renders a frame a few times per second
//! and hands it to a writer thread through a one-slot mailbox: the thread
//! writes it to stderr, and a frame it has not taken yet is replaced by the
//! next, so a terminal that stops reading never blocks the hub. The hub's
//! cost while a view is open: three relaxed atomic stores per switch, all on
//! the hub's side, into a pulse on cache lines of its own, and two clock
//! reads per poll (`sched/record.rs`), plus one walk of the task table per
//! frame, on the hub, with no hashing or allocation per task. Run lengths come
//! from a sampler thread that reads the pulse every millisecond, as the
//! blocking monitor does: a run it saw in two samples or more lasted at least
//! the time between them, so runs under a millisecond are not listed. One
//! view per hub at a time: [`View::new`] refuses a second while one is open.
//! Stopping a [`Console`] closes the writer's mailbox and waits, bounded, for
//! a write in progress; a failed write ends the console and closes its view;
//! the console's own timer does not hide a deadlock from the hub
//! (`hub/mod.rs`). See `docs/tracing.md`.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::hub::park::{Outcome, WaitOn};
use crate::sched::record::{Pulse, IDLE};
use crate::sched::{ParkedOn, State};
use crate::spawn::JoinHandle;

/// How often the sampler thread reads the pulse: the resolution of run
/// lengths. A wake-up per millisecond costs the sampler's core about 1%.
const SAMPLE: Duration = Duration::from_millis(1);
/// Runs kept between two frames; the longest survive.
const RUNS_KEPT: usize = 256;

/// How [`start`] refreshes and what a frame lists.
#[derive(Clone, Debug)]
pub struct Options {
    /// Time between two frames (at least 10 ms).
    pub refresh: Duration,
    /// Longest runs listed per frame.
    pub longest: usize,
    /// Wait reasons listed per frame (the most common first).
    pub waits: usize,
}

impl Default for Options {
    /// Four frames per second, five runs, eight wait reasons.
    fn default() -> Self {
        Options {
            refresh: Duration::from_millis(250),
            longest: 5,
            waits: 8,
        }
    }
}

/// What the sampler thread shares with the view.
#[derive(Debug, Default)]
struct Runs {
    seen: Mutex<Seen>,
    stop: AtomicBool,
}

/// The runs the sampler has seen since the view last took them.
#[derive(Debug, Default)]
struct Seen {
    /// (coroutine id, length) of ended runs seen in two samples or more.
    done: Vec<(u64, Duration)>,
    /// The run seen last, as (switch number, coroutine id, length so far):
    /// it may have ended since, unseen yet, so a frame counts it too.
    ongoing: Option<(u64, u64, Duration)>,
    /// The switch number of a run a frame already counted as ongoing: not
    /// counted again when the sampler sees it end.
    taken: Option<u64>,
}

/// The measurements behind the frames of this thread's hub; see the module
/// docs. Dropping it stops the sampler and the pulse. It stays on the
/// thread of the hub it measures (it is not `Send`).
#[derive(Debug)]
pub struct View {
    /// The hub it measures; on any other it shows and closes nothing.
    hub: crate::HubId,
    options: Options,
    runs: Arc<Runs>,
    sampler: Option<thread::JoinHandle<()>>,
    opened: Instant,
    last: Instant,
    last_switches: u64,
    /// Not `Send`: the pulse it turns off on drop is its own hub's.
    _hub_thread: PhantomData<Rc<()>>,
}

impl View {
    /// Opens a view of this thread's hub; an error outside a hub, while
    /// another view (or a [`start`]ed console) is open on this hub, or when
    /// the sampler thread cannot start.
    pub fn new(options: Options) -> std::io::Result<View> {
        let (pulse, switches, hub) = crate::context::with(|hub| {
            let running = hub.sched.with_current(|task| task.id);
            (
                hub.sched.trace.start_pulse(running),
                hub.sched.switches.get(),
                hub.id,
            )
        })
        .ok_or_else(|| std::io::Error::other("greenhub::console needs a running hub"))?;
        let pulse = pulse.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a console view is already open on this hub (one at a time)",
            )
        })?;
        let runs = Arc::new(Runs::default());
        let shared = runs.clone();
        let sampler = thread::Builder::new()
            .name("greenhub-console".into())
            .spawn(move || sample(&pulse, &shared));
        let sampler = match sampler {
            Ok(sampler) => sampler,
            Err(err) => {
                crate::context::with(|hub| hub.sched.trace.stop_pulse());
                return Err(err);
            }
        };
        let now = Instant::now();
        Ok(View {
            hub,
            options,
            runs,
            sampler: Some(sampler),
            opened: now,
            last: now,
            last_switches: switches,
            _hub_thread: PhantomData,
        })
    }

    /// Takes this refresh's figures (rates since the previous frame) and
    /// renders them.
    pub fn frame(&mut self) -> String {
        render(&self.snapshot(), &self.options)
    }

    fn snapshot(&mut self) -> Snapshot {
        let now = Instant::now();
        let interval = now.duration_since(self.last).max(Duration::from_micros(1));
        self.last = now;
        let mut runs = {
            let mut seen = self
                .runs
                .seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let mut runs = std::mem::take(&mut seen.done);
            if let Some((switch, id, length)) = seen.ongoing {
                if length > Duration::ZERO && seen.taken != Some(switch) {
                    runs.push((id, length));
                    seen.taken = Some(switch);
                }
            }
            runs
        };
        runs.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        runs.truncate(self.options.longest);
        let snapshot = crate::context::with(|hub| {
            if hub.id != self.hub {
                // A view kept from an earlier hub (a value returned from
                // `run`) measures nothing here: an empty frame.
                return Snapshot::default();
            }
            let switches = hub.sched.switches.get();
            let polls = hub.sched.trace.take_poll_stats();
            let mut snapshot = Snapshot {
                hub: hub.id.to_string(),
                up: now.duration_since(self.opened),
                refresh: self.options.refresh,
                switches_per_s: (switches - self.last_switches) as f64 / interval.as_secs_f64(),
                polls_per_s: polls.polls as f64 / interval.as_secs_f64(),
                max_poll_gap: polls.max_gap,
                in_poll: polls.waited.as_secs_f64() / interval.as_secs_f64(),
                ..Snapshot::default()
            };
            self.last_switches = switches;
            let mut names: HashMap<u64, String> = HashMap::new();
            // The walk runs on the hub, over every coroutine, at each
            // refresh, so per task it does no hashing and no allocation:
            // the few wait labels (static, no fd) are counted in a short
            // list tried at the last label's slot first, and the few listed
            // runs' ids are compared in a row (at most `longest` of them).
            let mut waits: Vec<(&'static str, usize)> = Vec::new();
            let mut last = 0;
            for (_, task) in hub.sched.tasks.borrow().iter() {
                snapshot.alive += 1;
                match task.state {
                    State::Running => snapshot.running += 1,
                    State::Ready => snapshot.ready += 1,
                    State::Parked(on) => {
                        snapshot.parked += 1;
                        let label = label(on);
                        if waits.get(last).is_none_or(|wait| wait.0 != label) {
                            last = match waits.iter().position(|wait| wait.0 == label) {
                                Some(at) => at,
                                None => {
                                    waits.push((label, 0));
                                    waits.len() - 1
                                }
                            };
                        }
                        waits[last].1 += 1;
                    }
                }
                if runs.iter().any(|run| run.0 == task.id) {
                    names.insert(task.id, task.display_name());
                }
            }
            let mut waits: Vec<(String, usize)> = waits
                .into_iter()
                .map(|(label, count)| (label.to_owned(), count))
                .collect();
            waits.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            snapshot.waits = waits;
            snapshot.longest = runs
                .iter()
                .map(|(id, length)| {
                    let name = match names.remove(id) {
                        Some(name) => format!("{name} #{id}"),
                        None => format!("#{id} (finished)"),
                    };
                    (*length, name)
                })
                .collect();
            snapshot
        });
        snapshot.unwrap_or_default()
    }
}

impl Drop for View {
    fn drop(&mut self) {
        self.runs.stop.store(true, Ordering::Relaxed);
        if let Some(sampler) = self.sampler.take() {
            let _ = sampler.join();
        }
        crate::context::with(|hub| {
            // Only this view's own hub: a view kept from an earlier hub
            // must not close the view of the hub it is dropped in.
            if hub.id == self.hub {
                hub.sched.trace.stop_pulse();
            }
        });
    }
}

/// How long [`Console::stop`] (or dropping a `Console`) waits for a frame
/// its writer thread is writing to be written: a write to a reader that
/// reads takes microseconds; one to a reader that stopped reading may never
/// end, and the stop returns after this.
const STOP_WAIT: Duration = Duration::from_secs(1);
/// How often a coroutine waiting in `stop` looks whether the write ended:
/// it sleeps in between, so the hub runs on meanwhile.
const STOP_POLL: Duration = Duration::from_millis(1);

/// A running console: a coroutine writing frames to stderr. Dropping it (or
/// [`Console::stop`]) closes its view at once, so another can open right
/// after, and kills that coroutine; `stop` also waits for it to end.
///
/// Both close the writer thread's mailbox first, so no frame write starts
/// after they return, and wait for a write in progress to end, at most one
/// second: the calling coroutine sleeps meanwhile (the hub runs on), or,
/// while it unwinds or outside a coroutine, the thread waits. Only a write
/// to a reader that stopped reading for longer than that can end after
/// they return; so can one in progress when they are called inside a
/// [`timeout`](crate::timeout()) that has elapsed, where no wait waits (they
/// close the mailbox and return at once). The same holds when the console
/// coroutine ends otherwise (killed when its hub's `run` ends), so a frame
/// is not written after `run` returns either, short of such a reader; the
/// coroutine's end also closes the view, so a `Console` held after `run`
/// keeps no sampler thread.
#[derive(Debug)]
#[must_use = "dropping the Console stops it at once"]
pub struct Console {
    coroutine: Option<JoinHandle<()>>,
    /// Shared with the console coroutine, which renders from it between
    /// sleeps (never across one): taken and dropped here on stop.
    view: Rc<RefCell<Option<View>>>,
    /// Shared with the writer thread: closed here on stop.
    mailbox: Arc<Mailbox>,
}

impl Console {
    /// Stops refreshing, closes the writer thread's mailbox and waits until
    /// a frame being written is written (at most one second, see
    /// [`Console`]) and the console coroutine has ended (inside an elapsed
    /// `timeout`, neither wait waits).
    pub fn stop(mut self) {
        drop(self.view.borrow_mut().take());
        let first = self.mailbox.close();
        if let Some(coroutine) = &self.coroutine {
            coroutine.kill();
        }
        if first {
            self.mailbox.wait_idle();
        }
        if let Some(coroutine) = self.coroutine.take() {
            let _ = coroutine.join();
        }
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        if let Ok(mut view) = self.view.try_borrow_mut() {
            drop(view.take());
        }
        let first = self.mailbox.close();
        if let Some(coroutine) = self.coroutine.take() {
            coroutine.kill();
        }
        if first {
            self.mailbox.wait_idle();
        }
    }
}

/// Starts the console on this thread's hub: a coroutine named `console`
/// that renders a frame every `options.refresh` for a writer thread, which
/// clears the terminal (ANSI) and writes it to stderr. An error outside a
/// hub, while a view is open on this hub, or when a thread cannot start.
///
/// The console's sleep between frames wakes nobody else: while it is the
/// only timer left and nothing else can wake a coroutine, the hub reports
/// the deadlock as it would without a console (the report leaves the
/// console out).
pub fn start(options: Options) -> std::io::Result<Console> {
    start_with_writer(options, Box::new(std::io::stderr()))
}

/// [`start`], writing frames to `out` instead (each frame preceded by the
/// ANSI "home, clear screen" sequence). `out` is written on a thread of its
/// own: while a write blocks (nobody reads the terminal or pipe), newer
/// frames replace the one waiting and the hub runs on. Once a write fails
/// or `out` panics, the console ends: its coroutine closes its view (a new
/// one can open) and returns.
pub fn start_with_writer(options: Options, out: Box<dyn Write + Send>) -> std::io::Result<Console> {
    let refresh = options.refresh.max(Duration::from_millis(10));
    let view = Rc::new(RefCell::new(Some(View::new(options)?)));
    let watched = view.clone();
    let mailbox = Arc::new(Mailbox::default());
    let shared = mailbox.clone();
    thread::Builder::new()
        .name("greenhub-console-out".into())
        .spawn(move || write_frames(&shared, out))?;
    let sender = Sender(mailbox.clone());
    let coroutine = crate::Builder::new().name("console").spawn(move || {
        // However this coroutine ends, the view closes with it.
        let watched = ClosesView(watched);
        loop {
            crate::sleep(refresh);
            let frame = match watched.0.borrow_mut().as_mut() {
                Some(view) => view.frame(),
                None => return, // the Console closed it
            };
            if !sender.post(format!("\x1b[H\x1b[2J{frame}")) {
                return; // the terminal went away: nothing left to show
            }
        }
    })?;
    crate::context::with(|hub| hub.console.set(Some(coroutine.id())));
    Ok(Console {
        coroutine: Some(coroutine),
        view,
        mailbox,
    })
}

/// The console coroutine's share of the view: dropped when the coroutine
/// ends (the `Console` closed the view, a write failed, or it was killed
/// when its hub's `run` ended), it closes the view, so the sampler and the
/// pulse stop and the hub may open another view, even while the `Console`
/// itself is still held.
struct ClosesView(Rc<RefCell<Option<View>>>);

impl Drop for ClosesView {
    fn drop(&mut self) {
        // Never borrowed across a park, so free whenever the coroutine can
        // end; `try_` keeps a drop from panicking all the same.
        if let Ok(mut view) = self.0.try_borrow_mut() {
            drop(view.take());
        }
    }
}

/// The one-slot mailbox between the console coroutine and its writer
/// thread.
#[derive(Debug, Default)]
struct Mailbox {
    slot: Mutex<Slot>,
    /// Signalled when a frame is left or the mailbox closed.
    ready: Condvar,
    /// Signalled when the writer thread ends a write.
    idle: Condvar,
}

#[derive(Debug, Default)]
struct Slot {
    /// The newest frame not taken yet; a newer one replaces it.
    frame: Option<String>,
    /// The console ended: the thread takes no frame after this, and exits
    /// once its write in progress (if any) ends.
    closed: bool,
    /// The writer thread has taken a frame and is writing it.
    writing: bool,
    /// A write failed: the console ends.
    failed: bool,
}

impl Mailbox {
    /// Closes the mailbox: no frame is taken, so no write starts, after
    /// this. True for the call that closed it.
    fn close(&self) -> bool {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        let first = !slot.closed;
        slot.closed = true;
        slot.frame = None;
        self.ready.notify_one();
        first
    }

    /// Waits until the writer thread is not writing, at most
    /// [`STOP_WAIT`]: a coroutine that may park sleeps in steps of
    /// [`STOP_POLL`] (the hub runs on); otherwise the thread waits.
    fn wait_idle(&self) {
        let deadline = Instant::now() + STOP_WAIT;
        let park = crate::context::in_coroutine() && !std::thread::panicking();
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        while slot.writing {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            if park {
                drop(slot);
                let step = Some(now + STOP_POLL.min(deadline - now));
                let outcome = crate::context::with(|hub| hub.park(WaitOn::Deadline, step));
                if outcome != Some(Outcome::Deadline) && outcome != Some(Outcome::Notified) {
                    // A `timeout` around the caller elapsed, or a deadlock
                    // was found: no park waits any more, so neither does
                    // this (a kill unwinds out of `park`).
                    return;
                }
                slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
            } else {
                slot = self
                    .idle
                    .wait_timeout(slot, deadline - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
    }
}

/// The console coroutine's end of the mailbox; dropping it (the coroutine
/// ended or was killed) closes the mailbox, and waits for a write in
/// progress as [`Console::stop`] does if the `Console` did not close it.
struct Sender(Arc<Mailbox>);

impl Sender {
    /// Leaves `frame` for the writer thread, replacing one it has not taken
    /// (never waits on the write). False once a write has failed.
    fn post(&self, frame: String) -> bool {
        let mut slot = self.0.slot.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.failed {
            return false;
        }
        slot.frame = Some(frame);
        self.0.ready.notify_one();
        true
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        if self.0.close() {
            self.0.wait_idle();
        }
    }
}

/// The writer thread: writes each frame it takes from the mailbox to `out`
/// until the console ends or a write fails.
fn write_frames(mailbox: &Mailbox, mut out: Box<dyn Write + Send>) {
    loop {
        let frame = {
            let mut slot = mailbox.slot.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                if slot.closed {
                    return;
                }
                if let Some(frame) = slot.frame.take() {
                    slot.writing = true;
                    break frame;
                }
                slot = mailbox
                    .ready
                    .wait(slot)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        let mut writing = Writing {
            mailbox,
            failed: true,
        };
        let written = out.write_all(frame.as_bytes()).and_then(|()| out.flush());
        writing.failed = written.is_err();
        drop(writing);
        if written.is_err() {
            return;
        }
    }
}

/// A frame write in progress: dropped when the write returned or when
/// `out` panicked in it (the thread then ends), it clears
/// [`Slot::writing`], so a stop waits for no write that no thread is doing,
/// and marks the mailbox failed when the write failed or panicked, so the
/// console ends.
struct Writing<'a> {
    mailbox: &'a Mailbox,
    failed: bool,
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        let mut slot = self
            .mailbox
            .slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        slot.writing = false;
        slot.failed |= self.failed;
        self.mailbox.idle.notify_all();
    }
}

/// The sampler thread: sees which run is current every [`SAMPLE`] and keeps
/// the length of every run it saw twice or more.
fn sample(pulse: &Pulse, runs: &Runs) {
    let mut current = (0u64, IDLE);
    let (mut first, mut last) = (Instant::now(), Instant::now());
    while !runs.stop.load(Ordering::Relaxed) {
        thread::sleep(SAMPLE);
        let now = Instant::now();
        let seen = (
            pulse.switches.load(Ordering::Relaxed),
            pulse.running.load(Ordering::Relaxed),
        );
        let mut shared = runs.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen == current {
            last = now;
        } else {
            let counted = shared.taken == Some(current.0);
            if current.1 != IDLE && last > first && !counted {
                shared.done.push((current.1, last - first));
                if shared.done.len() > RUNS_KEPT * 2 {
                    shared.done.sort_by_key(|run| std::cmp::Reverse(run.1));
                    shared.done.truncate(RUNS_KEPT);
                }
            }
            current = seen;
            (first, last) = (now, now);
        }
        shared.ongoing = (current.1 != IDLE).then_some((current.0, current.1, last - first));
    }
}

/// What a parked coroutine waits on, without the fd: the rows of a frame.
fn label(on: ParkedOn) -> &'static str {
    match on {
        ParkedOn::Io { write: false, .. } => "socket read",
        ParkedOn::Io { write: true, .. } => "socket write",
        ParkedOn::Sleep => "sleep",
        ParkedOn::Queue(label) => label,
        ParkedOn::Unblock => "helper thread",
        ParkedOn::Remote => "another thread",
    }
}

/// One frame's figures.
#[derive(Debug, Default)]
struct Snapshot {
    hub: String,
    up: Duration,
    refresh: Duration,
    alive: usize,
    running: usize,
    ready: usize,
    parked: usize,
    /// Parked coroutines by what they wait on, most common first.
    waits: Vec<(String, usize)>,
    /// Longest runs since the last frame: length and `name #id`.
    longest: Vec<(Duration, String)>,
    switches_per_s: f64,
    polls_per_s: f64,
    max_poll_gap: Duration,
    in_poll: f64,
}

/// The frame's text. Lines that hold times or rates start with
/// `greenhub console` or `switches/s`, or are run lines (`  >= `).
fn render(s: &Snapshot, options: &Options) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "greenhub console  {}  up {:.1} s  refresh {} ms",
        s.hub,
        s.up.as_secs_f64(),
        s.refresh.as_millis()
    );
    let _ = writeln!(
        out,
        "coroutines {}  running {}  ready {}  parked {}",
        s.alive, s.running, s.ready, s.parked
    );
    out.push_str("parked on\n");
    for (wait, count) in s.waits.iter().take(options.waits) {
        let wait = printable(wait);
        let _ = writeln!(out, "  {wait:<24}{count:>8}");
    }
    if s.waits.len() > options.waits {
        let rest: usize = s.waits[options.waits..].iter().map(|w| w.1).sum();
        let _ = writeln!(out, "  {:<24}{rest:>8}", "(other)");
    }
    let _ = writeln!(
        out,
        "switches/s {:.0}  polls/s {:.0}  poll gap max {:.2} ms  in poll {:.0}%",
        s.switches_per_s,
        s.polls_per_s,
        s.max_poll_gap.as_secs_f64() * 1e3,
        (s.in_poll * 100.0).min(100.0)
    );
    out.push_str("longest runs since last refresh\n");
    if s.longest.is_empty() {
        out.push_str("  none of 1 ms or more\n");
    }
    for (length, name) in &s.longest {
        let _ = writeln!(
            out,
            "  >= {:>5} ms  {}",
            length.as_millis(),
            printable(name)
        );
    }
    out
}

/// `text` with its control characters (newline, ESC, DEL, the C1 set)
/// written as Rust escapes (`\n`, `\u{1b}`): a coroutine's name cannot break
/// a frame's lines or drive the terminal.
fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

//! [`Select`]: wait on several different things at once (channel receives
//! and sends, an `Event`, a socket's readiness, a coroutine's end, a
//! deadline) and learn which one is ready, losing nothing from the others.
//!
//! # How it stays cancellation-safe
//!
//! A select *registers on all and takes from one*. [`Select::wait`] first
//! looks for an arm that is ready now, in order; if none is, it parks once
//! on every arm's wake source together (`Hub::park_any`, one park, so one
//! wake wins and the rest are cancelled by the park protocol). Nothing is
//! taken while looking or waiting: `wait` only returns a [`Selected`] naming
//! the ready arm, and the caller completes that one operation
//! ([`Selected::recv`], [`Selected::send`], a read on the socket, a `join`).
//! The arms that did not win were never touched, so no message is lost.
//!
//! One subtlety: a channel hands a value (or a free slot) to the waiter it
//! wakes, and counts it as spoken for, which is what makes channels FIFO. So
//! the arm whose queue woke the select is checked first (its value is
//! there, reserved), and a [`Selected`] for it that is dropped without being
//! completed passes the hand-off on to the next waiter, as a killed
//! receiver does. Readiness arms ask the kernel (`poll(2)`) when the
//! reactor's cache says "maybe", so "readable" means a read would not park.
//! A readiness arm on a socket of another hub (one kept from an earlier
//! `run`) is ready at once, and the operation on that socket reports the
//! error.
//!
//! Earlier arms win ties: put the one that must not starve first. Signals
//! and remote channels are not arms (they wait on another thread's post,
//! not on a wait queue): forward them into a `Channel` or an `Event` from a
//! small coroutine. See `docs/design-decisions.md`.

use std::cell::Cell;
use std::fmt;
use std::time::{Duration, Instant};

use crate::hub::park::{Outcome, Source};
use crate::io::Async;
use crate::net::registered::Registration;
use crate::net::{TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};
use crate::sources::reactor::{Direction, Readiness};
use crate::spawn::JoinHandle;
use crate::sync::queue::Queue;
use crate::sync::{Channel, ChannelError, Event, SendError, WaitError};

/// A channel, type-erased, as a select arm sees it.
trait ChannelArm {
    fn recv_ready(&self, woken: bool) -> bool;
    fn send_ready(&self, woken: bool) -> bool;
    fn recv_queue(&self) -> &Queue;
    fn send_queue(&self) -> &Queue;
    fn id(&self) -> *const ();
}

impl<T> ChannelArm for Channel<T> {
    fn recv_ready(&self, woken: bool) -> bool {
        Channel::recv_ready(self, woken)
    }
    fn send_ready(&self, woken: bool) -> bool {
        Channel::send_ready(self, woken)
    }
    fn recv_queue(&self) -> &Queue {
        Channel::recv_queue(self)
    }
    fn send_queue(&self) -> &Queue {
        Channel::send_queue(self)
    }
    fn id(&self) -> *const () {
        Channel::id(self)
    }
}

/// A coroutine's end, type-erased.
trait JoinArm {
    fn finished(&self) -> bool;
    fn queue(&self) -> &Queue;
}

impl<T> JoinArm for JoinHandle<T> {
    fn finished(&self) -> bool {
        self.is_finished()
    }
    fn queue(&self) -> &Queue {
        self.joiners()
    }
}

/// A file descriptor a [`Select`] can wait on: made from a reference to any
/// greenhub socket or [`Async`] (`sel.readable(&stream)`).
#[derive(Clone, Copy)]
pub struct IoSource<'a> {
    registration: &'a Registration,
}

impl fmt::Debug for IoSource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoSource")
            .field("fd", &self.registration.fd())
            .finish()
    }
}

macro_rules! io_source_from {
    ($($ty:ty),*) => {$(
        impl<'a> From<&'a $ty> for IoSource<'a> {
            fn from(io: &'a $ty) -> IoSource<'a> {
                IoSource { registration: io.registration() }
            }
        }
    )*};
}
io_source_from!(TcpStream, TcpListener, UdpSocket, UnixStream, UnixListener);

impl<'a, T: std::os::fd::AsRawFd> From<&'a Async<T>> for IoSource<'a> {
    fn from(io: &'a Async<T>) -> IoSource<'a> {
        IoSource {
            registration: io.registration(),
        }
    }
}

/// One thing a select waits for.
enum Arm<'a> {
    Recv(&'a dyn ChannelArm),
    Send(&'a dyn ChannelArm),
    /// The event, and its count of sets when this select last returned
    /// the arm (or when the arm was added).
    Event(&'a Event, Cell<u64>),
    Join(&'a dyn JoinArm),
    Io(&'a Registration, Direction),
    Deadline(Instant),
}

impl Arm<'_> {
    /// Whether the arm's operation would complete now; `woken`: its queue
    /// woke the select (see the module doc).
    fn ready(&self, woken: bool) -> bool {
        match self {
            Arm::Recv(channel) => channel.recv_ready(woken),
            Arm::Send(channel) => channel.send_ready(woken),
            Arm::Event(event, seen) => event.is_set() || event.sets() != seen.get(),
            Arm::Join(handle) => handle.finished(),
            Arm::Io(registration, dir) => io_ready(registration, *dir),
            Arm::Deadline(at) => *at <= Instant::now(),
        }
    }

    /// The wake source to park on (a deadline is the park's own).
    fn source(&self) -> Option<Source<'_>> {
        Some(match self {
            Arm::Recv(channel) => Source::Queue(channel.recv_queue().raw()),
            Arm::Send(channel) => Source::Queue(channel.send_queue().raw()),
            Arm::Event(event, _) => Source::Queue(event.queue().raw()),
            Arm::Join(handle) => Source::Queue(handle.queue().raw()),
            Arm::Io(registration, dir) => {
                Source::Io(registration.reactor(), registration.token(), *dir)
            }
            Arm::Deadline(_) => return None,
        })
    }

    /// A channel arm woken with a hand-off it will not use passes it on.
    fn pass_on(&self) {
        match self {
            Arm::Recv(channel) => {
                channel.recv_queue().notify_one();
            }
            Arm::Send(channel) => {
                channel.send_queue().notify_one();
            }
            _ => {}
        }
    }
}

/// Whether a side of an fd is ready now: the reactor's cache first (no
/// system call when it knows the side is drained), then the kernel. Stale
/// readiness is cleared with the tick read before the probe.
fn io_ready(registration: &Registration, dir: Direction) -> bool {
    let reactor = registration.reactor();
    if crate::context::with(|hub| hub.id) != Some(reactor.hub) {
        // Another hub's socket (one kept from an earlier `run`): "ready",
        // so that the caller's operation reports the error, and no waiter
        // goes to a reactor that nothing polls.
        return true;
    }
    match reactor.readiness(registration.token(), dir) {
        Readiness::NotReady => false,
        // Not this hub's socket any more: "ready", so that the caller's
        // operation reports the error.
        Readiness::Gone => true,
        Readiness::Ready(tick) => {
            let write = dir == Direction::Write;
            match crate::sys::os::ready_now(registration.fd(), write) {
                Ok(true) | Err(_) => true,
                Ok(false) => {
                    reactor.clear(registration.token(), dir, tick);
                    false
                }
            }
        }
    }
}

/// A set of operations to wait on together; see the module doc.
///
/// Each method adds an arm and returns its index; [`wait`](Self::wait)
/// returns the index of the arm that is ready, as a [`Selected`] to
/// complete.
///
/// ```
/// use std::time::Duration;
/// use greenhub::select::Select;
/// use greenhub::sync::{Channel, Event};
/// greenhub::run(|| {
///     let jobs: Channel<u32> = Channel::unbounded();
///     let stop = Event::new();
///     { let jobs = jobs.clone(); greenhub::spawn(move || jobs.send(7).unwrap()); }
///     let mut done = Vec::new();
///     loop {
///         let mut sel = Select::new();
///         let job = sel.recv(&jobs);
///         let stopped = sel.event(&stop);
///         let idle = sel.after(Duration::from_millis(5));
///         let ready = sel.wait().unwrap();
///         match ready.index() {
///             i if i == job => done.push(ready.recv(&jobs).unwrap()),
///             i if i == idle => stop.set(),
///             i if i == stopped => break,
///             _ => unreachable!(),
///         }
///     }
///     assert_eq!(done, [7]);
/// });
/// ```
#[derive(Default)]
pub struct Select<'a> {
    arms: Vec<Arm<'a>>,
}

impl<'a> Select<'a> {
    /// A select with no arms.
    pub fn new() -> Select<'a> {
        Select { arms: Vec::new() }
    }

    fn push(&mut self, arm: Arm<'a>) -> usize {
        self.arms.push(arm);
        self.arms.len() - 1
    }

    /// An arm ready when a receive from `channel` would not park (a value
    /// is there for this caller, or the channel is closed and drained).
    /// Complete it with [`Selected::recv`].
    pub fn recv<T>(&mut self, channel: &'a Channel<T>) -> usize {
        self.push(Arm::Recv(channel))
    }

    /// An arm ready when a send on `channel` would not park (there is room,
    /// or the channel is closed). Complete it with [`Selected::send`]: the
    /// value is given only to the arm that won, so none is lost.
    pub fn send<T>(&mut self, channel: &'a Channel<T>) -> usize {
        self.push(Arm::Send(channel))
    }

    /// An arm ready while `event` is set, or once it has been set since the
    /// arm was added or since this select last returned an arm on it, even
    /// if cleared since: a `set` and `clear` pulse is never lost, also when
    /// another arm wins the wait it lands in (the next wait returns this
    /// arm), as with gevent's `iwait`.
    pub fn event(&mut self, event: &'a Event) -> usize {
        self.push(Arm::Event(event, Cell::new(event.sets())))
    }

    /// An arm ready once the coroutine of `handle` has ended; `join` it
    /// then for its value, without parking.
    pub fn join<T>(&mut self, handle: &'a JoinHandle<T>) -> usize {
        self.push(Arm::Join(handle))
    }

    /// An arm ready when `io` has bytes to read (or was closed, or has an
    /// error), or for a listener, a connection to accept.
    pub fn readable(&mut self, io: impl Into<IoSource<'a>>) -> usize {
        self.push(Arm::Io(io.into().registration, Direction::Read))
    }

    /// An arm ready when a write to `io` would not park.
    pub fn writable(&mut self, io: impl Into<IoSource<'a>>) -> usize {
        self.push(Arm::Io(io.into().registration, Direction::Write))
    }

    /// An arm ready at `deadline`.
    pub fn deadline(&mut self, deadline: Instant) -> usize {
        self.push(Arm::Deadline(deadline))
    }

    /// An arm ready `timeout` from now.
    pub fn after(&mut self, timeout: Duration) -> usize {
        let at = Instant::now()
            .checked_add(timeout)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365 * 30));
        self.deadline(at)
    }

    /// Parks until one arm is ready and returns it (the first ready one, in
    /// the order the arms were added; the one whose queue woke the select
    /// before the others). Honours enclosing `timeout`s
    /// (`WaitError::TimedOut`) and kills, and reports a deadlock when no arm
    /// can ever become ready.
    ///
    /// # Panics
    ///
    /// Panics if the select has no arms: nothing could ever be ready.
    pub fn wait(&self) -> Result<Selected<'_, 'a>, WaitError> {
        assert!(!self.arms.is_empty(), "a select needs at least one arm");
        let mut woken: Option<usize> = None;
        loop {
            if let Some(arm) = woken.take() {
                if self.arms[arm].ready(true) {
                    return Ok(self.selected(arm, true));
                }
                self.arms[arm].pass_on();
            }
            if let Some(arm) = self.arms.iter().position(|arm| arm.ready(false)) {
                return Ok(self.selected(arm, false));
            }
            let mut sources = Vec::with_capacity(self.arms.len());
            let mut arm_of = Vec::with_capacity(self.arms.len());
            for (index, arm) in self.arms.iter().enumerate() {
                if let Some(source) = arm.source() {
                    sources.push(source);
                    arm_of.push(index);
                }
            }
            let deadline = self
                .arms
                .iter()
                .filter_map(|arm| match arm {
                    Arm::Deadline(at) => Some(*at),
                    _ => None,
                })
                .min();
            let (outcome, from) = crate::context::with(|hub| hub.park_any(&sources, deadline))
                .unwrap_or((Outcome::Refused, None));
            match outcome {
                // A deadline arm is ready now: the scan above finds it.
                Outcome::Notified | Outcome::Deadline => woken = from.map(|s| arm_of[s]),
                other => WaitError::from_outcome(other)?,
            }
        }
    }

    fn selected(&self, index: usize, woken: bool) -> Selected<'_, 'a> {
        if let Arm::Event(chosen, _) = &self.arms[index] {
            // The sets so far are delivered, to every arm on this event.
            for arm in &self.arms {
                if let Arm::Event(event, seen) = arm {
                    if event.is_same(chosen) {
                        seen.set(event.sets());
                    }
                }
            }
        }
        Selected {
            select: self,
            index,
            woken,
            done: false,
        }
    }
}

impl fmt::Debug for Select<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Select")
            .field("arms", &self.arms.len())
            .finish()
    }
}

/// The arm a [`Select::wait`] found ready. Complete a channel arm with
/// [`recv`](Self::recv) or [`send`](Self::send) before parking again; for
/// the other arms, do the operation (read the socket, `join` the handle).
/// Dropped without completing, a channel arm passes its turn on.
pub struct Selected<'s, 'a> {
    select: &'s Select<'a>,
    index: usize,
    /// This arm's queue woke the select, handing it a value or a slot.
    woken: bool,
    done: bool,
}

impl Selected<'_, '_> {
    /// The index of the ready arm, as returned when it was added.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Completes a [`recv`](Select::recv) arm: takes the value.
    ///
    /// # Panics
    ///
    /// Panics if the ready arm is not a `recv` on `channel`.
    pub fn recv<T>(mut self, channel: &Channel<T>) -> Result<T, ChannelError> {
        match self.select.arms[self.index] {
            Arm::Recv(arm) if arm.id() == channel.id() => {}
            _ => panic!(
                "Selected::recv: arm {} is not a recv on this channel",
                self.index
            ),
        }
        self.done = true;
        channel.recv_selected()
    }

    /// Completes a [`send`](Select::send) arm: queues the value (or gives it
    /// back if the channel was closed).
    ///
    /// # Panics
    ///
    /// Panics if the ready arm is not a `send` on `channel`.
    pub fn send<T>(mut self, channel: &Channel<T>, value: T) -> Result<(), SendError<T>> {
        match self.select.arms[self.index] {
            Arm::Send(arm) if arm.id() == channel.id() => {}
            _ => panic!(
                "Selected::send: arm {} is not a send on this channel",
                self.index
            ),
        }
        self.done = true;
        channel.send_selected(value)
    }
}

impl Drop for Selected<'_, '_> {
    fn drop(&mut self) {
        if self.woken && !self.done {
            self.select.arms[self.index].pass_on();
        }
    }
}

impl fmt::Debug for Selected<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Selected")
            .field("index", &self.index)
            .finish()
    }
}

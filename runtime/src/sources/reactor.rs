//! The reactor: registered sockets, their cached readiness, and the
//! coroutines parked on each side.
//!
//! mio is edge-triggered: an event says "this side became ready" once, and
//! is not repeated while bytes stay unread. So the reactor remembers. Each
//! side of each token has a `ready` flag and an event count (its tick):
//!
//! 1. An event sets `ready` and bumps the tick (`dispatch`), and hands every
//!    waiter of that side to the hub to wake.
//! 2. An operation reads the tick before its system call
//!    ([`Reactor::readiness`]). Only an operation that then saw `WouldBlock`
//!    (or a short read or write, which means the kernel buffer was drained
//!    or filled) clears `ready`, and only if no event came in meanwhile
//!    ([`Reactor::clear`] with the tick it read): a stale clear is refused.
//! 3. A wait parks only while `ready` is clear. So a wait after a read that
//!    stopped short of what the kernel holds returns at once instead of
//!    sleeping through those bytes, and a read right after a write, whose
//!    reply cannot be there yet, parks without a wasted system call.
//!
//! A hang-up or an error is a state, not an edge: it marks the side closed,
//! and a closed side is never cleared. A socket starts ready on both sides,
//! so its first operation tries. Tokens
//! are generation-checked keys, so an event in flight for a closed socket
//! finds nothing. The reactor never calls the hub: `dispatch` returns the
//! waiters to wake. See `docs/readiness-and-edge-triggering.md`.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;

use mio::event::Source;
use mio::{Interest, Registry, Token};

use crate::sched::{HubId, Key, Slab, Waiter};

/// Which side of a socket an operation uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Read,
    Write,
}

/// What an operation learns before its system call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Readiness {
    /// The side may be ready: try, and clear with this tick on `WouldBlock`.
    Ready(u32),
    /// The side is known not to be ready: park first.
    NotReady,
    /// The socket is not registered with this reactor any more.
    Gone,
}

/// One side of a socket.
#[derive(Debug)]
struct Side {
    /// Cleared only by an operation that saw the side drained; set by events.
    ready: bool,
    /// The peer closed this side, or the socket has an error: a state, not
    /// an edge, reported once. It keeps the side ready for good (a read
    /// that returned the last bytes short must not hide the EOF behind it).
    closed: bool,
    /// Events seen on this side, wrapping; see the module doc.
    tick: u32,
    /// Coroutines parked on this side. Usually one; a `Vec` keeps its
    /// capacity, so parking on a socket allocates only the first time.
    waiters: Vec<Waiter>,
}

impl Side {
    fn new() -> Side {
        Side {
            ready: true,
            closed: false,
            tick: 0,
            waiters: Vec::new(),
        }
    }
}

/// One registered socket.
#[derive(Debug)]
struct Slot {
    /// Its file descriptor, for `dump()`.
    fd: i32,
    read: Side,
    write: Side,
}

impl Slot {
    fn side(&mut self, dir: Direction) -> &mut Side {
        match dir {
            Direction::Read => &mut self.read,
            Direction::Write => &mut self.write,
        }
    }
}

/// The sockets of one hub. Shared by `Rc` with every socket registered here,
/// so a socket deregisters from its own hub's poller even when dropped
/// during another hub's run.
pub(crate) struct Reactor {
    pub(crate) hub: HubId,
    registry: Registry,
    slots: RefCell<Slab<Slot>>,
    /// Waiters over all slots: nonzero means the network may still wake
    /// someone, so the hub is not deadlocked.
    waiting: Cell<usize>,
}

impl Reactor {
    pub(crate) fn new(hub: HubId, registry: Registry) -> Reactor {
        Reactor {
            hub,
            registry,
            slots: RefCell::new(Slab::new()),
            waiting: Cell::new(0),
        }
    }

    /// Registers `source` for read and write readiness, edge-triggered.
    pub(crate) fn register(&self, source: &mut impl Source, fd: i32) -> io::Result<Key> {
        let key = self.slots.borrow_mut().insert(Slot {
            fd,
            read: Side::new(),
            write: Side::new(),
        });
        let interest = Interest::READABLE | Interest::WRITABLE;
        match self
            .registry
            .register(source, Token(key.to_usize()), interest)
        {
            Ok(()) => Ok(key),
            Err(err) => {
                self.slots.borrow_mut().remove(key);
                Err(err)
            }
        }
    }

    /// Deregisters `source`; its waiters (there should be none: the socket
    /// is being dropped) are forgotten.
    pub(crate) fn deregister(&self, source: &mut impl Source, key: Key) {
        // Deregistering cannot fail for a registered source; the fd is
        // closed right after, which would deregister it anyway.
        let _ = self.registry.deregister(source);
        if let Some(slot) = self.slots.borrow_mut().remove(key) {
            let left = slot.read.waiters.len() + slot.write.waiters.len();
            self.waiting.set(self.waiting.get() - left);
        }
    }

    /// Step 2 of the protocol: the side's readiness before an operation.
    pub(crate) fn readiness(&self, key: Key, dir: Direction) -> Readiness {
        let mut slots = self.slots.borrow_mut();
        let Some(slot) = slots.get_mut(key) else {
            return Readiness::Gone;
        };
        let side = slot.side(dir);
        if side.ready {
            Readiness::Ready(side.tick)
        } else {
            Readiness::NotReady
        }
    }

    /// The operation that read `tick` found the side drained: clear `ready`,
    /// unless an event arrived since.
    pub(crate) fn clear(&self, key: Key, dir: Direction, tick: u32) {
        if let Some(slot) = self.slots.borrow_mut().get_mut(key) {
            let side = slot.side(dir);
            if side.tick == tick && !side.closed {
                side.ready = false;
            }
        }
    }

    /// Parks `waiter` on a side; false if the side is ready after all (or
    /// the socket is gone), in which case nothing was registered.
    pub(crate) fn add_waiter(&self, key: Key, dir: Direction, waiter: Waiter) -> bool {
        let mut slots = self.slots.borrow_mut();
        let Some(slot) = slots.get_mut(key) else {
            return false;
        };
        let side = slot.side(dir);
        if side.ready {
            return false;
        }
        side.waiters.push(waiter);
        self.waiting.set(self.waiting.get() + 1);
        true
    }

    /// Removes `waiter` from a side, if it is still there.
    pub(crate) fn remove_waiter(&self, key: Key, dir: Direction, waiter: Waiter) {
        if let Some(slot) = self.slots.borrow_mut().get_mut(key) {
            let waiters = &mut slot.side(dir).waiters;
            if let Some(at) = waiters.iter().position(|w| *w == waiter) {
                waiters.swap_remove(at);
                self.waiting.set(self.waiting.get() - 1);
            }
        }
    }

    /// Step 1: an event for its token. Marks the sides ready (and closed,
    /// for a hang-up or an error) and moves their waiters into `wakes`.
    pub(crate) fn dispatch(&self, event: &mio::event::Event, wakes: &mut Vec<Waiter>) {
        let mut slots = self.slots.borrow_mut();
        let Some(slot) = slots.get_mut(Key::from_usize(event.token().0)) else {
            return;
        };
        let error = event.is_error();
        let read_closed = event.is_read_closed() || error;
        let write_closed = event.is_write_closed() || error;
        let sides = [
            (
                event.is_readable() || read_closed,
                read_closed,
                &mut slot.read,
            ),
            (
                event.is_writable() || write_closed,
                write_closed,
                &mut slot.write,
            ),
        ];
        for (ready, closed, side) in sides {
            if ready {
                side.ready = true;
                side.closed |= closed;
                side.tick = side.tick.wrapping_add(1);
                self.waiting.set(self.waiting.get() - side.waiters.len());
                wakes.append(&mut side.waiters);
            }
        }
    }

    /// The file descriptor registered under `key`.
    pub(crate) fn fd(&self, key: Key) -> Option<i32> {
        self.slots.borrow().get(key).map(|slot| slot.fd)
    }

    /// Coroutines parked on sockets.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.get()
    }

    /// Registered sockets.
    pub(crate) fn len(&self) -> usize {
        self.slots.borrow().len()
    }
}

impl fmt::Debug for Reactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reactor")
            .field("hub", &self.hub)
            .field("sockets", &self.len())
            .field("waiting", &self.waiting.get())
            .finish()
    }
}

//! Readiness: the token table and the one I/O shape every socket uses.
//!
//! A socket is registered with the hub's mio `Registry` once, when it is
//! created, edge-triggered, for both reading and writing; its token is a
//! generation-checked key into the [`IoTable`], so an event still in flight
//! for a closed socket finds nothing. [`Registered::io`] is the shape of every
//! operation: try the system call; on `WouldBlock`, park on the token's read
//! or write side; when woken, try again (the wake may be spurious: another
//! reader may have taken the bytes). Edge-triggered readiness makes this
//! correct only because a coroutine parks strictly after an operation
//! returned `WouldBlock`. One reader and one writer per socket at a time is
//! the intended use; several are tolerated (all are woken, losers re-park).
//! See `docs/architecture.md`, "Readiness".

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use mio::{Interest, Token};

use crate::hub;
use crate::park::{park, Outcome, WaitOn, Waiter};
use crate::slab::{Key, Slab};

/// Which side of a socket a coroutine waits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Read,
    Write,
}

/// Registered sockets and the coroutines parked on each.
#[derive(Debug, Default)]
pub(crate) struct IoTable {
    slots: Slab<IoSlot>,
    /// Waiters in all slots: nonzero means the network may still wake someone.
    waiting: usize,
}

/// One socket's waiters. The vectors keep their capacity, so parking on a
/// socket allocates only the first time.
#[derive(Debug, Default)]
struct IoSlot {
    /// The socket's file descriptor, for `dump()`.
    fd: i32,
    readers: Vec<Waiter>,
    writers: Vec<Waiter>,
}

impl IoSlot {
    fn side(&mut self, dir: Direction) -> &mut Vec<Waiter> {
        match dir {
            Direction::Read => &mut self.readers,
            Direction::Write => &mut self.writers,
        }
    }
}

impl IoTable {
    pub(crate) fn insert(&mut self, fd: i32) -> Key {
        self.slots.insert(IoSlot {
            fd,
            ..IoSlot::default()
        })
    }

    /// The file descriptor registered under `key`.
    pub(crate) fn fd(&self, key: Key) -> Option<i32> {
        self.slots.get(key).map(|slot| slot.fd)
    }

    pub(crate) fn remove(&mut self, key: Key) {
        if let Some(slot) = self.slots.remove(key) {
            self.waiting -= slot.readers.len() + slot.writers.len();
        }
    }

    pub(crate) fn add_waiter(&mut self, key: Key, dir: Direction, waiter: Waiter) {
        if let Some(slot) = self.slots.get_mut(key) {
            slot.side(dir).push(waiter);
            self.waiting += 1;
        }
    }

    pub(crate) fn remove_waiter(&mut self, key: Key, dir: Direction, waiter: Waiter) {
        if let Some(slot) = self.slots.get_mut(key) {
            let side = slot.side(dir);
            let before = side.len();
            side.retain(|w| *w != waiter);
            self.waiting -= before - side.len();
        }
    }

    /// Hands every waiter of the ready sides of `key` to `wake`.
    pub(crate) fn take_ready(
        &mut self,
        key: Key,
        readable: bool,
        writable: bool,
        mut wake: impl FnMut(Waiter),
    ) {
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        for (ready, side) in [(readable, &mut slot.readers), (writable, &mut slot.writers)] {
            if ready {
                self.waiting -= side.len();
                side.drain(..).for_each(&mut wake);
            }
        }
    }

    pub(crate) fn waiting(&self) -> usize {
        self.waiting
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }
}

/// A mio source registered with this thread's hub; deregistered on drop.
/// Not `Send`: its token belongs to this thread's hub.
pub(crate) struct Registered<S: mio::event::Source> {
    source: S,
    token: Key,
    _not_send: PhantomData<*const ()>,
}

impl<S: mio::event::Source + AsRawFd> Registered<S> {
    /// Registers `source` for read and write readiness, edge-triggered.
    pub(crate) fn new(mut source: S) -> io::Result<Self> {
        hub::with(|hub| {
            let token = hub.core.borrow_mut().io.insert(source.as_raw_fd());
            let interest = Interest::READABLE | Interest::WRITABLE;
            match hub
                .registry
                .register(&mut source, Token(token.to_usize()), interest)
            {
                Ok(()) => Ok(Registered {
                    source,
                    token,
                    _not_send: PhantomData,
                }),
                Err(err) => {
                    hub.core.borrow_mut().io.remove(token);
                    Err(err)
                }
            }
        })
        .unwrap_or_else(|| Err(outside_hub()))
    }
}

impl<S: mio::event::Source> Registered<S> {
    pub(crate) fn get(&self) -> &S {
        &self.source
    }

    /// Runs `op` until it does not return `WouldBlock`, parking on `dir`
    /// between tries; `timeout` bounds the whole operation (`what` names it
    /// in the error).
    pub(crate) fn io<R>(
        &self,
        dir: Direction,
        timeout: Option<Duration>,
        what: &'static str,
        mut op: impl FnMut(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        let mut deadline = None;
        loop {
            match op(&self.source) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                done => return done,
            }
            if deadline.is_none() {
                deadline = timeout.map(|t| Instant::now() + t);
            }
            self.wait(dir, deadline, what)?;
        }
    }

    /// Parks until `dir` may be ready (or `deadline` passes).
    pub(crate) fn wait(
        &self,
        dir: Direction,
        deadline: Option<Instant>,
        what: &'static str,
    ) -> io::Result<()> {
        outcome_to_io(park(WaitOn::Io(self.token, dir), deadline), what)
    }
}

impl<S: mio::event::Source> Drop for Registered<S> {
    fn drop(&mut self) {
        hub::with(|hub| {
            // Deregistering cannot fail for a registered source; the fd is
            // closed right after, which would deregister it anyway.
            let _ = hub.registry.deregister(&mut self.source);
            hub.core.borrow_mut().io.remove(self.token);
        });
    }
}

impl<S: mio::event::Source + fmt::Debug> fmt::Debug for Registered<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.source.fmt(f)
    }
}

/// The error a socket gives when a wait on it did not end in readiness.
pub(crate) fn outcome_to_io(outcome: Outcome, what: &'static str) -> io::Result<()> {
    match outcome {
        Outcome::Notified => Ok(()),
        Outcome::Deadline => Err(timed_out(what)),
        Outcome::Elapsed => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{what} interrupted: greenhub::timeout elapsed"),
        )),
        Outcome::Deadlock(message) => Err(io::Error::other(message)),
        Outcome::Refused => Err(io::Error::other(format!(
            "{what} cannot wait: not in a coroutine, or the coroutine is unwinding (killed or panicking)"
        ))),
    }
}

/// `ErrorKind::TimedOut`, naming the operation whose own timeout passed.
pub(crate) fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("{what} timed out"))
}

/// The error of a socket created on a thread that runs no hub.
pub(crate) fn outside_hub() -> io::Error {
    io::Error::other("greenhub sockets work only inside greenhub::run (this thread runs no hub)")
}

//! A socket registered with its hub's reactor, and the one I/O shape every
//! socket operation uses.
//!
//! [`Registered::io`] is the shape: ask the reactor whether the side may be
//! ready; if it is known not to be, park until it is; otherwise try the
//! system call, and on `WouldBlock` (or a short read or write, which drained
//! or filled the kernel's buffer) clear the side's readiness with the tick
//! read before the call, then loop. Wakes can be spurious, so the loop
//! re-checks. The reactor's cache (`sources/reactor.rs`) makes this correct
//! under edge triggering whatever came before: a wait never sleeps through
//! bytes an earlier short read left in the kernel.
//!
//! A `Registered` keeps its hub's reactor alive by `Rc` and carries that
//! hub's id. Used on another hub (a socket kept from an earlier `run`), every
//! operation fails with a clear error, and dropping it deregisters it from
//! its own poller, never touching the current hub's sockets. One reader and
//! one writer per socket at a time is the intended use; several are
//! tolerated (all are woken, losers re-park). See
//! `docs/readiness-and-edge-triggering.md`.

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;

use crate::hub::park::WaitOn;
use crate::sched::Key;
use crate::sources::reactor::{Direction, Reactor, Readiness};

use super::{outcome_to_io, outside_hub};

/// A file descriptor registered with a hub, and what owns it.
///
/// The registration is by fd (mio's `SourceFd`), so anything with a file
/// descriptor can be registered (`io::Async` registers pipes and eventfds
/// this way), and [`into_inner`](Self::into_inner) can hand the owner back
/// after deregistering. Not `Send`: its token belongs to its hub's thread.
pub(crate) struct Registered<S: AsRawFd> {
    /// Deregisters on drop. Declared before `source`, so it drops first,
    /// while the fd is still open.
    registration: Registration,
    source: S,
}

/// The token of one registered fd and the reactor it is registered with.
pub(crate) struct Registration {
    fd: RawFd,
    token: Key,
    reactor: Rc<Reactor>,
    _not_send: PhantomData<*const ()>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.reactor.deregister(&mut SourceFd(&self.fd), self.token);
    }
}

impl Registration {
    /// The shape itself; `drained` says whether a result emptied (or
    /// filled) the kernel buffer.
    pub(crate) fn io_until<R>(
        &self,
        dir: Direction,
        deadline: Deadline,
        what: &'static str,
        drained: impl Fn(&R) -> bool,
        mut op: impl FnMut() -> io::Result<R>,
    ) -> io::Result<R> {
        if crate::context::with(|hub| hub.id) != Some(self.reactor.hub) {
            return Err(wrong_hub(what));
        }
        // A timeout counts from the first park, as std's does from the call.
        let mut deadline = deadline;
        loop {
            let tick = match self.reactor.readiness(self.token, dir) {
                Readiness::Ready(tick) => tick,
                Readiness::NotReady => {
                    let at = deadline.start(Instant::now());
                    deadline = Deadline::At(at);
                    self.wait_until(dir, at, what)?;
                    continue;
                }
                Readiness::Gone => return Err(wrong_hub(what)),
            };
            match op() {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    self.reactor.clear(self.token, dir, tick);
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Ok(value) => {
                    if drained(&value) {
                        self.reactor.clear(self.token, dir, tick);
                    }
                    return Ok(value);
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Parks until `dir` may be ready, or returns at once if the reactor
    /// says it may be ready already (`deadline` bounds the wait).
    pub(crate) fn wait_until(
        &self,
        dir: Direction,
        deadline: Option<Instant>,
        what: &'static str,
    ) -> io::Result<()> {
        let outcome = crate::context::with(|hub| {
            if hub.id != self.reactor.hub {
                return Err(wrong_hub(what));
            }
            Ok(hub.park(WaitOn::Io(&self.reactor, self.token, dir), deadline))
        })
        .ok_or_else(outside_hub)??;
        outcome_to_io(outcome, what)
    }

    /// Parks until `dir` is ready *now*, as the kernel says (a `poll(2)`
    /// probe), not merely "an edge was seen and not used up": a cached
    /// readiness the probe finds stale is cleared with its tick, and the
    /// wait parks for the next edge. For waits whose caller does its own
    /// system call (`io::Async::readable`), which the reactor never sees
    /// fail with `WouldBlock`.
    pub(crate) fn wait_ready(
        &self,
        dir: Direction,
        deadline: Deadline,
        what: &'static str,
    ) -> io::Result<()> {
        let write = dir == Direction::Write;
        self.io_until(
            dir,
            deadline,
            what,
            |_| false,
            || {
                if crate::sys::os::ready_now(self.fd, write)? {
                    Ok(())
                } else {
                    Err(io::ErrorKind::WouldBlock.into())
                }
            },
        )
    }
}

impl Registration {
    pub(crate) fn reactor(&self) -> &Reactor {
        &self.reactor
    }

    pub(crate) fn token(&self) -> Key {
        self.token
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.fd
    }
}

impl<S: AsRawFd> Registered<S> {
    /// Registers `source` (already non-blocking) with this thread's hub, for
    /// read and write readiness, edge-triggered.
    pub(crate) fn new(source: S) -> io::Result<Self> {
        let reactor = crate::context::with(|hub| hub.reactor.clone()).ok_or_else(outside_hub)?;
        let fd = source.as_raw_fd();
        let token = reactor.register(&mut SourceFd(&fd), fd)?;
        Ok(Registered {
            registration: Registration {
                fd,
                token,
                reactor,
                _not_send: PhantomData,
            },
            source,
        })
    }

    /// Deregisters and gives the owner back (for `into_std`, `into_raw_fd`,
    /// `into_inner`).
    pub(crate) fn into_inner(self) -> S {
        let Registered {
            registration,
            source,
        } = self;
        drop(registration);
        source
    }

    pub(crate) fn get(&self) -> &S {
        &self.source
    }

    pub(crate) fn get_mut(&mut self) -> &mut S {
        &mut self.source
    }

    /// The reactor, token and fd, for `select` and `io::Async`'s probes.
    pub(crate) fn registration(&self) -> &Registration {
        &self.registration
    }

    /// Runs `op` until it does not return `WouldBlock`, parking on `dir`
    /// between tries; `timeout` bounds the whole operation (`what` names it
    /// in the error).
    pub(crate) fn io<R>(
        &self,
        dir: Direction,
        timeout: Option<Duration>,
        what: &'static str,
        op: impl FnMut(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        let deadline = timeout.map(Deadline::After).unwrap_or(Deadline::Never);
        self.io_until(dir, deadline, what, |_| false, op)
    }

    /// [`io`](Self::io) for a read or write of `asked` bytes, the most the
    /// call can move (for a vectored call, what its first `IOV_MAX` buffers
    /// hold: the kernel is passed no more): a result short of it means the
    /// kernel buffer ran dry (read) or full (write), so the
    /// side's readiness is cleared as `WouldBlock` would clear it, and the
    /// next operation parks first instead of making a call that would fail.
    pub(crate) fn io_bytes(
        &self,
        dir: Direction,
        timeout: Option<Duration>,
        what: &'static str,
        asked: usize,
        op: impl FnMut(&S) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let deadline = timeout.map(Deadline::After).unwrap_or(Deadline::Never);
        self.io_until(dir, deadline, what, |n| *n > 0 && *n < asked, op)
    }

    /// The shape itself; `drained` says whether a result emptied (or
    /// filled) the kernel buffer.
    pub(crate) fn io_until<R>(
        &self,
        dir: Direction,
        deadline: Deadline,
        what: &'static str,
        drained: impl Fn(&R) -> bool,
        mut op: impl FnMut(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        let source = &self.source;
        self.registration
            .io_until(dir, deadline, what, drained, || op(source))
    }

    /// [`io_until`](Self::io_until) with the owner borrowed mutably, for
    /// types whose `Read` or `Write` needs `&mut` (a child's pipes).
    pub(crate) fn io_until_mut<R>(
        &mut self,
        dir: Direction,
        deadline: Deadline,
        what: &'static str,
        drained: impl Fn(&R) -> bool,
        mut op: impl FnMut(&mut S) -> io::Result<R>,
    ) -> io::Result<R> {
        let Registered {
            registration,
            source,
        } = self;
        registration.io_until(dir, deadline, what, drained, || op(source))
    }

    /// Parks until `dir` may be ready, or returns at once if the reactor
    /// says it may be ready already (`deadline` bounds the wait).
    pub(crate) fn wait_until(
        &self,
        dir: Direction,
        deadline: Option<Instant>,
        what: &'static str,
    ) -> io::Result<()> {
        self.registration.wait_until(dir, deadline, what)
    }
}

/// When an operation gives up.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Deadline {
    Never,
    /// This long after its first park.
    After(Duration),
    /// Its first park's deadline, fixed; `None`: never.
    At(Option<Instant>),
}

impl Deadline {
    /// The deadline of a park starting `now`.
    fn start(self, now: Instant) -> Option<Instant> {
        match self {
            Deadline::Never => None,
            Deadline::After(t) => now.checked_add(t),
            Deadline::At(at) => at,
        }
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("fd", &self.fd)
            .field("hub", &self.reactor.hub)
            .finish()
    }
}

impl<S: AsRawFd + fmt::Debug> fmt::Debug for Registered<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.source.fmt(f)
    }
}

/// The error of a socket used outside the hub it was made on.
pub(crate) fn wrong_hub(what: &str) -> io::Error {
    io::Error::other(format!(
        "{what}: this socket belongs to another hub (one that has shut down); \
         a socket works only inside the hub it was created on"
    ))
}

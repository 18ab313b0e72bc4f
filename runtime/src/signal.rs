//! Waiting for Unix signals in a coroutine: [`wait`] and [`Signals`],
//! gevent's `signal_handler` turned inside out (the coroutine asks, instead
//! of a callback being run).
//!
//! The signal handler itself only writes a byte to a self-pipe
//! (`sys/signal.rs`); a helper thread reads it and wakes the subscribed
//! coroutines through their hubs' inboxes (`sources/signals.rs`). So a
//! signal interrupts no coroutine and runs no code on the hub's thread: the
//! waiting coroutine simply returns from its park, like one woken by a
//! remote channel. Every subscription to a signal sees every delivery of
//! it, so any number of coroutines (on any number of hubs) may wait for the
//! same signal. A coroutine parked for a signal is not a deadlock: a signal
//! can come at any time.

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use crate::hub::park::{kill_unwind, outcome_to_io, WaitOn};
use crate::sched::NoPark;
use crate::sources::signals::Subscription;

/// A subscription to some signals: every one caught from its creation on is
/// kept for [`recv`](Self::recv) until taken, so a signal that arrives while
/// the coroutine is busy elsewhere is not lost. A signal caught again before
/// it was taken is kept once, as the kernel keeps a pending signal once.
///
/// While any `Signals` for a signal exists, that signal's default action
/// (SIGTERM's or SIGINT's exit, say) is replaced by the delivery; when the
/// last is dropped, the previous disposition is put back.
///
/// ```
/// use greenhub::signal::Signals;
/// greenhub::run(|| {
///     let hangups = Signals::new(&[libc::SIGHUP]).unwrap();
///     let reloader = greenhub::spawn(move || hangups.recv().unwrap());
///     greenhub::sleep(std::time::Duration::from_millis(5));
///     // As `kill -HUP <pid>` from a shell would:
///     std::process::Command::new("kill")
///         .args(["-HUP", &std::process::id().to_string()])
///         .status()
///         .unwrap();
///     assert_eq!(reloader.join().unwrap(), libc::SIGHUP);
/// });
/// ```
pub struct Signals {
    subscription: Subscription,
}

impl Signals {
    /// Subscribes to `signals` (`libc::SIGTERM`, `libc::SIGINT`, ...).
    /// Fails for a number that is no signal, for SIGKILL and SIGSTOP (which
    /// cannot be caught) and for the faults (SIGSEGV, SIGBUS, SIGILL,
    /// SIGFPE).
    pub fn new(signals: &[i32]) -> io::Result<Signals> {
        Ok(Signals {
            subscription: Subscription::new(signals)?,
        })
    }

    /// Parks until one of the signals has been caught, and returns it (the
    /// oldest caught and not yet taken). Honours enclosing `timeout`s and
    /// kills; fails outside a coroutine.
    pub fn recv(&self) -> io::Result<i32> {
        self.recv_until(None)
    }

    /// Like [`recv`](Self::recv), failing with `ErrorKind::TimedOut` after
    /// `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> io::Result<i32> {
        self.recv_until(Instant::now().checked_add(timeout))
    }

    /// The oldest signal caught and not yet taken, without waiting.
    pub fn try_recv(&self) -> Option<i32> {
        self.subscription.take()
    }

    /// The signals this subscription listens for.
    pub fn signals(&self) -> Vec<i32> {
        self.subscription.signals()
    }

    fn recv_until(&self, deadline: Option<Instant>) -> io::Result<i32> {
        loop {
            if let Some(signal) = self.subscription.take() {
                return Ok(signal);
            }
            let hub = crate::context::hub().ok_or_else(not_here)?;
            let token = match hub.sched.token() {
                Ok(token) => token,
                Err(NoPark::Killed) => kill_unwind(),
                Err(_) => return Err(not_here()),
            };
            let waiter = token.waiter();
            if !self.subscription.park(hub.inbox.clone(), waiter) {
                continue; // caught meanwhile: take it
            }
            // Takes the waiter back however the park ends, even by a kill.
            struct Unpark<'a>(&'a Subscription, crate::sched::Waiter);
            impl Drop for Unpark<'_> {
                fn drop(&mut self) {
                    self.0.unpark(self.1);
                }
            }
            let unpark = Unpark(&self.subscription, waiter);
            let outcome = hub.park_with(token, WaitOn::Remote, deadline);
            drop(unpark);
            outcome_to_io(outcome, "signal wait")?;
        }
    }
}

impl fmt::Debug for Signals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signals")
            .field("signals", &self.signals())
            .finish()
    }
}

/// An iterator over the signals as they are caught; ends only if a wait
/// fails (a kill, a `timeout`).
impl Iterator for &Signals {
    type Item = i32;
    fn next(&mut self) -> Option<i32> {
        self.recv().ok()
    }
}

/// Parks until one of `signals` is caught, and returns which. Only signals
/// caught after the call began count; to miss none between two waits, keep
/// a [`Signals`].
///
/// ```no_run
/// greenhub::run(|| {
///     let signal = greenhub::signal::wait(&[libc::SIGTERM, libc::SIGINT]).unwrap();
///     println!("stopping on signal {signal}");
/// });
/// ```
pub fn wait(signals: &[i32]) -> io::Result<i32> {
    Signals::new(signals)?.recv()
}

fn not_here() -> io::Error {
    crate::hub::park::cannot_wait("signal wait")
}

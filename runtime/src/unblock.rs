//! `unblock(f)`: run a blocking closure on a helper thread while the calling
//! coroutine parks and the others keep running.
//!
//! Nothing may block the hub's thread, but some calls only come in blocking
//! form: `getaddrinfo` behind a host name is the one the runtime itself needs.
//! The coroutine takes its park token, sends the closure with the token's
//! waiter to a helper lane (`sources/helpers.rs`: a burst spreads over up to
//! [`HubBuilder::max_helpers`](crate::HubBuilder::max_helpers) threads; name
//! resolution has a lane of its own) and parks. The helper runs it, stores
//! the result and posts the waiter to the hub's inbox, which wakes the hub;
//! the hub then wakes the coroutine like any other wake source. While a
//! coroutine waits for its job the hub cannot be deadlocked. If the park
//! ends first (a `timeout`, a kill), the token retires the waiter, so the
//! late completion wakes nothing, and the abandoned job no longer counts
//! against a deadlock report. See `docs/architecture.md`, "Helper threads".

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, PoisonError};

use crate::hub::park::{cannot_wait, kill_unwind, outcome_to_io, WaitOn};
use crate::hub::Hub;
use crate::sched::NoPark;
use crate::sources::helpers::Lane;

/// Runs the blocking closure `f` on a helper thread and parks the calling
/// coroutine until it returns; other coroutines run meanwhile.
///
/// Outside a coroutine, `f` simply runs on the calling thread. Honours
/// enclosing `timeout`s and kills: the coroutine stops waiting (the closure
/// still runs to its end on the helper, and its result is dropped). A panic
/// in `f` is resumed in the caller.
///
/// ```
/// greenhub::run(|| {
///     let addrs = greenhub::unblock(|| std::net::ToSocketAddrs::to_socket_addrs("localhost:80")).unwrap();
///     assert!(addrs.is_ok());
/// });
/// ```
pub fn unblock<F, R>(f: F) -> io::Result<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    match crate::context::hub() {
        Some(hub) if hub.sched.current().is_some() => run_on(&hub, &hub.helpers, f),
        _ => Ok(f()),
    }
}

/// `unblock` on the name-resolution lane.
pub(crate) fn resolve<F, R>(f: F) -> io::Result<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    match crate::context::hub() {
        Some(hub) if hub.sched.current().is_some() => run_on(&hub, &hub.resolver, f),
        _ => Ok(f()),
    }
}

fn run_on<F, R>(hub: &Hub, lane: &Lane, f: F) -> io::Result<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let token = match hub.sched.token() {
        Ok(token) => token,
        Err(NoPark::Killed) => kill_unwind(),
        Err(_) => return Err(cannot_wait("unblock")),
    };
    let slot = Arc::new(Mutex::new(None));
    let (result, inbox, waiter) = (slot.clone(), hub.inbox.clone(), token.waiter());
    lane.submit(Box::new(move || {
        let value = panic::catch_unwind(AssertUnwindSafe(f));
        *result.lock().unwrap_or_else(PoisonError::into_inner) = Some(value);
        inbox.complete(waiter);
    }))?;
    // Only the completion can end this park with `Notified` (nothing else
    // holds the waiter), and the helper fills the slot before it posts.
    outcome_to_io(hub.park_with(token, WaitOn::Unblock, None), "unblock")?;
    let taken = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
    match taken {
        Some(Ok(value)) => Ok(value),
        Some(Err(payload)) => {
            crate::panic::report_resumed("its unblock job", &*payload);
            panic::resume_unwind(payload)
        }
        None => Err(io::Error::other(
            "unblock: woken before the helper thread finished",
        )),
    }
}

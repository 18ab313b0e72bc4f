//! The one thread-local: which hub runs on this thread. Public calls read it
//! once to find their hub and pass the hub down; nothing below the API layer
//! reads it.

use std::cell::RefCell;
use std::rc::Rc;

use crate::hub::Hub;

thread_local! {
    static CURRENT: RefCell<Option<Rc<Hub>>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's hub, or returns `None` outside `run`.
pub(crate) fn with<R>(f: impl FnOnce(&Hub) -> R) -> Option<R> {
    CURRENT
        .try_with(|cell| cell.borrow().as_deref().map(f))
        .ok()
        .flatten()
}

/// This thread's hub, to keep (a socket keeps its hub's reactor).
pub(crate) fn hub() -> Option<Rc<Hub>> {
    CURRENT
        .try_with(|cell| cell.borrow().clone())
        .ok()
        .flatten()
}

/// Whether a hub runs on this thread.
pub(crate) fn installed() -> bool {
    with(|_| ()).is_some()
}

/// Whether the caller is a coroutine of this thread's hub.
pub(crate) fn in_coroutine() -> bool {
    with(|hub| hub.sched.current().is_some()).unwrap_or(false)
}

/// Makes `hub` this thread's hub until the guard is dropped (even when the
/// hub's loop panics).
pub(crate) fn install(hub: Rc<Hub>) -> Installed {
    CURRENT.with(|cell| *cell.borrow_mut() = Some(hub));
    Installed(())
}

/// Clears the thread's hub on drop; see [`install`].
#[derive(Debug)]
pub(crate) struct Installed(());

impl Drop for Installed {
    fn drop(&mut self) {
        let hub = CURRENT.try_with(|cell| cell.borrow_mut().take());
        drop(hub); // after the borrow: the hub's drop may run coroutine code
    }
}

//! The context switch: corosensei's coroutine over our [`Stack`], and the one
//! `unsafe` call that suspends the running coroutine.
//!
//! The hub resumes a [`Coro`] (`Hub::resume`); a coroutine gives control back
//! only through [`suspend`], which the park protocol (`hub/park.rs`) calls.

use super::stack::Stack;

/// A coroutine as the hub stores it: resumed with `()`, yields `()` when it
/// parks, returns `()` when done (its value travels through its `JoinHandle`).
pub(crate) type Coro = corosensei::Coroutine<(), (), (), Stack>;

/// The handle a coroutine uses to suspend itself.
pub(crate) type Yielder = corosensei::Yielder<(), ()>;

/// The address of a coroutine's `Yielder`, stored in its task entry.
///
/// The `Yielder` lives at the base of the coroutine's own stack for as long as
/// the coroutine has not returned.
#[derive(Clone, Copy, Debug)]
pub(crate) struct YielderPtr(*const Yielder);

impl YielderPtr {
    pub(crate) fn new(yielder: &Yielder) -> Self {
        YielderPtr(yielder)
    }
}

/// Suspends the running coroutine until the hub resumes it.
///
/// # Safety
///
/// `yielder` must belong to the coroutine that is running on this thread right
/// now, and no `RefCell` borrow of hub state may be held across the call.
pub(crate) unsafe fn suspend(yielder: YielderPtr) {
    // SAFETY: by this function's contract we are on the coroutine that owns
    // the yielder, so it has not returned and its stack (where the yielder
    // lives) is valid for the whole call.
    unsafe { (*yielder.0).suspend(()) }
}

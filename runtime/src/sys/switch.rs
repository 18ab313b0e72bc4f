//! The context switch: corosensei's coroutine over our [`Stack`], and the one
//! `unsafe` call that suspends the running coroutine.
//!
//! The hub resumes a [`Coro`] (`Hub::resume`); a coroutine gives control back
//! only through [`suspend`], which the park protocol (`hub/park.rs`) calls.
//! It suspends through the yielder in the running record (`running.rs`), so
//! no caller can hand it another coroutine's.

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
///
/// Never null, so an `Option` of it is one word (the hub keeps one per
/// coroutine).
pub(crate) struct YielderPtr(std::ptr::NonNull<Yielder>);

impl YielderPtr {
    pub(crate) fn new(yielder: &Yielder) -> Self {
        YielderPtr(std::ptr::NonNull::from(yielder))
    }
}

/// Suspends the running coroutine until the hub resumes it.
///
/// # Panics
///
/// Panics when no coroutine runs on this thread (the hub's own code).
pub(crate) fn suspend() {
    let yielder = super::running::yielder().expect("only a running coroutine can suspend");
    // An address in this frame: the switch saves its registers just below.
    let here = 0u8;
    super::running::suspending(std::hint::black_box(&here) as *const u8 as usize);
    // SAFETY: the running record holds the yielder of the coroutine the hub
    // resumed on this thread (`running::entering`, or `started` by its first
    // frame), and we are on that coroutine's stack: it has not returned, so
    // its yielder, which lives at the base of that stack, is valid for the
    // whole call.
    unsafe { yielder.0.as_ref().suspend(()) }
}

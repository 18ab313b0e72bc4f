//! Running a closure that borrows from its caller on a coroutine:
//! `greenhub::run(|| ...)` may use the caller's locals by reference.
//!
//! A coroutine's closure must be `'static` (corosensei's, and the task
//! table's, type), but `run` returns only after its `main` coroutine is
//! gone, which makes a borrowing `main` sound in the same way as
//! `std::thread::scope`: the borrow outlives every use. [`scoped`] erases
//! the closure's lifetime and *checks* that promise instead of trusting its
//! caller: the erased closure travels in a [`Scoped`] that clears a flag
//! when it is dropped (after the closure has run, or unrun), and if that
//! flag is still set when `scoped` returns or unwinds, the process aborts
//! rather than leave a closure alive whose borrows have ended. A spawned
//! coroutine cannot capture `main`'s borrows: `spawn` still demands
//! `'static`, so only `main`'s own closure is erased.

use std::cell::Cell;
use std::rc::Rc;

/// A closure whose borrows the type no longer shows; runs at most once.
/// Not `Send`: it must run on the thread of the caller it borrows from.
pub(crate) struct Scoped {
    f: Option<Box<dyn FnOnce() + 'static>>,
    /// Set while this value exists; cleared by its drop.
    alive: Rc<Cell<bool>>,
}

impl Scoped {
    /// Runs the closure (the value is dropped after it, even if it panics).
    pub(crate) fn call(mut self) {
        if let Some(f) = self.f.take() {
            f();
        }
    }
}

impl Drop for Scoped {
    fn drop(&mut self) {
        drop(self.f.take());
        self.alive.set(false);
    }
}

impl std::fmt::Debug for Scoped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scoped")
            .field("called", &self.f.is_none())
            .finish()
    }
}

/// Runs `host` with `f` made `'static`, and aborts the process if the
/// [`Scoped`] given to `host` is still alive when `host` returns or unwinds.
pub(crate) fn scoped<'a, R>(f: Box<dyn FnOnce() + 'a>, host: impl FnOnce(Scoped) -> R) -> R {
    struct Check(Rc<Cell<bool>>);
    impl Drop for Check {
        fn drop(&mut self) {
            if self.0.get() {
                let message = b"fatal: greenhub::run is returning while its main closure (which borrows from the caller) is still alive; aborting\n";
                // SAFETY: write(2) on stderr with a valid buffer.
                unsafe { libc::write(2, message.as_ptr().cast(), message.len()) };
                std::process::abort();
            }
        }
    }
    let alive = Rc::new(Cell::new(true));
    let check = Check(alive.clone());
    // SAFETY: only the lifetime changes (the two box types have one
    // layout). The closure is reachable only through the `Scoped` built
    // here, which is `!Send`; `check` aborts the process if that `Scoped`
    // (and so the closure and everything it borrows) still exists when this
    // function returns or unwinds, so no use of the closure can outlive
    // `'a`, which outlives this call.
    let f: Box<dyn FnOnce() + 'static> =
        unsafe { std::mem::transmute::<Box<dyn FnOnce() + 'a>, Box<dyn FnOnce() + 'static>>(f) };
    let result = host(Scoped { f: Some(f), alive });
    drop(check);
    result
}

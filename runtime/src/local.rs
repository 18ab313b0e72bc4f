//! Coroutine-local storage: [`local!`](crate::local!) and [`LocalKey`],
//! gevent's `local` (and std's `thread_local!`, one level down).
//!
//! Each coroutine that touches a key gets its own value, made by the key's
//! initialiser on first use and dropped when that coroutine ends. The
//! values live in the coroutine's task entry (`sched/task.rs`), keyed by
//! the address of the `static` key; a lookup clones the value's `Rc` out of
//! the entry and calls the closure with no borrow of the hub held, so the
//! closure may park, spawn, or use other keys.

use std::any::Any;
use std::fmt;
use std::rc::Rc;

/// Declares coroutine-local values: `static`s of type [`LocalKey`], each
/// coroutine seeing its own.
///
/// ```
/// use std::cell::Cell;
/// greenhub::local! {
///     /// The request this coroutine serves, for its log lines.
///     static REQUEST: Cell<u32> = Cell::new(0);
/// }
/// greenhub::run(|| {
///     let workers: Vec<_> = (1..=3)
///         .map(|n| greenhub::spawn(move || {
///             REQUEST.with(|r| r.set(n));
///             greenhub::yield_now(); // the others set theirs meanwhile
///             REQUEST.with(Cell::get)
///         }))
///         .collect();
///     let seen: Vec<u32> = workers.into_iter().map(|w| w.join().unwrap()).collect();
///     assert_eq!(seen, [1, 2, 3]);
///     assert_eq!(REQUEST.with(Cell::get), 0, "main has its own");
/// });
/// ```
#[macro_export]
macro_rules! local {
    () => {};
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr; $($rest:tt)*) => {
        $(#[$attr])*
        $vis static $name: $crate::LocalKey<$t> = $crate::LocalKey::new({
            fn init() -> $t {
                $init
            }
            init
        });
        $crate::local!($($rest)*);
    };
}

/// A key to a coroutine-local value; declare one with
/// [`local!`](crate::local!).
pub struct LocalKey<T: 'static> {
    init: fn() -> T,
}

impl<T: 'static> LocalKey<T> {
    /// A key whose values start as `init()`; used by [`local!`](crate::local!).
    #[doc(hidden)]
    pub const fn new(init: fn() -> T) -> LocalKey<T> {
        LocalKey { init }
    }

    /// Runs `f` with the running coroutine's value, creating it first if
    /// this coroutine has not used the key yet.
    ///
    /// # Panics
    ///
    /// Panics outside a coroutine; use [`try_with`](Self::try_with) there.
    pub fn with<R>(&'static self, f: impl FnOnce(&T) -> R) -> R {
        self.try_with(f)
            .expect("a coroutine-local value is used outside a coroutine")
    }

    /// Like [`with`](Self::with), but `None` outside a coroutine.
    pub fn try_with<R>(&'static self, f: impl FnOnce(&T) -> R) -> Option<R> {
        let key = self as *const LocalKey<T> as usize;
        let found = crate::context::with(|hub| {
            hub.sched.with_current(|task| {
                task.extras
                    .as_ref()?
                    .locals
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, value)| value.clone())
            })
        })
        .flatten()?;
        let value: Rc<dyn Any> = match found {
            Some(value) => value,
            None => {
                // The initialiser is user code: it runs with nothing borrowed.
                let value: Rc<dyn Any> = Rc::new((self.init)());
                crate::context::with(|hub| {
                    hub.sched
                        .with_current(|task| task.extras_mut().locals.push((key, value.clone())))
                });
                value
            }
        };
        let value = value
            .downcast::<T>()
            .unwrap_or_else(|_| unreachable!("a key's address names values of its own type"));
        Some(f(&value))
    }
}

impl<T: 'static> fmt::Debug for LocalKey<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalKey").finish_non_exhaustive()
    }
}

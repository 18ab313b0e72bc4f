//! Panic reports that name the coroutine, with or without a logger.
//!
//! The standard library's hook prints `thread 'main' panicked at ...`, which
//! says nothing about which of 10,000 coroutines on that thread it was. The
//! hub installs (once per process) a hook that, for a panic inside a
//! coroutine, prints `coroutine 'NAME' panicked at ...` to stderr (with a
//! backtrace when `Backtrace::capture` takes one: `RUST_LIB_BACKTRACE`,
//! else `RUST_BACKTRACE`) and then calls the previous
//! hook too if the program had installed one (std's default hook is not
//! called: it would repeat the report as `thread 'main' panicked`); panics
//! elsewhere go to the previous hook unchanged. A kill unwinds with
//! `resume_unwind`, which skips every hook: it is not an error.

use std::panic::{self, PanicHookInfo};
use std::sync::Once;

/// Installs the hook; later calls do nothing.
pub(crate) fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        // `take_hook` leaves the default hook in place: taking it again
        // gives the default, to tell it from a hook the program installed.
        let default = panic::take_hook();
        let chained = !std::ptr::eq(&*previous, &*default);
        panic::set_hook(Box::new(move |info| match coroutine_name() {
            Some(name) => {
                report_coroutine_panic(&name, info);
                // A hook the program installed (a crash reporter, a test
                // harness) sees every panic; std's own would only repeat
                // the report as `thread 'main' panicked`.
                if chained {
                    previous(info);
                }
            }
            None => previous(info),
        }));
    });
}

/// The running coroutine's name, if a coroutine of this thread's hub runs.
fn coroutine_name() -> Option<String> {
    crate::context::with(|hub| {
        let key = hub.sched.current()?;
        // try_borrow: a panic raised while the task table is borrowed must
        // still be reported, if without the name.
        let name = match hub.sched.tasks.try_borrow() {
            Ok(tasks) => tasks.get(key)?.display_name(),
            Err(_) => "(name unavailable)".to_owned(),
        };
        Some(name)
    })
    .flatten()
}

fn report_coroutine_panic(name: &str, info: &PanicHookInfo<'_>) {
    let location = info.location().map_or_else(String::new, |l| {
        format!(" at {}:{}:{}", l.file(), l.line(), l.column())
    });
    let backtrace = std::backtrace::Backtrace::capture();
    let backtrace = match backtrace.status() {
        std::backtrace::BacktraceStatus::Captured => format!("\nstack backtrace:\n{backtrace}"),
        _ => "\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace"
            .to_owned(),
    };
    eprintln!(
        "coroutine '{name}' panicked{location}:\n{}{backtrace}",
        crate::hub::panic_message(info.payload())
    );
}

/// Reports a panic that another thread caught and the running coroutine now
/// resumes (`resume_unwind` skips the hook): `what` says where it came from.
/// The other thread's hook reported it there, but not in which coroutine it
/// goes on. Like std's hook for a panic where it is raised, this reports it
/// whether or not the coroutine catches it.
pub(crate) fn report_resumed(what: &str, payload: &(dyn std::any::Any + Send)) {
    if let Some(name) = coroutine_name() {
        eprintln!(
            "coroutine '{name}' resumes the panic of {what}: {}",
            crate::hub::panic_message(payload)
        );
    }
}

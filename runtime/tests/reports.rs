//! What a person sees when something goes wrong, with or without a logger:
//! a coroutine's panic names the coroutine, the blocking monitor warns on
//! stderr when no logger takes it, and a log formatter that calls
//! `current_name()` never makes the hub panic. The no-logger cases run in a
//! child process, whose stderr the test reads.

use std::process::Command;
use std::time::Duration;

/// When set, this test binary runs as a child doing the named scenario.
const CHILD: &str = "GREENHUB_REPORTS_CHILD";

fn child_stderr(test: &str, scenario: &str) -> String {
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .env(CHILD, scenario)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Regression: a panic in a coroutine printed `thread 'main' panicked`.
#[test]
fn a_panic_in_a_coroutine_names_the_coroutine_without_a_logger() {
    if std::env::var(CHILD).as_deref() == Ok("panic") {
        greenhub::run(|| {
            let worker = greenhub::Builder::new()
                .name("worker-7")
                .spawn(|| panic!("the disk is full"))
                .unwrap();
            assert!(worker.join().is_err());
        });
        return;
    }
    let stderr = child_stderr(
        "a_panic_in_a_coroutine_names_the_coroutine_without_a_logger",
        "panic",
    );
    assert!(
        stderr.contains("coroutine 'worker-7' panicked at") && stderr.contains("the disk is full"),
        "{stderr}"
    );
}

/// Regression: the blocking monitor was silent without a `log` backend.
#[test]
fn the_blocking_monitor_warns_on_stderr_without_a_logger() {
    if std::env::var(CHILD).as_deref() == Ok("monitor") {
        greenhub::HubBuilder::new()
            .max_blocking_time(Duration::from_millis(20))
            .run(|| {
                greenhub::Builder::new()
                    .name("hog")
                    .spawn(|| std::thread::sleep(Duration::from_millis(300)))
                    .unwrap()
                    .join()
                    .unwrap();
            });
        return;
    }
    let stderr = child_stderr(
        "the_blocking_monitor_warns_on_stderr_without_a_logger",
        "monitor",
    );
    assert!(
        stderr.contains("coroutine 'hog'") && stderr.contains("without parking"),
        "{stderr}"
    );
}

/// A logger whose format asks for the running coroutine's name, as the
/// `current_name()` docs recommend.
struct NamingLogger;

impl log::Log for NamingLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let _line = format!("({}) {}", greenhub::current_name(), record.args());
    }
    fn flush(&self) {}
}

/// Regression: with such a logger, the hub's own log call re-borrowed its
/// state and `run` panicked with "already mutably borrowed".
#[test]
fn a_logger_that_asks_for_the_coroutine_name_never_breaks_the_hub() {
    let _ = log::set_logger(&NamingLogger);
    log::set_max_level(log::LevelFilter::Trace);
    let outcome = greenhub::run(|| {
        struct ParksOnDrop;
        impl Drop for ParksOnDrop {
            fn drop(&mut self) {
                log::warn!("dropping");
                greenhub::sleep(Duration::from_millis(1));
            }
        }
        let guard = ParksOnDrop;
        let victim = greenhub::spawn(move || {
            let _guard = guard;
        });
        victim.kill();
        let panicker = greenhub::spawn(|| panic!("logged"));
        (victim.join(), panicker.join().is_err())
    });
    assert_eq!(outcome, (Err(greenhub::JoinError::Killed), true));
}

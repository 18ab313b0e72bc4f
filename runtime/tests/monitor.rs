//! The blocking monitor: a coroutine that runs too long without parking is
//! named in a warning.

mod util;

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use util::SLACK;

/// Captures log lines so the test can read the monitor's warning.
struct Capture;

static LINES: OnceLock<Mutex<Vec<String>>> = OnceLock::new();

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        LINES
            .get_or_init(Default::default)
            .lock()
            .unwrap()
            .push(format!("{} {}", record.level(), record.args()));
    }
    fn flush(&self) {}
}

/// Whether a warning naming `name` was logged.
fn reported(name: &str) -> bool {
    let lines = LINES.get_or_init(Default::default).lock().unwrap();
    lines.iter().any(|l| l.contains(&format!("'{name}'")))
}

#[test]
fn a_coroutine_spinning_without_parking_is_named_in_a_warning() {
    log::set_boxed_logger(Box::new(Capture)).unwrap();
    log::set_max_level(log::LevelFilter::Warn);
    // The threshold is SLACK: on a busy machine the hub's thread may lose the
    // CPU for a while in the middle of main's short runs, and that must not
    // count as main running too long.
    greenhub::HubBuilder::new()
        .max_blocking_time(SLACK)
        .run(|| {
            let spinner = greenhub::Builder::new()
                .name("spinner")
                .spawn(|| {
                    // Spin until the monitor has spoken (a condition, not a
                    // fixed time), for at most a minute.
                    let start = Instant::now();
                    while !reported("spinner") && start.elapsed() < Duration::from_secs(60) {
                        std::hint::spin_loop();
                    }
                })
                .unwrap();
            spinner.join().unwrap();
            // A well-behaved coroutine that parks often is never reported.
            for _ in 0..20 {
                greenhub::sleep(Duration::from_millis(5));
            }
        });
    let lines = LINES.get_or_init(Default::default).lock().unwrap();
    let reports: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("without parking"))
        .collect();
    assert_eq!(reports.len(), 1, "{lines:?}");
    assert!(
        reports[0].starts_with("WARN coroutine 'spinner'"),
        "{}",
        reports[0]
    );
}

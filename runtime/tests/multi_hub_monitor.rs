//! The blocking monitor on a `Runtime`: each hub has its own, so a coroutine
//! spinning on hub 1 is named while hub 0 goes on running.

mod util;

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use util::SLACK;

/// Captures log lines so the test can read the monitors' warnings.
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

fn reported(name: &str) -> bool {
    let lines = LINES.get_or_init(Default::default).lock().unwrap();
    lines.iter().any(|l| l.contains(&format!("'{name}'")))
}

/// Spins until the monitor has named this coroutine (a condition, not a
/// fixed time), for at most a minute; returns whether it was named.
fn spin_until_reported(name: &'static str) -> bool {
    greenhub::Builder::new()
        .name(name)
        .spawn(move || {
            let start = Instant::now();
            while !reported(name) && start.elapsed() < Duration::from_secs(60) {
                std::hint::spin_loop();
            }
            reported(name)
        })
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn each_hub_has_its_own_blocking_monitor() {
    log::set_boxed_logger(Box::new(Capture)).unwrap();
    log::set_max_level(log::LevelFilter::Warn);
    let runtime = greenhub::Runtime::builder()
        .hubs(2)
        .hub(greenhub::HubBuilder::new().max_blocking_time(SLACK))
        .build()
        .unwrap();
    let rt = runtime.handle();
    runtime.block_on(move || {
        let spinning = rt
            .spawn_on(1, || spin_until_reported("spinner-on-1"))
            .unwrap();
        // Hub 0 is not stalled by hub 1's spinner: it keeps sleeping and
        // waking until the spinner is done.
        let mut ticks = 0;
        while !spinning.is_finished() {
            greenhub::sleep(Duration::from_millis(5));
            ticks += 1;
        }
        assert!(
            spinning.join().unwrap(),
            "hub 1's monitor named its spinner"
        );
        assert!(ticks > 0, "hub 0 ran meanwhile");
        assert!(
            spin_until_reported("spinner-on-0"),
            "hub 0's monitor named its own"
        );
    });
}

//! Seeing the experiment: `--trace FILE.json` (Chrome trace-event JSON, for
//! Perfetto), `--timeline FILE.svg` (greenhub's own SVG timeline) and
//! `--console` (the live view on stderr). Coroutines mode only. See
//! `docs/tracing.md`.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

use greenhub::trace::{TimelineOptions, Trace};

/// Events the demo's trace ring holds: a run records 7 to 10 per client
/// (3,300 to 4,600 for the default 500, about 90,000 for 10,000), so this
/// holds the whole of a 10,000-client run with room to spare; 72 bytes an
/// event, 18 MiB once full. Past this the oldest are dropped (and the demo
/// says so).
const TRACE_CAPACITY: usize = 1 << 18;

/// What the command line asked to see.
#[derive(Clone, Debug, Default)]
pub(crate) struct Observe {
    pub(crate) trace: Option<PathBuf>,
    pub(crate) timeline: Option<PathBuf>,
    pub(crate) console: bool,
}

impl Observe {
    fn recording(&self) -> bool {
        self.trace.is_some() || self.timeline.is_some()
    }

    /// Whether any of `--trace`, `--timeline` or `--console` was given.
    pub(crate) fn watches(&self) -> bool {
        self.recording() || self.console
    }

    /// Fails early, before the run, if an output file cannot be created.
    pub(crate) fn check(&self) -> Result<(), String> {
        for path in self.trace.iter().chain(&self.timeline) {
            File::create(path).map_err(|err| format!("cannot create {}: {err}", path.display()))?;
        }
        Ok(())
    }

    /// The hub, recording from its first event when a file was asked for.
    pub(crate) fn hub(&self) -> greenhub::HubBuilder {
        let hub = greenhub::HubBuilder::new();
        if self.recording() {
            hub.trace(TRACE_CAPACITY)
        } else {
            hub
        }
    }

    /// Starts the console, when asked for (inside the hub).
    pub(crate) fn console(&self) -> Option<greenhub::console::Console> {
        if !self.console {
            return None;
        }
        match greenhub::console::start(greenhub::console::Options::default()) {
            Ok(console) => Some(console),
            Err(err) => {
                log::error!("cannot start the console: {err}");
                None
            }
        }
    }

    /// Stops recording (inside the hub); `None` when nothing was recorded.
    pub(crate) fn stop(&self) -> Option<Trace> {
        self.recording().then(greenhub::trace::stop)
    }

    /// Writes the files asked for.
    pub(crate) fn write(&self, trace: Option<&Trace>, clients: usize) {
        let Some(trace) = trace else { return };
        if let Some(path) = &self.trace {
            save(path, &trace.to_chrome_json());
        }
        if let Some(path) = &self.timeline {
            let options = TimelineOptions {
                title: Some(format!(
                    "demo: {clients} coroutines in BRPOP, cron every 0.2 s ({} events)",
                    trace.events.len()
                )),
                ..TimelineOptions::default()
            };
            save(path, &trace.to_svg(&options));
        }
        if trace.dropped > 0 {
            log::warn!(
                "the trace ring was full: the oldest {} events were dropped",
                trace.dropped
            );
        }
    }
}

fn save(path: &PathBuf, text: &str) {
    let written = File::create(path).and_then(|mut file| file.write_all(text.as_bytes()));
    match written {
        Ok(()) => log::info!("wrote {}", path.display()),
        Err(err) => log::error!("cannot write {}: {err}", path.display()),
    }
}

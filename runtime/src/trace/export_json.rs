//! A [`Trace`] in the Chrome trace-event JSON format (the "JSON Array
//! Format" with `B`/`E` duration events, `i` instants, `s`/`f` flows and `M`
//! metadata), which Perfetto and `chrome://tracing` open.
//!
//! Track 0 is the hub (its polls); coroutine `id` is track `id + 1`. Each
//! coroutine's track is a sequence of spans that never overlap: `ready`
//! (spawned, woken or yielded, waiting for the hub), `running`, and a parked
//! span named by what it waits on (`socket read fd 7`, `sleep`, `channel
//! recv`). A coroutine alive when the recording started
//! ([`Trace::at_start`]) opens its track at 0 in the state it was in then.
//! Every `B` gets its `E`: a span still open when the trace ends is closed
//! at the trace's end. Timestamps are microseconds and never
//! decrease in the output's order.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use super::{AtStart, EventKind, Trace};

/// The one process every track belongs to.
const PID: u32 = 1;

/// Writes the whole trace as one JSON object.
pub(super) fn render(trace: &Trace) -> String {
    let mut out = Json::default();
    out.text.push_str("{\"traceEvents\":[\n");
    out.meta(0, "process_name", "greenhub hub", None);
    out.meta(0, "thread_name", "hub (polls)", Some(0));
    for id in trace.coroutines() {
        let name = format!("{} #{id}", trace.name_of(id));
        out.meta(track(id), "thread_name", &name, Some(id + 1));
    }
    // The span open on each coroutine's track: its name, category and start.
    let mut open: BTreeMap<u64, &'static str> = BTreeMap::new();
    let mut flows = 0u64;
    let zero = micros(Duration::ZERO);
    for (&id, state) in &trace.at_start {
        let (name, cat, args) = match state {
            AtStart::Running => ("running".to_owned(), "running", None),
            AtStart::Ready => (
                "ready".to_owned(),
                "ready",
                Some("{\"after\":\"start\"}".to_owned()),
            ),
            AtStart::Parked { on, deadline } => (
                on.to_string(),
                "parked",
                Some(format!("{{\"deadline\":{deadline}}}")),
            ),
        };
        open.insert(id, cat);
        out.span(track(id), 'B', &name, cat, &zero, args.as_deref());
    }
    for event in &trace.events {
        let ts = micros(event.at);
        let Some(id) = event.coroutine else {
            if let EventKind::Poll {
                timeout,
                waited,
                events,
            } = &event.kind
            {
                let timeout = timeout.map_or_else(|| "null".to_owned(), |t| ms(t).to_string());
                let args = format!("{{\"events\":{events},\"timeout_ms\":{timeout}}}");
                out.span(0, 'B', "poll", "hub", &ts, Some(&args));
                out.span(0, 'E', "poll", "hub", &micros(event.at + *waited), None);
            }
            continue;
        };
        let tid = track(id);
        let begin = |out: &mut Json,
                     open: &mut BTreeMap<u64, &'static str>,
                     name: &str,
                     cat: &'static str,
                     args: Option<&str>| {
            if let Some(cat) = open.insert(id, cat) {
                out.span(tid, 'E', "", cat, &ts, None);
            }
            out.span(tid, 'B', name, cat, &ts, args);
        };
        match &event.kind {
            EventKind::Spawn { by } => {
                if let Some(by) = by {
                    flows += 1;
                    out.flow('s', track(*by), "spawn", flows, &ts);
                }
                begin(
                    &mut out,
                    &mut open,
                    "ready",
                    "ready",
                    Some("{\"after\":\"spawn\"}"),
                );
                if by.is_some() {
                    out.flow('f', tid, "spawn", flows, &ts);
                }
            }
            EventKind::Resume => begin(&mut out, &mut open, "running", "running", None),
            EventKind::Park { on, deadline } => {
                let args = format!("{{\"deadline\":{deadline}}}");
                begin(&mut out, &mut open, &on.to_string(), "parked", Some(&args));
            }
            EventKind::Yield => begin(
                &mut out,
                &mut open,
                "ready",
                "ready",
                Some("{\"after\":\"yield\"}"),
            ),
            EventKind::Wake { by, waker } => {
                if let Some(waker) = waker {
                    flows += 1;
                    out.flow('s', track(*waker), "wake", flows, &ts);
                }
                let args = format!("{{\"woken_by\":\"{by:?}\"}}");
                begin(&mut out, &mut open, "ready", "ready", Some(&args));
                if waker.is_some() {
                    out.flow('f', tid, "wake", flows, &ts);
                }
            }
            EventKind::Kill { by } => {
                let args = by.map(|by| format!("{{\"by\":{by}}}"));
                out.instant(tid, "kill", &ts, args.as_deref());
            }
            EventKind::Finish => {
                if let Some(cat) = open.remove(&id) {
                    out.span(tid, 'E', "", cat, &ts, None);
                }
                out.instant(tid, "finish", &ts, None);
            }
            EventKind::Panic { message } => {
                let args = format!("{{\"message\":{}}}", quoted(message));
                out.instant(tid, "panic", &ts, Some(&args));
            }
            EventKind::Poll { .. } => {}
        }
    }
    let end = micros(
        trace
            .duration
            .max(trace.events.last().map_or(Duration::ZERO, |e| e.at)),
    );
    for (id, cat) in open {
        out.span(track(id), 'E', "", cat, &end, None);
    }
    // The separator after the last event: drop it.
    if out.text.ends_with(",\n") {
        out.text.truncate(out.text.len() - 2);
        out.text.push('\n');
    }
    let _ = writeln!(
        out.text,
        "],\"displayTimeUnit\":\"ms\",\"otherData\":{{\"dropped\":{}}}}}",
        trace.dropped
    );
    out.text
}

/// The track (`tid`) of coroutine `id`; 0 is the hub's.
fn track(id: u64) -> u64 {
    id + 1
}

fn micros(at: Duration) -> String {
    format!("{}.{:03}", at.as_micros(), at.subsec_nanos() % 1000)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `text` as a JSON string literal.
pub(super) fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The output being written, one event per line.
#[derive(Default)]
struct Json {
    text: String,
}

impl Json {
    fn meta(&mut self, tid: u64, what: &str, name: &str, sort: Option<u64>) {
        let _ = writeln!(
            self.text,
            "{{\"ph\":\"M\",\"pid\":{PID},\"tid\":{tid},\"ts\":0,\"name\":\"{what}\",\"args\":{{\"name\":{}}}}},",
            quoted(name)
        );
        if let Some(sort) = sort {
            let _ = writeln!(
                self.text,
                "{{\"ph\":\"M\",\"pid\":{PID},\"tid\":{tid},\"ts\":0,\"name\":\"thread_sort_index\",\"args\":{{\"sort_index\":{sort}}}}},"
            );
        }
    }

    fn span(&mut self, tid: u64, ph: char, name: &str, cat: &str, ts: &str, args: Option<&str>) {
        let _ = write!(
            self.text,
            "{{\"ph\":\"{ph}\",\"pid\":{PID},\"tid\":{tid},\"ts\":{ts},\"cat\":\"{cat}\""
        );
        if ph == 'B' {
            let _ = write!(self.text, ",\"name\":{}", quoted(name));
        }
        if let Some(args) = args {
            let _ = write!(self.text, ",\"args\":{args}");
        }
        self.text.push_str("},\n");
    }

    fn instant(&mut self, tid: u64, name: &str, ts: &str, args: Option<&str>) {
        let _ = write!(
            self.text,
            "{{\"ph\":\"i\",\"s\":\"t\",\"pid\":{PID},\"tid\":{tid},\"ts\":{ts},\"name\":\"{name}\""
        );
        if let Some(args) = args {
            let _ = write!(self.text, ",\"args\":{args}");
        }
        self.text.push_str("},\n");
    }

    fn flow(&mut self, ph: char, tid: u64, name: &str, id: u64, ts: &str) {
        let bind = if ph == 'f' { ",\"bp\":\"e\"" } else { "" };
        let _ = writeln!(
            self.text,
            "{{\"ph\":\"{ph}\",\"pid\":{PID},\"tid\":{tid},\"ts\":{ts},\"cat\":\"{name}\",\"name\":\"{name}\",\"id\":{id}{bind}}},"
        );
    }
}

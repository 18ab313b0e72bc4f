//! A [`Trace`] drawn as a self-contained SVG timeline (no scripts, no
//! external fonts or styles), for docs and for eyes.
//!
//! Time runs left to right. Up to `bundle_above` coroutines, each gets a row
//! (`<g class="row" data-coroutine="ID">`) coloured by its state over time:
//! running, ready (queued for the hub), or parked, coloured by what it waits
//! on. Past that, rows would be a pixel tall, so they are bundled: a band per
//! state whose height is how many coroutines are in it (time-weighted per
//! pixel column), and a strip above showing the share of time a coroutine
//! ran. A coroutine alive when the recording started starts at 0 in its
//! state then. The resumes of the coroutine named `mark` (the demo's `cron`) are
//! drawn as ticks across the chart in both layouts.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use super::{AtStart, EventKind, Trace, Wait};

/// How [`Trace::to_svg`] draws.
#[derive(Clone, Debug)]
pub struct TimelineOptions {
    /// The width of the whole picture, in pixels (at least 400).
    pub width: u32,
    /// Coroutines drawn as rows up to this many; more are bundled into bands.
    pub bundle_above: usize,
    /// The name of the coroutine whose resumes are marked as ticks.
    pub mark: Option<String>,
    /// A title above the chart.
    pub title: Option<String>,
}

impl Default for TimelineOptions {
    /// 1000 pixels wide, rows up to 60 coroutines, `cron` marked, no title.
    fn default() -> Self {
        TimelineOptions {
            width: 1000,
            bundle_above: 60,
            mark: Some("cron".to_owned()),
            title: None,
        }
    }
}

/// The states a timeline colours, in the order bands stack (bottom up).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    Running,
    Ready,
    Socket,
    Timer,
    Queue,
    Thread,
}

const CLASSES: [Class; 6] = [
    Class::Running,
    Class::Ready,
    Class::Socket,
    Class::Timer,
    Class::Queue,
    Class::Thread,
];

impl Class {
    fn of_wait(on: &Wait) -> Class {
        match on {
            Wait::Socket { .. } => Class::Socket,
            Wait::Timer => Class::Timer,
            Wait::Queue(_) => Class::Queue,
            Wait::Helper | Wait::Remote => Class::Thread,
        }
    }

    fn colour(self) -> &'static str {
        match self {
            Class::Running => "#2e7d32",
            Class::Ready => "#f9a825",
            Class::Socket => "#64b5f6",
            Class::Timer => "#b0bec5",
            Class::Queue => "#ba68c8",
            Class::Thread => "#a1887f",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Class::Running => "running",
            Class::Ready => "ready",
            Class::Socket => "parked: socket",
            Class::Timer => "parked: sleep",
            Class::Queue => "parked: queue",
            Class::Thread => "parked: helper/remote",
        }
    }
}

/// One stretch of one coroutine in one state.
struct Span {
    from: Duration,
    to: Duration,
    class: Class,
}

const LABELS: f64 = 170.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 46.0;
const ROW: f64 = 14.0;
const BAND_HEIGHT: f64 = 260.0;
const STRIP: f64 = 30.0;

/// Draws `trace`.
pub(super) fn render(trace: &Trace, options: &TimelineOptions) -> String {
    let width = f64::from(options.width.max(400));
    let end = trace
        .duration
        .max(trace.events.last().map_or(Duration::ZERO, |e| e.at))
        .max(Duration::from_micros(1));
    let spans = spans(trace, end);
    let plot = width - LABELS - RIGHT;
    let x = |at: Duration| LABELS + at.as_secs_f64() / end.as_secs_f64() * plot;
    let bundled = spans.len() > options.bundle_above;
    let body_height = if bundled {
        STRIP + 10.0 + BAND_HEIGHT
    } else {
        ROW * spans.len() as f64
    };
    let height = TOP + body_height + 60.0;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"11\">"
    );
    let _ = writeln!(
        svg,
        "<rect width=\"{width}\" height=\"{height}\" fill=\"#ffffff\"/>"
    );
    let title = options.title.clone().unwrap_or_else(|| {
        format!(
            "{} coroutines over {:.3} s ({} events{})",
            spans.len(),
            end.as_secs_f64(),
            trace.events.len(),
            if trace.dropped > 0 {
                format!(", {} oldest dropped", trace.dropped)
            } else {
                String::new()
            }
        )
    });
    let _ = writeln!(
        svg,
        "<text x=\"10\" y=\"18\" font-size=\"14\" font-weight=\"bold\">{}</text>",
        escape(&title)
    );
    legend(&mut svg, 10.0, 36.0);

    if bundled {
        bands(&mut svg, &spans, end, plot, TOP);
    } else {
        for (row, (id, spans)) in spans.iter().enumerate() {
            let y = TOP + ROW * row as f64;
            let _ = writeln!(svg, "<g class=\"row\" data-coroutine=\"{id}\">");
            let name = format!("{} #{id}", trace.name_of(*id));
            let _ = writeln!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                LABELS - 6.0,
                y + ROW - 3.0,
                escape(&name)
            );
            for span in spans {
                let (x0, x1) = (x(span.from), x(span.to));
                let _ = writeln!(
                    svg,
                    "<rect x=\"{x0:.2}\" y=\"{:.1}\" width=\"{:.2}\" height=\"{:.1}\" fill=\"{}\"/>",
                    y + 1.0,
                    (x1 - x0).max(0.6),
                    ROW - 2.0,
                    span.class.colour()
                );
            }
            svg.push_str("</g>\n");
        }
    }
    let bottom = TOP + body_height;
    marks(&mut svg, trace, options, &x, TOP, bottom, width - RIGHT);
    axis(&mut svg, end, &x, bottom);
    svg.push_str("</svg>\n");
    svg
}

/// Each coroutine's spans, by id, from its first event (or from 0 in its
/// state then, if it was alive when the recording started) to its last (or
/// to `end` while it lives).
fn spans(trace: &Trace, end: Duration) -> BTreeMap<u64, Vec<Span>> {
    let mut out: BTreeMap<u64, Vec<Span>> = BTreeMap::new();
    let mut open: BTreeMap<u64, (Duration, Class)> = BTreeMap::new();
    for (&id, state) in &trace.at_start {
        let class = match state {
            AtStart::Running => Class::Running,
            AtStart::Ready => Class::Ready,
            AtStart::Parked { on, .. } => Class::of_wait(on),
        };
        out.entry(id).or_default();
        open.insert(id, (Duration::ZERO, class));
    }
    for event in &trace.events {
        let Some(id) = event.coroutine else { continue };
        let next = match &event.kind {
            EventKind::Spawn { .. } | EventKind::Yield | EventKind::Wake { .. } => {
                Some(Class::Ready)
            }
            EventKind::Resume => Some(Class::Running),
            EventKind::Park { on, .. } => Some(Class::of_wait(on)),
            EventKind::Finish => None,
            EventKind::Kill { .. } | EventKind::Panic { .. } | EventKind::Poll { .. } => {
                out.entry(id).or_default();
                continue;
            }
        };
        let spans = out.entry(id).or_default();
        if let Some((from, class)) = open.remove(&id) {
            spans.push(Span {
                from,
                to: event.at,
                class,
            });
        }
        if let Some(class) = next {
            open.insert(id, (event.at, class));
        }
    }
    for (id, (from, class)) in open {
        out.entry(id).or_default().push(Span {
            from,
            to: end,
            class,
        });
    }
    out
}

/// The bundled layout: a strip of the share of time spent running, and a
/// stacked band per state, each pixel column the time-weighted count.
fn bands(svg: &mut String, spans: &BTreeMap<u64, Vec<Span>>, end: Duration, plot: f64, top: f64) {
    let columns = plot.round().max(1.0) as usize;
    let column = end.as_secs_f64() / columns as f64;
    let mut sums = vec![[0.0f64; CLASSES.len()]; columns];
    for span in spans.values().flatten() {
        let (from, to) = (span.from.as_secs_f64(), span.to.as_secs_f64());
        let first = ((from / column) as usize).min(columns - 1);
        let last = ((to / column) as usize).min(columns - 1);
        for (c, sum) in sums.iter_mut().enumerate().take(last + 1).skip(first) {
            let (c0, c1) = (c as f64 * column, (c + 1) as f64 * column);
            let overlap = to.min(c1) - from.max(c0);
            if overlap > 0.0 {
                sum[span.class as usize] += overlap / column;
            }
        }
    }
    // The running share: at most one coroutine runs at a time, so this is
    // the share of the column's time the hub spent in coroutines.
    let strip_bottom = top + STRIP;
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">time running</text>",
        LABELS - 6.0,
        strip_bottom - 10.0
    );
    let _ = writeln!(
        svg,
        "<rect x=\"{LABELS}\" y=\"{top}\" width=\"{plot:.1}\" height=\"{STRIP}\" fill=\"#f4f4f4\"/>"
    );
    let mut path = format!("M{LABELS:.1},{strip_bottom:.1}");
    for (c, sum) in sums.iter().enumerate() {
        let y = strip_bottom - sum[Class::Running as usize].min(1.0) * STRIP;
        let _ = write!(
            path,
            " L{:.1},{y:.1} L{:.1},{y:.1}",
            LABELS + c as f64,
            LABELS + c as f64 + 1.0
        );
    }
    let _ = write!(path, " L{:.1},{strip_bottom:.1} Z", LABELS + columns as f64);
    let _ = writeln!(
        svg,
        "<path class=\"band\" d=\"{path}\" fill=\"{}\"/>",
        Class::Running.colour()
    );

    let band_top = strip_bottom + 10.0;
    let band_bottom = band_top + BAND_HEIGHT;
    let peak = sums
        .iter()
        .map(|sum| sum.iter().sum::<f64>())
        .fold(1.0f64, f64::max);
    // Sums of float overlaps land a hair above the whole count they are.
    let peak = (peak - 1e-6).ceil();
    let scale = BAND_HEIGHT / peak;
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{peak} coroutines</text>",
        LABELS - 6.0,
        band_top + 10.0
    );
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{band_bottom:.1}\" text-anchor=\"end\">0</text>",
        LABELS - 6.0
    );
    let mut below = vec![0.0f64; columns];
    for class in CLASSES {
        if sums.iter().all(|sum| sum[class as usize] == 0.0) {
            continue;
        }
        let mut upper = Vec::with_capacity(columns);
        for (c, sum) in sums.iter().enumerate() {
            upper.push(below[c] + sum[class as usize]);
        }
        let mut path = String::new();
        for (c, value) in upper.iter().enumerate() {
            let y = band_bottom - value * scale;
            let verb = if c == 0 { 'M' } else { 'L' };
            let _ = write!(
                path,
                "{verb}{:.1},{y:.1} L{:.1},{y:.1} ",
                LABELS + c as f64,
                LABELS + c as f64 + 1.0
            );
        }
        for c in (0..columns).rev() {
            let y = band_bottom - below[c] * scale;
            let _ = write!(
                path,
                "L{:.1},{y:.1} L{:.1},{y:.1} ",
                LABELS + c as f64 + 1.0,
                LABELS + c as f64
            );
        }
        path.push('Z');
        let _ = writeln!(
            svg,
            "<path class=\"band\" data-state=\"{}\" d=\"{path}\" fill=\"{}\"/>",
            class.label(),
            class.colour()
        );
        below = upper;
    }
}

/// Ticks at every resume of the coroutines named `options.mark`.
fn marks(
    svg: &mut String,
    trace: &Trace,
    options: &TimelineOptions,
    x: &dyn Fn(Duration) -> f64,
    top: f64,
    bottom: f64,
    right: f64,
) {
    let Some(mark) = &options.mark else { return };
    let marked: Vec<u64> = trace
        .names
        .iter()
        .filter(|(_, name)| *name == mark)
        .map(|(id, _)| *id)
        .collect();
    let mut ticks = 0;
    for event in &trace.events {
        if event.kind == EventKind::Resume && event.coroutine.is_some_and(|id| marked.contains(&id))
        {
            let at = x(event.at);
            let _ = writeln!(
                svg,
                "<line class=\"mark\" x1=\"{at:.2}\" y1=\"{:.1}\" x2=\"{at:.2}\" y2=\"{bottom:.1}\" \
                 stroke=\"#d32f2f\" stroke-width=\"1\" stroke-dasharray=\"3,2\"/>",
                top - 4.0
            );
            ticks += 1;
        }
    }
    if ticks > 0 {
        let _ = writeln!(
            svg,
            "<line x1=\"{right:.1}\" y1=\"27\" x2=\"{right:.1}\" y2=\"37\" stroke=\"#d32f2f\" \
             stroke-dasharray=\"3,2\"/><text x=\"{:.1}\" y=\"36\" fill=\"#d32f2f\" \
             text-anchor=\"end\">{} ({ticks} ticks)</text>",
            right - 4.0,
            escape(&format!("resumes of {mark}"))
        );
    }
}

/// The time axis under the chart, with about ten labelled ticks.
fn axis(svg: &mut String, end: Duration, x: &dyn Fn(Duration) -> f64, y: f64) {
    let total = end.as_secs_f64();
    let rough = total / 10.0;
    let magnitude = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= rough)
        .unwrap_or(magnitude * 10.0);
    let _ = writeln!(
        svg,
        "<line x1=\"{LABELS}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#333\"/>",
        x(end)
    );
    let (scale, unit) = if step >= 1.0 {
        (1.0, "s")
    } else if step >= 0.001 {
        (1e3, "ms")
    } else {
        (1e6, "µs")
    };
    // As many decimals as the step needs in its unit (a trace under 10 µs
    // has steps of 0.1 µs or less), so no two ticks share a label.
    let decimals = (-(step * scale * (1.0 + 1e-9)).log10().floor()).max(0.0) as usize;
    let mut t = 0.0;
    while t <= total + step * 1e-9 {
        let at = x(Duration::from_secs_f64(t));
        let label = format!("{:.decimals$} {unit}", t * scale);
        let _ = writeln!(
            svg,
            "<line x1=\"{at:.1}\" y1=\"{y:.1}\" x2=\"{at:.1}\" y2=\"{:.1}\" stroke=\"#333\"/>\
             <text x=\"{at:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
            y + 4.0,
            y + 16.0
        );
        t += step;
    }
}

fn legend(svg: &mut String, mut x: f64, y: f64) {
    for class in CLASSES {
        let _ = writeln!(
            svg,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{y:.1}\">{}</text>",
            y - 9.0,
            class.colour(),
            x + 14.0,
            class.label()
        );
        x += 18.0 + class.label().len() as f64 * 6.2;
    }
}

/// `text` with XML's five special characters escaped and the control
/// characters XML 1.0 forbids (below U+0020 but tab, LF, CR) replaced by
/// U+FFFD.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 allows no other control character, even escaped.
            c if c < '\u{20}' && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

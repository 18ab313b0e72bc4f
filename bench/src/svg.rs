//! Plain SVG charts for `docs/`: line charts (a series per system over the
//! client count) and horizontal bar charts. No plotting crate: a chart is a
//! few dozen elements.

use std::fmt::Write;

const W: f64 = 640.0;
const H: f64 = 360.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLORS: [&str; 4] = ["#1b7837", "#c2185b", "#1f78b4", "#ff7f00"];

fn header(out: &mut String, title: &str) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" font-size="15" text-anchor="middle">{title}</text>
"#,
        W / 2.0
    );
}

/// Series of `(x, y)` points, one line each, on linear axes from 0.
pub(crate) fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(&str, Vec<(f64, f64)>)],
) -> String {
    let mut out = String::new();
    header(&mut out, title);
    let x_max = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    let y_max = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|p| p.1))
        .fold(0.0, f64::max)
        * 1.1
        + 1e-9;
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let x = |v: f64| LEFT + v / x_max * pw;
    let y = |v: f64| TOP + ph - v / y_max * ph;
    let axis = TOP + ph;
    let _ = writeln!(
        out,
        r#"<line x1="{LEFT}" y1="{axis}" x2="{}" y2="{axis}" stroke="black"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{axis}" stroke="black"/>"#,
        LEFT + pw
    );
    for i in 0..=4 {
        let v = y_max * i as f64 / 4.0;
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            y(v) + 4.0,
            short(v)
        );
        let xv = x_max * i as f64 / 4.0;
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            x(xv),
            TOP + ph + 16.0,
            short(xv)
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">{x_label}</text>"#,
        LEFT + pw / 2.0,
        H - 12.0
    );
    let _ = writeln!(
        out,
        r#"<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">{y_label}</text>"#,
        TOP + ph / 2.0,
        TOP + ph / 2.0
    );
    for (i, (name, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let path: Vec<String> = points
            .iter()
            .map(|(px, py)| format!("{:.1},{:.1}", x(*px), y(*py)))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        for (px, py) in points {
            let _ = writeln!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#,
                x(*px),
                y(*py)
            );
        }
        let ly = TOP + 10.0 + i as f64 * 18.0;
        let _ = writeln!(
            out,
            r#"<rect x="{}" y="{}" width="12" height="12" fill="{color}"/><text x="{}" y="{}">{name}</text>"#,
            W - RIGHT + 14.0,
            ly - 10.0,
            W - RIGHT + 32.0,
            ly
        );
    }
    out.push_str("</svg>\n");
    out
}

/// One horizontal bar per `(label, value)`.
pub(crate) fn bar_chart(title: &str, unit: &str, bars: &[(String, f64)]) -> String {
    let mut out = String::new();
    header(&mut out, title);
    let max = bars.iter().map(|b| b.1).fold(0.0, f64::max) * 1.15 + 1e-9;
    let label_w = 230.0;
    let pw = W - label_w - 30.0;
    let row = (H - TOP - 20.0) / bars.len().max(1) as f64;
    for (i, (label, value)) in bars.iter().enumerate() {
        let y = TOP + i as f64 * row;
        let w = value / max * pw;
        let color = COLORS[i % COLORS.len()];
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="end">{label}</text><rect x="{label_w}" y="{}" width="{w:.1}" height="{}" fill="{color}"/><text x="{}" y="{}">{} {unit}</text>"#,
            label_w - 8.0,
            y + row / 2.0 + 4.0,
            y + row * 0.15,
            row * 0.7,
            label_w + w + 6.0,
            y + row / 2.0 + 4.0,
            short(*value)
        );
    }
    out.push_str("</svg>\n");
    out
}

fn short(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.0}", v)
    } else if v >= 10.0 {
        format!("{:.1}", v)
    } else {
        format!("{:.2}", v)
    }
}

//! A dependency-free SVG plot of the process variable and setpoint over time, with every
//! fault, takeover and switchover marked: what a commissioning engineer looks at first.

use std::fmt::Write as _;

/// One sample of the loop.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Time since the run began, in milliseconds.
    pub t_ms: f64,
    /// The process variable (e.g. tank level).
    pub pv: f64,
    /// The setpoint.
    pub sp: f64,
}

/// What a vertical marker stands for; each kind has its colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkKind {
    /// An injected fault.
    Fault,
    /// A new primary after a failure.
    Takeover,
    /// A planned switchover.
    Switchover,
}

/// A vertical marker at a time, with a short label.
#[derive(Debug, Clone)]
pub struct Mark {
    /// When, in milliseconds since the run began.
    pub t_ms: f64,
    /// Which kind.
    pub kind: MarkKind,
    /// A few words.
    pub label: String,
}

const WIDTH: f64 = 1200.0;
const HEIGHT: f64 = 500.0;
const MARGIN_LEFT: f64 = 60.0;
const MARGIN_RIGHT: f64 = 20.0;
const MARGIN_TOP: f64 = 30.0;
const MARGIN_BOTTOM: f64 = 110.0;

/// Renders the plot. `title` goes on top; `pv_unit` labels the y axis.
pub fn render(title: &str, pv_unit: &str, samples: &[Sample], marks: &[Mark]) -> String {
    let t_max = samples.last().map_or(1.0, |s| s.t_ms).max(1.0);
    let (mut lo, mut hi) = samples.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), s| {
        (lo.min(s.pv).min(s.sp), hi.max(s.pv).max(s.sp))
    });
    if !lo.is_finite() || !hi.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if hi - lo < 1e-9 {
        hi = lo + 1.0;
    }
    let pad = (hi - lo) * 0.05;
    let (lo, hi) = (lo - pad, hi + pad);
    let plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT;
    let plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM;
    let x = |t: f64| MARGIN_LEFT + t / t_max * plot_w;
    let y = |v: f64| MARGIN_TOP + (1.0 - (v - lo) / (hi - lo)) * plot_h;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="18" font-size="14">{}</text>"#,
        MARGIN_LEFT,
        escape(title)
    );
    // Axes and grid.
    let _ = writeln!(
        svg,
        r##"<rect x="{MARGIN_LEFT}" y="{MARGIN_TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#888"/>"##
    );
    for i in 0..=5 {
        let v = lo + (hi - lo) * f64::from(i) / 5.0;
        let _ = writeln!(
            svg,
            r##"<line x1="{MARGIN_LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{v:.2}</text>"##,
            MARGIN_LEFT + plot_w,
            MARGIN_LEFT - 5.0,
            y(v) + 4.0,
            y = y(v),
        );
        let t = t_max * f64::from(i) / 5.0;
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{:.1} s</text>"#,
            x(t),
            MARGIN_TOP + plot_h + 15.0,
            t / 1000.0
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="14" y="{:.1}" transform="rotate(-90 14 {:.1})" text-anchor="middle">{}</text>"#,
        MARGIN_TOP + plot_h / 2.0,
        MARGIN_TOP + plot_h / 2.0,
        escape(pv_unit)
    );
    // Markers under the curves.
    for (n, mark) in marks.iter().enumerate() {
        let colour = colour(mark.kind);
        let mx = x(mark.t_ms.clamp(0.0, t_max));
        let _ = writeln!(
            svg,
            r#"<line x1="{mx:.1}" x2="{mx:.1}" y1="{MARGIN_TOP}" y2="{:.1}" stroke="{colour}" stroke-dasharray="3,3"><title>{}</title></line>"#,
            MARGIN_TOP + plot_h,
            escape(&mark.label)
        );
        // Labels staggered on three rows so neighbours stay readable.
        let row = (n % 3) as f64;
        let _ = writeln!(
            svg,
            r#"<text x="{mx:.1}" y="{:.1}" fill="{colour}" font-size="10" text-anchor="middle">{}</text>"#,
            MARGIN_TOP + plot_h + 30.0 + row * 12.0,
            escape(&mark.label)
        );
    }
    // Curves, thinned to at most one point per pixel column.
    let step = (samples.len() / plot_w as usize).max(1);
    for (field, colour, name) in [(0, "#1f77b4", "process variable"), (1, "#d62728", "setpoint")] {
        let mut points = String::new();
        for s in samples.iter().step_by(step) {
            let v = if field == 0 { s.pv } else { s.sp };
            let _ = write!(points, "{:.1},{:.1} ", x(s.t_ms), y(v));
        }
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"><title>{name}</title></polyline>"#
        );
    }
    // Legend.
    let legend_y = HEIGHT - 20.0;
    let entries = [
        ("#1f77b4", "process variable"),
        ("#d62728", "setpoint"),
        (colour(MarkKind::Fault), "fault"),
        (colour(MarkKind::Takeover), "takeover"),
        (colour(MarkKind::Switchover), "switchover"),
    ];
    for (i, (colour, name)) in entries.iter().enumerate() {
        let lx = MARGIN_LEFT + i as f64 * 150.0;
        let _ = writeln!(
            svg,
            r#"<rect x="{lx}" y="{:.1}" width="14" height="4" fill="{colour}"/><text x="{}" y="{legend_y}">{name}</text>"#,
            legend_y - 5.0,
            lx + 20.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn colour(kind: MarkKind) -> &'static str {
    match kind {
        MarkKind::Fault => "#ff7f0e",
        MarkKind::Takeover => "#9467bd",
        MarkKind::Switchover => "#2ca02c",
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plot_has_both_curves_and_every_mark() {
        let samples: Vec<Sample> = (0..5000)
            .map(|i| Sample {
                t_ms: f64::from(i),
                pv: (f64::from(i) / 300.0).sin(),
                sp: 0.5,
            })
            .collect();
        let marks = vec![
            Mark {
                t_ms: 1000.0,
                kind: MarkKind::Fault,
                label: "kill <a>".into(),
            },
            Mark {
                t_ms: 1010.0,
                kind: MarkKind::Takeover,
                label: "takeover".into(),
            },
        ];
        let svg = render("run", "level m", &samples, &marks);
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("kill &lt;a&gt;"), "labels are escaped");
        assert_eq!(svg.matches("stroke-dasharray").count(), 2);
    }

    #[test]
    fn plot_empty_series_does_not_panic() {
        let svg = render("empty", "x", &[], &[]);
        assert!(svg.contains("</svg>"));
        assert!(!svg.contains("NaN"));
    }
}

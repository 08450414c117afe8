//! Live charts, drawn server-side as SVG from the last intervals of the time series
//! ([`LiveState::recent`]): VUs, throughput, latency p95 and error rate over time. The page
//! reloads them when an interval closes; a browser needs no chart library and the page no
//! network.
use super::page::ChartRef;
use super::state::LiveState;
use crate::timeseries::TimePoint;
use std::fmt::Write as _;

/// The charts the page shows, in order.
pub const LIST: &[ChartRef] = &[
    ChartRef {
        name: "throughput",
        title: "Throughput (req/s)",
    },
    ChartRef {
        name: "latency",
        title: "Latency p95 (ms)",
    },
    ChartRef {
        name: "errors",
        title: "Error rate (%)",
    },
    ChartRef {
        name: "vus",
        title: "Virtual users",
    },
];

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 220.0;
/// Plot area margins: left (y labels), right, top (title), bottom (x labels).
const MARGIN: (f64, f64, f64, f64) = (56.0, 12.0, 28.0, 30.0);
const COLORS: [&str; 3] = ["#2563eb", "#d97706", "#16a34a"];

/// One line: its legend and a value (or a gap) per point.
struct Line {
    label: &'static str,
    values: Vec<Option<f64>>,
}

fn finite(x: f32) -> Option<f64> {
    x.is_finite().then_some(x as f64)
}

/// The chart `name` of `state`, or `None` for an unknown name.
pub fn render(name: &str, state: &LiveState) -> Option<String> {
    let chart = LIST.iter().find(|c| c.name == name)?;
    let pts: &[TimePoint] = &state.recent;
    let secs = (state.run.interval_ms as f64 / 1000.0).max(1e-3);
    let lines = match name {
        "throughput" => vec![
            Line {
                label: "requests/s",
                values: pts.iter().map(|p| Some(p.requests as f64 / secs)).collect(),
            },
            Line {
                label: "iterations/s",
                values: pts
                    .iter()
                    .map(|p| Some(p.iterations as f64 / secs))
                    .collect(),
            },
        ],
        "latency" => vec![
            Line {
                label: "request p95",
                values: pts.iter().map(|p| finite(p.req_p95_ms)).collect(),
            },
            Line {
                label: "flow p95",
                values: pts.iter().map(|p| finite(p.flow_p95_ms)).collect(),
            },
        ],
        "errors" => vec![Line {
            label: "failed requests %",
            values: pts
                .iter()
                .map(|p| Some(p.failures as f64 * 100.0 / (p.requests.max(1) as f64)))
                .collect(),
        }],
        _ => vec![Line {
            label: "VUs",
            values: pts.iter().map(|p| Some(p.vus as f64)).collect(),
        }],
    };
    let xs: Vec<f64> = pts.iter().map(|p| (p.seq as f64 + 1.0) * secs).collect();
    Some(draw(chart.title, &xs, &lines))
}

/// A round step for about `ticks` divisions of `0..max`.
fn nice_step(max: f64, ticks: f64) -> f64 {
    let raw = (max / ticks).max(1e-9);
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn draw(title: &str, xs: &[f64], lines: &[Line]) -> String {
    let (ml, mr, mt, mb) = MARGIN;
    let (pw, ph) = (WIDTH - ml - mr, HEIGHT - mt - mb);
    let ymax_data = lines
        .iter()
        .flat_map(|l| l.values.iter().flatten())
        .fold(0.0f64, |a, b| a.max(*b));
    let step = nice_step(if ymax_data > 0.0 { ymax_data } else { 1.0 }, 4.0);
    let ymax = (ymax_data / step).ceil().max(1.0) * step;
    let (x0, x1) = match (xs.first(), xs.last()) {
        (Some(a), Some(b)) if b > a => (*a, *b),
        (Some(a), _) => (*a - 1.0, *a + 1.0),
        _ => (0.0, 1.0),
    };
    let px = |x: f64| ml + (x - x0) / (x1 - x0) * pw;
    let py = |y: f64| mt + ph - y / ymax * ph;
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11"><rect width="100%" height="100%" fill="#fff"/><text x="{ml}" y="17" font-size="13" font-weight="bold">{}</text>"##,
        esc(title)
    );
    let mut y = 0.0;
    while y <= ymax + step / 2.0 {
        let yy = py(y);
        let _ = write!(
            s,
            r##"<line x1="{ml}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#e5e7eb"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            ml + pw,
            ml - 4.0,
            yy + 4.0,
            fmt_tick(y, step)
        );
        y += step;
    }
    let xstep = nice_step(x1 - x0, 5.0).max(1.0);
    let mut x = (x0 / xstep).ceil() * xstep;
    while x <= x1 {
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{}" text-anchor="middle">{}s</text>"##,
            px(x),
            mt + ph + 16.0,
            x.round()
        );
        x += xstep;
    }
    let _ = write!(
        s,
        r##"<line x1="{ml}" x2="{ml}" y1="{mt}" y2="{}" stroke="#9ca3af"/><line x1="{ml}" x2="{}" y1="{}" y2="{}" stroke="#9ca3af"/>"##,
        mt + ph,
        ml + pw,
        mt + ph,
        mt + ph
    );
    for (i, l) in lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        // a gap (no sample in an interval) breaks the line
        let mut seg = String::new();
        let flush = |seg: &mut String, s: &mut String| {
            if !seg.is_empty() {
                let _ = write!(
                    s,
                    r##"<polyline fill="none" stroke="{color}" stroke-width="1.8" points="{}"/>"##,
                    seg.trim_end()
                );
                seg.clear();
            }
        };
        for (x, v) in xs.iter().zip(&l.values) {
            match v {
                Some(v) => {
                    let _ = write!(seg, "{:.1},{:.1} ", px(*x), py(*v));
                }
                None => flush(&mut seg, &mut s),
            }
        }
        flush(&mut seg, &mut s);
        let lx = ml + pw - 130.0 * (lines.len() - i) as f64;
        let _ = write!(
            s,
            r##"<rect x="{lx}" y="8" width="10" height="10" fill="{color}"/><text x="{}" y="17">{}</text>"##,
            lx + 14.0,
            esc(l.label)
        );
    }
    if xs.is_empty() {
        let _ = write!(
            s,
            r##"<text x="{}" y="{}" text-anchor="middle" fill="#6b7280">no interval closed yet</text>"##,
            ml + pw / 2.0,
            mt + ph / 2.0
        );
    }
    s.push_str("</svg>");
    s
}

fn fmt_tick(y: f64, step: f64) -> String {
    if step >= 1.0 {
        format!("{y:.0}")
    } else {
        let digits = (-step.log10().floor()) as usize;
        format!("{y:.digits$}")
    }
}

#[cfg(test)]
mod tests {
    use super::super::state::{LiveState, RunInfo};
    use super::*;
    use barrage_core::timeseries::N_OPS;
    use std::sync::Arc;

    fn point(seq: u32, requests: u32, failures: u32) -> TimePoint {
        TimePoint {
            seq,
            workers: 1,
            vus: 3,
            requests,
            failures,
            iterations: requests / 10,
            flow_p50_ms: 10.0,
            flow_p95_ms: f32::NAN,
            flow_p99_ms: 30.0,
            req_p95_ms: 12.5,
            op_p95_ms: [f32::NAN; N_OPS],
        }
    }

    #[test]
    fn every_listed_chart_draws_its_lines_and_breaks_at_gaps() {
        let mut s = LiveState::new(RunInfo {
            interval_ms: 1000,
            ..RunInfo::default()
        });
        s.recent = Arc::new(vec![point(0, 100, 0), point(1, 150, 3), point(2, 90, 9)]);
        for c in LIST {
            let svg = render(c.name, &s).unwrap();
            assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"), "{svg}");
            assert!(svg.contains(&esc(c.title)), "{}", c.name);
            assert!(svg.contains("<polyline"), "{}: {svg}", c.name);
        }
        // throughput: 150 req/s is the top, on a round axis (step 50)
        let svg = render("throughput", &s).unwrap();
        assert!(svg.contains(">150<") && svg.contains(">50<"), "{svg}");
        // flow p95 has no sample at all: only the request line is drawn
        assert_eq!(
            render("latency", &s).unwrap().matches("<polyline").count(),
            1
        );
        assert!(render("nope", &s).is_none());
        let empty = LiveState::new(RunInfo::default());
        assert!(render("vus", &empty)
            .unwrap()
            .contains("no interval closed yet"));
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(nice_step(150.0, 4.0), 50.0);
        assert_eq!(nice_step(7.0, 4.0), 2.0);
        assert_eq!(nice_step(0.3, 4.0), 0.1);
        assert_eq!(fmt_tick(0.2, 0.1), "0.2");
    }
}

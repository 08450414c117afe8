//! The report's charts, built from [`ChartData`]: which charts exist, their titles (with
//! units) and the values they show. A sweep (every run has a tier, two tiers or more) is
//! drawn by tier with one bar per runtime; other run sets with one bar per run. A run over
//! time is drawn as steps, one per time-series row ([`steps`]).
use super::{BarChart, LineChart, LineSeries, SpectrumChart, SpectrumSeries};
use crate::charts::bars::BarSeries;
use crate::charts::render::Chart;
use crate::figures::{ChartData, Percentiles, RowTime, RunFigures};

/// A latency percentile as charts name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pct {
    P50,
    P95,
    P99,
}

impl Pct {
    pub const ALL: [Pct; 3] = [Pct::P50, Pct::P95, Pct::P99];

    pub fn name(self) -> &'static str {
        match self {
            Pct::P50 => "p50",
            Pct::P95 => "p95",
            Pct::P99 => "p99",
        }
    }

    pub fn of(self, p: &Percentiles) -> f64 {
        match self {
            Pct::P50 => p.p50,
            Pct::P95 => p.p95,
            Pct::P99 => p.p99,
        }
    }
}

/// One chart of the report and the file stem it is written under.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedChart {
    /// File stem: `throughput` → `throughput.png`.
    pub file: String,
    pub chart: Chart,
}

/// A bar chart of one figure per run: by tier × runtime for a sweep, else per run.
fn per_run(
    d: &ChartData,
    title: &str,
    unit: &str,
    value: impl Fn(&RunFigures) -> Option<f64>,
) -> BarChart {
    let (groups, series, x_name) = if d.is_sweep() {
        let tiers = d.tiers();
        let series = d
            .runtimes()
            .into_iter()
            .map(|rt| BarSeries {
                values: tiers
                    .iter()
                    .map(|t| d.find(&rt, t).and_then(&value))
                    .collect(),
                name: rt,
            })
            .collect();
        (tiers, series, "tier")
    } else {
        let groups = d.runs.iter().map(|r| r.name.clone()).collect();
        let series = vec![BarSeries {
            name: unit.to_string(),
            values: d.runs.iter().map(&value).collect(),
        }];
        (groups, series, "run")
    };
    let by = if d.is_sweep() { " by tier" } else { "" };
    BarChart {
        title: format!("{title}{by} ({unit})"),
        unit: unit.to_string(),
        x_name: x_name.to_string(),
        caption: d.caption(),
        groups,
        series,
    }
}

/// Requests per second.
pub fn throughput(d: &ChartData) -> BarChart {
    per_run(d, "Throughput", "req/s", |r| r.requests_per_s)
}

/// Requests per CPU-second of the target; `None` when no run measured the target's CPU.
pub fn per_cpu_second(d: &ChartData) -> Option<BarChart> {
    d.runs
        .iter()
        .any(|r| r.requests_per_cpu_s.is_some())
        .then(|| per_run(d, "Efficiency", "req per CPU-s", |r| r.requests_per_cpu_s))
}

/// Failed requests, %.
pub fn error_rate(d: &ChartData) -> BarChart {
    per_run(d, "Error rate", "% failed", |r| {
        r.error_rate.map(|e| (e * 100_000.0).round() / 1000.0)
    })
}

/// `http_req_duration` (all operations) at one percentile.
pub fn latency(d: &ChartData, p: Pct) -> BarChart {
    per_run(d, &format!("Request latency {}", p.name()), "ms", |r| {
        r.requests.as_ref().map(|x| p.of(x))
    })
}

/// `agent_flow_duration` at one percentile; `None` without flows.
pub fn flow_latency(d: &ChartData, p: Pct) -> Option<BarChart> {
    d.runs.iter().any(|r| r.flow.is_some()).then(|| {
        per_run(d, &format!("Agent flow {}", p.name()), "ms", |r| {
            r.flow.as_ref().map(|x| p.of(x))
        })
    })
}

/// One percentile per operation, one bar per run.
pub fn latency_per_operation(d: &ChartData, p: Pct) -> BarChart {
    let ops = d.operations();
    let series = d
        .runs
        .iter()
        .map(|r| BarSeries {
            name: r.label(),
            values: ops
                .iter()
                .map(|op| {
                    r.operations
                        .iter()
                        .find(|(o, _)| o == op)
                        .map(|(_, x)| p.of(x))
                })
                .collect(),
        })
        .collect();
    BarChart {
        title: format!("Latency {} per operation (ms)", p.name()),
        unit: "ms".into(),
        x_name: "operation".into(),
        caption: d.caption(),
        groups: ops,
        series,
    }
}

fn run_caption(r: &RunFigures) -> String {
    let tier = r
        .tier
        .as_deref()
        .map(|t| format!(" · tier {t}"))
        .unwrap_or_default();
    format!("{} · {} v{}{tier}", r.hardware, r.runtime, r.version)
}

/// A series of row values as a step line: each value held from its row's start to its
/// end (a merged row of a long run covers many intervals, and its value is theirs as a
/// whole), rows meeting end to start joined by a vertical, a missing value or missing
/// intervals between rows (`seq` not following on) a gap.
pub fn steps(rows: &[RowTime], ys: &[Option<f64>]) -> Vec<(f64, Option<f64>)> {
    let mut out = Vec::with_capacity(rows.len() * 2);
    let mut prev_end: Option<u64> = None;
    for (row, y) in rows.iter().zip(ys) {
        if prev_end.is_some_and(|e| e != row.seq) {
            out.push((row.start_s, None));
        }
        match y {
            Some(y) => {
                out.push((row.start_s, Some(*y)));
                out.push((row.end_s, Some(*y)));
            }
            None => out.push((row.start_s, None)),
        }
        prev_end = Some(row.end_seq);
    }
    out
}

/// One run over time: VUs, req/s, p95, failures; the target's CPU and memory when
/// measured. Each time-series row is a step over the time it covers ([`steps`]), so the
/// time axis runs from the start of the first row to the end of the last.
pub fn timeseries(r: &RunFigures) -> Vec<(String, LineChart)> {
    let s = &r.series;
    let line = |title: &str, unit: &str, ys: &[Option<f64>]| LineChart {
        title: format!("{title} — {} ({unit})", r.name),
        x_unit: "s".into(),
        y_unit: unit.into(),
        caption: run_caption(r),
        series: vec![LineSeries {
            name: String::new(),
            points: steps(&s.rows, ys),
        }],
    };
    let mut out = vec![
        ("vus".to_string(), line("Virtual users", "VUs", &s.vus)),
        (
            "rps".to_string(),
            line("Throughput", "req/s", &s.requests_per_s),
        ),
        (
            "p95".to_string(),
            line("Request latency p95", "ms", &s.p95_ms),
        ),
        (
            "errors".to_string(),
            line("Failed requests", "failures/s", &s.failures_per_s),
        ),
    ];
    if let Some(cpu) = &s.cpu_pct {
        out.push(("cpu".into(), line("Target CPU", "% of a core", cpu)));
    }
    if let Some(rss) = &s.rss_mib {
        out.push(("rss".into(), line("Target memory", "MiB RSS", rss)));
    }
    out
}

/// The percentile spectrum of `metric` for every run that has it.
pub fn spectrum(d: &ChartData, metric: &str) -> Option<SpectrumChart> {
    let series: Vec<SpectrumSeries> = d
        .runs
        .iter()
        .filter_map(|r| {
            r.spectra
                .iter()
                .find(|s| s.metric == metric)
                .map(|s| SpectrumSeries {
                    name: r.label(),
                    points: s.points.clone(),
                })
        })
        .collect();
    (!series.is_empty()).then(|| SpectrumChart {
        title: format!("{metric} by percentile (ms)"),
        unit: "ms".into(),
        caption: d.caption(),
        series,
    })
}

/// Every chart of the report, in the order the HTML shows them.
pub fn all(d: &ChartData) -> Vec<NamedChart> {
    let mut out = Vec::new();
    let mut push = |file: String, chart: Chart| out.push(NamedChart { file, chart });
    push("throughput".into(), Chart::Bars(throughput(d)));
    if let Some(c) = per_cpu_second(d) {
        push("requests-per-cpu-second".into(), Chart::Bars(c));
    }
    push("error-rate".into(), Chart::Bars(error_rate(d)));
    for p in Pct::ALL {
        push(format!("latency-{}", p.name()), Chart::Bars(latency(d, p)));
    }
    for p in Pct::ALL {
        if let Some(c) = flow_latency(d, p) {
            push(format!("flow-{}", p.name()), Chart::Bars(c));
        }
    }
    if !d.operations().is_empty() {
        for p in Pct::ALL {
            push(
                format!("operations-{}", p.name()),
                Chart::Bars(latency_per_operation(d, p)),
            );
        }
    }
    for metric in ["http_req_duration", "agent_flow_duration"] {
        if let Some(c) = spectrum(d, metric) {
            push(format!("spectrum-{metric}"), Chart::Spectrum(c));
        }
    }
    for r in &d.runs {
        for (what, c) in timeseries(r) {
            push(format!("timeseries-{}-{what}", r.name), Chart::Lines(c));
        }
    }
    out
}

//! The end-of-test text summary, like k6's: thresholds with ✓/✗, then one line per metric
//! (Trends: count, avg, min, med, p(90), p(95), p(99), max; Counters: count and rate;
//! Rates: percentage and counts; Gauges: value, min, max), computed on the run's merged
//! snapshot. The writer takes `impl Write` so tests assert on bytes.
use barrage_core::metrics::builtin;
use barrage_core::{MetricKind, MetricRef, Plan, Sink, Snapshot, Threshold};
use std::io::{self, Write};
use std::time::Duration;

/// One evaluated threshold.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub metric: MetricRef,
    pub threshold: Threshold,
    /// The aggregated value compared (ms for times); `None` when there was no data.
    pub observed: Option<f64>,
    pub passed: bool,
}

/// Whether a metric's Trend values are times (µs in sinks, ms in summaries).
pub fn is_time(metric: &str, kind: MetricKind) -> bool {
    match builtin::lookup(metric) {
        Some((_, t)) => t,
        None => kind == MetricKind::Trend,
    }
}

/// Evaluates the plan's thresholds on `total` (`elapsed` is the run time, for rates).
/// A threshold on a metric with no data fails, as in k6 (`passed` false, `observed` None)
/// except Counters, which count zero.
pub fn evaluate(plan: &Plan, total: &Snapshot, elapsed: Duration) -> Vec<Verdict> {
    let Ok(parsed) = plan.parsed_thresholds() else {
        return Vec::new(); // the plan was validated before the run
    };
    let mut out = Vec::new();
    for (mref, thresholds) in parsed {
        let sink = total.submetric(&mref.metric, &mref.filter);
        for t in thresholds {
            let observed = sink
                .as_ref()
                .and_then(|s| t.observed(s, elapsed, is_time(&mref.metric, s.kind())));
            let passed = observed.is_some_and(|v| t.passes(v));
            out.push(Verdict {
                metric: mref.clone(),
                threshold: t,
                observed,
                passed,
            });
        }
    }
    out
}

pub use barrage_core::format::{fmt_bytes, fmt_ms, fmt_num};

fn dotted(name: &str, width: usize) -> String {
    let mut s = name.to_string();
    if s.chars().count() < width {
        s.push_str(&".".repeat(width - s.chars().count()));
    }
    s.push(':');
    s
}

/// One metric's summary values, without the name.
pub fn describe(metric: &str, sink: &Sink, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-9);
    match sink {
        Sink::Trend(t) => {
            let time = is_time(metric, MetricKind::Trend);
            let f = |us: f64| {
                if time {
                    fmt_ms(us / 1000.0)
                } else {
                    format!("{us:.0}")
                }
            };
            format!(
                "count={} avg={} min={} med={} p(90)={} p(95)={} p(99)={} max={}",
                t.count(),
                f(t.hist.mean()),
                f(t.hist.min() as f64),
                f(t.percentile(50.0)),
                f(t.percentile(90.0)),
                f(t.percentile(95.0)),
                f(t.percentile(99.0)),
                f(t.hist.max() as f64),
            )
        }
        Sink::Counter(c) if builtin::is_data(metric) => {
            format!("{}  {}/s", fmt_bytes(c.sum), fmt_bytes(c.sum / secs))
        }
        Sink::Counter(c) => format!("{}  {:.2}/s", fmt_num(c.sum), c.sum / secs),
        Sink::Rate(r) => format!("{:.2}%  {} out of {}", r.rate() * 100.0, r.trues, r.total),
        Sink::Gauge(g) => format!(
            "{}  min={} max={}",
            fmt_num(g.last),
            fmt_num(g.min),
            fmt_num(g.max)
        ),
    }
}

/// Writes the summary: header, thresholds, metrics. `vus_line` is e.g. the scenario line.
pub fn write_summary(
    out: &mut impl Write,
    plan: &Plan,
    total: &Snapshot,
    elapsed: Duration,
    thresholds: &[Verdict],
) -> io::Result<()> {
    writeln!(out)?;
    writeln!(
        out,
        "  scenario: {} ({})",
        plan.name,
        plan.scenario.describe()
    )?;
    writeln!(
        out,
        "  target:   {} (runtime {}, llm {})",
        plan.target.url, plan.target.runtime, plan.target.llm
    )?;
    writeln!(out, "  duration: {:.1}s", elapsed.as_secs_f64())?;
    if !thresholds.is_empty() {
        writeln!(out)?;
        writeln!(out, "  THRESHOLDS")?;
        for r in thresholds {
            let mark = if r.passed { "✓" } else { "✗" };
            let seen = match r.observed {
                Some(v) => format!("{v:.4}"),
                None => "no data".to_string(),
            };
            writeln!(
                out,
                "    {mark} {} '{}' observed={seen}",
                r.metric, r.threshold.source
            )?;
        }
    }
    writeln!(out)?;
    writeln!(out, "  METRICS")?;
    let width = total
        .metrics()
        .iter()
        .map(|m| m.chars().count())
        .max()
        .unwrap_or(10)
        .max(24)
        + 2;
    let mut names: Vec<&str> = total.metrics();
    names.sort_unstable();
    names.dedup();
    for name in names {
        if let Some(sink) = total.submetric(name, &[]) {
            writeln!(
                out,
                "    {} {}",
                dotted(name, width),
                describe(name, &sink, elapsed)
            )?;
        }
        // submetrics the thresholds name get a line of their own
        for r in thresholds
            .iter()
            .filter(|r| r.metric.metric == name && !r.metric.filter.is_empty())
        {
            if let Some(sub) = total.submetric(name, &r.metric.filter) {
                let label = format!("  {}", r.metric);
                writeln!(
                    out,
                    "    {} {}",
                    dotted(&label, width),
                    describe(name, &sub, elapsed)
                )?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use barrage_core::plan::Profile;
    use barrage_core::SeriesKey;

    #[test]
    fn thresholds_pass_and_fail_on_merged_data() {
        let mut plan = Plan::profile(Profile::Smoke);
        plan.thresholds.clear();
        plan.thresholds.insert(
            "http_req_failed".into(),
            vec![barrage_core::threshold::ThresholdSpec::Expr(
                "rate<0.05".into(),
            )],
        );
        plan.thresholds.insert(
            "http_req_duration{operation:run_wait}".into(),
            vec![barrage_core::threshold::ThresholdSpec::Expr(
                "p(95)<5".into(),
            )],
        );
        let mut total = Snapshot::default();
        let failed = SeriesKey::new("http_req_failed");
        for v in [0.0, 0.0, 0.0, 1.0] {
            total.add(failed.clone(), MetricKind::Rate, v);
        }
        let op = SeriesKey::with_tags("http_req_duration", [("operation", "run_wait")]);
        total.add(op, MetricKind::Trend, 4_000.0); // 4 ms
        total.add(SeriesKey::new("http_reqs"), MetricKind::Counter, 4.0);
        total.add(
            SeriesKey::new("data_received"),
            MetricKind::Counter,
            3_000_000.0,
        );
        let results = evaluate(&plan, &total, Duration::from_secs(2));
        let by = |m: &str| results.iter().find(|r| r.metric.to_string() == m).unwrap();
        assert!(
            !by("http_req_failed").passed,
            "25% failures breaks rate<0.05"
        );
        assert!(by("http_req_duration{operation:run_wait}").passed);
        let mut buf = Vec::new();
        write_summary(&mut buf, &plan, &total, Duration::from_secs(2), &results).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(text.contains("✗ http_req_failed 'rate<0.05'"), "{text}");
        assert!(
            text.contains("✓ http_req_duration{operation:run_wait} 'p(95)<5'"),
            "{text}"
        );
        assert!(text.contains("http_reqs"), "{text}");
        assert!(text.contains(": 4  2.00/s"), "{text}");
        assert!(text.contains("25.00%  1 out of 4"), "{text}");
        assert!(
            text.contains(": 3.0 MB  1.5 MB/s"),
            "bytes as k6 prints them\n{text}"
        );
    }
}

//! The dashboard's figures computed from merged data: totals, per-operation latencies (from
//! the merged HDR histograms), percentile spectra and the last interval's view. Pure
//! functions of a `Snapshot` (or a final `Summary`), so `/metrics`, the page and the charts
//! show the same numbers.
use super::state::{IntervalView, Latency, Totals, QUANTILES};
use crate::timeseries::TimePoint;
use barrage_core::metrics::builtin;
use barrage_core::sink::TrendSink;
use barrage_core::summary::{MetricStats, Summary};
use barrage_core::{Sink, Snapshot};
use barrage_report::figures::{spectrum_points, Spectrum};
use std::collections::BTreeMap;

fn opt(x: f32) -> Option<f64> {
    x.is_finite().then(|| (x as f64 * 1000.0).round() / 1000.0)
}

fn counter(s: &Snapshot, metric: &str) -> u64 {
    match s.submetric(metric, &[]) {
        Some(Sink::Counter(c)) => c.sum.max(0.0) as u64,
        _ => 0,
    }
}

fn rate(s: &Snapshot, metric: &str) -> (u64, u64) {
    match s.submetric(metric, &[]) {
        Some(Sink::Rate(r)) => (r.trues, r.total - r.trues),
        _ => (0, 0),
    }
}

/// One latency from a merged histogram of µs.
fn latency(name: &str, t: &TrendSink) -> Latency {
    Latency {
        name: name.to_string(),
        count: t.count(),
        sum_s: t.hist.mean() * t.count() as f64 / 1e6,
        quantiles_ms: QUANTILES
            .iter()
            .map(|q| t.percentile(q * 100.0) / 1e3)
            .collect(),
        interval_p95_ms: None,
    }
}

/// Totals of the merged run.
pub fn totals(total: &Snapshot, late_snapshots: u64) -> Totals {
    let (failed_requests, _) = rate(total, builtin::HTTP_REQ_FAILED);
    let (checks_passed, checks_failed) = rate(total, builtin::CHECKS);
    Totals {
        requests: counter(total, builtin::HTTP_REQS),
        failed_requests,
        iterations: counter(total, builtin::ITERATIONS),
        interrupted_iterations: counter(total, builtin::INTERRUPTED_ITERATIONS),
        dropped_iterations: counter(total, builtin::DROPPED_ITERATIONS),
        data_sent_bytes: counter(total, builtin::DATA_SENT),
        data_received_bytes: counter(total, builtin::DATA_RECEIVED),
        checks_passed,
        checks_failed,
        late_snapshots,
    }
}

/// The final totals, from the written summary (exact: every interval closed).
pub fn summary_totals(s: &Summary, late_snapshots: u64) -> Totals {
    let count = |m: &str| s.metric(m).map_or(0, |x| x.count().max(0.0) as u64);
    let rate = |m: &str| match s.metric(m) {
        Some(MetricStats::Rate { passes, fails, .. }) => (*passes, *fails),
        _ => (0, 0),
    };
    let (checks_passed, checks_failed) = rate(builtin::CHECKS);
    Totals {
        requests: count(builtin::HTTP_REQS),
        failed_requests: rate(builtin::HTTP_REQ_FAILED).0,
        iterations: count(builtin::ITERATIONS),
        interrupted_iterations: count(builtin::INTERRUPTED_ITERATIONS),
        dropped_iterations: count(builtin::DROPPED_ITERATIONS),
        data_sent_bytes: count(builtin::DATA_SENT),
        data_received_bytes: count(builtin::DATA_RECEIVED),
        checks_passed,
        checks_failed,
        late_snapshots,
    }
}

/// Latencies of the merged run: each operation of `http_req_duration` (series merged by
/// their `operation` tag), then whole metrics. `last` gives the operations' interval p95.
pub fn latencies(total: &Snapshot, last: Option<&TimePoint>) -> Vec<Latency> {
    let mut ops: BTreeMap<&str, TrendSink> = BTreeMap::new();
    for (key, sink) in &total.series {
        if key.metric != builtin::HTTP_REQ_DURATION {
            continue;
        }
        let (Some(op), Sink::Trend(t)) = (key.tag("operation"), sink) else {
            continue;
        };
        match ops.get_mut(op) {
            Some(acc) => {
                if let Err(e) = acc.hist.add(&t.hist) {
                    tracing::debug!(operation = op, error = ?e, "histograms do not add");
                }
            }
            None => {
                ops.insert(op, t.clone());
            }
        }
    }
    let mut out: Vec<Latency> = ops
        .iter()
        .map(|(op, t)| {
            let mut l = latency(op, t);
            l.interval_p95_ms = builtin::OPERATIONS
                .iter()
                .position(|o| o == op)
                .and_then(|i| last.and_then(|p| opt(p.op_p95_ms[i])));
            l
        })
        .collect();
    for metric in [
        builtin::HTTP_REQ_DURATION,
        builtin::AGENT_FLOW_DURATION,
        builtin::ITERATION_DURATION,
    ] {
        if let Some(Sink::Trend(t)) = total.submetric(metric, &[]) {
            let mut l = latency(metric, &t);
            l.interval_p95_ms = last.and_then(|p| match metric {
                builtin::HTTP_REQ_DURATION => opt(p.req_p95_ms),
                builtin::AGENT_FLOW_DURATION => opt(p.flow_p95_ms),
                _ => None,
            });
            out.push(l);
        }
    }
    out
}

/// The percentile spectra of the merged run, as the report draws them.
pub fn spectra(total: &Snapshot) -> Vec<Spectrum> {
    [builtin::HTTP_REQ_DURATION, builtin::AGENT_FLOW_DURATION]
        .into_iter()
        .filter_map(|metric| match total.submetric(metric, &[]) {
            Some(Sink::Trend(t)) if t.count() > 0 => Some(Spectrum {
                metric: metric.to_string(),
                points: spectrum_points(&t, 1e-3),
            }),
            _ => None,
        })
        .collect()
}

/// The interval view of one time-series row, whose counts are per the time it covers.
pub fn interval_view(p: &TimePoint, interval_ms: u32) -> IntervalView {
    IntervalView {
        seq: p.seq as u64,
        span: u64::from(p.span.max(1)),
        vus: p.vus as u64,
        requests_per_s: p.per_s(p.requests, interval_ms),
        error_rate: if p.requests == 0 {
            0.0
        } else {
            p.failures as f64 / p.requests as f64
        },
        iterations_per_s: p.per_s(p.iterations, interval_ms),
        flow_p50_ms: opt(p.flow_p50_ms),
        flow_p95_ms: opt(p.flow_p95_ms),
        flow_p99_ms: opt(p.flow_p99_ms),
        req_p95_ms: opt(p.req_p95_ms),
    }
}

//! [`assemble`]: the one function that turns a run's merged data into a [`Summary`]. The
//! controller calls it with every worker's merged snapshot, a standalone worker with its own;
//! nothing else builds a summary.
use super::{
    HostInfo, MetricStats, Patterns, RigInfo, RunMode, RunResult, StageSummary, StoredHistogram,
    Summary, TargetInfo, ThresholdResult, WorkerSummary, SCHEMA_VERSION,
};
use crate::metrics::{builtin, MetricKind, ValueKind};
use crate::plan::Plan;
use crate::sink::{Sink, SIGFIG};
use crate::snapshot::Snapshot;
use crate::stages::StageBook;
use crate::threshold::Verdict;
use crate::timeseries::TimeSeries;
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

/// RFC 3339 with milliseconds, UTC: how a summary writes instants.
pub fn rfc3339(t: SystemTime) -> String {
    DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Rounded to 3 decimals (below HDR's precision): `None` for a non-finite value.
fn round3(x: f64) -> Option<f64> {
    x.is_finite().then(|| (x * 1000.0).round() / 1000.0)
}

fn r3(x: f64) -> f64 {
    round3(x).unwrap_or(0.0)
}

/// The statistics of one sink (see the module table of [`super`]).
pub fn sink_stats(metric: &str, sink: &Sink, elapsed: Duration) -> MetricStats {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let contains = ValueKind::of(metric, sink.kind());
    match sink {
        Sink::Trend(t) => {
            let scale = contains.scale();
            let h = &t.hist;
            let some = !h.is_empty();
            let q = |p: f64| some.then(|| r3(t.percentile(p) * scale));
            MetricStats::Trend {
                contains,
                count: h.len(),
                rate: r3(h.len() as f64 / secs),
                min: some.then(|| r3(h.min() as f64 * scale)),
                avg: some.then(|| r3(h.mean() * scale)),
                med: q(50.0),
                p90: q(90.0),
                p95: q(95.0),
                p99: q(99.0),
                max: some.then(|| r3(h.max() as f64 * scale)),
            }
        }
        Sink::Counter(c) => MetricStats::Counter {
            contains,
            count: r3(c.sum),
            rate: r3(c.sum / secs),
        },
        Sink::Rate(r) => MetricStats::Rate {
            contains,
            rate: r3(r.rate()),
            passes: r.trues,
            fails: r.total - r.trues,
        },
        Sink::Gauge(g) => MetricStats::Gauge {
            contains,
            value: r3(g.last),
            min: r3(g.min),
            max: r3(g.max),
        },
    }
}

/// Entry names and sinks: per metric, per `metric{tag:value}`, per threshold submetric
/// with several tags.
pub fn metric_entries(
    total: &Snapshot,
    extra: &[(String, Vec<(String, String)>)],
) -> Vec<(String, String, Sink)> {
    let mut out = Vec::new();
    let names: BTreeSet<&str> = total.series.keys().map(|k| k.metric.as_str()).collect();
    for name in names {
        if let Some(s) = total.submetric(name, &[]) {
            out.push((name.to_string(), name.to_string(), s));
        }
        let pairs: BTreeSet<(&str, &str)> = total
            .series
            .keys()
            .filter(|k| k.metric == name)
            .flat_map(|k| k.tags.iter().map(|(a, b)| (a.as_str(), b.as_str())))
            .collect();
        for (k, v) in pairs {
            let filter = [(k.to_string(), v.to_string())];
            if let Some(s) = total.submetric(name, &filter) {
                out.push((format!("{name}{{{k}:{v}}}"), name.to_string(), s));
            }
        }
    }
    for (metric, filter) in extra {
        if filter.len() < 2 {
            continue; // single-tag submetrics are listed above
        }
        if let Some(s) = total.submetric(metric, filter) {
            let parts: Vec<String> = filter.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            out.push((
                format!("{metric}{{{}}}", parts.join(",")),
                metric.clone(),
                s,
            ));
        }
    }
    out
}

/// What a run produced, as the program that ran it knows it.
pub struct RunFacts<'a> {
    pub mode: RunMode,
    pub plan: &'a Plan,
    pub rig: RigInfo,
    pub host: HostInfo,
    pub start: SystemTime,
    pub end: SystemTime,
    /// Run time the rates divide by.
    pub elapsed: Duration,
    /// Every worker's samples, merged over the whole run.
    pub total: &'a Snapshot,
    pub timeseries: &'a TimeSeries,
    /// Per-stage merged data, when the program kept it.
    pub stages: Option<&'a StageBook>,
    pub workers: Vec<WorkerSummary>,
    /// The thresholds' verdicts on `total` ([`crate::ThresholdSet::evaluate`]).
    pub verdicts: &'a [Verdict],
    pub end_reason: String,
    pub exit_code: u8,
    pub late_snapshots: u64,
    /// What the target consumed (see [`crate::telemetry`]), when measured.
    pub target_telemetry: Option<crate::telemetry::TargetSummary>,
    /// The verdict of [`crate::validity::check`], when the program kept health figures.
    pub validity: Option<crate::validity::Validity>,
}

/// The `vus` gauge as the sum over workers, from the time series: last, min, max. A
/// downsampled row's `vus` is its highest interval's, so the minimum is read from each
/// row's own `vus_min`.
pub(crate) fn vus_stats(ts: &TimeSeries) -> MetricStats {
    let pts = &ts.points;
    let last = pts.last().map_or(0, |p| p.vus);
    let min = pts.iter().map(|p| p.vus_min).min().unwrap_or(0);
    let max = pts.iter().map(|p| p.vus).max().unwrap_or(0);
    MetricStats::Gauge {
        contains: ValueKind::Default,
        value: last as f64,
        min: min as f64,
        max: max as f64,
    }
}

fn counter(s: &Snapshot, metric: &str) -> f64 {
    match s.submetric(metric, &[]) {
        Some(Sink::Counter(c)) => c.sum,
        _ => 0.0,
    }
}

/// One [`StageSummary`] per stage of the book.
fn stage_summaries(book: &StageBook, arrival: bool) -> Vec<StageSummary> {
    let interval_s = book.interval.as_secs_f64();
    book.spans
        .iter()
        .zip(&book.data)
        .enumerate()
        .map(|(i, (span, d))| {
            let secs = d.intervals as f64 * interval_s;
            let mut metrics = BTreeMap::new();
            for (entry, metric, sink) in metric_entries(&d.snapshot, &[]) {
                metrics.insert(
                    entry,
                    sink_stats(&metric, &sink, Duration::from_secs_f64(secs)),
                );
            }
            let requests = counter(&d.snapshot, builtin::HTTP_REQS);
            let error_rate = match d.snapshot.submetric(builtin::HTTP_REQ_FAILED, &[]) {
                Some(Sink::Rate(r)) if r.total > 0 => Some(r3(r.rate())),
                _ => None,
            };
            StageSummary {
                index: i as u32,
                kind: span.kind,
                start_s: r3(span.start.as_secs_f64()),
                end_s: span.end.map(|e| r3(e.as_secs_f64())),
                planned_from: r3(span.from),
                planned_to: r3(span.to),
                planned_unit: if arrival { "iterations/s" } else { "vus" }.into(),
                intervals: d.intervals,
                duration_s: r3(secs),
                vus_min: d.vus_min,
                vus_max: d.vus_max,
                vus_mean: if d.intervals == 0 {
                    0.0
                } else {
                    r3(d.vus_sum as f64 / d.intervals as f64)
                },
                requests,
                iterations: counter(&d.snapshot, builtin::ITERATIONS),
                req_per_s: if secs > 0.0 { r3(requests / secs) } else { 0.0 },
                error_rate,
                metrics,
            }
        })
        .collect()
}

/// The summary of a run: the only constructor of [`Summary`].
pub fn assemble(f: RunFacts<'_>) -> Summary {
    let extra: Vec<(String, Vec<(String, String)>)> = f
        .plan
        .parsed_thresholds()
        .unwrap_or_default()
        .into_iter()
        .map(|(m, _)| (m.metric, m.filter))
        .collect();
    let mut metrics = BTreeMap::new();
    for (entry, metric, sink) in metric_entries(f.total, &extra) {
        metrics.insert(entry, sink_stats(&metric, &sink, f.elapsed));
    }
    metrics.insert(builtin::VUS.into(), vus_stats(f.timeseries));
    let max_vus = f.plan.max_vus() as f64;
    metrics.insert(
        builtin::VUS_MAX.into(),
        MetricStats::Gauge {
            contains: ValueKind::Default,
            value: max_vus,
            min: max_vus,
            max: max_vus,
        },
    );
    let mut histograms = BTreeMap::new();
    for (key, sink) in &f.total.series {
        if let Sink::Trend(t) = sink {
            let Ok(bytes) = t.encode() else { continue };
            let time = ValueKind::of(&key.metric, MetricKind::Trend) == ValueKind::Time;
            histograms.insert(
                key.to_string(),
                StoredHistogram {
                    metric: key.metric.clone(),
                    tags: key.tags.iter().cloned().collect(),
                    unit: if time { "us" } else { "1" }.into(),
                    significant_digits: SIGFIG,
                    hdr_v2_deflate_base64: base64::engine::general_purpose::STANDARD.encode(bytes),
                },
            );
        }
    }
    let thresholds: Vec<ThresholdResult> = f
        .verdicts
        .iter()
        .map(|v| ThresholdResult {
            metric: v.metric.clone(),
            threshold: v.source.clone(),
            ok: v.ok,
            observed: v.observed.and_then(round3),
            abort_on_fail: v.abort_on_fail,
        })
        .collect();
    let plan = serde_json::from_str(&f.plan.to_json()).unwrap_or(serde_json::Value::Null);
    let t = &f.plan.target;
    let stages = f
        .stages
        .map(|b| stage_summaries(b, f.plan.scenario.is_arrival_rate()))
        .unwrap_or_default();
    let patterns = Patterns::of(&stages, &metrics);
    Summary {
        schema_version: SCHEMA_VERSION,
        mode: f.mode,
        barrage: f.rig,
        host: f.host,
        target: TargetInfo {
            url: t.url.clone(),
            runtime: t.runtime.clone(),
            version: t.version.clone(),
            llm: t.llm.clone(),
            tier: t.tier.clone(),
        },
        scenario: f.plan.describe_scenarios(),
        plan,
        plan_hash: f.plan.hash(),
        start: rfc3339(f.start),
        end: rfc3339(f.end),
        duration_s: r3(f.elapsed.as_secs_f64()),
        result: RunResult {
            end_reason: f.end_reason,
            exit_code: f.exit_code,
            thresholds_ok: f.verdicts.iter().all(|v| v.ok),
            late_snapshots: f.late_snapshots,
        },
        workers: f.workers,
        metrics,
        thresholds,
        histograms,
        timeseries: f.timeseries.to_doc(),
        stages,
        patterns,
        target_telemetry: f.target_telemetry,
        slo: f
            .plan
            .slo_objectives()
            .into_iter()
            .map(|o| (o.name, r3(o.within.as_secs_f64() * 1000.0)))
            .collect(),
        validity: f.validity,
        trends: None,
    }
}

//! The end of a run: `summary.json` (metadata, per-metric and per-submetric statistics,
//! thresholds, merged HDR histograms, the time series) and the human summary on stdout,
//! shaped like k6's end-of-test summary.
//!
//! Statistics per metric kind (times in ms; `rate` of a counter or trend is per second):
//!
//! | kind    | fields                                              |
//! |---------|-----------------------------------------------------|
//! | trend   | count, rate, min, avg, med, p90, p95, p99, max      |
//! | counter | count, rate                                         |
//! | rate    | rate, passes, fails                                 |
//! | gauge   | value, min, max                                     |
//!
//! Entries: one per metric (all its series merged), one per `metric{tag:value}` present,
//! and one per threshold's submetric. `histograms` holds every Trend series as base64 of
//! its V2-deflate HDR histogram (µs, 3 significant digits), so any percentile can be
//! recomputed exactly later.
use crate::meta::{HostInfo, RigInfo};
use crate::report::RunReport;
use barrage_core::metrics::builtin;
use barrage_core::{MetricKind, Sink, Snapshot};
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

pub fn rfc3339(t: SystemTime) -> String {
    DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn round3(x: f64) -> Value {
    if x.is_finite() {
        json!((x * 1000.0).round() / 1000.0)
    } else {
        Value::Null
    }
}

fn is_time(metric: &str) -> bool {
    builtin::lookup(metric).is_some_and(|(_, t)| t)
}

fn contains(kind: MetricKind, metric: &str) -> &'static str {
    match kind {
        MetricKind::Trend if is_time(metric) => "time",
        MetricKind::Counter if builtin::is_data(metric) => "data",
        _ => "default",
    }
}

/// The statistics of one sink (see the module table).
pub fn sink_stats(metric: &str, sink: &Sink, elapsed: Duration) -> Value {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let kind = sink.kind();
    let mut v = match sink {
        Sink::Trend(t) => {
            let scale = if is_time(metric) { 1e-3 } else { 1.0 };
            let h = &t.hist;
            let empty = h.is_empty();
            let q = |p: f64| {
                if empty {
                    Value::Null
                } else {
                    round3(t.percentile(p) * scale)
                }
            };
            json!({
                "count": h.len(),
                "rate": round3(h.len() as f64 / secs),
                "min": if empty { Value::Null } else { round3(h.min() as f64 * scale) },
                "avg": if empty { Value::Null } else { round3(h.mean() * scale) },
                "med": q(50.0),
                "p90": q(90.0),
                "p95": q(95.0),
                "p99": q(99.0),
                "max": if empty { Value::Null } else { round3(h.max() as f64 * scale) },
            })
        }
        Sink::Counter(c) => json!({"count": round3(c.sum), "rate": round3(c.sum / secs)}),
        Sink::Rate(r) => json!({
            "rate": round3(r.rate()),
            "passes": r.trues,
            "fails": r.total - r.trues,
        }),
        Sink::Gauge(g) => {
            json!({"value": round3(g.last), "min": round3(g.min), "max": round3(g.max)})
        }
    };
    v["type"] = json!(kind.as_str());
    v["contains"] = json!(contains(kind, metric));
    v
}

/// Entry names and sinks: per metric, per `metric{tag:value}`, per threshold submetric.
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

/// The `vus` gauge as the sum over workers (from the time series): last, min, max.
fn vus_stats(r: &RunReport) -> Value {
    let pts = &r.timeseries.points;
    let last = pts.last().map_or(0, |p| p.vus);
    let min = pts.iter().map(|p| p.vus).min().unwrap_or(0);
    let max = pts.iter().map(|p| p.vus).max().unwrap_or(0);
    json!({"type": "gauge", "contains": "default", "value": last, "min": min, "max": max})
}

/// The whole `summary.json` document.
pub fn summary_json(r: &RunReport, rig: &RigInfo, host: &HostInfo) -> Value {
    let extra: Vec<(String, Vec<(String, String)>)> = r
        .plan
        .parsed_thresholds()
        .unwrap_or_default()
        .into_iter()
        .map(|(m, _)| (m.metric, m.filter))
        .collect();
    let mut metrics = Map::new();
    for (entry, metric, sink) in metric_entries(&r.total, &extra) {
        metrics.insert(entry, sink_stats(&metric, &sink, r.elapsed));
    }
    metrics.insert(builtin::VUS.into(), vus_stats(r));
    let max_vus = r.plan.scenario.max_vus();
    metrics.insert(
        builtin::VUS_MAX.into(),
        json!({"type": "gauge", "contains": "default", "value": max_vus, "min": max_vus, "max": max_vus}),
    );
    let mut histograms = Map::new();
    for (key, sink) in &r.total.series {
        if let Sink::Trend(t) = sink {
            let Ok(bytes) = t.encode() else { continue };
            let tags: Map<String, Value> = key
                .tags
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            histograms.insert(
                key.to_string(),
                json!({
                    "metric": key.metric,
                    "tags": tags,
                    "unit": if is_time(&key.metric) { "us" } else { "1" },
                    "significant_digits": barrage_core::sink::SIGFIG,
                    "hdr_v2_deflate_base64": base64::engine::general_purpose::STANDARD.encode(bytes),
                }),
            );
        }
    }
    let thresholds: Vec<Value> = r
        .thresholds
        .iter()
        .map(|o| {
            json!({
                "metric": o.metric,
                "threshold": o.source,
                "ok": o.ok,
                "observed": o.observed.map_or(Value::Null, round3),
                "abort_on_fail": o.abort_on_fail,
            })
        })
        .collect();
    let workers: Vec<Value> = r
        .workers
        .iter()
        .map(|w| {
            json!({
                "id": w.id,
                "host": w.host,
                "pid": w.pid,
                "core": w.core,
                "version": w.version,
                "segment": w.segment.map(|s| s.to_string()),
                "clock_offset_us": w.clock_offset_us,
                "rtt_us": w.rtt_us,
                "iterations": w.iterations,
                "requests": w.requests,
                "snapshots": w.snapshots,
                "done_iterations": w.done_iterations,
                "lost": w.lost.as_ref().map(|l| json!({
                    "at": rfc3339(l.at),
                    "after_s": round3(l.at.duration_since(r.start).unwrap_or_default().as_secs_f64()),
                    "reason": l.reason,
                })),
            })
        })
        .collect();
    let plan = serde_json::from_str::<Value>(&r.plan.to_json()).unwrap_or(Value::Null);
    json!({
        "barrage": rig,
        "host": host,
        "target": {
            "url": r.plan.target.url,
            "runtime": r.plan.target.runtime,
            "version": r.plan.target.version,
            "llm": r.plan.target.llm,
            "tier": r.plan.target.tier,
        },
        "plan": plan,
        "plan_hash": r.plan.hash(),
        "start": rfc3339(r.start),
        "end": rfc3339(r.end),
        "duration_s": round3(r.elapsed.as_secs_f64()),
        "result": {
            "end_reason": r.end_reason.describe(),
            "exit_code": r.exit_code(),
            "thresholds_ok": !r.thresholds_failed(),
            "late_snapshots": r.late_snapshots,
        },
        "workers": workers,
        "metrics": metrics,
        "thresholds": thresholds,
        "histograms": histograms,
        "timeseries": r.timeseries.to_json(),
    })
}

use barrage_core::format::{fmt_bytes, fmt_ms, fmt_num};

fn stat_line(name: &str, s: &Value) -> String {
    let f = |k: &str| s[k].as_f64().unwrap_or(f64::NAN);
    let time = s["contains"] == "time";
    let v = |k: &str| {
        if time {
            fmt_ms(f(k))
        } else {
            fmt_num(f(k))
        }
    };
    match s["type"].as_str() {
        Some("trend") => format!(
            "avg={} min={} med={} max={} p(90)={} p(95)={} p(99)={}",
            v("avg"),
            v("min"),
            v("med"),
            v("max"),
            v("p90"),
            v("p95"),
            v("p99")
        ),
        Some("counter") if s["contains"] == "data" => {
            format!("{} {}/s", fmt_bytes(f("count")), fmt_bytes(f("rate")))
        }
        Some("counter") => format!("{} {:.2}/s", fmt_num(f("count")), f("rate")),
        Some("rate") => {
            let passes = s["passes"].as_u64().unwrap_or(0);
            let total = passes + s["fails"].as_u64().unwrap_or(0);
            let _ = name;
            format!("{:.2}% {passes} out of {total}", f("rate") * 100.0)
        }
        _ => format!(
            "{} min={} max={}",
            fmt_num(f("value")),
            fmt_num(f("min")),
            fmt_num(f("max"))
        ),
    }
}

/// The human summary (k6-like), ending with `results: <path>`.
pub fn render_text(summary: &Value, path: &Path) -> String {
    let mut out = String::new();
    let dots = |name: &str, width: usize| {
        format!("{name}{}", ".".repeat(width.saturating_sub(name.len()) + 2))
    };
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "  target: {} ({} v{}, llm {})",
        summary["target"]["url"].as_str().unwrap_or(""),
        summary["target"]["runtime"].as_str().unwrap_or(""),
        summary["target"]["version"].as_str().unwrap_or(""),
        summary["target"]["llm"].as_str().unwrap_or("")
    );
    let workers = summary["workers"].as_array().cloned().unwrap_or_default();
    let lost: Vec<&Value> = workers.iter().filter(|w| !w["lost"].is_null()).collect();
    let _ = writeln!(
        out,
        "  workers: {} ({} lost)   duration: {}s   end: {}",
        workers.len(),
        lost.len(),
        summary["duration_s"],
        summary["result"]["end_reason"].as_str().unwrap_or("")
    );
    for w in &lost {
        let _ = writeln!(
            out,
            "    lost {} after {}s: {}",
            w["id"].as_str().unwrap_or(""),
            w["lost"]["after_s"],
            w["lost"]["reason"].as_str().unwrap_or("")
        );
    }
    let thresholds = summary["thresholds"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !thresholds.is_empty() {
        let _ = writeln!(out, "\n  █ THRESHOLDS\n");
        let width = thresholds
            .iter()
            .map(|t| t["metric"].as_str().unwrap_or("").len())
            .max()
            .unwrap_or(0);
        for t in &thresholds {
            let mark = if t["ok"] == true { "✓" } else { "✗" };
            let observed = match t["observed"].as_f64() {
                Some(x) => format!("{x}"),
                None => "no data".into(),
            };
            let _ = writeln!(
                out,
                "    {mark} {} '{}' observed={observed}",
                dots(t["metric"].as_str().unwrap_or(""), width),
                t["threshold"].as_str().unwrap_or("")
            );
        }
    }
    let _ = writeln!(out, "\n  █ METRICS\n");
    if let Some(metrics) = summary["metrics"].as_object() {
        // metrics, plus the submetrics thresholds name (summary.json has every submetric)
        let named: BTreeSet<&str> = thresholds
            .iter()
            .filter_map(|t| t["metric"].as_str())
            .collect();
        let shown: Vec<(&String, &Value)> = metrics
            .iter()
            .filter(|(k, _)| !k.contains('{') || named.contains(k.as_str()))
            .collect();
        let width = shown.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (name, s) in shown {
            let _ = writeln!(out, "    {}: {}", dots(name, width), stat_line(name, s));
        }
    }
    let _ = writeln!(out, "\nresults: {}", path.display());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{EndReason, Lost, WorkerRecord};
    use crate::thresholds::ThresholdSet;
    use crate::timeseries::{TimePoint, TimeSeries};
    use barrage_core::{Plan, Profile, SeriesKey};

    fn report() -> RunReport {
        let mut plan = Plan::profile(Profile::Default);
        plan.thresholds.insert(
            "http_reqs".into(),
            vec![barrage_core::threshold::ThresholdSpec::Expr(
                "count<1".into(),
            )],
        );
        let mut total = Snapshot::default();
        let key = |op: &str, st: &str| {
            SeriesKey::with_tags(
                builtin::HTTP_REQ_DURATION,
                [("operation", op), ("status", st)],
            )
        };
        for ms in 1..=100u64 {
            total.add(
                key("run_wait", "200"),
                MetricKind::Trend,
                (ms * 1000) as f64,
            );
            total.add(key("get_state", "200"), MetricKind::Trend, 2000.0);
            total.add(SeriesKey::new(builtin::HTTP_REQS), MetricKind::Counter, 2.0);
            total.add(
                SeriesKey::new(builtin::HTTP_REQ_FAILED),
                MetricKind::Rate,
                0.0,
            );
        }
        let set = ThresholdSet::from_plan(&plan).unwrap();
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let elapsed = Duration::from_secs(10);
        let thresholds = set.evaluate(&total, elapsed);
        let snap = total.clone();
        RunReport {
            plan,
            start,
            end: start + elapsed,
            elapsed,
            timeseries: TimeSeries {
                interval_ms: 1000,
                start_unix_us: 0,
                points: vec![TimePoint::from_interval(0, &Snapshot { vus: 3, ..snap }, 1)],
            },
            total,
            workers: vec![WorkerRecord {
                id: "w1".into(),
                host: "h".into(),
                pid: 1,
                core: 0,
                version: "0.1.0".into(),
                segment: Some(barrage_core::Segment::FULL),
                clock_offset_us: 0,
                rtt_us: 10,
                iterations: 5,
                requests: 200,
                snapshots: 10,
                done_iterations: None,
                lost: Some(Lost {
                    at: start + Duration::from_secs(4),
                    reason: "stream broke".into(),
                }),
            }],
            thresholds,
            end_reason: EndReason::Completed,
            late_snapshots: 0,
        }
    }

    #[test]
    fn data_counters_print_as_bytes() {
        let data = json!({"type": "counter", "contains": "data", "count": 77_222_056.0, "rate": 857_877.37});
        assert_eq!(stat_line("data_received", &data), "77 MB 858 kB/s");
        let reqs = json!({"type": "counter", "contains": "default", "count": 200.0, "rate": 20.0});
        assert_eq!(stat_line("http_reqs", &reqs), "200 20.00/s");
    }

    #[test]
    fn summary_document() {
        let r = report();
        let s = summary_json(&r, &crate::meta::rig(), &crate::meta::host());
        let m = &s["metrics"];
        assert_eq!(m["http_req_duration"]["count"], 200);
        assert_eq!(m["http_req_duration{operation:run_wait}"]["count"], 100);
        let p95 = m["http_req_duration{operation:run_wait}"]["p95"]
            .as_f64()
            .unwrap();
        assert!((p95 - 95.0).abs() <= 0.1, "{p95}"); // HDR: 3 significant digits
        assert_eq!(m["http_req_duration{status:200}"]["count"], 200);
        assert_eq!(m["http_req_duration"]["contains"], "time");
        assert_eq!(m["http_reqs"]["count"], 200.0);
        assert_eq!(m["http_reqs"]["rate"], 20.0);
        assert_eq!(m["http_req_failed"]["fails"], 100);
        assert_eq!(m["vus"]["value"], 3);
        assert_eq!(m["vus_max"]["value"], 5);
        assert_eq!(s["result"]["exit_code"], 99);
        assert_eq!(s["workers"][0]["lost"]["after_s"], 4.0);
        assert_eq!(s["start"], "2023-11-14T22:13:20.000Z");
        // the histogram decodes to the same percentiles
        let h = &s["histograms"]["http_req_duration{operation:run_wait,status:200}"];
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(h["hdr_v2_deflate_base64"].as_str().unwrap())
            .unwrap();
        let t = barrage_core::sink::TrendSink::decode(&bytes).unwrap();
        assert_eq!(t.count(), 100);
        assert_eq!(t.percentile(95.0) / 1000.0, p95);
        let failed = s["thresholds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["metric"] == "http_reqs")
            .unwrap();
        assert_eq!(failed["ok"], false);
        let text = render_text(&s, Path::new("results/x.summary.json"));
        assert!(text.contains("✗ http_reqs"), "{text}");
        assert!(text.contains("✓ http_req_failed"), "{text}");
        assert!(text.contains("lost w1 after 4"), "{text}");
        assert!(text.trim_end().ends_with("results: results/x.summary.json"));
    }
}

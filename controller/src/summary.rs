//! The controller's end of a run: its [`RunReport`] handed to core's one summary model
//! ([`barrage_core::summary::assemble`]); the layout is documented there and in
//! `docs/summary.schema.json`.
use crate::report::{RunReport, WorkerRecord};
use barrage_core::summary::{self, LostWorker, RunFacts, RunMode, Summary, WorkerSummary};
use barrage_core::telemetry::TargetSummary;
use std::time::SystemTime;

fn worker_summary(w: &WorkerRecord, start: SystemTime) -> WorkerSummary {
    WorkerSummary {
        id: w.id.clone(),
        host: w.host.clone(),
        pid: w.pid,
        core: w.core,
        version: w.version.clone(),
        segment: w.segment.map(|s| s.to_string()),
        clock_offset_us: w.clock_offset_us,
        rtt_us: w.rtt_us,
        iterations: w.iterations,
        requests: w.requests,
        snapshots: w.snapshots,
        done_iterations: w.done_iterations,
        health: w.health.clone(),
        lost: w.lost.as_ref().map(|l| LostWorker {
            at: summary::rfc3339(l.at),
            after_s: (l.at.duration_since(start).unwrap_or_default().as_secs_f64() * 1000.0)
                .round()
                / 1000.0,
            reason: l.reason.clone(),
        }),
    }
}

/// The run's [`Summary`], with what the target consumed when it was measured.
pub fn summarize(r: &RunReport, target_telemetry: Option<TargetSummary>) -> Summary {
    summary::assemble(RunFacts {
        mode: RunMode::Controller,
        plan: &r.plan,
        rig: summary::rig(env!("BARRAGE_GIT_SHA")),
        host: summary::host(),
        start: r.start,
        end: r.end,
        elapsed: r.elapsed,
        total: &r.total,
        timeseries: &r.timeseries,
        stages: Some(&r.stages),
        workers: r
            .workers
            .iter()
            .map(|w| worker_summary(w, r.start))
            .collect(),
        verdicts: &r.thresholds,
        end_reason: r.end_reason.describe(),
        exit_code: r.exit_code(),
        late_snapshots: r.late_snapshots,
        target_telemetry,
        validity: r.validity.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{EndReason, Lost, WorkerRecord};
    use barrage_core::metrics::builtin;
    use barrage_core::threshold::ThresholdSet;
    use barrage_core::timeseries::{TimePoint, TimeSeries};
    use barrage_core::{MetricKind, Plan, Profile, SeriesKey, Snapshot};
    use std::time::Duration;

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
            stages: barrage_core::stages::StageBook::new(&plan.scenario, plan.interval),
            plan,
            start,
            end: start + elapsed,
            elapsed,
            timeseries: TimeSeries {
                interval_ms: 1000,
                start_unix_us: 0,
                points: vec![TimePoint::from_interval(0, &Snapshot { vus: 3, ..snap }, 1)],
                ladder: Default::default(),
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
                health: None,
                lost: Some(Lost {
                    at: start + Duration::from_secs(4),
                    reason: "stream broke".into(),
                }),
            }],
            thresholds,
            end_reason: EndReason::Completed,
            late_snapshots: 0,
            validity: None,
        }
    }

    #[test]
    fn summary_document() {
        let r = report();
        let s = summarize(&r, None);
        let stat = |name: &str, k: &str| s.metric(name).and_then(|m| m.stat(k)).unwrap();
        assert_eq!(stat("http_req_duration", "count"), 200.0);
        assert_eq!(
            stat("http_req_duration{operation:run_wait}", "count"),
            100.0
        );
        let p95 = stat("http_req_duration{operation:run_wait}", "p95");
        assert!((p95 - 95.0).abs() <= 0.1, "{p95}"); // HDR: 3 significant digits
        assert_eq!(stat("http_req_duration{status:200}", "count"), 200.0);
        assert_eq!(
            s.metric("http_req_duration").unwrap().contains(),
            barrage_core::ValueKind::Time
        );
        assert_eq!(stat("http_reqs", "count"), 200.0);
        assert_eq!(stat("http_reqs", "rate"), 20.0);
        assert_eq!(stat("http_req_failed", "fails"), 100.0);
        assert_eq!(stat("vus", "value"), 3.0);
        assert_eq!(stat("vus_max", "value"), 5.0);
        assert_eq!(s.result.exit_code, 99);
        assert_eq!(s.workers[0].lost.as_ref().unwrap().after_s, 4.0);
        assert_eq!(s.start, "2023-11-14T22:13:20.000Z");
        // the histogram decodes to the same percentiles
        let t = s.histograms["http_req_duration{operation:run_wait,status:200}"]
            .decode()
            .unwrap();
        assert_eq!(t.count(), 100);
        assert_eq!(t.percentile(95.0) / 1000.0, p95);
        let failed = s
            .thresholds
            .iter()
            .find(|t| t.metric == "http_reqs")
            .unwrap();
        assert!(!failed.ok);
        // the file round-trips through the typed model
        let bytes = serde_json::to_vec(&s).unwrap();
        let back = Summary::from_slice(&bytes, std::path::Path::new("x.json")).unwrap();
        assert_eq!(back, s);
        let text = barrage_core::summary::render_text(
            &s,
            Some(std::path::Path::new("results/x.summary.json")),
        );
        assert!(text.contains("✗ http_reqs"), "{text}");
        assert!(text.contains("✓ http_req_failed"), "{text}");
        assert!(text.contains("lost w1 after 4"), "{text}");
        assert!(text.trim_end().ends_with("results: results/x.summary.json"));
    }
}

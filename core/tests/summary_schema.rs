//! `docs/summary.schema.json` is generated from the `Summary` type: this test fails when the
//! committed file differs from what the type says (run it with `BARRAGE_BLESS=1` to rewrite
//! the file after changing the type), and checks a summary against it.
use barrage_core::metrics::builtin;
use barrage_core::summary::{self, RunFacts, RunMode, Summary};
use barrage_core::timeseries::{TimePoint, TimeSeries};
use barrage_core::{MetricKind, Plan, Profile, SeriesKey, Snapshot, ThresholdSet};
use std::path::Path;
use std::time::{Duration, SystemTime};

fn schema_file() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/summary.schema.json")
}

#[test]
fn the_documented_schema_is_the_types_schema() {
    let generated = serde_json::to_string_pretty(&summary::json_schema()).unwrap() + "\n";
    let path = schema_file();
    if std::env::var_os("BARRAGE_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is not the schema of barrage_core::summary::Summary: run \
         `BARRAGE_BLESS=1 cargo test -p barrage-core --test summary_schema` and commit it",
        path.display()
    );
}

fn sample() -> Summary {
    let mut plan = Plan::profile(Profile::Smoke);
    plan.thresholds.clear();
    plan.thresholds.insert(
        "http_req_duration{operation:run_wait}".into(),
        vec![barrage_core::threshold::ThresholdSpec::Expr(
            "p(95)<100".into(),
        )],
    );
    plan.thresholds.insert(
        "agent_flow_duration".into(),
        vec![barrage_core::threshold::ThresholdSpec::Expr(
            "p(95)<1".into(),
        )],
    );
    let mut total = Snapshot::default();
    let op = SeriesKey::with_tags(builtin::HTTP_REQ_DURATION, [("operation", "run_wait")]);
    for ms in 1..=100u64 {
        total.add(op.clone(), MetricKind::Trend, (ms * 1000) as f64);
        total.add(SeriesKey::new(builtin::HTTP_REQS), MetricKind::Counter, 1.0);
        total.add(
            SeriesKey::new(builtin::DATA_RECEIVED),
            MetricKind::Counter,
            1500.0,
        );
        total.add(
            SeriesKey::new(builtin::HTTP_REQ_FAILED),
            MetricKind::Rate,
            if ms <= 2 { 1.0 } else { 0.0 },
        );
    }
    let elapsed = Duration::from_secs(4);
    let verdicts = ThresholdSet::from_plan(&plan)
        .unwrap()
        .evaluate(&total, elapsed);
    let mut ts = TimeSeries {
        interval_ms: 1000,
        ..TimeSeries::default()
    };
    ts.push(TimePoint::from_interval(0, &total, 1));
    let mut stages = barrage_core::stages::StageBook::new(&plan.scenario, plan.interval);
    stages.add(0, &total);
    // a worker that saturated its core: the validity section and its health figures
    let mut health = barrage_core::validity::HealthBook::new(&plan.scenario, plan.interval);
    health.add(
        "w1",
        0,
        Some(&barrage_core::validity::WorkerHealth {
            cpu: 0.99,
            cpu_wall_us: 1_000_000,
            loop_lag_max_us: 40_000,
            loop_lag_p99_us: 30_000,
            iterations_started: 1,
            ..Default::default()
        }),
    );
    let validity = barrage_core::validity::check(&health, &stages, &plan.validity);
    assert!(!validity.valid);
    let worker = summary::WorkerSummary {
        id: "w1".into(),
        host: "h".into(),
        pid: 1,
        core: 0,
        version: "0.1.0".into(),
        segment: Some("[0, 1)".into()),
        clock_offset_us: 0,
        rtt_us: 10,
        iterations: 1,
        requests: 100,
        snapshots: 1,
        done_iterations: Some(1),
        lost: None,
        health: health.worker("w1"),
    };
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    summary::assemble(RunFacts {
        mode: RunMode::Standalone,
        plan: &plan,
        rig: summary::rig("test"),
        host: summary::host(),
        start,
        end: start + elapsed,
        elapsed,
        total: &total,
        timeseries: &ts,
        stages: Some(&stages),
        target_telemetry: None,
        workers: vec![worker],
        verdicts: &verdicts,
        end_reason: "completed".into(),
        exit_code: 97,
        late_snapshots: 0,
        validity: Some(validity),
    })
}

#[test]
fn a_summary_matches_the_schema_and_reads_back() {
    let s = sample();
    let doc = serde_json::to_value(&s).unwrap();
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(schema_file()).unwrap()).unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = v.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    // a summary missing a documented field is refused by the schema
    let mut broken = doc.clone();
    broken.as_object_mut().unwrap().remove("thresholds");
    assert!(!v.is_valid(&broken));
    let mut wrong = doc.clone();
    wrong["metrics"]["http_reqs"]["type"] = "histogram".into();
    assert!(!v.is_valid(&wrong));
    let mut extra = doc.clone();
    extra["surprise"] = 1.into();
    assert!(!v.is_valid(&extra), "an undocumented field is refused");
    // the file reads back into the same model; another schema version is refused by name
    let bytes = serde_json::to_vec(&s).unwrap();
    assert_eq!(Summary::from_slice(&bytes, Path::new("s.json")).unwrap(), s);
    let mut old = doc;
    old["schema_version"] = 0.into();
    let err = Summary::from_slice(&serde_json::to_vec(&old).unwrap(), Path::new("old.json"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("old.json: schema_version 0"), "{err}");
    // the no-data threshold failed, the one with data passed; the text says both
    let th = |m: &str| s.thresholds.iter().find(|t| t.metric == m).unwrap();
    assert!(th("http_req_duration{operation:run_wait}").ok);
    assert_eq!(th("agent_flow_duration").observed, None);
    assert!(!th("agent_flow_duration").ok);
    let text = summary::render_text(&s, None);
    // an invalid run says so before any figure, naming the worker and the stage
    let invalid = text.find("INVALID RUN").unwrap_or_else(|| panic!("{text}"));
    assert!(invalid < text.find("target:").unwrap(), "{text}");
    assert!(
        text.contains(
            "✗ worker w1, stage 0 (plateau): worker_cpu 99 % of a core, bound 90 % of a core"
        ),
        "{text}"
    );
    assert!(text.contains("(exit code 97)"), "{text}");
    assert_eq!(s.workers[0].health.as_ref().unwrap().cpu_max_pct, 99.0);
    assert!(text.contains("✗ agent_flow_duration"), "{text}");
    assert!(text.contains("observed=no data"), "{text}");
    assert!(text.contains("data_received"), "{text}");
    assert!(
        text.contains("150 kB 38 kB/s"),
        "bytes as k6 prints them\n{text}"
    );
    // the exact distribution is in the file: percentiles recompute from it
    let h = s.histogram("http_req_duration", &[]).unwrap().unwrap();
    assert_eq!(h.count(), 100);
    assert_eq!(
        s.metric("http_req_duration{operation:run_wait}")
            .unwrap()
            .stat("p(95)"),
        Some(h.percentile(95.0) / 1000.0)
    );
}

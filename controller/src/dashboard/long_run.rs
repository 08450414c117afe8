//! The dashboard of a run long enough for its time series to merge rows: the hub's real
//! path (a `TimeSeries` pushed interval by interval, a tick after each, a telemetry reading
//! before each close) must count intervals, not rows, and chart every row over its span at
//! its own rate, with the target's mean load over it.
use super::charts;
use super::prometheus;
use super::state::{LiveFeed, RunInfo, RunPhase, TargetLoad, Tick};
use crate::progress::Status;
use crate::timeseries::{TimePoint, TimeSeries};
use barrage_core::metrics::builtin;
use barrage_core::{MetricKind, SeriesKey, Snapshot};
use std::time::Duration;

/// 1 min intervals: after 6 h the oldest rows merge in pairs, so the live window (the last
/// rows) holds rows of 2 intervals beside rows of one.
const INTERVAL_MS: u32 = 60_000;
const INTERVALS: u64 = 900;

/// Requests and failures in interval `q` (known, so a row's rate is too).
fn requests(q: u64) -> u64 {
    60 * (1 + q % 5)
}
fn failures(q: u64) -> u64 {
    q % 3
}
/// The target's CPU read at the close of interval `q`.
fn cpu(q: u64) -> f64 {
    (q % 7) as f64 * 10.0
}

fn interval(q: u64) -> Snapshot {
    let mut s = Snapshot {
        seq: q,
        interval_ms: INTERVAL_MS,
        vus: 3,
        vus_max: 3,
        ..Snapshot::default()
    };
    for i in 0..requests(q) {
        s.add(SeriesKey::new(builtin::HTTP_REQS), MetricKind::Counter, 1.0);
        let failed = i < failures(q);
        s.add(
            SeriesKey::new(builtin::HTTP_REQ_FAILED),
            MetricKind::Rate,
            if failed { 1.0 } else { 0.0 },
        );
        s.add(
            SeriesKey::with_tags(builtin::HTTP_REQ_DURATION, [("operation", "run_wait")]),
            MetricKind::Trend,
            ((i % 50 + 1) * 1000) as f64,
        );
    }
    s
}

#[test]
fn a_long_runs_merged_rows_are_shown_over_their_span_at_their_rate() {
    let (mut feed, rx) = LiveFeed::new(RunInfo {
        name: "soak".into(),
        interval_ms: u64::from(INTERVAL_MS),
        ..RunInfo::default()
    });
    let mut ts = TimeSeries {
        interval_ms: INTERVAL_MS,
        ..TimeSeries::default()
    };
    let mut total = Snapshot::default();
    for q in 0..INTERVALS {
        let snap = interval(q);
        total.accumulate(&snap).unwrap();
        feed.target_load(TargetLoad {
            cpu_pct: cpu(q),
            rss_bytes: 64 << 20,
        });
        ts.push(TimePoint::from_interval(q, &snap, 1));
        let status = Status {
            elapsed: Duration::from_millis((q + 1) * u64::from(INTERVAL_MS)),
            stage: String::new(),
            vus: 3,
            rps: 0.0,
            flow_p95_ms: f32::NAN,
            error_rate: 0.0,
            workers: 1,
            lost: 0,
            stopping: false,
        };
        feed.tick(Tick {
            phase: RunPhase::Running,
            status: &status,
            total: &total,
            points: &ts.points,
            workers: Vec::new(),
            late_snapshots: 0,
        });
    }
    let s = rx.borrow().clone();
    assert!(ts.rows() < INTERVALS as usize, "the series merged rows");
    assert!(
        s.recent.iter().any(|p| p.span > 1),
        "the live window holds merged rows"
    );
    // intervals, not rows: in the state, its JSON and `/metrics`
    assert_eq!(s.intervals, INTERVALS);
    let json = serde_json::to_value(&*s).unwrap();
    assert_eq!(json["intervals"], INTERVALS);
    let metrics = prometheus::render(&s);
    assert!(
        metrics.contains(&format!("barrage_run_intervals_total {INTERVALS}\n")),
        "{metrics}"
    );
    // the last interval's rates, per second of the time it covers
    let last = INTERVALS - 1;
    let now = s.now.as_ref().unwrap();
    assert_eq!((now.seq, now.span), (last, 1));
    assert_eq!(now.requests_per_s, requests(last) as f64 / 60.0);
    assert_eq!(json["now"]["requests_per_s"], requests(last) as f64 / 60.0);
    assert_eq!(s.totals.requests, (0..INTERVALS).map(requests).sum::<u64>());

    // the charts' data: each row from its start to its end at its own rates, the target's
    // load the mean of the readings of its intervals
    let run = charts::figures(&s);
    let series = &run.series;
    let cpu_col = series.cpu_pct.as_ref().expect("the target was measured");
    assert_eq!(series.rows.len(), s.recent.len());
    for (i, (row, p)) in series.rows.iter().zip(s.recent.iter()).enumerate() {
        let (a, b) = (u64::from(p.seq), p.end_seq());
        assert_eq!(
            (row.start_s, row.end_s),
            (a as f64 * 60.0, b as f64 * 60.0),
            "row {i}"
        );
        let secs = (b - a) as f64 * 60.0;
        let want_rps = (a..b).map(requests).sum::<u64>() as f64 / secs;
        let want_fps = (a..b).map(failures).sum::<u64>() as f64 / secs;
        assert_eq!(
            series.requests_per_s[i],
            Some(want_rps),
            "row {i} ({a}..{b})"
        );
        assert_eq!(
            series.failures_per_s[i],
            Some(want_fps),
            "row {i} ({a}..{b})"
        );
        let want_cpu = (a..b).map(cpu).sum::<f64>() / (b - a) as f64;
        let got = cpu_col[i].unwrap_or_else(|| panic!("row {i} ({a}..{b}) has no reading"));
        assert!(
            (got - want_cpu).abs() < 1e-9,
            "row {i} ({a}..{b}): {got} vs {want_cpu}"
        );
    }
    // the chart's time axis ends at the run's end
    let all = charts::all(&s);
    let rps = all.iter().find(|(n, _)| n == "rps").unwrap();
    let barrage_report::charts::render::Chart::Lines(line) = &rps.1 else {
        panic!("rps is a line chart");
    };
    let end = line.series[0].points.last().unwrap().0;
    assert_eq!(end, INTERVALS as f64 * 60.0);
    assert!(charts::render("rps", &s).unwrap().unwrap().contains("<svg"));
}

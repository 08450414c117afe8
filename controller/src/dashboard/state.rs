//! [`LiveState`]: what the dashboard shows, built by [`LiveFeed`] from what the hub already
//! has each tick (the progress [`Status`], the merged run, the time series, the roster), and
//! published through a `tokio::sync::watch` so the page, the SSE stream and `/metrics` all
//! read one consistent value without ever blocking the hub.
//!
//! Work per tick is small: the cumulative percentiles are recomputed only when an interval
//! closed (once per interval), and nothing is computed at all without `--dashboard`.
use crate::progress::Status;
use crate::timeseries::{intervals_of, TimePoint};
use barrage_core::summary::Summary;
use barrage_core::{Plan, Snapshot};
use barrage_report::figures::Spectrum;
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub use super::views::{interval_view, latencies, spectra, summary_totals, totals};

/// Quantiles of every latency the dashboard and `/metrics` give (`1.0` is the maximum).
pub const QUANTILES: [f64; 5] = [0.5, 0.9, 0.95, 0.99, 1.0];

/// How many recent time-series rows the live charts show (the last hour is one row per
/// interval; older rows of a long run cover several, see `barrage_core::timeseries`).
pub const CHART_WINDOW: usize = 600;

/// Where the run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunPhase {
    /// Waiting for workers to join and be measured.
    Joining,
    /// Assignments sent, waiting for every worker to be ready.
    Starting,
    Running,
    /// Stop or abort sent, waiting for the workers' last figures.
    Stopping,
    /// The coordinator is done; the results are being written.
    Writing,
    /// Results written (see [`LiveState::end`]).
    Finished,
    /// The run could not go on (see [`LiveState::end`]).
    Failed,
}

impl RunPhase {
    pub const ALL: [RunPhase; 7] = [
        RunPhase::Joining,
        RunPhase::Starting,
        RunPhase::Running,
        RunPhase::Stopping,
        RunPhase::Writing,
        RunPhase::Finished,
        RunPhase::Failed,
    ];

    /// The name the page and `/metrics` use (the serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            RunPhase::Joining => "joining",
            RunPhase::Starting => "starting",
            RunPhase::Running => "running",
            RunPhase::Stopping => "stopping",
            RunPhase::Writing => "writing",
            RunPhase::Finished => "finished",
            RunPhase::Failed => "failed",
        }
    }
}

/// What does not change during a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunInfo {
    pub name: String,
    /// The executor in words, e.g. `constant-vus: 2 VUs for 5s`.
    pub scenario: String,
    pub target_url: String,
    pub runtime: String,
    pub version: String,
    pub llm: String,
    pub tier: Option<String>,
    pub interval_ms: u64,
    /// The plan's duration (stages), seconds; the graceful stop comes on top.
    pub duration_s: f64,
    pub expect_workers: usize,
    /// `cpu model, N cores` of the controller's host, for the charts' captions.
    pub hardware: String,
}

impl RunInfo {
    pub fn of(plan: &Plan, expect_workers: usize) -> RunInfo {
        RunInfo {
            name: plan.name.clone(),
            scenario: plan.describe_scenarios(),
            target_url: plan.target.url.clone(),
            runtime: plan.target.runtime.clone(),
            version: plan.target.version.clone(),
            llm: plan.target.llm.clone(),
            tier: plan.target.tier.clone(),
            interval_ms: plan.interval.as_millis() as u64,
            duration_s: plan.duration().as_secs_f64(),
            expect_workers,
            hardware: {
                let h = barrage_core::summary::host();
                format!("{}, {} cores", h.cpu_model, h.cores)
            },
        }
    }
}

/// The last closed interval (the same figures as the progress line): the newest row of the
/// time series, whose rates are per second of the time it covers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IntervalView {
    pub seq: u64,
    /// Intervals the row covers (1: the newest row is always at full resolution, but the
    /// rates divide by its span whatever it is).
    pub span: u64,
    pub vus: u64,
    pub requests_per_s: f64,
    /// Failed requests / requests in the interval, 0..1.
    pub error_rate: f64,
    pub iterations_per_s: f64,
    /// `agent_flow_duration` percentiles, ms (`None`: no flow ended in the interval).
    pub flow_p50_ms: Option<f64>,
    pub flow_p95_ms: Option<f64>,
    pub flow_p99_ms: Option<f64>,
    /// `http_req_duration` p95 over all operations, ms.
    pub req_p95_ms: Option<f64>,
}

/// Cumulative counts of the run so far (the closed intervals, plus late snapshots).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Totals {
    pub requests: u64,
    /// Requests that failed (`http_req_failed` true samples).
    pub failed_requests: u64,
    pub iterations: u64,
    pub interrupted_iterations: u64,
    pub dropped_iterations: u64,
    pub data_sent_bytes: u64,
    pub data_received_bytes: u64,
    pub checks_passed: u64,
    pub checks_failed: u64,
    /// Snapshots that came after their interval closed (in the totals, not the charts).
    pub late_snapshots: u64,
}

/// One latency distribution of the run so far, from the merged HDR histogram.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency {
    /// `http_req_duration{operation}`'s operation, or the metric's name for a whole metric.
    pub name: String,
    pub count: u64,
    /// Sum of the samples, seconds (mean × count).
    pub sum_s: f64,
    /// Value at each of [`QUANTILES`], ms.
    pub quantiles_ms: Vec<f64>,
    /// p95 of the last closed interval, ms (`None`: no sample in it, or not a built-in
    /// operation, whose interval p95 the time series does not keep).
    pub interval_p95_ms: Option<f64>,
}

/// One worker, as the hub sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WorkerHealth {
    pub id: String,
    /// `--name` of the worker, when it gave one.
    pub name: String,
    pub host: String,
    pub pid: u32,
    /// Pinned core, or -1.
    pub core: i32,
    /// `joining`, `ready`, `running`, `done` or `lost`.
    pub state: &'static str,
    pub segment: Option<String>,
    pub snapshots: u64,
    pub last_seq: Option<u64>,
    pub requests: u64,
    /// Liveness checks in a row that heard nothing from it (3 = lost).
    pub silent_intervals: u32,
    pub rtt_us: Option<i64>,
    pub lost_reason: Option<String>,
}

/// Load of the target process itself, when a telemetry sampler measures it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct TargetLoad {
    /// CPU over the last interval, % of one core.
    pub cpu_pct: f64,
    pub rss_bytes: u64,
}

/// The end of the run: where its results are and how to look at them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EndView {
    pub end_reason: String,
    pub exit_code: Option<u8>,
    pub thresholds_ok: Option<bool>,
    /// `summary.json` as written.
    pub summary_path: Option<String>,
    /// The command that turns it into a report.
    pub report_command: Option<String>,
    /// The k6-like text summary, as `barrage` printed it.
    pub text: Option<String>,
    /// Why the run could not go on, when it failed.
    pub error: Option<String>,
}

/// Everything the dashboard shows at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct LiveState {
    pub run: RunInfo,
    pub phase: RunPhase,
    pub elapsed_s: f64,
    /// `stage 2/5 →3`, `graceful stop`, …
    pub stage: String,
    /// Intervals closed so far (the end of the time series' last row: rows and intervals
    /// differ once a long run's older rows merge).
    pub intervals: u64,
    pub now: Option<IntervalView>,
    pub totals: Totals,
    /// Per operation (`http_req_duration{operation}`), then the whole of
    /// `http_req_duration`, `agent_flow_duration` and `iteration_duration`.
    pub latency: Vec<Latency>,
    pub workers: Vec<WorkerHealth>,
    pub target: Option<TargetLoad>,
    pub end: Option<EndView>,
    /// The charts the page can load now (`/charts/{name}.svg`), in order.
    pub charts: Vec<String>,
    /// The last [`CHART_WINDOW`] rows of the time series, for the charts (not sent to the
    /// page as JSON); a row covers `span` intervals.
    #[serde(skip)]
    pub recent: Arc<Vec<TimePoint>>,
    /// The target's load over each of `recent`'s rows (`None`: not measured): the reading
    /// at an interval's close, and for a merged row the mean of its intervals' readings.
    #[serde(skip)]
    pub target_recent: Arc<Vec<Option<TargetLoad>>>,
    /// Percentile spectra of the merged run (`http_req_duration`, `agent_flow_duration`).
    #[serde(skip)]
    pub spectra: Arc<Vec<Spectrum>>,
    /// The written summary, served at `/summary.json` once the run is over.
    #[serde(skip)]
    pub summary: Option<Arc<Summary>>,
}

impl LiveState {
    pub fn new(run: RunInfo) -> LiveState {
        LiveState {
            run,
            phase: RunPhase::Joining,
            elapsed_s: 0.0,
            stage: String::new(),
            intervals: 0,
            now: None,
            totals: Totals::default(),
            latency: Vec::new(),
            workers: Vec::new(),
            target: None,
            end: None,
            charts: Vec::new(),
            recent: Arc::new(Vec::new()),
            target_recent: Arc::new(Vec::new()),
            spectra: Arc::new(Vec::new()),
            summary: None,
        }
    }

    /// The latency named `name` (an operation, or `http_req_duration` etc.).
    pub fn latency(&self, name: &str) -> Option<&Latency> {
        self.latency.iter().find(|l| l.name == name)
    }
}

/// What the hub hands the feed each tick: borrowed, so a run without a dashboard pays
/// nothing and one with a dashboard copies only what changed.
pub struct Tick<'a> {
    pub phase: RunPhase,
    pub status: &'a Status,
    /// The merged run so far.
    pub total: &'a Snapshot,
    /// The time series so far: its rows, in order (see [`LiveState::recent`]).
    pub points: &'a [TimePoint],
    pub workers: Vec<WorkerHealth>,
    pub late_snapshots: u64,
}

/// The publishing half: the hub ticks it (see `coordinator::CoordinatorConfig::live`), and
/// a clone kept by the command publishes the end of the run after the hub is gone.
#[derive(Clone)]
pub struct LiveFeed {
    tx: Arc<watch::Sender<Arc<LiveState>>>,
    /// Intervals closed at the last recomputation; the cumulative figures are recomputed
    /// when it grows (counted in intervals: the row count can stay put while rows merge).
    seen_intervals: u64,
    last_publish: Option<Instant>,
}

/// How often the feed publishes while nothing but the clock changes.
pub const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// The target's load over each of `rows`, from `readings` (`(first interval, end,
/// load)`, in order, each within one row: rows only ever merge whole rows): the mean of the
/// readings inside the row weighted by the intervals they cover, `None` without any.
fn target_over_rows(
    rows: &[TimePoint],
    readings: &[(u64, u64, Option<TargetLoad>)],
) -> Vec<Option<TargetLoad>> {
    rows.iter()
        .map(|row| {
            let (lo, hi) = (u64::from(row.seq), row.end_seq());
            let from = readings.partition_point(|r| r.0 < lo);
            let (mut w, mut cpu, mut rss) = (0.0f64, 0.0f64, 0.0f64);
            for (a, b, l) in readings[from..].iter().take_while(|r| r.1 <= hi) {
                if let Some(l) = l {
                    let k = (b - a) as f64;
                    w += k;
                    cpu += l.cpu_pct * k;
                    rss += l.rss_bytes as f64 * k;
                }
            }
            (w > 0.0).then(|| TargetLoad {
                cpu_pct: cpu / w,
                rss_bytes: (rss / w).round() as u64,
            })
        })
        .collect()
}

/// The folder `barrage report` is suggested to write into: beside the summary, named after it.
fn report_dir(summary: &Path) -> String {
    let name = summary
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("summary.json");
    let stem = name.strip_suffix(".summary.json").unwrap_or(name);
    summary
        .with_file_name(format!("{stem}-report"))
        .display()
        .to_string()
}

impl LiveFeed {
    /// A feed and the receiver the dashboard server reads.
    pub fn new(run: RunInfo) -> (LiveFeed, watch::Receiver<Arc<LiveState>>) {
        let (tx, rx) = watch::channel(Arc::new(LiveState::new(run)));
        (
            LiveFeed {
                tx: Arc::new(tx),
                seen_intervals: 0,
                last_publish: None,
            },
            rx,
        )
    }

    /// Another receiver of the same state.
    pub fn subscribe(&self) -> watch::Receiver<Arc<LiveState>> {
        self.tx.subscribe()
    }

    /// The state now.
    pub fn current(&self) -> Arc<LiveState> {
        self.tx.borrow().clone()
    }

    /// Changes the state in place, under the channel's lock: the hub's tick and a
    /// telemetry sampler (another task, another clone of the feed) never lose each other's
    /// update.
    fn modify(&self, f: impl FnOnce(&mut LiveState)) {
        self.tx.send_modify(|s| f(Arc::make_mut(s)));
    }

    /// One tick of the hub. Publishes when an interval closed, the phase or a worker
    /// changed, or [`PUBLISH_EVERY`] passed; the cumulative figures are recomputed only
    /// when an interval closed.
    pub fn tick(&mut self, t: Tick<'_>) {
        let prev = self.current();
        let intervals = intervals_of(t.points);
        let new_points = intervals != self.seen_intervals;
        let due = self
            .last_publish
            .is_none_or(|l| l.elapsed() >= PUBLISH_EVERY);
        if !(new_points || due || prev.phase != t.phase || prev.workers != t.workers) {
            return;
        }
        // the merged figures are computed outside the channel's lock, then applied
        let merged = new_points.then(|| {
            let interval_ms = prev.run.interval_ms.min(u64::from(u32::MAX)) as u32;
            let from = t.points.len().saturating_sub(CHART_WINDOW);
            (
                t.points.last().map(|p| interval_view(p, interval_ms)),
                totals(t.total, t.late_snapshots),
                latencies(t.total, t.points.last()),
                t.points[from..].to_vec(),
                spectra(t.total),
            )
        });
        let seen = self.seen_intervals;
        self.seen_intervals = intervals;
        self.modify(|s| {
            s.phase = t.phase;
            s.elapsed_s = t.status.elapsed.as_secs_f64();
            s.stage = t.status.stage.clone();
            s.workers = t.workers;
            if let Some((now, totals, latency, recent, spectra)) = merged {
                s.intervals = intervals;
                s.now = now;
                s.totals = totals;
                s.latency = latency;
                // the readings so far, over the rows they were taken for, then the reading
                // now over each interval that closed since
                let mut readings: Vec<(u64, u64, Option<TargetLoad>)> = s
                    .recent
                    .iter()
                    .zip(s.target_recent.iter())
                    .map(|(p, l)| (u64::from(p.seq), p.end_seq(), *l))
                    .collect();
                readings.extend((seen..intervals).map(|q| (q, q + 1, s.target)));
                s.target_recent = Arc::new(target_over_rows(&recent, &readings));
                s.recent = Arc::new(recent);
                s.spectra = Arc::new(spectra);
                s.charts = super::charts::names(s);
            }
        });
        self.last_publish = Some(Instant::now());
    }

    /// The target's own load, from a telemetry sampler (one reading per interval): shown
    /// beside the run's figures, in `/metrics`, and charted per interval (the reading that
    /// is the latest when an interval closes).
    pub fn target_load(&self, load: TargetLoad) {
        self.modify(|s| s.target = Some(load));
    }

    /// The coordinator is done; results are being written.
    pub fn writing(&self) {
        self.modify(|s| s.phase = RunPhase::Writing);
    }

    /// The run is over and its summary was written to `path`: the page shows the final
    /// figures (the summary's, exact: the totals become its totals) and how to make the
    /// report.
    pub fn finished(&self, summary: &Summary, path: &Path) {
        let end = EndView {
            end_reason: summary.result.end_reason.clone(),
            exit_code: Some(summary.result.exit_code),
            thresholds_ok: Some(summary.result.thresholds_ok),
            summary_path: Some(path.display().to_string()),
            report_command: Some(format!(
                "barrage report {} --out {}",
                path.display(),
                report_dir(path)
            )),
            text: Some(barrage_core::summary::render_text(summary, Some(path))),
            error: None,
        };
        let totals = summary_totals(summary, summary.result.late_snapshots);
        let summary = Arc::new(summary.clone());
        self.modify(|s| {
            s.totals = totals;
            s.phase = RunPhase::Finished;
            s.end = Some(end);
            s.summary = Some(summary);
        });
    }

    /// The run could not go on: the page says why.
    pub fn failed(&self, error: &str) {
        self.modify(|s| {
            s.phase = RunPhase::Failed;
            s.end = Some(EndView {
                end_reason: "failed".into(),
                error: Some(error.to_string()),
                ..EndView::default()
            });
        });
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use barrage_core::metrics::builtin;
    use barrage_core::{MetricKind, SeriesKey, Snapshot};

    fn op(o: &str) -> SeriesKey {
        SeriesKey::with_tags(builtin::HTTP_REQ_DURATION, [("operation", o)])
    }

    /// A merged run: `run_wait` takes 1..=100 ms, `get_state` 5 ms, over two status series.
    pub fn merged() -> Snapshot {
        let mut s = Snapshot::default();
        for ms in 1..=100u64 {
            let status = if ms % 2 == 0 { "200" } else { "201" };
            let key = SeriesKey::with_tags(
                builtin::HTTP_REQ_DURATION,
                [("operation", "run_wait"), ("status", status)],
            );
            s.add(key, MetricKind::Trend, (ms * 1000) as f64);
            s.add(op("get_state"), MetricKind::Trend, 5000.0);
            s.add(SeriesKey::new(builtin::HTTP_REQS), MetricKind::Counter, 2.0);
            s.add(
                SeriesKey::new(builtin::HTTP_REQ_FAILED),
                MetricKind::Rate,
                if ms <= 4 { 1.0 } else { 0.0 },
            );
            s.add(
                SeriesKey::new(builtin::HTTP_REQ_FAILED),
                MetricKind::Rate,
                0.0,
            );
        }
        s.add(
            SeriesKey::new(builtin::ITERATIONS),
            MetricKind::Counter,
            10.0,
        );
        s.add(
            SeriesKey::new(builtin::DATA_SENT),
            MetricKind::Counter,
            4096.0,
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::merged;
    use super::*;

    #[test]
    fn totals_and_latencies_come_from_the_merged_run() {
        let s = merged();
        let t = totals(&s, 3);
        assert_eq!(
            (
                t.requests,
                t.failed_requests,
                t.iterations,
                t.data_sent_bytes,
                t.late_snapshots
            ),
            (200, 4, 10, 4096, 3)
        );
        let l = latencies(&s, None);
        let names: Vec<&str> = l.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["get_state", "run_wait", "http_req_duration"]);
        let rw = &l[1];
        // both status series of run_wait merged: 100 samples, 1..=100 ms
        assert_eq!(rw.count, 100);
        let want = [50.0, 90.0, 95.0, 99.0, 100.0];
        for (got, want) in rw.quantiles_ms.iter().zip(want) {
            // HDR, 3 significant digits: within 0.1 %
            assert!((got - want).abs() <= want * 1e-3, "{got} vs {want}");
        }
        assert!((rw.sum_s - 5.05).abs() < 5.05 * 1e-3, "{}", rw.sum_s);
        assert_eq!(l[2].count, 200);
    }

    #[test]
    fn the_feed_recomputes_when_an_interval_closes_and_ends_with_the_summary() {
        let plan = Plan::profile(barrage_core::Profile::Smoke);
        let (mut feed, rx) = LiveFeed::new(RunInfo::of(&plan, 1));
        let status = Status {
            elapsed: Duration::from_secs(2),
            stage: "constant-vus".into(),
            vus: 1,
            rps: 200.0,
            flow_p95_ms: f32::NAN,
            error_rate: 0.02,
            workers: 1,
            lost: 0,
            stopping: false,
        };
        let total = merged();
        let point = TimePoint::from_interval(0, &total, 1);
        feed.tick(Tick {
            phase: RunPhase::Running,
            status: &status,
            total: &total,
            points: &[point],
            workers: Vec::new(),
            late_snapshots: 0,
        });
        let s = rx.borrow().clone();
        assert_eq!(s.phase, RunPhase::Running);
        assert_eq!(s.totals.requests, 200);
        assert_eq!(s.intervals, 1);
        let now = s.now.as_ref().unwrap();
        assert!((now.error_rate - 0.02).abs() < 1e-9);
        assert_eq!(s.latency("run_wait").unwrap().count, 100);
        assert!(s.latency("run_wait").unwrap().interval_p95_ms.is_some());
        // an immediate second tick with nothing new publishes nothing
        let before = Arc::as_ptr(&rx.borrow());
        feed.tick(Tick {
            phase: RunPhase::Running,
            status: &status,
            total: &total,
            points: &[point],
            workers: Vec::new(),
            late_snapshots: 0,
        });
        assert_eq!(Arc::as_ptr(&rx.borrow()), before);
        feed.failed("the worker service failed");
        let s = rx.borrow().clone();
        assert_eq!(s.phase, RunPhase::Failed);
        assert_eq!(
            s.end.as_ref().unwrap().error.as_deref(),
            Some("the worker service failed")
        );
        // the cumulative figures stay
        assert_eq!(s.totals.requests, 200);
    }

    #[test]
    fn target_load_is_charted_per_interval_from_the_reading_at_its_close() {
        let (mut feed, rx) = LiveFeed::new(RunInfo {
            interval_ms: 1000,
            ..RunInfo::default()
        });
        let status = Status {
            elapsed: Duration::from_secs(1),
            stage: String::new(),
            vus: 1,
            rps: 0.0,
            flow_p95_ms: f32::NAN,
            error_rate: 0.0,
            workers: 1,
            lost: 0,
            stopping: false,
        };
        let total = merged();
        let points: Vec<TimePoint> = (0..3)
            .map(|i| TimePoint::from_interval(i, &total, 1))
            .collect();
        let tick = |feed: &mut LiveFeed, n: usize| {
            feed.tick(Tick {
                phase: RunPhase::Running,
                status: &status,
                total: &total,
                points: &points[..n],
                workers: Vec::new(),
                late_snapshots: 0,
            })
        };
        // interval 0 closes before any reading; 1 and 2 after two readings
        tick(&mut feed, 1);
        assert!(!rx.borrow().charts.contains(&"cpu".to_string()));
        feed.target_load(TargetLoad {
            cpu_pct: 40.0,
            rss_bytes: 64 << 20,
        });
        tick(&mut feed, 2);
        feed.target_load(TargetLoad {
            cpu_pct: 80.0,
            rss_bytes: 96 << 20,
        });
        tick(&mut feed, 3);
        let s = rx.borrow().clone();
        let cpu: Vec<Option<f64>> = s
            .target_recent
            .iter()
            .map(|t| t.map(|t| t.cpu_pct))
            .collect();
        assert_eq!(cpu, [None, Some(40.0), Some(80.0)]);
        assert_eq!(s.recent.len(), s.target_recent.len());
        assert!(s.charts.contains(&"cpu".to_string()) && s.charts.contains(&"rss".to_string()));
        let run = super::super::charts::figures(&s);
        assert_eq!(run.series.rss_mib, Some(vec![None, Some(64.0), Some(96.0)]));
        let text = super::super::prometheus::render(&s);
        assert!(text.contains("barrage_target_cpu_percent 80\n"), "{text}");
    }

    #[test]
    fn the_report_folder_sits_beside_the_summary() {
        assert_eq!(
            report_dir(Path::new("results/ts-v1-mock-5vu.summary.json")),
            "results/ts-v1-mock-5vu-report"
        );
        assert_eq!(report_dir(Path::new("x.json")), "x.json-report");
    }
}

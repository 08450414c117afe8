//! [`ChartData`]: the figures every chart and table of a report is drawn from, built from
//! summaries ([`ChartData::from_summaries`]) or filled by hand from live data (the
//! dashboard). Plain numbers only, so a chart never reaches back into a summary.
//!
//! Percentiles are computed from the stored HDR histograms (exact merges of every worker's
//! samples) and rounded to 3 decimals like the summary's own statistics, so a figure in the
//! report equals the one in `summary.json` wherever both exist.
use crate::ReportError;
use barrage_core::metrics::{builtin, MetricKind, ValueKind};
use barrage_core::sink::TrendSink;
use barrage_core::summary::Summary;
use barrage_core::telemetry::TargetPoint;
use barrage_core::timeseries::{TimePoint, TimeSeries, TimeSeriesDoc};
use std::collections::BTreeSet;

/// Everything the charts show, for one or more runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChartData {
    pub runs: Vec<RunFigures>,
}

/// One run's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFigures {
    /// Unique within a report: the summary's file stem, or the runtime.
    pub name: String,
    pub runtime: String,
    pub version: String,
    pub tier: Option<String>,
    /// `cpu model, N cores` of the measuring host.
    pub hardware: String,
    pub duration_s: f64,
    /// `http_reqs` per second of run time; `None` without requests.
    pub requests_per_s: Option<f64>,
    /// `http_reqs` per CPU-second of the target, when the target's CPU was measured.
    pub requests_per_cpu_s: Option<f64>,
    /// Share of failed requests (`http_req_failed`), 0..1.
    pub error_rate: Option<f64>,
    /// `http_req_duration` over all operations.
    pub requests: Option<Percentiles>,
    /// `agent_flow_duration`.
    pub flow: Option<Percentiles>,
    /// `http_req_duration{operation:…}`, in the flow's order.
    pub operations: Vec<(String, Percentiles)>,
    pub series: SeriesFigures,
    /// Percentile spectra: `http_req_duration` and `agent_flow_duration` when present.
    pub spectra: Vec<Spectrum>,
}

/// Percentiles of one trend, ms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

/// One metric's distribution: `(percentile 0..=100, ms)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Spectrum {
    pub metric: String,
    pub points: Vec<(f64, f64)>,
}

/// A run over time, one value per time-series row (`None`: no sample of that kind). A row
/// covers one interval, or `span` of them once a long run's older rows were merged (see
/// `barrage_core::timeseries`): each value holds over its row's [`RowTime`], and the
/// charts draw it as a step from the row's start to its end.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeriesFigures {
    /// When each row starts and ends.
    pub rows: Vec<RowTime>,
    /// Active VUs (a merged row: the most of its intervals).
    pub vus: Vec<Option<f64>>,
    /// Requests of the row per second of the time it covers.
    pub requests_per_s: Vec<Option<f64>>,
    /// `http_req_duration` p95 of the row, ms (a merged row: the request-weighted mean
    /// of its intervals' p95s, the series' documented approximation).
    pub p95_ms: Vec<Option<f64>>,
    pub failures_per_s: Vec<Option<f64>>,
    /// The target's CPU, % of one core, when measured.
    pub cpu_pct: Option<Vec<Option<f64>>>,
    /// The target's resident memory, MiB, when measured.
    pub rss_mib: Option<Vec<Option<f64>>>,
}

/// The time one row covers: intervals `seq..end_seq`, seconds `start_s..end_s` after the
/// start of interval 0 (from `TimePoint::start_s`/`end_s`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RowTime {
    pub seq: u64,
    pub end_seq: u64,
    pub start_s: f64,
    pub end_s: f64,
}

impl RowTime {
    /// Seconds the row covers.
    pub fn duration_s(&self) -> f64 {
        self.end_s - self.start_s
    }
}

fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The 3-decimal percentiles of a histogram, in the metric's shown unit.
pub fn percentiles(t: &TrendSink, scale: f64) -> Option<Percentiles> {
    (t.count() > 0).then(|| Percentiles {
        count: t.count(),
        p50: r3(t.percentile(50.0) * scale),
        p95: r3(t.percentile(95.0) * scale),
        p99: r3(t.percentile(99.0) * scale),
    })
}

/// The percentile spectrum of a histogram: HdrHistogram's quantile iteration (5 steps per
/// halving of the distance to 100 %), up to 99.999 %, then the maximum.
pub fn spectrum_points(t: &TrendSink, scale: f64) -> Vec<(f64, f64)> {
    let h = &t.hist;
    if h.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<(f64, f64)> = Vec::new();
    for v in h.iter_quantiles(5) {
        let q = v.quantile_iterated_to();
        if q >= 0.99999 {
            break;
        }
        let y = h.highest_equivalent(v.value_iterated_to()) as f64 * scale;
        out.push((q * 100.0, y));
    }
    out.push((100.0, h.max() as f64 * scale));
    out
}

/// Known tier names in size order; others sort after them by name.
const TIER_ORDER: &[&str] = &["xxs", "xs", "s", "m", "l", "xl", "xxl"];

/// Sort key of a tier name.
pub fn tier_key(t: &str) -> (usize, String) {
    let l = t.to_ascii_lowercase();
    let i = TIER_ORDER
        .iter()
        .position(|x| *x == l)
        .unwrap_or(TIER_ORDER.len());
    (i, l)
}

impl RunFigures {
    /// The figures of one summary; `name` makes it unique in a report.
    pub fn from_summary(s: &Summary, name: &str) -> Result<RunFigures, ReportError> {
        let trend =
            |metric: &str, filter: &[(String, String)]| -> Result<Option<TrendSink>, ReportError> {
                Ok(s.histogram(metric, filter)?)
            };
        let scale = |metric: &str| ValueKind::of(metric, MetricKind::Trend).scale();
        let req_scale = scale(builtin::HTTP_REQ_DURATION);
        let requests_trend = trend(builtin::HTTP_REQ_DURATION, &[])?;
        let flow_trend = trend(builtin::AGENT_FLOW_DURATION, &[])?;
        let ops_present: BTreeSet<&str> = s
            .histograms
            .values()
            .filter(|h| h.metric == builtin::HTTP_REQ_DURATION)
            .filter_map(|h| h.tags.get("operation").map(String::as_str))
            .collect();
        // the flow's order first, then any other operation by name
        let mut ops: Vec<&str> = builtin::OPERATIONS
            .iter()
            .copied()
            .filter(|o| ops_present.contains(o))
            .collect();
        ops.extend(
            ops_present
                .iter()
                .filter(|o| !builtin::OPERATIONS.contains(o)),
        );
        let mut operations = Vec::new();
        for op in ops {
            let filter = [("operation".to_string(), op.to_string())];
            if let Some(p) = trend(builtin::HTTP_REQ_DURATION, &filter)?
                .as_ref()
                .and_then(|t| percentiles(t, req_scale))
            {
                operations.push((op.to_string(), p));
            }
        }
        let mut spectra = Vec::new();
        for (metric, t) in [
            (builtin::HTTP_REQ_DURATION, &requests_trend),
            (builtin::AGENT_FLOW_DURATION, &flow_trend),
        ] {
            if let Some(t) = t.as_ref().filter(|t| t.count() > 0) {
                spectra.push(Spectrum {
                    metric: metric.to_string(),
                    points: spectrum_points(t, scale(metric)),
                });
            }
        }
        let requests_per_s = s
            .metric(builtin::HTTP_REQS)
            .and_then(|m| m.stat("rate"))
            .filter(|_| {
                s.metric(builtin::HTTP_REQS)
                    .is_some_and(|m| m.count() > 0.0)
            });
        let error_rate = s
            .metric(builtin::HTTP_REQ_FAILED)
            .filter(|m| m.count() > 0.0)
            .and_then(|m| m.stat("rate"));
        let mut r = RunFigures {
            name: name.to_string(),
            runtime: s.target.runtime.clone(),
            version: s.target.version.clone(),
            tier: s.target.tier.clone(),
            hardware: format!("{}, {} cores", s.host.cpu_model, s.host.cores),
            duration_s: s.duration_s,
            requests_per_s,
            // filled from the summary's target telemetry below
            requests_per_cpu_s: None,
            error_rate,
            requests: requests_trend
                .as_ref()
                .and_then(|t| percentiles(t, req_scale)),
            flow: flow_trend
                .as_ref()
                .and_then(|t| percentiles(t, scale(builtin::AGENT_FLOW_DURATION))),
            operations,
            series: SeriesFigures::from_summary(s),
            spectra,
        };
        if let Some(t) = &s.target_telemetry {
            r.set_target(t.requests_per_cpu_second, &t.points);
        }
        Ok(r)
    }

    /// `runtime` or `runtime tier`.
    pub fn label(&self) -> String {
        match &self.tier {
            Some(t) => format!("{} {}", self.runtime, t),
            None => self.runtime.clone(),
        }
    }
}

impl SeriesFigures {
    /// The summary's time series as rates per second.
    pub fn from_summary(s: &Summary) -> SeriesFigures {
        SeriesFigures::from_timeseries(&s.timeseries)
    }

    /// A stored time series (a summary's, a checkpoint's) as rates per second: read back
    /// into rows (`TimeSeries::from_doc`, which knows the columns), then
    /// [`SeriesFigures::from_points`]. A file without a `seq` column lays its rows end to
    /// end from interval 0.
    pub fn from_timeseries(doc: &TimeSeriesDoc) -> SeriesFigures {
        let mut ts = TimeSeries::from_doc(doc);
        if !doc.columns.iter().any(|c| c == "seq") {
            let mut next = 0u32;
            for p in &mut ts.points {
                p.seq = next;
                next = next.saturating_add(p.span.max(1));
            }
        }
        SeriesFigures::from_points(&ts.points, ts.interval_ms)
    }

    /// Rows of a time series (a summary's, or a live run's) with intervals of
    /// `interval_ms`: each row's time and its counts per second of that time.
    pub fn from_points(points: &[TimePoint], interval_ms: u32) -> SeriesFigures {
        // 3 decimals, as the summary stores them (below HDR's precision anyway)
        let finite = |x: f32| x.is_finite().then(|| r3(f64::from(x)));
        SeriesFigures {
            rows: points
                .iter()
                .map(|p| RowTime {
                    seq: u64::from(p.seq),
                    end_seq: p.end_seq(),
                    start_s: p.start_s(interval_ms),
                    end_s: p.end_s(interval_ms),
                })
                .collect(),
            vus: points.iter().map(|p| Some(f64::from(p.vus))).collect(),
            requests_per_s: points
                .iter()
                .map(|p| Some(p.per_s(p.requests, interval_ms)))
                .collect(),
            p95_ms: points.iter().map(|p| finite(p.req_p95_ms)).collect(),
            failures_per_s: points
                .iter()
                .map(|p| Some(p.per_s(p.failures, interval_ms)))
                .collect(),
            cpu_pct: None,
            rss_mib: None,
        }
    }
}

impl RunFigures {
    /// Adds what the target consumed: requests per CPU-second, and its CPU (% of a core)
    /// and resident memory per time-series row. The target's points are downsampled on
    /// their own (same tiers, not always at the same moment), so a row's figure is the
    /// mean of the points that overlap it, weighted by the intervals they share; a row no
    /// point overlaps is a gap.
    pub fn set_target(&mut self, requests_per_cpu_s: Option<f64>, points: &[TargetPoint]) {
        self.requests_per_cpu_s = requests_per_cpu_s;
        if points.is_empty() {
            return;
        }
        let mut sorted: Vec<&TargetPoint> = points.iter().collect();
        sorted.sort_by_key(|p| p.seq);
        let overlap_mean = |row: &RowTime, f: &dyn Fn(&TargetPoint) -> f64| -> Option<f64> {
            // the first point that ends after the row starts, then those that start before
            // it ends
            let from = sorted.partition_point(|p| p.seq + p.span.max(1) <= row.seq);
            let (mut num, mut den) = (0.0, 0.0);
            for p in sorted[from..].iter().take_while(|p| p.seq < row.end_seq) {
                let shared = (p.seq + p.span.max(1)).min(row.end_seq) - p.seq.max(row.seq);
                num += f(p) * shared as f64;
                den += shared as f64;
            }
            (den > 0.0).then(|| num / den)
        };
        let rows = &self.series.rows;
        self.series.cpu_pct = Some(
            rows.iter()
                .map(|r| overlap_mean(r, &|p| p.cpu_pct))
                .collect(),
        );
        self.series.rss_mib = Some(
            rows.iter()
                .map(|r| overlap_mean(r, &|p| p.rss_bytes as f64 / 1_048_576.0))
                .collect(),
        );
    }
}

impl ChartData {
    /// The figures of summaries, each with its name (unique; see [`unique_names`]).
    pub fn from_summaries(runs: &[(String, Summary)]) -> Result<ChartData, ReportError> {
        let runs = runs
            .iter()
            .map(|(name, s)| RunFigures::from_summary(s, name))
            .collect::<Result<_, _>>()?;
        Ok(ChartData { runs })
    }

    /// Tiers present, in size order.
    pub fn tiers(&self) -> Vec<String> {
        let mut t: Vec<String> = self
            .runs
            .iter()
            .filter_map(|r| r.tier.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        t.sort_by_key(|x| tier_key(x));
        t
    }

    /// Runtimes present, in order of first appearance.
    pub fn runtimes(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in &self.runs {
            if !out.contains(&r.runtime) {
                out.push(r.runtime.clone());
            }
        }
        out
    }

    /// A sweep: every run has a tier, and there are at least two tiers.
    pub fn is_sweep(&self) -> bool {
        self.runs.iter().all(|r| r.tier.is_some()) && self.tiers().len() >= 2
    }

    /// The charts' caption: the hardware (each distinct host once) and the tiers.
    pub fn caption(&self) -> String {
        let mut hw: Vec<&str> = Vec::new();
        for r in &self.runs {
            if !hw.contains(&r.hardware.as_str()) {
                hw.push(&r.hardware);
            }
        }
        let tiers = self.tiers();
        let tiers = match tiers.len() {
            0 => String::new(),
            1 => format!(" · tier {}", tiers[0]),
            _ => format!(" · tiers {}", tiers.join(", ")),
        };
        format!("{}{tiers}", hw.join(" | "))
    }

    /// The run of `runtime` at `tier`.
    pub fn find(&self, runtime: &str, tier: &str) -> Option<&RunFigures> {
        self.runs
            .iter()
            .find(|r| r.runtime == runtime && r.tier.as_deref() == Some(tier))
    }

    /// Operations present in any run, in first-seen order.
    pub fn operations(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in &self.runs {
            for (op, _) in &r.operations {
                if !out.contains(op) {
                    out.push(op.clone());
                }
            }
        }
        out
    }
}

/// Names for files that are unique in a report: the file stem without `.summary`, with
/// `-2`, `-3`… when two stems are equal.
pub fn unique_names(stems: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in stems {
        let base = s.strip_suffix(".summary").unwrap_or(s).to_string();
        let mut name = base.clone();
        let mut k = 2;
        while out.contains(&name) {
            name = format!("{base}-{k}");
            k += 1;
        }
        out.push(name);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_sort_by_size() {
        let mut t = vec!["L", "xs", "custom", "m", "S"];
        t.sort_by_key(|x| tier_key(x));
        assert_eq!(t, vec!["xs", "S", "m", "L", "custom"]);
    }

    #[test]
    fn names_are_unique() {
        let stems = ["a.summary", "a", "b.summary", "a.summary"].map(String::from);
        assert_eq!(unique_names(&stems), vec!["a", "a-2", "b", "a-3"]);
    }

    #[test]
    fn spectrum_ends_at_the_max() {
        let mut t = TrendSink::default();
        for v in 1..=1000u64 {
            t.record(v * 1000);
        }
        let pts = spectrum_points(&t, 1e-3);
        assert_eq!(pts.first().map(|p| p.0), Some(0.0));
        let last = *pts.last().unwrap();
        assert_eq!(last.0, 100.0);
        assert!((last.1 - 1000.0).abs() / 1000.0 < 1e-3, "max {last:?}");
        assert!(pts.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        let p50 = percentiles(&t, 1e-3).unwrap().p50;
        assert!((p50 - 500.0).abs() < 1.0, "p50 {p50}");
    }
}

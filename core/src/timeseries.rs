//! The run's time series: one compact [`TimePoint`] per closed interval, a fixed small set
//! of numbers (no histograms), so memory grows by **84 bytes per interval**: a 24-hour
//! run at 1 s intervals keeps 86 400 points = 7.3 MB.
//!
//! | column             | from the interval's merged snapshot                          |
//! |--------------------|--------------------------------------------------------------|
//! | `vus`              | sum of the reporting workers' active VUs                    |
//! | `requests`         | `http_reqs`                                                  |
//! | `failures`         | true samples of `http_req_failed`                            |
//! | `iterations`       | `iterations`                                                 |
//! | `flow_p50/95/99`   | `agent_flow_duration` percentiles, ms                        |
//! | `req_p95`          | `http_req_duration` p95 over all operations, ms              |
//! | `<op>_p95`         | `http_req_duration{operation:<op>}` p95, ms, per operation   |
use crate::metrics::builtin;
use crate::{Sink, Snapshot};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Number of per-operation columns (`builtin::OPERATIONS`).
pub const N_OPS: usize = builtin::OPERATIONS.len();

/// One closed interval. Percentiles are `NaN` when the interval had no such sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimePoint {
    /// Interval number (0 = the first interval after start).
    pub seq: u32,
    /// Workers whose snapshot of this interval arrived before it closed.
    pub workers: u16,
    pub vus: u32,
    pub requests: u32,
    pub failures: u32,
    pub iterations: u32,
    pub flow_p50_ms: f32,
    pub flow_p95_ms: f32,
    pub flow_p99_ms: f32,
    pub req_p95_ms: f32,
    /// p95 of `http_req_duration{operation:…}`, in `builtin::OPERATIONS` order.
    pub op_p95_ms: [f32; N_OPS],
}

fn counter(s: &Snapshot, metric: &str) -> u32 {
    match s.submetric(metric, &[]) {
        Some(Sink::Counter(c)) => c.sum.max(0.0).min(u32::MAX as f64) as u32,
        _ => 0,
    }
}

fn percentiles_ms<const K: usize>(
    s: &Snapshot,
    metric: &str,
    filter: &[(String, String)],
    ps: [f64; K],
) -> [f32; K] {
    match s.submetric(metric, filter) {
        Some(Sink::Trend(t)) if t.count() > 0 => ps.map(|p| (t.percentile(p) / 1000.0) as f32),
        _ => [f32::NAN; K],
    }
}

impl TimePoint {
    /// The compact form of one interval's merged snapshot.
    pub fn from_interval(seq: u64, snap: &Snapshot, workers: usize) -> TimePoint {
        let failures = match snap.submetric(builtin::HTTP_REQ_FAILED, &[]) {
            Some(Sink::Rate(r)) => r.trues.min(u32::MAX as u64) as u32,
            _ => 0,
        };
        let [flow_p50_ms, flow_p95_ms, flow_p99_ms] =
            percentiles_ms(snap, builtin::AGENT_FLOW_DURATION, &[], [50.0, 95.0, 99.0]);
        let [req_p95_ms] = percentiles_ms(snap, builtin::HTTP_REQ_DURATION, &[], [95.0]);
        let mut op_p95_ms = [f32::NAN; N_OPS];
        for (i, op) in builtin::OPERATIONS.iter().enumerate() {
            let filter = [("operation".to_string(), op.to_string())];
            op_p95_ms[i] = percentiles_ms(snap, builtin::HTTP_REQ_DURATION, &filter, [95.0])[0];
        }
        TimePoint {
            seq: seq.min(u32::MAX as u64) as u32,
            workers: workers.min(u16::MAX as usize) as u16,
            vus: snap.vus.min(u32::MAX as u64) as u32,
            requests: counter(snap, builtin::HTTP_REQS),
            failures,
            iterations: counter(snap, builtin::ITERATIONS),
            flow_p50_ms,
            flow_p95_ms,
            flow_p99_ms,
            req_p95_ms,
            op_p95_ms,
        }
    }
}

/// All closed intervals, in order.
#[derive(Debug, Clone, Default)]
pub struct TimeSeries {
    pub interval_ms: u32,
    /// Start of interval 0, controller clock, µs since the Unix epoch.
    pub start_unix_us: i64,
    pub points: Vec<TimePoint>,
}

fn num(x: f32) -> Option<f64> {
    // 3 decimals are below HDR's precision anyway
    x.is_finite().then(|| (x as f64 * 1000.0).round() / 1000.0)
}

/// The time series as `summary.json` stores it: one row per interval, one number per
/// column (`None` = no sample of that kind in the interval).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeSeriesDoc {
    pub interval_ms: u32,
    /// Start of interval 0, controller clock, µs since the Unix epoch.
    pub start_unix_us: i64,
    /// Column names, in row order (see the module table).
    pub columns: Vec<String>,
    /// Whole numbers are written without a fraction (`3`, not `3.0`).
    #[serde(serialize_with = "whole_numbers")]
    pub rows: Vec<Vec<Option<f64>>>,
}

/// Counts stay integers in the file, as they were measured.
fn whole_numbers<S: serde::Serializer>(rows: &[Vec<Option<f64>>], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    #[derive(Serialize)]
    #[serde(untagged)]
    enum Num {
        Int(i64),
        Float(f64),
    }
    let mut outer = s.serialize_seq(Some(rows.len()))?;
    for row in rows {
        let row: Vec<Option<Num>> = row
            .iter()
            .map(|v| {
                v.map(|x| {
                    if x.fract() == 0.0 && x.abs() < 9e15 {
                        Num::Int(x as i64)
                    } else {
                        Num::Float(x)
                    }
                })
            })
            .collect();
        outer.serialize_element(&row)?;
    }
    outer.end()
}

impl TimeSeriesDoc {
    /// The values of one column, `None` when the column does not exist.
    pub fn column(&self, name: &str) -> Option<Vec<Option<f64>>> {
        let i = self.columns.iter().position(|c| c == name)?;
        Some(
            self.rows
                .iter()
                .map(|r| r.get(i).copied().flatten())
                .collect(),
        )
    }
}

impl TimeSeries {
    pub fn push(&mut self, p: TimePoint) {
        self.points.push(p);
    }

    pub fn last(&self) -> Option<&TimePoint> {
        self.points.last()
    }

    /// Column names of [`TimeSeries::to_doc`]'s rows.
    pub fn columns() -> Vec<String> {
        let mut c: Vec<String> = [
            "seq",
            "workers",
            "vus",
            "requests",
            "failures",
            "iterations",
            "flow_p50_ms",
            "flow_p95_ms",
            "flow_p99_ms",
            "req_p95_ms",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        c.extend(builtin::OPERATIONS.iter().map(|op| format!("{op}_p95_ms")));
        c
    }

    /// The stored form: `{interval_ms, start_unix_us, columns, rows}`.
    pub fn to_doc(&self) -> TimeSeriesDoc {
        let rows = self
            .points
            .iter()
            .map(|p| {
                let mut row = vec![
                    Some(p.seq as f64),
                    Some(p.workers as f64),
                    Some(p.vus as f64),
                    Some(p.requests as f64),
                    Some(p.failures as f64),
                    Some(p.iterations as f64),
                    num(p.flow_p50_ms),
                    num(p.flow_p95_ms),
                    num(p.flow_p99_ms),
                    num(p.req_p95_ms),
                ];
                row.extend(p.op_p95_ms.iter().map(|x| num(*x)));
                row
            })
            .collect();
        TimeSeriesDoc {
            interval_ms: self.interval_ms,
            start_unix_us: self.start_unix_us,
            columns: Self::columns(),
            rows,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MetricKind, SeriesKey};

    #[test]
    fn a_point_is_84_bytes() {
        assert_eq!(std::mem::size_of::<TimePoint>(), 84);
    }

    #[test]
    fn point_from_interval() {
        let mut s = Snapshot::default();
        let op = |o: &str| SeriesKey::with_tags(builtin::HTTP_REQ_DURATION, [("operation", o)]);
        for ms in 1..=100u64 {
            s.add(op("run_wait"), MetricKind::Trend, (ms * 1000) as f64);
            s.add(
                SeriesKey::new(builtin::AGENT_FLOW_DURATION),
                MetricKind::Trend,
                (ms * 10_000) as f64,
            );
            s.add(SeriesKey::new(builtin::HTTP_REQS), MetricKind::Counter, 1.0);
            s.add(
                SeriesKey::new(builtin::HTTP_REQ_FAILED),
                MetricKind::Rate,
                if ms <= 5 { 1.0 } else { 0.0 },
            );
        }
        s.add(
            SeriesKey::new(builtin::ITERATIONS),
            MetricKind::Counter,
            7.0,
        );
        s.vus = 4;
        let p = TimePoint::from_interval(3, &s, 2);
        assert_eq!(
            (
                p.seq,
                p.workers,
                p.vus,
                p.requests,
                p.failures,
                p.iterations
            ),
            (3, 2, 4, 100, 5, 7)
        );
        assert!((p.op_p95_ms[2] - 95.0).abs() < 0.1, "{}", p.op_p95_ms[2]);
        assert!(p.op_p95_ms[0].is_nan());
        assert!((p.flow_p50_ms - 500.0).abs() < 0.5);
        let mut ts = TimeSeries {
            interval_ms: 1000,
            ..Default::default()
        };
        ts.push(p);
        let d = ts.to_doc();
        assert_eq!(d.rows[0][3], Some(100.0));
        assert_eq!(d.rows[0][10], None);
        assert_eq!(d.columns.len(), d.rows[0].len());
        assert_eq!(d.column("requests"), Some(vec![Some(100.0)]));
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(
            json["rows"][0][3],
            serde_json::json!(100),
            "counts stay integers"
        );
        let back: TimeSeriesDoc = serde_json::from_value(json).unwrap();
        assert_eq!(back, d);
    }
}

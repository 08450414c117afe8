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
use barrage_core::metrics::builtin;
use barrage_core::{Sink, Snapshot};
use serde_json::{json, Value};

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

fn num(x: f32) -> Value {
    if x.is_finite() {
        // 3 decimals are below HDR's precision anyway
        json!((x as f64 * 1000.0).round() / 1000.0)
    } else {
        Value::Null
    }
}

impl TimeSeries {
    pub fn push(&mut self, p: TimePoint) {
        self.points.push(p);
    }

    pub fn last(&self) -> Option<&TimePoint> {
        self.points.last()
    }

    /// Column names of [`TimeSeries::to_json`]'s rows.
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

    /// `{interval_ms, start_unix_us, columns, rows}`: one array per interval (null = no
    /// sample of that kind in the interval).
    pub fn to_json(&self) -> Value {
        let rows: Vec<Value> = self
            .points
            .iter()
            .map(|p| {
                let mut row = vec![
                    json!(p.seq),
                    json!(p.workers),
                    json!(p.vus),
                    json!(p.requests),
                    json!(p.failures),
                    json!(p.iterations),
                    num(p.flow_p50_ms),
                    num(p.flow_p95_ms),
                    num(p.flow_p99_ms),
                    num(p.req_p95_ms),
                ];
                row.extend(p.op_p95_ms.iter().map(|x| num(*x)));
                Value::Array(row)
            })
            .collect();
        json!({
            "interval_ms": self.interval_ms,
            "start_unix_us": self.start_unix_us,
            "columns": Self::columns(),
            "rows": rows,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use barrage_core::{MetricKind, SeriesKey};

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
        let j = ts.to_json();
        assert_eq!(j["rows"][0][3], json!(100));
        assert_eq!(j["rows"][0][10], Value::Null);
        assert_eq!(
            j["columns"].as_array().unwrap().len(),
            j["rows"][0].as_array().unwrap().len()
        );
    }
}

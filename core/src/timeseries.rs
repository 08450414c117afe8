//! The run's time series: one compact [`TimePoint`] per closed interval, a fixed small set
//! of numbers (no histograms). A soak runs for days, so the series is bounded: it keeps the
//! last hour at full resolution and downsamples what is older (see [Resolution](#resolution)).
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
//! | `span`             | intervals the row covers (1 at full resolution)              |
//! | `req_p99`          | `http_req_duration` p99 over all operations, ms              |
//! | `vus_min`          | the lowest `vus` of the intervals the row covers             |
//!
//! # Resolution
//!
//! One duration sets the ladder: the full-resolution window `W` ([`Ladder`]; default
//! [`FULL_RESOLUTION`], 1 h; `--full-resolution` of a soak run):
//!
//! | age of a row (from the newest interval) | one row per                          |
//! |-----------------------------------------|--------------------------------------|
//! | under `W` (1 h)                         | interval                             |
//! | under 6 `W` (6 h)                       | `W`/360 (10 s; aligned buckets of intervals) |
//! | older                                   | `W`/60 (1 min); past [`MAX_COARSE_ROWS`] such rows, neighbours merge in pairs (2 min, 4 min…) |
//!
//! So the row count is bounded whatever the run's length: at most `W`/interval + 1800 +
//! [`MAX_COARSE_ROWS`] rows (3600 + 1800 + 360 at 1 s intervals), however many days. The
//! tiers depend on `W`/interval alone, so 100 ms intervals with `W` = 6 min hold, interval
//! for interval, the rows that 1 s intervals hold with `W` = 1 h: a soak compressed in time
//! still goes through every tier. Merging rows (no histograms are kept per
//! interval, on purpose): counts add, `vus` is the maximum and `vus_min` the minimum (so
//! the run's VU range stays exact), `workers` the minimum;
//! percentiles are an **approximation**, the mean of the rows' percentiles weighted by
//! their sample counts (`requests` for request latencies, `iterations` for the flow's).
//! The run's exact percentiles stay in the summary's cumulative histograms.
//!
//! # Reading rows
//!
//! A row covers `span` intervals from `seq`: it starts at [`TimePoint::start_s`] and ends
//! at [`TimePoint::end_s`], and its counts are per [`TimePoint::duration_s`], so a rate
//! is [`TimePoint::per_s`]. Every reader (the report's charts, the dashboard, `compare`)
//! goes through these helpers instead of assuming one row per interval; the number of
//! intervals closed is [`TimeSeries::intervals`], not the row count.
use crate::metrics::builtin;
use crate::{Sink, Snapshot};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How far back the series keeps one row per interval, by default.
pub const FULL_RESOLUTION: Duration = Duration::from_secs(3600);

/// The downsampling ladder of [the module docs](self#resolution), set by its
/// full-resolution window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ladder {
    full_ms: u64,
}

impl Default for Ladder {
    fn default() -> Self {
        Ladder::new(FULL_RESOLUTION)
    }
}

impl Ladder {
    /// The ladder whose rows stay whole for `full` (at least a millisecond).
    pub fn new(full: Duration) -> Ladder {
        Ladder {
            full_ms: (full.as_millis().min(u128::from(u64::MAX / 8)) as u64).max(1),
        }
    }

    /// How far back rows stay one per interval.
    pub fn full_resolution(&self) -> Duration {
        Duration::from_millis(self.full_ms)
    }

    /// The tiers in intervals of `interval_ms`.
    fn tiers(&self, interval_ms: u32) -> Tiers {
        let i = u64::from(interval_ms.max(1));
        let w = self.full_ms;
        let full = (w / i).max(1);
        let mid_span = (w / 360 / i).max(1);
        Tiers {
            full,
            mid_span,
            mid_age: (w * 6 / i).max(full),
            coarse_span: mid_span * (w / 60 / (mid_span * i)).max(1),
        }
    }
}
/// The oldest tier's row budget: beyond it, its rows merge in pairs (6 h of 1 min rows).
pub const MAX_COARSE_ROWS: usize = 360;

/// Number of per-operation columns (`builtin::OPERATIONS`).
pub const N_OPS: usize = builtin::OPERATIONS.len();

/// One closed interval. Percentiles are `NaN` when the interval had no such sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimePoint {
    /// Interval number (0 = the first interval after start); a merged row's first interval.
    pub seq: u32,
    /// Intervals the row covers: 1 at full resolution, more once downsampled.
    pub span: u32,
    /// Workers whose snapshot of this interval arrived before it closed.
    pub workers: u16,
    /// Active VUs: the highest of the intervals the row covers.
    pub vus: u32,
    /// The lowest `vus` of the intervals the row covers (`vus` at full resolution).
    pub vus_min: u32,
    pub requests: u32,
    pub failures: u32,
    pub iterations: u32,
    pub flow_p50_ms: f32,
    pub flow_p95_ms: f32,
    pub flow_p99_ms: f32,
    pub req_p95_ms: f32,
    /// `http_req_duration` p99 over all operations (the soak's latency trend).
    pub req_p99_ms: f32,
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
        let [req_p95_ms, req_p99_ms] =
            percentiles_ms(snap, builtin::HTTP_REQ_DURATION, &[], [95.0, 99.0]);
        let mut op_p95_ms = [f32::NAN; N_OPS];
        for (i, op) in builtin::OPERATIONS.iter().enumerate() {
            let filter = [("operation".to_string(), op.to_string())];
            op_p95_ms[i] = percentiles_ms(snap, builtin::HTTP_REQ_DURATION, &filter, [95.0])[0];
        }
        TimePoint {
            seq: seq.min(u32::MAX as u64) as u32,
            span: 1,
            workers: workers.min(u16::MAX as usize) as u16,
            vus: snap.vus.min(u32::MAX as u64) as u32,
            vus_min: snap.vus.min(u32::MAX as u64) as u32,
            requests: counter(snap, builtin::HTTP_REQS),
            failures,
            iterations: counter(snap, builtin::ITERATIONS),
            flow_p50_ms,
            flow_p95_ms,
            flow_p99_ms,
            req_p95_ms,
            req_p99_ms,
            op_p95_ms,
        }
    }

    /// The interval after the row's last one.
    pub fn end_seq(&self) -> u64 {
        u64::from(self.seq) + u64::from(self.span.max(1))
    }

    /// When the row starts: its first interval's start, seconds after interval 0's.
    pub fn start_s(&self, interval_ms: u32) -> f64 {
        f64::from(self.seq) * interval_s(interval_ms)
    }

    /// When the row ends: its last interval's end, seconds after interval 0's start.
    pub fn end_s(&self, interval_ms: u32) -> f64 {
        self.end_seq() as f64 * interval_s(interval_ms)
    }

    /// The time the row covers, seconds: `span` intervals.
    pub fn duration_s(&self, interval_ms: u32) -> f64 {
        f64::from(self.span.max(1)) * interval_s(interval_ms)
    }

    /// `count` (one of the row's counts) per second of the time the row covers: the
    /// only right rate of a merged row, whose counts add its intervals'.
    pub fn per_s(&self, count: u32, interval_ms: u32) -> f64 {
        f64::from(count) / self.duration_s(interval_ms)
    }

    /// One row for `rows` (in order, not empty), covering `span` intervals from `seq`:
    /// counts add, `vus` max, `vus_min` min, `workers` min, percentiles weighted by their sample counts
    /// (the documented approximation, see the module docs).
    pub fn merged(rows: &[TimePoint], seq: u64, span: u64) -> TimePoint {
        let sum =
            |f: fn(&TimePoint) -> u32| rows.iter().fold(0u32, |acc, p| acc.saturating_add(f(p)));
        let req_w: Vec<f64> = rows.iter().map(|p| f64::from(p.requests)).collect();
        let iter_w: Vec<f64> = rows.iter().map(|p| f64::from(p.iterations)).collect();
        let mean = |w: &[f64], f: &dyn Fn(&TimePoint) -> f32| weighted_mean(rows, w, f);
        let mut op_p95_ms = [f32::NAN; N_OPS];
        for (i, v) in op_p95_ms.iter_mut().enumerate() {
            *v = mean(&req_w, &|p| p.op_p95_ms[i]);
        }
        TimePoint {
            seq: seq.min(u32::MAX as u64) as u32,
            span: span.clamp(1, u32::MAX as u64) as u32,
            workers: rows.iter().map(|p| p.workers).min().unwrap_or(0),
            vus: rows.iter().map(|p| p.vus).max().unwrap_or(0),
            vus_min: rows.iter().map(|p| p.vus_min).min().unwrap_or(0),
            requests: sum(|p| p.requests),
            failures: sum(|p| p.failures),
            iterations: sum(|p| p.iterations),
            flow_p50_ms: mean(&iter_w, &|p| p.flow_p50_ms),
            flow_p95_ms: mean(&iter_w, &|p| p.flow_p95_ms),
            flow_p99_ms: mean(&iter_w, &|p| p.flow_p99_ms),
            req_p95_ms: mean(&req_w, &|p| p.req_p95_ms),
            req_p99_ms: mean(&req_w, &|p| p.req_p99_ms),
            op_p95_ms,
        }
    }
}

/// The mean of the finite values of `f` over `rows`, weighted by `w` (equal weights when
/// the rows that have a value all weigh nothing); `NaN` when no row has a value.
fn weighted_mean(rows: &[TimePoint], w: &[f64], f: &dyn Fn(&TimePoint) -> f32) -> f32 {
    let (mut num, mut den, mut plain, mut n) = (0.0f64, 0.0f64, 0.0f64, 0u32);
    for (p, &w) in rows.iter().zip(w) {
        let v = f(p);
        if v.is_finite() {
            num += f64::from(v) * w;
            den += w;
            plain += f64::from(v);
            n += 1;
        }
    }
    if n == 0 {
        f32::NAN
    } else if den > 0.0 {
        (num / den) as f32
    } else {
        (plain / f64::from(n)) as f32
    }
}

/// One interval of `interval_ms`, in seconds (at least 1 ms, so rates stay finite).
pub fn interval_s(interval_ms: u32) -> f64 {
    f64::from(interval_ms.max(1)) / 1000.0
}

/// The tiers of a [`Ladder`] in intervals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tiers {
    /// Rows younger than this many intervals stay as they are.
    full: u64,
    /// The `W`/360 (10 s) bucket, in intervals (1: the interval is that long or more, no
    /// such tier).
    mid_span: u64,
    /// Rows older than this many intervals go into 1 min buckets.
    mid_age: u64,
    /// The `W`/60 (1 min) bucket, a whole number of `W`/360 buckets so that they nest.
    coarse_span: u64,
}

/// A row of a per-interval series that can be downsampled: the time series' [`TimePoint`]
/// and target telemetry's points share the tiers of [the module docs](self#resolution).
pub trait Row: Sized {
    /// First interval the row covers.
    fn seq(&self) -> u64;
    /// Intervals it covers.
    fn span(&self) -> u64;
    /// One row for `rows` (in order, not empty) covering `span` intervals from `seq`.
    fn merge(rows: &[Self], seq: u64, span: u64) -> Self;
}

impl Row for TimePoint {
    fn seq(&self) -> u64 {
        u64::from(self.seq)
    }
    fn span(&self) -> u64 {
        u64::from(self.span.max(1))
    }
    fn merge(rows: &[Self], seq: u64, span: u64) -> Self {
        TimePoint::merged(rows, seq, span)
    }
}

/// Downsamples `rows` (in order, one interval = `interval_ms`) after a row was added: what
/// has aged out of `ladder`'s full resolution goes into its 10 s buckets, then its 1 min
/// buckets, and the oldest tier merges in pairs past [`MAX_COARSE_ROWS`]. Rows are never
/// dropped, so every count stays in the series.
pub fn downsample<R: Row>(rows: &mut Vec<R>, interval_ms: u32, ladder: Ladder) {
    let Some(end) = rows.last().map(|r| r.seq() + r.span()) else {
        return;
    };
    let t = ladder.tiers(interval_ms);
    if t.mid_span > 1 {
        merge_buckets(rows, t.mid_span, end.saturating_sub(t.full));
    }
    let coarse_before = end.saturating_sub(t.mid_age);
    merge_buckets(rows, t.coarse_span, coarse_before);
    let coarse = rows
        .iter()
        .take_while(|r| r.seq() + r.span() <= coarse_before)
        .count();
    if coarse > MAX_COARSE_ROWS {
        let pairs: Vec<R> = rows[..coarse]
            .chunks(2)
            .map(|c| {
                let last = &c[c.len() - 1];
                R::merge(c, c[0].seq(), last.seq() + last.span() - c[0].seq())
            })
            .collect();
        rows.splice(..coarse, pairs);
    }
    // a series that shrank gives the memory back once it is mostly unused
    if rows.capacity() > 64 && rows.len() * 4 < rows.capacity() {
        rows.shrink_to(rows.len() * 2);
    }
}

/// Merges the rows narrower than `span` into `span`-aligned buckets, for the buckets that
/// ended at or before interval `before`.
fn merge_buckets<R: Row>(rows: &mut Vec<R>, span: u64, before: u64) {
    let Some(mut i) = rows.iter().position(|r| r.span() < span) else {
        return;
    };
    while i < rows.len() {
        let bucket = rows[i].seq() / span;
        let (lo, hi) = (bucket * span, (bucket + 1) * span);
        if hi > before {
            break;
        }
        let n = rows[i..]
            .iter()
            .take_while(|r| r.seq() < hi && r.span() < span)
            .count()
            .max(1);
        let row = R::merge(&rows[i..i + n], lo, span);
        rows.splice(i..i + n, [row]);
        i += 1;
    }
}

/// Intervals covered by `rows` (in order): the end of the last one, 0 without rows.
pub fn intervals_of(rows: &[TimePoint]) -> u64 {
    rows.last().map_or(0, TimePoint::end_seq)
}

/// All closed intervals, in order.
#[derive(Debug, Clone, Default)]
pub struct TimeSeries {
    pub interval_ms: u32,
    /// Start of interval 0, controller clock, µs since the Unix epoch.
    pub start_unix_us: i64,
    pub points: Vec<TimePoint>,
    /// How the rows are downsampled as they age (not stored: a run's flags give it).
    pub ladder: Ladder,
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
    /// Adds the next closed interval (intervals come in order) and downsamples what has
    /// aged out of full resolution (the module's resolution table).
    pub fn push(&mut self, p: TimePoint) {
        self.points.push(p);
        self.compact();
    }

    /// Rows kept (bounded: see the module docs), not intervals closed.
    pub fn rows(&self) -> usize {
        self.points.len()
    }

    /// Intervals closed: the end of the last row (rows and intervals differ once rows
    /// merge).
    pub fn intervals(&self) -> u64 {
        intervals_of(&self.points)
    }

    /// The bytes the rows hold (capacity included): what a soak's flat memory is checked on.
    pub fn heap_bytes(&self) -> usize {
        self.points.capacity() * std::mem::size_of::<TimePoint>()
    }

    fn compact(&mut self) {
        downsample(&mut self.points, self.interval_ms, self.ladder);
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
        c.push("span".into());
        c.push("req_p99_ms".into());
        c.push("vus_min".into());
        c
    }

    /// The series back from its stored form (a checkpoint, a summary): columns are read
    /// by name, so a file from before a column existed reads with that column missing
    /// (`NaN`, 1 for `span`, `vus` for `vus_min`).
    pub fn from_doc(doc: &TimeSeriesDoc) -> TimeSeries {
        let col = |name: &str| doc.columns.iter().position(|c| c == name);
        let idx: Vec<Option<usize>> = Self::columns().iter().map(|c| col(c)).collect();
        let points = doc
            .rows
            .iter()
            .map(|row| {
                let get = |i: usize| idx[i].and_then(|j| row.get(j).copied().flatten());
                let count = |i: usize| get(i).map_or(0, |v| v.clamp(0.0, u32::MAX as f64) as u32);
                let ms = |i: usize| get(i).map_or(f32::NAN, |v| v as f32);
                let mut op_p95_ms = [f32::NAN; N_OPS];
                for (k, v) in op_p95_ms.iter_mut().enumerate() {
                    *v = ms(10 + k);
                }
                TimePoint {
                    seq: count(0),
                    span: count(10 + N_OPS).max(1),
                    workers: get(1).map_or(0, |v| v.clamp(0.0, u16::MAX as f64) as u16),
                    vus: count(2),
                    vus_min: get(12 + N_OPS).map_or(count(2), |_| count(12 + N_OPS)),
                    requests: count(3),
                    failures: count(4),
                    iterations: count(5),
                    flow_p50_ms: ms(6),
                    flow_p95_ms: ms(7),
                    flow_p99_ms: ms(8),
                    req_p95_ms: ms(9),
                    req_p99_ms: ms(11 + N_OPS),
                    op_p95_ms,
                }
            })
            .collect();
        TimeSeries {
            interval_ms: doc.interval_ms,
            start_unix_us: doc.start_unix_us,
            points,
            ladder: Ladder::default(),
        }
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
                row.push(Some(f64::from(p.span)));
                row.push(num(p.req_p99_ms));
                row.push(Some(f64::from(p.vus_min)));
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
mod tests;

//! barrage's wire contract (`barrage.v1`): the generated tonic/prost code for
//! `proto/barrage.proto`, and the conversions between wire messages and
//! [`barrage_core`]'s types. This crate only converts and validates: a message that does not
//! convert yields a [`WireError`] naming the field.
//!
//! | wire (`pb::…`)     | core type                    | conversion                        |
//! |--------------------|------------------------------|-----------------------------------|
//! | `Segment`          | [`barrage_core::Segment`]    | [`segment_to_pb`] / [`segment_from_pb`] |
//! | `Snapshot`         | [`barrage_core::Snapshot`]   | [`snapshot_to_pb`] / [`snapshot_from_pb`] |
//! | `SeriesSnapshot`   | `(SeriesKey, Sink)`          | inside the snapshot conversions    |
//! | `MetricKind`       | [`barrage_core::MetricKind`] | [`kind_to_pb`] / [`kind_from_pb`]  |
//! | `Point`            | [`barrage_core::Point`]      | [`point_to_pb`] / [`point_from_pb`] |
//! | `WorkerHealth`     | [`barrage_core::validity::WorkerHealth`] | [`health_to_pb`] / [`health_from_pb`] |
#![forbid(unsafe_code)]

use barrage_core::sink::{CounterSink, GaugeSink, RateSink, TrendSink};
use barrage_core::snapshot::SeriesPart;
use barrage_core::validity::{VuSample, WorkerHealth};
use barrage_core::{Fraction, MetricKind, Point, Segment, SeriesKey, Sink, Snapshot};

/// The generated code of `barrage.proto`.
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("barrage.v1");
}

pub use pb::controller_client::ControllerClient;
pub use pb::controller_server::{Controller, ControllerServer};

/// gRPC metadata key carrying the shared worker token (`Bearer <token>`).
pub const AUTH_METADATA: &str = "authorization";

/// Largest message either side accepts (a snapshot of many series, a batch of points).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WireError {
    #[error("{field}: missing")]
    Missing { field: &'static str },
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> WireError {
    WireError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

pub fn fraction_to_pb(f: Fraction) -> pb::Fraction {
    pb::Fraction {
        num: f.num,
        den: f.den,
    }
}

pub fn fraction_from_pb(
    f: Option<&pb::Fraction>,
    field: &'static str,
) -> Result<Fraction, WireError> {
    let f = f.ok_or(WireError::Missing { field })?;
    Fraction::new(f.num, f.den).map_err(|e| invalid(field, e))
}

pub fn segment_to_pb(s: Segment) -> pb::Segment {
    pb::Segment {
        start: Some(fraction_to_pb(s.start)),
        end: Some(fraction_to_pb(s.end)),
    }
}

pub fn segment_from_pb(s: Option<&pb::Segment>) -> Result<Segment, WireError> {
    let s = s.ok_or(WireError::Missing { field: "segment" })?;
    let start = fraction_from_pb(s.start.as_ref(), "segment.start")?;
    let end = fraction_from_pb(s.end.as_ref(), "segment.end")?;
    Segment::new(start, end).map_err(|e| invalid("segment", e))
}

pub fn kind_to_pb(k: MetricKind) -> pb::MetricKind {
    match k {
        MetricKind::Counter => pb::MetricKind::Counter,
        MetricKind::Gauge => pb::MetricKind::Gauge,
        MetricKind::Rate => pb::MetricKind::Rate,
        MetricKind::Trend => pb::MetricKind::Trend,
    }
}

pub fn kind_from_pb(k: i32) -> Result<MetricKind, WireError> {
    match pb::MetricKind::try_from(k) {
        Ok(pb::MetricKind::Counter) => Ok(MetricKind::Counter),
        Ok(pb::MetricKind::Gauge) => Ok(MetricKind::Gauge),
        Ok(pb::MetricKind::Rate) => Ok(MetricKind::Rate),
        Ok(pb::MetricKind::Trend) => Ok(MetricKind::Trend),
        _ => Err(invalid(
            "kind",
            format!("{k} is not a metric kind (1 counter, 2 gauge, 3 rate, 4 trend)"),
        )),
    }
}

pub fn tags_to_pb(key: &SeriesKey) -> Vec<pb::Tag> {
    key.tags
        .iter()
        .map(|(k, v)| pb::Tag {
            key: k.clone(),
            value: v.clone(),
        })
        .collect()
}

pub fn series_key_from_pb(metric: &str, tags: &[pb::Tag]) -> Result<SeriesKey, WireError> {
    if metric.is_empty() {
        return Err(WireError::Missing {
            field: "series.metric",
        });
    }
    Ok(SeriesKey::with_tags(
        metric,
        tags.iter().map(|t| (t.key.as_str(), t.value.as_str())),
    ))
}

/// Encodes a raw point, moving its strings (a point is encoded once, on its way out).
pub fn point_to_pb(p: Point) -> pb::Point {
    pb::Point {
        metric: p.metric,
        kind: kind_to_pb(p.kind) as i32,
        tags: p
            .tags
            .into_iter()
            .map(|(key, value)| pb::Tag { key, value })
            .collect(),
        time_unix_us: p.time_unix_us,
        value: p.value,
    }
}

/// Decodes a raw point, moving its strings: it needs a metric, a known kind and a finite value.
pub fn point_from_pb(p: pb::Point) -> Result<Point, WireError> {
    if p.metric.is_empty() {
        return Err(WireError::Missing {
            field: "point.metric",
        });
    }
    let kind = kind_from_pb(p.kind)
        .map_err(|e| invalid(format!("point {}: kind", p.metric), e.to_string()))?;
    if !p.value.is_finite() {
        return Err(invalid(
            format!("point {}: value", p.metric),
            "must be a finite number",
        ));
    }
    Ok(Point {
        metric: p.metric,
        kind,
        tags: p.tags.into_iter().map(|t| (t.key, t.value)).collect(),
        time_unix_us: p.time_unix_us,
        value: p.value,
    })
}

/// Encodes a snapshot; fails only if a histogram does not serialize.
pub fn snapshot_to_pb(s: &Snapshot) -> Result<pb::Snapshot, WireError> {
    let mut series = Vec::with_capacity(s.series.len());
    for (key, sink) in &s.series {
        let value = match sink {
            Sink::Counter(c) => {
                pb::series_snapshot::Value::Counter(pb::CounterValue { sum: c.sum })
            }
            Sink::Gauge(g) => pb::series_snapshot::Value::Gauge(pb::GaugeValue {
                last: g.last,
                min: g.min,
                max: g.max,
            }),
            Sink::Rate(r) => pb::series_snapshot::Value::Rate(pb::RateValue {
                trues: r.trues,
                total: r.total,
            }),
            Sink::Trend(t) => pb::series_snapshot::Value::Histogram(
                t.encode()
                    .map_err(|e| invalid(format!("series {key}"), e.to_string()))?,
            ),
        };
        series.push(pb::SeriesSnapshot {
            metric: key.metric.clone(),
            kind: kind_to_pb(sink.kind()) as i32,
            tags: tags_to_pb(key),
            value: Some(value),
        });
    }
    Ok(pb::Snapshot {
        seq: s.seq,
        interval_start_unix_us: s.interval_start_us,
        interval_ms: s.interval_ms,
        series,
        vus: s.vus.min(u32::MAX as u64) as u32,
        vus_max: s.vus_max.min(u32::MAX as u64) as u32,
        health: None,
    })
}

/// Encodes a worker's own figures of one interval (`Snapshot.health`).
pub fn health_to_pb(h: &WorkerHealth) -> pb::WorkerHealth {
    pb::WorkerHealth {
        cpu: h.cpu,
        cpu_wall_us: h.cpu_wall_us,
        loop_lag_max_us: h.loop_lag_max_us,
        loop_lag_p99_us: h.loop_lag_p99_us,
        vus: h.vus.map(|v| pb::VuSample {
            planned_min: v.planned_min,
            planned_max: v.planned_max,
            active_min: v.active_min,
            active_max: v.active_max,
        }),
        iterations_started: h.iterations_started,
        iterations_due: h.iterations_due,
        iterations_dropped: h.iterations_dropped,
        schedule_changed: h.schedule_changed,
    }
}

/// Most CPU a worker's figures may claim, in cores: a thread uses at most one, plus the
/// jitter of reading its clock; beyond this the figure is garbage, not a busy worker.
pub const MAX_HEALTH_CPU: f64 = 64.0;

/// Decodes and validates a snapshot's health (`None`: the worker sent none): a finite CPU
/// in 0..=[`MAX_HEALTH_CPU`], lag p99 ≤ max, VU minima ≤ maxima.
pub fn health_from_pb(p: &pb::Snapshot) -> Result<Option<WorkerHealth>, WireError> {
    let Some(h) = &p.health else {
        return Ok(None);
    };
    if !(h.cpu.is_finite() && (0.0..=MAX_HEALTH_CPU).contains(&h.cpu)) {
        return Err(invalid(
            "snapshot.health.cpu",
            format!("{} is not a CPU share (0..={MAX_HEALTH_CPU} cores)", h.cpu),
        ));
    }
    if h.loop_lag_p99_us > h.loop_lag_max_us {
        return Err(invalid(
            "snapshot.health.loop_lag_p99_us",
            format!(
                "{} is above loop_lag_max_us {}",
                h.loop_lag_p99_us, h.loop_lag_max_us
            ),
        ));
    }
    let vus = match &h.vus {
        None => None,
        Some(v) if v.planned_min <= v.planned_max && v.active_min <= v.active_max => {
            Some(VuSample {
                planned_min: v.planned_min,
                planned_max: v.planned_max,
                active_min: v.active_min,
                active_max: v.active_max,
            })
        }
        Some(v) => {
            return Err(invalid(
                "snapshot.health.vus",
                format!(
                    "minima above maxima (planned {}..{}, active {}..{})",
                    v.planned_min, v.planned_max, v.active_min, v.active_max
                ),
            ))
        }
    };
    Ok(Some(WorkerHealth {
        cpu: h.cpu,
        cpu_wall_us: h.cpu_wall_us,
        loop_lag_max_us: h.loop_lag_max_us,
        loop_lag_p99_us: h.loop_lag_p99_us,
        vus,
        iterations_started: h.iterations_started,
        iterations_due: h.iterations_due,
        iterations_dropped: h.iterations_dropped,
        schedule_changed: h.schedule_changed,
    }))
}

/// One wire series, validated: a ready sink, or the histogram bytes still to decode.
enum SeriesValue<'a> {
    Sink(Sink),
    Histogram(&'a [u8]),
}

/// Checks one series: a metric, a known kind and a value of that kind (finite counters,
/// rates with `trues <= total`).
fn check_series(
    s: &pb::SeriesSnapshot,
) -> Result<(SeriesKey, MetricKind, SeriesValue<'_>), WireError> {
    use pb::series_snapshot::Value;
    let key = series_key_from_pb(&s.metric, &s.tags)?;
    let kind =
        kind_from_pb(s.kind).map_err(|e| invalid(format!("series {key}: kind"), e.to_string()))?;
    let value = match (kind, &s.value) {
        (MetricKind::Counter, Some(Value::Counter(c))) if c.sum.is_finite() => {
            SeriesValue::Sink(Sink::Counter(CounterSink { sum: c.sum }))
        }
        (MetricKind::Gauge, Some(Value::Gauge(g))) => SeriesValue::Sink(Sink::Gauge(GaugeSink {
            last: g.last,
            min: g.min,
            max: g.max,
        })),
        (MetricKind::Rate, Some(Value::Rate(r))) if r.trues <= r.total => {
            SeriesValue::Sink(Sink::Rate(RateSink {
                trues: r.trues,
                total: r.total,
            }))
        }
        (MetricKind::Trend, Some(Value::Histogram(b))) => SeriesValue::Histogram(b),
        (_, None) => return Err(invalid(format!("series {key}"), "no value")),
        (k, _) => {
            return Err(invalid(
                format!("series {key}"),
                format!(
                    "value does not fit a {} metric (or is out of range)",
                    k.as_str()
                ),
            ))
        }
    };
    Ok((key, kind, value))
}

/// Decodes and validates a snapshot: every series needs a metric, a kind and a value of
/// that kind; histogram bytes must decode; rates need `trues <= total`. A series given
/// twice is merged ([`Snapshot::absorb`]).
pub fn snapshot_from_pb(p: &pb::Snapshot) -> Result<Snapshot, WireError> {
    let mut out = Snapshot {
        seq: p.seq,
        interval_start_us: p.interval_start_unix_us,
        interval_ms: p.interval_ms,
        vus: p.vus as u64,
        vus_max: p.vus_max as u64,
        ..Default::default()
    };
    for s in &p.series {
        let (key, _, value) = check_series(s)?;
        let sink = match value {
            SeriesValue::Sink(sink) => sink,
            SeriesValue::Histogram(b) => Sink::Trend(
                TrendSink::decode(b)
                    .map_err(|e| invalid(format!("series {key}: histogram"), e.to_string()))?,
            ),
        };
        let one = Snapshot {
            series: [(key.clone(), sink)].into(),
            ..Default::default()
        };
        out.absorb(one)
            .map_err(|e| invalid(format!("series {key}"), e.to_string()))?;
    }
    Ok(out)
}

/// Merges a wire snapshot straight into `target` (a bucket of merged snapshots) without
/// building a histogram per series: trends are decoded sparsely
/// ([`barrage_core::hdr::SparseDecoder`]) and handed to [`Snapshot::merge_parts`], the
/// same merge as every other. The whole message is validated first; on any error nothing
/// is merged. Returns the decoded series count.
pub fn merge_pb_into(
    target: &mut Snapshot,
    p: &pb::Snapshot,
    dec: &mut barrage_core::hdr::SparseDecoder,
) -> Result<usize, WireError> {
    let mut parts = Vec::with_capacity(p.series.len());
    for s in &p.series {
        let (key, _, value) = check_series(s)?;
        let part = match value {
            SeriesValue::Sink(sink) => SeriesPart::Sink(sink),
            SeriesValue::Histogram(b) => {
                let mut pairs = Vec::new();
                dec.decode(b, &mut pairs)
                    .map_err(|e| invalid(format!("series {key}: histogram"), e.to_string()))?;
                SeriesPart::Pairs(pairs)
            }
        };
        parts.push((key, part));
    }
    let n = parts.len();
    target
        .merge_parts(parts, p.vus as u64, p.vus_max as u64)
        .map_err(|e| invalid("series", e.to_string()))?;
    Ok(n)
}

//! k6's JSON output (NDJSON): a `Metric` line the first time a metric appears, then one
//! `Point` line per sample, so the seed's jq recipes work unchanged:
//!
//! ```text
//! {"type":"Metric","data":{"name":"http_reqs","type":"counter","contains":"default","thresholds":[],"submetrics":null},"metric":"http_reqs"}
//! {"type":"Point","data":{"time":"2025-01-02T03:04:05.678901+00:00","value":1.0,"tags":{"operation":"run_wait"}},"metric":"http_reqs"}
//! ```
//! Times are RFC 3339 with an offset, µs precision; values of time trends are ms.
use super::{Format, RawPoint};
use barrage_core::metrics::builtin;
use barrage_core::threshold::ThresholdSet;
use chrono::{DateTime, Local, SecondsFormat};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::io::{self, Write};

#[derive(Serialize)]
struct Line<'a, D: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    data: D,
    metric: &'a str,
}

#[derive(Serialize)]
struct MetricData<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    contains: &'static str,
    thresholds: Vec<String>,
    submetrics: Option<Vec<Value>>,
}

#[derive(Serialize)]
struct PointData<'a> {
    time: String,
    value: f64,
    tags: Map<String, Value>,
    #[serde(skip)]
    _p: std::marker::PhantomData<&'a ()>,
}

/// k6's RFC 3339 time with the local offset, µs precision.
pub fn k6_time(unix_us: i64) -> String {
    let t = DateTime::from_timestamp_micros(unix_us).unwrap_or_default();
    t.with_timezone(&Local)
        .to_rfc3339_opts(SecondsFormat::Micros, false)
}

/// The NDJSON format.
pub struct Ndjson {
    thresholds: ThresholdSet,
    seen: BTreeSet<String>,
}

impl Ndjson {
    pub fn new(thresholds: ThresholdSet) -> Self {
        Ndjson {
            thresholds,
            seen: BTreeSet::new(),
        }
    }

    fn metric_line(&self, w: &mut dyn Write, p: &RawPoint) -> io::Result<()> {
        let is_time = builtin::lookup(&p.metric).is_some_and(|(_, t)| t);
        let contains = match p.kind {
            barrage_core::MetricKind::Trend if is_time => "time",
            barrage_core::MetricKind::Counter if p.metric.starts_with("data_") => "data",
            _ => "default",
        };
        let subs: Vec<Value> = self
            .thresholds
            .entries
            .iter()
            .filter(|e| e.mref.metric == p.metric && !e.mref.filter.is_empty())
            .map(|e| {
                let tags: Map<String, Value> =
                    e.mref.filter.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect();
                let suffix: Vec<String> = e.mref.filter.iter().map(|(k, v)| format!("{k}:{v}")).collect();
                serde_json::json!({"name": e.mref.to_string(), "suffix": suffix.join(","), "tags": tags})
            })
            .collect();
        let line = Line {
            kind: "Metric",
            data: MetricData {
                name: &p.metric,
                kind: p.kind.as_str(),
                contains,
                thresholds: self.thresholds.sources_for(&p.metric),
                submetrics: (!subs.is_empty()).then_some(subs),
            },
            metric: &p.metric,
        };
        serde_json::to_writer(&mut *w, &line)?;
        w.write_all(b"\n")
    }
}

impl Format for Ndjson {
    fn begin(&mut self, _w: &mut dyn Write) -> io::Result<()> {
        Ok(())
    }

    fn write(&mut self, w: &mut dyn Write, points: &[RawPoint]) -> io::Result<()> {
        for p in points {
            if !self.seen.contains(&p.metric) {
                self.metric_line(w, p)?;
                self.seen.insert(p.metric.clone());
            }
            let line = Line {
                kind: "Point",
                data: PointData {
                    time: k6_time(p.time_unix_us),
                    value: p.k6_value(),
                    tags: p
                        .tags
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                        .collect(),
                    _p: std::marker::PhantomData,
                },
                metric: &p.metric,
            };
            serde_json::to_writer(&mut *w, &line)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use barrage_core::{MetricKind, Plan, Profile};

    #[test]
    fn k6_lines_byte_for_byte() {
        // a fixed zone so the bytes do not depend on the machine's
        std::env::set_var("TZ", "UTC");
        let plan = Plan::profile(Profile::Default);
        let set = ThresholdSet::from_plan(&plan).unwrap();
        let mut f = Ndjson::new(set);
        let mut buf = Vec::new();
        let p = |metric: &str, kind, tags: &[(&str, &str)], value| RawPoint {
            metric: metric.into(),
            kind,
            tags: tags
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            time_unix_us: 1_735_787_045_678_901,
            value,
        };
        f.begin(&mut buf).unwrap();
        f.write(
            &mut buf,
            &[
                p(
                    "http_req_duration",
                    MetricKind::Trend,
                    &[("operation", "run_wait"), ("status", "200")],
                    12_345.0,
                ),
                p(
                    "http_reqs",
                    MetricKind::Counter,
                    &[("operation", "run_wait")],
                    1.0,
                ),
                p(
                    "http_req_duration",
                    MetricKind::Trend,
                    &[("operation", "get_state")],
                    500.0,
                ),
                p("agent_flow_duration", MetricKind::Trend, &[], 1_500_000.0),
            ],
        )
        .unwrap();
        let text = String::from_utf8(buf).unwrap();
        let want = r#"{"type":"Metric","data":{"name":"http_req_duration","type":"trend","contains":"time","thresholds":[],"submetrics":null},"metric":"http_req_duration"}
{"type":"Point","data":{"time":"2025-01-02T03:04:05.678901+00:00","value":12.345,"tags":{"operation":"run_wait","status":"200"}},"metric":"http_req_duration"}
{"type":"Metric","data":{"name":"http_reqs","type":"counter","contains":"default","thresholds":[],"submetrics":null},"metric":"http_reqs"}
{"type":"Point","data":{"time":"2025-01-02T03:04:05.678901+00:00","value":1.0,"tags":{"operation":"run_wait"}},"metric":"http_reqs"}
{"type":"Point","data":{"time":"2025-01-02T03:04:05.678901+00:00","value":0.5,"tags":{"operation":"get_state"}},"metric":"http_req_duration"}
{"type":"Metric","data":{"name":"agent_flow_duration","type":"trend","contains":"time","thresholds":["p(95)<8000"],"submetrics":null},"metric":"agent_flow_duration"}
{"type":"Point","data":{"time":"2025-01-02T03:04:05.678901+00:00","value":1500.0,"tags":{}},"metric":"agent_flow_duration"}
"#;
        assert_eq!(text, want);
    }
}

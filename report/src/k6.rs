//! Reading k6's JSON output (NDJSON: one `Metric` or `Point` object per line), as k6's
//! `--out json` and barrage's own `--out json=` write it, so old k6 results can be
//! summarized and compared with new barrage results.
//!
//! Only `Point` lines are kept, each as metric, time, value and tags: every sample stays
//! in memory (a k6 file is per-sample by nature), which is what the jq recipes it replaces
//! do too.
use crate::ReportError;
use chrono::DateTime;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

/// One sample of a k6 NDJSON file.
#[derive(Debug, Clone, PartialEq)]
pub struct K6Point {
    pub metric: String,
    /// µs since the Unix epoch.
    pub time_us: i64,
    /// ms for time trends, as k6 writes them.
    pub value: f64,
    pub tags: BTreeMap<String, String>,
}

impl K6Point {
    pub fn tag(&self, k: &str) -> Option<&str> {
        self.tags.get(k).map(String::as_str)
    }
}

/// Every sample of a file, in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct K6Run {
    pub points: Vec<K6Point>,
}

#[derive(Deserialize)]
struct Line {
    #[serde(rename = "type")]
    kind: String,
    metric: Option<String>,
    data: Option<PointData>,
}

#[derive(Deserialize)]
struct PointData {
    time: Option<String>,
    value: Option<f64>,
    #[serde(default)]
    tags: Option<BTreeMap<String, serde_json::Value>>,
}

impl K6Run {
    /// Parses NDJSON from a reader; `path` names the file in errors.
    pub fn parse(r: impl BufRead, path: &Path) -> Result<K6Run, ReportError> {
        let bad = |n: usize, why: String| {
            ReportError::Input(format!(
                "{}:{n}: not a k6 JSON output line: {why} (expected one JSON object per line, \
as `k6 run --out json=FILE` writes)",
                path.display()
            ))
        };
        let mut points = Vec::new();
        for (i, line) in r.lines().enumerate() {
            let n = i + 1;
            let line = line.map_err(|e| ReportError::Input(format!("{}: {e}", path.display())))?;
            if line.trim().is_empty() {
                continue;
            }
            let l: Line = serde_json::from_str(&line).map_err(|e| bad(n, e.to_string()))?;
            if l.kind != "Point" {
                continue;
            }
            let metric = l
                .metric
                .ok_or_else(|| bad(n, "a Point without `metric`".into()))?;
            let d = l
                .data
                .ok_or_else(|| bad(n, "a Point without `data`".into()))?;
            let value = d
                .value
                .ok_or_else(|| bad(n, "a Point without `data.value`".into()))?;
            let time = d
                .time
                .ok_or_else(|| bad(n, "a Point without `data.time`".into()))?;
            let time_us = DateTime::parse_from_rfc3339(&time)
                .map_err(|e| bad(n, format!("`data.time` {time:?} is not RFC 3339: {e}")))?
                .timestamp_micros();
            let tags = d
                .tags
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (k, v)
                })
                .collect();
            points.push(K6Point {
                metric,
                time_us,
                value,
                tags,
            });
        }
        Ok(K6Run { points })
    }

    /// Reads a file.
    pub fn read(path: &Path) -> Result<K6Run, ReportError> {
        let f = std::fs::File::open(path)
            .map_err(|e| ReportError::Input(format!("{}: cannot read: {e}", path.display())))?;
        K6Run::parse(std::io::BufReader::new(f), path)
    }

    /// Points of `metric`, in file order.
    pub fn of<'a>(&'a self, metric: &'a str) -> impl Iterator<Item = &'a K6Point> + 'a {
        self.points.iter().filter(move |p| p.metric == metric)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_points_and_skips_metric_lines() {
        let text = r#"{"type":"Metric","data":{"name":"http_reqs","type":"counter"},"metric":"http_reqs"}
{"type":"Point","data":{"time":"2025-01-02T03:04:05.678901+01:00","value":1,"tags":{"operation":"run_wait","status":200}},"metric":"http_reqs"}

{"type":"Point","data":{"time":"2025-01-02T02:04:06Z","value":12.5,"tags":null},"metric":"http_req_duration"}
"#;
        let r = K6Run::parse(text.as_bytes(), Path::new("x.json")).unwrap();
        assert_eq!(r.points.len(), 2);
        assert_eq!(r.points[0].tag("operation"), Some("run_wait"));
        assert_eq!(r.points[0].tag("status"), Some("200"));
        assert_eq!(r.points[1].time_us - r.points[0].time_us, 321_099);
        assert_eq!(r.of("http_req_duration").count(), 1);
    }

    #[test]
    fn bad_lines_name_the_line() {
        let cases = [
            ("{\"type\":\"Point\"}\n", "x.json:1: not a k6 JSON output line: a Point without `metric`"),
            ("\n{nope\n", "x.json:2: not a k6 JSON output line"),
            (
                "{\"type\":\"Point\",\"metric\":\"m\",\"data\":{\"time\":\"yesterday\",\"value\":1}}\n",
                "`data.time` \"yesterday\" is not RFC 3339",
            ),
        ];
        for (text, want) in cases {
            let e = K6Run::parse(text.as_bytes(), Path::new("x.json"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{e}");
        }
    }
}

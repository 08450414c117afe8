//! A results file of either kind, and what `compare` measures from it.
//!
//! [`ResultsFile`] tells a barrage summary from a k6 NDJSON file by its first line; both
//! become [`Measured`]: the latency histograms (exact, per operation) and the run cut into
//! intervals (requests and failures per interval), which is all `compare` needs.
use crate::k6::K6Run;
use crate::ReportError;
use barrage_core::metrics::builtin;
use barrage_core::sink::TrendSink;
use barrage_core::summary::Summary;
use barrage_core::timeseries::TimeSeries;
use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// A results file, read.
#[derive(Debug, Clone)]
pub enum ResultsFile {
    Summary(Box<Summary>),
    K6(K6Run),
}

impl ResultsFile {
    /// Reads `path`: a k6 NDJSON file when its first non-empty line is a JSON object with a
    /// `type` field (`Metric` or `Point`), else a barrage summary.
    pub fn read(path: &Path) -> Result<ResultsFile, ReportError> {
        let f = std::fs::File::open(path)
            .map_err(|e| ReportError::Input(format!("{}: cannot read: {e}", path.display())))?;
        let mut first = String::new();
        let mut r = std::io::BufReader::new(f);
        while first.trim().is_empty() {
            first.clear();
            let n = r
                .read_line(&mut first)
                .map_err(|e| ReportError::Input(format!("{}: {e}", path.display())))?;
            if n == 0 {
                return Err(ReportError::Input(format!(
                    "{}: empty file: expected a barrage *.summary.json or a k6 NDJSON file",
                    path.display()
                )));
            }
        }
        let k6 = serde_json::from_str::<serde_json::Value>(first.trim())
            .ok()
            .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_string))
            .is_some_and(|t| t == "Metric" || t == "Point");
        if k6 {
            Ok(ResultsFile::K6(K6Run::read(path)?))
        } else {
            Ok(ResultsFile::Summary(Box::new(Summary::read(path)?)))
        }
    }
}

/// What `compare` reads from one or more runs.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    /// The files, for the report's header.
    pub files: Vec<PathBuf>,
    /// Latency trends by entry name (`http_req_duration`, `http_req_duration{operation:x}`,
    /// `agent_flow_duration`), µs.
    pub trends: BTreeMap<String, TrendSink>,
    /// The runs cut into intervals, in order (runs one after another).
    pub intervals: Vec<Interval>,
}

/// One interval of a run, or of a summary's time series one row, which covers several
/// intervals once a long run's older rows were merged: `seconds` is the time it covers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub seconds: f64,
    pub requests: f64,
    pub failures: f64,
}

fn merge_into(
    trends: &mut BTreeMap<String, TrendSink>,
    name: String,
    t: TrendSink,
) -> Result<(), ReportError> {
    match trends.get_mut(&name) {
        Some(acc) => acc
            .hist
            .add(&t.hist)
            .map_err(|e| ReportError::Input(format!("{name}: histograms do not merge: {e}"))),
        None => {
            trends.insert(name, t);
            Ok(())
        }
    }
}

/// The entry name of `metric` with an optional operation.
pub fn entry(metric: &str, op: Option<&str>) -> String {
    match op {
        Some(op) => format!("{metric}{{operation:{op}}}"),
        None => metric.to_string(),
    }
}

impl Measured {
    /// Reads and merges several files (a set of runs of one build).
    pub fn read_all(paths: &[PathBuf]) -> Result<Measured, ReportError> {
        let mut m = Measured::default();
        for p in paths {
            m.add(ResultsFile::read(p)?, p)?;
        }
        Ok(m)
    }

    /// Adds one run.
    pub fn add(&mut self, f: ResultsFile, path: &Path) -> Result<(), ReportError> {
        self.files.push(path.to_path_buf());
        match f {
            ResultsFile::Summary(s) => self.add_summary(&s),
            ResultsFile::K6(k) => self.add_k6(&k),
        }
    }

    fn add_summary(&mut self, s: &Summary) -> Result<(), ReportError> {
        let ops: BTreeSet<String> = s
            .histograms
            .values()
            .filter(|h| h.metric == builtin::HTTP_REQ_DURATION)
            .filter_map(|h| h.tags.get("operation").cloned())
            .collect();
        for metric in [builtin::HTTP_REQ_DURATION, builtin::AGENT_FLOW_DURATION] {
            if let Some(t) = s.histogram(metric, &[])? {
                merge_into(&mut self.trends, entry(metric, None), t)?;
            }
        }
        for op in ops {
            let filter = [("operation".to_string(), op.clone())];
            if let Some(t) = s.histogram(builtin::HTTP_REQ_DURATION, &filter)? {
                merge_into(
                    &mut self.trends,
                    entry(builtin::HTTP_REQ_DURATION, Some(&op)),
                    t,
                )?;
            }
        }
        // one entry per row: a long run's merged rows cover many intervals, and say so
        let ts = TimeSeries::from_doc(&s.timeseries);
        for p in &ts.points {
            self.intervals.push(Interval {
                seconds: p.duration_s(ts.interval_ms),
                requests: f64::from(p.requests),
                failures: f64::from(p.failures),
            });
        }
        Ok(())
    }

    fn add_k6(&mut self, k: &K6Run) -> Result<(), ReportError> {
        for p in &k.points {
            if p.metric != builtin::HTTP_REQ_DURATION && p.metric != builtin::AGENT_FLOW_DURATION {
                continue;
            }
            let us = (p.value * 1000.0).round().max(0.0) as u64;
            let mut names = vec![entry(&p.metric, None)];
            if p.metric == builtin::HTTP_REQ_DURATION {
                if let Some(op) = p.tag("operation") {
                    names.push(entry(&p.metric, Some(op)));
                }
            }
            for n in names {
                self.trends.entry(n).or_default().record(us);
            }
        }
        // 1 s intervals from the first sample; requests are `http_reqs` points (or, in a
        // file without them, `http_req_duration` points)
        let has_reqs = k.of(builtin::HTTP_REQS).next().is_some();
        let req_metric = if has_reqs {
            builtin::HTTP_REQS
        } else {
            builtin::HTTP_REQ_DURATION
        };
        let Some(t0) = k.points.iter().map(|p| p.time_us).min() else {
            return Ok(());
        };
        let mut buckets: BTreeMap<i64, Interval> = BTreeMap::new();
        let slot = |t: i64| (t - t0) / 1_000_000;
        for p in &k.points {
            let b = buckets.entry(slot(p.time_us)).or_insert(Interval {
                seconds: 1.0,
                requests: 0.0,
                failures: 0.0,
            });
            if p.metric == req_metric {
                b.requests += if has_reqs { p.value } else { 1.0 };
            } else if p.metric == builtin::HTTP_REQ_FAILED && p.value != 0.0 {
                b.failures += 1.0;
            }
        }
        if let Some(&last) = buckets.keys().last() {
            // the last second is cut short by the end of the run: dropped when others exist
            let end = if last >= 2 { last - 1 } else { last };
            for s in 0..=end {
                let b = buckets.get(&s).copied().unwrap_or(Interval {
                    seconds: 1.0,
                    requests: 0.0,
                    failures: 0.0,
                });
                self.intervals.push(b);
            }
        }
        Ok(())
    }
}

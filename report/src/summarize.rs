//! `barrage summarize`: the seed's jq recipes as one command — total iterations, flow
//! duration statistics, per-operation latency — from a barrage summary or a k6 NDJSON file.
//!
//! From k6 NDJSON the figures are computed exactly as the recipes compute them (every
//! sample kept and sorted; `pXX = sorted[floor(n × XX/100)]`, `avg = sum / n` in file
//! order), so they match `jq` to the last digit. From a barrage summary they come from the
//! summary's statistics, which are read from the HDR histograms (3 significant digits).
use crate::input::ResultsFile;
use crate::k6::K6Run;
use barrage_core::metrics::builtin;
use barrage_core::summary::Summary;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Flow duration statistics (the recipe's keys), ms.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowStats {
    pub count: u64,
    pub min: f64,
    pub max: f64,
    pub avg: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

/// One operation's latency (the recipe's keys), ms.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpStats {
    pub count: u64,
    pub avg: f64,
    pub p50: f64,
    pub p95: f64,
}

/// What `summarize` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summarized {
    /// `k6 NDJSON` or `barrage summary`.
    pub source: String,
    /// How the percentiles were computed.
    pub method: String,
    /// Completed flows: the count of `agent_flow_duration` samples.
    pub iterations: u64,
    pub flow: Option<FlowStats>,
    /// `http_req_duration` by its `operation` tag.
    pub operations: BTreeMap<String, OpStats>,
}

/// `sorted[floor(n × q)]`, as `jq 'sort[(length*q)|floor]'`.
fn at(sorted: &[f64], q: f64) -> f64 {
    let i = (sorted.len() as f64 * q).floor() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn sum(v: &[f64]) -> f64 {
    v.iter().sum()
}

/// The recipes on a k6 file.
pub fn from_k6(k: &K6Run) -> Summarized {
    let flow: Vec<f64> = k
        .of(builtin::AGENT_FLOW_DURATION)
        .map(|p| p.value)
        .collect();
    let flow_stats = (!flow.is_empty()).then(|| {
        let mut s = flow.clone();
        s.sort_by(f64::total_cmp);
        FlowStats {
            count: s.len() as u64,
            min: s[0],
            max: s[s.len() - 1],
            avg: sum(&flow) / flow.len() as f64,
            p50: s[s.len() / 2],
            p95: at(&s, 0.95),
            p99: at(&s, 0.99),
        }
    });
    let mut by_op: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for p in k.of(builtin::HTTP_REQ_DURATION) {
        if let Some(op) = p.tag("operation") {
            by_op.entry(op.to_string()).or_default().push(p.value);
        }
    }
    let operations = by_op
        .into_iter()
        .map(|(op, v)| {
            let mut s = v.clone();
            s.sort_by(f64::total_cmp);
            let st = OpStats {
                count: v.len() as u64,
                avg: sum(&v) / v.len() as f64,
                p50: s[s.len() / 2],
                p95: at(&s, 0.95),
            };
            (op, st)
        })
        .collect();
    Summarized {
        source: "k6 NDJSON".into(),
        method: "exact: every sample sorted, as the jq recipes".into(),
        iterations: flow.len() as u64,
        flow: flow_stats,
        operations,
    }
}

/// The recipes' figures from a barrage summary.
pub fn from_summary(s: &Summary) -> Summarized {
    let stat = |m: &barrage_core::summary::MetricStats, k: &str| m.stat(k).unwrap_or(0.0);
    let flow = s
        .metric(builtin::AGENT_FLOW_DURATION)
        .filter(|m| m.count() > 0.0)
        .map(|m| FlowStats {
            count: m.count() as u64,
            min: stat(m, "min"),
            max: stat(m, "max"),
            avg: stat(m, "avg"),
            p50: stat(m, "med"),
            p95: stat(m, "p95"),
            p99: stat(m, "p99"),
        });
    let prefix = format!("{}{{operation:", builtin::HTTP_REQ_DURATION);
    let operations = s
        .metrics
        .iter()
        .filter_map(|(k, m)| {
            let op = k.strip_prefix(&prefix)?.strip_suffix('}')?;
            (m.count() > 0.0).then(|| {
                (
                    op.to_string(),
                    OpStats {
                        count: m.count() as u64,
                        avg: stat(m, "avg"),
                        p50: stat(m, "med"),
                        p95: stat(m, "p95"),
                    },
                )
            })
        })
        .collect();
    Summarized {
        source: "barrage summary".into(),
        method: "HDR histograms (3 significant digits)".into(),
        iterations: flow.as_ref().map_or(0, |f| f.count),
        flow,
        operations,
    }
}

/// The recipes on any results file.
pub fn summarize(f: &ResultsFile) -> Summarized {
    match f {
        ResultsFile::Summary(s) => from_summary(s),
        ResultsFile::K6(k) => from_k6(k),
    }
}

fn ms(x: f64) -> String {
    format!("{:.3}", x)
}

impl Summarized {
    /// The figures as text.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "source: {} ({})", self.source, self.method);
        let _ = writeln!(s, "iterations: {}", self.iterations);
        match &self.flow {
            Some(f) => {
                let _ = writeln!(
                    s,
                    "agent_flow_duration (ms): count={} min={} max={} avg={} p50={} p95={} p99={}",
                    f.count,
                    ms(f.min),
                    ms(f.max),
                    ms(f.avg),
                    ms(f.p50),
                    ms(f.p95),
                    ms(f.p99)
                );
            }
            None => s.push_str("agent_flow_duration: no samples\n"),
        }
        if !self.operations.is_empty() {
            let w = self
                .operations
                .keys()
                .map(|k| k.len())
                .max()
                .unwrap_or(0)
                .max(9);
            let _ = writeln!(s, "http_req_duration per operation (ms):");
            let _ = writeln!(
                s,
                "  {:w$}  {:>8}  {:>10}  {:>10}  {:>10}",
                "operation", "count", "avg", "p50", "p95"
            );
            for (op, o) in &self.operations {
                let _ = writeln!(
                    s,
                    "  {op:w$}  {:>8}  {:>10}  {:>10}  {:>10}",
                    o.count,
                    ms(o.avg),
                    ms(o.p50),
                    ms(o.p95)
                );
            }
        }
        s
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("figures serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_rule_is_the_recipes() {
        let s: Vec<f64> = (0..10).map(f64::from).collect();
        // jq: sort[(10*0.95)|floor] = sort[9]; sort[(10*0.99)|floor] = sort[9]; sort[5]
        assert_eq!(at(&s, 0.95), 9.0);
        assert_eq!(at(&s, 0.99), 9.0);
        assert_eq!(s[s.len() / 2], 5.0);
        let s: Vec<f64> = (0..100).map(f64::from).collect();
        assert_eq!(at(&s, 0.95), 95.0);
        assert_eq!(at(&s, 0.99), 99.0);
    }
}

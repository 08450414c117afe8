//! The one model of a run's results: [`Summary`], written as `summary.json` by `barrage run`
//! and by a standalone worker alike, read back by `barrage report`/`compare`, and rendered
//! to the k6-like text both modes print.
//!
//! | file          | holds                                                           |
//! |---------------|-----------------------------------------------------------------|
//! | `mod.rs`      | the types (serde + JSON Schema), reading a summary file back    |
//! | `assemble.rs` | [`assemble`]: merged data → `Summary`, the only constructor     |
//! | `text.rs`     | [`render_text`]: the human summary                              |
//! | `meta.rs`     | [`RigInfo`], [`HostInfo`]: who measured, on what                |
//! | `patterns.rs` | [`Patterns`]: figures that compare parts of a run (scaling, overhead) |
//!
//! Why one typed model: the controller and the standalone worker used to build two
//! different documents (one untyped and read back by string key), and evaluated thresholds
//! with opposite rules for a metric with no data. Now both call [`assemble`] on their merged
//! [`Snapshot`](crate::Snapshot) and [`Verdict`](crate::Verdict)s, so the same plan gives
//! the same file, text and exit code either way. `docs/summary.schema.json` is generated
//! from these types ([`json_schema`]); a test keeps the file current and validates every
//! summary the integration tests produce against it.
//!
//! Statistics per metric kind (times in ms; `rate` of a counter or trend is per second):
//!
//! | kind    | fields                                              |
//! |---------|-----------------------------------------------------|
//! | trend   | count, rate, min, avg, med, p90, p95, p99, max      |
//! | counter | count, rate                                         |
//! | rate    | rate, passes, fails                                 |
//! | gauge   | value, min, max                                     |
//!
//! Entries: one per metric (all its series merged), one per `metric{tag:value}` present,
//! and one per threshold's submetric. `histograms` holds every Trend series as base64 of its
//! V2-deflate HDR histogram (µs for times, 3 significant digits), so any percentile can be
//! recomputed exactly later.
mod assemble;
mod meta;
mod patterns;
mod text;

#[cfg(test)]
pub(crate) use assemble::vus_stats;
pub use assemble::{assemble, metric_entries, rfc3339, sink_stats, RunFacts};
pub use meta::{cpu_model, host, mem_total, os_name, rig, HostInfo, RigInfo};
pub use patterns::{Overhead, Patterns, Scaling, ScalingLevel};
pub use text::render_text;

use crate::metrics::ValueKind;
use crate::sink::{SinkError, TrendSink};
use crate::stages::StageKind;
use crate::timeseries::TimeSeriesDoc;
use base64::Engine as _;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The version of the `summary.json` layout. Bump it when a field changes meaning or goes
/// away; readers refuse other versions by name instead of misreading them.
pub const SCHEMA_VERSION: u32 = 1;

/// Which program produced the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunMode {
    /// `barrage run` / `barrage controller`: one or more workers, merged by the controller.
    Controller,
    /// `barrage-worker --standalone`: one worker, no controller.
    Standalone,
}

/// A run's results: `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    pub mode: RunMode,
    /// The barrage build that measured.
    pub barrage: RigInfo,
    /// The machine of the controller (or of the standalone worker).
    pub host: HostInfo,
    pub target: TargetInfo,
    /// The executor in words, e.g. `ramping-vus: 0→5 over 30s`.
    pub scenario: String,
    /// The plan as run (validated, flags applied; secrets are never part of a plan).
    pub plan: serde_json::Value,
    /// SHA-256 of the plan's canonical JSON: equal hashes, equal plans.
    pub plan_hash: String,
    /// RFC 3339, UTC.
    pub start: String,
    pub end: String,
    /// Run time the rates divide by, seconds.
    pub duration_s: f64,
    pub result: RunResult,
    pub workers: Vec<WorkerSummary>,
    /// Per metric, per `metric{tag:value}` and per threshold submetric.
    pub metrics: BTreeMap<String, MetricStats>,
    pub thresholds: Vec<ThresholdResult>,
    /// Every Trend series' cumulative HDR histogram, keyed by `metric{tag:value,…}`.
    pub histograms: BTreeMap<String, StoredHistogram>,
    pub timeseries: TimeSeriesDoc,
    /// Each stage of the plan on its own (ramps, plateaus, the stop tail), in order.
    #[serde(default)]
    pub stages: Vec<StageSummary>,
    /// The orchestration patterns' figures derived from the stages (scaling), when the
    /// plan allows them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patterns: Option<Patterns>,
    /// What the target consumed, when barrage knew its processes (`core/src/telemetry.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_telemetry: Option<crate::telemetry::TargetSummary>,
    /// The service-level objectives `flow_goodput` judged flows by (the plan's `[slo]`, or
    /// the seed's defaults): step or metric name → objective, ms.
    #[serde(default)]
    pub slo: BTreeMap<String, f64>,
    /// Whether the load generator delivered the plan (`core/src/validity/`): every problem
    /// with its worker and stage. `None` in summaries written before the check existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity: Option<crate::validity::Validity>,
    /// Soak runs: slopes of latency, errors and the target's resources after warm-up, with
    /// 95 % intervals (`core/src/trend.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trends: Option<crate::trend::Trends>,
}

/// One stage's results (`core/src/stages.rs`): its intervals' merged data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StageSummary {
    /// From 0, as thresholds name it (`{stage:1}`).
    pub index: u32,
    pub kind: StageKind,
    /// Planned start and end, seconds from the run's start (`None`: the open stop tail).
    pub start_s: f64,
    pub end_s: Option<f64>,
    /// Planned load at the stage's start and end, in `planned_unit`.
    pub planned_from: f64,
    pub planned_to: f64,
    /// `vus` (closed model) or `iterations/s` (open model).
    pub planned_unit: String,
    /// Closed intervals attributed to the stage, and their time.
    pub intervals: u32,
    pub duration_s: f64,
    /// Active VUs achieved over those intervals (summed over workers).
    pub vus_min: u64,
    pub vus_max: u64,
    pub vus_mean: f64,
    pub requests: f64,
    pub iterations: f64,
    pub req_per_s: f64,
    /// Share of failed requests; `None` without requests.
    pub error_rate: Option<f64>,
    /// Per metric and per `metric{tag:value}`, as the run's `metrics`.
    pub metrics: BTreeMap<String, MetricStats>,
}

/// The target as the plan names it (labels pass `core/src/label.rs`'s rule).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetInfo {
    pub url: String,
    pub runtime: String,
    pub version: String,
    pub llm: String,
    pub tier: Option<String>,
}

/// How the run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunResult {
    /// `completed`, `interrupted (SIGINT): …`, `aborted: …`, `failed: …`.
    pub end_reason: String,
    /// The exit code of the program that wrote the summary (README's table).
    pub exit_code: u8,
    /// No threshold failed.
    pub thresholds_ok: bool,
    /// Snapshots that arrived after their interval closed (counted in the totals, not in
    /// the time series).
    pub late_snapshots: u64,
}

/// One worker of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkerSummary {
    pub id: String,
    pub host: String,
    pub pid: u32,
    /// Pinned core, or -1.
    pub core: i32,
    pub version: String,
    /// Its share of the VU space at the end (or when lost), e.g. `0:1/2`.
    pub segment: Option<String>,
    pub clock_offset_us: i64,
    pub rtt_us: i64,
    /// Counted from its snapshots (a lost worker counts what it shipped).
    pub iterations: u64,
    pub requests: u64,
    pub snapshots: u64,
    /// What its `Done` reported, when it sent one.
    pub done_iterations: Option<u64>,
    pub lost: Option<LostWorker>,
    /// What it measured of itself (CPU, loop lag, iterations started), when it reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::validity::WorkerHealthSummary>,
}

/// When and why a worker was lost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LostWorker {
    pub at: String,
    /// Seconds after the run's start.
    pub after_s: f64,
    pub reason: String,
}

/// One metric's statistics (see the module table). Times are ms, data are bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum MetricStats {
    Trend {
        contains: ValueKind,
        count: u64,
        /// Samples per second of run time.
        rate: f64,
        /// `None` when there was no sample.
        min: Option<f64>,
        avg: Option<f64>,
        med: Option<f64>,
        p90: Option<f64>,
        p95: Option<f64>,
        p99: Option<f64>,
        max: Option<f64>,
    },
    Counter {
        contains: ValueKind,
        count: f64,
        /// Per second of run time.
        rate: f64,
    },
    Rate {
        contains: ValueKind,
        /// Share of true samples, 0..1.
        rate: f64,
        passes: u64,
        fails: u64,
    },
    Gauge {
        contains: ValueKind,
        value: f64,
        min: f64,
        max: f64,
    },
}

impl MetricStats {
    pub fn contains(&self) -> ValueKind {
        match self {
            MetricStats::Trend { contains, .. }
            | MetricStats::Counter { contains, .. }
            | MetricStats::Rate { contains, .. }
            | MetricStats::Gauge { contains, .. } => *contains,
        }
    }

    /// A trend's count, a counter's count, a rate's samples; a gauge's value.
    pub fn count(&self) -> f64 {
        match self {
            MetricStats::Trend { count, .. } => *count as f64,
            MetricStats::Counter { count, .. } => *count,
            MetricStats::Rate { passes, fails, .. } => (*passes + *fails) as f64,
            MetricStats::Gauge { value, .. } => *value,
        }
    }

    /// A named statistic as thresholds and reports name them (`p95`, `p(95)`, `med`, `avg`,
    /// `rate`, `count`, …), `None` when absent or without data.
    pub fn stat(&self, name: &str) -> Option<f64> {
        let name = match name {
            "p(90)" => "p90",
            "p(95)" => "p95",
            "p(99)" => "p99",
            "p(50)" | "p50" => "med",
            n => n,
        };
        match (self, name) {
            (MetricStats::Trend { count, .. }, "count") => Some(*count as f64),
            (MetricStats::Trend { rate, .. }, "rate") => Some(*rate),
            (MetricStats::Trend { min, .. }, "min") => *min,
            (MetricStats::Trend { avg, .. }, "avg") => *avg,
            (MetricStats::Trend { med, .. }, "med") => *med,
            (MetricStats::Trend { p90, .. }, "p90") => *p90,
            (MetricStats::Trend { p95, .. }, "p95") => *p95,
            (MetricStats::Trend { p99, .. }, "p99") => *p99,
            (MetricStats::Trend { max, .. }, "max") => *max,
            (MetricStats::Counter { count, .. }, "count") => Some(*count),
            (MetricStats::Counter { rate, .. }, "rate") => Some(*rate),
            (MetricStats::Rate { rate, .. }, "rate") => Some(*rate),
            (MetricStats::Rate { passes, .. }, "passes") => Some(*passes as f64),
            (MetricStats::Rate { fails, .. }, "fails") => Some(*fails as f64),
            (MetricStats::Gauge { value, .. }, "value") => Some(*value),
            (MetricStats::Gauge { min, .. }, "min") => Some(*min),
            (MetricStats::Gauge { max, .. }, "max") => Some(*max),
            _ => None,
        }
    }
}

/// One threshold expression and its verdict at the end of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ThresholdResult {
    /// `http_req_duration{operation:run_wait}`.
    pub metric: String,
    /// `p(95)<5000`.
    pub threshold: String,
    pub ok: bool,
    /// The aggregated value compared (ms for times); `None`: no data (which fails).
    pub observed: Option<f64>,
    pub abort_on_fail: bool,
}

/// One Trend series' cumulative histogram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoredHistogram {
    pub metric: String,
    pub tags: BTreeMap<String, String>,
    /// `us` for times, `1` for plain numbers.
    pub unit: String,
    pub significant_digits: u8,
    /// The HDR histogram, V2 + deflate serialization, base64 (standard alphabet).
    pub hdr_v2_deflate_base64: String,
}

impl StoredHistogram {
    /// The histogram back, with its exact counts.
    pub fn decode(&self) -> Result<TrendSink, SummaryError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.hdr_v2_deflate_base64)
            .map_err(|e| SummaryError::Histogram(self.metric.clone(), e.to_string()))?;
        TrendSink::decode(&bytes)
            .map_err(|e: SinkError| SummaryError::Histogram(self.metric.clone(), e.to_string()))
    }

    /// Factor from the stored values to the shown ones (µs → ms for times).
    pub fn scale(&self) -> f64 {
        if self.unit == "us" {
            1e-3
        } else {
            1.0
        }
    }
}

/// Why a summary file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a barrage summary: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: schema_version {found}, this barrage reads {SCHEMA_VERSION}: use the barrage version that wrote it ({writer})")]
    Version {
        path: PathBuf,
        found: u64,
        writer: String,
    },
    #[error("histogram of {0} does not decode: {1}")]
    Histogram(String, String),
}

impl Summary {
    /// Reads `summary.json`, refusing another schema version by name.
    pub fn read(path: &Path) -> Result<Summary, SummaryError> {
        let bytes = std::fs::read(path).map_err(|source| SummaryError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Summary::from_slice(&bytes, path)
    }

    /// Parses a summary; `path` names it in errors.
    pub fn from_slice(bytes: &[u8], path: &Path) -> Result<Summary, SummaryError> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|source| SummaryError::Parse {
                path: path.to_path_buf(),
                source,
            })?;
        let found = value["schema_version"].as_u64().unwrap_or(0);
        if found != u64::from(SCHEMA_VERSION) {
            return Err(SummaryError::Version {
                path: path.to_path_buf(),
                found,
                writer: value["barrage"]["version"]
                    .as_str()
                    .unwrap_or("unknown")
                    .to_string(),
            });
        }
        serde_json::from_value(value).map_err(|source| SummaryError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The statistics of `name` (`metric` or `metric{tag:value}`).
    pub fn metric(&self, name: &str) -> Option<&MetricStats> {
        self.metrics.get(name)
    }

    /// The stored histograms of `metric` whose tags include `filter`, merged: the exact
    /// distribution behind `metric{filter}`. `None` when no series matches.
    pub fn histogram(
        &self,
        metric: &str,
        filter: &[(String, String)],
    ) -> Result<Option<TrendSink>, SummaryError> {
        let mut out: Option<TrendSink> = None;
        for h in self.histograms.values() {
            if h.metric != metric
                || !filter
                    .iter()
                    .all(|(k, v)| h.tags.get(k).is_some_and(|x| x == v))
            {
                continue;
            }
            let t = h.decode()?;
            match &mut out {
                None => out = Some(t),
                Some(acc) => acc
                    .hist
                    .add(&t.hist)
                    .map_err(|e| SummaryError::Histogram(metric.to_string(), e.to_string()))?,
            }
        }
        Ok(out)
    }

    /// True when the program that wrote it exited 0.
    pub fn passed(&self) -> bool {
        self.result.exit_code == 0
    }
}

/// The JSON Schema of `summary.json` (`docs/summary.schema.json` is this, pretty-printed).
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Summary)).expect("a schema serializes")
}

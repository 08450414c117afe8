//! A run that proves the load it delivered (issue 12 §4). A load generator that could not
//! keep up produces figures that look precise and measure the generator: latencies inflated
//! by its own queueing, a "throughput" below the plan. So every worker measures itself each
//! interval ([`WorkerHealth`], on the wire in `Snapshot.health`), the controller (or a
//! standalone worker) keeps those figures per worker and stage ([`HealthBook`]), and
//! [`check`] decides whether the run delivered its plan. An invalid run says so first in
//! the text summary, lists every problem in `summary.json`'s `validity`, and exits 97
//! unless `--allow-invalid`.
//!
//! | check (per stage)          | model  | fails when                                                        |
//! |----------------------------|--------|-------------------------------------------------------------------|
//! | iterations started         | open   | a worker started more than `rate_tolerance` (1 %) fewer or more iterations than its share of the schedule had due (dropped iterations are not started) |
//! | VUs                        | closed | a worker ran other than the planned VUs at a tick of an interval whose plan was steady (an interval where the ramp changes the count is not judged) |
//! | schedule lag p99           | open   | the merged `schedule_lag` p99 is above `schedule_lag_p99` (1 ms); checked when the stage has ≥ 100 samples |
//! | worker CPU                 | both   | a worker's CPU over the stage (its thread's CPU time ÷ wall time, the mean of its intervals, not a single spike; a stage seen for under half an interval is not judged) is above `max_worker_cpu` (90 % of one core) |
//!
//! Why per worker: the worker that could not keep up is named, and a worker's own share is
//! exact (its segment's iterations) where a merged count would blame a lost worker's gap on
//! the others. The schedule lag is the merged Trend the pacing work records, per stage.
//!
//! An interval is attributed to the stage holding its midpoint, as [`crate::stages`] does;
//! one iteration per worker may cross each stage edge (due just before it, started just
//! after), so a shortfall of one iteration is always tolerated.
mod book;
mod check;
#[cfg(test)]
mod tests;

pub use book::HealthBook;
pub use check::{check, MIN_LAG_SAMPLES};

use crate::duration::serde_str;
use crate::stages::StageKind;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The plan's `[validity]`: the bounds a run must meet to be valid.
///
/// ```toml
/// [validity]
/// rate_tolerance = 0.01        # open model: started vs scheduled iterations, per worker and stage
/// schedule_lag_p99 = "1ms"     # open model: merged schedule_lag p99 per stage
/// max_worker_cpu = 0.9         # a worker's CPU over a stage, fraction of one core
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidityConfig {
    /// Largest share by which a worker's started iterations may differ from its scheduled
    /// ones over a stage (open model).
    #[serde(default = "default_rate_tolerance")]
    pub rate_tolerance: f64,
    /// Bound on the `schedule_lag` p99 of each stage (open model).
    #[serde(default = "default_schedule_lag", with = "serde_str")]
    pub schedule_lag_p99: Duration,
    /// Bound on each worker's CPU over a stage, as a fraction of one core.
    #[serde(default = "default_max_worker_cpu")]
    pub max_worker_cpu: f64,
}

fn default_rate_tolerance() -> f64 {
    0.01
}
fn default_schedule_lag() -> Duration {
    Duration::from_millis(1)
}
fn default_max_worker_cpu() -> f64 {
    0.9
}

impl Default for ValidityConfig {
    fn default() -> Self {
        ValidityConfig {
            rate_tolerance: default_rate_tolerance(),
            schedule_lag_p99: default_schedule_lag(),
            max_worker_cpu: default_max_worker_cpu(),
        }
    }
}

impl ValidityConfig {
    pub fn is_default(&self) -> bool {
        *self == ValidityConfig::default()
    }

    /// Every problem, each naming the field and the accepted range.
    pub fn validate(&self, errors: &mut Vec<String>) {
        if !(0.0..1.0).contains(&self.rate_tolerance) {
            errors.push(format!(
                "validity.rate_tolerance: {} must be at least 0 and below 1, e.g. 0.01 (1 %)",
                self.rate_tolerance
            ));
        }
        if self.schedule_lag_p99.is_zero() {
            errors.push("validity.schedule_lag_p99: must be > 0, e.g. \"1ms\"".into());
        }
        if !(self.max_worker_cpu > 0.0 && self.max_worker_cpu <= 1.0) {
            errors.push(format!(
                "validity.max_worker_cpu: {} must be above 0 and at most 1 (a fraction of one core), e.g. 0.9",
                self.max_worker_cpu
            ));
        }
    }
}

/// Closed model: the VUs this worker's plan wanted and the VUs it ran, sampled at the
/// executor's ticks of one interval (fewest and most of each).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VuSample {
    pub planned_min: u64,
    pub planned_max: u64,
    pub active_min: u64,
    pub active_max: u64,
}

impl VuSample {
    /// Adds one tick's `planned` and `active`.
    pub fn with(self, first: bool, planned: u64, active: u64) -> VuSample {
        if first {
            return VuSample {
                planned_min: planned,
                planned_max: planned,
                active_min: active,
                active_max: active,
            };
        }
        VuSample {
            planned_min: self.planned_min.min(planned),
            planned_max: self.planned_max.max(planned),
            active_min: self.active_min.min(active),
            active_max: self.active_max.max(active),
        }
    }

    /// The plan held one count over the interval (a ramp step inside it is not judged).
    pub fn steady(&self) -> bool {
        self.planned_min == self.planned_max
    }

    /// Every tick ran exactly the planned VUs.
    pub fn matches(&self) -> bool {
        self.active_min == self.planned_min && self.active_max == self.planned_max
    }
}

/// What one worker measured of itself over one interval.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WorkerHealth {
    /// The worker thread's CPU time over the interval ÷ its wall time: a fraction of one core.
    pub cpu: f64,
    /// That wall time, µs: a stage's CPU is weighted by it (the last, partial interval of a
    /// run may be a few ms, too short to judge alone).
    pub cpu_wall_us: u64,
    /// How late the worker's periodic probe timer woke: most and 99th percentile, µs.
    pub loop_lag_max_us: u64,
    pub loop_lag_p99_us: u64,
    /// Closed model: planned against running VUs at the executor's ticks (`None`: no tick).
    pub vus: Option<VuSample>,
    /// Iterations this worker started in the interval.
    pub iterations_started: u64,
    /// Open model: iterations of this worker's share due in the interval.
    pub iterations_due: Option<u64>,
    /// Open model: iterations this worker dropped (no free VU) in the interval.
    pub iterations_dropped: u64,
    /// The share or the schedule changed during the interval (a `Reassign`, a stop): its
    /// started and due counts are not compared.
    pub schedule_changed: bool,
}

/// The bounds a run was checked against (the plan's `[validity]`, in display units).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidityBounds {
    /// Open model: largest share a worker's started iterations may miss its schedule by.
    pub rate_tolerance: f64,
    /// Open model: bound on each stage's `schedule_lag` p99, ms.
    pub schedule_lag_p99_ms: f64,
    /// Bound on each worker's CPU over a stage, % of one core.
    pub max_worker_cpu_pct: f64,
}

impl From<&ValidityConfig> for ValidityBounds {
    fn from(c: &ValidityConfig) -> Self {
        ValidityBounds {
            rate_tolerance: c.rate_tolerance,
            schedule_lag_p99_ms: c.schedule_lag_p99.as_secs_f64() * 1e3,
            max_worker_cpu_pct: c.max_worker_cpu * 100.0,
        }
    }
}

/// Which check a problem failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// Open model: started iterations against the scheduled ones.
    IterationRate,
    /// Closed model: running VUs against the planned ones.
    Vus,
    /// Open model: the stage's merged schedule lag p99.
    ScheduleLag,
    /// A worker's CPU over the stage.
    WorkerCpu,
}

impl ProblemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::IterationRate => "iteration_rate",
            ProblemKind::Vus => "vus",
            ProblemKind::ScheduleLag => "schedule_lag",
            ProblemKind::WorkerCpu => "worker_cpu",
        }
    }
}

/// One reason a run is invalid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidityProblem {
    /// The worker that did not deliver; `None` for a figure of all workers merged.
    pub worker: Option<String>,
    /// The stage's index (as `{stage:N}` names it) and kind.
    pub stage: u32,
    pub stage_kind: StageKind,
    pub what: ProblemKind,
    /// What was measured, and the bound it broke, in `unit`.
    pub observed: f64,
    pub bound: f64,
    /// `iterations/s`, `vus`, `ms`, `% of a core`.
    pub unit: String,
    /// One line a person reads.
    pub detail: String,
}

/// Whether the run delivered its plan (`summary.json`'s `validity`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Validity {
    /// No problem was found.
    pub valid: bool,
    pub problems: Vec<ValidityProblem>,
    pub bounds: ValidityBounds,
    /// What could not be checked, and why (e.g. no `schedule_lag` data).
    pub unchecked: Vec<String>,
    /// `--allow-invalid`: the exit code ignores invalidity (the summary still says it).
    pub allow_invalid: bool,
}

/// One worker's own figures over the run (`summary.json`'s `workers[].health`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkerHealthSummary {
    /// Intervals it reported its health in.
    pub intervals: u32,
    /// Its thread's CPU, % of one core: the mean over those intervals, and the busiest one.
    pub cpu_mean_pct: f64,
    pub cpu_max_pct: f64,
    /// How late its probe timer woke: the worst wake-up, and the worst interval's p99, ms.
    pub loop_lag_max_ms: f64,
    pub loop_lag_p99_ms: f64,
    pub iterations_started: u64,
    /// Open model: iterations of its share that were due, and those it dropped.
    pub iterations_due: Option<u64>,
    pub iterations_dropped: u64,
}

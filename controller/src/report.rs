//! The outcome of a run, as the coordinator hands it to the summary: merged sinks, the
//! time series, the workers (lost ones too), the thresholds' verdicts and why it ended.
use crate::exit_code;
use crate::timeseries::TimeSeries;
use barrage_core::threshold::Verdict;
use barrage_core::{Plan, Segment, Snapshot};
use std::time::{Duration, SystemTime};

/// Why the run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum EndReason {
    /// Every worker finished its part of the plan.
    Completed,
    /// One SIGINT: workers were told to stop gracefully.
    Interrupted,
    /// A second SIGINT: workers were aborted.
    Aborted,
    /// An `abortOnFail` threshold failed.
    ThresholdAbort(String),
    /// Workers were lost and the run could not go on.
    WorkersLost(String),
    /// The plan's duration plus graceful stop plus slack passed without every worker done.
    Deadline,
    /// A checkpoint of a run still going (`--soak`): what its partial summary says.
    Partial(String),
}

impl EndReason {
    pub fn describe(&self) -> String {
        match self {
            EndReason::Completed => "completed".into(),
            EndReason::Interrupted => "interrupted (SIGINT): stopped gracefully".into(),
            EndReason::Aborted => "interrupted twice (SIGINT): aborted".into(),
            EndReason::ThresholdAbort(why) => format!("aborted: {why}"),
            EndReason::WorkersLost(why) => format!("failed: {why}"),
            EndReason::Deadline => {
                "aborted: workers still running past the plan's duration and graceful stop".into()
            }
            EndReason::Partial(what) => format!("partial: {what}"),
        }
    }
}

/// Why and when a worker was lost.
#[derive(Debug, Clone, PartialEq)]
pub struct Lost {
    pub at: SystemTime,
    pub reason: String,
}

/// One worker of the run, as the summary lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerRecord {
    pub id: String,
    pub host: String,
    pub pid: u32,
    /// Pinned core, or -1.
    pub core: i32,
    pub version: String,
    /// Its segment at the end (or when it was lost).
    pub segment: Option<Segment>,
    pub clock_offset_us: i64,
    pub rtt_us: i64,
    /// From its snapshots (so lost workers count what they shipped).
    pub iterations: u64,
    pub requests: u64,
    pub snapshots: u64,
    /// What its `Done` reported, when it sent one.
    pub done_iterations: Option<u64>,
    pub lost: Option<Lost>,
    /// What it measured of itself (`barrage_core::validity`), when it reported it.
    pub health: Option<barrage_core::validity::WorkerHealthSummary>,
}

/// Everything the summary needs.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub plan: Plan,
    pub start: SystemTime,
    pub end: SystemTime,
    /// Run time the rates divide by.
    pub elapsed: Duration,
    pub total: Snapshot,
    pub timeseries: TimeSeries,
    /// Per-stage merged data.
    pub stages: barrage_core::stages::StageBook,
    pub workers: Vec<WorkerRecord>,
    pub thresholds: Vec<Verdict>,
    pub end_reason: EndReason,
    /// Snapshots that arrived after their interval closed.
    pub late_snapshots: u64,
    /// Whether the workers delivered the plan (`None`: not checked).
    pub validity: Option<barrage_core::validity::Validity>,
}

impl RunReport {
    pub fn thresholds_failed(&self) -> bool {
        self.thresholds.iter().any(|o| !o.ok)
    }

    /// The process exit code this run deserves before its validity is weighed (see
    /// [`crate::exit_code`]; `app::finalize` applies [`exit_code::with_validity`]).
    pub fn exit_code(&self) -> u8 {
        match &self.end_reason {
            EndReason::Aborted => exit_code::INTERRUPTED,
            EndReason::WorkersLost(_) => exit_code::WORKERS_LOST,
            EndReason::ThresholdAbort(_) => exit_code::THRESHOLDS_FAILED,
            _ if self.thresholds_failed() => exit_code::THRESHOLDS_FAILED,
            EndReason::Deadline => exit_code::FAILURE,
            _ => exit_code::SUCCESS,
        }
    }
}

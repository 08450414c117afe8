//! The end of a run: the last intervals closed, thresholds evaluated over the whole run,
//! and one [`RunReport`] assembled from the roster and the merged figures. Workers that
//! neither said `Done` nor were lost are reported as lost ("did not finish").
use super::roster::Roster;
use crate::merge::Merger;
use crate::report::{EndReason, Lost, RunReport};
use crate::timeseries::{TimePoint, TimeSeries};
use barrage_core::threshold::ThresholdSet;
use barrage_core::Plan;
use std::time::{Duration, Instant, SystemTime};

/// What the hub hands over at the end.
pub(crate) struct Ending<'a> {
    pub plan: &'a Plan,
    pub thresholds: &'a ThresholdSet,
    pub roster: &'a mut Roster,
    pub merger: &'a mut Merger,
    pub timeseries: TimeSeries,
    pub stages: barrage_core::stages::StageBook,
    /// Each worker's health figures (the run's validity).
    pub health: &'a barrage_core::validity::HealthBook,
    /// Stage time 0 (monotonic and wall clock), if the run started.
    pub started: Option<(Instant, SystemTime)>,
    pub end_reason: Option<EndReason>,
}

/// Assembles the report of the run.
pub(crate) fn assemble(e: Ending<'_>) -> RunReport {
    let Ending {
        plan,
        thresholds,
        roster,
        merger,
        mut timeseries,
        mut stages,
        health,
        started,
        end_reason,
    } = e;
    for c in merger.close_all() {
        timeseries.push(TimePoint::from_interval(c.seq, &c.snapshot, c.workers));
        stages.add(c.seq, &c.snapshot);
    }
    let end = SystemTime::now();
    let (start, elapsed) = match started {
        Some((_, at)) => (at, end.duration_since(at).unwrap_or_default()),
        None => (end, Duration::ZERO),
    };
    let outcomes = thresholds.evaluate_staged(merger.total(), Some(&stages), elapsed);
    let mut workers = Vec::new();
    for (id, w) in roster.iter_mut() {
        w.out = None;
        let tally = merger.worker(id).cloned().unwrap_or_default();
        let lost = w.lost.clone().or_else(|| {
            (w.done.is_none() && started.is_some()).then(|| Lost {
                at: end,
                reason: "did not finish before the run ended".into(),
            })
        });
        workers.push(w.record(id, &tally, lost, health.worker(id)));
    }
    let validity = barrage_core::validity::check(health, &stages, &plan.validity);
    if !validity.valid {
        tracing::warn!(
            problems = validity.problems.len(),
            "the run is invalid: the workers did not deliver the plan"
        );
    }
    let total = merger.total().clone();
    RunReport {
        plan: plan.clone(),
        start,
        end,
        elapsed,
        total,
        timeseries,
        stages,
        workers,
        thresholds: outcomes,
        end_reason: end_reason.unwrap_or(EndReason::Completed),
        late_snapshots: merger.late,
        validity: Some(validity),
    }
}

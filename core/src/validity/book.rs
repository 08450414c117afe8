//! [`HealthBook`]: each worker's [`WorkerHealth`] reports, added up per stage as they
//! arrive. Memory is workers × stages, never time.
use super::{WorkerHealth, WorkerHealthSummary};
use crate::executor::ExecutorConfig;
use crate::stages::{stage_of_interval, StageSpan};
use std::collections::BTreeMap;
use std::time::Duration;

/// One worker's figures over one stage.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct WorkerStage {
    /// Intervals reported in the stage.
    pub intervals: u32,
    /// CPU time and wall time over the stage, µs; the busiest interval (of at least half
    /// an interval's wall time).
    pub cpu_us: f64,
    pub wall_us: f64,
    pub cpu_max: f64,
    pub lag_max_us: u64,
    pub lag_p99_max_us: u64,
    /// Open model, over the intervals whose schedule did not change: started and due.
    pub started: u64,
    pub due: u64,
    pub rate_intervals: u32,
    /// Over every interval, for the worker's own figures.
    pub started_all: u64,
    pub due_all: u64,
    pub dropped: u64,
    /// Closed model: intervals with a steady plan, those whose VUs differed, and the
    /// worst of them (seq, planned, active: the tick farthest from the plan).
    pub vus_judged: u32,
    pub vus_off: u32,
    pub vus_worst: Option<(u64, u64, u64)>,
}

/// Every worker's health, per stage (see the module docs of [`super`]).
#[derive(Debug, Clone)]
pub struct HealthBook {
    pub(super) spans: Vec<StageSpan>,
    pub(super) interval: Duration,
    pub(super) open_model: bool,
    /// Per worker id, one entry per span.
    pub(super) workers: BTreeMap<String, Vec<WorkerStage>>,
    /// Workers that sent snapshots without health figures (simulated or foreign ones).
    pub(super) silent: BTreeMap<String, u64>,
}

impl HealthBook {
    pub fn new(executor: &ExecutorConfig, interval: Duration) -> HealthBook {
        HealthBook {
            spans: StageSpan::of(executor),
            interval,
            open_model: executor.is_arrival_rate(),
            workers: BTreeMap::new(),
            silent: BTreeMap::new(),
        }
    }

    /// Adds `worker`'s figures of interval `seq` (`None`: it sent none).
    pub fn add(&mut self, worker: &str, seq: u64, health: Option<&WorkerHealth>) {
        let Some(h) = health else {
            *self.silent.entry(worker.to_string()).or_default() += 1;
            return;
        };
        let n = self.spans.len();
        let stage = stage_of_interval(&self.spans, self.interval, seq);
        let stages = self
            .workers
            .entry(worker.to_string())
            .or_insert_with(|| vec![WorkerStage::default(); n]);
        let s = &mut stages[stage];
        s.intervals += 1;
        let cpu = if h.cpu.is_finite() {
            h.cpu.max(0.0)
        } else {
            0.0
        };
        s.cpu_us += cpu * h.cpu_wall_us as f64;
        s.wall_us += h.cpu_wall_us as f64;
        if h.cpu_wall_us as f64 >= self.interval.as_secs_f64() * 0.5e6 {
            s.cpu_max = s.cpu_max.max(cpu);
        }
        s.lag_max_us = s.lag_max_us.max(h.loop_lag_max_us);
        s.lag_p99_max_us = s.lag_p99_max_us.max(h.loop_lag_p99_us);
        s.dropped += h.iterations_dropped;
        s.started_all += h.iterations_started;
        s.due_all += h.iterations_due.unwrap_or(0);
        if let Some(due) = h.iterations_due {
            if !h.schedule_changed {
                s.started += h.iterations_started;
                s.due += due;
                s.rate_intervals += 1;
            }
        }
        if let Some(v) = h.vus.filter(|v| v.steady()) {
            s.vus_judged += 1;
            if !v.matches() {
                s.vus_off += 1;
                let planned = v.planned_min;
                // the tick farthest from the plan
                let active = if planned - v.active_min.min(planned)
                    >= v.active_max.saturating_sub(planned)
                {
                    v.active_min
                } else {
                    v.active_max
                };
                let gap = |(_, p, a): (u64, u64, u64)| p.abs_diff(a);
                if s.vus_worst
                    .is_none_or(|w| planned.abs_diff(active) > gap(w))
                {
                    s.vus_worst = Some((seq, planned, active));
                }
            }
        }
    }

    /// `worker`'s own figures over the whole run, `None` when it reported none.
    pub fn worker(&self, id: &str) -> Option<WorkerHealthSummary> {
        let stages = self.workers.get(id)?;
        let intervals: u32 = stages.iter().map(|s| s.intervals).sum();
        if intervals == 0 {
            return None;
        }
        let r3 = |x: f64| (x * 1000.0).round() / 1000.0;
        let cpu_us: f64 = stages.iter().map(|s| s.cpu_us).sum();
        let wall_us: f64 = stages.iter().map(|s| s.wall_us).sum();
        let cpu_max = stages.iter().map(|s| s.cpu_max).fold(0.0, f64::max);
        let lag_max = stages.iter().map(|s| s.lag_max_us).max().unwrap_or(0);
        let lag_p99 = stages.iter().map(|s| s.lag_p99_max_us).max().unwrap_or(0);
        Some(WorkerHealthSummary {
            intervals,
            cpu_mean_pct: r3(if wall_us > 0.0 {
                cpu_us / wall_us * 100.0
            } else {
                0.0
            }),
            cpu_max_pct: r3(cpu_max * 100.0),
            loop_lag_max_ms: r3(lag_max as f64 / 1e3),
            loop_lag_p99_ms: r3(lag_p99 as f64 / 1e3),
            iterations_started: stages.iter().map(|s| s.started_all).sum(),
            iterations_due: self
                .open_model
                .then(|| stages.iter().map(|s| s.due_all).sum()),
            iterations_dropped: stages.iter().map(|s| s.dropped).sum(),
        })
    }
}

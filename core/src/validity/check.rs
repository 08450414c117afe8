//! [`check`]: the pure verdict on a run's health figures (the table in [`super`]).
use super::{HealthBook, ProblemKind, Validity, ValidityConfig, ValidityProblem};
use crate::metrics::builtin;
use crate::sink::Sink;
use crate::stages::{StageBook, StageKind};

/// Fewest `schedule_lag` samples in a stage for its p99 to be judged: below 100, a p99 is
/// the stage's maximum, and one late wake-up of a shared machine would decide it.
pub const MIN_LAG_SAMPLES: u64 = 100;

fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Checks every worker's figures per stage, and each stage's merged schedule lag, against
/// `cfg`; `stages` is the run's per-stage merged data (the same plan as `book`).
pub fn check(book: &HealthBook, stages: &StageBook, cfg: &ValidityConfig) -> Validity {
    let mut problems = Vec::new();
    let mut unchecked = Vec::new();
    let kind_of = |i: usize| {
        book.spans
            .get(i)
            .map_or(StageKind::Stop, |s: &crate::stages::StageSpan| s.kind)
    };
    let interval_s = book.interval.as_secs_f64();
    for (worker, per_stage) in &book.workers {
        for (i, s) in per_stage.iter().enumerate() {
            if s.intervals == 0 {
                continue;
            }
            let problem =
                |what, observed: f64, bound: f64, unit: &str, detail: String| ValidityProblem {
                    worker: Some(worker.clone()),
                    stage: i as u32,
                    stage_kind: kind_of(i),
                    what,
                    observed: r3(observed),
                    bound: r3(bound),
                    unit: unit.into(),
                    detail,
                };
            let cpu = if s.wall_us > 0.0 {
                s.cpu_us / s.wall_us
            } else {
                0.0
            };
            // a stage seen for less than half an interval (the run's last, partial cut:
            // a few ms of draining) is too short to judge a CPU share on
            let judged = s.wall_us >= interval_s * 0.5e6;
            if judged && cpu > cfg.max_worker_cpu {
                problems.push(problem(
                    ProblemKind::WorkerCpu,
                    cpu * 100.0,
                    cfg.max_worker_cpu * 100.0,
                    "% of a core",
                    format!(
                        "the worker's CPU was {:.1} % of a core over the stage's {} intervals (busiest {:.1} %): it was saturated, so its timings include its own queueing",
                        cpu * 100.0,
                        s.intervals,
                        s.cpu_max * 100.0
                    ),
                ));
            }
            // a stage with nothing due (the stop tail) only sees late starts of earlier
            // stages, whose shortfall is reported there
            if book.open_model && s.rate_intervals > 0 && s.due > 0 {
                let diff = s.started as f64 - s.due as f64;
                let allowed = (cfg.rate_tolerance * s.due as f64).max(1.0);
                if diff.abs() > allowed {
                    let secs = s.rate_intervals as f64 * interval_s;
                    let pct = format!("{:+.1} %", diff / s.due as f64 * 100.0);
                    let dropped = if s.dropped > 0 {
                        format!("; {} dropped for want of a free VU", s.dropped)
                    } else {
                        String::new()
                    };
                    problems.push(problem(
                        ProblemKind::IterationRate,
                        s.started as f64 / secs,
                        s.due as f64 / secs,
                        "iterations/s",
                        format!(
                            "started {} of the {} iterations its share had due ({pct}, beyond ±{} %){dropped}",
                            s.started,
                            s.due,
                            cfg.rate_tolerance * 100.0
                        ),
                    ));
                }
            }
            if let (false, Some((seq, planned, active))) = (book.open_model, s.vus_worst) {
                problems.push(problem(
                    ProblemKind::Vus,
                    active as f64,
                    planned as f64,
                    "vus",
                    format!(
                        "ran {active} VUs where the plan had {planned} (interval {seq}); {} of {} intervals with a steady plan were off it",
                        s.vus_off, s.vus_judged
                    ),
                ));
            }
        }
    }
    let bound_us = cfg.schedule_lag_p99.as_secs_f64() * 1e6;
    // a p99 of fewer samples is their maximum: one late wake-up would judge the stage
    let mut lag_seen = false;
    for (i, (span, d)) in stages.spans.iter().zip(&stages.data).enumerate() {
        let Some(Sink::Trend(t)) = d.snapshot.submetric(builtin::SCHEDULE_LAG, &[]) else {
            continue;
        };
        if t.count() == 0 {
            continue;
        }
        lag_seen = true;
        if t.count() < MIN_LAG_SAMPLES {
            unchecked.push(format!(
                "stage {i}: {} of {} iterations, too few for a schedule lag p99 ({MIN_LAG_SAMPLES} needed)",
                builtin::SCHEDULE_LAG,
                t.count()
            ));
            continue;
        }
        let p99 = t.percentile(99.0);
        if p99 > bound_us {
            problems.push(ValidityProblem {
                worker: None,
                stage: i as u32,
                stage_kind: span.kind,
                what: ProblemKind::ScheduleLag,
                observed: r3(p99 / 1e3),
                bound: r3(bound_us / 1e3),
                unit: "ms".into(),
                detail: format!(
                    "schedule_lag p99 of {} iterations, all workers: iterations started later than their schedule said",
                    t.count()
                ),
            });
        }
    }
    if book.open_model && !lag_seen {
        unchecked.push(format!(
            "{}: no data, so the schedule lag p99 was not checked",
            builtin::SCHEDULE_LAG
        ));
    }
    for (worker, snapshots) in &book.silent {
        if !book.workers.contains_key(worker) {
            unchecked.push(format!(
                "worker {worker} sent no health figures with its {snapshots} snapshot(s): its CPU, VUs and iterations were not checked"
            ));
        }
    }
    problems.sort_by(|a, b| (a.stage, &a.worker).cmp(&(b.stage, &b.worker)));
    Validity {
        valid: problems.is_empty(),
        problems,
        bounds: cfg.into(),
        unchecked,
        allow_invalid: false,
    }
}

use super::*;
use crate::executor::{ExecutorConfig, Stage};
use crate::metrics::{builtin, MetricKind, SeriesKey};
use crate::snapshot::Snapshot;
use crate::stages::StageBook;

const SEC: Duration = Duration::from_secs(1);

fn open_plan() -> ExecutorConfig {
    // stage 0: 0→100/s over 5 s (ramp), stage 1: 100/s for 10 s (plateau), stage 2: stop
    ExecutorConfig::RampingArrivalRate {
        start_rate: 0,
        time_unit: SEC,
        stages: vec![Stage::new(5, 100), Stage::new(10, 100)],
        pre_allocated_vus: 10,
        max_vus: 100,
        arrivals: Default::default(),
    }
}

fn closed_plan() -> ExecutorConfig {
    ExecutorConfig::RampingVus {
        start_vus: 0,
        stages: vec![Stage::new(5, 5), Stage::new(10, 5)],
        graceful_ramp_down: SEC,
    }
}

fn open(started: u64, due: u64, cpu: f64) -> WorkerHealth {
    WorkerHealth {
        cpu,
        cpu_wall_us: 1_000_000,
        iterations_started: started,
        iterations_due: Some(due),
        ..Default::default()
    }
}

fn closed(planned: (u64, u64), active: (u64, u64)) -> WorkerHealth {
    WorkerHealth {
        cpu: 0.2,
        cpu_wall_us: 1_000_000,
        vus: Some(VuSample {
            planned_min: planned.0,
            planned_max: planned.1,
            active_min: active.0,
            active_max: active.1,
        }),
        ..Default::default()
    }
}

fn run(
    exec: &ExecutorConfig,
    reports: impl Fn(&str, u64) -> Option<WorkerHealth>,
    workers: &[&str],
) -> Validity {
    let mut book = HealthBook::new(exec, SEC);
    let stages = StageBook::new(exec, SEC);
    for seq in 0..17 {
        for w in workers {
            book.add(w, seq, reports(w, seq).as_ref());
        }
    }
    check(&book, &stages, &ValidityConfig::default())
}

#[test]
fn a_worker_that_started_its_schedule_is_valid() {
    let v = run(&open_plan(), |_, _| Some(open(50, 50, 0.4)), &["a", "b"]);
    assert!(v.valid, "{v:?}");
    assert!(v.problems.is_empty());
    // open model without schedule_lag data: said, not failed
    assert!(
        v.unchecked.iter().any(|u| u.contains("schedule_lag")),
        "{v:?}"
    );
    assert_eq!(v.bounds.max_worker_cpu_pct, 90.0);
}

#[test]
fn a_starved_worker_is_named_with_its_stage() {
    // worker b starts half of what is due on the plateau (seq 5..15) and drops some
    let v = run(
        &open_plan(),
        |w, seq| {
            let mut h = open(50, 50, 0.4);
            if w == "b" && (5..15).contains(&seq) {
                h.iterations_started = 25;
                h.iterations_dropped = 5;
            }
            Some(h)
        },
        &["a", "b"],
    );
    assert!(!v.valid);
    assert_eq!(v.problems.len(), 1, "{v:?}");
    let p = &v.problems[0];
    assert_eq!(p.worker.as_deref(), Some("b"));
    assert_eq!((p.stage, p.stage_kind), (1, StageKind::Plateau));
    assert_eq!(p.what, ProblemKind::IterationRate);
    assert_eq!((p.observed, p.bound), (25.0, 50.0));
    assert!(p.detail.contains("started 250 of the 500"), "{}", p.detail);
    assert!(p.detail.contains("-50.0 %"), "{}", p.detail);
    assert!(p.detail.contains("50 dropped"), "{}", p.detail);
}

#[test]
fn rate_tolerance_edges() {
    // (started, due) per interval of the plateau → valid?
    let cases: &[(u64, u64, bool)] = &[
        (1000, 1000, true),
        (995, 1000, true),   // 0.5 % short
        (990, 1000, true),   // exactly 1 %: 100 short of 10,000
        (989, 1000, false),  // 1.1 % short
        (1011, 1000, false), // over-delivery is off the plan too
        (3, 3, true),
    ];
    for &(started, due, valid) in cases {
        let v = run(
            &open_plan(),
            |_, seq| {
                Some(if (5..15).contains(&seq) {
                    open(started, due, 0.1)
                } else {
                    open(0, 0, 0.1)
                })
            },
            &["a"],
        );
        assert_eq!(v.valid, valid, "{started}/{due}: {v:?}");
    }
    // one iteration across a stage edge is always tolerated, even on a tiny stage
    let v = run(
        &open_plan(),
        |_, seq| {
            Some(match seq {
                14 => open(2, 3, 0.1), // the last plateau interval: one started after the edge
                15 => open(1, 0, 0.1), // ... in the stop tail
                16 => open(30, 0, 0.1), // late starts of a starved plateau land there too
                _ => open(0, 0, 0.1),
            })
        },
        &["a"],
    );
    assert!(v.valid, "{v:?}");
}

#[test]
fn intervals_whose_schedule_changed_are_not_compared() {
    let v = run(
        &open_plan(),
        |_, seq| {
            let mut h = open(50, 50, 0.1);
            if seq == 7 {
                // a Reassign: the new share's earlier iterations were never this worker's
                h.iterations_started = 10;
                h.schedule_changed = true;
            }
            Some(h)
        },
        &["a"],
    );
    assert!(v.valid, "{v:?}");
}

#[test]
fn cpu_is_judged_on_the_stage_mean_not_a_spike() {
    let spike = run(
        &closed_plan(),
        |_, seq| {
            Some(WorkerHealth {
                cpu: if seq == 8 { 1.0 } else { 0.3 },
                ..closed((5, 5), (5, 5))
            })
        },
        &["a"],
    );
    assert!(spike.valid, "{spike:?}");
    // a run's last, partial interval (a few ms of wall time at full CPU) does not tip the
    // stop tail over alone: CPU is weighted by wall time
    let tail = run(
        &closed_plan(),
        |_, seq| {
            Some(match seq {
                15 => WorkerHealth {
                    cpu: 0.2,
                    ..closed((0, 0), (0, 0))
                },
                16 => WorkerHealth {
                    cpu: 1.0,
                    cpu_wall_us: 4_000,
                    ..closed((0, 0), (0, 0))
                },
                _ => closed((5, 5), (5, 5)),
            })
        },
        &["a"],
    );
    assert!(tail.valid, "{tail:?}");
    // ... nor when it is the stop tail's only interval
    let only = run(
        &closed_plan(),
        |_, seq| {
            Some(match seq {
                15 => WorkerHealth {
                    cpu: 1.0,
                    cpu_wall_us: 12_000,
                    ..closed((0, 0), (0, 0))
                },
                16 => WorkerHealth {
                    cpu: 0.0,
                    cpu_wall_us: 0,
                    ..closed((0, 0), (0, 0))
                },
                _ => closed((5, 5), (5, 5)),
            })
        },
        &["a"],
    );
    assert!(only.valid, "{only:?}");
    let saturated = run(
        &closed_plan(),
        |w, seq| {
            let busy = w == "hot" && seq < 5;
            Some(WorkerHealth {
                cpu: if busy { 0.97 } else { 0.3 },
                ..closed((1, 1), (1, 1))
            })
        },
        &["cool", "hot"],
    );
    assert!(!saturated.valid);
    let p = &saturated.problems[0];
    assert_eq!(saturated.problems.len(), 1, "{saturated:?}");
    assert_eq!(
        (p.worker.as_deref(), p.stage, p.what),
        (Some("hot"), 0, ProblemKind::WorkerCpu)
    );
    assert_eq!((p.observed, p.bound), (97.0, 90.0));
}

#[test]
fn closed_model_vus_must_match_the_plan_where_it_is_steady() {
    // ramp intervals (planned changes inside) may lag; steady ones may not
    let v = run(
        &closed_plan(),
        |_, seq| {
            Some(match seq {
                0..=4 => closed((seq, seq + 1), (seq, seq)),
                _ => closed((5, 5), (5, 5)),
            })
        },
        &["a"],
    );
    assert!(v.valid, "{v:?}");
    let v = run(
        &closed_plan(),
        |_, seq| {
            Some(match seq {
                9 => closed((5, 5), (3, 5)),
                11 => closed((5, 5), (4, 5)),
                _ => closed((5, 5), (5, 5)),
            })
        },
        &["a"],
    );
    assert!(!v.valid);
    let p = &v.problems[0];
    assert_eq!(
        (p.what, p.stage, p.observed, p.bound),
        (ProblemKind::Vus, 1, 3.0, 5.0)
    );
    assert!(p.detail.contains("interval 9"), "{}", p.detail);
    assert!(p.detail.contains("2 of 10"), "{}", p.detail);
}

#[test]
fn schedule_lag_p99_per_stage_from_the_merged_data() {
    let exec = open_plan();
    for (lag_us, valid) in [(400.0, true), (2500.0, false)] {
        let mut stages = StageBook::new(&exec, SEC);
        for seq in 0..15 {
            let mut s = Snapshot::default();
            for _ in 0..100 {
                s.add(
                    SeriesKey::new(builtin::SCHEDULE_LAG),
                    MetricKind::Trend,
                    if seq >= 5 { lag_us } else { 50.0 },
                );
            }
            stages.add(seq, &s);
        }
        let book = HealthBook::new(&exec, SEC);
        let v = check(&book, &stages, &ValidityConfig::default());
        assert_eq!(v.valid, valid, "{v:?}");
        assert!(v.unchecked.is_empty(), "lag data was there: {v:?}");
        if !valid {
            let p = &v.problems[0];
            assert_eq!(
                (p.worker.clone(), p.stage, p.what),
                (None, 1, ProblemKind::ScheduleLag)
            );
            assert!((p.observed - 2.5).abs() < 0.01, "{p:?}");
            assert_eq!(p.bound, 1.0);
        }
    }
}

#[test]
fn workers_without_figures_are_said_not_judged() {
    let v = run(
        &closed_plan(),
        |w, _| (w == "real").then(|| closed((5, 5), (5, 5))),
        &["real", "simulated"],
    );
    assert!(v.valid, "{v:?}");
    assert_eq!(v.unchecked.len(), 1, "{v:?}");
    assert!(v.unchecked[0].contains("simulated"), "{v:?}");
}

#[test]
fn a_workers_own_figures_over_the_run() {
    let mut book = HealthBook::new(&open_plan(), SEC);
    for seq in 0..4 {
        let h = WorkerHealth {
            cpu: [0.2, 0.4, 0.6, 0.2][seq as usize],
            loop_lag_max_us: 1500 * seq,
            loop_lag_p99_us: 200 * seq,
            iterations_dropped: 1,
            ..open(10, 11, 0.0)
        };
        book.add("w", seq, Some(&h));
    }
    let s = book.worker("w").unwrap();
    assert_eq!(s.intervals, 4);
    assert_eq!((s.cpu_mean_pct, s.cpu_max_pct), (35.0, 60.0));
    assert_eq!((s.loop_lag_max_ms, s.loop_lag_p99_ms), (4.5, 0.6));
    assert_eq!(
        (s.iterations_started, s.iterations_due, s.iterations_dropped),
        (40, Some(44), 4)
    );
    assert!(book.worker("nobody").is_none());
}

#[test]
fn config_validation_names_the_field() {
    let mut errors = Vec::new();
    ValidityConfig {
        rate_tolerance: 1.5,
        schedule_lag_p99: Duration::ZERO,
        max_worker_cpu: 0.0,
    }
    .validate(&mut errors);
    assert_eq!(errors.len(), 3, "{errors:?}");
    for (e, field) in errors
        .iter()
        .zip(["rate_tolerance", "schedule_lag_p99", "max_worker_cpu"])
    {
        assert!(e.starts_with(&format!("validity.{field}:")), "{e}");
    }
    let plan: ValidityConfig =
        toml::from_str("schedule_lag_p99 = \"250us\"\nmax_worker_cpu = 0.8").unwrap();
    assert_eq!(plan.schedule_lag_p99, Duration::from_micros(250));
    assert_eq!(plan.rate_tolerance, 0.01);
    assert!(toml::from_str::<ValidityConfig>("max_cpu = 0.8").is_err());
}

#[test]
fn a_schedule_lag_p99_of_too_few_samples_is_not_judged_but_said() {
    let exec = open_plan();
    let mut stages = StageBook::new(&exec, SEC);
    let mut s = Snapshot::default();
    for _ in 0..(super::MIN_LAG_SAMPLES - 1) {
        s.add(
            SeriesKey::new(builtin::SCHEDULE_LAG),
            MetricKind::Trend,
            50_000.0,
        );
    }
    stages.add(6, &s);
    let book = HealthBook::new(&exec, SEC);
    let v = check(&book, &stages, &ValidityConfig::default());
    assert!(v.valid, "{v:?}");
    assert!(
        v.unchecked.iter().any(|u| u.contains("too few")),
        "{:?}",
        v.unchecked
    );
}

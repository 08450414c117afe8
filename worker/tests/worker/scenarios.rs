//! `[scenarios.NAME]` on the engine, with paused time: several executor runtimes side by
//! side on one worker (and split over two), each from its own start time, each scenario's
//! samples under its own `scenario` tag.
use barrage_core::{MetricKind, Plan, Segment, Sink, Snapshot};
use barrage_worker::executor::{self, Controls, RunTotals};
use barrage_worker::registry::Registry;
use barrage_worker::sample::{IterationCtx, IterationOutcome, Sample, Scenario};
use futures_util::future::LocalBoxFuture;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Sleeps `took` per iteration, records one `hits` sample of its own (so a flow's samples
/// are seen to carry the tag too) and keeps every iteration's intended start.
struct Flow {
    took: Duration,
    starts: RefCell<Vec<std::time::Instant>>,
    vus: RefCell<std::collections::BTreeSet<u64>>,
}

impl Scenario for Flow {
    fn iteration<'a>(&'a self, ctx: IterationCtx<'a>) -> LocalBoxFuture<'a, IterationOutcome> {
        Box::pin(async move {
            self.starts.borrow_mut().push(ctx.intended_start);
            self.vus.borrow_mut().insert(ctx.vu);
            ctx.recorder.record(Sample {
                metric: "hits",
                kind: MetricKind::Counter,
                tags: &[],
                value: 1.0,
            });
            tokio::select! {
                _ = tokio::time::sleep(self.took) => IterationOutcome::Success,
                _ = ctx.cancel.cancelled() => IterationOutcome::Interrupted,
            }
        })
    }
}

/// `main` from 0 s for 4 s (2 VUs, 150 ms iterations: 27 each), `late` from 3 s for 2 s
/// at 4 iterations/s (8 iterations, due at 3 s, 3.25 s, …).
const PLAN: &str = r#"
graceful_stop = "1s"
[scenarios.main]
executor = "constant-vus"
vus = 2
duration = "4s"
[scenarios.late]
executor = "constant-arrival-rate"
rate = 4
duration = "2s"
pre_allocated_vus = 1
max_vus = 2
start_time = "3s"
tags = { kind = "later" }
"#;

fn count(snap: &Snapshot, metric: &str, scenario: &str) -> f64 {
    match snap.submetric(metric, &[("scenario".into(), scenario.into())]) {
        Some(Sink::Counter(c)) => c.sum,
        None => 0.0,
        other => panic!("{metric}{{scenario:{scenario}}}: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn two_scenarios_run_side_by_side_each_counted_under_its_tag_from_its_start_time() {
    let plan = Plan::from_toml_str(PLAN).unwrap();
    tokio::task::LocalSet::new()
        .run_until(async {
            for workers in [1usize, 2] {
                let start = Instant::now() + Duration::from_millis(10);
                let mut flows: Vec<(String, Rc<Flow>)> = Vec::new();
                let mut registries = Vec::new();
                let mut runs = Vec::new();
                let stops = watch::channel(None::<Duration>);
                for seg in Segment::split_even(workers) {
                    let engines = executor::engines(&plan, |p| {
                        assert!(p.scenarios.is_empty());
                        Ok::<_, ()>(Flow {
                            took: Duration::from_millis(150),
                            starts: RefCell::default(),
                            vus: RefCell::default(),
                        })
                    })
                    .unwrap();
                    flows.extend(engines.iter().map(|e| (e.name.clone(), e.flow.clone())));
                    let registry = Rc::new(Registry::new(&plan.tags));
                    let controls = Controls {
                        segment: watch::channel(seg).1,
                        stop: stops.1.clone(),
                        hard: CancellationToken::new(),
                    };
                    let r = registry.clone();
                    runs.push(tokio::task::spawn_local(async move {
                        executor::run_all(&engines, &r, start, controls).await
                    }));
                    registries.push(registry);
                }
                let vus = |registries: &[Rc<Registry>]| -> u64 {
                    registries.iter().map(|r| r.vus_total().0).sum()
                };
                tokio::time::sleep_until(start + Duration::from_millis(2900)).await;
                assert_eq!(
                    vus(&registries),
                    2,
                    "workers={workers}: only main before 3 s"
                );
                tokio::time::sleep_until(start + Duration::from_millis(3100)).await;
                assert_eq!(
                    vus(&registries),
                    3,
                    "workers={workers}: main + late's first"
                );
                let mut totals = RunTotals::default();
                for r in runs {
                    let t = r.await.unwrap();
                    totals.iterations += t.iterations;
                    totals.dropped += t.dropped;
                    totals.interrupted += t.interrupted;
                }
                assert!(
                    Instant::now() <= start + plan.duration() + Duration::from_millis(200),
                    "workers={workers}: the run ends with its last scenario"
                );
                let mut total = Snapshot::default();
                for r in &registries {
                    total.accumulate(&r.cut(0, 0, 1000)).unwrap();
                }
                let ran = |name: &str| -> Vec<std::time::Instant> {
                    let mut v: Vec<_> = flows
                        .iter()
                        .filter(|(n, _)| n == name)
                        .flat_map(|(_, f)| f.starts.borrow().clone())
                        .collect();
                    v.sort();
                    v
                };
                let (main, late) = (ran("main"), ran("late"));
                assert_eq!(main.len(), 2 * 27, "workers={workers}");
                assert_eq!(late.len(), 8, "workers={workers}");
                assert_eq!(totals.iterations, (main.len() + late.len()) as u64);
                assert_eq!((totals.dropped, totals.interrupted), (0, 0));
                // each scenario's iterations and its flow's own samples, under its tag
                for (name, n) in [("main", main.len()), ("late", late.len())] {
                    assert_eq!(count(&total, "iterations", name), n as f64, "{name}");
                    assert_eq!(count(&total, "hits", name), n as f64, "{name}");
                }
                assert_eq!(count(&total, "iterations", "default"), 0.0);
                let kind = total.submetric("hits", &[("kind".into(), "later".into())]);
                assert!(
                    matches!(kind, Some(Sink::Counter(c)) if c.sum == 8.0),
                    "{kind:?}"
                );
                // VU numbers are unique across scenarios (k6's __VU): by name, late's come
                // first (its vus_max is 2), then main's
                let numbers = |name: &str| -> Vec<u64> {
                    let mut v: Vec<u64> = flows
                        .iter()
                        .filter(|(n, _)| n == name)
                        .flat_map(|(_, f)| f.vus.borrow().clone())
                        .collect();
                    v.sort();
                    v
                };
                // late runs one 150 ms iteration every 250 ms: one VU of its pool does
                let late_vus = numbers("late");
                assert_eq!(numbers("main"), [3, 4], "workers={workers}");
                assert!(
                    !late_vus.is_empty() && late_vus.iter().all(|v| (1..=2).contains(v)),
                    "workers={workers}: {late_vus:?}"
                );
                // main starts with the run, late no earlier than its start time, on schedule
                let t0 = start.into_std();
                assert_eq!(main[0], t0);
                assert_eq!(late[0], t0 + Duration::from_secs(3), "workers={workers}");
                for (i, t) in late.iter().enumerate() {
                    let due = Duration::from_secs(3) + Duration::from_millis(250) * i as u32;
                    assert_eq!(*t, t0 + due, "workers={workers} late #{i}");
                }
            }
        })
        .await;
}

/// A stop before a scenario's start time: the running ones end, the later one never starts.
#[tokio::test(start_paused = true)]
async fn a_stop_before_a_scenarios_start_time_means_it_never_starts() {
    let plan = Plan::from_toml_str(PLAN).unwrap();
    tokio::task::LocalSet::new()
        .run_until(async {
            let start = Instant::now();
            let engines = executor::engines(&plan, |_| {
                Ok::<_, ()>(Flow {
                    took: Duration::from_millis(150),
                    starts: RefCell::default(),
                    vus: RefCell::default(),
                })
            })
            .unwrap();
            let registry = Rc::new(Registry::new(&plan.tags));
            let (stop_tx, stop) = watch::channel(None);
            let controls = Controls {
                segment: watch::channel(Segment::FULL).1,
                stop,
                hard: CancellationToken::new(),
            };
            let r = registry.clone();
            let e = engines.clone();
            let run = tokio::task::spawn_local(async move {
                executor::run_all(&e, &r, start, controls).await
            });
            tokio::time::sleep(Duration::from_secs(1)).await;
            stop_tx.send(Some(Duration::from_secs(1))).unwrap();
            let totals = run.await.unwrap();
            assert!(Instant::now() < start + Duration::from_secs(3));
            let late = engines.iter().find(|e| e.name == "late").unwrap();
            assert!(late.flow.starts.borrow().is_empty());
            assert!(totals.iterations >= 12, "{totals:?}");
            // main's 2 VUs are gone; late never allocated one
            assert_eq!(registry.vus_total(), (0, 2));
        })
        .await;
}

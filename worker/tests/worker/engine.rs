//! Executor runtimes with paused time: a test scenario that sleeps stands in for the
//! flow, so VU counts, iteration counts and stop behaviour are exact.
use barrage_core::{ExecutorConfig, Fraction, Plan, Profile, Segment, Stage};
use barrage_worker::executor::{self, Controls, RunTotals};
use barrage_worker::registry::Registry;
use barrage_worker::sample::{IterationCtx, IterationOutcome, Scenario};
use futures_util::future::LocalBoxFuture;
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Sleeps `took` per iteration (or until cancelled); tracks concurrency, the VU numbers
/// seen and every iteration's intended start.
struct Sleeper {
    took: Duration,
    running: Cell<u64>,
    peak: Cell<u64>,
    vus_seen: std::cell::RefCell<std::collections::BTreeSet<u64>>,
    starts: std::cell::RefCell<Vec<std::time::Instant>>,
}

impl Sleeper {
    fn new(took: Duration) -> Rc<Sleeper> {
        Rc::new(Sleeper {
            took,
            running: Cell::new(0),
            peak: Cell::new(0),
            vus_seen: Default::default(),
            starts: Default::default(),
        })
    }
}

impl Scenario for Sleeper {
    fn iteration<'a>(&'a self, ctx: IterationCtx<'a>) -> LocalBoxFuture<'a, IterationOutcome> {
        Box::pin(async move {
            self.vus_seen.borrow_mut().insert(ctx.vu);
            self.starts.borrow_mut().push(ctx.intended_start);
            self.running.set(self.running.get() + 1);
            self.peak.set(self.peak.get().max(self.running.get()));
            // the engine may drop this future on a hard stop: count the end in a guard
            struct InFlight<'a>(&'a Cell<u64>);
            impl Drop for InFlight<'_> {
                fn drop(&mut self) {
                    self.0.set(self.0.get() - 1);
                }
            }
            let _guard = InFlight(&self.running);
            tokio::select! {
                _ = tokio::time::sleep(self.took) => IterationOutcome::Success,
                _ = ctx.cancel.cancelled() => IterationOutcome::Interrupted,
            }
        })
    }
}

fn plan(scenario: ExecutorConfig, graceful_stop: Duration) -> Plan {
    let mut p = Plan::profile(Profile::Smoke);
    p.scenario = scenario;
    p.graceful_stop = graceful_stop;
    p.thresholds.clear();
    p.validate().unwrap();
    p
}

struct Handle {
    registry: Rc<Registry>,
    stop: watch::Sender<Option<Duration>>,
    segment: watch::Sender<Segment>,
    done: tokio::task::JoinHandle<RunTotals>,
}

fn spawn(plan: &Plan, sc: &Rc<Sleeper>, seg: Segment, start: Instant) -> Handle {
    let registry = Rc::new(Registry::new(&plan.tags));
    let (segment, seg_rx) = watch::channel(seg);
    let (stop, stop_rx) = watch::channel(None);
    let controls = Controls {
        segment: seg_rx,
        stop: stop_rx,
        hard: CancellationToken::new(),
    };
    let done = tokio::task::spawn_local(executor::run(
        Rc::new(plan.clone()),
        sc.clone(),
        registry.clone(),
        start,
        controls,
    ));
    Handle {
        registry,
        stop,
        segment,
        done,
    }
}

fn local() -> tokio::task::LocalSet {
    tokio::task::LocalSet::new()
}

/// Instants (s) of the seed's ramp away from a VU step, with the expected global count.
const RAMP_POINTS: &[(f64, u64)] = &[
    (2.0, 0),
    (7.0, 1),
    (21.0, 2),
    (32.0, 3),
    (42.0, 4),
    (58.0, 5),
    (63.0, 5),
    (72.0, 4),
    (78.0, 3),
    (88.0, 1),
];

#[tokio::test(start_paused = true)]
async fn ramping_vus_follow_the_seed_curve_on_1_2_3_7_workers() {
    let plan = Plan::profile(Profile::Default);
    local()
        .run_until(async {
            for n in [1usize, 2, 3, 7] {
                let sc = Sleeper::new(Duration::from_millis(200));
                let start = Instant::now() + Duration::from_millis(10);
                let hs: Vec<Handle> = Segment::split_even(n)
                    .into_iter()
                    .map(|s| spawn(&plan, &sc, s, start))
                    .collect();
                for &(t, want) in RAMP_POINTS {
                    tokio::time::sleep_until(start + Duration::from_secs_f64(t)).await;
                    let counts: Vec<u64> = hs.iter().map(|h| h.registry.vus().0).collect();
                    assert_eq!(
                        counts.iter().sum::<u64>(),
                        want,
                        "n={n} t={t} counts={counts:?}"
                    );
                    assert_eq!(sc.running.get(), want, "n={n} t={t}: iterations in flight");
                }
                for h in hs {
                    let totals = h.done.await.unwrap();
                    assert_eq!(totals.interrupted, 0);
                }
                // at most 5 VUs at once; with up to 3 workers they are exactly VUs 1..=5.
                // With 7, floor(V·b) − floor(V·a) is not monotonic: when V grows, one
                // segment may lose a VU (ramped down gracefully) while another gains one,
                // so for one iteration 6 can be in flight, and that segment needs an
                // extra VU number (see the executor docs).
                let peak_max = if n <= 3 { 5 } else { 6 };
                assert!(
                    sc.peak.get() >= 5 && sc.peak.get() <= peak_max,
                    "n={n} peak={}",
                    sc.peak.get()
                );
                let seen: Vec<u64> = sc.vus_seen.borrow().iter().copied().collect();
                if n <= 3 {
                    assert_eq!(seen, vec![1, 2, 3, 4, 5], "n={n}");
                }
            }
        })
        .await;
}

#[tokio::test(start_paused = true)]
async fn a_vu_removed_by_the_ramp_gets_graceful_ramp_down_then_is_cancelled() {
    // 2 VUs, ramp to 1 during [1 s, 2 s): VU 2 leaves at ~1.5 s in the middle of a 5 s
    // iteration; VU 1 runs 0–5, 5–10, 10–15 (the last one within graceful_stop).
    let ramp = |grace: u64| ExecutorConfig::RampingVus {
        start_vus: 2,
        stages: vec![Stage::new(1, 2), Stage::new(1, 1), Stage::new(10, 1)],
        graceful_ramp_down: Duration::from_secs(grace),
    };
    local()
        .run_until(async {
            for (grace, iterations, interrupted) in [(2, 3, 1), (10, 4, 0)] {
                let sc = Sleeper::new(Duration::from_secs(5));
                let h = spawn(
                    &plan(ramp(grace), Duration::from_secs(30)),
                    &sc,
                    Segment::FULL,
                    Instant::now(),
                );
                tokio::time::sleep(Duration::from_secs(4)).await;
                let expect_running = if grace == 2 { 1 } else { 2 };
                assert_eq!(sc.running.get(), expect_running, "grace={grace} at 4 s");
                let totals = h.done.await.unwrap();
                assert_eq!(
                    (totals.iterations, totals.interrupted),
                    (iterations, interrupted),
                    "grace={grace}"
                );
            }
        })
        .await;
}

#[tokio::test(start_paused = true)]
async fn scenario_end_gives_graceful_stop_then_cancels() {
    let cv = ExecutorConfig::ConstantVus {
        vus: 2,
        duration: Duration::from_secs(2),
    };
    local()
        .run_until(async {
            // iterations of 3 s: they finish within a 5 s graceful stop, not within 0.5 s
            for (grace_ms, iterations, interrupted, ends_at) in
                [(5000, 2, 0, 3.0), (500, 0, 2, 2.5)]
            {
                let sc = Sleeper::new(Duration::from_secs(3));
                let t0 = Instant::now();
                let h = spawn(
                    &plan(cv.clone(), Duration::from_millis(grace_ms)),
                    &sc,
                    Segment::FULL,
                    t0,
                );
                let totals = h.done.await.unwrap();
                let took = (Instant::now() - t0).as_secs_f64();
                assert_eq!(
                    (totals.iterations, totals.interrupted),
                    (iterations, interrupted)
                );
                assert!(
                    (took - ends_at).abs() < 0.1,
                    "grace={grace_ms}ms ended at {took}"
                );
            }
        })
        .await;
}

#[tokio::test(start_paused = true)]
async fn stop_requests_graceful_and_hard() {
    let cv = ExecutorConfig::ConstantVus {
        vus: 3,
        duration: Duration::from_secs(60),
    };
    local()
        .run_until(async {
            for (grace, iterations, interrupted, ends_at) in [
                (Duration::from_secs(10), 3, 0, 4.0),
                (Duration::ZERO, 0, 3, 1.0),
            ] {
                let sc = Sleeper::new(Duration::from_secs(4));
                let t0 = Instant::now();
                let h = spawn(
                    &plan(cv.clone(), Duration::from_secs(30)),
                    &sc,
                    Segment::FULL,
                    t0,
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
                h.stop.send(Some(grace)).unwrap();
                let totals = h.done.await.unwrap();
                let took = (Instant::now() - t0).as_secs_f64();
                assert_eq!(
                    (totals.iterations, totals.interrupted),
                    (iterations, interrupted),
                    "grace={grace:?}"
                );
                assert!(
                    (took - ends_at).abs() < 0.1,
                    "grace={grace:?} ended at {took}"
                );
                assert_eq!(h.registry.vus().0, 0);
            }
        })
        .await;
}

#[tokio::test(start_paused = true)]
async fn per_vu_iterations_runs_exactly_n_each_and_ends_early() {
    let p = plan(
        ExecutorConfig::PerVuIterations {
            vus: 3,
            iterations: 2,
            max_duration: Duration::from_secs(600),
        },
        Duration::from_secs(30),
    );
    local()
        .run_until(async {
            let sc = Sleeper::new(Duration::from_millis(300));
            let t0 = Instant::now();
            let totals = spawn(&p, &sc, Segment::FULL, t0).done.await.unwrap();
            assert_eq!(totals.iterations, 6);
            assert!(
                Instant::now() - t0 < Duration::from_secs(1),
                "ended when done, not at max_duration"
            );
            // the smoke profile: one VU, one iteration
            let sc = Sleeper::new(Duration::from_millis(10));
            let smoke = Plan::profile(Profile::Smoke);
            let totals = spawn(&smoke, &sc, Segment::FULL, Instant::now())
                .done
                .await
                .unwrap();
            assert_eq!(totals.iterations, 1);
        })
        .await;
}

fn car(rate: u64, secs: u64, pre: u64, max: u64) -> ExecutorConfig {
    ExecutorConfig::ConstantArrivalRate {
        rate,
        time_unit: Duration::from_secs(1),
        duration: Duration::from_secs(secs),
        pre_allocated_vus: pre,
        max_vus: max,
        arrivals: Default::default(),
    }
}

#[tokio::test(start_paused = true)]
async fn arrival_rate_runs_the_schedule_and_splits_it_across_workers() {
    local()
        .run_until(async {
            for n in [1usize, 2, 3, 7] {
                let p = plan(car(20, 3, 4, 4), Duration::from_secs(30));
                let sc = Sleeper::new(Duration::from_millis(80));
                let start = Instant::now();
                let hs: Vec<Handle> = Segment::split_even(n)
                    .into_iter()
                    .map(|s| spawn(&p, &sc, s, start))
                    .collect();
                let mut total = RunTotals::default();
                for h in hs {
                    let t = h.done.await.unwrap();
                    total.iterations += t.iterations;
                    total.dropped += t.dropped;
                }
                assert_eq!((total.iterations, total.dropped), (60, 0), "n={n}");
                // 20/s of 80 ms iterations: at most two in flight at a time
                assert!(sc.peak.get() <= 3, "n={n} peak={}", sc.peak.get());
            }
        })
        .await;
}

#[tokio::test(start_paused = true)]
async fn arrival_rate_drops_iterations_when_the_pool_is_exhausted() {
    // 10/s for 2 s of 1 s iterations needs ~10 VUs; the pool may grow from 1 to 3
    let p = plan(car(10, 2, 1, 3), Duration::from_secs(30));
    local()
        .run_until(async {
            let sc = Sleeper::new(Duration::from_millis(950));
            let h = spawn(&p, &sc, Segment::FULL, Instant::now());
            let totals = h.done.await.unwrap();
            assert_eq!(totals.iterations + totals.dropped, 20);
            assert_eq!(sc.peak.get(), 3, "the pool grew to max_vus");
            // VUs free at 0.95, 1.05, 1.15 s: iterations 0,1,2 and 10,11,12 run
            assert_eq!(totals.iterations, 6);
            assert_eq!(h.registry.vus().1, 3);
            let snap = h.registry.cut(0, 0, 1000);
            let Some(barrage_core::Sink::Counter(c)) = snap.submetric("dropped_iterations", &[])
            else {
                panic!("dropped_iterations missing")
            };
            assert_eq!(c.sum, 14.0);
        })
        .await;
}

#[tokio::test(start_paused = true)]
async fn arrival_rate_hands_the_due_time_as_intended_start() {
    // 4/s: iteration i is due at i·250 ms, whatever the VU; iteration_duration counts
    // from that due time.
    let p = plan(car(4, 2, 1, 1), Duration::from_secs(30));
    local()
        .run_until(async {
            let sc = Sleeper::new(Duration::from_millis(200));
            let h = spawn(&p, &sc, Segment::FULL, Instant::now());
            let totals = h.done.await.unwrap();
            assert_eq!((totals.iterations, totals.dropped), (8, 0));
            let starts = sc.starts.borrow();
            for w in starts.windows(2) {
                assert_eq!(w[1] - w[0], Duration::from_millis(250));
            }
            let snap = h.registry.cut(0, 0, 1000);
            let Some(barrage_core::Sink::Trend(t)) = snap.submetric("iteration_duration", &[])
            else {
                panic!()
            };
            assert_eq!(t.count(), 8);
            assert!(
                t.hist.equivalent(t.hist.min(), 200_000)
                    && t.hist.equivalent(t.hist.max(), 200_000),
                "{}..{}",
                t.hist.min(),
                t.hist.max()
            );
        })
        .await;
}

#[tokio::test(start_paused = true)]
async fn a_reassigned_segment_is_followed_from_then_on() {
    let cv = ExecutorConfig::ConstantVus {
        vus: 6,
        duration: Duration::from_secs(10),
    };
    let half = Segment::new(Fraction::ZERO, Fraction::new(1, 2).unwrap()).unwrap();
    local()
        .run_until(async {
            let sc = Sleeper::new(Duration::from_millis(100));
            let h = spawn(
                &plan(cv, Duration::from_secs(30)),
                &sc,
                half,
                Instant::now(),
            );
            tokio::time::sleep(Duration::from_secs(2)).await;
            assert_eq!(h.registry.vus().0, 3);
            h.segment.send(Segment::FULL).unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
            assert_eq!(h.registry.vus().0, 6);
            h.done.await.unwrap();
            let seen: Vec<u64> = sc.vus_seen.borrow().iter().copied().collect();
            assert_eq!(seen, vec![1, 2, 3, 4, 5, 6]);
        })
        .await;
}

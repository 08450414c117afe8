//! Random arrival processes (Poisson, gamma) and `schedule_lag`: against the reference
//! runtime as a real process, and in the engine with paused time across segments.
use crate::harness::{summary_count, temp_file, Target, Worker};
use barrage_core::arrivals::{Arrivals, Schedule};
use barrage_core::{ExecutorConfig, Plan, Profile, Segment, Stage};
use barrage_worker::executor::{self, Controls};
use barrage_worker::registry::Registry;
use barrage_worker::sample::{IterationCtx, IterationOutcome, Scenario};
use futures_util::future::LocalBoxFuture;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const LIMIT: Duration = Duration::from_secs(60);

/// The iterations a plan's schedule holds, from the same code the workers walk.
fn planned(plan: &str) -> u64 {
    let plan = Plan::from_toml_str(plan).unwrap();
    Schedule::new(&plan.scenario).unwrap().count() as u64
}

#[test]
fn poisson_and_gamma_runs_start_the_planned_iterations_and_record_their_lag() {
    let target = Target::start();
    let cases = [
        // 20/s for 3 s: 60 expected, the seed fixes exactly how many
        "executor = \"constant-arrival-rate\"\nrate = 20\nduration = \"3s\"\npre_allocated_vus = 10\nmax_vus = 40\narrival = \"poisson\"\nseed = 12",
        // 0 → 30/s over 2 s, then 30/s for 1 s: 60 expected, in bursts
        "executor = \"ramping-arrival-rate\"\nstages = [{ duration = \"2s\", target = 30 }, { duration = \"1s\", target = 30 }]\npre_allocated_vus = 10\nmax_vus = 40\narrival = \"gamma\"\nburstiness = 0.5",
    ];
    for scenario in cases {
        let text = format!(
            "name = \"t\"\ngraceful_stop = \"10s\"\n[target]\nurl = \"{}\"\n[scenario]\n{scenario}\n",
            target.url
        );
        let want = planned(&text);
        assert!((40..=80).contains(&want), "planned {want} for {scenario}");
        let plan = temp_file(&text, ".toml");
        let out = Worker::spawn(&["--standalone", "--plan", plan.as_str()], &[]).wait(LIMIT);
        assert_eq!(out.code(), Some(0), "{}", out.show());
        let done = summary_count(&out.stdout, "iterations").unwrap_or(0.0);
        let dropped = summary_count(&out.stdout, "dropped_iterations").unwrap_or(0.0);
        assert_eq!((done, dropped), (want as f64, 0.0), "{}", out.show());
        assert!(out.stdout.contains("schedule_lag"), "{}", out.show());
        let s = out.summary();
        let lag = &s["metrics"]["schedule_lag"];
        assert_eq!(
            lag["count"].as_f64(),
            Some(done),
            "one lag per iteration: {lag}"
        );
        assert_eq!(lag["contains"], "time", "{lag}");
        let p99 = lag["p99"].as_f64().unwrap_or_else(|| panic!("{lag}"));
        assert!(
            (0.0..1000.0).contains(&p99),
            "iterations start near their due time (ms): {lag}"
        );
    }
}

#[test]
fn arrival_keys_on_a_closed_model_executor_are_refused_by_name() {
    let bad = temp_file(
        "[scenario]\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\narrival = \"poisson\"\n",
        ".toml",
    );
    let out = Worker::spawn(&["--standalone", "--plan", bad.as_str()], &[]).wait(LIMIT);
    assert_eq!(out.code(), Some(2), "{}", out.show());
    assert!(
        out.stderr
            .contains("scenario.arrival: only the arrival-rate executors"),
        "{}",
        out.show()
    );
    let bad = temp_file(
        "[scenario]\nexecutor = \"constant-arrival-rate\"\nrate = 5\nduration = \"1s\"\npre_allocated_vus = 1\narrival = \"gamma\"\nburstiness = 0\n",
        ".toml",
    );
    let out = Worker::spawn(&["--standalone", "--plan", bad.as_str()], &[]).wait(LIMIT);
    assert_eq!(out.code(), Some(2), "{}", out.show());
    assert!(out.stderr.contains("scenario.burstiness"), "{}", out.show());
}

/// Records each iteration's intended start; takes no time.
#[derive(Default)]
struct Starts(RefCell<Vec<std::time::Instant>>);

impl Scenario for Starts {
    fn iteration<'a>(&'a self, ctx: IterationCtx<'a>) -> LocalBoxFuture<'a, IterationOutcome> {
        self.0.borrow_mut().push(ctx.intended_start);
        Box::pin(async { IterationOutcome::Success })
    }
}

/// The engine on `n` segments at once (paused time): every worker's due times, merged,
/// are the one-worker schedule's, to the nanosecond.
#[tokio::test(start_paused = true)]
async fn random_arrivals_split_across_workers_merge_into_the_single_schedule() {
    let mut p = Plan::profile(Profile::Smoke);
    p.scenario = ExecutorConfig::RampingArrivalRate {
        start_rate: 10,
        time_unit: Duration::from_secs(1),
        stages: vec![Stage::new(2, 60), Stage::new(1, 60)],
        pre_allocated_vus: 4,
        max_vus: 8,
        arrivals: Arrivals::gamma(0.4, 77),
    };
    p.graceful_stop = Duration::from_secs(1);
    p.thresholds.clear();
    p.validate().unwrap();
    let want: Vec<Duration> = Schedule::new(&p.scenario)
        .unwrap()
        .map(|(_, at)| at)
        .collect();
    let plan = Rc::new(p);
    tokio::task::LocalSet::new()
        .run_until(async {
            for n in [1usize, 2, 3, 5] {
                let start = Instant::now();
                let sc = Rc::new(Starts::default());
                let mut runs = vec![];
                for seg in Segment::split_even(n) {
                    let registry = Rc::new(Registry::new(&plan.tags));
                    let (seg_tx, seg_rx) = watch::channel(seg);
                    let (stop_tx, stop_rx) = watch::channel(None);
                    let controls = Controls {
                        segment: seg_rx,
                        stop: stop_rx,
                        hard: CancellationToken::new(),
                    };
                    let done = tokio::task::spawn_local(executor::run(
                        plan.clone(),
                        sc.clone(),
                        registry,
                        start,
                        controls,
                    ));
                    runs.push((done, seg_tx, stop_tx));
                }
                let mut total = 0;
                for (done, _, _) in runs {
                    let t = done.await.unwrap();
                    assert_eq!(t.dropped, 0, "n={n}");
                    total += t.iterations;
                }
                assert_eq!(total as usize, want.len(), "n={n}");
                let mut got: Vec<Duration> =
                    sc.0.borrow()
                        .iter()
                        .map(|t| t.duration_since(start.into_std()))
                        .collect();
                got.sort();
                assert_eq!(got, want, "n={n}");
            }
        })
        .await;
}

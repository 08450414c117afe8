//! Standalone mode: `barrage-worker --standalone (--plan FILE | --profile NAME)` runs the
//! plan on the full segment with no controller, writes the same `summary.json` and prints
//! the same k6-like text as `barrage run` (core's one summary model), and exits with 99
//! when a threshold failed, 97 when the run did not deliver its plan (the same validity
//! check as the controller's, on this worker's own health figures; `--allow-invalid` keeps
//! the code a valid run would get). Ctrl-C once: graceful stop (`plan.graceful_stop`);
//! twice: at once.
use crate::cli::{PlanSource, StandaloneArgs};
use crate::clock::Clock;
use crate::executor::{Controls, RunTotals};
use crate::interval::Tick;
use crate::registry::Registry;
use crate::sample::Scenario;
use crate::session::{self, RunSpec};
use crate::{exit_code, pin};
use anyhow::Context;
use barrage_core::summary::{self, RunFacts, RunMode, Summary, WorkerSummary};
use barrage_core::timeseries::{TimePoint, TimeSeries};
use barrage_core::validity::{HealthBook, Validity, WorkerHealthSummary};
use barrage_core::{Plan, PlanOverrides, Secret, Segment, Snapshot, ThresholdSet, Verdict};

/// The standalone worker's id in the summary and its health figures.
const ME: &str = "standalone";
use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::rc::Rc;
use tokio::sync::watch;
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Why a standalone run cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StandaloneError {
    /// The plan file cannot be read or does not validate.
    #[error(transparent)]
    PlanFile(barrage_core::PlanError),
    /// The plan (file or profile) does not validate once the flags are applied.
    #[error("{source}(after applying --target/--runtime-name/--jwt-secret-env)")]
    Plan {
        #[source]
        source: barrage_core::PlanError,
    },
    /// A secret the plan's auth needs is missing or unusable.
    #[error(transparent)]
    Secrets(#[from] barrage_core::auth::AuthError),
}

/// Reads the plan (file or profile), applies `--target`, `--runtime-name` and
/// `--jwt-secret-env`, and validates the result.
pub fn load_plan(args: &StandaloneArgs) -> Result<Plan, StandaloneError> {
    let mut plan = match &args.plan {
        PlanSource::Profile(p) => Plan::profile(*p),
        PlanSource::File(path) => Plan::from_file(path).map_err(StandaloneError::PlanFile)?,
    };
    plan.apply(&PlanOverrides {
        target: args.target.clone(),
        runtime: args.runtime_name.clone(),
        jwt_secret_env: args.jwt_secret_env.clone(),
        ..PlanOverrides::default()
    });
    plan.validate()
        .map_err(|source| StandaloneError::Plan { source })?;
    Ok(plan)
}

/// The secrets the plan's auth needs, read from the environment (or the secret file), by
/// the names the flow expects (`barrage_core::auth::plan_secrets`).
pub fn secrets_from_env(plan: &Plan) -> Result<BTreeMap<String, Secret>, StandaloneError> {
    Ok(barrage_core::auth::plan_secrets(&plan.auth, |k| {
        std::env::var(k).ok()
    })?)
}

/// What a standalone run produced.
pub struct Outcome {
    pub total: Snapshot,
    pub totals: RunTotals,
    pub elapsed: Duration,
    /// Wall-clock start and end, for the summary.
    pub started: std::time::SystemTime,
    pub ended: std::time::SystemTime,
    pub timeseries: TimeSeries,
    pub stages: barrage_core::stages::StageBook,
    pub snapshots: u64,
    pub thresholds: Vec<Verdict>,
    /// Whether the run delivered its plan, from this worker's health figures.
    pub validity: Validity,
    /// This worker's own figures over the run.
    pub health: Option<WorkerHealthSummary>,
}

impl Outcome {
    pub fn thresholds_passed(&self) -> bool {
        self.thresholds.iter().all(|r| r.ok)
    }

    /// The exit code this run deserves (see [`exit_code::with_validity`]).
    pub fn exit_code(&self, allow_invalid: bool) -> u8 {
        let code = if self.thresholds_passed() {
            exit_code::SUCCESS
        } else {
            exit_code::THRESHOLDS_FAILED
        };
        exit_code::with_validity(code, self.validity.valid, allow_invalid)
    }

    /// The run's summary: the same model `barrage run` writes.
    pub fn summary(
        &self,
        plan: &Plan,
        core: Option<usize>,
        end_reason: &str,
        allow_invalid: bool,
    ) -> Summary {
        let requests = match self
            .total
            .submetric(barrage_core::metrics::builtin::HTTP_REQS, &[])
        {
            Some(barrage_core::Sink::Counter(c)) => c.sum as u64,
            _ => 0,
        };
        let iterations = match self
            .total
            .submetric(barrage_core::metrics::builtin::ITERATIONS, &[])
        {
            Some(barrage_core::Sink::Counter(c)) => c.sum as u64,
            _ => 0,
        };
        let host = summary::host();
        let me = WorkerSummary {
            id: ME.into(),
            host: host.hostname.clone(),
            pid: std::process::id(),
            core: core.map_or(-1, |c| c as i32),
            version: barrage_core::VERSION.into(),
            segment: Some(Segment::FULL.to_string()),
            clock_offset_us: 0,
            rtt_us: 0,
            iterations,
            requests,
            snapshots: self.snapshots,
            done_iterations: Some(iterations),
            lost: None,
            health: self.health.clone(),
        };
        summary::assemble(RunFacts {
            mode: RunMode::Standalone,
            plan,
            rig: summary::rig(env!("BARRAGE_GIT_SHA")),
            host,
            start: self.started,
            end: self.ended,
            elapsed: self.elapsed,
            total: &self.total,
            timeseries: &self.timeseries,
            stages: Some(&self.stages),
            workers: vec![me],
            verdicts: &self.thresholds,
            end_reason: end_reason.to_string(),
            exit_code: self.exit_code(allow_invalid),
            late_snapshots: 0,
            target_telemetry: None,
            validity: Some(Validity {
                allow_invalid,
                ..self.validity.clone()
            }),
        })
    }
}

/// Runs `plan`'s scenarios (`engines`, from [`crate::executor::engines`]) on the full
/// segment, merging every interval into one total; `stop`/`hard` steer it (Ctrl-C in the
/// binary). Call inside a `LocalSet`.
pub async fn run_plan<S: Scenario + 'static>(
    plan: Rc<Plan>,
    engines: Vec<crate::executor::ScenarioEngine<S>>,
    stop: watch::Receiver<Option<Duration>>,
    hard: CancellationToken,
    progress: bool,
) -> Outcome {
    let registry = Rc::new(Registry::new(&plan.tags));
    let (_segment_tx, segment) = watch::channel(Segment::FULL);
    let start = Instant::now();
    let started = std::time::SystemTime::now();
    let mut total = Snapshot::default();
    let mut timeseries = TimeSeries {
        interval_ms: plan.interval.as_millis().min(u32::MAX as u128) as u32,
        start_unix_us: started
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64),
        points: Vec::new(),
        ladder: Default::default(),
    };
    let mut seq = 0u64;
    let mut stages = barrage_core::stages::StageBook::new(&plan.scenario, plan.interval);
    let mut health = HealthBook::new(&plan.scenario, plan.interval);
    let spec = RunSpec {
        plan: plan.clone(),
        scenarios: engines,
        registry: registry.clone(),
        clock: Clock::new(0),
        start,
        controls: Controls {
            segment,
            stop,
            hard,
        },
        points_ready: None,
    };
    let mut iterations = 0.0;
    let end = session::execute(spec, |tick| {
        if let Tick::Snapshot(snap, h) = tick {
            health.add(ME, seq, Some(&h));
            if progress {
                if let Some(barrage_core::Sink::Counter(c)) = snap.submetric("iterations", &[]) {
                    iterations += c.sum;
                }
                barrage_core::errln!(
                    "running ({:.1}s), {}/{} VUs, {} complete iterations",
                    start.elapsed().as_secs_f64(),
                    snap.vus,
                    snap.vus_max,
                    iterations
                );
            }
            timeseries.push(TimePoint::from_interval(seq, &snap, 1));
            stages.add(seq, &snap);
            seq += 1;
            let _ = total.accumulate(&snap);
        }
    })
    .await;
    // the last, partial interval's health counts even without samples (its iterations due)
    health.add(ME, seq, Some(&end.last_health));
    if !end.last.is_empty() {
        timeseries.push(TimePoint::from_interval(seq, &end.last, 1));
        stages.add(seq, &end.last);
        seq += 1;
    }
    let _ = total.accumulate(&end.last);
    let elapsed = end.ended_at - start;
    // the plan was validated before the run, so its thresholds parse
    let thresholds = ThresholdSet::from_plan(&plan)
        .map(|set| set.evaluate_staged(&total, Some(&stages), elapsed))
        .unwrap_or_default();
    let validity = barrage_core::validity::check(&health, &stages, &plan.validity);
    Outcome {
        health: health.worker(ME),
        validity,
        total,
        totals: end.totals,
        elapsed,
        started,
        ended: started + elapsed,
        timeseries,
        stages,
        snapshots: seq,
        thresholds,
    }
}

/// The standalone binary: plan, secrets, runtime, flow, run, summary, exit code.
pub fn run(args: StandaloneArgs) -> anyhow::Result<ExitCode> {
    let plan = match load_plan(&args).and_then(|p| secrets_from_env(&p).map(|s| (p, s))) {
        Ok(x) => x,
        Err(e) => {
            barrage_core::errln!("barrage-worker: {e}");
            return Ok(exit_code::code(exit_code::CONFIG));
        }
    };
    let (plan, secrets) = plan;
    // the results folder is proven writable before any load is sent
    if let Err(e) = barrage_core::results::probe_dir(&args.results_dir) {
        barrage_core::errln!("barrage-worker: --results-dir: {e}");
        return Ok(exit_code::code(exit_code::CONFIG));
    }
    let (runtime, local) = pin::vu_runtime(args.core)?;
    local.block_on(&runtime, async move {
        let named = plan.has_named_scenarios();
        let engines =
            match crate::executor::engines(&plan, |p| crate::flow::AgentFlow::new(p, &secrets)) {
                Ok(e) => e,
                Err((name, e)) if named => {
                    barrage_core::errln!("barrage-worker: scenario {name}: {e}");
                    return Ok(exit_code::code(exit_code::CONFIG));
                }
                Err((_, e)) => {
                    barrage_core::errln!("barrage-worker: {e}");
                    return Ok(exit_code::code(exit_code::CONFIG));
                }
            };
        tracing::info!(
            plan = %plan.name,
            target = %plan.target.url,
            scenario = %plan.describe_scenarios(),
            "standalone run starting"
        );
        let (stop_tx, stop) = watch::channel(None);
        let hard = CancellationToken::new();
        let grace = plan.graceful_stop;
        let signals = hard.clone();
        let interrupts = Rc::new(std::cell::Cell::new(0u8));
        let seen = interrupts.clone();
        tokio::task::spawn_local(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                seen.set(1);
                barrage_core::errln!(
                    "interrupted: stopping gracefully (Ctrl-C again to stop at once)"
                );
                let _ = stop_tx.send(Some(grace));
                if tokio::signal::ctrl_c().await.is_ok() {
                    seen.set(2);
                    signals.cancel();
                }
            }
        });
        let plan = Rc::new(plan);
        let outcome = run_plan(plan.clone(), engines, stop, hard, true).await;
        // the same words as the controller's end reasons
        let end_reason = match interrupts.get() {
            0 => "completed",
            1 => "interrupted (SIGINT): stopped gracefully",
            _ => "interrupted twice (SIGINT): aborted",
        };
        let doc = outcome.summary(&plan, args.core, end_reason, args.allow_invalid);
        let bytes = serde_json::to_vec_pretty(&doc).context("summary does not serialize")?;
        let path = barrage_core::results::write_new(
            &barrage_core::results::summary_path(&args.results_dir, &plan),
            &bytes,
        )?;
        let text = summary::render_text(&doc, Some(&path));
        let mut out = barrage_core::logging::Lossy(std::io::stdout().lock());
        let _ = out.write_all(text.as_bytes());
        out.flush().ok();
        if !outcome.thresholds_passed() {
            barrage_core::errln!("barrage-worker: some thresholds have failed");
        }
        if !outcome.validity.valid {
            barrage_core::errln!(
                "barrage-worker: the run is INVALID: it did not deliver its plan (see the summary)"
            );
        }
        Ok(exit_code::code(outcome.exit_code(args.allow_invalid)))
    })
}

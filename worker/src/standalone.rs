//! Standalone mode: `barrage-worker --standalone (--plan FILE | --profile NAME)` runs the
//! plan on the full segment with no controller, prints a k6-like summary and exits with 99
//! when a threshold failed. Ctrl-C once: graceful stop (`plan.graceful_stop`); twice: at
//! once.
use crate::cli::{PlanSource, StandaloneArgs};
use crate::clock::Clock;
use crate::executor::{Controls, RunTotals};
use crate::interval::Tick;
use crate::registry::Registry;
use crate::sample::Scenario;
use crate::session::{self, RunSpec};
use crate::summary;
use crate::{exit_code, pin};
use anyhow::Context;
use barrage_core::{Plan, PlanOverrides, Secret, Segment, Snapshot};
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
    pub thresholds: Vec<summary::Verdict>,
}

impl Outcome {
    pub fn thresholds_passed(&self) -> bool {
        self.thresholds.iter().all(|r| r.passed)
    }
}

/// Runs `plan` with `scenario` on the full segment, merging every interval into one
/// total; `stop`/`hard` steer it (Ctrl-C in the binary). Call inside a `LocalSet`.
pub async fn run_plan<S: Scenario + 'static>(
    plan: Rc<Plan>,
    scenario: Rc<S>,
    stop: watch::Receiver<Option<Duration>>,
    hard: CancellationToken,
    progress: bool,
) -> Outcome {
    let registry = Rc::new(Registry::new(&plan.tags));
    let (_segment_tx, segment) = watch::channel(Segment::FULL);
    let start = Instant::now();
    let mut total = Snapshot::default();
    let spec = RunSpec {
        plan: plan.clone(),
        scenario,
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
        if let Tick::Snapshot(snap) = tick {
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
            let _ = total.accumulate(&snap);
        }
    })
    .await;
    let _ = total.accumulate(&end.last);
    let elapsed = end.ended_at - start;
    let thresholds = summary::evaluate(&plan, &total, elapsed);
    Outcome {
        total,
        totals: end.totals,
        elapsed,
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
    let (runtime, local) = pin::vu_runtime(args.core)?;
    local.block_on(&runtime, async move {
        let flow = match crate::flow::AgentFlow::new(&plan, &secrets) {
            Ok(f) => f,
            Err(e) => {
                barrage_core::errln!("barrage-worker: {e}");
                return Ok(exit_code::code(exit_code::CONFIG));
            }
        };
        tracing::info!(
            plan = %plan.name,
            target = %plan.target.url,
            scenario = %plan.scenario.describe(),
            "standalone run starting"
        );
        let (stop_tx, stop) = watch::channel(None);
        let hard = CancellationToken::new();
        let grace = plan.graceful_stop;
        let signals = hard.clone();
        tokio::task::spawn_local(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                barrage_core::errln!(
                    "interrupted: stopping gracefully (Ctrl-C again to stop at once)"
                );
                let _ = stop_tx.send(Some(grace));
                if tokio::signal::ctrl_c().await.is_ok() {
                    signals.cancel();
                }
            }
        });
        let plan = Rc::new(plan);
        let outcome = run_plan(plan.clone(), Rc::new(flow), stop, hard, true).await;
        let mut out = barrage_core::logging::Lossy(std::io::stdout().lock());
        summary::write_summary(
            &mut out,
            &plan,
            &outcome.total,
            outcome.elapsed,
            &outcome.thresholds,
        )
        .context("writing the summary")?;
        out.flush().ok();
        Ok(if outcome.thresholds_passed() {
            exit_code::code(exit_code::SUCCESS)
        } else {
            barrage_core::errln!("barrage-worker: some thresholds have failed");
            exit_code::code(exit_code::THRESHOLDS_FAILED)
        })
    })
}

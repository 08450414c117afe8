//! Several scenarios on one worker (`[scenarios.NAME]`): one executor runtime per scenario,
//! side by side on the same `LocalSet`, each on the plan as its scenario sees it
//! ([`Plan::scenario_runs`]: its executor, its flow, its tags), from `start + start_time`.
//! Each follows the worker's segment on its own VU count, exactly as a one-scenario run
//! does, and records through its own [`Registry::scoped`] view, so every sample carries
//! `scenario=NAME` and the snapshot's VU counts are the sums. A stop reaches every
//! runtime at once; a scenario that has not started yet then never starts.
//!
//! A `[scenario]` plan has one engine, recording straight into the worker's registry:
//! nothing about it changes.
use super::{run, Controls, RunTotals};
use crate::registry::Registry;
use crate::sample::Scenario;
use barrage_core::Plan;
use std::rc::Rc;
use tokio::time::{Duration, Instant};

/// One scenario, ready to run.
pub struct ScenarioEngine<S> {
    pub name: String,
    /// From the run's stage time 0.
    pub start_time: Duration,
    /// The plan as this scenario sees it.
    pub plan: Rc<Plan>,
    /// The flow its VUs run, built from `plan`.
    pub flow: Rc<S>,
    /// Records through a scoped view of the registry (a `[scenarios]` plan), rather than
    /// into the registry itself.
    pub scoped: bool,
}

impl<S> Clone for ScenarioEngine<S> {
    fn clone(&self) -> Self {
        ScenarioEngine {
            name: self.name.clone(),
            start_time: self.start_time,
            plan: self.plan.clone(),
            flow: self.flow.clone(),
            scoped: self.scoped,
        }
    }
}

/// One engine per scenario of `plan`, each flow built by `make` from the scenario's own
/// plan. An `Err` names the scenario whose flow failed.
pub fn engines<S, E>(
    plan: &Plan,
    mut make: impl FnMut(&Plan) -> Result<S, E>,
) -> Result<Vec<ScenarioEngine<S>>, (String, E)> {
    let scoped = plan.has_named_scenarios();
    plan.scenario_runs()
        .into_iter()
        .map(|r| {
            let flow = make(&r.plan).map_err(|e| (r.name.clone(), e))?;
            Ok(ScenarioEngine {
                name: r.name,
                start_time: r.start_time,
                plan: Rc::new(r.plan),
                flow: Rc::new(flow),
                scoped,
            })
        })
        .collect()
}

/// One engine per scenario of `plan`, all running `flow` (a test flow, or a flow that
/// reads nothing of the plan).
pub fn engines_sharing<S>(plan: &Plan, flow: Rc<S>) -> Vec<ScenarioEngine<S>> {
    let scoped = plan.has_named_scenarios();
    plan.scenario_runs()
        .into_iter()
        .map(|r| ScenarioEngine {
            name: r.name,
            start_time: r.start_time,
            plan: Rc::new(r.plan),
            flow: flow.clone(),
            scoped,
        })
        .collect()
}

/// Runs every engine from `start + start_time` until its end (plus graceful stop) or a
/// stop; returns the summed totals. Call inside a `LocalSet`.
pub async fn run_all<S: Scenario + 'static>(
    engines: &[ScenarioEngine<S>],
    registry: &Rc<Registry>,
    start: Instant,
    controls: Controls,
) -> RunTotals {
    let runs = engines.iter().map(|e| {
        let registry = if e.scoped {
            Rc::new(registry.scoped(&e.plan.tags))
        } else {
            registry.clone()
        };
        let controls = Controls {
            segment: controls.segment.clone(),
            stop: controls.stop.clone(),
            hard: controls.hard.clone(),
        };
        let name = e.name.clone();
        let (plan, flow, at) = (e.plan.clone(), e.flow.clone(), start + e.start_time);
        async move {
            if !e.start_time.is_zero() {
                tracing::info!(scenario = %name, start_time_ms = e.start_time.as_millis() as u64, "scenario scheduled");
            }
            let totals = run(plan, flow, registry, at, controls).await;
            tracing::debug!(scenario = %name, iterations = totals.iterations, "scenario over");
            totals
        }
    });
    futures_util::future::join_all(runs)
        .await
        .into_iter()
        .fold(RunTotals::default(), |a, t| RunTotals {
            iterations: a.iterations + t.iterations,
            dropped: a.dropped + t.dropped,
            interrupted: a.interrupted + t.interrupted,
        })
}

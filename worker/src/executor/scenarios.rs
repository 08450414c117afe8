//! Several scenarios on one worker (`[scenarios.NAME]`): one executor runtime per scenario,
//! side by side on the same `LocalSet`, each on the plan as its scenario sees it
//! ([`Plan::scenario_runs`]: its executor, its flow, its tags), from `start + start_time`.
//! Each follows the worker's segment on its own VU count, exactly as a one-scenario run
//! does, and records through its own [`Registry::scoped`] view, so every sample carries
//! `scenario=NAME` and the snapshot's VU counts are the sums. A stop reaches every
//! runtime at once; a scenario that has not started yet then never starts.
//!
//! VU numbers are unique across scenarios, as k6's `__VU` is (a flow keys store items and
//! assistant tags by it): each runtime numbers its VUs as a one-scenario run does
//! (`1..=vus_max`, the rare extra VU of a segment above, see the executor docs), and
//! [`Numbered`] shifts them past the scenarios before it (by name): the regular ones by
//! their `vus_max`, the extra ones above every scenario's regular ones.
//!
//! A `[scenario]` plan has one engine, recording straight into the worker's registry, its
//! VU numbers unshifted: nothing about it changes.
use super::{run, Controls, RunTotals};
use crate::registry::Registry;
use crate::sample::{IterationCtx, IterationOutcome, Scenario};
use barrage_core::Plan;
use futures_util::future::LocalBoxFuture;
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
    /// How its VU numbers are shifted ([`Numbered`]).
    pub numbers: VuNumbers,
}

/// Where a scenario's VU numbers land among all scenarios'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VuNumbers {
    /// The scenario's `vus_max`: its runtime numbers regular VUs `1..=vmax`.
    pub vmax: u64,
    /// Added to a regular number: the `vus_max` of the scenarios before it.
    pub offset: u64,
    /// An extra VU's number is `extra_base + (n − vmax)`.
    pub extra_base: u64,
}

/// The most an extra VU's number exceeds `vus_max` (`crate::executor::vu_number`: the
/// segment start's slot, below 2^20, plus one).
const EXTRA_SPAN: u64 = (1 << 20) + 1;

impl VuNumbers {
    /// Numbers for each of `vmaxes` (the scenarios in order).
    pub fn assign(vmaxes: &[u64]) -> Vec<VuNumbers> {
        let total: u64 = vmaxes.iter().sum();
        let mut offset = 0;
        vmaxes
            .iter()
            .enumerate()
            .map(|(k, &vmax)| {
                let n = VuNumbers {
                    vmax,
                    offset,
                    extra_base: total + k as u64 * EXTRA_SPAN,
                };
                offset += vmax;
                n
            })
            .collect()
    }

    /// The global number of the runtime's VU `n`.
    pub fn map(&self, n: u64) -> u64 {
        if n <= self.vmax {
            self.offset + n
        } else {
            self.extra_base + (n - self.vmax)
        }
    }
}

/// A scenario's flow, its VU numbers shifted ([`VuNumbers`]).
pub struct Numbered<S> {
    pub flow: Rc<S>,
    pub numbers: VuNumbers,
}

impl<S: Scenario> Scenario for Numbered<S> {
    fn iteration<'a>(&'a self, mut ctx: IterationCtx<'a>) -> LocalBoxFuture<'a, IterationOutcome> {
        ctx.vu = self.numbers.map(ctx.vu);
        self.flow.iteration(ctx)
    }
}

impl<S> Clone for ScenarioEngine<S> {
    fn clone(&self) -> Self {
        ScenarioEngine {
            name: self.name.clone(),
            start_time: self.start_time,
            plan: self.plan.clone(),
            flow: self.flow.clone(),
            scoped: self.scoped,
            numbers: self.numbers,
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
    let runs = plan.scenario_runs();
    let numbers = VuNumbers::assign(
        &runs
            .iter()
            .map(|r| r.plan.scenario.max_vus())
            .collect::<Vec<_>>(),
    );
    runs.into_iter()
        .zip(numbers)
        .map(|(r, numbers)| {
            let flow = make(&r.plan).map_err(|e| (r.name.clone(), e))?;
            Ok(ScenarioEngine {
                name: r.name,
                start_time: r.start_time,
                plan: Rc::new(r.plan),
                flow: Rc::new(flow),
                scoped,
                numbers,
            })
        })
        .collect()
}

/// One engine per scenario of `plan`, all running `flow` (a test flow, or a flow that
/// reads nothing of the plan).
pub fn engines_sharing<S>(plan: &Plan, flow: Rc<S>) -> Vec<ScenarioEngine<S>> {
    let scoped = plan.has_named_scenarios();
    let runs = plan.scenario_runs();
    let numbers = VuNumbers::assign(
        &runs
            .iter()
            .map(|r| r.plan.scenario.max_vus())
            .collect::<Vec<_>>(),
    );
    runs.into_iter()
        .zip(numbers)
        .map(|(r, numbers)| ScenarioEngine {
            name: r.name,
            start_time: r.start_time,
            plan: Rc::new(r.plan),
            flow: flow.clone(),
            scoped,
            numbers,
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
            Rc::new(
                registry
                    .scoped(&e.plan.tags)
                    .counting_starts(e.plan.scenario.is_arrival_rate()),
            )
        } else {
            registry.clone()
        };
        let controls = Controls {
            segment: controls.segment.clone(),
            stop: controls.stop.clone(),
            hard: controls.hard.clone(),
        };
        let name = e.name.clone();
        let flow = Rc::new(Numbered {
            flow: e.flow.clone(),
            numbers: e.numbers,
        });
        let (plan, at) = (e.plan.clone(), start + e.start_time);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::{pool_size, vu_number};
    use barrage_core::Segment;
    use std::collections::HashSet;

    /// Every VU number any worker can give, over several scenarios, is unique; a lone
    /// scenario's numbers are left as they are.
    #[test]
    fn vu_numbers_are_unique_across_scenarios_and_workers() {
        let vmaxes = [5u64, 0, 3, 17];
        let numbers = VuNumbers::assign(&vmaxes);
        for n in [1usize, 2, 3, 7] {
            let mut seen = HashSet::new();
            for (vmax, num) in vmaxes.iter().zip(&numbers) {
                for seg in Segment::split_even(n) {
                    for i in 0..pool_size(&seg, *vmax) {
                        let g = num.map(vu_number(&seg, *vmax, i));
                        assert!(seen.insert(g), "workers={n}: {g} twice");
                    }
                }
            }
            // the regular numbers are exactly 1..=the sum of vus_max
            assert!((1..=25).all(|v| seen.contains(&v)), "workers={n}");
        }
        let one = VuNumbers::assign(&[4])[0];
        for v in [1, 4, 5, 9, 1 << 19] {
            assert_eq!(one.map(v), v);
        }
    }
}

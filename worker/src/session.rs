//! One run of a plan on this worker, shared by the standalone and the joined modes: the
//! executor runtimes (one per scenario) and the snapshot ticker side by side on the
//! current `LocalSet`, then the final (partial) interval cut when the engines are done.
use crate::clock::Clock;
use crate::executor::{self, Controls, RunTotals, ScenarioEngine};
use crate::health::{Monitor, Watched};
use crate::interval::{self, Intervals, Tick};
use crate::registry::Registry;
use crate::sample::Scenario;
use barrage_core::validity::WorkerHealth;
use barrage_core::{Plan, Snapshot};
use std::rc::Rc;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Everything a run needs.
pub struct RunSpec<S> {
    pub plan: Rc<Plan>,
    /// One per scenario ([`executor::engines`]).
    pub scenarios: Vec<ScenarioEngine<S>>,
    pub registry: Rc<Registry>,
    /// Converts instants to the controller's clock (offset 0 standalone).
    pub clock: Clock,
    /// Stage time 0, local.
    pub start: Instant,
    pub controls: Controls,
    /// Set when raw points were asked for (see `Registry::enable_raw_points`).
    pub points_ready: Option<Rc<Notify>>,
}

/// How a run ended.
pub struct RunEnd {
    pub totals: RunTotals,
    /// What was measured since the last emitted snapshot, and the worker's health over it.
    pub last: Snapshot,
    pub last_health: WorkerHealth,
    pub ended_at: Instant,
}

/// Runs the engine and the ticker until the engine is done; `emit` gets every interval
/// snapshot and point batch; the partial last interval comes back in [`RunEnd::last`].
pub async fn execute<S: Scenario + 'static>(
    spec: RunSpec<S>,
    mut emit: impl FnMut(Tick),
) -> RunEnd {
    let iv = Intervals {
        start: spec.start,
        every: spec.plan.interval,
    };
    let monitor = Monitor::new(Watched {
        plan: spec.plan.clone(),
        segment: spec.controls.segment.clone(),
        stop: spec.controls.stop.clone(),
        hard: spec.controls.hard.clone(),
        start: spec.start,
        every: spec.plan.interval,
    });
    let ticker_stop = CancellationToken::new();
    let engine = async {
        let totals =
            executor::run_all(&spec.scenarios, &spec.registry, spec.start, spec.controls).await;
        ticker_stop.cancel();
        totals
    };
    let ticker = interval::run_ticker(
        &spec.registry,
        &monitor,
        &spec.clock,
        iv,
        spec.points_ready.clone(),
        &ticker_stop,
        &mut emit,
    );
    let (totals, next_seq, ()) = tokio::join!(engine, ticker, monitor.probe(&ticker_stop));
    let (last, last_health) = interval::cut(&spec.registry, &monitor, &spec.clock, iv, next_seq);
    // raw points of the last, partial interval go out before `Done` (the caller sends
    // `Done` after this returns), so NDJSON holds every sample the summary counts
    for batch in spec.registry.take_points() {
        emit(Tick::Points(batch));
    }
    RunEnd {
        totals,
        last,
        last_health,
        ended_at: Instant::now(),
    }
}

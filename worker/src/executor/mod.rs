//! Executor runtimes: they follow an
//! [`ExecutorConfig`](barrage_core::executor::ExecutorConfig) (pure data in
//! `barrage-core`) on this worker's [`Segment`], starting and stopping VUs (`crate::vu`)
//! on the current `LocalSet`.
//!
//! | runtime          | executors                                          | what it drives            |
//! |------------------|----------------------------------------------------|---------------------------|
//! | [`closed`]       | `ramping-vus`, `constant-vus`, `per-vu-iterations` | how many VUs are active   |
//! | [`arrival_rate`] | `constant-arrival-rate`, `ramping-arrival-rate`    | when each iteration starts|
//!
//! A plan with `[scenarios]` runs one runtime per scenario side by side ([`scenarios`]).
//!
//! # A VU's lifecycle
//!
//! | event                         | closed model                                              | open model (arrival rate)                          |
//! |-------------------------------|-----------------------------------------------------------|----------------------------------------------------|
//! | start                         | `segment.scale(vus_at(t))` grows past the VU's slot        | pre-allocated at start; more when the pool is empty (up to `max_vus`) |
//! | next iteration                | at once (after `flow.think_time`)                          | when the schedule hands it one, due at `iteration_start(i)` |
//! | removed by the ramp           | finishes its iteration; hard-cancelled after `graceful_ramp_down` | —                                            |
//! | scenario end / graceful stop  | starts nothing new; running iterations get `plan.graceful_stop` (or the stop's grace) | same                   |
//! | hard stop (grace over, `Stop{graceful:false}`, `Abort`, lost controller) | its token is cancelled: the iteration future is dropped at once; its request in flight is recorded failed (`error=interrupted`), the iteration in `interrupted_iterations` | same |
//!
//! Every wait selects on the stop signal and the hard-stop token; every drain has a
//! timeout ([`DRAIN_AFTER_CANCEL`] after the hard cancel).
//!
//! VU numbers: a worker's VUs are `segment.offset(vus_max) + 1 ..`, so they are unique
//! across workers. Because `floor(V·b) − floor(V·a)` is not monotonic in `V`, a segment
//! can need one VU more at some `V < vus_max` than at `vus_max`; that extra VU is numbered
//! `vus_max + 1 + floor(a·2^20)`, unique for segments whose starts differ by ≥ 2^-20.
pub mod arrival_rate;
pub mod closed;
pub mod scenarios;

pub use scenarios::{engines, engines_sharing, run_all, ScenarioEngine};
pub mod pacer;

use crate::registry::Registry;
use crate::sample::Scenario;
use crate::vu::{Env, Totals};
use barrage_core::metrics::builtin;
use barrage_core::{MetricKind, Plan, Segment};
use std::rc::Rc;
use tokio::sync::watch;
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// After the hard cancel, how long VU tasks get to end before the engine gives up on them.
pub const DRAIN_AFTER_CANCEL: Duration = Duration::from_secs(2);

/// How the outside world steers a running engine.
pub struct Controls {
    /// The worker's current segment (a controller `Reassign` sends a new one).
    pub segment: watch::Receiver<Segment>,
    /// `Some(grace)`: stop now; running iterations get `grace` to finish (zero = hard).
    pub stop: watch::Receiver<Option<Duration>>,
    /// Cancelled: stop at once (the root token of the worker).
    pub hard: CancellationToken,
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunTotals {
    pub iterations: u64,
    pub dropped: u64,
    pub interrupted: u64,
}

/// Why a runtime's schedule ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum End {
    /// The schedule ran out: running iterations get `plan.graceful_stop`.
    Schedule,
    /// Every VU finished its iterations (per-vu-iterations).
    Finished,
    /// A stop was asked for, with this grace.
    Stop(Duration),
    /// The hard-stop token fired.
    Hard,
}

/// Runs `plan.scenario` from stage time 0 at `start` until its end (plus graceful stop)
/// or a stop, then ends every VU. Call inside a `LocalSet`.
pub async fn run<S: Scenario + 'static>(
    plan: Rc<Plan>,
    scenario: Rc<S>,
    registry: Rc<Registry>,
    start: Instant,
    mut controls: Controls,
) -> RunTotals {
    let env = Rc::new(Env {
        scenario,
        iterations_id: registry.intern(builtin::ITERATIONS, MetricKind::Counter, &[]),
        duration_id: registry.intern(builtin::ITERATION_DURATION, MetricKind::Trend, &[]),
        interrupted_id: registry.intern(builtin::INTERRUPTED_ITERATIONS, MetricKind::Counter, &[]),
        registry,
        totals: Totals::default(),
    });
    // the engine's own root: cancelling it never touches the caller's token
    let vus_root = controls.hard.child_token();
    tokio::select! {
        biased;
        _ = controls.hard.cancelled() => return RunTotals::default(),
        _ = wait_stop(&mut controls.stop) => return RunTotals::default(),
        _ = tokio::time::sleep_until(start) => {}
    }
    let end = if plan.scenario.is_arrival_rate() {
        arrival_rate::run(&plan, &env, start, &mut controls, &vus_root).await
    } else {
        closed::run(&plan, &env, start, &mut controls, &vus_root).await
    };
    let grace = match end {
        End::Schedule => plan.graceful_stop,
        End::Finished => Duration::ZERO,
        End::Stop(grace) => grace,
        End::Hard => Duration::ZERO,
    };
    drain(&env.totals, grace, &vus_root).await;
    let (_, vus_max) = env.registry.vus();
    env.registry.set_vus(0, vus_max);
    RunTotals {
        iterations: env.totals.iterations.get(),
        dropped: env.totals.dropped.get(),
        interrupted: env.totals.interrupted.get(),
    }
}

/// Waits up to `grace` for every VU to end, then hard-cancels the rest and waits up to
/// [`DRAIN_AFTER_CANCEL`] more.
async fn drain(totals: &Totals, grace: Duration, vus_root: &CancellationToken) {
    if totals.live.get() > 0
        && !grace.is_zero()
        && tokio::time::timeout(grace, totals.all_ended())
            .await
            .is_err()
    {
        tracing::info!(
            running = totals.live.get(),
            grace_ms = grace.as_millis() as u64,
            "graceful stop is over; cancelling the running iterations"
        );
    }
    vus_root.cancel();
    if tokio::time::timeout(DRAIN_AFTER_CANCEL, totals.all_ended())
        .await
        .is_err()
    {
        tracing::warn!(
            running = totals.live.get(),
            "VUs did not end after the hard cancel; leaving them"
        );
    }
}

/// Resolves with the grace of the first stop request; never, if none can come.
pub(crate) async fn wait_stop(stop: &mut watch::Receiver<Option<Duration>>) -> Duration {
    match stop.wait_for(|s| s.is_some()).await {
        Ok(grace) => grace.unwrap_or_default(),
        Err(_) => std::future::pending().await,
    }
}

/// Resolves when the segment changes; never, once the sender is gone.
pub(crate) async fn segment_changed(rx: &mut watch::Receiver<Segment>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The most VUs `segment` ever needs while the global count stays ≤ `vmax`.
pub fn pool_size(segment: &Segment, vmax: u64) -> u64 {
    let at_max = segment.scale(vmax);
    // floor(V·b) − floor(V·a) is within 1 of V·(b−a): only one more than at vmax is possible
    if (0..vmax).any(|v| segment.scale(v) > at_max) {
        at_max + 1
    } else {
        at_max
    }
}

/// Global number of this worker's local VU `i` (0-based); see the module docs.
pub fn vu_number(segment: &Segment, vmax: u64, i: u64) -> u64 {
    let own = segment.scale(vmax);
    if i < own {
        segment.offset(vmax) + i + 1
    } else {
        let a = segment.start;
        let slot = ((a.num as u128) << 20) / a.den as u128;
        vmax + 1 + slot as u64 + (i - own)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn vu_numbers_are_unique_across_workers() {
        for n in [1usize, 2, 3, 7, 16] {
            for vmax in 0..=150u64 {
                let mut seen = HashSet::new();
                for seg in Segment::split_even(n) {
                    for i in 0..pool_size(&seg, vmax) {
                        let num = vu_number(&seg, vmax, i);
                        assert!(num >= 1);
                        assert!(seen.insert(num), "n={n} vmax={vmax} duplicate {num}");
                    }
                }
                // the regular numbers cover exactly 1..=vmax
                assert!((1..=vmax).all(|v| seen.contains(&v)), "n={n} vmax={vmax}");
            }
        }
    }

    #[test]
    fn pool_covers_every_count() {
        for n in [1usize, 2, 3, 7] {
            for seg in Segment::split_even(n) {
                for vmax in 0..=60u64 {
                    let pool = pool_size(&seg, vmax);
                    assert!((0..=vmax).all(|v| seg.scale(v) <= pool));
                }
            }
        }
    }
}

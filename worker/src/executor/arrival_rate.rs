//! Open-model runtime: `constant-arrival-rate` and `ramping-arrival-rate`. The schedule
//! (`ExecutorConfig::iteration_start(i)`) says when global iteration `i` is due; this
//! worker runs only the iterations its segment owns (`segment.owns_iteration(i)`), each
//! at its due time, on a VU taken from a pool:
//!
//! ```text
//! due(i) ─► free VU in the pool? ─yes─► hand it Job{due}         (iteration_duration from due)
//!                 │ no
//!                 ├─ pool < max_vus ─► allocate a VU, hand it the job
//!                 └─ pool full ──────► dropped_iterations += 1
//! ```
//!
//! The pool starts with `segment.scale(pre_allocated_vus)` VUs (at least one when the
//! segment is not empty) and grows up to `segment.scale(max_vus)`. The due time travels
//! with the job as `IterationCtx::intended_start`, so a late start is measured, never
//! hidden (no coordinated omission).
//!
//! The schedule is walked with a [`Schedule`] (uniform, Poisson or gamma arrivals: every
//! worker walks every iteration, so random arrivals split across workers exactly), and
//! waited for with a [`Pacer`] (a timerfd plus a short yield: tens of µs, not tokio's
//! 1 ms). When a VU begins an iteration it records `schedule_lag` (Trend, µs): its actual
//! start minus the due time, the wait for a free VU and the hand-over included. A
//! dropped iteration never starts, so it records none.
use super::pacer::Pacer;
use super::{segment_changed, vu_number, wait_stop, Controls, End};
use crate::registry::Registry;
use crate::sample::{Scenario, SeriesId};
use crate::vu::{spawn_vu, Env, Feed, Job, OpenFeed, Slot};
use barrage_core::arrivals::Schedule;
use barrage_core::metrics::builtin;
use barrage_core::{ExecutorConfig, MetricKind, Plan, Segment};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Local pool bounds for `seg`: (pre-allocated, max).
pub fn pool_bounds(cfg: &ExecutorConfig, seg: &Segment) -> (u64, u64) {
    let (pre, max) = cfg.vu_pool().unwrap_or((0, 0));
    let floor = u64::from(!seg.is_empty());
    let local_pre = seg.scale(pre).max(floor);
    (local_pre, seg.scale(max).max(local_pre))
}

pub(crate) async fn run<S: Scenario + 'static>(
    plan: &Plan,
    env: &Rc<Env<S>>,
    start: Instant,
    controls: &mut Controls,
    vus_root: &CancellationToken,
) -> End {
    let cfg = &plan.scenario;
    let vmax = cfg.max_vus();
    let dropped_id = env
        .registry
        .intern(builtin::DROPPED_ITERATIONS, MetricKind::Counter, &[]);
    let lag_id = env
        .registry
        .intern(builtin::SCHEDULE_LAG, MetricKind::Trend, &[]);
    let free: Rc<RefCell<Vec<Rc<Slot>>>> = Rc::default();
    let closing = Rc::new(Cell::new(false));
    let mut pool: Vec<Rc<Slot>> = Vec::new();
    let mut seg = *controls.segment.borrow_and_update();
    let (pre, _) = pool_bounds(cfg, &seg);
    let allocate = |pool: &mut Vec<Rc<Slot>>, seg: &Segment, job: Option<Job>| {
        let slot = Slot::new(
            vu_number(seg, vmax, pool.len() as u64),
            vus_root.child_token(),
        );
        let idle = job.is_none();
        slot.job.set(job);
        if idle {
            free.borrow_mut().push(slot.clone());
        }
        let feed = LagFeed {
            open: OpenFeed {
                slot: slot.clone(),
                free: free.clone(),
                closing: closing.clone(),
            },
            registry: env.registry.clone(),
            lag_id,
        };
        spawn_vu(env, &slot, feed);
        pool.push(slot);
    };
    for _ in 0..pre {
        allocate(&mut pool, &seg, None);
    }
    env.registry.set_vus(0, pool.len() as u64);
    let end_at = start + cfg.duration();
    let Some(mut schedule) = Schedule::new(cfg) else {
        tracing::error!(
            executor = cfg.name(),
            "not an arrival-rate executor; nothing to schedule"
        );
        return End::Schedule;
    };
    let mut pacer = Pacer::new();
    let end = loop {
        if controls.segment.has_changed().unwrap_or(false) {
            seg = *controls.segment.borrow_and_update();
            for (n, s) in pool.iter().enumerate() {
                s.number.set(vu_number(&seg, vmax, n as u64));
            }
            tracing::info!(segment = %seg, "following the new segment");
        }
        let Some(at) = schedule.due() else {
            // the schedule is exhausted: wait for its end, then the graceful stop
            tokio::select! {
                biased;
                _ = controls.hard.cancelled() => break End::Hard,
                grace = wait_stop(&mut controls.stop) => break End::Stop(grace),
                _ = tokio::time::sleep_until(end_at) => break End::Schedule,
            }
        };
        if !seg.owns_iteration(schedule.index()) {
            schedule.advance();
            continue;
        }
        let due = start + at;
        tokio::select! {
            biased;
            _ = controls.hard.cancelled() => break End::Hard,
            grace = wait_stop(&mut controls.stop) => break End::Stop(grace),
            _ = segment_changed(&mut controls.segment) => continue, // re-check ownership
            _ = pacer.wait_until(due) => {}
        }
        let job = Job { due };
        let idle = free.borrow_mut().pop();
        if let Some(slot) = idle {
            slot.job.set(Some(job));
            slot.wake.notify_one();
        } else if (pool.len() as u64) < pool_bounds(cfg, &seg).1 {
            allocate(&mut pool, &seg, Some(job));
            tracing::debug!(vus = pool.len(), "pool exhausted; allocated a VU");
        } else {
            env.registry.add(dropped_id, 1.0);
            env.totals.dropped.set(env.totals.dropped.get() + 1);
        }
        let busy = pool.len() - free.borrow().len();
        env.registry.set_vus(busy as u64, pool.len() as u64);
        schedule.advance();
    };
    closing.set(true);
    for s in free.borrow_mut().drain(..) {
        s.wake.notify_one();
    }
    end
}

/// The open-model feed, recording each iteration's `schedule_lag` as its VU begins it.
struct LagFeed {
    open: OpenFeed,
    registry: std::rc::Rc<Registry>,
    lag_id: SeriesId,
}

impl Feed for LagFeed {
    async fn next(&self, first: bool) -> Option<Job> {
        let job = self.open.next(first).await?;
        let lag = Instant::now().saturating_duration_since(job.due);
        self.registry.add(self.lag_id, lag.as_micros() as f64);
        Some(job)
    }
}

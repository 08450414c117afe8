//! A virtual user: one task on the worker's single thread running iterations of the
//! [`Scenario`] one after another. There is one VU loop ([`run_vu`]); where the next
//! iteration comes from is a [`Feed`]: the closed-model feed (a VU loops while it is
//! active, up to an optional iteration cap, with the flow's think time between
//! iterations) or the open-model feed (a VU waits idle in the pool until the arrival
//! schedule hands it an iteration due at a given instant).
//!
//! Per iteration the VU records `iterations` (Counter, +1) and `iteration_duration`
//! (Trend, µs from the iteration's *due* time to its end, so an arrival-rate iteration
//! that waited for a VU carries its wait: no coordinated omission). An iteration cut by a
//! hard stop records neither; it counts in `interrupted_iterations` (+1).
use crate::registry::{Registry, SeriesId};
use crate::sample::{IterationCtx, IterationOutcome, Scenario};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use tokio::sync::Notify;
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// One iteration handed to a VU.
#[derive(Debug, Clone, Copy)]
pub struct Job {
    /// When the iteration was due (the schedule's time, or now for closed models).
    pub due: Instant,
}

/// The control block of one VU, shared by the VU task and its executor.
pub struct Slot {
    /// Global VU number (1-based, unique across workers); may change on a `Reassign`.
    pub number: Cell<u64>,
    /// Cancelled on a hard stop of this VU; replaced when a stopped slot is reused.
    pub token: RefCell<CancellationToken>,
    /// Iterations this VU started (its next iteration's number).
    pub iterations: Cell<u64>,
    /// Closed model: the VU may start iterations.
    pub active: Cell<bool>,
    /// A task runs this slot.
    pub running: Cell<bool>,
    /// Closed model: when a VU being removed gets hard-cancelled.
    pub kill_at: Cell<Option<Instant>>,
    /// Open model: the iteration handed to this idle VU.
    pub job: Cell<Option<Job>>,
    /// Wakes the VU: a job arrived, it was deactivated, or the pool closes.
    pub wake: Notify,
}

impl Slot {
    pub fn new(number: u64, token: CancellationToken) -> Rc<Slot> {
        Rc::new(Slot {
            number: Cell::new(number),
            token: RefCell::new(token),
            iterations: Cell::new(0),
            active: Cell::new(false),
            running: Cell::new(false),
            kill_at: Cell::new(None),
            job: Cell::new(None),
            wake: Notify::new(),
        })
    }
}

/// Where a VU's next iteration comes from.
pub trait Feed {
    /// The next iteration, or `None` when the VU is to end. `first` is true on the first
    /// call of this task.
    fn next(&self, first: bool) -> impl Future<Output = Option<Job>>;
}

/// What every VU of a run shares.
pub struct Env<S> {
    pub scenario: Rc<S>,
    pub registry: Rc<Registry>,
    pub iterations_id: SeriesId,
    pub duration_id: SeriesId,
    /// `interrupted_iterations`: iterations cut by the hard stop.
    pub interrupted_id: SeriesId,
    pub totals: Totals,
}

/// Run-wide counts and the "every VU ended" signal.
#[derive(Default)]
pub struct Totals {
    /// Completed iterations (success or failure).
    pub iterations: Cell<u64>,
    /// Iterations cut by a hard stop.
    pub interrupted: Cell<u64>,
    /// Arrival-rate iterations no VU was free for.
    pub dropped: Cell<u64>,
    /// VU tasks alive.
    pub live: Cell<usize>,
    /// Notified when a VU task ends.
    pub ended: Notify,
}

impl Totals {
    /// Waits until no VU task is alive.
    pub async fn all_ended(&self) {
        while self.live.get() > 0 {
            self.ended.notified().await;
        }
    }
}

/// Spawns a VU task on the current `LocalSet`.
pub fn spawn_vu<S: Scenario + 'static, F: Feed + 'static>(
    env: &Rc<Env<S>>,
    slot: &Rc<Slot>,
    feed: F,
) {
    slot.running.set(true);
    env.totals.live.set(env.totals.live.get() + 1);
    let (env, slot) = (env.clone(), slot.clone());
    tokio::task::spawn_local(async move {
        run_vu(&env, &slot, feed).await;
        slot.running.set(false);
        env.totals.live.set(env.totals.live.get() - 1);
        env.totals.ended.notify_one();
    });
}

/// The one VU loop.
pub async fn run_vu<S: Scenario, F: Feed>(env: &Env<S>, slot: &Slot, feed: F) {
    let mut first = true;
    // The slot's token is only replaced while no task runs it (the executors), so one
    // waiter serves the task's whole life (between iterations). During an iteration the
    // flow itself answers the token (`IterationCtx::cancel`: it returns `Interrupted` as
    // soon as it can); a second select on the token here would poll it on every wake-up.
    let token = slot.token.borrow().clone();
    let cancelled = token.cancelled();
    tokio::pin!(cancelled);
    loop {
        let job = tokio::select! {
            biased;
            () = &mut cancelled => None,
            job = feed.next(first) => job,
        };
        first = false;
        let Some(job) = job else { break };
        env.registry.iteration_started();
        let iteration = slot.iterations.get();
        slot.iterations.set(iteration + 1);
        let ctx = IterationCtx {
            vu: slot.number.get(),
            iteration,
            intended_start: job.due.into_std(),
            cancel: &token,
            recorder: &*env.registry,
        };
        let outcome = env.scenario.iteration(ctx).await;
        if outcome == IterationOutcome::Interrupted {
            env.totals.interrupted.set(env.totals.interrupted.get() + 1);
            env.registry.add(env.interrupted_id, 1.0);
            tracing::debug!(vu = slot.number.get(), iteration, "iteration interrupted");
            break;
        }
        let took = Instant::now().saturating_duration_since(job.due);
        env.registry.add(env.iterations_id, 1.0);
        env.registry.add(env.duration_id, took.as_micros() as f64);
        env.totals.iterations.set(env.totals.iterations.get() + 1);
        if let IterationOutcome::Failed { step, reason } = &outcome {
            tracing::debug!(
                vu = slot.number.get(),
                iteration,
                step,
                reason,
                "iteration failed"
            );
        }
    }
}

/// Closed model: loop while active, up to `cap` iterations, pausing `think` in between.
pub struct ClosedFeed {
    pub slot: Rc<Slot>,
    pub think: Duration,
    pub cap: Option<u64>,
}

impl Feed for ClosedFeed {
    async fn next(&self, first: bool) -> Option<Job> {
        if !first && !self.think.is_zero() && self.slot.active.get() {
            tokio::select! {
                _ = tokio::time::sleep(self.think) => {}
                _ = self.slot.wake.notified() => {}
            }
        }
        if !self.slot.active.get() {
            return None;
        }
        if self
            .cap
            .is_some_and(|cap| self.slot.iterations.get() >= cap)
        {
            return None;
        }
        Some(Job {
            due: Instant::now(),
        })
    }
}

/// Open model: between iterations the VU waits in `free` for a job. A VU allocated
/// idle is put in `free` by its allocator, so it is usable before its task first runs.
pub struct OpenFeed {
    pub slot: Rc<Slot>,
    pub free: Rc<RefCell<Vec<Rc<Slot>>>>,
    pub closing: Rc<Cell<bool>>,
}

impl Feed for OpenFeed {
    async fn next(&self, first: bool) -> Option<Job> {
        if let Some(job) = self.slot.job.take() {
            return Some(job); // allocated for this job
        }
        if !first {
            if self.closing.get() {
                return None;
            }
            // back to the pool (a pre-allocated VU was put there by its allocator)
            self.free.borrow_mut().push(self.slot.clone());
        }
        loop {
            if let Some(job) = self.slot.job.take() {
                return Some(job);
            }
            if self.closing.get() {
                return None;
            }
            self.slot.wake.notified().await;
        }
    }
}

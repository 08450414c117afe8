//! Closed-model runtime: `ramping-vus`, `constant-vus` and `per-vu-iterations`. At stage
//! time `t` this worker keeps `segment.scale(vus_at(t))` VUs active: local slot `i` is
//! active iff `i < want`. A slot that leaves the active set finishes its iteration within
//! the ramp-down grace (`graceful_ramp_down`; `plan.graceful_stop` for the other
//! executors) and is then hard-cancelled; a slot that re-enters it before its task ended
//! simply goes on. `per-vu-iterations` caps each VU at `iterations` and ends when every
//! active VU reached the cap (or at `max_duration`).
use super::{pool_size, segment_changed, vu_number, wait_stop, Controls, End};
use crate::sample::Scenario;
use crate::vu::{spawn_vu, ClosedFeed, Env, Slot};
use barrage_core::{ExecutorConfig, Plan, Segment};
use std::rc::Rc;
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often the VU target is re-evaluated (ramps change by whole VUs; 50 ms is well
/// inside one VU step of any practical ramp).
pub const TICK: Duration = Duration::from_millis(50);

pub(crate) async fn run<S: Scenario + 'static>(
    plan: &Plan,
    env: &Rc<Env<S>>,
    start: Instant,
    controls: &mut Controls,
    vus_root: &CancellationToken,
) -> End {
    let cfg = &plan.scenario;
    let (ramp_down, cap) = match cfg {
        ExecutorConfig::RampingVus {
            graceful_ramp_down, ..
        } => (*graceful_ramp_down, None),
        ExecutorConfig::PerVuIterations { iterations, .. } => {
            (plan.graceful_stop, Some(*iterations))
        }
        _ => (plan.graceful_stop, None),
    };
    let vmax = cfg.max_vus();
    let end_at = start + cfg.duration();
    let mut slots: Vec<Rc<Slot>> = Vec::new();
    let mut segment: Option<Segment> = None;
    let mut next_tick = start;
    let end = loop {
        let now = Instant::now();
        if now >= end_at {
            break End::Schedule;
        }
        let seg = *controls.segment.borrow_and_update();
        if segment != Some(seg) {
            resize(&mut slots, &seg, vmax, vus_root);
            if segment.is_some() {
                tracing::info!(segment = %seg, vus = slots.len(), "following the new segment");
            }
            segment = Some(seg);
        }
        let t = now - start;
        let want = seg.scale(cfg.vus_at(t).unwrap_or(0)) as usize;
        for (i, slot) in slots.iter().enumerate() {
            let should = i < want;
            if should && !slot.active.get() {
                if cap.is_some_and(|c| slot.iterations.get() >= c) {
                    continue;
                }
                slot.active.set(true);
                slot.kill_at.set(None);
                if !slot.running.get() {
                    if slot.token.borrow().is_cancelled() {
                        *slot.token.borrow_mut() = vus_root.child_token();
                    }
                    let feed = ClosedFeed {
                        slot: slot.clone(),
                        think: plan.flow.think_time,
                        cap,
                    };
                    spawn_vu(env, slot, feed);
                }
            } else if !should && slot.active.get() {
                slot.active.set(false);
                slot.wake.notify_one();
                if slot.running.get() {
                    slot.kill_at.set(Some(now + ramp_down));
                }
            }
            if let Some(at) = slot.kill_at.get() {
                if at <= now && !slot.active.get() {
                    slot.kill_at.set(None);
                    if slot.running.get() {
                        tracing::debug!(vu = slot.number.get(), "ramp-down grace over; cancelling");
                        slot.token.borrow().cancel();
                    }
                }
            }
        }
        let running = slots.iter().filter(|s| s.running.get()).count() as u64;
        env.registry.set_vus(running, slots.len() as u64);
        // the worker's health: the VUs the plan wants now (less those done with their
        // iterations) against those of them running
        let (mut planned, mut active) = (0u64, 0u64);
        for s in slots.iter().take(want) {
            if cap.is_some_and(|c| s.iterations.get() >= c) && !s.running.get() {
                continue;
            }
            planned += 1;
            active += u64::from(s.active.get() && s.running.get());
        }
        env.registry.set_vus_plan(planned, active);
        if let Some(c) = cap {
            let finished = slots
                .iter()
                .take(want)
                .all(|s| s.iterations.get() >= c && !s.running.get());
            if finished {
                break End::Finished;
            }
        }
        next_tick += TICK;
        if next_tick < now {
            next_tick = now + TICK;
        }
        tokio::select! {
            biased;
            _ = controls.hard.cancelled() => break End::Hard,
            grace = wait_stop(&mut controls.stop) => break End::Stop(grace),
            _ = segment_changed(&mut controls.segment) => {}
            _ = env.totals.ended.notified(), if cap.is_some() => {}
            _ = tokio::time::sleep_until(next_tick.min(end_at)) => {}
        }
    };
    deactivate_all(&slots);
    end
}

/// Sizes the slot table for `seg` and renumbers every slot (a running VU uses its new
/// number from its next iteration on).
fn resize(slots: &mut Vec<Rc<Slot>>, seg: &Segment, vmax: u64, vus_root: &CancellationToken) {
    let pool = pool_size(seg, vmax) as usize;
    while slots.len() < pool {
        let i = slots.len() as u64;
        slots.push(Slot::new(vu_number(seg, vmax, i), vus_root.child_token()));
    }
    for (i, s) in slots.iter().enumerate() {
        s.number.set(vu_number(seg, vmax, i as u64));
    }
}

/// Deactivates every slot so running VUs start nothing new (scenario end).
fn deactivate_all(slots: &[Rc<Slot>]) {
    for s in slots {
        s.active.set(false);
        s.wake.notify_one();
    }
}

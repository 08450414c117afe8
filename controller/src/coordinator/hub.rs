//! The hub: the one task that owns the run's state (see the phase table in the module
//! above). Sessions send it [`Event`]s; it answers workers through their outbound channels.
//! Who is in the run lives in [`super::roster`], the end-of-run report in [`super::finish`].
use super::finish::{self, Ending};
use super::roster::{Loss, Roster};
use super::{Control, CoordinatorConfig, CoordinatorError, Event};
use crate::cli::OnWorkerLoss;
use crate::merge::Merger;
use crate::output::Output;
use crate::progress::{Progress, Status};
use crate::report::{EndReason, RunReport};
use crate::timeseries::{TimePoint, TimeSeries};
use barrage_core::liveness;
use barrage_core::threshold::{abort_reason, Verdict};
use barrage_core::Segment;
use barrage_proto::pb::{self, controller_message::Msg as Out, worker_message::Msg as In};
use barrage_proto::segment_to_pb;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;

mod live;
mod soak;

pub use soak::{load as load_checkpoint, Resumed};

/// The shortest delay between `Start` and stage time 0 (a few workers on loopback).
pub const MIN_START_DELAY: Duration = Duration::from_millis(250);
/// The longest: a fleet whose assignment round took longer than half of this is slow
/// enough that a later start would not help it.
pub const MAX_START_DELAY: Duration = Duration::from_secs(5);

/// How long after `Start` is sent stage time 0 is, from what was measured on the way:
/// `round` is the assignment round (every `Assignment` sent, every `Ready` back), which
/// `Start` repeats one way (the same fan-out through the same streams), and `max_rtt` is
/// the slowest worker's measured round trip. Twice both leaves the slowest worker room for
/// a round as slow again; a fixed guess is either too short for a thousand workers or a
/// waste for two.
pub fn start_delay(round: Duration, max_rtt: Duration) -> Duration {
    (round * 2 + max_rtt * 2).clamp(MIN_START_DELAY, MAX_START_DELAY)
}
/// The hub's tick: it sends the heartbeat, closes intervals and takes checkpoints, so it
/// is at least as frequent as [`liveness::heartbeat`]. Liveness has its own timer, at the
/// earliest deadline ([`super::heard`]).
pub fn tick_period(interval: Duration) -> Duration {
    Duration::from_millis(200).min(liveness::heartbeat(interval))
}

/// Extra time past the plan's duration and graceful stop before the hub aborts.
pub const DEADLINE_SLACK: Duration = Duration::from_secs(15);
/// How long aborted workers get to send `Done`.
pub const ABORT_WAIT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Joining,
    Assigning,
    Running,
    Stopping,
}

pub(crate) struct Hub {
    cfg: CoordinatorConfig,
    outputs: Vec<Box<dyn Output>>,
    workers: Roster,
    phase: Phase,
    merger: Merger,
    timeseries: TimeSeries,
    /// Per-stage merged data (ramps, plateaus).
    stages: barrage_core::stages::StageBook,
    /// Each worker's own health figures per stage (the run's validity).
    health: barrage_core::validity::HealthBook,
    outcomes: Vec<Verdict>,
    end_reason: Option<EndReason>,
    started: Option<(Instant, SystemTime)>,
    stop_deadline: Option<Instant>,
    interrupts: u32,
    progress: Progress,
    joined_deadline: Instant,
    /// When the next worker could reach the silence limit (`None`: no check due: before
    /// the start, while a resumed run waits for its workers, or nobody is running).
    liveness_due: Option<Instant>,
    /// When the assignments were sent: the start of the round [`start_delay`] measures.
    assigned_at: Option<Instant>,
    /// `--soak`: checkpoints, a resumed run, rejoining workers ([`soak`]).
    soak: soak::SoakHub,
}

impl Hub {
    pub(crate) fn new(cfg: CoordinatorConfig, outputs: Vec<Box<dyn Output>>) -> Self {
        let total = cfg.plan.duration();
        let progress = Progress::new(cfg.progress, total);
        let joined_deadline = Instant::now() + cfg.join_timeout;
        Hub {
            timeseries: TimeSeries {
                interval_ms: cfg.plan.interval.as_millis() as u32,
                ladder: cfg.soak.as_ref().map(|s| s.ladder).unwrap_or_default(),
                ..Default::default()
            },
            stages: barrage_core::stages::StageBook::new(&cfg.plan.scenario, cfg.plan.interval),
            health: barrage_core::validity::HealthBook::new(&cfg.plan.scenario, cfg.plan.interval),
            cfg,
            outputs,
            workers: Roster::default(),
            phase: Phase::Joining,
            merger: Merger::new(),
            outcomes: Vec::new(),
            end_reason: None,
            started: None,
            stop_deadline: None,
            interrupts: 0,
            progress,
            joined_deadline,
            liveness_due: None,
            assigned_at: None,
            soak: soak::SoakHub::default(),
        }
    }

    fn interval(&self) -> Duration {
        self.cfg.plan.interval
    }

    pub(crate) async fn run(
        mut self,
        mut events: mpsc::Receiver<Event>,
        mut control: mpsc::UnboundedReceiver<Control>,
    ) -> Result<(RunReport, Vec<Box<dyn Output>>), CoordinatorError> {
        let period = tick_period(self.interval());
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let far = || tokio::time::Instant::now() + Duration::from_secs(86_400);
        let liveness = tokio::time::sleep_until(far());
        tokio::pin!(liveness);
        let mut armed: Option<Instant> = None;
        if let Some(r) = self.cfg.resume.take() {
            self.resume(r);
        } else {
            tracing::info!(expect = self.cfg.expect_workers, plan = %self.cfg.plan.describe_scenarios(), "waiting for workers");
        }
        loop {
            if armed != self.liveness_due {
                armed = self.liveness_due;
                liveness.as_mut().reset(armed.map_or_else(far, Into::into));
            }
            // in this order: a due liveness check or tick does not wait behind the queue
            // of snapshots that arrives with every interval's edge (events come last)
            tokio::select! {
                biased;
                () = &mut liveness, if armed.is_some() => {
                    self.turn();
                    self.check_liveness();
                }
                Some(c) = control.recv() => {
                    self.turn();
                    self.on_control(c)?;
                }
                _ = tick.tick() => {
                    self.turn();
                    self.on_tick()?;
                    self.publish_live();
                }
                Some(ev) = events.recv() => {
                    self.turn();
                    self.on_event(ev)?;
                }
            }
            if self.finished() {
                break;
            }
        }
        Ok(self.finish())
    }

    fn finished(&self) -> bool {
        match self.phase {
            Phase::Joining | Phase::Assigning => self.end_reason.is_some(),
            Phase::Running | Phase::Stopping => {
                let none_running = !self.workers.values().any(|w| w.running());
                let timed_out = self.stop_deadline.is_some_and(|d| Instant::now() >= d);
                none_running || timed_out
            }
        }
    }

    fn abort_all(&mut self, reason: &str) {
        self.workers.send_running(&Out::Abort(pb::Abort {
            reason: reason.into(),
        }));
        if matches!(self.phase, Phase::Running | Phase::Stopping) {
            self.phase = Phase::Stopping;
            let by = Instant::now() + ABORT_WAIT;
            self.stop_deadline = Some(self.stop_deadline.map_or(by, |d| d.min(by)));
        }
    }

    fn end(&mut self, reason: EndReason) {
        if self.end_reason.is_none() {
            tracing::info!(reason = %reason.describe(), "run ending");
            self.end_reason = Some(reason);
        }
    }

    fn on_control(&mut self, c: Control) -> Result<(), CoordinatorError> {
        match c {
            Control::Interrupt => {
                self.interrupts += 1;
                if self.interrupts == 1 && self.phase == Phase::Running {
                    tracing::warn!("SIGINT: stopping gracefully (again to abort at once)");
                    self.workers.send_running(&Out::Stop(pb::Stop {
                        reason: "interrupted (SIGINT)".into(),
                        graceful: true,
                    }));
                    self.phase = Phase::Stopping;
                    self.stop_deadline =
                        Some(Instant::now() + self.cfg.plan.graceful_stop + Duration::from_secs(5));
                    self.end(EndReason::Interrupted);
                } else {
                    tracing::warn!("SIGINT: aborting");
                    self.end_reason = Some(if self.interrupts == 1 {
                        EndReason::Interrupted
                    } else {
                        EndReason::Aborted
                    });
                    self.abort_all("interrupted (SIGINT)");
                }
            }
            Control::ChildExited(what) => {
                if matches!(self.phase, Phase::Joining | Phase::Assigning) {
                    self.abort_all("a local worker failed to start");
                    return Err(CoordinatorError::LocalWorkerExited { what });
                }
                tracing::debug!(%what, "local worker process exited");
            }
        }
        Ok(())
    }

    fn on_event(&mut self, ev: Event) -> Result<(), CoordinatorError> {
        match ev {
            Event::Hello {
                hello,
                out,
                heard,
                reply,
                ..
            } if hello.rejoin.is_some() => self.on_rejoin(hello, out, heard, reply),
            Event::Hello {
                hello,
                peer,
                out,
                heard,
                reply,
            } => {
                let answer = if self.phase != Phase::Joining {
                    Err("the run has already started; start all workers before the controller reaches --expect-workers".to_string())
                } else if self.workers.len() >= self.cfg.expect_workers {
                    Err(format!(
                        "the run is full: the controller expects {} workers",
                        self.cfg.expect_workers
                    ))
                } else {
                    let (host, pid, core) = (hello.host.clone(), hello.pid, hello.core);
                    let id = self.workers.admit(hello, out, heard);
                    tracing::info!(worker = %id, %host, pid, core, ?peer, "worker joined");
                    Ok(id)
                };
                let _ = reply.send(answer);
            }
            Event::Measured {
                id,
                offset_us,
                rtt_us,
            } => {
                if let Some(w) = self.workers.get_mut(&id) {
                    tracing::info!(worker = %id, offset_us, rtt_us, "clock measured");
                    w.offset = Some((offset_us, rtt_us));
                }
                if self.phase == Phase::Joining
                    && self.workers.len() == self.cfg.expect_workers
                    && self.workers.values().all(|w| w.offset.is_some())
                {
                    self.assign();
                }
            }
            Event::Message { id, msg } => self.on_message(&id, msg)?,
            Event::Gone { id, reason } => self.on_gone(&id, reason)?,
        }
        Ok(())
    }

    fn assign(&mut self) {
        let plan_json = self.cfg.plan.to_json();
        let plan_hash = self.cfg.plan.hash();
        let secrets: std::collections::HashMap<String, String> = self
            .cfg
            .secrets
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().to_string()))
            .collect();
        let segments = Segment::split_even(self.workers.len());
        let (rejoin_grace_ms, rejoin_keep_snapshots) = self.rejoin_terms();
        for (w, seg) in self.workers.values_mut().zip(segments) {
            w.segment = Some(seg);
            w.send(Out::Assignment(pb::Assignment {
                plan_json: plan_json.clone(),
                plan_hash: plan_hash.clone(),
                segment: Some(segment_to_pb(seg)),
                clock_offset_us: w.offset.map_or(0, |o| o.0),
                raw_points: self.cfg.raw_points,
                secrets: secrets.clone(),
                rejoin_grace_ms,
                rejoin_keep_snapshots,
            }));
        }
        tracing::info!(workers = self.workers.len(), %plan_hash, "assignments sent");
        self.assigned_at = Some(Instant::now());
        self.phase = Phase::Assigning;
    }

    fn start(&mut self) {
        let now = Instant::now();
        let round = self
            .assigned_at
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        let max_rtt = self
            .workers
            .values()
            .filter_map(|w| w.offset.map(|o| Duration::from_micros(o.1.max(0) as u64)))
            .max()
            .unwrap_or_default();
        let delay = start_delay(round, max_rtt);
        let at = SystemTime::now() + delay;
        let at_us = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        for w in self.workers.values_mut() {
            w.send(Out::Start(pb::Start {
                start_at_unix_us: at_us,
            }));
        }
        self.workers.reset_liveness(now + delay);
        self.liveness_due = Some(now + delay + self.silence_limit());
        self.started = Some((now + delay, at));
        self.soak_started(now + delay);
        self.timeseries.start_unix_us = at_us;
        self.phase = Phase::Running;
        let deadline = now + delay + self.cfg.plan.max_duration() + DEADLINE_SLACK;
        self.stop_deadline = Some(deadline + ABORT_WAIT);
        tracing::info!(
            start_at_unix_us = at_us,
            workers = self.workers.len(),
            assign_round_ms = round.as_millis() as u64,
            max_rtt_us = max_rtt.as_micros() as u64,
            delay_ms = delay.as_millis() as u64,
            "start sent"
        );
    }

    fn on_message(&mut self, id: &str, msg: In) -> Result<(), CoordinatorError> {
        let Some(w) = self.workers.get_mut(id) else {
            return Ok(());
        };
        if w.lost.is_some() {
            return Ok(()); // a lost worker's late words do not count
        }
        match msg {
            In::Ready(r) => {
                if r.plan_hash != self.cfg.plan.hash() {
                    self.abort_all("plan hash mismatch");
                    return Err(CoordinatorError::PlanHashMismatch {
                        worker: id.to_string(),
                        theirs: r.plan_hash,
                        ours: self.cfg.plan.hash(),
                    });
                }
                w.ready = true;
                tracing::info!(worker = %id, "ready");
                if self.phase == Phase::Assigning && self.workers.values().all(|w| w.ready) {
                    self.start();
                }
            }
            In::Snapshot(s) => self.merge(id, &s),
            In::Points(batch) => {
                let sent = batch.points.len();
                let points: Vec<_> = batch
                    .points
                    .into_iter()
                    .filter_map(|p| barrage_proto::point_from_pb(p).ok())
                    .collect();
                if points.len() < sent {
                    tracing::warn!(worker = %id, dropped = sent - points.len(), "invalid raw points dropped");
                }
                if let Some((last, rest)) = self.outputs.split_last_mut() {
                    for o in rest {
                        o.add(points.clone());
                    }
                    last.add(points);
                }
            }
            In::Done(d) => {
                if let Some(last) = &d.last {
                    self.merge(id, last);
                }
                if let Some(w) = self.workers.get_mut(id) {
                    w.done = Some(d.iterations);
                }
                tracing::info!(worker = %id, iterations = d.iterations, "worker done");
                if !d.error.is_empty() {
                    tracing::warn!(worker = %id, error = %d.error, "worker finished with an error");
                    // it stopped its share early (e.g. it lost this controller): its figures
                    // count, its share goes to the others by policy
                    if self.phase == Phase::Running {
                        self.lose(id, format!("stopped early: {}", d.error));
                    }
                }
            }
            In::Error(e) => {
                tracing::warn!(worker = %id, fatal = e.fatal, message = %e.message, "worker error");
                if e.fatal {
                    self.lose(id, format!("fatal worker error: {}", e.message));
                }
            }
            In::Hello(_) | In::Pong(_) => {}
        }
        Ok(())
    }

    fn merge(&mut self, id: &str, s: &pb::Snapshot) {
        if !self.is_new(id, s.seq) {
            return; // a rejoined worker's resend of what is merged already
        }
        if let Err(e) = self.merger.add_wire(id, s) {
            tracing::warn!(worker = %id, seq = s.seq, error = %e, "snapshot dropped: it does not decode or clashes with the merged run");
            return;
        }
        match barrage_proto::health_from_pb(s) {
            Ok(h) => self.health.add(id, s.seq, h.as_ref()),
            Err(e) => {
                tracing::warn!(worker = %id, seq = s.seq, error = %e, "health figures dropped: they do not validate")
            }
        }
    }

    fn on_gone(&mut self, id: &str, reason: String) -> Result<(), CoordinatorError> {
        let Some(w) = self.workers.get_mut(id) else {
            return Ok(());
        };
        w.out = None;
        if w.done.is_some() || w.lost.is_some() {
            return Ok(());
        }
        match self.phase {
            Phase::Joining => {
                tracing::warn!(worker = %id, %reason, "worker left before the start; waiting for another");
                self.workers.remove(id);
            }
            Phase::Assigning => {
                self.abort_all("a worker left before the start");
                return Err(CoordinatorError::LeftBeforeStart {
                    worker: id.to_string(),
                    reason,
                });
            }
            Phase::Running | Phase::Stopping => self.lose(id, reason),
        }
        Ok(())
    }

    /// Marks a worker lost; rebalances or fails by policy.
    fn lose(&mut self, id: &str, reason: String) {
        self.lose_all(vec![(id.to_string(), reason)]);
    }

    /// Marks workers lost at once (those one liveness check found silent): one
    /// rebalancing for all of them, not one per worker, each of which would re-split and
    /// resend every survivor's share.
    fn lose_all(&mut self, lost: Vec<(String, String)>) {
        let mut last = None;
        for (id, reason) in lost {
            if let Loss::Lost { live } = self.workers.mark_lost(&id, &reason) {
                last = Some((id, reason, live));
            }
        }
        let Some((id, reason, live)) = last else {
            return;
        };
        if self.phase != Phase::Running {
            return;
        }
        if live.is_empty() {
            self.end(EndReason::WorkersLost(format!(
                "every worker was lost (last: {id}: {reason})"
            )));
            return;
        }
        match self.cfg.on_worker_loss {
            OnWorkerLoss::Fail => {
                self.end(EndReason::WorkersLost(format!(
                    "worker {id} was lost ({reason}) and --on-worker-loss=fail"
                )));
                self.abort_all("a worker was lost and --on-worker-loss=fail");
            }
            OnWorkerLoss::Rebalance => self.workers.rebalance(&live),
        }
    }

    fn now_seq(&self) -> u64 {
        match self.started {
            Some((t0, _)) => {
                Instant::now().saturating_duration_since(t0).as_millis() as u64
                    / self.interval().as_millis().max(1) as u64
            }
            None => 0,
        }
    }

    fn elapsed(&self) -> Duration {
        self.started.map_or(Duration::ZERO, |(t0, _)| {
            Instant::now().saturating_duration_since(t0)
        })
    }

    fn on_tick(&mut self) -> Result<(), CoordinatorError> {
        let now = Instant::now();
        match self.phase {
            Phase::Joining | Phase::Assigning => {
                if now >= self.joined_deadline {
                    self.abort_all("not every worker joined in time");
                    return Err(CoordinatorError::JoinTimeout {
                        joined: self.workers.len(),
                        ready: self.workers.values().filter(|w| w.ready).count(),
                        expected: self.cfg.expect_workers,
                        timeout: self.cfg.join_timeout,
                    });
                }
                return Ok(());
            }
            Phase::Running | Phase::Stopping => {}
        }
        // the heartbeat: a running worker that hears nothing gives up (see barrage_core::liveness)
        self.workers.send_running(&Out::Ping(pb::Ping {
            seq: 0,
            controller_time_us: super::clock::now_us(),
        }));
        if self.rejoin_tick(now) {
            return Ok(());
        }
        let expected = self.workers.running_ids();
        let closed = self.merger.close_ready(&expected, self.now_seq());
        if !closed.is_empty() {
            for c in &closed {
                self.log_closed(c);
                self.timeseries
                    .push(TimePoint::from_interval(c.seq, &c.snapshot, c.workers));
                self.stages.add(c.seq, &c.snapshot);
            }
            let elapsed = self.elapsed();
            self.outcomes = self.cfg.thresholds.evaluate_staged(
                self.merger.total(),
                Some(&self.stages),
                elapsed,
            );
            if self.phase == Phase::Running {
                if let Some(why) = abort_reason(&self.outcomes, elapsed) {
                    tracing::warn!(%why, "abortOnFail threshold failed");
                    self.end(EndReason::ThresholdAbort(why));
                    self.abort_all("a threshold with abortOnFail failed");
                }
            }
        }
        self.maybe_checkpoint(now);
        self.progress.update(&self.status());
        if self.phase == Phase::Running && self.stop_deadline.is_some_and(|d| now + ABORT_WAIT >= d)
        {
            self.end(EndReason::Deadline);
            self.abort_all("the plan's duration and graceful stop are over");
        }
        Ok(())
    }

    /// The hub takes a turn: a long gap since the last one is a stall of the controller
    /// itself, not the workers' silence ([`super::heard::Stalls`]).
    fn turn(&mut self) {
        let allowed = self.interval() * super::heard::STALL_AFTER;
        self.workers
            .turn(Instant::now(), allowed, self.silence_limit());
    }

    /// Loses the running workers whose silence reached the limit, and sets the next check
    /// at the earliest deadline of the rest.
    fn check_liveness(&mut self) {
        if !matches!(self.phase, Phase::Running | Phase::Stopping) || self.soak.rejoining.is_some()
        {
            self.liveness_due = None;
            return;
        }
        let limit = self.silence_limit();
        let now = Instant::now();
        let (silent, next) = self.workers.check_liveness(now, limit);
        self.liveness_due = next;
        let intervals = limit.as_secs_f64() / self.interval().as_secs_f64().max(1e-9);
        let mut lost = Vec::with_capacity(silent.len());
        for id in silent {
            // when its last word arrived and how long after the deadline this check ran
            // (the fleet bench sets these against the worker's own clock)
            if let Some(heard) = self.workers.heard_at(&id) {
                let wall = now.saturating_duration_since(heard);
                tracing::info!(
                    worker = %id,
                    heard_unix_us = super::heard::unix_us(heard),
                    silent_ms = wall.as_secs_f64() * 1e3,
                    late_ms = wall.saturating_sub(limit).as_secs_f64() * 1e3,
                    "silence limit reached"
                );
            }
            lost.push((id, format!("sent nothing for {intervals:.1} intervals")));
        }
        self.lose_all(lost);
    }

    /// One line per closed interval (debug): how many workers it merged and the snapshot
    /// lag, from the interval's end to the merge of its last snapshot (the fleet bench
    /// reads it).
    fn log_closed(&self, c: &crate::merge::ClosedInterval) {
        let Some((t0, _)) = self.started else {
            return;
        };
        let end = t0 + self.interval() * (c.seq as u32 + 1);
        let lag_ms = c.last_report.map_or(f64::NAN, |at| {
            if at >= end {
                at.duration_since(end).as_secs_f64() * 1e3
            } else {
                -(end.duration_since(at).as_secs_f64() * 1e3)
            }
        });
        tracing::debug!(seq = c.seq, workers = c.workers, lag_ms, "interval closed");
    }

    fn status(&self) -> Status {
        let last = self.timeseries.last();
        let ms = self.timeseries.interval_ms;
        Status {
            elapsed: self.elapsed(),
            stage: crate::progress::stage_label(&self.cfg.plan.scenario, self.elapsed()),
            vus: last.map_or(0, |p| p.vus as u64),
            rps: last.map_or(0.0, |p| p.per_s(p.requests, ms)),
            flow_p95_ms: last.map_or(f32::NAN, |p| p.flow_p95_ms),
            error_rate: last.map_or(0.0, |p| {
                if p.requests == 0 {
                    0.0
                } else {
                    p.failures as f64 / p.requests as f64
                }
            }),
            workers: self.workers.values().filter(|w| w.live()).count(),
            lost: self.workers.values().filter(|w| !w.live()).count(),
            stopping: self.phase == Phase::Stopping,
        }
    }

    fn finish(mut self) -> (RunReport, Vec<Box<dyn Output>>) {
        self.progress.finish();
        let report = finish::assemble(Ending {
            plan: &self.cfg.plan,
            thresholds: &self.cfg.thresholds,
            roster: &mut self.workers,
            merger: &mut self.merger,
            timeseries: std::mem::take(&mut self.timeseries),
            stages: self.stages,
            health: &self.health,
            started: self.started,
            end_reason: self.end_reason.take(),
        });
        (report, std::mem::take(&mut self.outputs))
    }
}

#[cfg(test)]
mod tests;

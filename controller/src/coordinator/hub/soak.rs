//! Soak runs in the hub (see `crate::soak`): a checkpoint every `--checkpoint-every`, a
//! resumed run's state (`--resume`), and the workers rejoining it. A child of the hub so it
//! reads the hub's state without widening it; nothing here runs without `--soak`.
//!
//! A resumed hub starts in `Running` with the checkpoint's figures and workers, none of them
//! connected, and waits up to the rejoin grace for them (no liveness checks, no interval
//! closes meanwhile: the resent snapshots must reach their buckets first). A worker that
//! rejoins resends what it kept; snapshots up to the last one already merged from it (its
//! *floor*) are dropped, so nothing counts twice. Workers that do not come back in time
//! are lost, and their share is rebalanced as for any loss.
use super::super::roster::Restored;
use super::{Hub, Phase, ABORT_WAIT, DEADLINE_SLACK};
use crate::merge::Merger;
use crate::report::{EndReason, Lost, RunReport};
use crate::soak::checkpoint::{segment_b64, segment_from_b64, State, WorkerState};
use barrage_proto::pb;
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{mpsc, oneshot};
use tonic::Status;

/// The hub's soak bookkeeping.
#[derive(Debug, Default)]
pub(crate) struct SoakHub {
    /// When the next checkpoint is due (`None`: no checkpoints).
    pub next_checkpoint: Option<Instant>,
    /// A resumed run waits for its workers until then.
    pub rejoining: Option<Instant>,
    /// Per rejoined worker: its snapshots up to this seq are merged already.
    pub floors: BTreeMap<String, u64>,
}

/// A checkpoint read back for `--resume` (loaded and checked before anything starts).
pub struct Resumed {
    pub state: State,
    pub settled: crate::merge::Settled,
    pub timeseries: barrage_core::timeseries::TimeSeries,
    pub stages: barrage_core::stages::StageBook,
}

impl Hub {
    /// What the assignment tells workers about rejoining: (grace ms, snapshots to keep).
    /// A worker keeps enough snapshots to cover a checkpoint period and the grace.
    pub(super) fn rejoin_terms(&self) -> (u32, u32) {
        let Some(s) = &self.cfg.soak else {
            return (0, 0);
        };
        let interval = self.interval().as_millis().max(1);
        let every = s.checkpoint_every.unwrap_or_default().as_millis();
        let keep = (every + s.rejoin_grace.as_millis()).div_ceil(interval) + 2;
        (
            s.rejoin_grace.as_millis().min(u32::MAX as u128) as u32,
            keep.min(100_000) as u32,
        )
    }

    /// How long a running worker may be silent before it is lost:
    /// [`liveness::controller_gives_up`](barrage_core::liveness::controller_gives_up), or
    /// with `--soak` at least the rejoin grace in whole intervals (its workers keep their
    /// load up that long without a controller, so their share must not go to the others
    /// before).
    pub(super) fn silence_limit(&self) -> Duration {
        let interval = self.interval();
        let grace = self
            .cfg
            .soak
            .as_ref()
            .map_or(Duration::ZERO, |s| s.rejoin_grace);
        let n = grace.as_millis().div_ceil(interval.as_millis().max(1));
        let grace = interval.saturating_mul(n.min(u32::MAX as u128) as u32);
        barrage_core::liveness::controller_gives_up(interval).max(grace)
    }

    /// Starts the checkpoint clock (at the run's start).
    pub(super) fn soak_started(&mut self, now: Instant) {
        if let Some(every) = self.cfg.soak.as_ref().and_then(|s| s.checkpoint_every) {
            if self.cfg.checkpoints.is_some() {
                self.soak.next_checkpoint = Some(now + every);
            }
        }
    }

    /// Writes a checkpoint when one is due.
    pub(super) fn maybe_checkpoint(&mut self, now: Instant) {
        let (Some(due), Some(every)) = (
            self.soak.next_checkpoint,
            self.cfg.soak.as_ref().and_then(|s| s.checkpoint_every),
        ) else {
            return;
        };
        if now < due || self.soak.rejoining.is_some() {
            return;
        }
        self.soak.next_checkpoint = Some(now + every);
        if let Err(e) = self.checkpoint() {
            tracing::warn!(error = %e, "checkpoint not taken");
        }
    }

    fn checkpoint(&mut self) -> Result<(), String> {
        let Some(writer) = self.cfg.checkpoints.clone() else {
            return Ok(());
        };
        let Some((_, at)) = self.started else {
            return Ok(());
        };
        let began = Instant::now();
        // the run's sinks, series and stages are lent to the checkpoint, not copied (a
        // copy of every dense histogram was the soak controller's largest allocation),
        // and given back below before anything can fail
        let settled = self.merger.lend_settled();
        let mut states = Vec::new();
        let mut records = Vec::new();
        for (id, w) in self.workers.iter_mut() {
            let t = settled.workers.get(id).cloned().unwrap_or_default();
            states.push(WorkerState {
                id: id.clone(),
                host: w.hello.host.clone(),
                pid: w.hello.pid,
                core: w.hello.core,
                version: w.hello.version.clone(),
                name: w.hello.name.clone(),
                segment: w.segment.map(segment_b64),
                offset_us: w.offset.map_or(0, |o| o.0),
                rtt_us: w.offset.map_or(0, |o| o.1),
                snapshots: t.snapshots,
                last_seq: t.last_seq,
                iterations: t.iterations,
                requests: t.requests,
                done: w.done,
                lost: w.lost.as_ref().map(|l| l.reason.clone()),
            });
            records.push(w.record(id, &t, w.lost.clone(), self.health.worker(id)));
        }
        let state = State::capture(
            self.cfg.plan.hash(),
            self.timeseries.start_unix_us,
            &settled,
            &self.timeseries,
            &self.stages,
            states,
        );
        // the partial summary covers the closed intervals: their time is what rates divide by
        let closed = settled.closed_through.map_or(0, |c| c + 1);
        let elapsed = self.interval() * closed.min(u32::MAX as u64) as u32;
        let thresholds =
            self.cfg
                .thresholds
                .evaluate_staged(&settled.total, Some(&self.stages), elapsed);
        let validity =
            barrage_core::validity::check(&self.health, &self.stages, &self.cfg.plan.validity);
        let placeholder =
            barrage_core::stages::StageBook::new(&self.cfg.plan.scenario, self.interval());
        let report = RunReport {
            plan: self.cfg.plan.clone(),
            start: at,
            end: at + elapsed,
            elapsed,
            total: settled.total,
            timeseries: std::mem::take(&mut self.timeseries),
            stages: std::mem::replace(&mut self.stages, placeholder),
            workers: records,
            thresholds,
            end_reason: EndReason::Partial(format!(
                "checkpoint of the first {closed} intervals; the run had not ended when it was taken"
            )),
            late_snapshots: settled.late,
            validity: Some(validity),
        };
        let mut doc = crate::summary::summarize(&report, None);
        if let Some(s) = &self.cfg.soak {
            doc.trends = Some(crate::soak::trends(&report.timeseries, None, s));
        }
        self.merger.give_back(report.total);
        self.timeseries = report.timeseries;
        self.stages = report.stages;
        tracing::debug!(
            build_ms = began.elapsed().as_secs_f64() * 1e3,
            "checkpoint taken"
        );
        writer.write(crate::soak::checkpoint::Taken {
            state: state?,
            summary: Box::new(doc),
        });
        Ok(())
    }

    /// Takes over a checkpointed run (`--resume`): its figures, workers and clock; then
    /// waits for the workers to rejoin.
    pub(super) fn resume(&mut self, r: Resumed) {
        let now = Instant::now();
        let now_wall = SystemTime::now();
        let start_wall =
            SystemTime::UNIX_EPOCH + Duration::from_micros(r.state.start_unix_us.max(0) as u64);
        let t0 = match now_wall.duration_since(start_wall) {
            Ok(ago) => now.checked_sub(ago).unwrap_or(now),
            Err(e) => now + e.duration(),
        };
        self.merger = Merger::restore(r.settled);
        let ladder = self.timeseries.ladder;
        self.timeseries = r.timeseries;
        self.timeseries.start_unix_us = r.state.start_unix_us;
        // the checkpoint stores rows, not flags: the resumed run's own flags downsample
        self.timeseries.ladder = ladder;
        self.stages = r.stages;
        for w in &r.state.workers {
            let hello = pb::Hello {
                version: w.version.clone(),
                protocol: barrage_core::PROTOCOL,
                host: w.host.clone(),
                cores: 0,
                core: w.core,
                pid: w.pid,
                name: w.name.clone(),
                rejoin: None,
            };
            let segment = w.segment.as_deref().and_then(|s| segment_from_b64(s).ok());
            self.workers.restore(
                w.id.clone(),
                hello,
                Restored {
                    offset: (w.offset_us, w.rtt_us),
                    segment,
                    done: w.done,
                    lost: w.lost.as_ref().map(|reason| Lost {
                        at: now_wall,
                        reason: reason.clone(),
                    }),
                },
            );
        }
        let grace = self
            .cfg
            .soak
            .as_ref()
            .map_or(Duration::from_secs(60), |s| s.rejoin_grace);
        self.started = Some((t0, start_wall));
        self.phase = Phase::Running;
        self.soak.rejoining = Some(now + grace);
        self.stop_deadline =
            Some(t0 + self.cfg.plan.max_duration() + DEADLINE_SLACK + ABORT_WAIT + grace);
        self.soak_started(now);
        tracing::info!(
            workers = r.state.workers.len(),
            closed_through = ?r.state.closed_through,
            grace_s = grace.as_secs_f64(),
            "resumed from a checkpoint; waiting for the workers to rejoin"
        );
    }

    /// A worker that lost its controller comes back (`Hello.rejoin`).
    pub(super) fn on_rejoin(
        &mut self,
        hello: pb::Hello,
        out: mpsc::Sender<Result<pb::ControllerMessage, Status>>,
        heard: std::sync::Arc<super::super::heard::Heard>,
        reply: oneshot::Sender<Result<String, String>>,
    ) {
        let Some(r) = hello.rejoin.clone() else {
            return;
        };
        let hash = self.cfg.plan.hash();
        let answer = match self.workers.get_mut(&r.worker_id) {
            _ if !matches!(self.phase, Phase::Running | Phase::Stopping) => {
                Err("this controller is not running a run to rejoin".to_string())
            }
            None => Err(format!(
                "no worker {} in this run; start the worker afresh",
                r.worker_id
            )),
            Some(_) if r.plan_hash != hash => Err(format!(
                "the run is of plan {hash}, the worker ran plan {}",
                r.plan_hash
            )),
            Some(w) if w.lost.is_some() => Err(format!(
                "worker {} was lost and its share went to the others",
                r.worker_id
            )),
            Some(_) => Ok(r.worker_id.clone()),
        };
        if let Ok(id) = &answer {
            let floor = self.merger.worker(id).and_then(|t| t.last_seq);
            if let Some(f) = floor {
                self.soak.floors.insert(id.clone(), f);
            }
            self.workers.attach(id, out, heard);
            tracing::info!(worker = %id, floor = ?floor, "worker rejoined");
        } else if let Err(why) = &answer {
            tracing::warn!(worker = %r.worker_id, %why, "rejoin refused");
        }
        let _ = reply.send(answer);
    }

    /// Whether a snapshot of `id` for `seq` is new (a rejoined worker resends some).
    pub(super) fn is_new(&self, id: &str, seq: u64) -> bool {
        self.soak.floors.get(id).is_none_or(|f| seq > *f)
    }

    /// While a resumed run waits for its workers: `true` (the tick does nothing else).
    /// Ends the wait when every running worker is back, or loses the rest at the grace.
    pub(super) fn rejoin_tick(&mut self, now: Instant) -> bool {
        let Some(until) = self.soak.rejoining else {
            return false;
        };
        let missing: Vec<String> = self
            .workers
            .iter_mut()
            .filter(|(_, w)| w.running() && w.out.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        if !missing.is_empty() && now < until {
            return true;
        }
        self.soak.rejoining = None;
        self.workers.reset_liveness(now);
        self.liveness_due = Some(now + self.silence_limit());
        for id in missing {
            self.lose(&id, "did not rejoin the resumed controller in time".into());
        }
        tracing::info!("rejoin over; the run goes on");
        false
    }
}

/// Loads `dir`'s checkpoint for a run of `plan` (before anything starts).
pub fn load(
    dir: &std::path::Path,
    plan: &barrage_core::Plan,
) -> Result<Resumed, crate::soak::checkpoint::CheckpointError> {
    let state = State::load(dir, &plan.hash())?;
    let (settled, timeseries, stages) = state.restore(
        dir,
        barrage_core::stages::StageBook::new(&plan.scenario, plan.interval),
    )?;
    Ok(Resumed {
        state,
        settled,
        timeseries,
        stages,
    })
}

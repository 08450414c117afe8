//! `--dashboard`: what the hub hands the dashboard's feed each tick (see
//! `crate::dashboard`). A child of the hub so it can read the hub's state without widening
//! it; nothing here runs without a dashboard.
use super::{Hub, Phase};
use crate::dashboard::{RunPhase, Tick, WorkerHealth};

impl Hub {
    /// Publishes the live state (cheap when nothing changed; see `LiveFeed::tick`).
    pub(super) fn publish_live(&mut self) {
        if self.cfg.live.is_none() {
            return;
        }
        let status = self.status();
        let phase = match self.phase {
            Phase::Joining => RunPhase::Joining,
            Phase::Assigning => RunPhase::Starting,
            Phase::Running => RunPhase::Running,
            Phase::Stopping => RunPhase::Stopping,
        };
        let started = self.started.is_some();
        let merger = &self.merger;
        let now = std::time::Instant::now();
        let interval = self.interval().as_secs_f64().max(1e-3);
        let roster = &self.workers;
        let workers = roster
            .iter()
            .map(|(id, w)| {
                let tally = merger.worker(id);
                let state = if w.lost.is_some() {
                    "lost"
                } else if w.done.is_some() {
                    "done"
                } else if started {
                    "running"
                } else if w.ready {
                    "ready"
                } else {
                    "joining"
                };
                WorkerHealth {
                    id: id.clone(),
                    name: w.hello.name.clone(),
                    host: w.hello.host.clone(),
                    pid: w.hello.pid,
                    core: w.hello.core,
                    state,
                    segment: w.segment.map(|s| s.to_string()),
                    snapshots: tally.map_or(0, |t| t.snapshots),
                    last_seq: tally.and_then(|t| t.last_seq),
                    requests: tally.map_or(0, |t| t.requests as u64),
                    // whole intervals without a word (the limit is 3)
                    silent_intervals: if w.running() && started {
                        (roster.silence(w, now).as_secs_f64() / interval) as u32
                    } else {
                        0
                    },
                    rtt_us: w.offset.map(|o| o.1),
                    lost_reason: w.lost.as_ref().map(|l| l.reason.clone()),
                }
            })
            .collect();
        if let Some(live) = self.cfg.live.as_mut() {
            live.tick(Tick {
                phase,
                status: &status,
                total: self.merger.total(),
                points: &self.timeseries.points,
                workers,
                late_snapshots: self.merger.late,
            });
        }
    }
}

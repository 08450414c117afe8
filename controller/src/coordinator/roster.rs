//! Who is in the run and whether they are still there: the workers that joined, their
//! segments, liveness, and the rebalancing of a lost worker's share among the rest.
//!
//! The roster never talks to the network itself: it answers through each worker's
//! outbound channel, and a full or closed channel is left to liveness. Liveness is judged
//! by the clock: each worker's session stamps its messages as they arrive, and the
//! controller's own stalls are left out (see [`super::heard`]).
use super::heard::{Heard, Stalls};
use crate::report::Lost;
use barrage_core::Segment;
use barrage_proto::pb::{self, controller_message::Msg as Out};
use barrage_proto::segment_to_pb;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;
use tonic::Status as GrpcStatus;

/// The outbound half of a worker's stream.
pub(crate) type Outbound = mpsc::Sender<Result<pb::ControllerMessage, GrpcStatus>>;

/// One worker as the hub knows it.
pub(crate) struct Worker {
    /// What it said about itself (host, pid, core, version), for the report.
    pub hello: pb::Hello,
    /// Its stream; `None` once it is gone or lost, so nothing more is sent.
    pub out: Option<Outbound>,
    /// Clock offset and RTT (µs), once measured; the run waits for every worker's.
    pub offset: Option<(i64, i64)>,
    /// Its share of the load, once assigned.
    pub segment: Option<Segment>,
    /// It built the flow of the assignment and can start.
    pub ready: bool,
    /// Its iteration count, once it said `Done`.
    pub done: Option<u64>,
    /// Why and when it was lost, if it was.
    pub lost: Option<Lost>,
    /// When its latest message arrived (its session stamps it).
    pub heard: Arc<Heard>,
}

impl Worker {
    /// The summary's record of this worker (`id`), from what it shipped (`tally`).
    pub fn record(
        &self,
        id: &str,
        tally: &crate::merge::WorkerTally,
        lost: Option<Lost>,
        health: Option<barrage_core::validity::WorkerHealthSummary>,
    ) -> crate::report::WorkerRecord {
        crate::report::WorkerRecord {
            id: id.to_string(),
            host: self.hello.host.clone(),
            pid: self.hello.pid,
            core: self.hello.core,
            version: self.hello.version.clone(),
            segment: self.segment,
            clock_offset_us: self.offset.map_or(0, |o| o.0),
            rtt_us: self.offset.map_or(0, |o| o.1),
            iterations: tally.iterations.max(0.0) as u64,
            requests: tally.requests.max(0.0) as u64,
            snapshots: tally.snapshots,
            done_iterations: self.done,
            lost,
            health,
        }
    }

    pub fn live(&self) -> bool {
        self.lost.is_none()
    }
    pub fn running(&self) -> bool {
        self.lost.is_none() && self.done.is_none()
    }
    /// Sends `m`; a full or closed channel means a slow or gone worker, which liveness
    /// deals with.
    pub fn send(&self, m: Out) {
        if let Some(out) = &self.out {
            let _ = out.try_send(Ok(pb::ControllerMessage { msg: Some(m) }));
        }
    }
}

/// What a checkpoint knew of a worker (see [`Roster::restore`]).
pub(crate) struct Restored {
    pub offset: (i64, i64),
    pub segment: Option<Segment>,
    pub done: Option<u64>,
    pub lost: Option<Lost>,
}

/// Up to this many workers, a `Reassign` names the ones left (for their logs); a fleet's
/// would cost the square of its size in bytes on every loss (a thousand workers: a
/// megabyte of ids per loss), so past it only their count is sent.
pub const NAMED_IN_REASSIGN: usize = 32;

/// What happened when a worker was lost.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Loss {
    /// It was lost already (or is unknown): nothing changed.
    Known,
    /// Lost; these workers are still live (empty: none left).
    Lost { live: Vec<String> },
}

/// The workers of the run, by id (`w1`, `w2`, … in joining order).
#[derive(Default)]
pub(crate) struct Roster {
    workers: BTreeMap<String, Worker>,
    next_id: u64,
    stalls: Stalls,
}

impl Roster {
    /// Takes a new worker in and names it.
    pub fn admit(&mut self, hello: pb::Hello, out: Outbound, heard: Arc<Heard>) -> String {
        self.next_id += 1;
        let id = format!("w{}", self.next_id);
        self.workers.insert(
            id.clone(),
            Worker {
                hello,
                out: Some(out),
                offset: None,
                segment: None,
                ready: false,
                done: None,
                lost: None,
                heard,
            },
        );
        id
    }

    /// Takes back a worker of a checkpointed run (`--resume`) under its old id; it has no
    /// stream until it rejoins ([`Roster::attach`]).
    pub fn restore(&mut self, id: String, hello: pb::Hello, w: Restored) {
        let n: u64 = id.trim_start_matches('w').parse().unwrap_or(0);
        self.next_id = self.next_id.max(n);
        self.workers.insert(
            id,
            Worker {
                hello,
                out: None,
                offset: Some(w.offset),
                segment: w.segment,
                ready: true,
                done: w.done,
                lost: w.lost,
                heard: Heard::new(),
            },
        );
    }

    /// A worker rejoined: its new stream, and the stamp its new session keeps.
    pub fn attach(&mut self, id: &str, out: Outbound, heard: Arc<Heard>) {
        if let Some(w) = self.workers.get_mut(id) {
            w.out = Some(out);
            w.heard = heard;
        }
    }

    pub fn len(&self) -> usize {
        self.workers.len()
    }
    pub fn get_mut(&mut self, id: &str) -> Option<&mut Worker> {
        self.workers.get_mut(id)
    }
    pub fn remove(&mut self, id: &str) {
        self.workers.remove(id);
    }
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Worker)> {
        self.workers.iter()
    }
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&String, &mut Worker)> {
        self.workers.iter_mut()
    }
    pub fn values(&self) -> impl Iterator<Item = &Worker> {
        self.workers.values()
    }
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Worker> {
        self.workers.values_mut()
    }

    /// Ids of the workers still running (live, not done): whose snapshots an interval
    /// waits for.
    pub fn running_ids(&self) -> BTreeSet<String> {
        self.workers
            .iter()
            .filter(|(_, w)| w.running())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Sends `m` to every running worker.
    pub fn send_running(&self, m: &Out) {
        for w in self.workers.values().filter(|w| w.running()) {
            w.send(m.clone());
        }
    }

    /// Starts liveness afresh at `at` (stage time 0, or the end of a resumed run's rejoin
    /// wait): nobody's silence counts from before it.
    pub fn reset_liveness(&mut self, at: Instant) {
        for w in self.workers.values() {
            w.heard.advance(at);
        }
    }

    /// The hub takes a turn at `now` (see [`Stalls::turn`]).
    pub fn turn(&mut self, now: Instant, allowed: Duration, limit: Duration) {
        self.stalls.turn(now, allowed, limit);
    }

    /// When `id`'s latest message arrived.
    pub fn heard_at(&self, id: &str) -> Option<Instant> {
        self.workers.get(id).map(|w| w.heard.at())
    }

    /// How long `w` has been silent at `now`, the controller's own stalls left out.
    pub fn silence(&self, w: &Worker, now: Instant) -> Duration {
        self.stalls.silence(w.heard.at(), now)
    }

    /// The liveness check at `now`: the running workers silent for `limit` or longer (the
    /// hub loses them), and when the next one could be (the earliest deadline of the rest;
    /// `None`: nobody is running). The hub runs it at that deadline, so a worker is dropped
    /// when its silence reaches the limit, however late the hub's tick runs.
    pub fn check_liveness(&self, now: Instant, limit: Duration) -> (Vec<String>, Option<Instant>) {
        let mut silent = Vec::new();
        let mut next: Option<Instant> = None;
        for (id, w) in self.workers.iter().filter(|(_, w)| w.running()) {
            let quiet = self.silence(w, now);
            if quiet >= limit {
                silent.push(id.clone());
            } else {
                let due = now + (limit - quiet);
                next = Some(next.map_or(due, |n| n.min(due)));
            }
        }
        (silent, next)
    }

    /// Marks `id` lost for `reason` and closes its stream.
    pub fn mark_lost(&mut self, id: &str, reason: &str) -> Loss {
        let Some(w) = self.workers.get_mut(id) else {
            return Loss::Known;
        };
        if w.lost.is_some() {
            return Loss::Known;
        }
        tracing::warn!(worker = %id, %reason, "worker lost");
        w.lost = Some(Lost {
            at: SystemTime::now(),
            reason: reason.to_string(),
        });
        w.out = None;
        let live = self
            .workers
            .iter()
            .filter(|(_, w)| w.live())
            .map(|(k, _)| k.clone())
            .collect();
        Loss::Lost { live }
    }

    /// Splits the whole load evenly among `live` and tells each its new segment (with the
    /// ids of the rest only up to [`NAMED_IN_REASSIGN`] workers).
    pub fn rebalance(&mut self, live: &[String]) {
        let segments = Segment::split_even(live.len());
        let named = if live.len() <= NAMED_IN_REASSIGN {
            live.to_vec()
        } else {
            Vec::new()
        };
        for (wid, seg) in live.iter().zip(segments) {
            if let Some(w) = self.workers.get_mut(wid) {
                w.segment = Some(seg);
                w.send(Out::Reassign(pb::Reassign {
                    segment: Some(segment_to_pb(seg)),
                    remaining: named.clone(),
                    remaining_count: live.len() as u32,
                }));
            }
        }
        // when the last `Reassign` was handed to its stream (the fleet bench reads it)
        tracing::info!(
            remaining = live.len(),
            sent_unix_us = super::clock::now_us(),
            "segments rebalanced"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roster(
        n: usize,
    ) -> (
        Roster,
        Vec<mpsc::Receiver<Result<pb::ControllerMessage, GrpcStatus>>>,
    ) {
        let mut r = Roster::default();
        let mut rxs = Vec::new();
        for _ in 0..n {
            let (tx, rx) = mpsc::channel(16);
            r.admit(pb::Hello::default(), tx, Heard::new());
            rxs.push(rx);
        }
        (r, rxs)
    }

    #[test]
    fn a_worker_is_lost_when_its_silence_reaches_the_limit() {
        let (mut r, _rx) = roster(2);
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let limit = ms(3000);
        r.reset_liveness(t0);
        // w1 speaks every interval, w2 last at t0
        r.turn(t0, ms(1000), limit);
        let w1 = r.workers["w1"].heard.clone();
        w1.advance(t0 + ms(2000));
        let (lost, next) = r.check_liveness(t0 + ms(2000), limit);
        assert!(lost.is_empty());
        assert_eq!(next, Some(t0 + limit), "the next check is w2's deadline");
        // a check that runs late (the hub merging) still judges by the clock: no extra
        // time for the silent one, none taken from the one that spoke
        for t in [800, 1600, 2400, 2900] {
            r.turn(t0 + ms(t), ms(1000), limit);
        }
        let (lost, _) = r.check_liveness(t0 + ms(2999), limit);
        assert!(lost.is_empty());
        let (lost, next) = r.check_liveness(t0 + ms(3400), limit);
        assert_eq!(lost, vec!["w2".to_string()]);
        assert_eq!(next, Some(t0 + ms(5000)));
    }

    #[test]
    fn a_stall_of_the_controller_costs_a_worker_one_interval_at_most() {
        let (mut r, _rx) = roster(1);
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let (interval, limit) = (ms(1000), ms(3000));
        r.reset_liveness(t0);
        r.turn(t0 + ms(200), interval, limit);
        // SIGSTOP for 20 s: the worker's words wait in the socket, unread
        r.turn(t0 + ms(20_200), interval, limit);
        let (lost, next) = r.check_liveness(t0 + ms(20_200), limit);
        assert!(lost.is_empty(), "its silence is 1.2 s, not 20.2 s");
        assert_eq!(next, Some(t0 + ms(20_200) + ms(1800)));
        // read now, they reset it
        r.workers["w1"].heard.advance(t0 + ms(20_250));
        let (lost, _) = r.check_liveness(t0 + ms(23_000), limit);
        assert!(lost.is_empty());
    }

    #[test]
    fn losing_a_worker_rebalances_among_the_live_ones() {
        let (mut r, mut rx) = roster(3);
        assert_eq!(
            r.mark_lost("w2", "gone"),
            Loss::Lost {
                live: vec!["w1".into(), "w3".into()]
            }
        );
        assert_eq!(r.mark_lost("w2", "gone"), Loss::Known);
        r.rebalance(&["w1".into(), "w3".into()]);
        for i in [0, 2] {
            let m = rx[i].try_recv().unwrap().unwrap();
            let Some(Out::Reassign(re)) = m.msg else {
                panic!("{m:?}")
            };
            assert_eq!(re.remaining, vec!["w1".to_string(), "w3".to_string()]);
            assert_eq!(re.remaining_count, 2);
        }
        assert!(rx[1].try_recv().is_err(), "a lost worker gets nothing");
        // a lost worker is not checked any more
        let later = Instant::now() + Duration::from_secs(60);
        let (silent, _) = r.check_liveness(later, Duration::from_secs(3));
        assert_eq!(silent, vec!["w1".to_string(), "w3".to_string()]);
    }
}

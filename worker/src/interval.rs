//! The snapshot ticker: every `interval`, aligned to the run's start, it cuts the
//! registry's interval sinks into a [`Snapshot`] (interval `k` starts at
//! `start + k·interval`, stamped in the controller's clock) with the worker's health over
//! it ([`crate::health`]) and hands them out; raw point batches go out when full and at
//! every cut.
use crate::clock::Clock;
use crate::health::Monitor;
use crate::registry::Registry;
use barrage_core::validity::WorkerHealth;
use barrage_core::{Point, Snapshot};
use std::rc::Rc;
use tokio::sync::Notify;
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// What the ticker hands out.
pub enum Tick {
    /// One interval's figures and the worker's health over it.
    Snapshot(Snapshot, WorkerHealth),
    Points(Vec<Point>),
}

/// Where interval boundaries fall.
#[derive(Debug, Clone, Copy)]
pub struct Intervals {
    /// Stage time 0.
    pub start: Instant,
    pub every: Duration,
}

impl Intervals {
    /// Start of interval `seq`.
    pub fn start_of(&self, seq: u64) -> Instant {
        self.start + self.every * seq as u32
    }

    pub fn every_ms(&self) -> u32 {
        self.every.as_millis().min(u32::MAX as u128) as u32
    }
}

/// Cuts snapshots until `until` is cancelled; returns the seq of the next (partial)
/// interval, which the caller cuts when the run ends.
pub async fn run_ticker(
    registry: &Registry,
    monitor: &Monitor,
    clock: &Clock,
    iv: Intervals,
    points_ready: Option<Rc<Notify>>,
    until: &CancellationToken,
    mut emit: impl FnMut(Tick),
) -> u64 {
    let mut seq = 0u64;
    loop {
        let boundary = iv.start_of(seq + 1);
        let points = async {
            match &points_ready {
                Some(n) => n.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = until.cancelled() => return seq,
            _ = tokio::time::sleep_until(boundary) => {
                let (snapshot, health) = cut(registry, monitor, clock, iv, seq);
                emit(Tick::Snapshot(snapshot, health));
                for batch in registry.take_points() {
                    emit(Tick::Points(batch));
                }
                seq += 1;
            }
            _ = points => {
                for batch in registry.take_full_batches() {
                    emit(Tick::Points(batch));
                }
            }
        }
    }
}

/// Cuts interval `seq`: its figures and the worker's health over it.
pub fn cut(
    registry: &Registry,
    monitor: &Monitor,
    clock: &Clock,
    iv: Intervals,
    seq: u64,
) -> (Snapshot, WorkerHealth) {
    let snapshot = registry.cut(seq, clock.controller_us(iv.start_of(seq)), iv.every_ms());
    let health = monitor.cut(seq, &snapshot, registry);
    (snapshot, health)
}

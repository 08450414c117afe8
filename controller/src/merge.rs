//! Exact merging of the workers' interval snapshots.
//!
//! Every snapshot is moved into its interval's bucket (counters and rates add, HDR
//! histograms of one configuration add; a series new to the bucket is moved, not copied).
//! A bucket closes when every live worker reported its `seq`, or two intervals after it
//! ended, whichever comes first; a closing bucket is added once into the cumulative run
//! (all series, for thresholds and the summary), so the cumulative sinks see one merge per
//! series per interval, not one per worker. Buckets close in order and are dropped once
//! closed: memory holds the cumulative sinks plus at most a few open buckets, whatever the
//! run's length. The cumulative view covers the closed intervals (and late snapshots);
//! [`Merger::close_all`] closes the rest at the end.
//!
//! ```text
//!  seq:        0        1        2        3
//!  now_seq = 3 ────────────────────────────▶ bucket 0 closes at the latest now (0 + 3),
//!                                           or earlier when every live worker sent seq 0
//! ```
//! A snapshot for an interval that has already closed ("late") still goes into the
//! cumulative sinks; only its time-series point misses it.
use barrage_core::hdr::SparseDecoder;
use barrage_core::metrics::builtin;
use barrage_core::Snapshot;
use barrage_proto::{merge_pb_into, pb, WireError};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// How many intervals after its end a bucket waits for stragglers.
pub const CLOSE_AFTER_INTERVALS: u64 = 2;

/// What one worker contributed, for the summary's worker table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkerTally {
    pub snapshots: u64,
    pub last_seq: Option<u64>,
    pub iterations: f64,
    pub requests: f64,
}

/// One closed interval: its merged snapshot and how many workers reported it.
#[derive(Debug)]
pub struct ClosedInterval {
    pub seq: u64,
    pub snapshot: Snapshot,
    pub workers: usize,
    /// When its last snapshot was merged (`None`: nobody reported it): how far behind
    /// the interval's end the slowest worker's figures reached the controller.
    pub last_report: Option<Instant>,
}

impl WorkerTally {
    fn add(&mut self, o: &WorkerTally) {
        self.snapshots += o.snapshots;
        self.last_seq = self.last_seq.max(o.last_seq);
        self.iterations += o.iterations;
        self.requests += o.requests;
    }
}

#[derive(Debug, Default)]
struct Bucket {
    snapshot: Snapshot,
    reported: BTreeSet<String>,
    last_report: Option<Instant>,
    /// What each worker sent into this bucket, settled when it closes.
    pending: BTreeMap<String, WorkerTally>,
}

/// The closed part of a run, what a checkpoint keeps (`crate::soak::checkpoint`): the
/// cumulative sinks, how far intervals are closed, and each worker's share of exactly that.
#[derive(Debug, Clone, Default)]
pub struct Settled {
    pub total: Snapshot,
    pub closed_through: Option<u64>,
    pub late: u64,
    pub workers: BTreeMap<String, WorkerTally>,
}

/// The controller's merged view of the run.
#[derive(Debug, Default)]
pub struct Merger {
    /// Every series of the whole run.
    total: Snapshot,
    /// Intervals still collecting, by seq.
    open: BTreeMap<u64, Bucket>,
    /// Every interval up to and including this one is closed.
    closed_through: Option<u64>,
    /// Snapshots that arrived after their interval closed.
    pub late: u64,
    /// Per worker id, as snapshots arrive.
    workers: BTreeMap<String, WorkerTally>,
    /// Per worker id, of the closed intervals and late snapshots only (in `total`).
    settled: BTreeMap<String, WorkerTally>,
    /// Reused inflate state for [`Merger::add_wire`].
    decoder: SparseDecoder,
}

impl Merger {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one worker's snapshot as it came off the wire: validated whole, then merged
    /// straight into its bucket with sparse histogram decoding (no histogram is built per
    /// worker and series; see `barrage_core::hdr`), by `Snapshot::merge_parts`, core's one
    /// merge. A message that does not validate, or whose series clash in kind with what is
    /// merged, is refused whole.
    pub fn add_wire(&mut self, worker: &str, snap: &pb::Snapshot) -> Result<(), WireError> {
        let level = (self.total.vus, self.total.vus_max);
        let is_late = self.closed_through.is_some_and(|c| snap.seq <= c);
        let target = if is_late {
            &mut self.total
        } else {
            let bucket = self.open.entry(snap.seq).or_default();
            if bucket.reported.is_empty() {
                bucket.snapshot.seq = snap.seq;
                bucket.snapshot.interval_start_us = snap.interval_start_unix_us;
                bucket.snapshot.interval_ms = snap.interval_ms;
            }
            &mut bucket.snapshot
        };
        merge_pb_into(target, snap, &mut self.decoder)?;
        if is_late {
            // a late interval is older than the latest closed one: its VUs are not the run's
            (self.total.vus, self.total.vus_max) = level;
        }
        if is_late {
            self.late += 1;
        } else if let Some(bucket) = self.open.get_mut(&snap.seq) {
            bucket.reported.insert(worker.to_string());
            bucket.last_report = Some(Instant::now());
        }
        let counter = |metric: &str| -> f64 {
            snap.series
                .iter()
                .filter(|s| s.metric == metric)
                .filter_map(|s| match &s.value {
                    Some(pb::series_snapshot::Value::Counter(c)) => Some(c.sum),
                    _ => None,
                })
                .sum()
        };
        let delta = WorkerTally {
            snapshots: 1,
            last_seq: Some(snap.seq),
            iterations: counter(builtin::ITERATIONS),
            requests: counter(builtin::HTTP_REQS),
        };
        self.workers
            .entry(worker.to_string())
            .or_default()
            .add(&delta);
        let settled = match self.open.get_mut(&snap.seq) {
            Some(bucket) if !is_late => bucket.pending.entry(worker.to_string()).or_default(),
            _ => self.settled.entry(worker.to_string()).or_default(),
        };
        settled.add(&delta);
        Ok(())
    }

    /// Closes, in order, the buckets that every `live` worker has reported or that ended
    /// [`CLOSE_AFTER_INTERVALS`] intervals before `now_seq` (the interval running now).
    pub fn close_ready(&mut self, live: &BTreeSet<String>, now_seq: u64) -> Vec<ClosedInterval> {
        let mut out = Vec::new();
        while let Some((&seq, bucket)) = self.open.iter().next() {
            let complete = live.iter().all(|w| bucket.reported.contains(w));
            let overdue = now_seq > seq + CLOSE_AFTER_INTERVALS;
            if !(complete || overdue) {
                break;
            }
            out.push(self.close(seq));
        }
        out
    }

    /// Closes every open bucket (end of run).
    pub fn close_all(&mut self) -> Vec<ClosedInterval> {
        let seqs: Vec<u64> = self.open.keys().copied().collect();
        seqs.into_iter().map(|s| self.close(s)).collect()
    }

    fn close(&mut self, seq: u64) -> ClosedInterval {
        let bucket = self.open.remove(&seq).unwrap_or_default();
        if let Err(e) = self.total.accumulate(&bucket.snapshot) {
            // the clash was already reported when the worker's snapshot met the bucket
            tracing::debug!(seq, error = %e, "series of clashing kinds in the cumulative view");
        }
        self.closed_through = Some(self.closed_through.map_or(seq, |c| c.max(seq)));
        for (w, t) in &bucket.pending {
            self.settled.entry(w.clone()).or_default().add(t);
        }
        ClosedInterval {
            seq,
            workers: bucket.reported.len(),
            last_report: bucket.last_report,
            snapshot: bucket.snapshot,
        }
    }

    /// The cumulative merged sinks; `vus`/`vus_max` are the latest closed interval's (the
    /// run's VU gauge is read from the time series).
    pub fn total(&self) -> &Snapshot {
        &self.total
    }

    pub fn worker(&self, id: &str) -> Option<&WorkerTally> {
        self.workers.get(id)
    }

    pub fn open_buckets(&self) -> usize {
        self.open.len()
    }

    /// The closed part of the run (a copy), for a checkpoint.
    pub fn settled(&self) -> Settled {
        Settled {
            total: self.total.clone(),
            closed_through: self.closed_through,
            late: self.late,
            workers: self.settled.clone(),
        }
    }

    /// The closed part of the run without a copy of its sinks: the cumulative sinks are
    /// moved out (a checkpoint encodes them while the hub waits) and must come back by
    /// [`Merger::give_back`] before anything else is merged. A copy of every dense
    /// histogram per checkpoint was the largest allocation of a soak's controller.
    pub fn lend_settled(&mut self) -> Settled {
        Settled {
            total: std::mem::take(&mut self.total),
            closed_through: self.closed_through,
            late: self.late,
            workers: self.settled.clone(),
        }
    }

    /// Takes back the sinks [`Merger::lend_settled`] lent.
    pub fn give_back(&mut self, total: Snapshot) {
        self.total = total;
    }

    /// A merger that continues from a checkpoint: what workers resend for intervals after
    /// `closed_through` is merged as if it came the first time.
    pub fn restore(s: Settled) -> Merger {
        Merger {
            total: s.total,
            closed_through: s.closed_through,
            late: s.late,
            workers: s.workers.clone(),
            settled: s.workers,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use barrage_core::{MetricKind, SeriesKey, Sink};

    fn counter(s: &Snapshot, metric: &str) -> f64 {
        match s.submetric(metric, &[]) {
            Some(Sink::Counter(c)) => c.sum,
            _ => 0.0,
        }
    }

    fn snap(seq: u64, reqs: f64) -> Snapshot {
        let mut s = Snapshot {
            seq,
            interval_ms: 1000,
            vus: 1,
            ..Default::default()
        };
        s.add(
            SeriesKey::new(builtin::HTTP_REQS),
            MetricKind::Counter,
            reqs,
        );
        s
    }

    /// Adds `s` the way the hub does: encoded for the wire, then [`Merger::add_wire`].
    fn add(m: &mut Merger, worker: &str, s: &Snapshot) -> Result<(), WireError> {
        m.add_wire(worker, &barrage_proto::snapshot_to_pb(s).unwrap())
    }

    fn live(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    /// A checkpoint holds the closed intervals only, each worker's share of exactly those;
    /// a merger restored from it and fed the rest ends with the same totals.
    #[test]
    fn settled_is_the_closed_part_and_restores() {
        let mut m = Merger::new();
        for seq in 0..4 {
            add(&mut m, "a", &snap(seq, 10.0)).unwrap();
        }
        add(&mut m, "b", &snap(0, 5.0)).unwrap();
        // 0 closes (both reported); 1..3 stay open
        let closed = m.close_ready(&live(&["a", "b"]), 1);
        assert_eq!(closed.len(), 1);
        let s = m.settled();
        assert_eq!(s.closed_through, Some(0));
        assert_eq!(counter(&s.total, builtin::HTTP_REQS), 15.0);
        assert_eq!(
            s.workers["a"].requests, 10.0,
            "open intervals are not settled"
        );
        assert_eq!(s.workers["a"].last_seq, Some(0));
        assert_eq!(
            m.worker("a").unwrap().requests,
            40.0,
            "arrivals still count live"
        );
        let mut r = Merger::restore(s);
        for seq in 1..4 {
            add(&mut r, "a", &snap(seq, 10.0)).unwrap();
        }
        r.close_all();
        m.close_all();
        assert_eq!(
            counter(r.total(), builtin::HTTP_REQS),
            counter(m.total(), builtin::HTTP_REQS)
        );
        assert_eq!(r.worker("a").unwrap().requests, 40.0);
        assert_eq!(r.settled().workers["a"], m.settled().workers["a"]);
    }

    #[test]
    fn interval_bucketing() {
        // (worker, seq) arrivals, then close_ready(live, now_seq) → closed seqs
        struct Case {
            name: &'static str,
            arrivals: &'static [(&'static str, u64)],
            live: &'static [&'static str],
            now_seq: u64,
            closed: &'static [(u64, usize)],
        }
        let cases = [
            Case {
                name: "all reported",
                arrivals: &[("a", 0), ("b", 0)],
                live: &["a", "b"],
                now_seq: 1,
                closed: &[(0, 2)],
            },
            Case {
                name: "one missing, not overdue",
                arrivals: &[("a", 0)],
                live: &["a", "b"],
                now_seq: 2,
                closed: &[],
            },
            Case {
                name: "one missing, overdue",
                arrivals: &[("a", 0)],
                live: &["a", "b"],
                now_seq: 3,
                closed: &[(0, 1)],
            },
            Case {
                name: "in order only",
                arrivals: &[("a", 0), ("a", 1), ("b", 1)],
                live: &["a", "b"],
                now_seq: 2,
                closed: &[],
            },
            Case {
                name: "in order, both",
                arrivals: &[("a", 0), ("b", 0), ("a", 1), ("b", 1)],
                live: &["a", "b"],
                now_seq: 2,
                closed: &[(0, 2), (1, 2)],
            },
            Case {
                name: "lost worker not awaited",
                arrivals: &[("a", 0)],
                live: &["a"],
                now_seq: 1,
                closed: &[(0, 1)],
            },
            Case {
                name: "gap",
                arrivals: &[("a", 0), ("a", 2)],
                live: &["a"],
                now_seq: 3,
                closed: &[(0, 1), (2, 1)],
            },
        ];
        for c in cases {
            let mut m = Merger::new();
            for (w, seq) in c.arrivals {
                add(&mut m, w, &snap(*seq, 1.0)).unwrap();
            }
            let got: Vec<(u64, usize)> = m
                .close_ready(&live(c.live), c.now_seq)
                .iter()
                .map(|ci| (ci.seq, ci.workers))
                .collect();
            assert_eq!(got, c.closed, "{}", c.name);
        }
    }

    #[test]
    fn late_snapshots_still_count_in_the_total() {
        let mut m = Merger::new();
        add(&mut m, "a", &snap(0, 2.0)).unwrap();
        let closed = m.close_ready(&live(&["a", "b"]), 5);
        assert_eq!(closed.len(), 1);
        add(&mut m, "b", &snap(0, 3.0)).unwrap();
        assert_eq!(m.late, 1);
        assert_eq!(m.open_buckets(), 0);
        assert_eq!(counter(m.total(), builtin::HTTP_REQS), 5.0);
        assert_eq!(m.worker("b").unwrap().requests, 3.0);
        assert_eq!(counter(&closed[0].snapshot, builtin::HTTP_REQS), 2.0);
    }

    #[test]
    fn merged_percentiles_equal_one_histogram_fed_all_samples() {
        // three workers × 20 intervals, through the wire codec as the controller sees them
        let key = SeriesKey::with_tags(builtin::HTTP_REQ_DURATION, [("operation", "run_wait")]);
        let mut all = Snapshot::default();
        let mut m = Merger::new();
        let mut x: u64 = 99;
        for seq in 0..20u64 {
            for w in ["w1", "w2", "w3"] {
                let mut s = Snapshot {
                    seq,
                    ..Default::default()
                };
                for _ in 0..500 {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let us = (100 + (x >> 33) % 5_000_000) as f64;
                    s.add(key.clone(), MetricKind::Trend, us);
                    all.add(key.clone(), MetricKind::Trend, us);
                }
                add(&mut m, w, &s).unwrap();
            }
            m.close_ready(&live(&["w1", "w2", "w3"]), seq + 1);
        }
        let (Some(Sink::Trend(merged)), Some(Sink::Trend(one))) = (
            m.total().submetric(builtin::HTTP_REQ_DURATION, &[]),
            all.submetric(builtin::HTTP_REQ_DURATION, &[]),
        ) else {
            panic!("missing trend")
        };
        assert_eq!(merged.count(), 30_000);
        assert_eq!(m.worker("w2").unwrap().snapshots, 20);
        for p in [0.0, 50.0, 90.0, 95.0, 99.0, 99.9, 100.0] {
            assert_eq!(merged.percentile(p), one.percentile(p), "p{p}");
        }
        assert_eq!(merged.hist.mean(), one.hist.mean());
    }

    #[test]
    fn a_message_whose_kinds_clash_is_refused_whole() {
        let mut m = Merger::new();
        add(&mut m, "a", &snap(0, 1.0)).unwrap();
        let mut bad = snap(0, 1.0);
        bad.series.insert(
            SeriesKey::new(builtin::HTTP_REQS),
            Sink::new(MetricKind::Rate),
        );
        bad.add(
            SeriesKey::new(builtin::ITERATIONS),
            MetricKind::Counter,
            4.0,
        );
        let err = add(&mut m, "b", &bad).unwrap_err();
        assert!(err.to_string().contains("rate"), "{err}");
        let closed = m.close_all();
        assert_eq!(closed[0].snapshot.vus, 1);
        assert_eq!(counter(m.total(), builtin::ITERATIONS), 0.0);
        assert_eq!(counter(m.total(), builtin::HTTP_REQS), 1.0);
    }

    /// Issue 17 §3: VUs add across the workers of an interval; the run's level is the latest
    /// closed interval's, and a late snapshot does not change it.
    #[test]
    fn vus_sum_per_interval_and_the_total_keeps_the_latest_level() {
        let mut m = Merger::new();
        let at = |seq, vus| Snapshot {
            seq,
            vus,
            vus_max: 5,
            ..Default::default()
        };
        add(&mut m, "a", &at(0, 2)).unwrap();
        add(&mut m, "b", &at(0, 3)).unwrap();
        add(&mut m, "a", &at(1, 1)).unwrap();
        let closed = m.close_ready(&live(&["a", "b"]), 4);
        let got: Vec<(u64, u64, u64)> = closed
            .iter()
            .map(|c| (c.seq, c.snapshot.vus, c.snapshot.vus_max))
            .collect();
        assert_eq!(got, [(0, 5, 10), (1, 1, 5)]);
        assert_eq!((m.total().vus, m.total().vus_max), (1, 5));
        add(&mut m, "b", &at(1, 4)).unwrap();
        assert_eq!(m.late, 1);
        assert_eq!((m.total().vus, m.total().vus_max), (1, 5));
    }
}

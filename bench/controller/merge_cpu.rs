//! The controller's CPU to merge 100 workers × 40 series per second.
//!
//! Simulated workers: each has a realistic snapshot of one interval (25 trends with ~50
//! samples each spread like agent-flow latencies, counters, 3 rates and tagged counters =
//! 40 series; VUs ride in the snapshot's fields, not as series), encoded as on the wire. For 60 simulated seconds the bench
//! does what the controller's hub does per worker message and per interval: decode
//! (`Merger::add_wire`: validation + sparse HDR V2-deflate decode + `Snapshot::merge_parts`), `close_ready`,
//! the interval's `TimePoint`, and the thresholds on the cumulative sinks. It reports the
//! thread's CPU time (`/proc/thread-self/schedstat`) per simulated second, as % of one
//! core.
//!
//! `cargo bench -p controller --bench merge_cpu [-- WORKERS SECONDS]`
use barrage_controller::merge::Merger;
use barrage_controller::timeseries::{TimePoint, TimeSeries};
use barrage_core::metrics::builtin;
use barrage_core::ThresholdSet;
use barrage_core::{MetricKind, Plan, Profile, SeriesKey, Snapshot};
use barrage_proto::{pb, snapshot_to_pb};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok()))
        .unwrap_or(0)
}

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Log-uniform between lo and hi: a long-tailed latency.
    fn latency(&mut self, lo: f64, hi: f64) -> f64 {
        lo * (hi / lo).powf(self.next().powi(3))
    }
}

/// One worker's interval: 40 series.
fn worker_snapshot(seed: u64) -> pb::Snapshot {
    let mut r = Lcg(seed);
    let mut s = Snapshot {
        interval_ms: 1000,
        vus: 3,
        vus_max: 3,
        ..Default::default()
    };
    let ops = builtin::OPERATIONS;
    for (i, op) in ops.iter().enumerate() {
        let (lo, hi) = if op.starts_with("run") || *op == "stateless_run" {
            (10_000.0, 300_000.0)
        } else {
            (200.0, 20_000.0)
        };
        for _ in 0..50 {
            let v = r.latency(lo, hi);
            s.add(
                SeriesKey::with_tags(builtin::HTTP_REQ_DURATION, [("operation", *op)]),
                MetricKind::Trend,
                v,
            );
            s.add(
                SeriesKey::with_tags(*op, [("operation", *op)]),
                MetricKind::Trend,
                v,
            );
        }
        if i < 1 {
            s.add(
                SeriesKey::with_tags(builtin::HTTP_REQS, [("operation", *op)]),
                MetricKind::Counter,
                50.0,
            );
        }
    }
    for _ in 0..50 {
        s.add(
            SeriesKey::new(builtin::AGENT_FLOW_DURATION),
            MetricKind::Trend,
            r.latency(40_000.0, 900_000.0),
        );
        s.add(
            SeriesKey::new(builtin::ITERATION_DURATION),
            MetricKind::Trend,
            r.latency(40_000.0, 900_000.0),
        );
        s.add(
            SeriesKey::new(builtin::HTTP_REQ_WAITING),
            MetricKind::Trend,
            r.latency(150.0, 250_000.0),
        );
        s.add(
            SeriesKey::new(builtin::STREAM_FIRST_EVENT),
            MetricKind::Trend,
            r.latency(500.0, 20_000.0),
        );
        s.add(
            SeriesKey::new(builtin::STREAM_EVENTS),
            MetricKind::Trend,
            3.0,
        );
    }
    for (m, v) in [
        (builtin::HTTP_REQS, 600.0),
        (builtin::ITERATIONS, 50.0),
        (builtin::DROPPED_ITERATIONS, 0.0),
        (builtin::DATA_SENT, 300_000.0),
        (builtin::DATA_RECEIVED, 900_000.0),
    ] {
        s.add(SeriesKey::new(m), MetricKind::Counter, v);
    }
    for m in ["a", "b", "c", "d"] {
        s.add(
            SeriesKey::with_tags(builtin::DATA_SENT, [("part", m)]),
            MetricKind::Counter,
            1.0,
        );
    }
    for m in [
        builtin::HTTP_REQ_FAILED,
        builtin::CHECKS,
        builtin::AGENT_FLOW_SUCCESS_RATE,
    ] {
        for i in 0..600 {
            s.add(
                SeriesKey::new(m),
                MetricKind::Rate,
                if i % 100 == 0 { 1.0 } else { 0.0 },
            );
        }
    }
    // VUs travel as the snapshot's `vus`/`vus_max` fields, not as gauge series
    assert_eq!(s.series.len(), 40, "40 series per worker");
    snapshot_to_pb(&s).expect("encodes")
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let workers: usize = args.first().and_then(|x| x.parse().ok()).unwrap_or(100);
    let seconds: u64 = args.get(1).and_then(|x| x.parse().ok()).unwrap_or(60);
    let templates: Vec<pb::Snapshot> = (0..workers)
        .map(|w| worker_snapshot(w as u64 * 7919 + 1))
        .collect();
    let bytes: usize = templates.iter().map(prost::Message::encoded_len).sum();
    let ids: Vec<String> = (0..workers).map(|w| format!("w{w}")).collect();
    let live: BTreeSet<String> = ids.iter().cloned().collect();
    let thresholds =
        ThresholdSet::from_plan(&Plan::profile(Profile::Default)).expect("seed thresholds");
    let mut merger = Merger::new();
    let mut ts = TimeSeries {
        interval_ms: 1000,
        ..Default::default()
    };

    let wall = Instant::now();
    let cpu0 = thread_cpu_ns();
    let mut decoded = 0u64;
    for seq in 0..seconds {
        for (w, t) in templates.iter().enumerate() {
            let mut msg = t.clone();
            msg.seq = seq;
            merger.add_wire(&ids[w], &msg).expect("merges");
            decoded += 1;
        }
        for c in merger.close_ready(&live, seq + 1) {
            ts.push(TimePoint::from_interval(c.seq, &c.snapshot, c.workers));
        }
        let outcomes = thresholds.evaluate(merger.total(), Duration::from_secs(seq + 1));
        std::hint::black_box(outcomes);
    }
    let cpu = Duration::from_nanos(thread_cpu_ns() - cpu0);
    let wall = wall.elapsed();
    let per_sec = cpu.as_secs_f64() / seconds as f64;
    println!("workers={workers} series/worker=40 simulated_s={seconds} snapshots={decoded} wire_bytes/s={bytes}");
    println!(
        "cpu={:.3}s wall={:.3}s cpu_per_simulated_s={:.2}ms share_of_one_core={:.2}% timeseries_points={}",
        cpu.as_secs_f64(),
        wall.as_secs_f64(),
        per_sec * 1000.0,
        per_sec * 100.0,
        ts.points.len()
    );
}

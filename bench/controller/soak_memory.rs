//! A day of a soak, compressed: the controller's per-interval structures fed 86,400
//! intervals (24 h at 1 s) as the hub feeds them, and what they hold at each simulated hour.
//!
//! Per interval, like the hub: two workers' wire snapshots (40 series each) through
//! `Merger::add_wire`, `close_ready`, the interval's `TimePoint` into the downsampled
//! `TimeSeries`, the stage book, and a target-telemetry reading into the `TelemetryRecorder`.
//! The reference, measured in the same run, is the same time series kept whole (a plain
//! `Vec<TimePoint>`, what the controller held before downsampling). Printed per hour: rows
//! and bytes of both, the telemetry points, and the process's RSS; then the cost of a push
//! (downsampling included) against a plain push, medians of alternating rounds.
//!
//! `cargo bench -p barrage-controller --bench soak_memory [-- HOURS]`
use barrage_controller::merge::Merger;
use barrage_core::metrics::builtin;
use barrage_core::stages::StageBook;
use barrage_core::telemetry::{Limits, Reading, TelemetryRecorder};
use barrage_core::timeseries::{TimePoint, TimeSeries};
use barrage_core::{MetricKind, Plan, Profile, SeriesKey, Snapshot};
use std::collections::BTreeSet;
use std::time::Instant;

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// One worker's interval: a trend per operation (50 samples) and the counters.
fn worker_snapshot(seed: u64) -> Snapshot {
    let mut x = seed | 1;
    let mut s = Snapshot {
        interval_ms: 1000,
        vus: 3,
        vus_max: 3,
        ..Default::default()
    };
    for &op in builtin::OPERATIONS {
        for _ in 0..50 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = 1000.0 + (x % 200_000) as f64;
            s.add(
                SeriesKey::with_tags(builtin::HTTP_REQ_DURATION, [("operation", op)]),
                MetricKind::Trend,
                v,
            );
            s.add(SeriesKey::new(op), MetricKind::Trend, v);
        }
    }
    s.add(
        SeriesKey::new(builtin::HTTP_REQS),
        MetricKind::Counter,
        500.0,
    );
    s.add(
        SeriesKey::new(builtin::ITERATIONS),
        MetricKind::Counter,
        40.0,
    );
    s.add(
        SeriesKey::new(builtin::HTTP_REQ_FAILED),
        MetricKind::Rate,
        0.0,
    );
    s
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let hours: u64 = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(24);
    let plan = Plan::profile(Profile::Default);
    let wire: Vec<_> = (0..2)
        .map(|w| barrage_proto::snapshot_to_pb(&worker_snapshot(w + 7)).unwrap())
        .collect();
    let live: BTreeSet<String> = ["w1".to_string(), "w2".to_string()].into();
    let mut merger = Merger::new();
    let mut ts = TimeSeries {
        interval_ms: 1000,
        start_unix_us: 0,
        points: Vec::new(),
        ladder: Default::default(),
    };
    let mut whole: Vec<TimePoint> = Vec::new();
    let mut stages = StageBook::new(&plan.scenario, plan.interval);
    let mut telemetry = TelemetryRecorder::new("bench", Limits::default());
    println!("hour  rows  bytes(downsampled)  rows(whole)  bytes(whole)  telemetry_points  rss_MB");
    let started = Instant::now();
    for seq in 0..hours * 3600 {
        for (i, w) in wire.iter().enumerate() {
            let mut p = w.clone();
            p.seq = seq;
            merger.add_wire(&format!("w{}", i + 1), &p).unwrap();
        }
        for c in merger.close_ready(&live, seq + 1) {
            let point = TimePoint::from_interval(c.seq, &c.snapshot, c.workers);
            ts.push(point);
            whole.push(point);
            stages.add(c.seq, &c.snapshot);
        }
        telemetry.push(Reading {
            at_s: seq as f64,
            cpu_s: seq as f64 * 0.3,
            rss_bytes: 200 << 20,
            rss_max_bytes: None,
            threads: 8,
            fds: 40,
        });
        if (seq + 1) % 3600 == 0 {
            let t = telemetry.summary(0.0, 0, None);
            println!(
                "{:>4}  {:>5}  {:>18}  {:>11}  {:>12}  {:>16}  {:>6.1}",
                (seq + 1) / 3600,
                ts.rows(),
                ts.heap_bytes(),
                whole.len(),
                whole.capacity() * std::mem::size_of::<TimePoint>(),
                t.points.len(),
                rss_bytes() as f64 / 1048576.0
            );
        }
    }
    println!(
        "fed {} intervals in {:.1}s",
        hours * 3600,
        started.elapsed().as_secs_f64()
    );
    // the cost of a push into a full series (downsampling included) against a plain push
    let point = ts.points[ts.rows() - 1];
    let (mut down, mut plain) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        let mut a = ts.clone();
        let t = Instant::now();
        for k in 0..36_000u32 {
            let mut p = point;
            p.seq = (hours * 3600) as u32 + k;
            a.push(p);
        }
        down.push(t.elapsed().as_secs_f64() / 36_000.0 * 1e9);
        let mut b = whole.clone();
        let t = Instant::now();
        for k in 0..36_000u32 {
            let mut p = point;
            p.seq = (hours * 3600) as u32 + k;
            b.push(p);
        }
        plain.push(t.elapsed().as_secs_f64() / 36_000.0 * 1e9);
    }
    let (d, p) = (median(down), median(plain));
    println!(
        "push: downsampled {d:.0} ns, plain Vec {p:.0} ns, ratio {:.1} (medians of 7 alternating rounds of 36,000)",
        d / p
    );
}

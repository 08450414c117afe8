//! Tests of `timeseries`, in a file of their own to keep the module readable.
use super::*;
use crate::{MetricKind, SeriesKey};

#[test]
fn a_point_is_96_bytes() {
    assert_eq!(std::mem::size_of::<TimePoint>(), 96);
}

fn row(seq: u64, requests: u32, p99: f32) -> TimePoint {
    TimePoint {
        seq: seq as u32,
        span: 1,
        workers: 2,
        vus: (seq % 7) as u32,
        vus_min: (seq % 7) as u32,
        requests,
        failures: requests / 10,
        iterations: 1,
        flow_p50_ms: f32::NAN,
        flow_p95_ms: 10.0,
        flow_p99_ms: 20.0,
        req_p95_ms: p99 / 2.0,
        req_p99_ms: p99,
        op_p95_ms: [f32::NAN; N_OPS],
    }
}

#[test]
fn merging_rows_adds_counts_and_weights_percentiles() {
    let rows = [row(10, 100, 10.0), row(11, 300, 30.0), row(12, 0, f32::NAN)];
    let m = TimePoint::merged(&rows, 10, 3);
    assert_eq!((m.seq, m.span, m.end_seq()), (10, 3, 13));
    assert_eq!((m.requests, m.failures, m.iterations), (400, 40, 3));
    assert_eq!(
        (m.vus, m.vus_min, m.workers),
        (5, 3, 2),
        "vus is the max, vus_min the min, workers the min"
    );
    // weighted by requests: (100·10 + 300·30) / 400
    assert_eq!(m.req_p99_ms, 25.0);
    assert!(m.flow_p50_ms.is_nan() && m.op_p95_ms[0].is_nan());
    assert_eq!(m.flow_p95_ms, 10.0);
}

/// A day of 1 s intervals: every request and every second is still in the series,
/// the recent hour is exact, and the rows (and the bytes they hold) stop growing
/// once the oldest tier fills (issue 13 §2).
#[test]
fn a_day_of_intervals_is_bounded_and_loses_no_count() {
    let mut ts = TimeSeries {
        interval_ms: 1000,
        ..Default::default()
    };
    let day = 86_400u64;
    let mut bytes_by_hour = Vec::new();
    for seq in 0..day {
        ts.push(row(seq, (seq % 50) as u32, (seq / 3600) as f32));
        if (seq + 1) % 3600 == 0 {
            bytes_by_hour.push(ts.heap_bytes());
        }
    }
    let bound = 3600 + 1800 + MAX_COARSE_ROWS;
    assert!(ts.rows() <= bound, "{} rows", ts.rows());
    let requests: u64 = ts.points.iter().map(|p| u64::from(p.requests)).sum();
    assert_eq!(requests, (0..day).map(|s| s % 50).sum::<u64>());
    // rows tile the run without gap or overlap
    let mut next = 0;
    for p in &ts.points {
        assert_eq!(u64::from(p.seq), next, "{p:?}");
        next = p.end_seq();
    }
    assert_eq!(next, day);
    // the last hour at full resolution, then 10 s rows, then coarser
    let n = ts.rows();
    assert!(ts.points[n - 3600..].iter().all(|p| p.span == 1));
    assert_eq!(ts.points[n - 3601].span, 10);
    assert!(ts.points[0].span >= 60);
    // memory after warm-up (the tiers filled at 6 h) is flat: it never exceeds what
    // it was at 7 h by more than the oldest tier's budget
    let warm = bytes_by_hour[6];
    let slack = MAX_COARSE_ROWS * std::mem::size_of::<TimePoint>() * 2;
    for (h, b) in bytes_by_hour.iter().enumerate().skip(6) {
        assert!(
            *b <= warm + slack,
            "hour {}: {b} bytes, at 7 h {warm}",
            h + 1
        );
    }
    let full = day as usize * std::mem::size_of::<TimePoint>();
    assert!(ts.heap_bytes() * 5 < full, "{} vs {full}", ts.heap_bytes());
    // a 1 min row's percentile is its rows' request-weighted mean (hour 7: value 7)
    let old = ts.points.iter().find(|p| p.seq >= 7 * 3600 + 60).unwrap();
    assert!((old.req_p99_ms - 7.0).abs() < 1e-3, "{old:?}");
}

/// A merged row's time and rates come from its span, not from one interval.
#[test]
fn a_rows_time_and_rates_cover_its_span() {
    let rows: Vec<TimePoint> = (60..120).map(|s| row(s, 30, 1.0)).collect();
    let m = TimePoint::merged(&rows, 60, 60);
    // 500 ms intervals: the row is seconds 30..60, 1800 requests in 30 s
    assert_eq!(
        (m.start_s(500), m.end_s(500), m.duration_s(500)),
        (30.0, 60.0, 30.0)
    );
    assert_eq!(m.per_s(m.requests, 500), 60.0);
    assert_eq!(rows[0].per_s(rows[0].requests, 500), 60.0);
    let ts = TimeSeries {
        interval_ms: 500,
        start_unix_us: 0,
        points: vec![TimePoint::merged(&rows[..10], 0, 60), m, row(120, 1, 1.0)],
        ladder: Default::default(),
    };
    assert_eq!((ts.rows(), ts.intervals()), (3, 121));
    assert_eq!(intervals_of(&[]), 0);
}

#[test]
fn point_from_interval() {
    let mut s = Snapshot::default();
    let op = |o: &str| SeriesKey::with_tags(builtin::HTTP_REQ_DURATION, [("operation", o)]);
    for ms in 1..=100u64 {
        s.add(op("run_wait"), MetricKind::Trend, (ms * 1000) as f64);
        s.add(
            SeriesKey::new(builtin::AGENT_FLOW_DURATION),
            MetricKind::Trend,
            (ms * 10_000) as f64,
        );
        s.add(SeriesKey::new(builtin::HTTP_REQS), MetricKind::Counter, 1.0);
        s.add(
            SeriesKey::new(builtin::HTTP_REQ_FAILED),
            MetricKind::Rate,
            if ms <= 5 { 1.0 } else { 0.0 },
        );
    }
    s.add(
        SeriesKey::new(builtin::ITERATIONS),
        MetricKind::Counter,
        7.0,
    );
    s.vus = 4;
    let p = TimePoint::from_interval(3, &s, 2);
    assert_eq!(
        (
            p.seq,
            p.workers,
            p.vus,
            p.requests,
            p.failures,
            p.iterations
        ),
        (3, 2, 4, 100, 5, 7)
    );
    assert!((p.op_p95_ms[2] - 95.0).abs() < 0.1, "{}", p.op_p95_ms[2]);
    assert!(p.op_p95_ms[0].is_nan());
    assert!((p.flow_p50_ms - 500.0).abs() < 0.5);
    let mut ts = TimeSeries {
        interval_ms: 1000,
        ..Default::default()
    };
    ts.push(p);
    let d = ts.to_doc();
    assert_eq!(d.rows[0][3], Some(100.0));
    assert_eq!(d.rows[0][10], None);
    assert_eq!(d.columns.len(), d.rows[0].len());
    assert_eq!(d.column("requests"), Some(vec![Some(100.0)]));
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(
        json["rows"][0][3],
        serde_json::json!(100),
        "counts stay integers"
    );
    let back: TimeSeriesDoc = serde_json::from_value(json).unwrap();
    assert_eq!(back, d);
    assert_eq!(
        TimeSeries::from_doc(&back).to_doc(),
        d,
        "read back as it was"
    );
}

/// The run's `vus` gauge keeps its true minimum after the rows holding it were
/// downsampled: a merged row's `vus` is its highest interval's, its `vus_min` its lowest.
#[test]
fn the_vus_minimum_survives_downsampling() {
    let mut ts = TimeSeries {
        interval_ms: 1000,
        ..Default::default()
    };
    // two hours at 10 VUs but for one interval at 2, in the first (downsampled) hour
    for seq in 0..7200u64 {
        let vus = if seq == 100 { 2 } else { 10 };
        ts.push(TimePoint {
            vus,
            vus_min: vus,
            ..row(seq, 5, 1.0)
        });
    }
    let dip = ts
        .points
        .iter()
        .find(|p| p.seq <= 100 && p.end_seq() > 100)
        .unwrap();
    assert!(dip.span > 1, "the dip's row was merged: {dip:?}");
    assert_eq!((dip.vus, dip.vus_min), (10, 2));
    let stats = |ts: &TimeSeries| match crate::summary::vus_stats(ts) {
        crate::summary::MetricStats::Gauge {
            value, min, max, ..
        } => (value, min, max),
        other => panic!("{other:?}"),
    };
    assert_eq!(stats(&ts), (10.0, 2.0, 10.0));
    // the stored form keeps the column; a file from before it reads vus as the minimum
    let back = TimeSeries::from_doc(&ts.to_doc());
    assert_eq!(stats(&back), (10.0, 2.0, 10.0));
    let mut old = ts.to_doc();
    old.columns.pop();
    for r in &mut old.rows {
        r.pop();
    }
    let back = TimeSeries::from_doc(&old);
    assert!(back.points.iter().all(|p| p.vus_min == p.vus));
    assert_eq!(stats(&back), (10.0, 10.0, 10.0));
}

/// The ladder is a function of its window over the interval: 100 ms intervals with a
/// 6 min window hold the rows of 1 s intervals with the default hour, interval for
/// interval, through every tier (the pair merging of the oldest one included), so a soak
/// compressed in time goes through the memory states of a real one.
#[test]
fn a_compressed_window_holds_the_rows_of_the_default_one() {
    let mut hour = TimeSeries {
        interval_ms: 1000,
        ..Default::default()
    };
    let mut six = TimeSeries {
        interval_ms: 100,
        ladder: Ladder::new(Duration::from_secs(360)),
        ..Default::default()
    };
    let shape = |ts: &TimeSeries| -> Vec<(u32, u32, u32)> {
        ts.points
            .iter()
            .map(|p| (p.seq, p.span, p.requests))
            .collect()
    };
    // past 12 h-equivalents: the oldest tier is over its budget and merges in pairs
    let n = 13 * 3600u64;
    for seq in 0..n {
        let p = row(seq, (seq % 13) as u32, 1.0);
        hour.push(p);
        six.push(p);
        if seq % 3600 == 3599 {
            assert_eq!(shape(&hour), shape(&six), "after {} intervals", seq + 1);
        }
    }
    assert_eq!(six.intervals(), n);
    assert!(
        six.points.iter().any(|p| p.span == 120),
        "pairs of 1 min rows merged"
    );
    assert!(
        six.rows() <= 3600 + 1800 + MAX_COARSE_ROWS,
        "{} rows",
        six.rows()
    );
    // the same window at its own interval is another ladder: 10 s rows are 100 intervals
    let mut plain = TimeSeries {
        interval_ms: 100,
        ..Default::default()
    };
    for seq in 0..40_000u64 {
        plain.push(row(seq, 1, 1.0));
    }
    let n = plain.rows();
    assert!(
        plain.points[n - 36_000..].iter().all(|p| p.span == 1),
        "an hour of 100 ms"
    );
    assert_eq!(plain.points[0].span, 100, "10 s rows of 100 ms intervals");
    assert_eq!(n, 36_000 + 4_000 / 100);
}

#[test]
fn the_ladder_scales_its_tiers_with_its_window() {
    let t = Ladder::default().tiers(1000);
    assert_eq!(
        (t.full, t.mid_span, t.mid_age, t.coarse_span),
        (3600, 10, 21_600, 60)
    );
    let t = Ladder::new(Duration::from_secs(360)).tiers(100);
    assert_eq!(
        (t.full, t.mid_span, t.mid_age, t.coarse_span),
        (3600, 10, 21_600, 60)
    );
    // intervals longer than a tier's bucket: one row per interval there
    let t = Ladder::default().tiers(30_000);
    assert_eq!(
        (t.full, t.mid_span, t.mid_age, t.coarse_span),
        (120, 1, 720, 2)
    );
    assert_eq!(
        Ladder::new(Duration::ZERO).full_resolution(),
        Duration::from_millis(1)
    );
}

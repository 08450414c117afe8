//! Every wire message encodes and decodes to itself; snapshots survive the core conversion.
use barrage_core::{MetricKind, Segment, SeriesKey, Sink, Snapshot};
use barrage_proto::pb::{self, controller_message, worker_message};
use barrage_proto::*;
use prost::Message;

/// The wire decoder's fuzz targets live in `fuzz.rs`, in this one test binary.
mod fuzz;

fn roundtrip<M: Message + Default + PartialEq + std::fmt::Debug>(m: M) {
    let bytes = m.encode_to_vec();
    let back = M::decode(bytes.as_slice()).expect("decodes");
    assert_eq!(back, m);
}

fn sample_snapshot() -> Snapshot {
    let mut s = Snapshot {
        seq: 7,
        interval_start_us: 1_700_000_000_000_000,
        interval_ms: 1000,
        vus: 3,
        vus_max: 5,
        ..Default::default()
    };
    for v in [1200.0, 3400.0, 99_000.0] {
        s.add(
            SeriesKey::with_tags("http_req_duration", [("operation", "run_wait")]),
            MetricKind::Trend,
            v,
        );
    }
    s.add(SeriesKey::new("http_reqs"), MetricKind::Counter, 3.0);
    s.add(SeriesKey::new("http_req_failed"), MetricKind::Rate, 0.0);
    s.add(SeriesKey::new("http_req_failed"), MetricKind::Rate, 1.0);
    s.add(SeriesKey::new("vus"), MetricKind::Gauge, 3.0);
    s
}

#[test]
fn every_message_round_trips() {
    let snap = snapshot_to_pb(&sample_snapshot()).unwrap();
    let worker_msgs = vec![
        worker_message::Msg::Hello(pb::Hello {
            version: "0.1.0".into(),
            protocol: 1,
            host: "h".into(),
            cores: 2,
            core: 1,
            pid: 42,
            name: "w".into(),
            rejoin: Some(pb::Rejoin {
                worker_id: "w3".into(),
                plan_hash: "abc".into(),
                start_at_unix_us: 123,
            }),
        }),
        worker_message::Msg::Pong(pb::Pong {
            seq: 1,
            controller_time_us: 5,
            worker_time_us: 9,
        }),
        worker_message::Msg::Ready(pb::Ready {
            plan_hash: "abc".into(),
        }),
        worker_message::Msg::Snapshot(snap.clone()),
        worker_message::Msg::Points(pb::PointBatch {
            points: vec![pb::Point {
                metric: "http_req_duration".into(),
                kind: pb::MetricKind::Trend as i32,
                tags: vec![pb::Tag {
                    key: "operation".into(),
                    value: "run_wait".into(),
                }],
                time_unix_us: 1,
                value: 12.5,
            }],
        }),
        worker_message::Msg::Done(pb::Done {
            last: Some(snap),
            iterations: 10,
            dropped_iterations: 1,
            error: String::new(),
        }),
        worker_message::Msg::Error(pb::WorkerError {
            message: "boom".into(),
            fatal: true,
        }),
    ];
    for m in worker_msgs {
        roundtrip(pb::WorkerMessage { msg: Some(m) });
    }
    let controller_msgs = vec![
        controller_message::Msg::Welcome(pb::Welcome {
            worker_id: "w-1".into(),
            interval_ms: 1000,
            controller_version: "0.1.0".into(),
        }),
        controller_message::Msg::Reject(pb::Reject {
            reason: "run already started".into(),
            retry: true,
        }),
        controller_message::Msg::Ping(pb::Ping {
            seq: 3,
            controller_time_us: 77,
        }),
        controller_message::Msg::Assignment(pb::Assignment {
            plan_json: "{}".into(),
            plan_hash: "abc".into(),
            segment: Some(segment_to_pb(Segment::split_even(3)[1])),
            clock_offset_us: -12,
            raw_points: true,
            secrets: [("jwt_secret".to_string(), "s".to_string())].into(),
            rejoin_grace_ms: 60_000,
            rejoin_keep_snapshots: 120,
        }),
        controller_message::Msg::Start(pb::Start {
            start_at_unix_us: 123,
        }),
        controller_message::Msg::Reassign(pb::Reassign {
            segment: Some(segment_to_pb(Segment::FULL)),
            remaining: vec!["w-2".into()],
            remaining_count: 1,
        }),
        controller_message::Msg::Stop(pb::Stop {
            reason: "done".into(),
            graceful: true,
        }),
        controller_message::Msg::Abort(pb::Abort {
            reason: "threshold".into(),
        }),
    ];
    for m in controller_msgs {
        roundtrip(pb::ControllerMessage { msg: Some(m) });
    }
}

#[test]
fn snapshots_convert_both_ways() {
    let s = sample_snapshot();
    let back = snapshot_from_pb(&snapshot_to_pb(&s).unwrap()).unwrap();
    assert_eq!(back.seq, 7);
    assert_eq!((back.vus, back.vus_max), (3, 5));
    assert_eq!(back.series.len(), s.series.len());
    let Some(Sink::Trend(t)) = back.submetric("http_req_duration", &[]) else {
        panic!()
    };
    assert_eq!(t.count(), 3);
    let Some(Sink::Trend(sent)) = s.submetric("http_req_duration", &[]) else {
        panic!()
    };
    // exact: the histogram that arrives is the one that was sent, bucket for bucket
    assert_eq!(t.hist.max(), t.hist.highest_equivalent(99_000));
    assert_eq!(t.hist.min(), t.hist.lowest_equivalent(1200));
    assert_eq!(
        (t.hist.min(), t.hist.max(), t.hist.mean()),
        (sent.hist.min(), sent.hist.max(), sent.hist.mean())
    );
    for p in [0.0, 50.0, 95.0, 100.0] {
        assert_eq!(t.percentile(p), sent.percentile(p), "p{p}");
    }
    assert_eq!(t.percentile(50.0), t.hist.highest_equivalent(3400) as f64);
    let Some(Sink::Rate(r)) = back.submetric("http_req_failed", &[]) else {
        panic!()
    };
    assert_eq!((r.trues, r.total), (1, 2));
}

#[test]
fn bad_wire_values_name_the_field() {
    assert_eq!(
        segment_from_pb(None),
        Err(WireError::Missing { field: "segment" })
    );
    let bad = pb::Segment {
        start: Some(pb::Fraction { num: 1, den: 0 }),
        end: Some(pb::Fraction { num: 1, den: 1 }),
    };
    assert!(segment_from_pb(Some(&bad))
        .unwrap_err()
        .to_string()
        .starts_with("segment.start"));
    let mut snap = snapshot_to_pb(&sample_snapshot()).unwrap();
    snap.series[0].value = Some(pb::series_snapshot::Value::Histogram(vec![1, 2, 3]));
    assert!(snapshot_from_pb(&snap)
        .unwrap_err()
        .to_string()
        .contains("histogram"));
    let mut snap = snapshot_to_pb(&sample_snapshot()).unwrap();
    snap.series[0].kind = 99;
    assert!(snapshot_from_pb(&snap).is_err());
    let rate = pb::SeriesSnapshot {
        metric: "checks".into(),
        kind: pb::MetricKind::Rate as i32,
        tags: vec![],
        value: Some(pb::series_snapshot::Value::Rate(pb::RateValue {
            trues: 5,
            total: 2,
        })),
    };
    assert!(snapshot_from_pb(&pb::Snapshot {
        series: vec![rate],
        ..Default::default()
    })
    .is_err());
}

#[test]
fn wire_merge_equals_decode_then_merge() {
    let mut dec = barrage_core::hdr::SparseDecoder::default();
    let a = sample_snapshot();
    let mut b = sample_snapshot();
    for v in [5.0, 50_000_000.0] {
        b.add(
            SeriesKey::with_tags("http_req_duration", [("operation", "get_state")]),
            MetricKind::Trend,
            v,
        );
    }
    let mut via_decode = Snapshot::default();
    via_decode
        .merge(&snapshot_from_pb(&snapshot_to_pb(&a).unwrap()).unwrap())
        .unwrap();
    via_decode
        .merge(&snapshot_from_pb(&snapshot_to_pb(&b).unwrap()).unwrap())
        .unwrap();
    let mut via_wire = Snapshot::default();
    merge_pb_into(&mut via_wire, &snapshot_to_pb(&a).unwrap(), &mut dec).unwrap();
    merge_pb_into(&mut via_wire, &snapshot_to_pb(&b).unwrap(), &mut dec).unwrap();
    assert_eq!(via_wire.series.len(), via_decode.series.len());
    assert_eq!(via_wire.vus, via_decode.vus);
    for (key, sink) in &via_decode.series {
        let other = &via_wire.series[key];
        match (sink, other) {
            (Sink::Trend(x), Sink::Trend(y)) => {
                assert_eq!(x.count(), y.count(), "{key}");
                for p in [50.0, 95.0, 99.0, 100.0] {
                    assert_eq!(x.percentile(p), y.percentile(p), "{key} p{p}");
                }
            }
            (x, y) => assert_eq!(format!("{x:?}"), format!("{y:?}"), "{key}"),
        }
    }
    // a bad message merges nothing
    let before = format!("{:?}", via_wire.series.keys().collect::<Vec<_>>());
    let mut bad = snapshot_to_pb(&b).unwrap();
    bad.series.last_mut().unwrap().kind = 42;
    let count_before = match via_wire.submetric("http_reqs", &[]) {
        Some(Sink::Counter(c)) => c.sum,
        _ => -1.0,
    };
    assert!(merge_pb_into(&mut via_wire, &bad, &mut dec).is_err());
    let count_after = match via_wire.submetric("http_reqs", &[]) {
        Some(Sink::Counter(c)) => c.sum,
        _ => -1.0,
    };
    assert_eq!(count_before, count_after);
    assert_eq!(
        before,
        format!("{:?}", via_wire.series.keys().collect::<Vec<_>>())
    );
}

#[test]
fn points_convert_both_ways_and_bad_ones_name_the_field() {
    let p = barrage_core::Point {
        metric: "http_req_duration".into(),
        kind: barrage_core::MetricKind::Trend,
        tags: vec![("operation".into(), "run_wait".into())],
        time_unix_us: 1_735_787_045_678_901,
        value: 1234.0,
    };
    let wire = barrage_proto::point_to_pb(p.clone());
    assert_eq!(barrage_proto::point_from_pb(wire.clone()).unwrap(), p);
    let mut bad = wire.clone();
    bad.value = f64::NAN;
    let e = barrage_proto::point_from_pb(bad).unwrap_err().to_string();
    assert!(e.contains("point http_req_duration: value"), "{e}");
    let mut bad = wire.clone();
    bad.kind = 99;
    let e = barrage_proto::point_from_pb(bad).unwrap_err().to_string();
    assert!(e.contains("point http_req_duration: kind"), "{e}");
    let mut bad = wire;
    bad.metric.clear();
    let e = barrage_proto::point_from_pb(bad).unwrap_err().to_string();
    assert!(e.contains("point.metric"), "{e}");
}

/// Issue 12 §4: a worker's own figures ride its snapshot, and figures no worker could have
/// measured are refused naming the field.
#[test]
fn worker_health_round_trips_and_is_validated() {
    use barrage_core::validity::{VuSample, WorkerHealth};
    let h = WorkerHealth {
        cpu: 0.42,
        cpu_wall_us: 1_000_000,
        loop_lag_max_us: 3100,
        loop_lag_p99_us: 1200,
        vus: Some(VuSample {
            planned_min: 4,
            planned_max: 5,
            active_min: 4,
            active_max: 5,
        }),
        iterations_started: 97,
        iterations_due: Some(100),
        iterations_dropped: 3,
        schedule_changed: true,
    };
    let mut snap = snapshot_to_pb(&sample_snapshot()).unwrap();
    assert_eq!(
        health_from_pb(&snap),
        Ok(None),
        "no health: a simulated worker"
    );
    snap.health = Some(health_to_pb(&h));
    roundtrip(snap.clone());
    assert_eq!(health_from_pb(&snap), Ok(Some(h)));
    let closed = WorkerHealth {
        iterations_due: None,
        vus: None,
        ..h
    };
    snap.health = Some(health_to_pb(&closed));
    assert_eq!(health_from_pb(&snap), Ok(Some(closed)));
    // (mutation, field named in the error)
    type Mutation = fn(&mut pb::WorkerHealth);
    let cases: [(Mutation, &str); 4] = [
        (|h| h.cpu = f64::NAN, "snapshot.health.cpu"),
        (|h| h.cpu = -0.1, "snapshot.health.cpu"),
        (
            |h| h.loop_lag_p99_us = h.loop_lag_max_us + 1,
            "snapshot.health.loop_lag_p99_us",
        ),
        (
            |h| h.vus.as_mut().unwrap().active_min = 9,
            "snapshot.health.vus",
        ),
    ];
    for (mutate, field) in cases {
        let mut bad = snapshot_to_pb(&sample_snapshot()).unwrap();
        let mut hp = health_to_pb(&h);
        mutate(&mut hp);
        bad.health = Some(hp);
        let err = health_from_pb(&bad).unwrap_err();
        assert!(err.to_string().starts_with(field), "{err}");
    }
}

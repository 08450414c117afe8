use super::*;

fn trend(
    metric: &'static str,
    tags: &'static [(&'static str, &'static str)],
    v: f64,
) -> Sample<'static> {
    Sample {
        metric,
        kind: MetricKind::Trend,
        tags,
        value: v,
    }
}

#[test]
fn series_are_interned_by_sorted_tags_with_plan_tags() {
    let reg = Registry::new(&BTreeMap::from([
        ("runtime".to_string(), "ts".to_string()),
        ("operation".to_string(), "plan-default".to_string()),
    ]));
    reg.record(trend(
        "http_req_duration",
        &[("operation", "run_wait"), ("status", "200")],
        1000.0,
    ));
    reg.record(trend(
        "http_req_duration",
        &[("status", "200"), ("operation", "run_wait")],
        3000.0,
    ));
    reg.record(trend(
        "http_req_duration",
        &[("operation", "get_state")],
        10.0,
    ));
    assert_eq!(reg.series_count(), 2);
    let snap = reg.cut(0, 0, 1000);
    let key = SeriesKey::with_tags(
        "http_req_duration",
        [
            ("operation", "run_wait"),
            ("runtime", "ts"),
            ("status", "200"),
        ],
    );
    let Some(Sink::Trend(t)) = snap.series.get(&key) else {
        panic!(
            "missing {key} in {:?}",
            snap.series.keys().collect::<Vec<_>>()
        )
    };
    assert_eq!(t.count(), 2);
    // the cut reset the sinks: an empty interval ships no series (VUs are fields)
    let next = reg.cut(1, 1_000_000, 1000);
    assert_eq!(next.metrics(), Vec::<&str>::new());
}

/// Issue 17 §3: a 1-VU run whose VU starts and stops within one interval printed
/// `vus 0 min=0 max=0`: the cut carried the VUs of its instant, not of its interval.
#[test]
fn a_cut_carries_the_most_vus_of_its_interval() {
    let reg = Registry::new(&BTreeMap::new());
    reg.set_vus(1, 1);
    reg.set_vus(0, 1);
    let first = reg.cut(0, 0, 1000);
    assert_eq!((first.vus, first.vus_max), (1, 1));
    assert!(first.series.is_empty(), "{:?}", first.series.keys());
    let idle = reg.cut(1, 1_000_000, 1000);
    assert_eq!((idle.vus, idle.vus_max), (0, 1));
    reg.set_vus(3, 4);
    reg.set_vus(2, 4);
    assert_eq!(reg.vus(), (2, 4));
    let ramp = reg.cut(2, 2_000_000, 1000);
    assert_eq!((ramp.vus, ramp.vus_max), (3, 4));
    let steady = reg.cut(3, 3_000_000, 1000);
    assert_eq!((steady.vus, steady.vus_max), (2, 4));
}

/// Several scenarios on one worker: each view tags its samples with its own tags,
/// keeps its own VU counts, and the cut carries one set of series and the VU sums.
#[test]
fn scoped_views_share_the_series_and_sum_their_vus() {
    let root = Registry::new(&BTreeMap::from([("runtime".to_string(), "ts".to_string())]));
    let tags = |name: &str| {
        BTreeMap::from([
            ("runtime".to_string(), "ts".to_string()),
            ("scenario".to_string(), name.to_string()),
        ])
    };
    let (main, probe) = (root.scoped(&tags("main")), root.scoped(&tags("probe")));
    assert_ne!(main.instance(), probe.instance());
    main.record(trend(
        "http_req_duration",
        &[("operation", "run_wait")],
        5.0,
    ));
    let id = probe
        .series(
            "http_req_duration",
            MetricKind::Trend,
            &[("operation", "ok")],
        )
        .unwrap();
    probe.record_series(id, 1.0);
    probe.record_series(id, 2.0);
    main.set_vus(4, 5);
    probe.set_vus(1, 2);
    assert_eq!(main.vus(), (4, 5));
    assert_eq!(probe.vus(), (1, 2));
    assert_eq!(root.vus_total(), (5, 7));
    main.set_vus(0, 5);
    let snap = root.cut(0, 0, 1000);
    assert_eq!((snap.vus, snap.vus_max), (5, 7));
    let count = |scenario: &str| match snap
        .submetric("http_req_duration", &[("scenario".into(), scenario.into())])
    {
        Some(Sink::Trend(t)) => t.count(),
        other => panic!("{scenario}: {other:?}"),
    };
    assert_eq!((count("main"), count("probe")), (1, 2));
    let next = root.cut(1, 1_000_000, 1000);
    assert_eq!((next.vus, next.vus_max), (1, 7));
}

#[test]
fn samples_by_series_id_land_where_samples_by_key_do() {
    let reg = Registry::new(&BTreeMap::from([("runtime".to_string(), "ts".to_string())]));
    let tags = [("operation", "get_state"), ("status", "200")];
    let id = reg
        .series("http_req_duration", MetricKind::Trend, &tags)
        .unwrap();
    reg.record_series(id, 100.0);
    reg.record(trend(
        "http_req_duration",
        &[("status", "200"), ("operation", "get_state")],
        300.0,
    ));
    reg.record_series(id, 200.0);
    assert_eq!(reg.series_count(), 1);
    // the same series asked for with another kind: refused, and `record` drops such samples
    assert_eq!(
        reg.series("http_req_duration", MetricKind::Counter, &tags),
        None
    );
    reg.record(Sample {
        metric: "http_req_duration",
        kind: MetricKind::Counter,
        tags: &tags,
        value: 1.0,
    });
    assert_eq!(reg.kind_clashes(), 1);
    let snap = reg.cut(0, 0, 1000);
    let key = SeriesKey::with_tags(
        "http_req_duration",
        [
            ("operation", "get_state"),
            ("runtime", "ts"),
            ("status", "200"),
        ],
    );
    let Some(Sink::Trend(t)) = snap.series.get(&key) else {
        panic!("missing {key}")
    };
    assert_eq!(t.count(), 3);
    assert!(
        (t.percentile(100.0) - 300.0).abs() < 1.0,
        "{}",
        t.percentile(100.0)
    );
    // another registry is another instance: its ids are not these
    assert_ne!(reg.instance(), Registry::new(&BTreeMap::new()).instance());
}

#[test]
fn sort_dedup_keeps_the_last_value() {
    let mut t = [("b", "1"), ("a", "x"), ("b", "2"), ("c", "3")];
    let n = sort_dedup(&mut t);
    assert_eq!(&t[..n], &[("a", "x"), ("b", "2"), ("c", "3")]);
}

#[test]
fn kind_clash_is_dropped_not_merged() {
    let reg = Registry::new(&BTreeMap::new());
    reg.record(trend("x", &[], 5.0));
    reg.record(Sample {
        metric: "x",
        kind: MetricKind::Counter,
        tags: &[],
        value: 1.0,
    });
    assert_eq!(reg.kind_clashes(), 1);
}

#[tokio::test]
async fn raw_points_come_in_batches() {
    let reg = Registry::new(&BTreeMap::new());
    let ready = reg.enable_raw_points(Clock::new(0));
    for i in 0..(POINT_BATCH + 10) {
        reg.record(trend("t", &[("k", "v")], i as f64));
    }
    ready.notified().await; // a permit was stored when the batch filled
    let full = reg.take_full_batches();
    assert_eq!(full.len(), 1);
    assert_eq!(full[0].len(), POINT_BATCH);
    let first = &full[0][0];
    assert_eq!(
        (first.metric.as_str(), first.kind, &first.tags, first.value),
        (
            "t",
            MetricKind::Trend,
            &vec![("k".to_string(), "v".to_string())],
            0.0
        )
    );
    let rest = reg.take_points();
    assert_eq!(rest.iter().map(Vec::len).sum::<usize>(), 10);
}

//! Bounded fuzzing (proptest) of the wire snapshot decoder: protobuf bytes from a worker →
//! `pb::Snapshot` → `snapshot_from_pb` (whole decode) and `merge_pb_into` (the sparse path
//! the controller uses). Arbitrary bytes never panic; a valid snapshot round-trips, and
//! both paths agree. Case count: `BARRAGE_FUZZ_CASES` (default 256); the seed corpus in
//! `tests/corpus/snapshot/` (encoded `pb::Snapshot` messages) is always replayed.
use barrage_core::hdr::SparseDecoder;
use barrage_core::{MetricKind, SeriesKey, Sink, Snapshot};
use barrage_proto::{merge_pb_into, pb, snapshot_from_pb, snapshot_to_pb};
use proptest::prelude::*;
use prost::Message;
use std::path::Path;

/// Decodes `bytes` both ways; neither may panic. With `agree` (a message barrage itself
/// encoded), when the whole decode succeeds the sparse merge must too, with the same counts.
/// Corrupted bytes need not agree: the sparse decoder is the stricter of the two (a
/// truncated zlib stream the library's decoder tolerates is refused), and it is the one
/// the controller runs.
fn decode_both(bytes: &[u8]) -> Option<Snapshot> {
    decode(bytes, false)
}

fn decode(bytes: &[u8], agree: bool) -> Option<Snapshot> {
    let msg = pb::Snapshot::decode(bytes).ok()?;
    let whole = snapshot_from_pb(&msg);
    let mut merged = Snapshot::default();
    let sparse = merge_pb_into(&mut merged, &msg, &mut SparseDecoder::default());
    if let (true, Ok(w)) = (agree, &whole) {
        assert!(sparse.is_ok(), "whole decode ok, sparse failed: {sparse:?}");
        assert_eq!(w.series.len(), merged.series.len());
        for (key, sink) in &w.series {
            let other = &merged.series[key];
            match (sink, other) {
                (Sink::Trend(a), Sink::Trend(b)) => assert_eq!(a.count(), b.count(), "{key}"),
                (a, b) => assert_eq!(a.kind(), b.kind(), "{key}"),
            }
        }
    }
    whole.ok()
}

#[test]
fn snapshot_corpus_replays() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/snapshot");
    for (name, bytes) in barrage_testkit::corpus(dir) {
        let got = decode_both(&bytes);
        if name.starts_with("ok-") {
            assert!(got.is_some(), "{name} was refused");
        } else if name.starts_with("bad-") {
            assert!(got.is_none(), "{name} was accepted");
        }
    }
}

fn snapshot() -> impl Strategy<Value = Snapshot> {
    let series = prop::collection::vec(
        (
            prop_oneof![
                Just("http_reqs"),
                Just("http_req_duration"),
                Just("http_req_failed"),
                Just("x")
            ],
            prop::collection::vec(("[a-z]{1,4}", "\\PC{0,6}"), 0..3),
            prop::collection::vec(0u64..10_000_000, 0..30),
        ),
        0..8,
    );
    (any::<u64>(), any::<i64>(), any::<u32>(), 0u64..1000, series).prop_map(
        |(seq, start, ms, vus, series)| {
            let mut s = Snapshot {
                seq,
                interval_start_us: start,
                interval_ms: ms,
                vus,
                vus_max: vus,
                ..Default::default()
            };
            for (metric, tags, values) in series {
                let key = SeriesKey::with_tags(
                    metric,
                    tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                );
                let kind = match metric {
                    "http_reqs" | "x" => MetricKind::Counter,
                    "http_req_failed" => MetricKind::Rate,
                    _ => MetricKind::Trend,
                };
                let sink = s.entry(key, kind);
                for v in values {
                    sink.add(v as f64);
                }
            }
            s
        },
    )
}

proptest! {
    #![proptest_config(barrage_testkit::fuzz_config(None))]

    #[test]
    fn arbitrary_bytes_never_panic_the_snapshot_decoder(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        let _ = decode_both(&bytes);
    }

    #[test]
    fn valid_snapshots_round_trip_and_survive_corruption(s in snapshot(), flip in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let bytes = snapshot_to_pb(&s).unwrap().encode_to_vec();
        let back = decode(&bytes, true).expect("a valid snapshot decodes");
        prop_assert_eq!((back.seq, back.vus, back.series.len()), (s.seq, s.vus, s.series.len()));
        for (key, sink) in &s.series {
            match (sink, &back.series[key]) {
                (Sink::Trend(a), Sink::Trend(b)) => {
                    prop_assert_eq!(a.count(), b.count());
                    prop_assert_eq!(a.percentile(99.0), b.percentile(99.0));
                }
                (Sink::Counter(a), Sink::Counter(b)) => prop_assert_eq!(a.sum, b.sum),
                (Sink::Rate(a), Sink::Rate(b)) => prop_assert_eq!((a.trues, a.total), (b.trues, b.total)),
                (a, b) => prop_assert_eq!(a.kind(), b.kind()),
            }
        }
        if !bytes.is_empty() {
            let mut bad = bytes.clone();
            let i = flip.index(bad.len());
            bad[i] ^= byte | 1;
            let _ = decode_both(&bad);
            let _ = decode_both(&bytes[..i]);
        }
    }
}

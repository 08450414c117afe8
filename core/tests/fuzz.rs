//! Bounded fuzzing (proptest) of the parsers that take text or bytes from outside: plan
//! TOML (parsing and validation), threshold expressions, and the sparse HDR decoder that
//! reads histograms off the wire. Arbitrary input must never panic; valid input must
//! round-trip. Case count: `BARRAGE_FUZZ_CASES` (default 256). The seed corpus under
//! `tests/corpus/` is always replayed: `ok-*` files must be accepted, `bad-*` refused,
//! `edge-*` only must not panic. Add a file there for every input that once broke a parser.
use barrage_core::hdr::{add_pairs, SparseDecoder};
use barrage_core::sink::TrendSink;
use barrage_core::threshold::Threshold;
use barrage_core::Plan;
use proptest::prelude::*;
use std::path::Path;

fn corpus(kind: &str) -> Vec<(String, Vec<u8>)> {
    barrage_testkit::corpus(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/corpus")
            .join(kind),
    )
}

/// A plan that validates must survive its JSON form (what an assignment carries).
fn check_plan(text: &str) -> Result<Plan, barrage_core::PlanError> {
    let plan = Plan::from_toml_str(text)?;
    let back = Plan::from_json_str(&plan.to_json()).expect("a valid plan's JSON re-validates");
    assert_eq!(back, plan);
    assert_eq!(back.hash(), plan.hash());
    plan.parsed_thresholds()
        .expect("a valid plan's thresholds parse");
    Ok(plan)
}

#[test]
fn plan_corpus_replays() {
    for (name, bytes) in corpus("plan") {
        let text = String::from_utf8_lossy(&bytes);
        let got = check_plan(&text);
        if name.starts_with("ok-") {
            got.unwrap_or_else(|e| panic!("{name}: {e}"));
        } else if name.starts_with("bad-") {
            assert!(got.is_err(), "{name} was accepted");
        }
    }
}

#[test]
fn threshold_corpus_replays() {
    for (name, bytes) in corpus("threshold") {
        let text = String::from_utf8_lossy(&bytes);
        let got = Threshold::parse(&text);
        if name.starts_with("ok-") {
            got.unwrap_or_else(|e| panic!("{name}: {e}"));
        } else if name.starts_with("bad-") {
            assert!(got.is_err(), "{name} was accepted: {got:?}");
        }
    }
}

/// Splices `insert` into a corpus plan at `at` (a char boundary near it).
fn splice(base: &str, at: usize, insert: &str) -> String {
    let mut at = at % (base.len() + 1);
    while !base.is_char_boundary(at) {
        at -= 1;
    }
    format!("{}{insert}{}", &base[..at], &base[at..])
}

fn valid_threshold() -> impl Strategy<Value = (String, f64)> {
    let agg = prop_oneof![
        Just("avg".to_string()),
        Just("min".to_string()),
        Just("max".to_string()),
        Just("med".to_string()),
        Just("count".to_string()),
        Just("rate".to_string()),
        Just("value".to_string()),
        (0u32..=100).prop_map(|p| format!("p({p})")),
    ];
    let op = prop_oneof![
        Just("<"),
        Just("<="),
        Just(">"),
        Just(">="),
        Just("=="),
        Just("==="),
        Just("!=")
    ];
    (agg, op, -1.0e12f64..1.0e12).prop_map(|(a, o, v)| (format!("{a}{o}{v}"), v))
}

proptest! {
    #![proptest_config(barrage_testkit::fuzz_config(None))]

    #[test]
    fn arbitrary_text_never_panics_the_plan_parser(text in "\\PC*") {
        let _ = check_plan(&text);
    }

    #[test]
    fn mutated_corpus_plans_never_panic(
        pick in any::<prop::sample::Index>(),
        at in any::<usize>(),
        insert in prop_oneof![
            "\\PC{0,12}",
            Just("\0".to_string()),
            Just("\"\n".to_string()),
            Just("]\n[".to_string()),
            Just("99999999999999999999".to_string()),
            Just("{".to_string()),
        ],
    ) {
        let plans: Vec<_> = corpus("plan").into_iter().filter(|(n, _)| n.starts_with("ok-")).collect();
        let (_, bytes) = &plans[pick.index(plans.len())];
        let text = splice(&String::from_utf8_lossy(bytes), at, &insert);
        let _ = check_plan(&text);
    }

    #[test]
    fn arbitrary_text_never_panics_the_threshold_parser(text in "\\PC{0,40}") {
        let _ = Threshold::parse(&text);
        let _ = barrage_core::MetricRef::parse(&text);
    }

    #[test]
    fn valid_thresholds_parse_to_what_was_written((text, value) in valid_threshold()) {
        let t = Threshold::parse(&text).unwrap();
        prop_assert_eq!(t.value, value);
        prop_assert_eq!(t.source, text);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_sparse_decoder(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut dec = SparseDecoder::default();
        let mut pairs = Vec::new();
        let _ = dec.decode(&bytes, &mut pairs);
        // the same bytes behind a valid cookie reach the payload parser
        for cookie in [0x1c84_9303u32, 0x1c84_9304] {
            let mut framed = cookie.to_be_bytes().to_vec();
            framed.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            framed.extend_from_slice(&bytes);
            let _ = dec.decode(&framed, &mut pairs);
        }
    }

    #[test]
    fn encoded_histograms_decode_sparsely_to_the_same_histogram(
        values in prop::collection::vec(1u64..3_600_000_000, 1..200),
    ) {
        let mut sent = TrendSink::default();
        for v in &values {
            sent.record(*v);
        }
        let bytes = sent.encode().unwrap();
        let mut dec = SparseDecoder::default();
        let mut pairs = Vec::new();
        dec.decode(&bytes, &mut pairs).unwrap();
        let mut got = TrendSink::default();
        add_pairs(&mut got.hist, &pairs).unwrap();
        prop_assert_eq!(got.count(), values.len() as u64);
        prop_assert_eq!(got.hist.max(), sent.hist.max());
        prop_assert_eq!(got.hist.min(), sent.hist.min());
        for p in [50.0, 95.0, 99.0] {
            prop_assert_eq!(got.percentile(p), sent.percentile(p));
        }
        // truncated bytes are an error, never a panic
        for cut in [0, 1, 7, 8, bytes.len() / 2, bytes.len() - 1] {
            let _ = dec.decode(&bytes[..cut], &mut pairs);
        }
    }
}

//! `compare`: a seeded 20 % p95 regression is flagged with an interval excluding zero; an
//! identical pair and two noisy runs of the same build pass; k6 NDJSON compares too.
use crate::k6file;
use crate::synth::Synth;
use barrage_report::compare::{compare, Budgets, Verdict};
use barrage_report::input::Measured;
use barrage_report::stats::DEFAULT_SEED;
use std::path::PathBuf;

fn measured(paths: &[PathBuf]) -> Measured {
    Measured::read_all(paths).unwrap()
}

#[test]
fn flags_a_seeded_20_percent_p95_regression() {
    let dir = tempfile::tempdir().unwrap();
    let base = Synth {
        seed: 1,
        ..Synth::default()
    }
    .write(dir.path(), "base");
    let slow = Synth {
        seed: 2,
        latency_factor: 1.2,
        ..Synth::default()
    }
    .write(dir.path(), "slow");
    let c = compare(
        &measured(&[base]),
        &measured(&[slow]),
        &Budgets::default(),
        DEFAULT_SEED,
    );
    let p95 = c
        .changes
        .iter()
        .find(|x| x.metric == "http_req_duration" && x.stat == "p95")
        .unwrap();
    assert!((p95.change - 20.0).abs() < 6.0, "{p95:?}");
    let (lo, hi) = p95.ci.unwrap();
    assert!(lo > 0.0 && lo < p95.change && p95.change < hi, "{p95:?}");
    assert_eq!(p95.verdict, Verdict::Regression);
    assert!(c.regressions >= 1);
    let md = c.markdown();
    assert!(md.contains("regression(s)"), "{md}");
    assert!(md.contains("| `http_req_duration` | p95 |"), "{md}");
    let json: serde_json::Value = serde_json::from_str(&c.json()).unwrap();
    assert_eq!(json["regressions"].as_u64(), Some(c.regressions as u64));
    // throughput did not change beyond its budget
    let thr = c.changes.iter().find(|x| x.metric == "http_reqs").unwrap();
    assert_ne!(thr.verdict, Verdict::Regression, "{thr:?}");
}

#[test]
fn an_identical_pair_passes() {
    let dir = tempfile::tempdir().unwrap();
    let a = Synth {
        fail_share: 0.01,
        ..Synth::default()
    }
    .write(dir.path(), "a");
    let c = compare(
        &measured(std::slice::from_ref(&a)),
        &measured(&[a]),
        &Budgets::default(),
        DEFAULT_SEED,
    );
    assert_eq!(c.regressions, 0);
    assert!(!c.changes.is_empty());
    for ch in &c.changes {
        assert_eq!(ch.change, 0.0, "{ch:?}");
        if let Some((lo, hi)) = ch.ci {
            assert!(lo <= 0.0 && hi >= 0.0, "{ch:?}");
        }
        assert_eq!(ch.verdict, Verdict::Ok, "{ch:?}");
    }
}

#[test]
fn noise_between_two_runs_of_one_build_is_not_a_regression() {
    let dir = tempfile::tempdir().unwrap();
    for seed in [3u64, 5, 7] {
        let a = Synth {
            seed,
            flows_per_interval: 8,
            ..Synth::default()
        }
        .write(dir.path(), "a");
        let b = Synth {
            seed: seed + 100,
            flows_per_interval: 8,
            ..Synth::default()
        }
        .write(dir.path(), "b");
        let c = compare(
            &measured(&[a]),
            &measured(&[b]),
            &Budgets::default(),
            DEFAULT_SEED,
        );
        assert_eq!(c.regressions, 0, "seed {seed}:\n{}", c.markdown());
    }
}

#[test]
fn sets_merge_and_a_tight_budget_catches_what_the_default_allows() {
    let dir = tempfile::tempdir().unwrap();
    let base: Vec<PathBuf> = (1..=2)
        .map(|s| {
            Synth {
                seed: s,
                ..Synth::default()
            }
            .write(dir.path(), &format!("b{s}"))
        })
        .collect();
    let cur: Vec<PathBuf> = (3..=4)
        .map(|s| {
            Synth {
                seed: s,
                latency_factor: 1.1,
                ..Synth::default()
            }
            .write(dir.path(), &format!("c{s}"))
        })
        .collect();
    let (mb, mc) = (measured(&base), measured(&cur));
    assert_eq!(mb.intervals.len(), 60, "two runs of 30 intervals");
    let c = compare(&mb, &mc, &Budgets::default(), DEFAULT_SEED);
    assert_eq!(
        c.regressions,
        0,
        "+10 % is within the 15 % p95 budget\n{}",
        c.markdown()
    );
    let mut tight = Budgets::default();
    tight.set("p95=5%").unwrap();
    let c = compare(&mb, &mc, &tight, DEFAULT_SEED);
    let p95 = c
        .changes
        .iter()
        .find(|x| x.metric == "http_req_duration" && x.stat == "p95")
        .unwrap();
    assert_eq!(p95.verdict, Verdict::Regression, "{p95:?}");
}

#[test]
fn k6_ndjson_compares_like_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let a = k6file::write(dir.path(), "a", 1, 300, 1.0);
    let b = k6file::write(dir.path(), "b", 2, 300, 1.3);
    let ma = measured(std::slice::from_ref(&a));
    assert!(ma
        .trends
        .contains_key("http_req_duration{operation:run_wait}"));
    assert!(ma.intervals.len() >= 10, "{} intervals", ma.intervals.len());
    let c = compare(&ma, &measured(&[b]), &Budgets::default(), DEFAULT_SEED);
    let run_wait = c
        .changes
        .iter()
        .find(|x| x.metric == "http_req_duration{operation:run_wait}" && x.stat == "p95")
        .unwrap();
    assert_eq!(run_wait.verdict, Verdict::Regression, "{run_wait:?}");
    let c = compare(&ma, &measured(&[a]), &Budgets::default(), DEFAULT_SEED);
    assert_eq!(c.regressions, 0);
}

//! The scaling pattern (seed 001: throughput and p95 at 100 VUs against 10) for real: a
//! plateau at 10 VUs and one at 100 against the reference runtime, whose mock LLM holds
//! each run 200 ms so that the runtime, not the generator, sets the pace. The summary's
//! `patterns.scaling` must agree with its own stage sections, and show the throughput
//! growing with the VUs.
use crate::util::*;
use std::time::Duration;

const PLAN: &str = r#"name = "scaling"
interval = "1s"
graceful_stop = "5s"
[flow]
name = "recovery"
[scenario]
executor = "ramping-vus"
start_vus = 10
stages = [
  { duration = "3s", target = 10 },
  { duration = "1s", target = 100 },
  { duration = "3s", target = 100 },
]
"#;

#[test]
fn scaling_compares_the_10_and_100_vu_plateaus() {
    let target = start_target_with_delay(200);
    let (_dir, results, mut run) = run_plan_text(&target.url, PLAN);
    assert_eq!(
        run.exit_code(Duration::from_secs(90)),
        0,
        "{}",
        run.output()
    );
    let s = barrage_testkit::summary::only_summary(&results);
    let stages = s["stages"].as_array().unwrap();
    let sc = &s["patterns"]["scaling"];
    assert!(sc.is_object(), "no patterns.scaling: {}", s["patterns"]);
    assert_eq!(
        (sc["low"]["stage"].as_u64(), sc["high"]["stage"].as_u64()),
        (Some(0), Some(2))
    );
    assert_eq!(sc["low"]["planned"].as_f64(), Some(10.0));
    assert_eq!(sc["high"]["planned"].as_f64(), Some(100.0));
    assert_eq!(sc["load_ratio"].as_f64(), Some(10.0));
    // each level's figures are its stage's
    let f = |v: &serde_json::Value| v.as_f64().unwrap();
    for (level, i) in [("low", 0), ("high", 2)] {
        let st = &stages[i];
        let l = &sc[level];
        assert_eq!(l["iterations"], st["iterations"], "{level}");
        let per_s = f(&st["iterations"]) / f(&st["duration_s"]);
        assert!(
            (f(&l["iterations_per_s"]) - per_s).abs() < 0.01,
            "{level}: {l}"
        );
        assert_eq!(
            l["iteration_p95_ms"], st["metrics"]["iteration_duration"]["p95"],
            "{level}"
        );
    }
    assert!(f(&sc["high"]["vus_mean"]) > 80.0, "{}", sc["high"]);
    let ratio = f(&sc["throughput_ratio"]);
    let want = f(&sc["high"]["iterations_per_s"]) / f(&sc["low"]["iterations_per_s"]);
    assert!((ratio - want).abs() < 0.01, "{sc}");
    assert!(
        (f(&sc["per_vu_efficiency"]) - ratio / 10.0).abs() < 0.01,
        "{sc}"
    );
    // 200 ms runs: 10 VUs make under 50 iterations/s; 100 VUs, with the runtime waiting
    // on the LLM, clearly more
    assert!(ratio > 2.0, "throughput did not grow with the VUs: {sc}");
    let p95 = f(&sc["p95_ratio"]);
    let want = f(&sc["high"]["iteration_p95_ms"]) / f(&sc["low"]["iteration_p95_ms"]);
    assert!((p95 - want).abs() < 0.01 && p95 > 0.5, "{sc}");
    println!("patterns.scaling: {sc}");
    // and in the text summary
    let out = run.output();
    assert!(out.contains("█ PATTERNS"), "{out}");
    assert!(out.contains("scaling: 10 → 100 vus"), "{out}");
}

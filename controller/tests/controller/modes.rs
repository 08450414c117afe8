//! One plan, both ways: `barrage run` (controller + a worker) and `barrage worker
//! --standalone` write the same summary (one model, one threshold evaluator, one renderer),
//! print the same text, and exit with the same code.
use crate::util::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// Exactly 3 iterations for each of 2 VUs, a threshold that passes, and one on a submetric
/// that never has data: it fails both ways (the controller used to pass it).
const PLAN: &str = r#"name = "modes"
interval = "1s"
graceful_stop = "5s"
[target]
runtime = "modes"
[scenario]
executor = "per-vu-iterations"
vus = 2
iterations = 3
[thresholds]
http_req_failed = ["rate<0.05"]
"http_req_duration{operation:run_wait}" = ["p(95)<60000"]
"http_req_duration{operation:no_such_step}" = ["p(95)<1000"]
"#;

/// The lines of the METRICS and THRESHOLDS sections, values dropped: `name` or `✓ name 'expr'`.
fn text_shape(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| {
            l.starts_with('✓') || l.starts_with('✗') || l.contains("..: ") || l.contains(".: ")
        })
        .map(|l| match l.split_once(" observed=") {
            Some((head, _)) => head
                .split_whitespace()
                .filter(|w| !w.chars().all(|c| c == '.'))
                .collect::<Vec<_>>()
                .join(" ")
                .replace('.', ""),
            None => l
                .split(':')
                .next()
                .unwrap()
                .trim_end_matches('.')
                .to_string(),
        })
        .collect()
}

fn stat(s: &serde_json::Value, metric: &str, field: &str) -> f64 {
    s["metrics"][metric][field]
        .as_f64()
        .unwrap_or_else(|| panic!("{metric}.{field} missing"))
}

#[test]
fn one_plan_gives_the_same_summary_under_run_and_standalone() {
    let target = start_target();
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.toml");
    std::fs::write(&plan, PLAN).unwrap();
    let ran = |args: &[&str], results: &Path| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend([
            "--plan",
            plan.to_str().unwrap(),
            "--target",
            &target.url,
            "--results-dir",
            results.to_str().unwrap(),
        ]);
        let mut p = Proc::barrage(args[0], &all);
        let code = p.exit_code(Duration::from_secs(60));
        let text = p.stdout.lock().unwrap().clone();
        (code, p.output(), text)
    };
    let (a_dir, b_dir) = (dir.path().join("run"), dir.path().join("alone"));
    let (code_run, out_run, text_run) = ran(&["run", "--workers", "1"], &a_dir);
    let (code_alone, out_alone, text_alone) = ran(&["worker", "--standalone"], &b_dir);

    // the no-data threshold fails both ways: same exit code
    assert_eq!(code_run, 99, "{out_run}");
    assert_eq!(code_alone, 99, "{out_alone}");

    let a = barrage_testkit::summary::only_summary(&a_dir);
    let b = barrage_testkit::summary::only_summary(&b_dir);
    assert_eq!(a["mode"], "controller");
    assert_eq!(b["mode"], "standalone");
    assert_eq!(a["schema_version"], b["schema_version"]);
    assert_eq!(a["plan_hash"], b["plan_hash"], "the same plan");
    assert_eq!(a["result"]["exit_code"], b["result"]["exit_code"]);
    // same metrics and submetrics, same deterministic counts
    let keys = |s: &serde_json::Value| -> BTreeSet<String> {
        s["metrics"].as_object().unwrap().keys().cloned().collect()
    };
    assert_eq!(keys(&a), keys(&b));
    for (metric, field) in [
        ("iterations", "count"),
        ("http_reqs", "count"),
        ("http_req_duration", "count"),
        ("http_req_duration{operation:run_wait}", "count"),
        ("checks", "passes"),
        ("http_req_failed", "fails"),
        ("vus_max", "value"),
    ] {
        assert_eq!(
            stat(&a, metric, field),
            stat(&b, metric, field),
            "{metric}.{field}"
        );
    }
    assert_eq!(stat(&a, "iterations", "count"), 6.0);
    // same verdicts, the no-data one included
    let verdicts = |s: &serde_json::Value| -> Vec<(String, String, bool, bool)> {
        s["thresholds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["metric"].as_str().unwrap().to_string(),
                    t["threshold"].as_str().unwrap().to_string(),
                    t["ok"].as_bool().unwrap(),
                    t["observed"].is_null(),
                )
            })
            .collect()
    };
    assert_eq!(verdicts(&a), verdicts(&b));
    assert!(verdicts(&a).contains(&(
        "http_req_duration{operation:no_such_step}".into(),
        "p(95)<1000".into(),
        false,
        true
    )));
    // the same text, line for line (values aside)
    let (sa, sb) = (text_shape(&text_run), text_shape(&text_alone));
    assert!(sa.len() > 10, "{text_run}");
    assert_eq!(sa, sb, "run:\n{text_run}\nstandalone:\n{text_alone}");
    assert!(text_run.contains("✗ http_req_duration{operation:no_such_step}"));
    assert!(text_alone.contains("observed=no data"));
}

//! `barrage run`: local workers against the reference runtime; merged counts against the
//! runtime's own `/stats`; NDJSON points against the summary; exit codes 0 and 99.
use crate::util::{get_json, plan_file, read_json, start_target, Proc};
use std::time::Duration;

fn sum_workers(s: &serde_json::Value, field: &str) -> u64 {
    s["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w[field].as_u64().unwrap())
        .sum()
}

#[test]
fn merged_counts_match_the_workers_and_the_runtime() {
    let target = start_target();
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_file(dir.path(), "p.toml", 3, 3, "");
    let ndjson = dir.path().join("out.json");
    let csv = dir.path().join("out.csv");
    let results = dir.path().join("results");
    let mut run = Proc::barrage(
        "barrage run",
        &[
            "run",
            "--target",
            &target.url,
            "--runtime-name",
            "ts",
            "--runtime-version",
            "0.1.0",
            "--plan",
            plan.to_str().unwrap(),
            "--workers",
            "2",
            "--no-progress",
            "--results-dir",
            results.to_str().unwrap(),
            "--out",
            &format!("json={}", ndjson.display()),
            "--out",
            &format!("csv={}", csv.display()),
        ],
    );
    assert_eq!(
        run.exit_code(Duration::from_secs(60)),
        0,
        "{}",
        run.output()
    );
    let path = results.join("ts-v0.1.0-mock-3vu.summary.json");
    assert!(
        run.stdout
            .lock()
            .unwrap()
            .contains(&format!("results: {}", path.display())),
        "{}",
        run.output()
    );
    let s = read_json(&path);
    let stats = get_json(&format!("{}/stats", target.url));

    // merged counts = sum of the workers' = the runtime's own record
    let reqs = s["metrics"]["http_reqs"]["count"].as_f64().unwrap() as u64;
    let iterations = s["metrics"]["iterations"]["count"].as_f64().unwrap() as u64;
    assert!(iterations > 0 && reqs > 0, "{s}");
    assert_eq!(s["workers"].as_array().unwrap().len(), 2);
    assert_eq!(sum_workers(&s, "requests"), reqs);
    assert_eq!(sum_workers(&s, "iterations"), iterations);
    let done: u64 = s["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["done_iterations"].as_u64().unwrap())
        .sum();
    assert_eq!(done, iterations);
    assert_eq!(
        stats["requests_total"].as_u64().unwrap(),
        reqs,
        "runtime /stats: {stats}"
    );
    assert_eq!(
        stats["requests"]["run_wait"].as_u64().unwrap(),
        s["metrics"]["http_reqs{operation:run_wait}"]["count"]
            .as_f64()
            .unwrap() as u64
    );
    assert_eq!(
        s["metrics"]["agent_flow_duration"]["count"]
            .as_u64()
            .unwrap(),
        iterations
    );
    assert_eq!(s["metrics"]["vus_max"]["value"].as_f64(), Some(3.0));
    assert_eq!(s["target"]["url"], target.url.as_str());
    assert!(s["histograms"]["agent_flow_duration"]["hdr_v2_deflate_base64"].is_string());
    assert!(s["timeseries"]["rows"].as_array().unwrap().len() >= 3);
    assert_eq!(s["barrage"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(s["host"]["cores"].as_u64().unwrap() >= 1);
    // issue 12 §4: a healthy run proves the load it delivered: valid, with each worker's
    // own figures (closed model: its planned VUs ran at every steady interval)
    assert_eq!(s["validity"]["valid"], true, "{}", s["validity"]);
    for w in s["workers"].as_array().unwrap() {
        let h = &w["health"];
        assert!(h["intervals"].as_u64().unwrap() >= 3, "{w}");
        let cpu = h["cpu_mean_pct"].as_f64().unwrap();
        assert!(cpu > 0.0 && cpu < 90.0, "{w}");
        assert!(
            h["iterations_started"].as_u64().unwrap() >= w["iterations"].as_u64().unwrap(),
            "{w}"
        );
    }

    // the seed's jq recipes on the NDJSON give the summary's answers
    let text = std::fs::read_to_string(&ndjson).unwrap();
    let points = |metric: &str, filter: &str| -> Vec<f64> {
        text.lines()
            .filter(|l| {
                l.contains(&format!("\"metric\":\"{metric}\""))
                    && l.contains("\"Point\"")
                    && l.contains(filter)
            })
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["data"]["value"]
                    .as_f64()
                    .unwrap()
            })
            .collect()
    };
    let mut flows = points("agent_flow_duration", "");
    assert_eq!(flows.len() as u64, iterations, "iteration count via Points");
    flows.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let p95 = flows[((flows.len() as f64 * 0.95).ceil() as usize).saturating_sub(1)];
    let summary_p95 = s["metrics"]["agent_flow_duration"]["p95"].as_f64().unwrap();
    assert!(
        (p95 - summary_p95).abs() <= p95 * 0.002 + 0.002,
        "p95 points {p95} vs summary {summary_p95}"
    );
    let run_wait = points("http_req_duration", "\"operation\":\"run_wait\"");
    assert_eq!(
        run_wait.len() as u64,
        s["metrics"]["http_req_duration{operation:run_wait}"]["count"]
            .as_u64()
            .unwrap()
    );
    assert!(text.lines().next().unwrap().contains("\"type\":\"Metric\""));
    let csv_text = std::fs::read_to_string(&csv).unwrap();
    assert!(csv_text.starts_with("metric_name,timestamp,metric_value,check,error"));
    assert_eq!(
        csv_text
            .lines()
            .filter(|l| l.starts_with("agent_flow_duration,"))
            .count() as u64,
        iterations
    );
}

#[test]
fn run_starts_its_own_target_and_exits_0_or_99() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    // passing thresholds
    let plan = plan_file(dir.path(), "ok.toml", 2, 3, "[thresholds]\nhttp_req_failed = [\"rate<0.05\"]\nagent_flow_success_rate = [\"rate>0.95\"]\n");
    let mut run = Proc::barrage(
        "barrage run",
        &[
            "run",
            "--plan",
            plan.to_str().unwrap(),
            "--workers",
            "1",
            "--results-dir",
            results.to_str().unwrap(),
        ],
    );
    assert_eq!(
        run.exit_code(Duration::from_secs(60)),
        0,
        "{}",
        run.output()
    );
    let path = results.join(format!(
        "reference-v{}-mock-2vu.summary.json",
        env!("CARGO_PKG_VERSION")
    ));
    let s = read_json(&path);
    assert_eq!(s["target"]["runtime"], "reference");
    assert!(
        s["thresholds"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["ok"] == true),
        "{}",
        s["thresholds"]
    );
    assert!(s["metrics"]["iterations"]["count"].as_f64().unwrap() > 0.0);
    assert!(
        run.stdout.lock().unwrap().contains("✓ http_req_failed"),
        "{}",
        run.output()
    );

    // a threshold that surely fails
    let plan = plan_file(
        dir.path(),
        "fail.toml",
        2,
        2,
        "[thresholds]\nhttp_reqs = [\"count<1\"]\n",
    );
    let mut run = Proc::barrage(
        "barrage run",
        &[
            "run",
            "--plan",
            plan.to_str().unwrap(),
            "--workers",
            "1",
            "--results-dir",
            results.to_str().unwrap(),
        ],
    );
    assert_eq!(
        run.exit_code(Duration::from_secs(60)),
        99,
        "{}",
        run.output()
    );
    // never overwritten: the second run with the same labels is `-2`
    let s = read_json(&results.join(format!(
        "reference-v{}-mock-2vu-2.summary.json",
        env!("CARGO_PKG_VERSION")
    )));
    let t = &s["thresholds"][0];
    assert_eq!(
        (t["metric"].as_str(), t["ok"].as_bool()),
        (Some("http_reqs"), Some(false)),
        "{t}"
    );
    assert!(
        run.stdout.lock().unwrap().contains("✗ http_reqs"),
        "{}",
        run.output()
    );
    assert_eq!(s["result"]["exit_code"], 99);
}

#[test]
fn sigint_stops_gracefully_and_still_writes_results() {
    let target = start_target();
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let plan = plan_file(dir.path(), "long.toml", 2, 60, "");
    let mut run = Proc::barrage(
        "barrage run",
        &[
            "run",
            "--target",
            &target.url,
            "--runtime-name",
            "sig",
            "--runtime-version",
            "0.1.0",
            "--plan",
            plan.to_str().unwrap(),
            "--workers",
            "1",
            "--results-dir",
            results.to_str().unwrap(),
            "--no-progress",
        ],
    );
    // load is flowing: the target has served requests (its own count)
    let served = || {
        get_json(&format!("{}/stats", target.url))["requests_total"]
            .as_u64()
            .unwrap()
    };
    barrage_testkit::wait_for("requests at the target", Duration::from_secs(30), || {
        (served() >= 20).then_some(())
    });
    run.signal("INT");
    assert_eq!(
        run.exit_code(Duration::from_secs(20)),
        0,
        "{}",
        run.output()
    );
    let s = read_json(&results.join("sig-v0.1.0-mock-2vu.summary.json"));
    assert!(
        s["result"]["end_reason"]
            .as_str()
            .unwrap()
            .starts_with("interrupted"),
        "{}",
        s["result"]
    );
    assert!(s["metrics"]["iterations"]["count"].as_f64().unwrap() > 0.0);
    assert!(s["duration_s"].as_f64().unwrap() < 20.0);
}

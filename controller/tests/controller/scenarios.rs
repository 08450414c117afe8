//! `[scenarios.NAME]` through `barrage run` with two workers against the reference runtime:
//! each scenario's iterations counted under its `scenario` tag, a later scenario starting
//! at its start time (the NDJSON points say when each iteration was due), and the probe
//! example plan (`deploy/plans/probe.toml`) beside a slow agent load.
use crate::util::{get_json, read_json, start_target, start_target_with_delay, Proc};
use barrage_core::plan::leading_scenario;
use barrage_core::{ExecutorConfig, Plan};
use std::path::Path;
use std::time::Duration;

/// `barrage run` on `plan` with 2 workers and NDJSON output; returns the summary and the
/// NDJSON text.
fn run(url: &str, plan: &Path, dir: &Path) -> (i32, serde_json::Value, String, String) {
    let ndjson = dir.join("out.json");
    let results = dir.join("results");
    let mut run = Proc::barrage(
        "barrage run",
        &[
            "run",
            "--target",
            url,
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
        ],
    );
    let code = run.exit_code(Duration::from_secs(90));
    let summary = std::fs::read_dir(&results)
        .unwrap_or_else(|e| panic!("{e}\n{}", run.output()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".summary.json"))
        .unwrap_or_else(|| panic!("no summary\n{}", run.output()));
    (
        code,
        read_json(&summary),
        std::fs::read_to_string(&ndjson).unwrap(),
        run.output(),
    )
}

/// Every NDJSON point of `metric` whose tags include all of `tags`: (unix seconds, value).
fn points(ndjson: &str, metric: &str, tags: &[(&str, &str)]) -> Vec<(f64, f64)> {
    ndjson
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|p| p["type"] == "Point" && p["metric"] == metric)
        .filter(|p| tags.iter().all(|(k, v)| p["data"]["tags"][*k] == *v))
        .map(|p| {
            let t =
                chrono::DateTime::parse_from_rfc3339(p["data"]["time"].as_str().unwrap()).unwrap();
            (
                t.timestamp_micros() as f64 / 1e6,
                p["data"]["value"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn count(s: &serde_json::Value, entry: &str) -> f64 {
    s["metrics"][entry]["count"]
        .as_f64()
        .unwrap_or_else(|| panic!("no {entry} in the summary's metrics"))
}

#[test]
fn two_scenarios_are_counted_under_their_tags_and_the_later_starts_on_time() {
    let target = start_target();
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("two.toml");
    // main: the agent flow, 2 iterations/s for 4 s (8); late: GET /ok, 5/s for 2 s from 2 s
    // (10). Pools are generous so a stalled worker on a busy CI host drops nothing.
    std::fs::write(
        &plan,
        r#"
name = "two"
interval = "1s"
graceful_stop = "10s"
[scenarios.main]
executor = "constant-arrival-rate"
rate = 2
duration = "4s"
pre_allocated_vus = 4
max_vus = 16
[scenarios.late]
executor = "constant-arrival-rate"
rate = 5
duration = "2s"
pre_allocated_vus = 2
max_vus = 10
start_time = "2s"
flow = "ok"
[flows.ok]
[[flows.ok.steps]]
name = "ok"
path = "/ok"
[thresholds]
"iterations{scenario:main}" = ["count>0"]
"iterations{scenario:late}" = ["count>0"]
"http_reqs{scenario:late}" = ["count>0"]
"http_reqs{scenario:main}" = ["count>0"]
"#,
    )
    .unwrap();
    let (code, s, ndjson, output) = run(&target.url, &plan, dir.path());
    assert_eq!(code, 0, "{output}");
    // every scheduled iteration ran, each under its scenario's tag
    assert_eq!(count(&s, "iterations{scenario:main}"), 8.0, "{output}");
    assert_eq!(count(&s, "iterations{scenario:late}"), 10.0, "{output}");
    assert_eq!(count(&s, "iterations"), 18.0);
    assert_eq!(count(&s, "http_reqs{scenario:late}"), 10.0);
    assert_eq!(
        count(&s, "http_reqs{scenario:main}") + 10.0,
        count(&s, "http_reqs")
    );
    // the runtime's own record (which leaves /ok out): main's agent flows, all of them
    let stats = get_json(&format!("{}/stats", target.url));
    assert_eq!(
        stats["requests_total"].as_f64(),
        Some(count(&s, "http_reqs{scenario:main}")),
        "{stats}"
    );
    assert_eq!(stats["requests"]["run_wait"].as_f64(), Some(8.0), "{stats}");
    // the run lasts as long as its longest scenario (4 s), both split over the workers
    assert_eq!(s["workers"].as_array().unwrap().len(), 2);
    assert!(
        s["scenario"].as_str().unwrap().contains("late @2s"),
        "{}",
        s["scenario"]
    );
    // when each iteration was due: its end (the point's time) minus its duration
    let due = |scenario: &str| -> Vec<f64> {
        let mut d: Vec<f64> = points(&ndjson, "iteration_duration", &[("scenario", scenario)])
            .into_iter()
            .map(|(t, ms)| t - ms / 1000.0)
            .collect();
        d.sort_by(f64::total_cmp);
        d
    };
    let (main, late) = (due("main"), due("late"));
    assert_eq!((main.len(), late.len()), (8, 10));
    let first_late = late[0] - main[0];
    assert!(
        (1.999..2.2).contains(&first_late),
        "late's first iteration was due {first_late:.4} s after main's first; start_time is 2 s"
    );
    // every sample of the run carries one of the two scenario tags
    let untagged = ndjson
        .lines()
        .filter(|l| l.contains("\"Point\""))
        .filter(|l| !l.contains("\"scenario\":\"main\"") && !l.contains("\"scenario\":\"late\""))
        .count();
    assert_eq!(untagged, 0);
}

/// `deploy/plans/probe.toml` with its durations cut to a few seconds: the probe's samples
/// are there, tagged `scenario=probe`, and its thresholds are evaluated.
#[test]
fn the_probe_example_runs_beside_a_slow_agent_load() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/plans/probe.toml");
    let mut plan = Plan::from_file(&file).unwrap_or_else(|e| panic!("{e}"));
    let secs = Duration::from_secs(4);
    for s in plan.scenarios.values_mut() {
        s.executor = match s.executor.clone() {
            ExecutorConfig::RampingVus { .. } => ExecutorConfig::ConstantVus {
                vus: 4,
                duration: secs,
            },
            ExecutorConfig::ConstantArrivalRate {
                rate,
                time_unit,
                pre_allocated_vus,
                max_vus,
                arrivals,
                ..
            } => ExecutorConfig::ConstantArrivalRate {
                rate,
                time_unit,
                duration: secs,
                pre_allocated_vus,
                max_vus,
                arrivals,
            },
            other => panic!("the example changed: {other:?}"),
        };
    }
    plan.scenario = plan.scenarios[leading_scenario(&plan.scenarios).unwrap()]
        .executor
        .clone();
    plan.graceful_stop = Duration::from_secs(10);
    plan.validate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("probe.toml");
    std::fs::write(&short, toml::to_string(&plan).unwrap()).unwrap();
    // every LLM answer takes 300 ms: the agent runs are slow, the probe needs no LLM
    let target = start_target_with_delay(300);
    let (code, s, ndjson, output) = run(&target.url, &short, dir.path());
    // 1 probe per second for 4 s, 3 requests each (thread, state, cleanup)
    assert_eq!(
        count(&s, "http_req_duration{scenario:probe}"),
        12.0,
        "{output}"
    );
    let state = points(
        &ndjson,
        "http_req_duration",
        &[("operation", "probe_state"), ("scenario", "probe")],
    );
    assert_eq!(state.len(), 4, "{output}");
    // the probe's own tag from the plan, and no probe request outside the probe scenario
    assert_eq!(
        points(&ndjson, "http_reqs", &[("probe", "thread_state")]).len(),
        12
    );
    assert_eq!(
        points(
            &ndjson,
            "http_req_duration",
            &[("operation", "probe_state")]
        )
        .len(),
        4
    );
    assert!(!points(&ndjson, "http_req_duration", &[("scenario", "agents")]).is_empty());
    // both probe thresholds were evaluated, and the exit code follows their verdicts
    let verdicts: Vec<&serde_json::Value> = s["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["metric"].as_str().unwrap().contains("scenario:probe"))
        .collect();
    assert_eq!(verdicts.len(), 2, "{}", s["thresholds"]);
    assert!(verdicts
        .iter()
        .all(|v| v["observed"].as_f64().unwrap() > 0.0));
    let all_ok = s["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["ok"] == true);
    assert_eq!(code, if all_ok { 0 } else { 99 }, "{output}");
    assert!(
        output.contains("http_req_duration{scenario:probe}"),
        "{output}"
    );
}

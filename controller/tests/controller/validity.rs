//! Issue 12 §4–§5 "Honesty": a run that could not deliver its plan says so. A worker asked
//! for an arrival rate far above what one worker can start against the reference runtime
//! makes the run invalid: exit 97, the summary names the worker and the stage, the text
//! says INVALID first; `--allow-invalid` exits as a valid run would and still says it.
use crate::util::{read_json, start_target, Proc};
use std::path::Path;
use std::time::Duration;

/// A one-request flow at `rate` iterations/s for 2 s: far beyond one worker.
fn flood_plan(dir: &Path, rate: u64) -> std::path::PathBuf {
    let p = dir.join("flood.toml");
    std::fs::write(
        &p,
        format!(
            "name = \"flood\"\ninterval = \"1s\"\ngraceful_stop = \"1s\"\n\
             [scenario]\nexecutor = \"constant-arrival-rate\"\nrate = {rate}\nduration = \"2s\"\n\
             pre_allocated_vus = 20\nmax_vus = 50\n\
             [flow]\nrequest = {{ method = \"GET\", path = \"/ok\" }}\n"
        ),
    )
    .unwrap();
    p
}

fn run(url: &str, plan: &Path, results: &Path, extra: &[&str]) -> (i32, String, serde_json::Value) {
    let mut args = vec![
        "run",
        "--target",
        url,
        "--runtime-name",
        "flood",
        "--plan",
        plan.to_str().unwrap(),
        "--workers",
        "1",
        "--no-progress",
        "--results-dir",
        results.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let mut p = Proc::barrage("barrage run", &args);
    let code = p.exit_code(Duration::from_secs(60));
    let out = p.output();
    let stdout = p.stdout.lock().unwrap().clone();
    let path = stdout
        .lines()
        .find_map(|l| l.strip_prefix("results: "))
        .unwrap_or_else(|| panic!("no results line\n{out}"))
        .to_string();
    (code, out, read_json(Path::new(&path)))
}

#[test]
fn a_worker_that_cannot_keep_up_makes_the_run_invalid() {
    let target = start_target();
    let dir = tempfile::tempdir().unwrap();
    let plan = flood_plan(dir.path(), 100_000);
    let results = dir.path().join("results");

    let (code, out, s) = run(&target.url, &plan, &results, &[]);
    assert_eq!(code, 97, "{out}");
    assert_eq!(s["result"]["exit_code"], 97, "{out}");
    let v = &s["validity"];
    assert_eq!(v["valid"], false, "{v}");
    assert_eq!(v["allow_invalid"], false);
    let worker = s["workers"][0]["id"].as_str().unwrap().to_string();
    let problems = v["problems"].as_array().unwrap();
    let rate = problems
        .iter()
        .find(|p| p["what"] == "iteration_rate")
        .unwrap_or_else(|| panic!("no iteration_rate problem: {v}"));
    assert_eq!(rate["worker"], worker.as_str(), "{v}");
    assert_eq!(
        (rate["stage"].as_u64(), rate["stage_kind"].as_str()),
        (Some(0), Some("plateau")),
        "{v}"
    );
    assert_eq!(
        rate["bound"].as_f64(),
        Some(100_000.0),
        "the plan's rate: {v}"
    );
    assert!(rate["observed"].as_f64().unwrap() < 99_000.0, "{v}");
    // its own figures are in the worker table
    let health = &s["workers"][0]["health"];
    assert!(
        health["iterations_due"].as_u64().unwrap() > 150_000,
        "{health}"
    );
    assert!(
        health["iterations_started"].as_u64() < health["iterations_due"].as_u64(),
        "{health}"
    );
    // the text says it first, naming the worker and the stage
    let stdout = out.split("--- barrage run stderr ---").next().unwrap();
    let invalid = stdout
        .find("INVALID RUN")
        .unwrap_or_else(|| panic!("{out}"));
    assert!(invalid < stdout.find("target:").unwrap(), "{out}");
    assert!(
        out.contains(&format!(
            "✗ worker {worker}, stage 0 (plateau): iteration_rate"
        )),
        "{out}"
    );

    // --allow-invalid: the exit code of a valid run (no thresholds: 0); still invalid
    let (code, out, s) = run(&target.url, &plan, &results, &["--allow-invalid"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(s["validity"]["valid"], false, "{out}");
    assert_eq!(s["validity"]["allow_invalid"], true);
    assert!(out.contains("INVALID RUN"), "{out}");
    assert!(out.contains("--allow-invalid"), "{out}");
}

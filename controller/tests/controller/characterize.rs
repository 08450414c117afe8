//! `barrage characterize` for real (issue 13 §3): the embedded reference runtime behind the
//! mock LLM in model mode with 4 generation slots and a fixed 120 ms per call. An agent
//! flow makes 3 LLM calls, so the target cannot complete more than 4 / (3 × 0.12 s) ≈ 11.1
//! flows/s; the reported capacity and max sustainable throughput must land within 10 % of
//! that, from short plateaus (1 s warm-up + 5 s). Locally (each plateau a `barrage run`)
//! and with two remote `barrage worker --serve` processes (each plateau a `barrage
//! controller` on one address).
use crate::util::{read_json, Proc, BARRAGE};
use std::process::Command;
use std::time::Duration;

/// Generation slots and the service time of one call.
const SLOTS: f64 = 4.0;
const SERVICE_MS: f64 = 120.0;
const LLM_CALLS_PER_FLOW: f64 = barrage_core::telemetry::LLM_CALLS_PER_FLOW as f64;

/// The mock LLM's model mode: `SLOTS` generation slots, `SERVICE_MS` per call.
fn model_mode(cmd: &mut Command) -> &mut Command {
    cmd.env("MOCK_LLM_MODE", "model")
        .env("MOCK_LLM_MAX_CONCURRENCY", SLOTS.to_string())
        .env("MOCK_LLM_QUEUE_SIZE", "256")
        .env("MOCK_LLM_TTFT_MS", SERVICE_MS.to_string())
        .env("MOCK_LLM_TTFT_PER_TOKEN_US", "0")
        .env("MOCK_LLM_JITTER_MS", "0")
        .env("MOCK_LLM_TOKENS_PER_S", "1000000")
}

/// The search both tests run: rate plateaus of 1 s warm-up + 5 s from `start`, doubling,
/// bisected to 0.5 flows/s.
fn search_flags(start: &str) -> Vec<String> {
    [
        "characterize",
        "--by",
        "rate",
        "--start",
        start,
        "--step",
        "x2",
        "--plateau",
        "5s",
        "--warmup",
        "1s",
        "--graceful-stop",
        "3s",
        "--precision",
        "0.5",
        // unloaded, a flow takes 3 × 120 ms plus the runtime's own time (p95 ≈ 450 ms); a
        // queue that grows over an overloaded plateau pushes its p95 past 1 s
        "--p95",
        "agent_flow_duration=650ms",
        // a bad plateau is run once more (`--confirm 1`, the default): the suite's other
        // tests share the cores, and a burst of theirs makes one plateau look bad
        "--max-plateaus",
        "16",
    ]
    .map(String::from)
    .to_vec()
}

/// The capacity and max sustainable throughput of `characterize.json` are within 10 % of
/// the model's limit; returns the report.
fn assert_near_the_limit(results: &std::path::Path, p: &Proc) -> serde_json::Value {
    let limit = SLOTS / (LLM_CALLS_PER_FLOW * SERVICE_MS / 1e3);
    let r = read_json(&results.join("characterize.json"));
    let near = |v: f64| (v - limit).abs() / limit <= 0.10;
    let cap = r["capacity_under_slo"].as_f64().unwrap_or(0.0);
    let thr = r["max_sustainable_throughput"]["per_s"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(
        near(cap) && near(thr),
        "limit {limit:.2} flows/s, capacity {cap}, throughput {thr}\n{}",
        p.output()
    );
    assert_eq!(r["unit"], "iterations/s");
    r
}

#[test]
fn reports_the_mock_models_capacity_within_ten_percent() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let mut cmd = Command::new(BARRAGE);
    cmd.args(search_flags("3"))
        .args([
            "--results-dir",
            results.to_str().unwrap(),
            "--",
            "--workers",
            "1",
        ])
        .env("RUST_LOG", "warn");
    let mut p = Proc::start("characterize", model_mode(&mut cmd));
    let code = p.exit_code(Duration::from_secs(150));
    assert_eq!(code, 0, "{}", p.output());
    let r = assert_near_the_limit(&results, &p);
    // the search stepped up to a bad plateau and bisected
    let curve = r["curve"].as_array().unwrap();
    assert!(curve.iter().any(|c| c["phase"] == "bisect"), "{r:#}");
    let bad = curve
        .iter()
        .find(|c| c["load"].as_f64() == r["first_bad"].as_f64())
        .unwrap();
    assert!(
        bad["verdict"]["reasons"][0]
            .as_str()
            .unwrap()
            .contains("agent_flow_duration"),
        "{bad:#}"
    );
    // every plateau's figures are its plateau stage's (planned load rounded to 3 decimals in
    // the summary), and its run is on disk
    for c in curve {
        let s = read_json(std::path::Path::new(c["summary"].as_str().unwrap()));
        let stage = &s["stages"][1];
        assert_eq!(stage["kind"], "plateau");
        let planned = stage["planned_from"].as_f64().unwrap();
        assert!(
            (planned - c["load"].as_f64().unwrap()).abs() < 1e-3,
            "{c:#}"
        );
        assert!(c["p95_ms"].as_f64().unwrap() >= LLM_CALLS_PER_FLOW * SERVICE_MS);
    }
    let text = std::fs::read_to_string(results.join("characterize.txt")).unwrap();
    assert!(text.contains("capacity under SLO:"), "{text}");
    let png = std::fs::read(results.join("characterize.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let svg = std::fs::read_to_string(results.join("characterize.svg")).unwrap();
    assert!(svg.contains("throughput by load"));
}

#[test]
fn bad_flags_are_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("r");
    let mut p = Proc::barrage(
        "characterize",
        &[
            "characterize",
            "--step",
            "x1",
            "--min-goodput",
            "150%",
            "--p95",
            "agent_flow_duration",
            "--results-dir",
            results.to_str().unwrap(),
            "--",
            "--plan",
            "x.toml",
        ],
    );
    assert_eq!(p.exit_code(Duration::from_secs(20)), 2, "{}", p.output());
    let err = p.stderr.lock().unwrap().clone();
    for flag in ["--step", "--min-goodput", "--p95", "--plan after `--`"] {
        assert!(err.contains(flag), "{flag}: {err}");
    }
    assert!(!results.join("characterize").exists());
}

#[test]
fn remote_workers_serve_every_plateau_and_find_the_same_capacity() {
    // the target as the local test's: reference runtime behind the mock LLM in model mode
    let mut cmd = Command::new(BARRAGE);
    cmd.args(["mock-llm", "--host", "127.0.0.1", "--port", "0"])
        .env("RUST_LOG", "warn");
    let mut mock = Proc::start("mock-llm", model_mode(&mut cmd));
    let mock_addr = mock.listening();
    let mut cmd = Command::new(BARRAGE);
    cmd.args(["reference-runtime", "--host", "127.0.0.1", "--port", "0"])
        .env("OPENAI_BASE_URL", format!("http://{mock_addr}/v1"))
        .env("RUST_LOG", "warn")
        .env_remove("SUPABASE_JWT_SECRET");
    let mut runtime = Proc::start("reference-runtime", &mut cmd);
    let target = runtime.listening();
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let addr = format!("127.0.0.1:{}", barrage_testkit::free_port());
    let mut cmd = Command::new(BARRAGE);
    cmd.args(search_flags("6"))
        .args([
            "--target",
            &target,
            "--listen",
            &addr,
            "--expect-workers",
            "2",
            "--join-timeout",
            "60s",
            "--results-dir",
            results.to_str().unwrap(),
        ])
        .env("RUST_LOG", "warn");
    let mut p = Proc::start("characterize", &mut cmd);
    // started once, each serves every plateau's controller in turn
    let mut workers: Vec<Proc> = (1..=2)
        .map(|i| {
            let name = format!("w-{i}");
            Proc::barrage(
                &name,
                &[
                    "worker",
                    "--controller",
                    &format!("http://{addr}"),
                    "--serve",
                    "--idle-timeout",
                    "4s",
                    "--connect-timeout",
                    "60s",
                    "--name",
                    &name,
                ],
            )
        })
        .collect();
    let code = p.exit_code(Duration::from_secs(150));
    assert_eq!(code, 0, "{}", outputs(&p, &workers));
    let banner = p.stderr.lock().unwrap().clone();
    assert!(
        banner.contains(&format!("workers: remote: each plateau is a `barrage controller` on {addr} waiting for 2 worker(s)")),
        "{banner}"
    );
    let r = assert_near_the_limit(&results, &p);
    // both workers took part in every plateau, each with its share of the iterations
    let curve = r["curve"].as_array().unwrap();
    assert!(curve.iter().any(|c| c["phase"] == "bisect"), "{r:#}");
    for c in curve {
        assert_eq!(c["workers"], 2, "{c:#}");
        let s = read_json(std::path::Path::new(c["summary"].as_str().unwrap()));
        let ws = s["workers"].as_array().unwrap();
        assert_eq!(ws.len(), 2, "{ws:#?}");
        for w in ws {
            assert!(w["lost"].is_null(), "{w:#}");
            assert!(w["iterations"].as_u64().unwrap() > 0, "{w:#}");
        }
    }
    // with no next plateau, each worker ends by itself after --idle-timeout, having served
    // every plateau
    for i in 0..workers.len() {
        let code = workers[i].exit_code(Duration::from_secs(30));
        let err = workers[i].stderr.lock().unwrap().clone();
        assert!(
            code == 0 && err.contains(&format!("served {} run(s)", curve.len())),
            "{}",
            outputs(&p, &workers)
        );
    }
}

fn outputs(p: &Proc, workers: &[Proc]) -> String {
    let w: Vec<String> = workers.iter().map(Proc::output).collect();
    format!("{}\n{}", p.output(), w.join("\n"))
}

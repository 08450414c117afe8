//! The built-in orchestration patterns (seed 001) against the reference runtime with the
//! mock LLM, each asserting its shape from the server's own record: the fan-out really
//! had 50 runs in flight (the runtime's `runs_in_flight_peak`), the chain made 20
//! dependent runs whose prompts grew, the diamond's D started after B and C ended, the
//! retries recovered what the mock broke.
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use barrage_worker::flow::AgentFlow;
use barrage_worker::sample::IterationOutcome;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::flow::{
    plan, reference_target_and_llm, reference_target_with, run, serve_router, Collector,
};

fn flow_plan(url: &str, name: &str) -> barrage_core::Plan {
    let mut p = plan(url, Duration::from_secs(30));
    p.flow.name = name.into();
    p.validate().unwrap();
    p
}

async fn stats(url: &str) -> Value {
    let bytes = reqwest::get(format!("{url}/stats"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn llm(delay_ms: u64) -> barrage_mock_llm::Config {
    barrage_mock_llm::Config {
        delay: Duration::from_millis(delay_ms),
        stream_delay: Duration::from_millis(1),
        ..Default::default()
    }
}

#[tokio::test]
async fn fanout_has_its_50_runs_in_flight_at_once() {
    let stop = CancellationToken::new();
    let url = reference_target_with(llm(300), None, &stop).await;
    let flow = AgentFlow::new(&flow_plan(&url, "fanout"), &Default::default()).unwrap();
    let rec = Collector::default();
    let outcome = run(&flow, 1, 0, &rec).await;
    assert_eq!(outcome, IterationOutcome::Success);
    let s = stats(&url).await;
    assert_eq!(s["runs"]["started"], 51, "{s}");
    assert_eq!(s["runs"]["succeeded"], 51, "{s}");
    assert_eq!(s["runs_in_flight_peak"], 50, "{s}");
    assert_eq!(s["threads"], 0, "every copy deleted its thread: {s}");
    assert_eq!(rec.count("fanout_run_duration", &[]), 50);
    let wall = rec.find("fanout_wall", &[("group", "fan")]);
    assert_eq!(wall.len(), 1);
    // 50 runs of >= 300 ms at once: far less than 50 × 300 ms, at least one run's time
    assert!(
        (300_000.0..5_000_000.0).contains(&wall[0].value),
        "{wall:?}"
    );
    let eff = rec.find("parallel_efficiency", &[("group", "fan")]);
    assert!(eff[0].value > 10.0, "{eff:?}");
    stop.cancel();
}

/// A fan-out copy whose run fails still deletes the thread it created (it used to stop at
/// the failed run and leak the thread: the runtime's `/stats` kept counting it).
#[tokio::test]
async fn fanout_copy_that_fails_still_deletes_its_thread() {
    let stop = CancellationToken::new();
    let url = reference_target_with(
        barrage_mock_llm::Config {
            error_rate: 0.3,
            ..llm(20)
        },
        None,
        &stop,
    )
    .await;
    let flow = AgentFlow::new(&flow_plan(&url, "fanout"), &Default::default()).unwrap();
    let rec = Collector::default();
    // 51 runs at 30 % errors: all passing has probability 0.7^51 (about 1e-8); the
    // producer failing ends the iteration before any copy, so try a few iterations
    let mut failed_copies = false;
    for i in 0..5 {
        if let IterationOutcome::Failed { step, .. } = run(&flow, 1, i, &rec).await {
            if step == "fan_run" {
                failed_copies = true;
                break;
            }
        }
    }
    assert!(failed_copies, "no fan-out copy failed in 5 iterations");
    let s = stats(&url).await;
    assert!(s["runs"]["failed"].as_u64().unwrap() > 0, "{s}");
    let created = rec.count("fan_thread", &[]);
    assert!(created >= 50, "{created}");
    assert_eq!(
        rec.count("cleanup", &[("operation", "fan_delete_thread")]),
        created,
        "one delete per thread created"
    );
    assert_eq!(
        s["threads"], 0,
        "every copy, failed or not, deleted its thread: {s}"
    );
    stop.cancel();
}

#[tokio::test]
async fn fanout_on_one_thread_is_run_one_at_a_time_by_the_reference_runtime() {
    let stop = CancellationToken::new();
    let url = reference_target_with(llm(5), None, &stop).await;
    let flow = AgentFlow::new(&flow_plan(&url, "fanout_one_thread"), &Default::default()).unwrap();
    let rec = Collector::default();
    assert_eq!(run(&flow, 1, 0, &rec).await, IterationOutcome::Success);
    let s = stats(&url).await;
    assert_eq!(s["runs"]["started"], 51, "{s}");
    assert_eq!(s["runs"]["succeeded"], 51, "{s}");
    // `enqueue`: the runtime runs one run of a thread at a time
    assert_eq!(s["runs_in_flight_peak"], 1, "{s}");
    assert_eq!(rec.count("fanout_run_duration", &[]), 50);
    stop.cancel();
}

#[tokio::test]
async fn chain_makes_20_dependent_runs_in_order_on_one_growing_thread() {
    let stop = CancellationToken::new();
    let url = reference_target_with(llm(0), None, &stop).await;
    let flow = AgentFlow::new(&flow_plan(&url, "chain"), &Default::default()).unwrap();
    let rec = Collector::default();
    assert_eq!(run(&flow, 1, 0, &rec).await, IterationOutcome::Success);
    let turns = rec.find("chain_turn_duration", &[]);
    let depths: Vec<String> = turns
        .iter()
        .map(|g| {
            g.tags
                .iter()
                .find(|(k, _)| k == "depth")
                .map(|(_, v)| v.clone())
                .unwrap()
        })
        .collect();
    let want: Vec<String> = (0..20).map(|d| d.to_string()).collect();
    assert_eq!(depths, want, "one turn per depth, in order");
    let s = stats(&url).await;
    assert_eq!(s["runs"]["started"], 20, "{s}");
    assert_eq!(s["llm"]["calls"], 20, "{s}");
    assert_eq!(s["threads"], 0, "the cleanup deleted the thread: {s}");
    // Turn k sends the whole history: k + 1 user messages of >= 5 words and k answers.
    // Without a growing history the 20 prompts would hold ~100 words.
    let prompt = s["llm"]["prompt_tokens"].as_u64().unwrap();
    assert!(prompt >= 5 * (1..=20).sum::<u64>(), "{s}");
    stop.cancel();
}

/// Runtime overhead: each of the 5 turns' latency splits into the mock's own time for its
/// call (the known delay) and the rest, the runtime's; the mock's call log agrees.
#[tokio::test]
async fn overhead_is_run_latency_minus_the_mock_time_of_its_calls() {
    let stop = CancellationToken::new();
    let (url, llm_url) = reference_target_and_llm(llm(100), None, &stop).await;
    let mut p = plan(&url, Duration::from_secs(30));
    p.flow.name = "overhead".into();
    let mut def = barrage_core::plan::builtin_flow("overhead").unwrap();
    def.vars.insert("llm_url".into(), llm_url.clone());
    p.flows.insert("overhead".into(), def);
    p.validate().unwrap();
    let flow = AgentFlow::new(&p, &Default::default()).unwrap();
    let rec = Collector::default();
    assert_eq!(run(&flow, 7, 3, &rec).await, IterationOutcome::Success);
    let op = &[("operation", "overhead_run")];
    let runs = rec.find("overhead_run", op);
    let calls = rec.find("llm_calls", op);
    let service = rec.find("llm_service_time", op);
    let overhead = rec.find("runtime_overhead", op);
    assert_eq!(
        (runs.len(), calls.len(), service.len(), overhead.len()),
        (5, 5, 5, 5)
    );
    for i in 0..5 {
        assert_eq!(calls[i].value, 1.0, "one LLM call per run");
        // the mock's 100 ms delay (service time: request head to last byte)
        let s = service[i].value;
        assert!(
            (100_000.0..200_000.0).contains(&s),
            "turn {i}: service {s} µs"
        );
        let (latency, o) = (runs[i].value, overhead[i].value);
        assert!(
            o >= 0.0 && o < latency,
            "turn {i}: overhead {o} of {latency}"
        );
        assert!(
            (latency - o - s).abs() <= 1.0,
            "latency − overhead is the mock's time: {latency} − {o} vs {s}"
        );
    }
    // the mock logged the 5 calls under the flow's keys, with these service times
    let log: Value = serde_json::from_slice(
        &reqwest::get(format!("{llm_url}/stats/calls"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    let keys: Vec<&str> = log["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(keys, ["7.3.0", "7.3.1", "7.3.2", "7.3.3", "7.3.4"], "{log}");
    let logged: f64 = log["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["service_us"].as_f64().unwrap())
        .sum();
    let recorded: f64 = service.iter().map(|g| g.value).sum();
    assert!((logged - recorded).abs() <= 5.0, "{logged} vs {recorded}");
    stop.cancel();
}

/// One call seen by the diamond's fake target.
#[derive(Debug, Clone)]
struct Call {
    content: String,
    start: Instant,
    end: Instant,
}

#[tokio::test]
async fn diamond_runs_b_and_c_together_and_d_after_both() {
    let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
    async fn answer(
        State(calls): State<Arc<Mutex<Vec<Call>>>>,
        Json(body): Json<Value>,
    ) -> Json<Value> {
        let content = body["input"]["messages"][0]["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let start = Instant::now();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let tag = content
            .split(',')
            .next()
            .unwrap_or_default()
            .split(':')
            .next()
            .unwrap_or_default()
            .to_owned();
        calls.lock().unwrap().push(Call {
            content: content.clone(),
            start,
            end: Instant::now(),
        });
        Json(json!({"messages": [
            {"type": "human", "content": content},
            {"type": "ai", "content": format!("answer-of-{tag}")}
        ]}))
    }
    let url = serve_router(
        Router::new()
            .route("/runs/wait", post(answer))
            .with_state(calls.clone()),
    )
    .await;
    let flow = AgentFlow::new(&flow_plan(&url, "diamond"), &Default::default()).unwrap();
    let rec = Collector::default();
    assert_eq!(run(&flow, 1, 0, &rec).await, IterationOutcome::Success);
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 4, "{calls:?}");
    let by = |p: &str| {
        calls
            .iter()
            .find(|c| c.content.starts_with(p))
            .unwrap()
            .clone()
    };
    let (a, b, c, d) = (by("A"), by("B"), by("C"), by("D"));
    assert!(b.start >= a.end && c.start >= a.end, "B and C wait for A");
    assert!(
        b.start < c.end && c.start < b.end,
        "B and C overlap: {b:?} {c:?}"
    );
    assert!(d.start >= b.end && d.start >= c.end, "D waits for B and C");
    assert!(b.content.contains("answer-of-A") && c.content.contains("answer-of-A"));
    assert!(
        d.content.contains("answer-of-B") && d.content.contains("answer-of-C"),
        "D reads B's and C's answers: {}",
        d.content
    );
}

#[tokio::test]
async fn recovery_retries_what_the_mock_broke() {
    let stop = CancellationToken::new();
    let url = reference_target_with(
        barrage_mock_llm::Config {
            error_rate: 0.2,
            ..llm(0)
        },
        None,
        &stop,
    )
    .await;
    let flow = AgentFlow::new(&flow_plan(&url, "recovery"), &Default::default()).unwrap();
    let rec = Collector::default();
    let iterations = 60;
    let mut ok = 0;
    for i in 0..iterations {
        if run(&flow, 1, i, &rec).await == IterationOutcome::Success {
            ok += 1;
        }
    }
    let s = stats(&url).await;
    let failed_runs = s["runs"]["failed"].as_u64().unwrap();
    assert!(failed_runs > 0, "the mock injected errors: {s}");
    // 5 attempts at 20 % errors: a run is lost with probability 0.2^5
    assert!(ok as f64 / iterations as f64 > 0.95, "{ok}/{iterations}");
    let retries = rec.sum("step_retries", &[("operation", "recover_run")]) as u64;
    let lost = iterations - ok;
    // every failed run is retried, except the last attempt of a lost iteration
    assert_eq!(retries, failed_runs - lost, "{s}");
    assert_eq!(
        s["runs"]["started"].as_u64().unwrap(),
        iterations + retries,
        "every attempt reached the runtime: {s}"
    );
    let attempts = rec.find("step_attempts", &[("operation", "recover_run")]);
    assert_eq!(attempts.len(), iterations as usize);
    let total: f64 = attempts.iter().map(|g| g.value).sum();
    assert_eq!(total as u64, iterations + retries);
    stop.cancel();
}

/// The patterns against the real LangGraph servers (Python `langgraph dev`, LangGraph.js)
/// started by `.ci/run` behind its mock LLM (`BARRAGE_TARGET_PY_URL`,
/// `BARRAGE_TARGET_JS_URL`; each one not set is a skip, a failure under `.ci/run`), so no
/// pattern depends on the reference runtime's quirks. The shared mock LLM answers
/// without errors, so recovery shows only that its retried step passes as is there.
#[tokio::test]
async fn patterns_against_real_langgraph_targets() {
    const TEST: &str = "patterns::patterns_against_real_langgraph_targets";
    let how = "run .ci/run, which starts both from deploy/targets/, or start one (deploy/targets/README.md) and export its URL";
    let targets: Vec<(&str, String)> = [
        ("py", "BARRAGE_TARGET_PY_URL"),
        ("js", "BARRAGE_TARGET_JS_URL"),
    ]
    .into_iter()
    .filter_map(|(name, var)| barrage_testkit::require_env(TEST, var, how).map(|u| (name, u)))
    .collect();
    let runs = targets.into_iter().map(|(name, url)| async move {
        let flow_of = |pattern: &str| {
            let mut p = plan(&url, Duration::from_secs(120));
            p.flow.name = pattern.into();
            p.validate().unwrap();
            AgentFlow::new(&p, &Default::default()).unwrap()
        };
        let all_passed = |rec: &Collector, what: &str| {
            assert_eq!(rec.sum("http_req_failed", &[]), 0.0, "{name}: {what}");
            let checks = rec.find("checks", &[]);
            assert!(!checks.is_empty() && checks.iter().all(|c| c.value == 1.0), "{name}: {what}: {checks:?}");
        };

        // chain: 20 turns on one thread, in depth order
        let rec = Collector::default();
        let out = run(&flow_of("chain"), 1, 0, &rec).await;
        assert_eq!(out, IterationOutcome::Success, "{name} ({url}): chain");
        let depths: Vec<String> = rec
            .find("chain_turn_duration", &[])
            .iter()
            .filter_map(|g| g.tags.iter().find(|(k, _)| k == "depth").map(|(_, v)| v.clone()))
            .collect();
        let want: Vec<String> = (0..20).map(|d| d.to_string()).collect();
        assert_eq!(depths, want, "{name}: one turn per depth, in order");
        assert_eq!(rec.count("cleanup", &[("operation", "delete_thread")]), 1, "{name}");
        all_passed(&rec, "chain");
        let chain_ms = rec.sum("chain_turn_duration", &[]) / 1000.0;

        // fan-out: 50 runs on 50 threads, all finished, each thread deleted
        let rec = Collector::default();
        let out = run(&flow_of("fanout"), 1, 1, &rec).await;
        assert_eq!(out, IterationOutcome::Success, "{name} ({url}): fanout");
        assert_eq!(rec.count("fanout_run_duration", &[]), 50, "{name}");
        assert_eq!(rec.count("cleanup", &[("operation", "fan_delete_thread")]), 50, "{name}");
        all_passed(&rec, "fanout");
        let wall = rec.find("fanout_wall", &[("group", "fan")]);
        let eff = rec.find("parallel_efficiency", &[("group", "fan")]);
        assert_eq!((wall.len(), eff.len()), (1, 1), "{name}");
        // the copies overlapped at least somewhat: the servers run runs concurrently
        assert!(eff[0].value > 1.5, "{name}: parallel efficiency {}", eff[0].value);

        // diamond: B and C read A's answer, D reads both
        let rec = Collector::default();
        let out = run(&flow_of("diamond"), 1, 2, &rec).await;
        assert_eq!(out, IterationOutcome::Success, "{name} ({url}): diamond");
        for op in ["dag_a", "dag_b", "dag_c", "dag_d"] {
            assert_eq!(rec.count("http_reqs", &[("operation", op)]), 1, "{name}: {op}");
        }
        all_passed(&rec, "diamond");

        // recovery: its retried run passes at the first attempt behind a healthy LLM
        let rec = Collector::default();
        let flow = flow_of("recovery");
        for i in 0..3 {
            let out = run(&flow, 1, 3 + i, &rec).await;
            assert_eq!(out, IterationOutcome::Success, "{name} ({url}): recovery {i}");
        }
        let attempts = rec.find("step_attempts", &[("operation", "recover_run")]);
        assert_eq!(attempts.len(), 3, "{name}");
        assert!(attempts.iter().all(|a| a.value == 1.0), "{name}: {attempts:?}");
        assert_eq!(rec.count("step_retries", &[]), 0, "{name}");
        all_passed(&rec, "recovery");
        println!(
            "{name}: chain 20 turns {chain_ms:.0} ms; fan-out of 50 wall {:.0} ms, parallel efficiency {:.1}",
            wall[0].value / 1000.0,
            eff[0].value
        );
    });
    futures_util::future::join_all(runs).await;
}

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

use crate::flow::{plan, reference_target_with, run, serve_router, Collector};

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

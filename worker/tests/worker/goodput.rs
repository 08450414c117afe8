//! `flow_goodput` (issue 12 §3) against the reference runtime with a 50 ms mock LLM: an
//! objective the LLM's delay allows gives goodput 1, one it cannot (`run_wait = "1ms"`)
//! gives 0 while every check passed (`agent_flow_success_rate` stays 1). The agent flow
//! runs as a real `barrage-worker --standalone` process; the patterns (fan-out copies, a
//! wave of parallel steps) and the one-request flow run in-process.
use std::time::Duration;

use barrage_worker::flow::AgentFlow;
use barrage_worker::sample::IterationOutcome;
use tokio_util::sync::CancellationToken;

use crate::flow::{plan, reference_target_with, run, Collector};
use crate::harness::{has_verdict, temp_file, Finished, Target, Worker};

const LIMIT: Duration = Duration::from_secs(60);

/// 2 VUs × 3 iterations of the agent flow, standalone, with this `[slo]` and thresholds.
fn agent_run(url: &str, slo: &str) -> Finished {
    let plan = format!(
        r#"name = "goodput"
[target]
url = "{url}"
[scenario]
executor = "per-vu-iterations"
vus = 2
iterations = 3
[thresholds]
flow_goodput = ["rate>0.95"]
agent_flow_success_rate = ["rate>0.95"]
[slo]
{slo}
"#
    );
    let plan = temp_file(&plan, ".toml");
    Worker::spawn(&["--standalone", "--plan", plan.as_str()], &[]).wait(LIMIT)
}

/// (rate, passes + fails) of a Rate in the summary.
fn rate(s: &serde_json::Value, metric: &str) -> (f64, u64) {
    let m = &s["metrics"][metric];
    let n = m["passes"]
        .as_u64()
        .unwrap_or_else(|| panic!("{metric}: {m}"))
        + m["fails"].as_u64().unwrap();
    (m["rate"].as_f64().unwrap(), n)
}

#[test]
fn agent_flow_goodput_follows_its_objectives_not_its_checks() {
    let target = Target::start_slow(Duration::from_millis(50));

    // the seed's objectives (no [slo] entries): a 50 ms LLM meets them all
    let out = agent_run(&target.url, "");
    assert_eq!(out.code(), Some(0), "{}", out.show());
    let s = out.summary();
    assert_eq!(rate(&s, "flow_goodput"), (1.0, 6), "{}", out.show());
    assert_eq!(rate(&s, "agent_flow_success_rate"), (1.0, 6));
    assert_eq!(
        s["slo"],
        serde_json::json!({"agent_flow_duration": 8000.0, "create_assistant": 500.0,
            "create_thread": 500.0, "run_wait": 5000.0})
    );
    assert!(
        out.stdout.contains(
            "goodput:  100.00% of 6 flows (SLO: agent_flow_duration 8s, create_assistant 500ms, create_thread 500ms, run_wait 5s)"
        ),
        "{}",
        out.show()
    );
    assert!(has_verdict(&out.stdout, "✓ flow_goodput 'rate>0.95'"));

    // runs/wait takes the LLM's 50 ms at least: no flow meets 1 ms, every check passes
    let out = agent_run(
        &target.url,
        "run_wait = \"1ms\"\ncreate_assistant = \"off\"",
    );
    assert_eq!(out.code(), Some(99), "{}", out.show());
    let s = out.summary();
    assert_eq!(rate(&s, "flow_goodput"), (0.0, 6), "{}", out.show());
    assert_eq!(rate(&s, "agent_flow_success_rate"), (1.0, 6));
    assert_eq!(s["metrics"]["checks"]["fails"], 0, "{}", out.show());
    assert_eq!(s["slo"]["run_wait"], 1.0);
    assert!(s["slo"].get("create_assistant").is_none(), "{}", s["slo"]);
    assert!(has_verdict(&out.stdout, "✗ flow_goodput 'rate>0.95'"));
    assert!(has_verdict(
        &out.stdout,
        "✓ agent_flow_success_rate 'rate>0.95'"
    ));
    assert!(
        out.stdout.contains("goodput:  0.00% of 6 flows (SLO: "),
        "{}",
        out.show()
    );

    // the stream's first AI content comes after the LLM's delay too
    let out = agent_run(&target.url, "stream_first_token = \"1ms\"");
    let s = out.summary();
    assert_eq!(rate(&s, "flow_goodput"), (0.0, 6), "{}", out.show());
    let out = agent_run(&target.url, "stream_first_token = \"5s\"");
    let s = out.summary();
    assert_eq!(rate(&s, "flow_goodput"), (1.0, 6), "{}", out.show());
}

fn llm(delay_ms: u64) -> barrage_mock_llm::Config {
    barrage_mock_llm::Config {
        delay: Duration::from_millis(delay_ms),
        stream_delay: Duration::from_millis(1),
        ..Default::default()
    }
}

/// The `flow_goodput` samples of `flow`'s iterations (1 good, 0 not).
async fn goodput_of(url: &str, name: &str, slo: &[(&str, &str)], iterations: u64) -> Vec<f64> {
    let mut p = plan(url, Duration::from_secs(30));
    p.flow.name = name.into();
    for (k, v) in slo {
        p.slo.0.insert(k.to_string(), v.to_string());
    }
    p.validate().unwrap();
    let flow = AgentFlow::new(&p, &Default::default()).unwrap();
    let rec = Collector::default();
    for i in 0..iterations {
        assert_eq!(run(&flow, 1, i, &rec).await, IterationOutcome::Success);
    }
    rec.find("flow_goodput", &[])
        .iter()
        .map(|g| g.value)
        .collect()
}

/// A copy of a fan-out group (or a step of a parallel wave) that misses its objective makes
/// the whole flow not good, although every copy passed.
#[tokio::test]
async fn a_pattern_flow_is_judged_by_each_copy() {
    let stop = CancellationToken::new();
    let url = reference_target_with(llm(50), None, &stop).await;
    let ok = [("fanout_run_duration", "10s")];
    let slow = [("fanout_run_duration", "1ms")];
    assert_eq!(goodput_of(&url, "fanout", &ok, 1).await, [1.0]);
    assert_eq!(goodput_of(&url, "fanout", &slow, 1).await, [0.0]);
    // dag_b runs beside dag_c, each on its own state, folded back after the wave
    assert_eq!(
        goodput_of(&url, "diamond", &[("dag_b", "1ms")], 2).await,
        [0.0, 0.0]
    );
    assert_eq!(
        goodput_of(&url, "diamond", &[("dag_b", "10s")], 2).await,
        [1.0, 1.0]
    );
    stop.cancel();
}

/// The one-request flow has no default objective: its goodput is its checks, and an
/// objective on `request` judges its duration.
#[tokio::test]
async fn a_one_request_flow_records_goodput() {
    let stop = CancellationToken::new();
    let url = reference_target_with(llm(0), None, &stop).await;
    let mut p = plan(&url, Duration::from_secs(30));
    p.flow.request = Some(barrage_core::RequestFlow {
        method: "POST".into(),
        path: "/runs/wait".into(),
        body: Some(
            r#"{"assistant_id":"agent","input":{"messages":[{"role":"user","content":"hi"}]}}"#
                .into(),
        ),
    });
    p.validate().unwrap();
    assert!(p.slo_objectives().is_empty());
    let flow = AgentFlow::new(&p, &Default::default()).unwrap();
    let rec = Collector::default();
    run(&flow, 1, 0, &rec).await;
    assert_eq!(rec.find("flow_goodput", &[])[0].value, 1.0);
    p.slo.0.insert("request".into(), "1us".into());
    p.validate().unwrap();
    let flow = AgentFlow::new(&p, &Default::default()).unwrap();
    let rec = Collector::default();
    run(&flow, 1, 0, &rec).await;
    assert_eq!(rec.find("flow_goodput", &[])[0].value, 0.0);
    stop.cancel();
}

//! Large agent inputs (issue 15 §3): `flow.history_bytes` sends a long conversation in
//! each run's input, the runtime hands the whole of it to its model, and a plan whose
//! answers cannot fit the worker's body limit is refused before it starts.
use std::collections::BTreeMap;
use std::time::Duration;

use barrage_core::Plan;
use barrage_worker::flow::AgentFlow;
use barrage_worker::sample::IterationOutcome;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::flow::{plan, reference_target_and_llm, run, Collector};

const HISTORY: u64 = 500 * 1024;

#[tokio::test]
async fn a_500_kb_history_reaches_the_model_whole() {
    let stop = CancellationToken::new();
    let llm = barrage_mock_llm::Config {
        delay: Duration::ZERO,
        stream_delay: Duration::ZERO,
        ..Default::default()
    };
    let (url, llm_url) = reference_target_and_llm(llm, None, &stop).await;
    let mut p = plan(&url, Duration::from_secs(20));
    p.flow.history_bytes = HISTORY;
    p.flow.response_body_limit = 2 << 20;
    p.validate().unwrap();
    let flow = AgentFlow::new(&p, &BTreeMap::new()).unwrap();
    let rec = Collector::default();
    assert_eq!(run(&flow, 1, 0, &rec).await, IterationOutcome::Success);
    let checks = rec.find("checks", &[]);
    assert!(checks.iter().all(|c| c.value == 1.0), "{checks:?}");
    for op in ["run_wait", "run_stream", "stateless_run"] {
        let sent = rec.sum("data_sent", &[("operation", op)]);
        assert!(sent > HISTORY as f64, "{op} sent {sent} bytes");
    }
    assert!(rec.sum("data_sent", &[("operation", "create_thread")]) < 1024.0);

    // The mock LLM's own record of the three model calls: each prompt holds the history
    // (the stream's also the thread's first run: twice), as messages.
    let calls = reqwest::get(format!("{llm_url}/stats/calls"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let calls: Value = serde_json::from_slice(&calls).unwrap();
    let calls = calls["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 3, "{calls:?}");
    let mut bytes: Vec<u64> = calls
        .iter()
        .map(|c| c["prompt_bytes"].as_u64().unwrap())
        .collect();
    bytes.sort_unstable();
    assert!(bytes[0] >= HISTORY, "{bytes:?}");
    assert!(
        bytes[2] >= 2 * HISTORY,
        "the thread's second run: {bytes:?}"
    );
    for c in calls {
        assert!(c["messages"].as_u64().unwrap() > 100, "{c}");
        assert!(c["prompt_tokens"].as_u64().unwrap() > HISTORY / 10, "{c}");
        assert_eq!(c["status"], 200, "{c}");
    }
    stop.cancel();
}

#[test]
fn history_bytes_is_validated_against_its_range_the_flow_and_the_body_limit() {
    let base = "name = \"h\"\n[target]\nurl = \"http://127.0.0.1:9\"\n[scenario]\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\n[flow]\n";
    let ok = Plan::from_toml_str(&format!("{base}history_bytes = 102400\n")).unwrap();
    assert_eq!(ok.flow.history_bytes, 102_400);
    let err = |extra: &str| {
        Plan::from_toml_str(&format!("{base}{extra}"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let small = err("history_bytes = 100\n");
    assert!(
        small.contains("flow.history_bytes") && small.contains("256"),
        "{small}"
    );
    // the agent flow sends it three times: 3 × 500 KB does not fit 1 MiB
    let limit = err(&format!("history_bytes = {HISTORY}\n"));
    assert!(
        limit.contains("flow.response_body_limit") && limit.contains("1601536"),
        "{limit}"
    );
    assert!(err(&format!(
        "history_bytes = {HISTORY}\nresponse_body_limit = 1601536\n"
    ))
    .is_empty());
    // a flow that sends no {history}
    let chain = err("history_bytes = 1024\nname = \"chain\"\n");
    assert!(
        chain.contains("flow.history_bytes") && chain.contains("{history}"),
        "{chain}"
    );
    let request = err("history_bytes = 1024\nrequest = { path = \"/ok\" }\n");
    assert!(request.contains("flow.request"), "{request}");
}

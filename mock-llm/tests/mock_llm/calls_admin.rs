//! The per-call log (`/stats/calls`) and run-time settings (`/admin/config`).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::endpoints::assert_openai_error;
use crate::harness::{client, Server};

/// A conversation of `turns` messages, as an agent sends it on its `turns`-th call.
fn conversation(turns: usize) -> Value {
    let messages: Vec<Value> = (0..turns)
        .map(|i| json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": format!("turn {i} says a few words")}))
        .collect();
    json!({"messages": messages})
}

#[tokio::test]
async fn the_call_log_gives_service_time_prompt_size_and_key() {
    let server = Server::start(&["--delay-ms", "30", "--stream-delay-ms", "2"]);
    let c = client();
    let mut latencies = Vec::new();
    for turn in 1..=5 {
        let mut body = conversation(turn);
        let mut req = c.post(server.url("/v1/chat/completions"));
        if turn % 2 == 0 {
            // The key can come as the body's `user` …
            body["user"] = "run-a".into();
        } else {
            // … or as a header the runtime forwards.
            req = req.header("x-barrage-key", "run-a");
        }
        if turn == 5 {
            body["stream"] = true.into();
        }
        let t0 = Instant::now();
        let res = req.json(&body).send().await.unwrap();
        assert_eq!(res.status(), 200);
        res.bytes().await.unwrap();
        latencies.push(t0.elapsed());
    }
    // A call of another run.
    let res = c
        .post(server.url("/v1/chat/completions"))
        .header("x-barrage-key", "run-b")
        .json(&conversation(1))
        .send()
        .await
        .unwrap();
    res.bytes().await.unwrap();

    let log = server.get_json(&c, "/stats/calls?key=run-a").await;
    let calls = log["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 5, "{log}");
    assert_eq!(log["total"], 6);
    let mut last_bytes = 0;
    for (i, call) in calls.iter().enumerate() {
        assert_eq!(call["key"], "run-a");
        assert_eq!(call["messages"], i + 1);
        let bytes = call["prompt_bytes"].as_u64().unwrap();
        assert!(
            bytes > last_bytes,
            "each prompt longer than the last: {log}"
        );
        last_bytes = bytes;
        assert_eq!(call["status"], 200);
        assert_eq!(call["end"], "complete");
        let service = Duration::from_micros(call["service_us"].as_u64().unwrap());
        // The mock's own time: at least its delay, at most what the client saw.
        assert!(service >= Duration::from_millis(30), "{call}");
        assert!(service <= latencies[i], "{call} vs {:?}", latencies[i]);
    }
    // The stream's service time includes its 42 chunks at 2 ms.
    assert_eq!(calls[4]["stream"], true);
    assert!(calls[4]["service_us"].as_u64().unwrap() >= 30_000 + 42 * 2_000);
    // Arrival order and Unix times are consistent.
    let received: Vec<u64> = calls
        .iter()
        .map(|c| c["received_us"].as_u64().unwrap())
        .collect();
    assert!(received.windows(2).all(|w| w[0] < w[1]), "{received:?}");
    assert!(calls[0]["received_unix_us"].as_u64().unwrap() > 1_700_000_000_000_000);

    let other = server.get_json(&c, "/stats/calls?key=run-b").await;
    assert_eq!(other["calls"].as_array().unwrap().len(), 1);
    let page = server.get_json(&c, "/stats/calls?since=4&limit=1").await;
    assert_eq!(page["calls"][0]["seq"], 4);
    assert_eq!(page["calls"].as_array().unwrap().len(), 1);

    let bad = c
        .get(server.url("/stats/calls?since=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let err: Value = bad.json().await.unwrap();
    assert!(err["error"]["message"].as_str().unwrap().contains("since"));
}

#[tokio::test]
async fn the_call_log_is_bounded() {
    let server = Server::start(&[
        "--delay-ms",
        "0",
        "--stream-delay-ms",
        "0",
        "--call-log-size",
        "3",
    ]);
    let c = client();
    for turn in 1..=5 {
        server
            .chat(&c, &conversation(turn))
            .await
            .bytes()
            .await
            .unwrap();
    }
    let log = server.get_json(&c, "/stats/calls").await;
    assert_eq!(log["capacity"], 3);
    assert_eq!(log["dropped"], 2);
    let messages: Vec<u64> = log["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["messages"].as_u64().unwrap())
        .collect();
    assert_eq!(messages, [3, 4, 5], "the newest are kept");
    let stats = server.get_json(&c, "/stats").await;
    assert_eq!(
        stats["call_log"],
        json!({"recorded": 5, "kept": 3, "capacity": 3})
    );
}

async fn latency(server: &Server, c: &reqwest::Client) -> Duration {
    let t0 = Instant::now();
    let res = server.chat(c, &conversation(1)).await;
    assert_eq!(res.status(), 200);
    res.bytes().await.unwrap();
    t0.elapsed()
}

#[tokio::test]
async fn admin_config_changes_the_delay_at_run_time() {
    let server = Server::start(&["--delay-ms", "10", "--stream-delay-ms", "0"]);
    let c = client();
    let before = latency(&server, &c).await;
    assert!(before < Duration::from_millis(150), "{before:?}");

    let res = c
        .post(server.url("/admin/config"))
        .json(&json!({"delay_ms": 200, "error_rate": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let now: Value = res.json().await.unwrap();
    assert_eq!(now["delay_ms"], 200);
    assert_eq!(
        now["stream_delay_ms"], 0,
        "untouched fields keep their value"
    );
    let after = latency(&server, &c).await;
    assert!(after >= Duration::from_millis(200), "{after:?}");

    // Invalid changes name every bad field and change nothing.
    let res = c
        .post(server.url("/admin/config"))
        .json(&json!({"delay_ms": 5, "error_rate": 1.5, "error_status": 418, "speed": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let err: Value = res.json().await.unwrap();
    assert_openai_error(&err, "invalid_request_error");
    let msg = err["error"]["message"].as_str().unwrap();
    for field in ["error_rate", "error_status", "speed", "nothing was changed"] {
        assert!(msg.contains(field), "{field} not in {msg}");
    }
    let current = server.get_json(&c, "/admin/config").await;
    assert_eq!(current["delay_ms"], 200);
    assert_eq!(current["error_rate"], 0.0);

    // Back to a short delay; /stats shows the current values and counts the changes.
    c.post(server.url("/admin/config"))
        .json(&json!({"delay_ms": "10"}))
        .send()
        .await
        .unwrap();
    assert!(latency(&server, &c).await < Duration::from_millis(150));
    let stats = server.get_json(&c, "/stats").await;
    assert_eq!(stats["delay_ms"], 10);
    assert_eq!(stats["settings"]["delay_ms"], 10);
    assert_eq!(stats["settings_changes"], 2);
    assert_eq!(stats["requests"]["admin"], 4);

    let res = c.delete(server.url("/admin/config")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "GET, POST");
}

#[tokio::test]
async fn admin_config_turns_errors_on_and_off() {
    let server = Server::start(&["--delay-ms", "0", "--stream-delay-ms", "0"]);
    let c = client();
    c.post(server.url("/admin/config"))
        .json(&json!({"error_rate": 1, "error_status": 503}))
        .send()
        .await
        .unwrap();
    assert_eq!(server.chat(&c, &conversation(1)).await.status(), 503);
    c.post(server.url("/admin/config"))
        .json(&json!({"error_rate": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(server.chat(&c, &conversation(1)).await.status(), 200);
    let stats = server.get_json(&c, "/stats").await;
    assert_eq!(stats["errors_injected"], 1);
    assert_eq!(stats["chat_errors"], 1);
}

//! Every endpoint's answer shape, and the server's own counters.

use serde_json::{json, Value};

use crate::harness::{chat_body, client, Server, CHAT_BODY_PROMPT_TOKENS, DEFAULT_RESPONSE};

#[tokio::test]
async fn health_models_metrics() {
    let server = Server::start(&["--model", "my-model"]);
    let c = client();

    let health = c.get(server.url("/health")).send().await.unwrap();
    assert_eq!(health.headers()["content-type"], "application/json");
    assert_eq!(
        health.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );

    let models = server.get_json(&c, "/v1/models").await;
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "my-model");
    assert_eq!(models["data"][0]["object"], "model");
    assert!(models["data"][0]["created"].as_u64().unwrap() > 1_600_000_000);

    let res = c.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = res.text().await.unwrap();
    for family in [
        "mock_llm_requests_total",
        "mock_llm_tokens_total",
        "mock_llm_errors_injected_total",
        "mock_llm_disconnects_injected_total",
        "mock_llm_in_flight",
        "mock_llm_uptime_seconds",
    ] {
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "{family} HELP missing:\n{text}"
        );
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family} TYPE missing:\n{text}"
        );
    }
    // The harness's /health poll, ours, models, and this metrics request (counted before
    // rendering).
    let health = text
        .lines()
        .find_map(|l| l.strip_prefix("mock_llm_requests_total{kind=\"health\"} "))
        .unwrap();
    assert!(health.parse::<u64>().unwrap() >= 2, "{text}");
    assert!(
        text.contains("mock_llm_requests_total{kind=\"models\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("mock_llm_requests_total{kind=\"metrics\"} 1\n"),
        "{text}"
    );
    // Every sample line parses as `name{labels} number`.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "bad sample line {line:?}");
    }
}

#[tokio::test]
async fn non_streaming_completion_shape_and_usage() {
    let server = Server::start(&[]);
    let c = client();
    let res = server.chat(&c, &chat_body(false, false)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let v: Value = res.json().await.unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"), "{v}");
    assert_eq!(v["object"], "chat.completion");
    assert!(v["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(v["model"], "gpt-test", "the request's model is echoed");
    let choice = &v["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], DEFAULT_RESPONSE);
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], CHAT_BODY_PROMPT_TOKENS);
    assert_eq!(v["usage"]["completion_tokens"], 42);
    assert_eq!(v["usage"]["total_tokens"], CHAT_BODY_PROMPT_TOKENS + 42);

    // Without a model in the request, the configured one; ids differ per answer.
    let body = json!({"messages": [{"role": "user", "content": "a b c d e"}]});
    let w: Value = server.chat(&c, &body).await.json().await.unwrap();
    assert_eq!(w["model"], "mock-gpt-4o");
    assert_eq!(w["usage"]["prompt_tokens"], 5);
    assert_ne!(w["id"], v["id"]);
}

#[tokio::test]
async fn custom_response_and_model_from_env() {
    let server = Server::start_with_env(
        &[],
        &[
            ("MOCK_LLM_RESPONSE", "Hello \"quoted\"\nworld"),
            ("MOCK_LLM_MODEL", "env-model"),
            ("MOCK_LLM_DELAY_MS", "0"),
        ],
    );
    let c = client();
    let body = json!({"messages": [{"role": "user", "content": "x"}]});
    let v: Value = server.chat(&c, &body).await.json().await.unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Hello \"quoted\"\nworld"
    );
    assert_eq!(v["model"], "env-model");
    assert_eq!(v["usage"]["completion_tokens"], 3);
}

#[tokio::test]
async fn stats_count_what_was_served() {
    let server = Server::start(&[
        "--delay-ms",
        "0",
        "--stream-delay-ms",
        "0",
        "--max-body-bytes",
        "1000",
    ]);
    let c = client();
    // The harness polled /health before handing the server over.
    let before = server.get_json(&c, "/stats").await;
    let h0 = before["requests"]["health"].as_u64().unwrap();
    assert!(h0 >= 1, "{before}");
    for _ in 0..3 {
        assert_eq!(
            server.chat(&c, &chat_body(false, false)).await.status(),
            200
        );
    }
    for _ in 0..2 {
        let res = server.chat(&c, &chat_body(true, true)).await;
        assert!(res.text().await.unwrap().ends_with("data: [DONE]\n\n"));
    }
    server.get_json(&c, "/v1/models").await;
    server.get_json(&c, "/health").await;
    assert_eq!(
        c.get(server.url("/nope")).send().await.unwrap().status(),
        404
    );
    assert_eq!(
        c.post(server.url("/v1/chat/completions"))
            .body("{")
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    let big = "x".repeat(2000);
    assert_eq!(
        c.post(server.url("/v1/chat/completions"))
            .body(big)
            .send()
            .await
            .unwrap()
            .status(),
        413
    );

    let stats = server.get_json(&c, "/stats").await;
    let r = &stats["requests"];
    assert_eq!(r["chat"], 3 + 2, "3 answered + 2 refused: {stats}");
    assert_eq!(r["chat_stream"], 2, "{stats}");
    assert_eq!(r["models"], 1, "{stats}");
    assert_eq!(r["health"], h0 + 1, "{stats}");
    assert_eq!(r["other"], 1, "{stats}");
    assert_eq!(r["stats"], 2, "{stats}");
    assert_eq!(
        stats["requests_total"],
        5 + 2 + 1 + (h0 + 1) + 1 + 2,
        "{stats}"
    );
    assert_eq!(stats["rejected"], 3, "{stats}");
    assert_eq!(stats["tokens_in"], 5 * CHAT_BODY_PROMPT_TOKENS, "{stats}");
    assert_eq!(stats["tokens_out"], 5 * 42, "{stats}");
    assert_eq!(stats["errors_injected"], 0);
    assert_eq!(stats["disconnects_injected"], 0);
    assert_eq!(
        stats["in_flight"], 1,
        "only the stats request itself: {stats}"
    );
    assert!(stats["uptime_s"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn unknown_path_is_404_and_wrong_method_is_405() {
    let server = Server::start(&[]);
    let c = client();
    // (method, path, status, allow)
    let cases: &[(&str, &str, u16, Option<&str>)] = &[
        ("GET", "/v1/completions", 404, None),
        ("POST", "/v2/chat/completions", 404, None),
        ("GET", "/", 404, None),
        ("GET", "/v1/chat/completions", 405, Some("POST")),
        ("PUT", "/v1/chat/completions", 405, Some("POST")),
        ("POST", "/v1/models", 405, Some("GET")),
        ("DELETE", "/health", 405, Some("GET")),
        ("POST", "/stats", 405, Some("GET")),
    ];
    for (method, path, status, allow) in cases {
        let res = c
            .request(method.parse().unwrap(), server.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), *status, "{method} {path}");
        assert_eq!(
            res.headers().get("allow").map(|v| v.to_str().unwrap()),
            *allow,
            "{method} {path}"
        );
        assert_eq!(res.headers()["content-type"], "application/json");
        let v: Value = res.json().await.unwrap();
        assert_openai_error(&v, "invalid_request_error");
    }
}

/// Asserts the OpenAI error shape `{"error":{"message","type","param","code"}}`.
pub fn assert_openai_error(v: &Value, kind: &str) {
    let e = v["error"]
        .as_object()
        .unwrap_or_else(|| panic!("no error object: {v}"));
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert_eq!(e["type"], kind, "{v}");
    assert!(e.contains_key("param") && e.contains_key("code"), "{v}");
}

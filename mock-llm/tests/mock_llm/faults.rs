//! Bad input, injected errors, injected disconnects, and tool calls.

use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::endpoints::assert_openai_error;
use crate::harness::{chat_body, client, parse_sse, Event, Server};

#[tokio::test]
async fn bad_requests_get_400() {
    let server = Server::start(&[]);
    let c = client();
    // (body, param)
    let cases: &[(&str, Value)] = &[
        ("{", Value::Null),
        ("not json", Value::Null),
        ("", Value::Null),
        ("[1,2]", Value::Null),
        ("{}", json!("messages")),
        (r#"{"messages":[]}"#, json!("messages")),
        (r#"{"model":"m"}"#, json!("messages")),
        (r#"{"messages":"hello"}"#, Value::Null),
        (
            r#"{"messages":[{"role":"user","content":"x"}],"stream":"yes"}"#,
            Value::Null,
        ),
    ];
    for (body, param) in cases {
        let res = c
            .post(server.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(*body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{body:?}");
        assert_eq!(res.headers()["content-type"], "application/json");
        let v: Value = res.json().await.unwrap();
        assert_openai_error(&v, "invalid_request_error");
        assert_eq!(v["error"]["param"], *param, "{body:?}: {v}");
    }
    let stats = server.get_json(&c, "/stats").await;
    assert_eq!(stats["rejected"], cases.len(), "{stats}");
    assert_eq!(stats["tokens_in"], 0, "{stats}");
}

#[tokio::test]
async fn oversize_bodies_get_413() {
    let server = Server::start(&["--max-body-bytes", "1024"]);
    let c = client();
    let pad = "word ".repeat(300);
    let big = json!({"messages": [{"role": "user", "content": pad}]});
    // With a content-length header.
    let res = server.chat(&c, &big).await;
    assert_eq!(res.status(), 413);
    assert_openai_error(&res.json().await.unwrap(), "invalid_request_error");
    // Chunked, without a length: the limit applies while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        vec![Ok(vec![b' '; 800]), Ok(vec![b' '; 800])];
    let res = c
        .post(server.url("/v1/chat/completions"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    // A body under the limit is fine.
    let small = json!({"messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(server.chat(&c, &small).await.status(), 200);
}

#[tokio::test]
async fn injected_errors_use_the_openai_shape() {
    // (status flag, expected status, error type)
    for (status, kind) in [
        ("429", "requests"),
        ("500", "server_error"),
        ("503", "server_error"),
    ] {
        let server = Server::start(&["--error-rate", "1.0", "--error-status", status]);
        let c = client();
        for stream in [false, true] {
            let res = server.chat(&c, &chat_body(stream, false)).await;
            assert_eq!(res.status().as_str(), status, "stream={stream}");
            assert_eq!(res.headers()["content-type"], "application/json");
            assert_openai_error(&res.json().await.unwrap(), kind);
        }
        let stats = server.get_json(&c, "/stats").await;
        assert_eq!(stats["errors_injected"], 2, "{stats}");
        assert_eq!(stats["tokens_out"], 0, "{stats}");
    }
}

#[tokio::test]
async fn error_rate_is_a_share() {
    let server = Server::start(&[
        "--error-rate",
        "0.5",
        "--delay-ms",
        "0",
        "--stream-delay-ms",
        "0",
    ]);
    let c = client();
    let mut errors = 0;
    for _ in 0..200 {
        let res = server.chat(&c, &chat_body(false, false)).await;
        if res.status() == 429 {
            errors += 1;
        } else {
            assert_eq!(res.status(), 200);
        }
        res.bytes().await.unwrap();
    }
    // Binomial(200, 0.5): 60..=140 fails with probability < 1e-8.
    assert!(
        (60..=140).contains(&errors),
        "{errors} of 200 failed at rate 0.5"
    );
    let stats = server.get_json(&c, "/stats").await;
    assert_eq!(stats["errors_injected"], errors, "{stats}");
}

/// Reads a body until it ends or fails: (bytes, whether it failed).
async fn read_until_cut(res: reqwest::Response) -> (String, bool) {
    let mut stream = res.bytes_stream();
    let mut data = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(bytes) => data.extend_from_slice(&bytes),
            Err(_) => return (String::from_utf8(data).unwrap(), true),
        }
    }
    (String::from_utf8(data).unwrap(), false)
}

#[tokio::test]
async fn disconnect_rate_cuts_streams_before_done() {
    for args in [
        ["--delay-ms", "0", "--stream-delay-ms", "1"],
        ["--delay-ms", "0", "--stream-delay-ms", "0"],
    ] {
        let mut all = vec!["--disconnect-rate", "1"];
        all.extend_from_slice(&args);
        let server = Server::start(&all);
        let c = client();
        for _ in 0..5 {
            let res = server.chat(&c, &chat_body(true, true)).await;
            assert_eq!(res.status(), 200);
            let (body, failed) = read_until_cut(res).await;
            assert!(failed, "{args:?}: the stream ended cleanly: {body:?}");
            assert!(!body.contains("[DONE]"), "{args:?}: {body}");
            let complete = &body[..body.rfind("\n\n").map_or(0, |i| i + 2)];
            let events = parse_sse(complete);
            assert!(
                !events.is_empty(),
                "{args:?}: at least one chunk comes before the cut"
            );
            assert!(events.iter().all(|e| matches!(e, Event::Chunk(_))));
        }
        // Non-streaming answers are never cut.
        assert_eq!(
            server.chat(&c, &chat_body(false, false)).await.status(),
            200
        );
        let stats = server.get_json(&c, "/stats").await;
        assert_eq!(stats["disconnects_injected"], 5, "{stats}");
    }
}

fn tool_request(stream: bool) -> Value {
    json!({
        "model": "gpt-test",
        "stream": stream,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "weather in Paris?"}],
        "tools": [
            {"type": "function", "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city", "days"]}
            }},
            {"type": "function", "function": {"name": "other", "parameters": {}}}
        ]
    })
}

#[tokio::test]
async fn tool_calls_at_rate_one() {
    let server = Server::start(&[
        "--tool-call-rate",
        "1",
        "--delay-ms",
        "0",
        "--stream-delay-ms",
        "1",
    ]);
    let c = client();

    let v: Value = server
        .chat(&c, &tool_request(false))
        .await
        .json()
        .await
        .unwrap();
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{v}");
    assert!(choice["message"]["content"].is_null());
    let call = &choice["message"]["tool_calls"][0];
    assert!(call["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "mock", "days": 1}));

    // Streamed in OpenAI's delta.tool_calls shape.
    let body = server
        .chat(&c, &tool_request(true))
        .await
        .text()
        .await
        .unwrap();
    let events = parse_sse(&body);
    let chunks: Vec<&Value> = events
        .iter()
        .filter_map(|e| match e {
            Event::Chunk(v) => Some(v),
            Event::Done => None,
        })
        .collect();
    assert!(matches!(events.last(), Some(Event::Done)));
    let head = &chunks[0]["choices"][0]["delta"];
    assert_eq!(head["role"], "assistant");
    assert_eq!(head["tool_calls"][0]["index"], 0);
    assert_eq!(head["tool_calls"][0]["function"]["name"], "get_weather");
    assert!(head["tool_calls"][0]["id"]
        .as_str()
        .unwrap()
        .starts_with("call_"));
    let mut arguments = String::new();
    for chunk in &chunks {
        if let Some(piece) =
            chunk["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
        {
            arguments.push_str(piece);
        }
    }
    assert_eq!(
        serde_json::from_str::<Value>(&arguments).unwrap(),
        json!({"city": "mock", "days": 1})
    );
    let finish: Vec<&Value> = chunks
        .iter()
        .map(|c| &c["choices"][0]["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finish, [&json!("tool_calls")]);
    assert!(
        chunks.last().unwrap()["usage"]["completion_tokens"]
            .as_u64()
            .unwrap()
            >= 1
    );

    // After a tool result, the model answers in text; without tools, always text.
    let mut follow_up = tool_request(false);
    follow_up["messages"] = json!([
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
    ]);
    let v: Value = server.chat(&c, &follow_up).await.json().await.unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "stop", "{v}");
    let v: Value = server
        .chat(&c, &chat_body(false, false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "stop", "{v}");

    let stats = server.get_json(&c, "/stats").await;
    assert_eq!(stats["tool_calls"], 2, "{stats}");
}

#[tokio::test]
async fn tool_call_rate_zero_never_calls() {
    let server = Server::start(&["--delay-ms", "0"]);
    let c = client();
    for _ in 0..10 {
        let v: Value = server
            .chat(&c, &tool_request(false))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
    }
}

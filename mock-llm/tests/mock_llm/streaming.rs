//! SSE streams: chunk order, content, usage, pacing, zero-delay mode.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{
    chat_body, client, joined_content, parse_sse, Event, Server, CHAT_BODY_PROMPT_TOKENS,
    DEFAULT_RESPONSE,
};

fn chunk(e: &Event) -> &Value {
    match e {
        Event::Chunk(v) => v,
        Event::Done => panic!("expected a chunk, got [DONE]"),
    }
}

/// Checks the full order: role first, one word per chunk, stop, (usage), [DONE].
fn assert_stream_order(events: &[Event], include_usage: bool) {
    let words = DEFAULT_RESPONSE.split_whitespace().count();
    let expected = words + 1 + usize::from(include_usage) + 1;
    assert_eq!(events.len(), expected, "{events:?}");
    let first = chunk(&events[0]);
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    let id = first["id"].as_str().unwrap();
    assert!(id.starts_with("chatcmpl-"));
    for (i, e) in events[..words].iter().enumerate() {
        let c = chunk(e);
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["id"], id, "one id per stream");
        assert_eq!(c["model"], "gpt-test");
        assert!(c["choices"][0]["finish_reason"].is_null());
        let piece = c["choices"][0]["delta"]["content"].as_str().unwrap();
        assert_eq!(
            piece.split_whitespace().count(),
            1,
            "chunk {i} is one word: {piece:?}"
        );
        if i > 0 {
            assert!(
                c["choices"][0]["delta"].get("role").is_none(),
                "role only in the first chunk"
            );
            assert!(
                piece.starts_with(' '),
                "chunk {i} carries its space: {piece:?}"
            );
        }
    }
    let stop = chunk(&events[words]);
    assert_eq!(stop["choices"][0]["finish_reason"], "stop");
    assert_eq!(stop["choices"][0]["delta"], serde_json::json!({}));
    if include_usage {
        let usage = chunk(&events[words + 1]);
        assert_eq!(usage["choices"].as_array().unwrap().len(), 0);
        assert_eq!(usage["usage"]["prompt_tokens"], CHAT_BODY_PROMPT_TOKENS);
        assert_eq!(usage["usage"]["completion_tokens"], 42);
        assert_eq!(usage["usage"]["total_tokens"], CHAT_BODY_PROMPT_TOKENS + 42);
    }
    assert!(matches!(events.last(), Some(Event::Done)));
    assert_eq!(joined_content(events), DEFAULT_RESPONSE);
}

#[tokio::test]
async fn stream_order_and_content() {
    let server = Server::start(&["--delay-ms", "1", "--stream-delay-ms", "1"]);
    let c = client();
    for include_usage in [true, false] {
        let res = server.chat(&c, &chat_body(true, include_usage)).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        assert_eq!(res.headers()["cache-control"], "no-cache");
        let body = res.text().await.unwrap();
        assert_stream_order(&parse_sse(&body), include_usage);
    }
}

/// Reads a stream to its end and returns how long it took from sending the request.
async fn timed_stream(server: &Server, c: &reqwest::Client) -> Duration {
    let t0 = Instant::now();
    let res = server.chat(c, &chat_body(true, true)).await;
    let body = res.text().await.unwrap();
    let took = t0.elapsed();
    assert_stream_order(&parse_sse(&body), true);
    took
}

#[tokio::test]
async fn default_delays_pace_the_stream() {
    // Defaults: 10 ms before the first byte, 5 ms between chunks: 10 + 42 * 5 = 220 ms.
    let server = Server::start(&[]);
    let c = client();
    let ideal = Duration::from_millis(10 + 42 * 5);
    timed_stream(&server, &c).await; // warm the connection
    let mut times = Vec::new();
    for _ in 0..3 {
        times.push(timed_stream(&server, &c).await);
    }
    for t in &times {
        assert!(
            *t >= ideal.mul_f64(0.95),
            "stream took {t:?}, faster than the ideal {ideal:?}: {times:?}"
        );
    }
    // How close to the ideal the pacing gets is a performance figure:
    // bench/mock-llm/pacing.py prints it.

    // Non-streaming waits the first-byte delay only.
    let t0 = Instant::now();
    let res = server.chat(&c, &chat_body(false, false)).await;
    res.bytes().await.unwrap();
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(9),
        "non-streaming took {took:?}, less than the 10 ms delay"
    );
}

#[tokio::test]
async fn jitter_only_adds_delay() {
    let server = Server::start(&[
        "--delay-ms",
        "20",
        "--jitter-ms",
        "30",
        "--stream-delay-ms",
        "0",
    ]);
    let c = client();
    for _ in 0..5 {
        let t0 = Instant::now();
        server
            .chat(&c, &chat_body(false, false))
            .await
            .bytes()
            .await
            .unwrap();
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(19),
            "{took:?} is below the 20 ms base delay"
        );
    }
}

#[tokio::test]
async fn zero_delay_mode_is_fast_and_sends_one_frame() {
    let server = Server::start_with_env(
        &[],
        &[
            ("MOCK_LLM_DELAY_MS", "0"),
            ("MOCK_LLM_STREAM_DELAY_MS", "0"),
        ],
    );
    let c = client();
    for _ in 0..20 {
        let res = server.chat(&c, &chat_body(true, true)).await;
        // The whole stream is one body frame, so hyper can announce its length.
        assert!(
            res.headers().contains_key("content-length"),
            "{:?}",
            res.headers()
        );
        assert_stream_order(&parse_sse(&res.text().await.unwrap()), true);
        server
            .chat(&c, &chat_body(false, false))
            .await
            .bytes()
            .await
            .unwrap();
    }
    // Their speed is a performance figure: bench/mock-llm/pacing.py prints it.
}

#[tokio::test]
async fn single_threaded_runtime_serves_concurrent_streams() {
    let server = Server::start(&[
        "--threads",
        "1",
        "--delay-ms",
        "10",
        "--stream-delay-ms",
        "2",
    ]);
    let c = client();
    let streams: Vec<_> = (0..50)
        .map(|_| {
            let c = c.clone();
            let url = server.url("/v1/chat/completions");
            tokio::spawn(async move {
                let res = c
                    .post(url)
                    .json(&chat_body(true, true))
                    .send()
                    .await
                    .unwrap();
                res.text().await.unwrap()
            })
        })
        .collect();
    for s in streams {
        assert_stream_order(&parse_sse(&s.await.unwrap()), true);
    }
    // That they overlap (50 in ~0.1 s, not 4.7 s in sequence) is a performance figure:
    // bench/mock-llm/pacing.py prints it.
}

//! Model mode: queueing beyond the slot limit, TTFT by prompt length, the token rate under
//! load, 429 with `retry-after` when the queue is full; and what `/stats` says of it.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::endpoints::assert_openai_error;
use crate::harness::{chat_body, client, Server};

/// A non-streamed request with a prompt of `words` words; (status, latency).
async fn timed_chat(server: &Server, c: &reqwest::Client, words: usize) -> (u16, Duration) {
    let body = json!({"messages": [{"role": "user", "content": "w ".repeat(words)}]});
    let t0 = Instant::now();
    let res = server.chat(c, &body).await;
    let status = res.status().as_u16();
    res.bytes().await.unwrap();
    (status, t0.elapsed())
}

fn calls(doc: &Value) -> &Vec<Value> {
    doc["calls"].as_array().unwrap()
}

#[tokio::test]
async fn queueing_delay_appears_when_concurrency_exceeds_the_limit() {
    // A generation: 100 ms to first token + 5 tokens at 1000/s = 105 ms.
    let server = Server::start(&[
        "--mode",
        "model",
        "--max-concurrency",
        "2",
        "--queue-size",
        "10",
        "--ttft-ms",
        "100",
        "--ttft-per-token-us",
        "0",
        "--tokens-per-s",
        "1000",
        "--response",
        "a b c d e",
    ]);
    let c = client();
    // Within the limit: no queueing.
    let alone = futures_util::future::join_all((0..2).map(|_| timed_chat(&server, &c, 1))).await;
    for (status, took) in &alone {
        assert_eq!(*status, 200);
        assert!(*took >= Duration::from_millis(105), "{took:?}");
    }
    let stats = server.get_json(&c, "/stats").await;
    assert_eq!(stats["generations"]["queue_wait_ms"]["max"], 0.0, "{stats}");

    // Six at once on two slots: three waves, about 105, 210 and 315 ms.
    let mut took: Vec<Duration> =
        futures_util::future::join_all((0..6).map(|_| timed_chat(&server, &c, 1)))
            .await
            .into_iter()
            .map(|(status, t)| {
                assert_eq!(status, 200);
                t
            })
            .collect();
    took.sort();
    assert!(took[5] >= Duration::from_millis(310), "{took:?}");
    assert!(took[2] >= Duration::from_millis(205), "{took:?}");

    let stats = server.get_json(&c, "/stats").await;
    let g = &stats["generations"];
    assert_eq!(stats["mode"], "model");
    assert_eq!(g["max_concurrency"], 2);
    assert_eq!(g["queued"], 0, "{stats}");
    assert_eq!(g["in_flight"], 0, "{stats}");
    assert_eq!(g["queue_wait_ms"]["count"], 8, "{stats}");
    assert!(
        g["queue_wait_ms"]["max"].as_f64().unwrap() >= 200.0,
        "the last wave waited two generations: {stats}"
    );
    // The call log says which calls waited, and by how much.
    let log = server.get_json(&c, "/stats/calls?since=2").await;
    let mut waits: Vec<u64> = calls(&log)
        .iter()
        .map(|c| c["queue_us"].as_u64().unwrap() / 1000)
        .collect();
    waits.sort();
    assert_eq!(waits.len(), 6, "{log}");
    assert!(
        waits[1] < 50 && waits[2] >= 95 && waits[4] >= 195,
        "{waits:?}"
    );

    let text = c
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "mock_llm_generations_in_flight 0\n",
        "mock_llm_queue_length 0\n",
        "mock_llm_queue_wait_seconds_count 8\n",
        "# TYPE mock_llm_queue_wait_seconds histogram\n",
    ] {
        assert!(text.contains(line), "{line:?} missing:\n{text}");
    }
}

#[tokio::test]
async fn time_to_first_token_grows_with_the_prompt() {
    // ttft = 50 ms + 1 ms per prompt token.
    let server = Server::start(&[
        "--mode",
        "model",
        "--ttft-ms",
        "50",
        "--ttft-per-token-us",
        "1000",
        "--tokens-per-s",
        "100000",
    ]);
    let c = client();
    let (_, short) = timed_chat(&server, &c, 1).await;
    let (_, long) = timed_chat(&server, &c, 200).await;
    assert!(short >= Duration::from_millis(51), "{short:?}");
    assert!(long >= Duration::from_millis(250), "{long:?}");
    let log = server.get_json(&c, "/stats/calls").await;
    let first: Vec<u64> = calls(&log)
        .iter()
        .map(|c| c["first_byte_us"].as_u64().unwrap() / 1000)
        .collect();
    let tokens: Vec<u64> = calls(&log)
        .iter()
        .map(|c| c["prompt_tokens"].as_u64().unwrap())
        .collect();
    assert_eq!(tokens, [1, 200]);
    // The server's own figure: 50 + tokens ms, plus the 42 answer tokens at 100000/s.
    assert!((51..60).contains(&first[0]), "{first:?}");
    assert!((250..260).contains(&first[1]), "{first:?}");
}

/// Of one stream: (first chunk to last, request sent to last chunk, `data:` events).
async fn stream_span(url: String, c: reqwest::Client) -> (Duration, Duration, usize) {
    let t0 = Instant::now();
    let res = c
        .post(url)
        .json(&chat_body(true, false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut body = res.bytes_stream();
    let mut first = None;
    let mut last = Instant::now();
    let mut events = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap();
        let now = Instant::now();
        first.get_or_insert(now);
        last = now;
        events += chunk.windows(6).filter(|w| w == b"data: ").count();
    }
    (last - first.unwrap(), last - t0, events)
}

#[tokio::test]
async fn the_token_rate_holds_under_load() {
    // 100 tokens/s: the 42-word answer plus the stop chunk spans 42 × 10 ms = 420 ms.
    let server = Server::start(&[
        "--mode",
        "model",
        "--max-concurrency",
        "200",
        "--ttft-ms",
        "20",
        "--ttft-per-token-us",
        "0",
        "--tokens-per-s",
        "100",
    ]);
    let c = client();
    let ideal = Duration::from_millis(420);
    let tasks: Vec<_> = (0..100)
        .map(|_| tokio::spawn(stream_span(server.url("/v1/chat/completions"), c.clone())))
        .collect();
    let mut spans = Vec::new();
    for t in tasks {
        let (span, total, events) = t.await.unwrap();
        assert_eq!(events, 44, "42 words, stop, [DONE]");
        // Never faster than the rate: the last chunk is due 20 ms + 420 ms after arrival.
        assert!(total >= Duration::from_millis(440), "{total:?}");
        spans.push(span);
    }
    spans.sort();
    let median = spans[spans.len() / 2];
    assert!(
        median <= ideal.mul_f64(1.5),
        "median {median:?} of 100 concurrent streams at 100 tokens/s (ideal {ideal:?})"
    );
    let stats = server.get_json(&c, "/stats").await;
    assert_eq!(stats["generations"]["queue_full"], 0, "{stats}");
    assert_eq!(stats["requests"]["chat_stream"], 100, "{stats}");
}

#[tokio::test]
async fn a_full_queue_answers_429_with_retry_after() {
    // One slot, one queue place, 400 ms per generation: the third request is refused.
    let server = Server::start(&[
        "--mode",
        "model",
        "--max-concurrency",
        "1",
        "--queue-size",
        "1",
        "--ttft-ms",
        "400",
        "--tokens-per-s",
        "1000",
    ]);
    let c = client();
    let running = tokio::spawn(timed_chat_owned(
        server.url("/v1/chat/completions"),
        c.clone(),
    ));
    let queued = tokio::spawn(timed_chat_owned(
        server.url("/v1/chat/completions"),
        c.clone(),
    ));
    // Both are in (one running, one waiting) before the third is sent.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let g = server.get_json(&c, "/stats").await["generations"].clone();
        if g["in_flight"] == 1 && g["queued"] == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never saw 1 running + 1 queued: {g}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let text = c
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("mock_llm_queue_length 1\n"), "{text}");
    assert!(
        text.contains("mock_llm_generations_in_flight 1\n"),
        "{text}"
    );

    let refused = server.chat(&c, &chat_body(true, false)).await;
    assert_eq!(refused.status(), 429);
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1, "{retry}");
    let err: Value = refused.json().await.unwrap();
    assert_openai_error(&err, "requests");
    assert_eq!(err["error"]["code"], "rate_limit_exceeded");

    assert_eq!(running.await.unwrap(), 200);
    assert_eq!(queued.await.unwrap(), 200);
    let stats = server.get_json(&c, "/stats").await;
    assert_eq!(stats["generations"]["queue_full"], 1, "{stats}");
    assert_eq!(stats["chat_errors"], 1, "{stats}");
    assert_eq!(stats["calls_total"], 3, "{stats}");
    let log = server.get_json(&c, "/stats/calls").await;
    let statuses: Vec<u64> = calls(&log)
        .iter()
        .map(|c| c["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [429, 200, 200], "completion order: {log}");
}

async fn timed_chat_owned(url: String, c: reqwest::Client) -> u16 {
    let res = c
        .post(url)
        .json(&chat_body(false, false))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    res.bytes().await.unwrap();
    status
}

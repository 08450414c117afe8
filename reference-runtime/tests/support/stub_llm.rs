//! `StubLlm`: a tiny OpenAI-compatible LLM served from the test process on
//! 127.0.0.1:0, answering `/v1/chat/completions` streamed (CRLF SSE, usage chunk,
//! `[DONE]`) and not, counting calls, and optionally failing, or holding each
//! answer until the test opens its gate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

/// The stub's answer: seven words, so seven content chunks when streamed.
pub const ANSWER: &str = "stub answer with exactly seven words";

/// What the stub LLM does.
#[derive(Default)]
pub struct StubBehaviour {
    /// Answer every call with this status and an error body.
    pub fail_status: Option<u16>,
    /// Wait this long before answering.
    pub delay: Duration,
    /// When set, each call takes one permit before answering: the test decides
    /// when the LLM answers.
    pub gate: Option<Arc<Semaphore>>,
}

#[derive(Default)]
pub struct StubCounts {
    pub calls: AtomicU64,
    pub streamed: AtomicU64,
    /// Models named in requests, and whether each call carried the bearer key.
    pub models: Mutex<Vec<String>>,
    pub bad_auth: AtomicU64,
}

pub struct StubLlm {
    pub base_url: String,
    pub counts: Arc<StubCounts>,
    pub task: tokio::task::JoinHandle<()>,
}

impl Drop for StubLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StubLlm {
    pub async fn start(behaviour: StubBehaviour) -> Self {
        let counts = Arc::new(StubCounts::default());
        let state = (Arc::new(behaviour), counts.clone());
        let app = axum::Router::new()
            .route("/v1/chat/completions", axum::routing::post(stub_chat))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            base_url: format!("http://{addr}/v1"),
            counts,
            task,
        }
    }

    pub fn calls(&self) -> u64 {
        self.counts.calls.load(Ordering::SeqCst)
    }

    pub fn streamed(&self) -> u64 {
        self.counts.streamed.load(Ordering::SeqCst)
    }
}

pub type StubState = (Arc<StubBehaviour>, Arc<StubCounts>);

pub async fn stub_chat(
    State((behaviour, counts)): State<StubState>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    counts.calls.fetch_add(1, Ordering::SeqCst);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer test-key") {
        counts.bad_auth.fetch_add(1, Ordering::SeqCst);
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = request["model"].as_str().unwrap_or("").to_owned();
    counts.models.lock().unwrap().push(model.clone());
    if let Some(gate) = &behaviour.gate {
        gate.acquire().await.expect("gate closed").forget();
    }
    if !behaviour.delay.is_zero() {
        tokio::time::sleep(behaviour.delay).await;
    }
    if let Some(status) = behaviour.fail_status {
        let status = StatusCode::from_u16(status).unwrap();
        return (
            status,
            axum::Json(json!({"error": {"message": "stub failure"}})),
        )
            .into_response();
    }
    let usage = json!({"prompt_tokens": 3, "completion_tokens": 7, "total_tokens": 10});
    if request["stream"] != json!(true) {
        return axum::Json(json!({
            "id": "chatcmpl-stub", "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}],
            "usage": usage,
        }))
        .into_response();
    }
    counts.streamed.fetch_add(1, Ordering::SeqCst);
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-stub", "object": "chat.completion.chunk", "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    for (i, word) in ANSWER.split(' ').enumerate() {
        let text = if i == 0 {
            word.to_owned()
        } else {
            format!(" {word}")
        };
        events.push(chunk(json!({"content": text}), Value::Null));
    }
    events.push(chunk(json!({}), json!("stop")));
    if request["stream_options"]["include_usage"] == json!(true) {
        events.push(json!({"id": "chatcmpl-stub", "object": "chat.completion.chunk", "model": model, "choices": [], "usage": usage}));
    }
    // CRLF on purpose: the runtime must read either line end.
    let mut frames: Vec<Result<Bytes, std::convert::Infallible>> = events
        .iter()
        .map(|e| Ok(Bytes::from(format!("data: {e}\r\n\r\n"))))
        .collect();
    frames.push(Ok(Bytes::from_static(b"data: [DONE]\r\n\r\n")));
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(futures_util::stream::iter(frames)))
        .unwrap()
}

/// Chunks the stub streams for one answer: role, one per word, finish, usage.
pub fn stub_chunk_count() -> usize {
    ANSWER.split(' ').count() + 3
}

/// A loopback URL where nothing listens.
pub fn dead_llm_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/v1")
}

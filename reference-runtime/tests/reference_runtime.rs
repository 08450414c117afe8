//! Integration tests: the real `barrage-reference-runtime` binary on 127.0.0.1,
//! talking to a stub OpenAI-compatible LLM served from this test process.
//!
//! Layout: `StubLlm` (the LLM, counting calls), `Server` (a child process, killed on
//! drop, whose output is printed when it misbehaves), `Http` (a small client), then
//! the tests. Nothing sleeps to synchronise: the tests wait on the `listening on`
//! line, on process exit, or poll the server.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_barrage-reference-runtime");
const ANSWER: &str = "stub answer with exactly seven words";

// ---------------------------------------------------------------- stub LLM

/// What the stub LLM does.
#[derive(Default)]
struct StubBehaviour {
    /// Answer every call with this status and an error body.
    fail_status: Option<u16>,
    /// Wait this long before answering.
    delay: Duration,
}

#[derive(Default)]
struct StubCounts {
    calls: AtomicU64,
    streamed: AtomicU64,
    /// Models named in requests, and whether each call carried the bearer key.
    models: Mutex<Vec<String>>,
    bad_auth: AtomicU64,
}

struct StubLlm {
    base_url: String,
    counts: Arc<StubCounts>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StubLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StubLlm {
    async fn start(behaviour: StubBehaviour) -> Self {
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

    fn calls(&self) -> u64 {
        self.counts.calls.load(Ordering::SeqCst)
    }

    fn streamed(&self) -> u64 {
        self.counts.streamed.load(Ordering::SeqCst)
    }
}

type StubState = (Arc<StubBehaviour>, Arc<StubCounts>);

async fn stub_chat(
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
fn stub_chunk_count() -> usize {
    ANSWER.split(' ').count() + 3
}

/// A loopback URL where nothing listens.
fn dead_llm_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/v1")
}

// ---------------------------------------------------------------- server process

struct Server {
    child: Child,
    base: String,
    args: Vec<String>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

/// Variables the child must not inherit from the test's environment.
const CLEARED_ENV: &[&str] = &[
    "PORT",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "MODEL_NAME",
    "SUPABASE_JWT_SECRET",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
];

fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for name in CLEARED_ENV {
        cmd.env_remove(name);
    }
    cmd.env("RUST_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Copies a child's output into `into`; the first line also goes to `first_line`.
fn drain(
    from: impl Read + Send + 'static,
    into: Arc<Mutex<String>>,
    first_line: Option<mpsc::Sender<String>>,
) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(from);
        if let Some(tx) = first_line {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) > 0 {
                into.lock().unwrap().push_str(&line);
                let _ = tx.send(line);
            }
        }
        let mut rest = String::new();
        let _ = reader.read_to_string(&mut rest);
        into.lock().unwrap().push_str(&rest);
    });
}

impl Server {
    fn start(llm_url: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut all_args = vec!["--port", "0", "--openai-api-key", "test-key"];
        all_args.extend_from_slice(args);
        let mut env = env.to_vec();
        env.push(("OPENAI_BASE_URL", llm_url));
        let mut child = command(&all_args, &env)
            .spawn()
            .expect("spawn barrage-reference-runtime");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        drain(child.stdout.take().unwrap(), stdout.clone(), Some(tx));
        drain(child.stderr.take().unwrap(), stderr.clone(), None);
        let mut server = Self {
            child,
            base: String::new(),
            args: all_args.iter().map(|s| s.to_string()).collect(),
            stdout,
            stderr,
        };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if line.starts_with("listening on http://127.0.0.1:") => {
                server.base = line.trim().trim_start_matches("listening on ").to_owned();
            }
            other => server.fail(&format!("no `listening on` line (got {other:?})")),
        }
        server
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Panics with everything known about the process.
    fn fail(&mut self, why: &str) -> ! {
        let _ = self.child.kill();
        let status = self.child.wait();
        panic!(
            "barrage-reference-runtime: {why}\nargs: {:?}\nstatus: {status:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.args,
            self.stdout.lock().unwrap(),
            self.stderr.lock().unwrap()
        );
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit by polling `try_wait`.
    fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if start.elapsed() > limit {
                self.fail("did not exit in time");
            }
            std::thread::yield_now();
            std::thread::park_timeout(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- HTTP helpers

#[derive(Clone)]
struct Http {
    client: reqwest::Client,
    token: Option<String>,
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// `(event, data)` pairs of an SSE body.
    fn events(&self) -> Vec<(String, Value)> {
        let text = self.text();
        text.split("\n\n")
            .filter(|block| !block.trim().is_empty())
            .map(|block| {
                let mut event = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(e) = line.strip_prefix("event: ") {
                        event = e.to_owned();
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data.push_str(d);
                    }
                }
                (
                    event,
                    serde_json::from_str(&data)
                        .unwrap_or_else(|e| panic!("bad data {data:?}: {e}")),
                )
            })
            .collect()
    }

    fn event_names(&self) -> Vec<String> {
        self.events().into_iter().map(|(e, _)| e).collect()
    }
}

impl Http {
    fn new() -> Self {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        Self {
            client,
            token: None,
        }
    }

    fn with_token(&self, token: &str) -> Self {
        Self {
            client: self.client.clone(),
            token: Some(token.to_owned()),
        }
    }

    async fn send(&self, method: reqwest::Method, url: &str, body: Option<Vec<u8>>) -> Answer {
        let mut request = self.client.request(method, url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap();
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, url: &str) -> Answer {
        self.send(reqwest::Method::GET, url, None).await
    }

    async fn post(&self, url: &str, body: &Value) -> Answer {
        self.send(
            reqwest::Method::POST,
            url,
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    async fn put(&self, url: &str, body: &Value) -> Answer {
        self.send(
            reqwest::Method::PUT,
            url,
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    async fn delete(&self, url: &str, body: Option<&Value>) -> Answer {
        self.send(
            reqwest::Method::DELETE,
            url,
            body.map(|b| b.to_string().into_bytes()),
        )
        .await
    }

    async fn raw_post(&self, url: &str, body: &str) -> Answer {
        self.send(reqwest::Method::POST, url, Some(body.as_bytes().to_vec()))
            .await
    }
}

fn expect(answer: &Answer, status: u16, what: &str) {
    assert_eq!(answer.status, status, "{what}: body {}", answer.text());
}

fn user(text: &str) -> Value {
    json!({"messages": [{"role": "user", "content": text}]})
}

// ---------------------------------------------------------------- the flow

/// What one pass of [`flow`] did, for comparing with `/stats`.
#[derive(Default, Clone, Copy)]
struct FlowCounts {
    llm_calls: u64,
}

/// barrage's 8-step flow with every check that `check_flow.sh` makes, plus the
/// shapes WIRE.md documents for py.
async fn flow(http: &Http, server_base: &str, tag: &str) -> FlowCounts {
    let url = |p: &str| format!("{server_base}{p}");
    // 1. assistant
    let a = http
        .post(&url("/assistants"), &json!({"graph_id": "agent", "config": {"configurable": {"model_name": "openai:stub-model"}}, "name": "bench", "metadata": {"source": "barrage"}}))
        .await;
    expect(&a, 200, "create_assistant");
    assert!(a.content_type().starts_with("application/json"));
    let a = a.json();
    let assistant_id = a["assistant_id"].as_str().expect("assistant_id").to_owned();
    assert_eq!(a["context"], json!({"model_name": "openai:stub-model"}));
    assert_eq!(
        (
            a["version"].clone(),
            a["graph_id"].clone(),
            a["name"].clone()
        ),
        (json!(1), json!("agent"), json!("bench"))
    );
    // 2. thread
    let t = http
        .post(
            &url("/threads"),
            &json!({"metadata": {"source": "barrage"}}),
        )
        .await;
    expect(&t, 200, "create_thread");
    let t = t.json();
    let thread_id = t["thread_id"].as_str().expect("thread_id").to_owned();
    assert_eq!(
        uuid::Uuid::parse_str(&thread_id).unwrap().get_version_num(),
        7
    );
    assert_eq!(
        (
            t["status"].clone(),
            t["values"].clone(),
            t["config"].clone()
        ),
        (json!("idle"), Value::Null, json!({}))
    );
    // 3. run + wait
    let w = http
        .post(
            &url(&format!("/threads/{thread_id}/runs/wait")),
            &json!({"assistant_id": assistant_id, "input": user(&format!("hello {tag}"))}),
        )
        .await;
    expect(&w, 200, "run_wait");
    assert!(w.content_type().starts_with("application/json"));
    let w = w.json();
    let messages = w["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("run_wait answer: {w}"));
    assert_eq!(messages.len(), 2, "{w}");
    let (human, ai) = (&messages[0], &messages[1]);
    assert_eq!(
        (human["type"].clone(), human["content"].clone()),
        (json!("human"), json!(format!("hello {tag}")))
    );
    assert_eq!(
        (human["additional_kwargs"].clone(), human["name"].clone()),
        (json!({}), Value::Null)
    );
    assert!(human["id"].is_string());
    assert_eq!(
        (ai["type"].clone(), ai["content"].clone()),
        (json!("ai"), json!(ANSWER))
    );
    assert_eq!(ai["response_metadata"]["model_name"], "stub-model");
    assert_eq!(ai["response_metadata"]["finish_reason"], "stop");
    assert_eq!(ai["response_metadata"]["token_usage"]["total_tokens"], 10);
    assert_eq!(
        (ai["tool_calls"].clone(), ai["invalid_tool_calls"].clone()),
        (json!([]), json!([]))
    );
    assert_eq!(ai["usage_metadata"]["output_tokens"], 7);
    // 4. run + stream
    let s = http
        .post(&url(&format!("/threads/{thread_id}/runs/stream")), &json!({"assistant_id": assistant_id, "input": user("stream please"), "stream_mode": ["values"]}))
        .await;
    expect(&s, 200, "run_stream");
    assert_eq!(s.content_type(), "text/event-stream; charset=utf-8");
    assert_eq!(s.headers["cache-control"], "no-store");
    assert_eq!(
        s.event_names(),
        ["metadata", "values", "values"],
        "{}",
        s.text()
    );
    let events = s.events();
    assert!(events[0].1["run_id"].is_string());
    assert_eq!(events[0].1["attempt"], 1);
    assert_eq!(
        events[1].1["messages"].as_array().unwrap().len(),
        3,
        "input state"
    );
    assert_eq!(
        events[2].1["messages"].as_array().unwrap().len(),
        4,
        "final state"
    );
    // 5. state
    let st = http.get(&url(&format!("/threads/{thread_id}/state"))).await;
    expect(&st, 200, "get_state");
    let st = st.json();
    let values = st["values"]["messages"].as_array().unwrap();
    assert_eq!(values.len(), 4);
    let kinds: Vec<&str> = values.iter().map(|m| m["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["human", "ai", "human", "ai"]);
    assert_eq!(
        (
            st["next"].clone(),
            st["tasks"].clone(),
            st["interrupts"].clone()
        ),
        (json!([]), json!([]), json!([]))
    );
    assert_eq!(st["checkpoint"]["thread_id"], thread_id.as_str());
    assert_eq!(st["checkpoint"]["checkpoint_ns"], "");
    assert_eq!(st["checkpoint"]["checkpoint_id"], st["checkpoint_id"]);
    assert_eq!(
        st["parent_checkpoint"]["checkpoint_id"],
        st["parent_checkpoint_id"]
    );
    assert!(st["parent_checkpoint_id"].is_string());
    assert_eq!(st["metadata"]["assistant_id"], assistant_id.as_str());
    // 6. stateless
    let sl = http
        .post(
            &url("/runs/wait"),
            &json!({"assistant_id": assistant_id, "input": user("stateless")}),
        )
        .await;
    expect(&sl, 200, "stateless_run");
    let sl = sl.json();
    let kinds: Vec<&str> = sl["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["human", "ai"]);
    // 7. store
    let ns = json!(["barrage", tag]);
    let put = http
        .put(
            &url("/store/items"),
            &json!({"namespace": ns, "key": "item-1", "value": {"note": "hello", "n": 1}}),
        )
        .await;
    expect(&put, 204, "store_put");
    assert!(put.body.is_empty());
    let got = http
        .get(&url(&format!(
            "/store/items?namespace=barrage.{tag}&key=item-1"
        )))
        .await;
    expect(&got, 200, "store_get");
    let got = got.json();
    assert_eq!(
        (
            got["key"].clone(),
            got["value"].clone(),
            got["namespace"].clone()
        ),
        (
            json!("item-1"),
            json!({"note": "hello", "n": 1}),
            ns.clone()
        )
    );
    assert!(got["created_at"].is_string() && got["updated_at"].is_string());
    let found = http
        .post(
            &url("/store/items/search"),
            &json!({"namespace_prefix": ["barrage", tag], "limit": 10, "offset": 0}),
        )
        .await;
    expect(&found, 200, "store_search");
    let found = found.json();
    assert_eq!(found["items"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(
        (
            found["items"][0]["key"].clone(),
            found["items"][0]["score"].clone()
        ),
        (json!("item-1"), Value::Null)
    );
    let filtered = http
        .post(
            &url("/store/items/search"),
            &json!({"namespace_prefix": ["barrage", tag], "filter": {"n": 2}}),
        )
        .await;
    assert_eq!(filtered.json()["items"], json!([]));
    // 8. cleanup
    let body = json!({"namespace": ns, "key": "item-1"});
    expect(
        &http.delete(&url("/store/items"), Some(&body)).await,
        204,
        "store_delete",
    );
    expect(
        &http.delete(&url("/store/items"), Some(&body)).await,
        204,
        "store_delete of an absent item",
    );
    let gone = http
        .get(&url(&format!(
            "/store/items?namespace=barrage.{tag}&key=item-1"
        )))
        .await;
    assert_eq!((gone.status, gone.text()), (200, "null".to_owned()));
    expect(
        &http
            .delete(&url(&format!("/threads/{thread_id}")), None)
            .await,
        204,
        "delete_thread",
    );
    let again = http
        .delete(&url(&format!("/threads/{thread_id}")), None)
        .await;
    expect(&again, 404, "delete_thread again");
    assert!(again.json()["detail"]
        .as_str()
        .unwrap()
        .contains(&thread_id));
    expect(
        &http.get(&url(&format!("/threads/{thread_id}/state"))).await,
        404,
        "state of a deleted thread",
    );
    expect(
        &http
            .delete(&url(&format!("/assistants/{assistant_id}")), None)
            .await,
        204,
        "delete_assistant",
    );
    let again = http
        .delete(&url(&format!("/assistants/{assistant_id}")), None)
        .await;
    expect(&again, 404, "delete_assistant again");
    assert!(again.json()["detail"].is_string());
    FlowCounts { llm_calls: 3 }
}

/// Requests one [`flow`] makes, by the server's operation names.
const FLOW_REQUESTS: &[(&str, u64)] = &[
    ("create_assistant", 1),
    ("create_thread", 1),
    ("run_wait", 1),
    ("run_stream", 1),
    ("get_state", 2),
    ("stateless_run", 1),
    ("store_put", 1),
    ("store_get", 2),
    ("store_search", 2),
    ("store_delete", 2),
    ("delete_thread", 2),
    ("delete_assistant", 2),
];

fn assert_stats_after_flows(stats: &Value, flows: u64, llm: &StubLlm) {
    for (op, n) in FLOW_REQUESTS {
        assert_eq!(
            stats["requests"][op],
            json!(n * flows),
            "requests.{op}: {stats}"
        );
    }
    let total: u64 = FLOW_REQUESTS.iter().map(|(_, n)| n * flows).sum();
    assert_eq!(stats["requests_total"], json!(total), "{stats}");
    assert_eq!(
        stats["runs"],
        json!({"started": 3 * flows, "succeeded": 3 * flows, "failed": 0, "rejected": 0})
    );
    assert_eq!(stats["llm"]["calls"], json!(llm.calls()), "{stats}");
    assert_eq!(stats["llm"]["calls"], json!(3 * flows));
    assert_eq!(stats["llm"]["errors"], 0);
    assert_eq!(stats["llm"]["completion_tokens"], json!(7 * 3 * flows));
    assert_eq!(
        (
            stats["assistants"].clone(),
            stats["threads"].clone(),
            stats["store_items"].clone()
        ),
        (json!(0), json!(0), json!(0))
    );
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_passes_and_stats_match() {
    let llm = StubLlm::start(StubBehaviour::default()).await;
    let server = Server::start(&llm.base_url, &[], &[]);
    let http = Http::new();
    let ok = http.get(&server.url("/ok")).await;
    assert_eq!((ok.status, ok.json()), (200, json!({"ok": true})));
    let info = http.get(&server.url("/info")).await.json();
    assert_eq!(
        (info["version"].clone(), info["runtime"].clone()),
        (
            json!(env!("CARGO_PKG_VERSION")),
            json!("barrage-reference-runtime")
        )
    );
    let counts = flow(&http, &server.base, "one").await;
    assert_eq!(llm.calls(), counts.llm_calls);
    assert_eq!(llm.streamed(), 0, "values mode must not stream the LLM");
    assert_eq!(
        llm.counts.bad_auth.load(Ordering::SeqCst),
        0,
        "OPENAI_API_KEY not sent as bearer"
    );
    assert!(llm
        .counts
        .models
        .lock()
        .unwrap()
        .iter()
        .all(|m| m == "stub-model"));
    let stats = http.get(&server.url("/stats")).await.json();
    assert_stats_after_flows(&stats, 1, &llm);
    assert_eq!(stats["sse_events"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_modes() {
    let llm = StubLlm::start(StubBehaviour::default()).await;
    let server = Server::start(&llm.base_url, &["--model-name", "openai:env-model"], &[]);
    let http = Http::new();
    let thread_id = http.post(&server.url("/threads"), &json!({})).await.json()["thread_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let stream = |mode: Value| {
        let (http, url) = (
            http.clone(),
            server.url(&format!("/threads/{thread_id}/runs/stream")),
        );
        async move {
            http.post(
                &url,
                &json!({"assistant_id": "agent", "input": user("hi"), "stream_mode": mode}),
            )
            .await
        }
    };

    let updates = stream(json!("updates")).await;
    assert_eq!(updates.event_names(), ["metadata", "updates"]);
    let update = &updates.events()[1].1;
    assert_eq!(update["call_model"]["messages"][0]["type"], "ai");
    assert_eq!(
        update["call_model"]["messages"][0]["response_metadata"]["model_name"],
        "env-model"
    );

    let both = stream(json!(["values", "updates"])).await;
    assert_eq!(
        both.event_names(),
        ["metadata", "values", "updates", "values"]
    );
    assert_eq!(llm.streamed(), 0);

    let tuple = stream(json!(["messages-tuple"])).await;
    let events = tuple.events();
    assert_eq!(events[0].0, "metadata");
    assert_eq!(events.len(), 1 + stub_chunk_count(), "{}", tuple.text());
    let mut text = String::new();
    for (name, data) in &events[1..] {
        assert_eq!(name, "messages");
        assert_eq!(data[0]["type"], "AIMessageChunk");
        assert_eq!(data[1]["langgraph_node"], "call_model");
        text.push_str(data[0]["content"].as_str().unwrap());
    }
    assert_eq!(text, ANSWER);
    assert_eq!(
        events.last().unwrap().1[0]["usage_metadata"]["total_tokens"],
        10
    );
    assert_eq!(llm.streamed(), 1);

    let messages = stream(json!("messages")).await;
    let names = messages.event_names();
    assert_eq!(names[..2], ["metadata", "messages/metadata"]);
    assert!(names[2..].iter().all(|n| n == "messages/partial"));
    assert_eq!(names.len(), 2 + stub_chunk_count());
    assert_eq!(messages.events().last().unwrap().1[0]["content"], ANSWER);

    // 4 runs on the thread: 8 messages, alternating.
    let state = http
        .get(&server.url(&format!("/threads/{thread_id}/state")))
        .await
        .json();
    let kinds: Vec<&str> = state["values"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["human", "ai"].repeat(4));
    let thread = http
        .get(&server.url(&format!("/threads/{thread_id}")))
        .await
        .json();
    assert_eq!(thread["status"], "idle");
    assert_eq!(thread["values"]["messages"].as_array().unwrap().len(), 8);

    // Stateless stream: the default mode is values.
    let stateless = http
        .post(
            &server.url("/runs/stream"),
            &json!({"assistant_id": "agent", "input": user("x")}),
        )
        .await;
    assert_eq!(stateless.event_names(), ["metadata", "values", "values"]);
    assert_eq!(
        stateless.events()[2].1["messages"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(llm.calls(), 5);
    let stats = http.get(&server.url("/stats")).await.json();
    assert_eq!(
        (
            stats["llm"]["calls"].clone(),
            stats["llm"]["streamed"].clone()
        ),
        (json!(5), json!(2))
    );
    assert_eq!(
        (
            stats["requests"]["run_stream"].clone(),
            stats["requests"]["stateless_stream"].clone()
        ),
        (json!(4), json!(1))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_runs_are_200_with_an_error() {
    let http = Http::new();
    // LLM down.
    let server = Server::start(&dead_llm_url(), &[], &[]);
    let thread_id = http.post(&server.url("/threads"), &json!({})).await.json()["thread_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = json!({"assistant_id": "agent", "input": user("hi")});
    let wait = http
        .post(
            &server.url(&format!("/threads/{thread_id}/runs/wait")),
            &body,
        )
        .await;
    expect(&wait, 200, "failed run_wait");
    assert_eq!(
        wait.json(),
        json!({"__error__": {"error": "OpenAIConnectionError", "message": "An internal error occurred"}})
    );
    let stream = http
        .post(
            &server.url(&format!("/threads/{thread_id}/runs/stream")),
            &body,
        )
        .await;
    expect(&stream, 200, "failed run_stream");
    assert_eq!(stream.event_names(), ["metadata", "values", "error"]);
    assert_eq!(stream.events()[2].1["error"], "OpenAIConnectionError");
    let stateless = http.post(&server.url("/runs/wait"), &body).await;
    assert!(stateless.json()["__error__"].is_object());
    let thread = http
        .get(&server.url(&format!("/threads/{thread_id}")))
        .await
        .json();
    assert_eq!(thread["status"], "error");
    let stats = http.get(&server.url("/stats")).await.json();
    assert_eq!(
        stats["runs"],
        json!({"started": 3, "succeeded": 0, "failed": 3, "rejected": 0})
    );
    assert_eq!(stats["llm"]["errors"], 3);
    drop(server);

    // LLM answers 500, and 429 when streamed.
    let llm = StubLlm::start(StubBehaviour {
        fail_status: Some(500),
        ..Default::default()
    })
    .await;
    let server = Server::start(&llm.base_url, &[], &[]);
    let wait = http.post(&server.url("/runs/wait"), &body).await.json();
    assert_eq!(wait["__error__"]["error"], "InternalServerError", "{wait}");
    assert!(wait["__error__"]["message"]
        .as_str()
        .unwrap()
        .contains("500"));
    let stream = http
        .post(
            &server.url("/runs/stream"),
            &json!({"assistant_id": "agent", "input": user("x"), "stream_mode": "messages-tuple"}),
        )
        .await;
    assert_eq!(stream.event_names(), ["metadata", "error"]);
    assert_eq!(llm.calls(), 2);
    drop(server);
    let llm = StubLlm::start(StubBehaviour {
        fail_status: Some(429),
        ..Default::default()
    })
    .await;
    let server = Server::start(&llm.base_url, &[], &[]);
    let wait = http.post(&server.url("/runs/wait"), &body).await.json();
    assert_eq!(wait["__error__"]["error"], "RateLimitError", "{wait}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_errors() {
    let llm = StubLlm::start(StubBehaviour::default()).await;
    let server = Server::start(&llm.base_url, &["--max-body-bytes", "4096"], &[]);
    let http = Http::new();
    let thread_id = http.post(&server.url("/threads"), &json!({})).await.json()["thread_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let run_url = server.url(&format!("/threads/{thread_id}/runs/wait"));
    let big = json!({"assistant_id": "agent", "input": user(&"x".repeat(10_000))});
    let cases: Vec<(Answer, u16, &str)> = vec![
        (http.post(&run_url, &json!({"input": user("hi")})).await, 422, "assistant_id"),
        (http.post(&server.url("/runs/wait"), &json!({"input": user("hi")})).await, 422, "assistant_id"),
        (http.raw_post(&run_url, "{not json").await, 422, "Invalid JSON"),
        (http.raw_post(&server.url("/assistants"), "[1,2]").await, 422, "object"),
        (http.post(&server.url("/assistants"), &json!({})).await, 422, "graph_id"),
        (http.post(&server.url("/assistants"), &json!({"graph_id": "nope"})).await, 404, "nope"),
        (http.post(&run_url, &json!({"assistant_id": "no-such", "input": user("hi")})).await, 404, "no-such"),
        (http.post(&server.url("/threads/no-such/runs/wait"), &json!({"assistant_id": "agent"})).await, 404, "no-such"),
        (http.post(&server.url("/threads/no-such/runs/stream"), &json!({"assistant_id": "agent"})).await, 404, "no-such"),
        (http.get(&server.url("/threads/no-such")).await, 404, "no-such"),
        (http.get(&server.url("/assistants/no-such")).await, 404, "no-such"),
        (http.post(&run_url, &json!({"assistant_id": "agent", "input": {"messages": [{"role": "wizard", "content": "x"}]}})).await, 422, "wizard"),
        (http.post(&server.url("/runs/stream"), &json!({"assistant_id": "agent", "stream_mode": "bogus"})).await, 422, "bogus"),
        (http.post(&run_url, &big).await, 413, "too large"),
        (http.put(&server.url("/store/items"), &json!({"namespace": ["a"], "key": "k", "value": "str"})).await, 422, "object"),
        (http.put(&server.url("/store/items"), &json!({"namespace": ["a.b"], "key": "k", "value": {}})).await, 422, "periods"),
        (http.put(&server.url("/store/items"), &json!({"namespace": [], "key": "k", "value": {}})).await, 422, "empty"),
        (http.get(&server.url("/store/items?key=k")).await, 422, "namespace"),
        (http.post(&server.url("/store/items/search"), &json!({"limit": -1})).await, 422, "limit"),
        (http.get(&server.url("/no/such/route")).await, 404, "Not Found"),
    ];
    for (i, (answer, status, fragment)) in cases.iter().enumerate() {
        assert_eq!(answer.status, *status, "case {i}: {}", answer.text());
        assert!(
            answer.content_type().starts_with("application/json"),
            "case {i}"
        );
        let detail = answer.json()["detail"]
            .as_str()
            .unwrap_or_else(|| panic!("case {i}: {}", answer.text()))
            .to_owned();
        assert!(
            detail.contains(fragment),
            "case {i}: {detail:?} lacks {fragment:?}"
        );
    }
    assert_eq!(
        http.get(&server.url("/nope")).await.json(),
        json!({"detail": "Not Found"})
    );
    assert_eq!(llm.calls(), 0, "no bad request may reach the LLM");
    // The server still works afterwards.
    let ok = http
        .post(
            &run_url,
            &json!({"assistant_id": "agent", "input": user("fine")}),
        )
        .await;
    assert_eq!(ok.json()["messages"][1]["type"], "ai");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_thread_rejects_or_queues() {
    let llm = StubLlm::start(StubBehaviour {
        delay: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let server = Server::start(&llm.base_url, &[], &[]);
    let http = Http::new();
    let thread_id = http.post(&server.url("/threads"), &json!({})).await.json()["thread_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let run_url = server.url(&format!("/threads/{thread_id}/runs/wait"));
    let first = tokio::spawn({
        let (http, url) = (http.clone(), run_url.clone());
        async move {
            http.post(
                &url,
                &json!({"assistant_id": "agent", "input": user("first")}),
            )
            .await
        }
    });
    // Poll until the first run holds the thread.
    let thread_url = server.url(&format!("/threads/{thread_id}"));
    let start = Instant::now();
    while http.get(&thread_url).await.json()["status"] != "busy" {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "thread never became busy"
        );
        tokio::task::yield_now().await;
    }
    let rejected = http
        .post(
            &run_url,
            &json!({"assistant_id": "agent", "input": user("x"), "multitask_strategy": "reject"}),
        )
        .await;
    expect(&rejected, 409, "reject while busy");
    let queued = http
        .post(
            &run_url,
            &json!({"assistant_id": "agent", "input": user("second")}),
        )
        .await;
    let first = first.await.unwrap();
    assert_eq!(first.json()["messages"].as_array().unwrap().len(), 2);
    let texts: Vec<Value> = queued.json()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].clone())
        .collect();
    assert_eq!(
        texts,
        [
            json!("first"),
            json!(ANSWER),
            json!("second"),
            json!(ANSWER)
        ]
    );
    let stats = http.get(&server.url("/stats")).await.json();
    assert_eq!(stats["runs"]["rejected"], 1);
}

fn mint(secret: &str, aud: &str, exp_offset: i64) -> String {
    let exp = chrono::Utc::now().timestamp() + exp_offset;
    let claims = json!({"sub": "user-1", "aud": aud, "exp": exp, "role": "authenticated"});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_required_when_a_secret_is_set() {
    const SECRET: &str = "benchmark-jwt-secret-that-is-at-least-32-characters-long";
    let llm = StubLlm::start(StubBehaviour::default()).await;
    let server = Server::start(
        &llm.base_url,
        &["--threads", "1"],
        &[("SUPABASE_JWT_SECRET", SECRET)],
    );
    let http = Http::new();
    for open in ["/ok", "/info", "/stats"] {
        expect(&http.get(&server.url(open)).await, 200, open);
    }
    let refused = [
        http.post(&server.url("/threads"), &json!({})).await,
        http.with_token("not-a-jwt")
            .post(&server.url("/threads"), &json!({}))
            .await,
        http.with_token(&mint("wrong-secret", "authenticated", 3600))
            .post(&server.url("/threads"), &json!({}))
            .await,
        http.with_token(&mint(SECRET, "someone-else", 3600))
            .post(&server.url("/threads"), &json!({}))
            .await,
        http.with_token(&mint(SECRET, "authenticated", -3600))
            .post(&server.url("/threads"), &json!({}))
            .await,
        http.with_token(&mint(SECRET, "authenticated", 3600))
            .get(&server.url("/store/items?namespace=a&key=b"))
            .await,
    ];
    for (i, answer) in refused[..5].iter().enumerate() {
        expect(answer, 401, &format!("case {i}"));
        assert!(answer.json()["detail"].is_string());
        assert!(!answer.text().contains(SECRET));
    }
    assert_eq!(refused[5].status, 200);
    let authed = http.with_token(&mint(SECRET, "authenticated", 3600));
    flow(&authed, &server.base, "jwt").await;
    let stats = http.get(&server.url("/stats")).await.json();
    assert_eq!(stats["unauthorized"], 5);
    assert_eq!(
        stats["requests"]["create_thread"], 1,
        "refused requests are not counted as operations"
    );
    drop(server);

    // The secret from a file works the same; the env var must not be set too.
    let dir = std::env::temp_dir().join(format!("rr-secret-{}", std::process::id()));
    std::fs::write(&dir, format!("{SECRET}\n")).unwrap();
    let server = Server::start(
        &llm.base_url,
        &["--jwt-secret-file", dir.to_str().unwrap()],
        &[],
    );
    expect(
        &http.post(&server.url("/threads"), &json!({})).await,
        401,
        "file secret, no token",
    );
    expect(
        &authed.post(&server.url("/threads"), &json!({})).await,
        200,
        "file secret, good token",
    );
    drop(server);
    std::fs::remove_file(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_parallel_flows() {
    const FLOWS: u64 = 50;
    let llm = StubLlm::start(StubBehaviour {
        delay: Duration::from_millis(5),
        ..Default::default()
    })
    .await;
    let server = Server::start(&llm.base_url, &[], &[]);
    let http = Http::new();
    let base = server.base.clone();
    let tasks: Vec<_> = (0..FLOWS)
        .map(|i| {
            let (http, base) = (http.clone(), base.clone());
            tokio::spawn(async move { flow(&http, &base, &format!("vu-{i}")).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("a flow failed");
    }
    let stats = http.get(&server.url("/stats")).await.json();
    assert_stats_after_flows(&stats, FLOWS, &llm);

    // Many runs on one thread at once: serialized, history consistent.
    let thread_id = http.post(&server.url("/threads"), &json!({})).await.json()["thread_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let runs: Vec<_> = (0..10)
        .map(|i| {
            let (http, url) = (
                http.clone(),
                server.url(&format!("/threads/{thread_id}/runs/wait")),
            );
            tokio::spawn(async move {
                http.post(
                    &url,
                    &json!({"assistant_id": "agent", "input": user(&format!("run {i}"))}),
                )
                .await
            })
        })
        .collect();
    for run in runs {
        assert_eq!(run.await.unwrap().status, 200);
    }
    let state = http
        .get(&server.url(&format!("/threads/{thread_id}/state")))
        .await
        .json();
    let kinds: Vec<&str> = state["values"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["human", "ai"].repeat(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_zero() {
    let llm = StubLlm::start(StubBehaviour::default()).await;
    let mut server = Server::start(&llm.base_url, &[], &[]);
    expect(&Http::new().get(&server.url("/ok")).await, 200, "ok");
    let status = Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let exit = server.wait_exit(Duration::from_secs(15));
    if !exit.success() {
        server.fail(&format!("exit status {exit:?} after SIGTERM"));
    }
    assert!(server.stderr.lock().unwrap().contains("shutdown requested") || exit.success());
}

#[test]
fn config_errors_exit_2_and_name_the_variable() {
    /// (flags, environment, what stderr must name)
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (
            &[],
            &[("OPENAI_BASE_URL", "ftp://127.0.0.1/v1")],
            "OPENAI_BASE_URL",
        ),
        (&["--threads", "0"], &[], "--threads"),
        (&["--host", "not-an-ip"], &[], "--host"),
        (
            &["--jwt-secret-file", "/nonexistent/secret"],
            &[],
            "--jwt-secret-file",
        ),
        (&["--port", "99999"], &[], "--port"),
    ];
    for (args, env, needle) in cases {
        let output = command(args, env).output().expect("spawn");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(
            output.stdout.is_empty(),
            "nothing may be bound: {}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_flow_script_passes() {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/targets/check_flow.sh"
    );
    if !std::path::Path::new(script).exists() {
        eprintln!("SKIP check_flow_script_passes: {script} not found");
        return;
    }
    for tool in ["bash", "curl", "jq", "awk"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| o.status.success());
        if !matches!(found, Ok(true)) {
            eprintln!("SKIP check_flow_script_passes: {tool} not installed");
            return;
        }
    }
    let llm = StubLlm::start(StubBehaviour::default()).await;
    let server = Server::start(&llm.base_url, &[], &[]);
    let base = server.base.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .args([script, &base, "2"])
            .env("QUIET", "1")
            .output()
            .expect("run check_flow.sh")
    })
    .await
    .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(
        output.status.success(),
        "check_flow.sh failed\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
    );
    assert!(stdout.contains("all 2 iteration(s) passed"), "{stdout}");
    assert_eq!(llm.calls(), 6);
}

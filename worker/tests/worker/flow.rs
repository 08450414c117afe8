//! The agent flow against real servers on loopback: the reference runtime with the mock
//! LLM (both in-process), small axum fakes for the error paths and GoTrue, and the real
//! LangGraph servers when CI names them (`BARRAGE_TARGET_PY_URL`, `BARRAGE_TARGET_JS_URL`).
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{any, delete, get, post};
use axum::{Json, Router};
use barrage_core::{AuthConfig, MetricKind, Plan, Profile, Secret};
use barrage_worker::flow::AgentFlow;
use barrage_worker::sample::{IterationCtx, IterationOutcome, Record, Sample, Scenario, SeriesId};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A recorded sample, owned.
#[derive(Debug, Clone)]
pub(crate) struct Got {
    pub(crate) metric: String,
    pub(crate) kind: MetricKind,
    pub(crate) tags: Vec<(String, String)>,
    pub(crate) value: f64,
}

/// Keeps every sample, whether recorded by key or by a series id it handed out.
pub(crate) struct Collector(RefCell<Vec<Got>>, RefCell<Vec<Got>>, u64);

impl Default for Collector {
    fn default() -> Self {
        Collector(
            RefCell::default(),
            RefCell::default(),
            barrage_worker::sample::next_instance(),
        )
    }
}

fn owned(s: &Sample<'_>) -> Got {
    Got {
        metric: s.metric.into(),
        kind: s.kind,
        tags: s
            .tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        value: s.value,
    }
}

impl Record for Collector {
    fn record(&self, s: Sample<'_>) {
        self.0.borrow_mut().push(owned(&s));
    }

    fn series(&self, metric: &str, kind: MetricKind, tags: &[(&str, &str)]) -> Option<SeriesId> {
        let mut series = self.1.borrow_mut();
        let key = owned(&Sample {
            metric,
            kind,
            tags,
            value: 0.0,
        });
        series.push(key);
        Some(SeriesId(series.len() as u32 - 1))
    }

    fn record_series(&self, id: SeriesId, value: f64) {
        let mut got = self.1.borrow()[id.0 as usize].clone();
        got.value = value;
        self.0.borrow_mut().push(got);
    }

    fn instance(&self) -> u64 {
        self.2
    }
}

impl Collector {
    /// Samples of `metric` whose tags include every pair of `filter`.
    pub(crate) fn find(&self, metric: &str, filter: &[(&str, &str)]) -> Vec<Got> {
        self.0
            .borrow()
            .iter()
            .filter(|g| g.metric == metric)
            .filter(|g| {
                filter
                    .iter()
                    .all(|(k, v)| g.tags.iter().any(|(a, b)| a == k && b == v))
            })
            .cloned()
            .collect()
    }
    pub(crate) fn count(&self, metric: &str, filter: &[(&str, &str)]) -> usize {
        self.find(metric, filter).len()
    }
    pub(crate) fn sum(&self, metric: &str, filter: &[(&str, &str)]) -> f64 {
        self.find(metric, filter).iter().map(|g| g.value).sum()
    }
    fn len(&self) -> usize {
        self.0.borrow().len()
    }
}

pub(crate) fn plan(url: &str, timeout: Duration) -> Plan {
    let mut p = Plan::profile(Profile::Smoke);
    p.target.url = url.into();
    p.flow.request_timeout = timeout;
    p
}

pub(crate) async fn run(
    flow: &AgentFlow,
    vu: u64,
    iteration: u64,
    rec: &Collector,
) -> IterationOutcome {
    let cancel = CancellationToken::new();
    run_with(flow, vu, iteration, rec, &cancel).await
}

async fn run_with(
    flow: &AgentFlow,
    vu: u64,
    iteration: u64,
    rec: &Collector,
    cancel: &CancellationToken,
) -> IterationOutcome {
    flow.iteration(IterationCtx {
        vu,
        iteration,
        intended_start: Instant::now(),
        cancel,
        recorder: rec,
    })
    .await
}

pub(crate) async fn bind() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    (l, url)
}

/// The mock LLM and the reference runtime, in-process; returns the runtime's URL.
async fn reference_target(jwt_secret: Option<&str>, stop: &CancellationToken) -> String {
    let config = barrage_mock_llm::Config {
        delay: Duration::ZERO,
        stream_delay: Duration::from_millis(1),
        ..Default::default()
    };
    reference_target_with(config, jwt_secret, stop).await
}

/// [`reference_target`] with this mock LLM configuration.
pub(crate) async fn reference_target_with(
    config: barrage_mock_llm::Config,
    jwt_secret: Option<&str>,
    stop: &CancellationToken,
) -> String {
    reference_target_and_llm(config, jwt_secret, stop).await.0
}

/// [`reference_target_with`], also returning the mock LLM's base URL (its `/stats/calls`).
pub(crate) async fn reference_target_and_llm(
    config: barrage_mock_llm::Config,
    jwt_secret: Option<&str>,
    stop: &CancellationToken,
) -> (String, String) {
    let (llm, llm_url) = bind().await;
    tokio::spawn(barrage_mock_llm::serve(
        llm,
        config,
        stop.clone().cancelled_owned(),
    ));
    let (rt, rt_url) = bind().await;
    let args = barrage_reference_runtime::Args {
        host: "127.0.0.1".into(),
        port: 0,
        openai_base_url: format!("{llm_url}/v1"),
        openai_api_key: "mock".into(),
        model_name: "openai:mock-gpt-4o".into(),
        jwt_secret: jwt_secret.map(Into::into),
        jwt_secret_file: None,
        threads: Some(1),
        llm_timeout_secs: 10,
        max_body_bytes: 2 * 1024 * 1024,
        assistant_id_from_config: false,
        buffer_sse: false,
        leak_runs: false,
    };
    let config = args.into_config().unwrap();
    tokio::spawn(barrage_reference_runtime::serve(
        rt,
        config,
        stop.clone().cancelled_owned(),
    ));
    (rt_url, llm_url)
}

pub(crate) async fn serve_router(app: Router) -> String {
    let (l, url) = bind().await;
    tokio::spawn(async move { axum::serve(l, app).await });
    url
}

const OPS: [&str; 12] = [
    "create_assistant",
    "create_thread",
    "run_wait",
    "run_stream",
    "get_state",
    "stateless_run",
    "store_put",
    "store_get",
    "store_search",
    "store_delete",
    "delete_thread",
    "delete_assistant",
];

#[tokio::test]
async fn full_flow_against_the_reference_runtime() {
    let stop = CancellationToken::new();
    let url = reference_target(None, &stop).await;
    let flow = AgentFlow::new(&plan(&url, Duration::from_secs(10)), &BTreeMap::new()).unwrap();
    let rec = Collector::default();
    // 3 VUs side by side, 2 iterations each: they share the client, the auth and the
    // buffer pool.
    let n = 6u64;
    let vus = (1..=3u64).map(|vu| {
        let (flow, rec) = (&flow, &rec);
        async move {
            for it in 0..2 {
                assert_eq!(run(flow, vu, it, rec).await, IterationOutcome::Success);
            }
        }
    });
    futures_util::future::join_all(vus).await;
    for op in OPS {
        let f = [("operation", op)];
        assert_eq!(rec.count("http_reqs", &f), n as usize, "{op}");
        assert_eq!(rec.sum("http_req_failed", &f), 0.0, "{op}");
        let trend = if op.contains("delete") { "cleanup" } else { op };
        assert_eq!(rec.count(trend, &f), n as usize, "trend {trend} of {op}");
        for g in rec.find("http_req_duration", &f) {
            let status = g
                .tags
                .iter()
                .find(|(k, _)| k == "status")
                .unwrap()
                .1
                .clone();
            assert!(status.starts_with('2'), "{op}: {status}");
            assert!(g.value > 0.0);
        }
        assert!(rec.sum("data_sent", &f) > 100.0 * n as f64, "{op}");
        assert!(rec.sum("data_received", &f) > 50.0 * n as f64, "{op}");
    }
    assert_eq!(rec.count("cleanup", &[]), 3 * n as usize);
    let firsts = rec.find("stream_first_event", &[("operation", "run_stream")]);
    let streams = rec.find("run_stream", &[]);
    assert_eq!(firsts.len(), n as usize);
    for (f, s) in firsts.iter().zip(&streams) {
        assert!(
            f.value < s.value,
            "first event {} < stream {}",
            f.value,
            s.value
        );
    }
    for e in rec.find("stream_events", &[]) {
        assert!(e.value >= 2.0 && e.kind == MetricKind::Trend);
    }
    let checks = rec.find("checks", &[]);
    assert!(checks.len() >= 20 * n as usize);
    assert!(checks.iter().all(|c| c.value == 1.0), "every check passes");
    assert_eq!(rec.sum("agent_flow_success_rate", &[]), n as f64);
    assert_eq!(rec.count("agent_flow_duration", &[]), n as usize);
    assert_eq!(
        rec.count("iterations", &[]),
        0,
        "the engine records iterations"
    );

    // The server's own record matches what the flow did.
    let stats = reqwest::get(format!("{url}/stats"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let stats: Value = serde_json::from_slice(&stats).unwrap();
    for op in OPS {
        assert_eq!(stats["requests"][op], json!(n), "server's {op}: {stats}");
    }
    assert_eq!(stats["requests_total"], json!(12 * n), "{stats}");
    assert_eq!(stats["runs"]["succeeded"], json!(3 * n), "{stats}");
    assert_eq!(
        (
            stats["assistants"].clone(),
            stats["threads"].clone(),
            stats["store_items"].clone()
        ),
        (json!(0), json!(0), json!(0)),
        "cleanup removed everything: {stats}"
    );
    stop.cancel();
}

#[tokio::test]
async fn jwt_auth_per_vu_against_the_reference_runtime() {
    let stop = CancellationToken::new();
    let secret = "benchmark-jwt-secret-that-is-at-least-32-characters-long";
    let url = reference_target(Some(secret), &stop).await;
    let mut p = plan(&url, Duration::from_secs(10));
    p.auth = AuthConfig::Jwt {
        secret_env: "SUPABASE_JWT_SECRET".into(),
        secret_file: None,
        sub: "bench".into(),
        per_vu_sub: true,
        ttl: Duration::from_secs(3600),
    };
    let err = AgentFlow::new(&p, &BTreeMap::new())
        .err()
        .expect("no secret");
    let msg = err.to_string();
    assert!(
        msg.contains("jwt_secret") && msg.contains("SUPABASE_JWT_SECRET"),
        "{msg}"
    );

    let secrets = BTreeMap::from([("jwt_secret".to_string(), Secret::new(secret))]);
    let flow = AgentFlow::new(&p, &secrets).unwrap();
    let rec = Collector::default();
    assert_eq!(run(&flow, 4, 0, &rec).await, IterationOutcome::Success);

    let wrong = BTreeMap::from([("jwt_secret".to_string(), Secret::new("x".repeat(40)))]);
    let flow = AgentFlow::new(&p, &wrong).unwrap();
    let rec = Collector::default();
    match run(&flow, 4, 0, &rec).await {
        IterationOutcome::Failed { step, reason } => {
            assert_eq!(step, "create_assistant");
            assert!(reason.contains("401"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(rec.count("http_req_failed", &[("status", "401")]), 1);
    stop.cancel();
}

/// A fake GoTrue that mints real HS256 tokens for the reference runtime to verify.
#[derive(Default)]
struct FakeGotrue {
    password: AtomicU64,
    refresh: AtomicU64,
}

#[tokio::test]
async fn gotrue_password_grant_then_refresh() {
    let stop = CancellationToken::new();
    const SECRET: &str = "gotrue-fake-secret-that-is-at-least-32-characters";
    let secret = SECRET;
    let url = reference_target(Some(secret), &stop).await;
    let fake = Arc::new(FakeGotrue::default());
    let app = Router::new()
        .route(
            "/auth/v1/token",
            post(
                |State(f): State<Arc<FakeGotrue>>,
                 q: axum::extract::Query<BTreeMap<String, String>>,
                 h: HeaderMap,
                 Json(body): Json<Value>| async move {
                    if h.get("apikey").and_then(|v| v.to_str().ok()) != Some("anon-key") {
                        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "no apikey"})));
                    }
                    match q.get("grant_type").map(String::as_str) {
                        Some("password") if body["email"] == "u@example.com" && body["password"] == "pw" => {
                            f.password.fetch_add(1, Ordering::SeqCst);
                        }
                        Some("refresh_token") if body["refresh_token"] == "r-1" => {
                            f.refresh.fetch_add(1, Ordering::SeqCst);
                        }
                        _ => return (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_grant"}))),
                    }
                    let claims = barrage_core::JwtClaims::new("u", Duration::from_secs(2));
                    let token = barrage_core::mint_hs256(&Secret::new(SECRET), &claims).unwrap();
                    (
                        StatusCode::OK,
                        Json(json!({"access_token": token, "token_type": "bearer", "expires_in": 2, "refresh_token": "r-1"})),
                    )
                },
            ),
        )
        .with_state(fake.clone());
    let gotrue = serve_router(app).await;
    let mut p = plan(&url, Duration::from_secs(10));
    p.auth = AuthConfig::Gotrue {
        url: gotrue,
        anon_key_env: "SUPABASE_ANON_KEY".into(),
        email: "u@example.com".into(),
        password_env: "SUPABASE_PASSWORD".into(),
    };
    let secrets = BTreeMap::from([
        ("gotrue_anon_key".to_string(), Secret::new("anon-key")),
        ("gotrue_password".to_string(), Secret::new("pw")),
    ]);
    let flow = AgentFlow::new(&p, &secrets).unwrap();
    let rec = Collector::default();
    assert_eq!(run(&flow, 1, 0, &rec).await, IterationOutcome::Success);
    assert_eq!(run(&flow, 2, 0, &rec).await, IterationOutcome::Success);
    assert_eq!(
        fake.password.load(Ordering::SeqCst),
        1,
        "one grant shared by the VUs"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(run(&flow, 1, 1, &rec).await, IterationOutcome::Success);
    assert_eq!(
        fake.refresh.load(Ordering::SeqCst),
        1,
        "refreshed before expiry"
    );
    assert_eq!(
        rec.count("http_reqs", &[("operation", "auth"), ("status", "200")]),
        2
    );

    let bad = BTreeMap::from([
        ("gotrue_anon_key".to_string(), Secret::new("anon-key")),
        ("gotrue_password".to_string(), Secret::new("wrong")),
    ]);
    let flow = AgentFlow::new(&p, &bad).unwrap();
    let rec = Collector::default();
    match run(&flow, 1, 0, &rec).await {
        IterationOutcome::Failed { step, reason } => {
            assert_eq!(step, "auth");
            assert!(
                reason.contains("400") && !reason.contains("wrong"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(rec.sum("http_req_failed", &[("operation", "auth")]), 1.0);
    stop.cancel();
}

#[tokio::test]
async fn target_down_is_a_failed_iteration() {
    let (l, url) = bind().await;
    drop(l);
    let flow = AgentFlow::new(&plan(&url, Duration::from_secs(5)), &BTreeMap::new()).unwrap();
    let rec = Collector::default();
    match run(&flow, 1, 0, &rec).await {
        IterationOutcome::Failed { step, reason } => {
            assert_eq!(step, "create_assistant");
            assert!(reason.contains("connection failed"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let f = [("operation", "create_assistant"), ("status", "0")];
    assert_eq!(rec.count("http_reqs", &f), 1);
    assert_eq!(rec.sum("http_req_failed", &f), 1.0);
    assert_eq!(
        rec.count("http_reqs", &[]),
        1,
        "no cleanup: nothing was created"
    );
    assert_eq!(rec.sum("agent_flow_success_rate", &[]), 0.0);
    assert_eq!(rec.count("agent_flow_success_rate", &[]), 1);
}

#[tokio::test]
async fn server_errors_are_failed_requests() {
    let url = serve_router(Router::new().fallback(any(|| async {
        (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
    })))
    .await;
    let flow = AgentFlow::new(&plan(&url, Duration::from_secs(5)), &BTreeMap::new()).unwrap();
    let rec = Collector::default();
    match run(&flow, 1, 0, &rec).await {
        IterationOutcome::Failed { step, reason } => {
            assert_eq!(step, "create_assistant");
            assert!(reason.contains("HTTP 500"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(rec.sum("http_req_failed", &[("status", "500")]), 1.0);
    assert_eq!(
        rec.sum("checks", &[("check", "create_assistant: status is 2xx")]),
        0.0
    );
}

/// What the fake Agent Protocol server does for the runs.
#[derive(Clone, Copy, PartialEq)]
enum Fault {
    RunErrorBody,
    StreamErrorEvent,
    MalformedStream,
    SlowRun,
    HangingStream,
    /// `runs/wait` answers valid JSON of [`HUGE`] bytes.
    HugeRunAnswer,
    /// `runs/stream` sends one event, then a `data:` line of [`HUGE`] bytes without a newline.
    HugeStreamLine,
}

/// Three times the default `flow.response_body_limit`.
const HUGE: usize = 3 << 20;

/// A fake target that creates assistants and threads and misbehaves per `fault`;
/// counts deletes so tests see the cleanup.
async fn fake_target(fault: Fault, deletes: Arc<AtomicU64>) -> String {
    let ai = json!({"messages": [{"type": "human", "content": "hi"}, {"type": "ai", "content": "hello"}]});
    let wait = move || {
        let ai = ai.clone();
        async move {
            match fault {
                Fault::RunErrorBody => Json(json!({"__error__": {"error": "OpenAIConnectionError", "message": "An internal error occurred"}})).into_response(),
                Fault::SlowRun => {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    Json(ai).into_response()
                }
                Fault::HugeRunAnswer => {
                    let mut v = ai.clone();
                    v["pad"] = Value::String("x".repeat(HUGE));
                    Json(v).into_response()
                }
                _ => ([("content-type", "text/plain; charset=UTF-8")], format!("\n\n{ai:#}")).into_response(),
            }
        }
    };
    let stream = move || async move {
        let sse = [("content-type", "text/event-stream")];
        match fault {
            Fault::StreamErrorEvent => (sse, "event: metadata\r\ndata: {\"run_id\":\"r\"}\r\n\r\nevent: error\r\ndata: {\"error\":\"E\",\"message\":\"boom\"}\r\n\r\n").into_response(),
            Fault::MalformedStream => (sse, "<html>not a stream</html>").into_response(),
            Fault::HugeStreamLine => {
                (sse, format!("event: metadata\ndata: {{}}\n\ndata: {}", "x".repeat(HUGE))).into_response()
            }
            Fault::HangingStream => {
                let first = futures_util::stream::once(async {
                    Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"event: metadata\ndata: {}\n\n"))
                });
                let body = axum::body::Body::from_stream(futures_util::StreamExt::chain(first, futures_util::stream::pending()));
                (sse, body).into_response()
            }
            _ => (sse, "event: metadata\ndata: {}\n\nevent: values\ndata: {}\n\n").into_response(),
        }
    };
    let del = |d: Arc<AtomicU64>| {
        move |_: Path<String>| async move {
            d.fetch_add(1, Ordering::SeqCst);
            StatusCode::NO_CONTENT
        }
    };
    let app = Router::new()
        .route(
            "/assistants",
            post(|| async { Json(json!({"assistant_id": "a-1"})) }),
        )
        .route("/assistants/{id}", delete(del(deletes.clone())))
        .route(
            "/threads",
            post(|| async { Json(json!({"thread_id": "t-1"})) }),
        )
        .route("/threads/{id}", delete(del(deletes.clone())))
        .route("/threads/{id}/runs/wait", post(wait.clone()))
        .route("/threads/{id}/runs/stream", post(stream))
        .route("/threads/{id}/state", get(|| async { Json(json!({})) }))
        .route("/runs/wait", post(wait));
    serve_router(app).await
}

async fn expect_failure(fault: Fault, timeout: Duration, step: &str, needle: &str) -> Collector {
    let deletes = Arc::new(AtomicU64::new(0));
    let url = fake_target(fault, deletes.clone()).await;
    let flow = AgentFlow::new(&plan(&url, timeout), &BTreeMap::new()).unwrap();
    let rec = Collector::default();
    match run(&flow, 1, 0, &rec).await {
        IterationOutcome::Failed { step: s, reason } => {
            assert_eq!(s, step, "{reason}");
            assert!(reason.contains(needle), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(rec.sum("http_req_failed", &[("operation", step)]), 1.0);
    assert_eq!(
        deletes.load(Ordering::SeqCst),
        2,
        "thread and assistant deleted after the failure"
    );
    assert_eq!(rec.count("cleanup", &[]), 2);
    assert_eq!(
        rec.count("http_reqs", &[("operation", "store_delete")]),
        0,
        "no store item was made"
    );
    rec
}

#[tokio::test]
async fn a_run_error_body_fails_the_run() {
    let rec = expect_failure(
        Fault::RunErrorBody,
        Duration::from_secs(5),
        "run_wait",
        "__error__",
    )
    .await;
    assert_eq!(
        rec.count("http_reqs", &[("operation", "run_wait"), ("status", "200")]),
        1
    );
}

#[tokio::test]
async fn an_error_event_fails_the_stream() {
    let rec = expect_failure(
        Fault::StreamErrorEvent,
        Duration::from_secs(5),
        "run_stream",
        "boom",
    )
    .await;
    assert!(
        rec.sum("run_wait", &[]) > 0.0,
        "js-like text/plain run_wait passed"
    );
    assert_eq!(rec.sum("stream_events", &[]), 2.0);
}

#[tokio::test]
async fn a_malformed_stream_fails() {
    expect_failure(
        Fault::MalformedStream,
        Duration::from_secs(5),
        "run_stream",
        "metadata",
    )
    .await;
}

#[tokio::test]
async fn a_run_answer_over_the_body_limit_fails_its_step_and_is_counted_whole() {
    let rec = expect_failure(
        Fault::HugeRunAnswer,
        Duration::from_secs(10),
        "run_wait",
        "flow.response_body_limit",
    )
    .await;
    let got = rec.sum("data_received", &[("operation", "run_wait")]);
    assert!(got > HUGE as f64, "the whole answer is counted: {got}");
}

#[tokio::test]
async fn a_stream_line_over_the_body_limit_fails_the_request_with_an_error_tag() {
    let rec = expect_failure(
        Fault::HugeStreamLine,
        Duration::from_secs(10),
        "run_stream",
        "flow.response_body_limit",
    )
    .await;
    let tagged = [
        ("operation", "run_stream"),
        ("status", "0"),
        ("error", "body_limit"),
    ];
    assert_eq!(rec.sum("http_reqs", &tagged), 1.0);
    assert_eq!(rec.sum("http_req_failed", &tagged), 1.0);
    let got = rec.sum("data_received", &[("operation", "run_stream")]);
    assert!(
        got < HUGE as f64,
        "reading stops at the limit instead of taking the whole line: {got}"
    );
}

#[tokio::test]
async fn a_slow_target_times_out() {
    let rec = expect_failure(
        Fault::SlowRun,
        Duration::from_millis(300),
        "run_wait",
        "timeout",
    )
    .await;
    let d = rec.find(
        "http_req_duration",
        &[
            ("operation", "run_wait"),
            ("status", "0"),
            ("error", "timeout"),
        ],
    );
    assert_eq!(d.len(), 1);
    // At least the timeout; how much more is a performance question (bench/).
    assert!(d[0].value >= 300_000.0, "{}", d[0].value);
}

#[tokio::test]
async fn a_stream_cut_by_the_hard_stop_is_a_failed_interrupted_request() {
    let deletes = Arc::new(AtomicU64::new(0));
    let url = fake_target(Fault::HangingStream, deletes.clone()).await;
    let flow = AgentFlow::new(&plan(&url, Duration::from_secs(30)), &BTreeMap::new()).unwrap();
    let rec = Collector::default();
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        c2.cancel();
    });
    let t0 = Instant::now();
    assert_eq!(
        run_with(&flow, 1, 0, &rec, &cancel).await,
        IterationOutcome::Interrupted
    );
    assert!(t0.elapsed() >= Duration::from_millis(300));
    // The stream the stop cut is one failed request, tagged as interrupted.
    let cut = [
        ("operation", "run_stream"),
        ("status", "0"),
        ("error", "interrupted"),
    ];
    assert_eq!(rec.sum("http_reqs", &cut), 1.0);
    assert_eq!(rec.sum("http_req_failed", &cut), 1.0);
    let took = rec.find("http_req_duration", &cut);
    assert!(took.len() == 1 && took[0].value >= 1.0, "{took:?}");
    assert_eq!(rec.count("http_reqs", &[("operation", "run_stream")]), 1);
    assert_eq!(rec.count("agent_flow_success_rate", &[]), 0);
    let before = rec.len();
    assert_eq!(
        run_with(&flow, 1, 1, &rec, &cancel).await,
        IterationOutcome::Interrupted
    );
    assert_eq!(rec.len(), before, "a cancelled iteration records nothing");
    assert_eq!(deletes.load(Ordering::SeqCst), 0);
}

/// A server that answers the first request of each connection and closes the
/// connection when a second one arrives on it, like a server closing an idle connection
/// just as the client reuses it.
#[tokio::test]
async fn a_request_on_a_connection_closed_by_the_server_is_sent_again() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (l, url) = bind().await;
    let accepted = Arc::new(AtomicU64::new(0));
    let acc = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            acc.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                    .await;
                let _ = s.read(&mut buf).await; // the next request: close without answering
            });
        }
    });
    let http = barrage_worker::http::Http::new(
        barrage_worker::http::build_client().unwrap(),
        Duration::from_secs(5),
    );
    let cancel = CancellationToken::new();
    let full = format!("{url}/ok");
    let req = barrage_worker::http::Request {
        method: &reqwest::Method::GET,
        url: &full,
        body: None,
        auth: None,
        accept: None,
        extra: &[],
    };
    let mut body = Vec::new();
    let first = http.execute(&req, &mut body, &cancel).await.unwrap();
    assert_eq!((first.status, first.retried), (200, false));
    let second = http.execute(&req, &mut body, &cancel).await.unwrap();
    assert_eq!(second.status, 200, "{second:?}");
    assert!(second.retried, "{second:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    let _: SocketAddr = url.trim_start_matches("http://").parse().unwrap();
}

/// The real LangGraph servers (Python `langgraph dev`, LangGraph.js) of deploy/targets/,
/// started by `.ci/run` with a mock LLM: `BARRAGE_TARGET_PY_URL`, `BARRAGE_TARGET_JS_URL`.
/// Each one not set is a skip (a failure under `.ci/run`), recorded by `barrage_testkit`.
#[tokio::test]
async fn flow_against_real_langgraph_targets() {
    const TEST: &str = "flow::flow_against_real_langgraph_targets";
    let how = "run .ci/run, which starts both from deploy/targets/, or start one (deploy/targets/README.md) and export its URL";
    let targets: Vec<(&str, String)> = [
        ("py", "BARRAGE_TARGET_PY_URL"),
        ("js", "BARRAGE_TARGET_JS_URL"),
    ]
    .into_iter()
    .filter_map(|(name, var)| barrage_testkit::require_env(TEST, var, how).map(|u| (name, u)))
    .collect();
    if targets.is_empty() {
        return;
    }
    // The targets run side by side; each does 2 iterations, idles past the servers'
    // ~5 s keep-alive timeout, then a third on the same client.
    let runs = targets.into_iter().map(|(name, url)| async move {
        let flow = AgentFlow::new(&plan(&url, Duration::from_secs(60)), &BTreeMap::new()).unwrap();
        let rec = Collector::default();
        for it in 0..3 {
            if it == 2 {
                tokio::time::sleep(Duration::from_millis(5500)).await;
            }
            let out = run(&flow, 1, it, &rec).await;
            assert_eq!(out, IterationOutcome::Success, "{name} ({url}) iteration {it}");
        }
        for op in OPS {
            assert_eq!(rec.count("http_reqs", &[("operation", op)]), 3, "{name}: {op}");
        }
        assert_eq!(rec.sum("http_req_failed", &[]), 0.0, "{name}");
        assert!(rec.find("checks", &[]).iter().all(|c| c.value == 1.0), "{name}");
        // values mode: the first token is the state with the new AI message, after the
        // metadata event
        assert_eq!(rec.count("stream_first_token", &[]), 3, "{name}");
        // messages-tuple: the first non-empty AI chunk
        let mut tuple = plan(&url, Duration::from_secs(60));
        tuple.flow.stream_mode = vec!["messages-tuple".into()];
        let flow = AgentFlow::new(&tuple, &BTreeMap::new()).unwrap();
        let rec2 = Collector::default();
        let out = run(&flow, 1, 3, &rec2).await;
        assert_eq!(out, IterationOutcome::Success, "{name} ({url}) messages-tuple");
        let first = rec2.find("stream_first_event", &[])[0].value;
        let token = rec2.find("stream_first_token", &[]);
        assert_eq!(token.len(), 1, "{name}: messages-tuple has a first token");
        assert!(token[0].value >= first, "{name}: token {} < event {first}", token[0].value);
        assert!(
            rec2.find("stream_events", &[])[0].value > 3.0,
            "{name}: messages-tuple streams chunk by chunk"
        );
        let ms = |m: &str| rec.find(m, &[]).iter().map(|g| format!("{:.1}", g.value / 1000.0)).collect::<Vec<_>>().join(" ");
        println!(
            "{name}: 3 iterations passed against {url}; ms run_wait [{}] run_stream [{}] first event [{}] events [{}]",
            ms("run_wait"),
            ms("run_stream"),
            ms("stream_first_event"),
            rec.find("stream_events", &[]).iter().map(|g| g.value.to_string()).collect::<Vec<_>>().join(" "),
        );
    });
    futures_util::future::join_all(runs).await;
}

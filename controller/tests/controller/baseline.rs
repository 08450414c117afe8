//! Resources back to baseline (issue 13 §2): a soak counts the target's threads,
//! assistants, store items and active runs at its start and end and reports what was left.
//! First the counting itself against a small fake Agent Protocol server (paging, the page
//! and time caps, auth, busy threads' runs, store prefixes); then `barrage run --soak`
//! against the real LangGraph Python and JS servers `.ci/run` starts: the agent flow
//! leaves nothing, a flow without its cleanup steps is reported by count.
use crate::util::Proc;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use barrage_controller::soak::paging::Limits;
use barrage_controller::soak::resources::{check, Auth, Counter};
use barrage_core::Secret;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the fake target holds and what it was asked.
#[derive(Default)]
struct Fake {
    /// `(thread_id, status)`.
    threads: Vec<(String, &'static str)>,
    assistants: u64,
    /// `(namespace, key)`.
    items: Vec<(Vec<String>, String)>,
    /// Run statuses by thread; a busy thread missing here answers 404 to its run list.
    runs: std::collections::BTreeMap<String, Vec<&'static str>>,
    /// Each answer waits this long.
    delay: Duration,
    /// `(path, limit, offset)` of every listing asked.
    asked: Vec<(String, u64, u64)>,
}

type Shared = Arc<Mutex<Fake>>;
const TOKEN: &str = "t0k3n";

fn page<T: Clone>(fake: &mut Fake, path: &str, body: &Value, all: &[T]) -> Vec<T> {
    let limit = body["limit"].as_u64().unwrap_or(10);
    let offset = body["offset"].as_u64().unwrap_or(0);
    fake.asked.push((path.into(), limit, offset));
    all.iter()
        .skip(offset as usize)
        .take(limit.min(1000) as usize)
        .cloned()
        .collect()
}

async fn answer(s: &Shared, h: &HeaderMap, f: impl FnOnce(&mut Fake) -> Response) -> Response {
    if h.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {TOKEN}")) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let delay = s.lock().unwrap().delay;
    tokio::time::sleep(delay).await;
    f(&mut s.lock().unwrap())
}

/// A fake LangGraph-like server on a free loopback port: `/threads/search` only (no
/// `/threads/count`), `/assistants/count`, busy threads' run lists, the store's namespaces
/// and items; every request needs the bearer token.
async fn fake_target(fake: Shared) -> String {
    let app = Router::new()
        .route(
            "/threads/search",
            post(
                |State(s): State<Shared>, h: HeaderMap, Json(b): Json<Value>| async move {
                    answer(&s, &h, |f| {
                        let status = b["status"].as_str();
                        let all: Vec<Value> = f
                            .threads
                            .iter()
                            .filter(|(_, st)| status.is_none_or(|s| s == *st))
                            .map(|(id, st)| json!({"thread_id": id, "status": st}))
                            .collect();
                        Json(page(f, "/threads/search", &b, &all)).into_response()
                    })
                    .await
                },
            ),
        )
        .route(
            "/assistants/count",
            post(|State(s): State<Shared>, h: HeaderMap| async move {
                answer(&s, &h, |f| Json(json!(f.assistants)).into_response()).await
            }),
        )
        .route(
            "/threads/{id}/runs",
            get(
                |State(s): State<Shared>, h: HeaderMap, UrlPath(id): UrlPath<String>| async move {
                    answer(&s, &h, |f| match f.runs.get(&id) {
                        Some(r) => {
                            let runs: Vec<Value> =
                                r.iter().map(|st| json!({"status": st})).collect();
                            Json(runs).into_response()
                        }
                        None => StatusCode::NOT_FOUND.into_response(),
                    })
                    .await
                },
            ),
        )
        .route(
            "/store/namespaces",
            post(
                |State(s): State<Shared>, h: HeaderMap, Json(b): Json<Value>| async move {
                    answer(&s, &h, |f| {
                        let mut top: Vec<Vec<String>> =
                            f.items.iter().map(|(ns, _)| vec![ns[0].clone()]).collect();
                        top.sort();
                        top.dedup();
                        let p = page(f, "/store/namespaces", &b, &top);
                        Json(json!({ "namespaces": p })).into_response()
                    })
                    .await
                },
            ),
        )
        .route(
            "/store/items/search",
            post(
                |State(s): State<Shared>, h: HeaderMap, Json(b): Json<Value>| async move {
                    answer(&s, &h, |f| {
                        let prefix: Vec<String> =
                            serde_json::from_value(b["namespace_prefix"].clone())
                                .unwrap_or_default();
                        // like the JS server: an empty prefix is refused
                        if prefix.is_empty() {
                            return (StatusCode::BAD_REQUEST, "Namespace is required")
                                .into_response();
                        }
                        let all: Vec<Value> = f
                            .items
                            .iter()
                            .filter(|(ns, _)| ns.starts_with(&prefix))
                            .map(|(ns, k)| json!({"namespace": ns, "key": k}))
                            .collect();
                        Json(json!({ "items": page(f, "/store/items/search", &b, &all) }))
                            .into_response()
                    })
                    .await
                },
            ),
        )
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn limits(page: u64, max_pages: u64) -> Limits {
    Limits {
        page,
        max_pages,
        budget: Duration::from_secs(20),
        max_run_lists: 10,
        settle: Duration::from_millis(600),
    }
}

#[tokio::test]
async fn counts_page_to_the_end_within_their_limits() {
    let fake: Shared = Default::default();
    {
        let mut f = fake.lock().unwrap();
        f.threads = (0..2503).map(|i| (format!("t{i}"), "idle")).collect();
        for (id, runs) in [
            ("busy-a", Some(vec!["pending", "running", "success"])),
            ("busy-b", None),
        ] {
            f.threads.push((id.into(), "busy"));
            if let Some(r) = runs {
                f.runs.insert(id.into(), r);
            }
        }
        f.assistants = 7;
        for i in 0..250 {
            f.items
                .push((vec!["barrage".into(), format!("vu-{i}")], "item".into()));
        }
        for i in 0..30 {
            f.items.push((vec!["other".into()], format!("k{i}")));
        }
    }
    let url = fake_target(fake.clone()).await;
    let auth = || Auth::Bearer(Secret::new(TOKEN));

    // to the end: every page asked in order, the last one short
    let counter = Counter::new(&url, auth()).with_limits(limits(100, 100));
    let (source, c) = counter.count().await.expect("the fake answers");
    assert_eq!(
        source,
        "search endpoints (store items under every namespace)"
    );
    assert_eq!(c.threads, Some(2505), "{c:?}");
    assert_eq!(c.assistants, Some(7), "{c:?}");
    // busy-a: pending + running; busy-b's runs cannot be listed: one, a lower bound
    assert_eq!(c.runs_active, Some(3), "{c:?}");
    // every top-level namespace (the fake, like the JS server, refuses an empty prefix)
    assert_eq!(c.store_items, Some(280), "{c:?}");
    assert_eq!(c.capped, vec!["runs_active"], "{c:?}");
    let thread_pages: Vec<(u64, u64)> = fake
        .lock()
        .unwrap()
        .asked
        .iter()
        .filter(|(p, ..)| p == "/threads/search")
        .map(|(_, l, o)| (*l, *o))
        .collect();
    let want: Vec<(u64, u64)> = (0..26).map(|p| (100, p * 100)).collect();
    // the thread count's 26 pages, then the busy threads' one page
    assert_eq!(thread_pages[..26], want[..], "{thread_pages:?}");
    assert_eq!(thread_pages.len(), 27, "{thread_pages:?}");

    // the flow's prefix only
    let c = Counter::new(&url, auth())
        .with_limits(limits(100, 100))
        .with_store_prefixes(vec![vec!["barrage".into()]])
        .count()
        .await
        .unwrap();
    assert_eq!(c.0, r#"search endpoints (store items under [["barrage"]])"#);
    assert_eq!(c.1.store_items, Some(250));

    // the page cap: 10 pages of 100 threads, a lower bound
    let (_, c) = Counter::new(&url, auth())
        .with_limits(limits(100, 10))
        .count()
        .await
        .unwrap();
    assert_eq!(c.threads, Some(1000), "{c:?}");
    assert!(c.capped.contains(&"threads".to_string()), "{c:?}");
    assert_eq!(c.store_items, Some(280), "{c:?}");

    // without the token the target answers nothing: no counts, no check
    assert!(Counter::new(&url, Auth::None).count().await.is_none());

    // the time budget: 300 ms per answer, 1 s for everything
    fake.lock().unwrap().delay = Duration::from_millis(300);
    let started = Instant::now();
    let (_, c) = Counter::new(&url, auth())
        .with_limits(Limits {
            budget: Duration::from_secs(1),
            ..limits(100, 100)
        })
        .count()
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "the budget bounds a count: {took:?}"
    );
    assert!(c.threads.unwrap() < 2505, "{c:?}");
    for kind in ["threads", "store_items"] {
        assert!(c.capped.contains(&kind.to_string()), "{kind}: {c:?}");
    }
    fake.lock().unwrap().delay = Duration::ZERO;

    // the check: what the target holds beyond the start, by count
    let counter = Counter::new(&url, auth()).with_limits(limits(1000, 100));
    let start = counter.count().await;
    {
        let mut f = fake.lock().unwrap();
        for i in 0..5 {
            f.threads.push((format!("left-{i}"), "idle"));
        }
        f.assistants += 2;
        f.items
            .push((vec!["barrage".into(), "x".into()], "left".into()));
        // busy-a's running run finishes
        f.runs
            .insert("busy-a".into(), vec!["pending", "success", "success"]);
    }
    let r = check(&counter, start.clone()).await.unwrap();
    assert_eq!(
        r.left,
        vec![
            "threads: 5 more than at the start (2505 → 2510)",
            "assistants: 2 more than at the start (7 → 9)",
            "store_items: 1 more than at the start (280 → 281)",
        ],
        "{r:?}"
    );
    // runs_active was a lower bound at both ends and did not rise: not judged
    assert_eq!(r.capped.len(), 1, "{r:?}");
    assert!(r.capped[0].starts_with("runs_active: not judged"), "{r:?}");
    // back to baseline once they are deleted
    {
        let mut f = fake.lock().unwrap();
        f.threads.retain(|(id, _)| !id.starts_with("left-"));
        f.assistants -= 2;
        f.items.retain(|(_, k)| k != "left");
    }
    let r = check(&counter, start).await.unwrap();
    assert!(r.left.is_empty(), "{r:?}");
}

/// A flow that creates an assistant, a thread, a run delayed by an hour (pending for the
/// rest of the test) and a store item per iteration, and deletes none of them.
const LEAKY: &str = r#"
[flow]
name = "leaky"
[flows.leaky]
description = "the agent flow's resources without its cleanup steps"
[[flows.leaky.steps]]
name = "create_assistant"
method = "POST"
path = "/assistants"
body = '{"graph_id":"agent","config":{"configurable":{"model_name":"openai:mock-gpt-4o","barrage_tag":"leak-{vu}-{iter}"}},"metadata":{"source":"barrage-leak"}}'
checks = [{ check = "non_empty", pointer = "/assistant_id" }]
capture = { assistant_id = "/assistant_id" }
[[flows.leaky.steps]]
name = "create_thread"
method = "POST"
path = "/threads"
body = '{"metadata":{"source":"barrage-leak"}}'
checks = [{ check = "non_empty", pointer = "/thread_id" }]
capture = { thread_id = "/thread_id" }
[[flows.leaky.steps]]
name = "delayed_run"
method = "POST"
path = "/threads/{thread_id}/runs"
body = '{"assistant_id":"{assistant_id}","input":{"messages":[{"role":"user","content":"later"}]},"after_seconds":3600}'
checks = [{ check = "non_empty", pointer = "/run_id" }]
[[flows.leaky.steps]]
name = "store_put"
method = "PUT"
path = "/store/items"
body = '{"namespace":["barrage-leak","vu-{vu}"],"key":"it-{iter}","value":{"iter":{iter}}}'
kind = "ignore"
"#;

/// `barrage run --soak` of `scenario` + `extra` against `url`; its summary and its output.
fn soak(name: &str, url: &str, scenario: &str, extra: &str) -> (Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.toml");
    std::fs::write(
        &plan,
        format!("name = \"baseline\"\ninterval = \"1s\"\ngraceful_stop = \"20s\"\n{scenario}\n[target]\nruntime = \"{name}\"\n{extra}"),
    )
    .unwrap();
    let results = dir.path().join("results");
    let mut run = Proc::barrage(
        &format!("barrage run --soak ({name})"),
        &[
            "run",
            "--plan",
            plan.to_str().unwrap(),
            "--target",
            url,
            "--workers",
            "1",
            "--no-progress",
            "--allow-invalid",
            "--results-dir",
            results.to_str().unwrap(),
            "--soak",
        ],
    );
    let code = run.exit_code(Duration::from_secs(120));
    // 99: the seed's thresholds may fail on a debug build against a slow target; the
    // check does not depend on them
    assert!(
        code == 0 || code == 99,
        "{name}: exit {code}\n{}",
        run.output()
    );
    (
        barrage_testkit::summary::only_summary(&results),
        run.output(),
    )
}

/// Deletes what the leaky flow left (the shared servers serve other tests).
async fn clean_up(url: &str) {
    let http = reqwest::Client::new();
    let send = |method: reqwest::Method, path: String, body: Value| {
        let req = http
            .request(method, format!("{url}{path}"))
            .header("content-type", "application/json")
            .body(body.to_string());
        async move {
            let bytes = req.send().await.ok()?.bytes().await.ok()?;
            serde_json::from_slice::<Value>(bytes.trim_ascii_start()).ok()
        }
    };
    let meta = json!({"metadata": {"source": "barrage-leak"}, "limit": 1000});
    let post = reqwest::Method::POST;
    let delete = reqwest::Method::DELETE;
    let threads = send(post.clone(), "/threads/search".into(), meta.clone()).await;
    for t in threads.iter().filter_map(Value::as_array).flatten() {
        let id = t["thread_id"].as_str().unwrap_or("-");
        send(delete.clone(), format!("/threads/{id}"), Value::Null).await;
    }
    let assistants = send(post.clone(), "/assistants/search".into(), meta).await;
    for a in assistants.iter().filter_map(Value::as_array).flatten() {
        let id = a["assistant_id"].as_str().unwrap_or("-");
        send(delete.clone(), format!("/assistants/{id}"), Value::Null).await;
    }
    let prefix = json!({"namespace_prefix": ["barrage-leak"], "limit": 1000});
    let items = send(post, "/store/items/search".into(), prefix).await;
    for i in items.iter().filter_map(|v| v["items"].as_array()).flatten() {
        let body = json!({"namespace": i["namespace"], "key": i["key"]});
        send(delete.clone(), "/store/items".into(), body).await;
    }
}

/// The agent flow on a real LangGraph server ends where it started; the leaky flow's
/// 3 iterations leave 3 of everything, each reported by count.
fn real_target(name: &str, url: &str) {
    let (clean, _) = soak(
        name,
        url,
        "[scenario]\nexecutor = \"constant-vus\"\nvus = 2\nduration = \"8s\"",
        "",
    );
    let res = &clean["trends"]["resources"];
    assert_eq!(
        res["source"], "search endpoints (store items under [[\"barrage\"]])",
        "{name}: {res}"
    );
    let iterations = clean["metrics"]["iterations"]["count"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(
        iterations >= 2.0,
        "{name}: the agent flow ran: {}",
        clean["metrics"]["iterations"]
    );
    // and passed: its cleanup steps ran on every iteration
    assert_eq!(
        clean["metrics"]["http_req_failed"]["rate"], 0.0,
        "{name}: {}",
        clean["metrics"]["http_req_failed"]
    );
    assert_eq!(res["left"], json!([]), "{name}: {res}");
    assert!(res.get("capped").is_none(), "{name}: {res}");
    eprintln!("{name}, agent flow: {res}");
    for kind in ["threads", "assistants", "store_items", "runs_active"] {
        assert!(res["end"][kind].is_u64(), "{name}: {kind} counted: {res}");
    }
    // a LangGraph server's system assistant (one per graph) is in the baseline
    assert!(
        res["start"]["assistants"].as_u64().unwrap() >= 1,
        "{name}: {res}"
    );

    let (leaky, leaky_out) = soak(
        name,
        url,
        "[scenario]\nexecutor = \"per-vu-iterations\"\nvus = 1\niterations = 3",
        LEAKY,
    );
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(clean_up(url));
    let res = &leaky["trends"]["resources"];
    eprintln!("{name}, leaky flow: {res}");
    assert_eq!(
        leaky["metrics"]["iterations"]["count"], 3.0,
        "{name}: {}",
        leaky["metrics"]
    );
    assert_eq!(
        res["source"], "search endpoints (store items under [[\"barrage-leak\"]])",
        "{name}: {res}"
    );
    let (s, e) = (&res["start"], &res["end"]);
    let line = |kind: &str| {
        format!(
            "{kind}: 3 more than at the start ({} → {})",
            s[kind],
            s[kind].as_u64().unwrap() + 3
        )
    };
    assert_eq!(
        res["left"],
        json!([
            line("threads"),
            line("assistants"),
            line("store_items"),
            line("runs_active")
        ]),
        "{name}: {res}"
    );
    assert_eq!(
        e["runs_active"],
        s["runs_active"].as_u64().unwrap() + 3,
        "{name}: {res}"
    );
    assert!(
        leaky_out.contains("LEFT threads: 3 more than at the start"),
        "{name}: the printed summary says it: {leaky_out}"
    );
}

/// Against the LangGraph Python and JS dev servers started by `.ci/run` (each one not
/// set is a skip, a failure under `.ci/run`), one after the other: each test's counts
/// would see the other's resources on a shared server, so one test drives both.
#[test]
fn resources_return_to_baseline_on_real_langgraph_targets() {
    const TEST: &str = "baseline::resources_return_to_baseline_on_real_langgraph_targets";
    let how = "run .ci/run, which starts both from deploy/targets/, or start one (deploy/targets/README.md) and export its URL";
    for (name, var) in [
        ("py", "BARRAGE_TARGET_PY_URL"),
        ("js", "BARRAGE_TARGET_JS_URL"),
    ] {
        if let Some(url) = barrage_testkit::require_env(TEST, var, how) {
            real_target(name, &url);
        }
    }
}

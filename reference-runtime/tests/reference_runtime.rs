//! Integration tests: the real `barrage-reference-runtime` binary on 127.0.0.1,
//! talking to a stub OpenAI-compatible LLM served from this test process.
//!
//! `support/` has the stub LLM (`StubLlm`, counting calls), the child process
//! (`Server`, killed on drop, output printed when it misbehaves), a small HTTP
//! client, and `flow` (the 8-step flow with check_flow.sh's checks). Nothing
//! sleeps to synchronise: the tests wait on the `listening on` line, on process
//! exit, on the stub's gate, or poll the server.

mod support;

#[path = "reference_runtime/llm_http2.rs"]
mod llm_http2;

use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use support::*;

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
    // Both failed runs kept their input, as LangGraph's input checkpoint does.
    let kinds: Vec<&str> = thread["values"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["human", "human"]);
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
    let gate = Arc::new(Semaphore::new(0));
    let llm = StubLlm::start(StubBehaviour {
        gate: Some(gate.clone()),
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
    // While the run waits on the LLM, the state holds its input checkpoint.
    let state = http
        .get(&server.url(&format!("/threads/{thread_id}/state")))
        .await
        .json();
    assert_eq!(
        state["values"]["messages"][0]["content"], "first",
        "{state}"
    );
    assert_eq!(state["values"]["messages"].as_array().unwrap().len(), 1);
    assert_eq!(state["metadata"]["source"], "input");
    let rejected = http
        .post(
            &run_url,
            &json!({"assistant_id": "agent", "input": user("x"), "multitask_strategy": "reject"}),
        )
        .await;
    expect(&rejected, 409, "reject while busy");
    let queued = tokio::spawn({
        let (http, url) = (http.clone(), run_url.clone());
        async move {
            http.post(
                &url,
                &json!({"assistant_id": "agent", "input": user("second")}),
            )
            .await
        }
    });
    // Let the LLM answer both runs; the second waits for the first.
    gate.add_permits(2);
    let (first, queued) = (first.await.unwrap(), queued.await.unwrap());
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
async fn sigterm_drains_in_flight_runs_and_exits_zero() {
    let gate = Arc::new(Semaphore::new(0));
    let llm = StubLlm::start(StubBehaviour {
        gate: Some(gate.clone()),
        ..Default::default()
    })
    .await;
    let mut server = Server::start(&llm.base_url, &[], &[]);
    let http = Http::new();
    // A run that is waiting on the LLM when the signal comes.
    let in_flight = tokio::spawn({
        let (http, url) = (http.clone(), server.url("/runs/wait"));
        async move {
            http.post(
                &url,
                &json!({"assistant_id": "agent", "input": user("late")}),
            )
            .await
        }
    });
    let start = Instant::now();
    while llm.calls() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "run never reached the LLM"
        );
        tokio::task::yield_now().await;
    }
    let status = Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    // Once the signal is handled, new connections are refused.
    let probe = reqwest::Client::builder().no_proxy().build().unwrap();
    while probe.get(server.url("/ok")).send().await.is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "still accepting after SIGTERM"
        );
        tokio::task::yield_now().await;
    }
    gate.add_permits(1);
    let answer = in_flight.await.unwrap();
    expect(&answer, 200, "in-flight run during shutdown");
    assert_eq!(answer.json()["messages"][1]["content"], ANSWER);
    let exit = server.wait_exit(Duration::from_secs(15));
    if !exit.success() {
        server.fail(&format!("exit status {exit:?} after SIGTERM"));
    }
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
    const TEST: &str = "barrage_reference_runtime::check_flow_script_passes";
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/targets/check_flow.sh"
    );
    assert!(
        std::path::Path::new(script).exists(),
        "{script} is part of the repository"
    );
    for tool in ["bash", "curl", "jq", "awk"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        let how = format!("apt-get install {tool}, or run .ci/run");
        if barrage_testkit::require(TEST, tool, found.then_some(()), &how).is_none() {
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

/// Events are written as they happen: the metadata and input-state events reach the
/// client while the LLM has not answered yet (the stub holds its answer until the
/// test has read them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_events_are_flushed_before_the_run_ends() {
    let gate = Arc::new(Semaphore::new(0));
    let llm = StubLlm::start(StubBehaviour {
        gate: Some(gate.clone()),
        ..Default::default()
    })
    .await;
    let server = Server::start(&llm.base_url, &[], &[]);
    let http = Http::new();
    let response = http
        .client
        .post(server.url("/runs/stream"))
        .header("content-type", "application/json")
        .body(json!({"assistant_id": "agent", "input": user("hi"), "stream_mode": ["values", "messages-tuple"]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut seen = String::new();
    while seen.matches("\n\n").count() < 2 {
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
            .await
            .expect("first events not flushed while the LLM is still working")
            .expect("stream ended early")
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.starts_with("event: metadata\ndata: {"), "{seen}");
    assert!(seen.contains("event: values\n"), "{seen}");
    assert!(
        !seen.contains("event: messages"),
        "the LLM has not answered yet: {seen}"
    );
    gate.add_permits(1);
    while let Some(chunk) = body.next().await {
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    assert_eq!(
        seen.matches("event: messages\n").count(),
        stub_chunk_count(),
        "{seen}"
    );
    assert!(seen.trim_end().ends_with('}'), "{seen}");
    assert_eq!(seen.matches("event: values\n").count(), 2);
    assert_eq!(llm.streamed(), 1);
}

/// `--assistant-id-from-config`: the behaviour of servers that key assistants by graph and
/// config. Same graph + config (whatever the name and metadata) is a 409 in their shape
/// while the first exists; another config, or the same one after a delete, is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_assistants_conflict_on_the_same_graph_and_config() {
    let llm = StubLlm::start(StubBehaviour::default()).await;
    let server = Server::start(&llm.base_url, &["--assistant-id-from-config"], &[]);
    let http = Http::new();
    let url = server.url("/assistants");
    let body = |name: &str, tag: &str| {
        json!({"graph_id": "agent", "name": name, "metadata": {"n": name},
               "config": {"configurable": {"model_name": "openai:m", "barrage_tag": tag}}})
    };
    let first = http.post(&url, &body("vu-1", "a")).await;
    expect(&first, 200, "first assistant");
    let id = first.json()["assistant_id"].as_str().unwrap().to_owned();
    let again = http.post(&url, &body("vu-2", "a")).await;
    assert_eq!(
        (again.status, again.json()),
        (
            409,
            json!({"error": "conflict", "message": format!("Assistant '{id}' already exists")})
        )
    );
    let other = http.post(&url, &body("vu-2", "b")).await;
    expect(&other, 200, "another config");
    assert_ne!(other.json()["assistant_id"], json!(id));
    let do_nothing = http
        .post(
            &url,
            &json!({"graph_id": "agent", "if_exists": "do_nothing",
            "config": {"configurable": {"barrage_tag": "a", "model_name": "openai:m"}}}),
        )
        .await;
    expect(
        &do_nothing,
        200,
        "if_exists=do_nothing returns the existing one",
    );
    assert_eq!(do_nothing.json()["name"], "vu-1");
    expect(
        &http
            .delete(&server.url(&format!("/assistants/{id}")), None)
            .await,
        204,
        "delete",
    );
    let after_delete = http.post(&url, &body("vu-3", "a")).await;
    expect(&after_delete, 200, "same config after the delete");
    assert_eq!(after_delete.json()["assistant_id"], json!(id));

    // The default server gives every assistant its own id.
    let plain = Server::start(&llm.base_url, &[], &[]);
    let url = plain.url("/assistants");
    for _ in 0..2 {
        expect(
            &http.post(&url, &body("x", "a")).await,
            200,
            "default: no key",
        );
    }
    // ... and the env variable turns the option on like the flag.
    let by_env = Server::start(&llm.base_url, &[], &[("ASSISTANT_ID_FROM_CONFIG", "true")]);
    let url = by_env.url("/assistants");
    expect(&http.post(&url, &body("x", "a")).await, 200, "env: first");
    expect(
        &http.post(&url, &body("y", "a")).await,
        409,
        "env: duplicate",
    );
}

//! The process: bad configuration exits 2 naming the setting; signals shut down gracefully.

use std::time::{Duration, Instant};

use crate::harness::{chat_body, client, parse_sse, run_to_exit, Event, Server};

#[test]
fn bad_config_exits_2_naming_the_setting() {
    /// (args, env, text the message must contain)
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (&[], &[("MOCK_LLM_PORT", "eighty")], "MOCK_LLM_PORT"),
        (&[], &[("MOCK_LLM_DELAY_MS", "-5")], "MOCK_LLM_DELAY_MS"),
        (
            &[],
            &[("MOCK_LLM_STREAM_DELAY_MS", "1.5")],
            "MOCK_LLM_STREAM_DELAY_MS",
        ),
        (&[], &[("MOCK_LLM_ERROR_RATE", "2")], "MOCK_LLM_ERROR_RATE"),
        (
            &[],
            &[("MOCK_LLM_ERROR_STATUS", "404")],
            "MOCK_LLM_ERROR_STATUS",
        ),
        (
            &[],
            &[("MOCK_LLM_DISCONNECT_RATE", "x")],
            "MOCK_LLM_DISCONNECT_RATE",
        ),
        (
            &[],
            &[("MOCK_LLM_TOOL_CALL_RATE", "-1")],
            "MOCK_LLM_TOOL_CALL_RATE",
        ),
        (&[], &[("MOCK_LLM_HOST", "not-an-ip")], "MOCK_LLM_HOST"),
        (&[], &[("MOCK_LLM_JITTER_MS", "a")], "MOCK_LLM_JITTER_MS"),
        (&[], &[("MOCK_LLM_RESPONSE", "  ")], "MOCK_LLM_RESPONSE"),
        (&["--error-status", "418"], &[], "--error-status"),
        (&["--threads", "0"], &[], "--threads"),
        (&["--max-body-bytes", "0"], &[], "--max-body-bytes"),
        (&["--port", "70000"], &[("MOCK_LLM_PORT", "1234")], "--port"),
        // clap's own usage errors exit 2 too.
        (&["--no-such-flag"], &[], "--no-such-flag"),
    ];
    for (args, env, needle) in cases {
        let out = run_to_exit(args, env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?} {env:?}: message does not name {needle}: {stderr}"
        );
        assert!(
            out.stdout.is_empty(),
            "nothing is served: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    // Every problem at once, with the accepted form.
    let out = run_to_exit(
        &["--threads", "0"],
        &[("MOCK_LLM_PORT", "x"), ("MOCK_LLM_ERROR_STATUS", "1")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    for needle in [
        "MOCK_LLM_PORT",
        "MOCK_LLM_ERROR_STATUS",
        "--threads",
        "0..=65535",
        "429, 500, 503",
    ] {
        assert!(stderr.contains(needle), "{needle} missing: {stderr}");
    }
}

#[test]
fn help_lists_the_variables() {
    let out = run_to_exit(&["--help"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for var in [
        "MOCK_LLM_PORT",
        "MOCK_LLM_DELAY_MS",
        "MOCK_LLM_ERROR_STATUS",
        "MOCK_LLM_TOOL_CALL_RATE",
    ] {
        assert!(help.contains(var), "{var} missing from --help:\n{help}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_streams_finish() {
    // One stream takes 10 + 42 * 10 = 430 ms.
    let mut server = Server::start(&["--stream-delay-ms", "10"]);
    let c = client();
    let res = server.chat(&c, &chat_body(true, true)).await;
    assert_eq!(res.status(), 200);
    let reading = tokio::spawn(async move { res.text().await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t0 = Instant::now();
    let status = tokio::task::block_in_place(|| server.terminate(Duration::from_secs(10)));
    assert!(
        status.success(),
        "exit status {status:?}\n{}",
        server.diagnostics()
    );
    let body = reading.await.unwrap().expect("the stream finished");
    let events = parse_sse(&body);
    assert!(
        matches!(events.last(), Some(Event::Done)),
        "stream cut by shutdown: {body}"
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(200),
        "exited before the stream could finish"
    );
    let stderr = server.stderr();
    assert!(
        stderr.contains("SIGTERM") && stderr.contains("shut down cleanly"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grace_period_bounds_shutdown() {
    // A stream that would take 10 s; the grace period is 200 ms.
    let mut server = Server::start(&["--stream-delay-ms", "250", "--grace-ms", "200"]);
    let c = client();
    let res = server.chat(&c, &chat_body(true, false)).await;
    assert_eq!(res.status(), 200);
    // Reads chunk by chunk, keeping what arrived before the error that ends a cut stream.
    let reading = tokio::spawn(async move {
        let mut res = res;
        let mut got = Vec::new();
        loop {
            match res.chunk().await {
                Ok(Some(bytes)) => got.extend_from_slice(&bytes),
                Ok(None) => return (got, None),
                Err(e) => return (got, Some(e)),
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t0 = Instant::now();
    let status = tokio::task::block_in_place(|| server.terminate(Duration::from_secs(10)));
    let took = t0.elapsed();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        took < Duration::from_secs(3),
        "shutdown took {took:?} with a 200 ms grace period"
    );
    let stderr = server.stderr();
    assert!(stderr.contains("grace period elapsed"), "{stderr}");
    // The client sees the stream cut: an error instead of the end of the chunked body,
    // and no [DONE] before it.
    let (got, error) = reading.await.unwrap();
    let text = String::from_utf8_lossy(&got);
    let error = error.unwrap_or_else(|| panic!("the stream ended cleanly: {text}"));
    assert!(error.is_body() || error.is_decode(), "{error:?}");
    assert!(!text.contains("[DONE]"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_do_not_delay_shutdown() {
    let mut server = Server::start(&[]);
    let c = client();
    // Leaves a pooled keep-alive connection open.
    server.get_json(&c, "/health").await;
    let t0 = Instant::now();
    let status = tokio::task::block_in_place(|| server.terminate(Duration::from_secs(10)));
    assert!(status.success());
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "shutdown waited for an idle connection: {:?}",
        t0.elapsed()
    );
    assert!(
        server.stderr().contains("shut down cleanly"),
        "{}",
        server.stderr()
    );
}

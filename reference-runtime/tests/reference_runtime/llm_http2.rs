//! The LLM leg over HTTP/2 (`OPENAI_HTTP2`): many streaming runs at once against barrage's
//! real mock LLM (served from this test process), every run streamed to its end, and the
//! mock seeing them over one connection instead of one each.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use barrage_testkit::net::established_on_port;
use serde_json::{json, Value};

use crate::support::{user, Http, Server};

/// The mock's answer: eight words, one chunk each.
const ANSWER: &str = "one two three four five six seven eight";

/// barrage's mock LLM on 127.0.0.1:0: the first chunk after 3 s, so that every call of a
/// batch is in flight at once even when starting the batch takes seconds (a loaded
/// machine), then one chunk every 100 ms; stopped when dropped.
struct Mock {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Mock {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start_mock() -> Mock {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = barrage_mock_llm::Config {
        delay: Duration::from_secs(3),
        stream_delay: Duration::from_millis(100),
        response: ANSWER.into(),
        grace: Duration::ZERO,
        ..Default::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(barrage_mock_llm::serve(listener, config, async {
        let _ = stopped.await;
    }));
    Mock {
        addr,
        stop: Some(stop),
    }
}

/// Starts `runs` streaming runs at once (token-level modes, so the LLM is streamed); once
/// the mock has them all in flight, returns how many connections it held then, and checks
/// every run's events.
async fn concurrent_runs(server: &Server, mock: &Mock, runs: usize) -> usize {
    let http = Http::new();
    let body = json!({
        "assistant_id": "agent",
        "input": user("hello"),
        "stream_mode": ["messages-tuple", "values"],
    });
    let tasks: Vec<_> = (0..runs)
        .map(|_| {
            let (http, url, body) = (http.clone(), server.url("/runs/stream"), body.clone());
            tokio::spawn(async move { http.post(&url, &body).await })
        })
        .collect();
    let stats_url = format!("http://{}/stats", mock.addr);
    let deadline = Instant::now() + Duration::from_secs(30);
    let connections = loop {
        let stats = http.get(&stats_url).await.json();
        // this /stats request counts itself
        if stats["in_flight"].as_u64().unwrap() > runs as u64 {
            break established_on_port(mock.addr.port());
        }
        assert!(
            Instant::now() < deadline,
            "the mock never had all {runs} calls in flight at once: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for task in tasks {
        let answer = task.await.unwrap();
        assert_eq!(answer.status, 200, "{}", answer.text());
        let events = answer.events();
        let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
        assert_eq!(names.first(), Some(&"metadata"), "{names:?}");
        assert_eq!(names.last(), Some(&"values"), "{names:?}");
        let streamed: String = events
            .iter()
            .filter(|(e, _)| e == "messages")
            .map(|(_, data)| data[0]["content"].as_str().unwrap())
            .collect();
        assert_eq!(streamed, ANSWER, "{names:?}");
        let last: &Value = &events.last().unwrap().1;
        assert_eq!(last["messages"][1]["content"], ANSWER, "{last}");
    }
    connections
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_runs_share_one_http2_connection_to_the_llm() {
    let mock = start_mock().await;
    let llm = format!("http://{}/v1", mock.addr);
    let server = Server::start(&llm, &["--threads", "2"], &[("OPENAI_HTTP2", "1")]);
    let connections = concurrent_runs(&server, &mock, 200).await;
    // the h2 connection and the one this test reads /stats over; the client may open a
    // spare while the first connection's handshake is pending (seen under load: 3 to 4),
    // never one per call as HTTP/1.1 does below
    assert!(
        connections <= 8,
        "200 LLM calls in flight over {connections} connections"
    );
    drop(server);

    // The same over HTTP/1.1 (the default): a connection per call in flight.
    let server = Server::start(&llm, &["--threads", "2"], &[]);
    let connections = concurrent_runs(&server, &mock, 50).await;
    assert!(
        connections > 50,
        "50 LLM calls in flight over HTTP/1.1 but only {connections} connections"
    );
}

#[test]
fn a_bad_http2_switch_is_refused_naming_the_variable() {
    let out = crate::support::command(&["--port", "0"], &[("OPENAI_HTTP2", "maybe")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("OPENAI_HTTP2") && stderr.contains("\"maybe\""),
        "{stderr}"
    );
}

//! HTTP/2 with prior knowledge (h2c) on the same port as HTTP/1.1: many concurrent streams
//! over one connection, each chunk delivered when due, graceful shutdown.

use std::time::{Duration, Instant};

use barrage_testkit::net::established_on_port;
use futures_util::StreamExt;

use crate::harness::{chat_body, client, joined_content, parse_sse, Event, Server};

/// Streams at once: above hyper's default of 200 concurrent h2 streams per connection, so
/// a server that kept that default would hold some of them back.
const STREAMS: usize = 300;

fn h2_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// One streamed answer read chunk by chunk: (body, when the first and last content bytes
/// arrived, counted from the request).
async fn read_stream(c: reqwest::Client, url: String) -> (String, Duration, Duration) {
    let t0 = Instant::now();
    let res = c
        .post(url)
        .json(&chat_body(true, true))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.version(), reqwest::Version::HTTP_2);
    let mut body = Vec::new();
    let mut first = None;
    let mut chunks = res.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        body.extend_from_slice(&chunk.unwrap());
        first.get_or_insert_with(|| t0.elapsed());
    }
    let last = t0.elapsed();
    (String::from_utf8(body).unwrap(), first.unwrap(), last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_h2c_streams_share_one_connection_and_arrive_chunk_by_chunk() {
    // 10 ms + 42 chunks × 40 ms ≈ 1.7 s per stream.
    let server = Server::start(&["--stream-delay-ms", "40"]);
    let port = server.addr.port();
    let h2 = h2_client();
    let streams: Vec<_> = (0..STREAMS)
        .map(|_| tokio::spawn(read_stream(h2.clone(), server.url("/v1/chat/completions"))))
        .collect();

    // Every stream in flight at once, over one connection (plus the HTTP/1.1 one that reads
    // /stats).
    let stats_client = client();
    let deadline = Instant::now() + Duration::from_secs(20);
    let (peak, connections) = loop {
        let stats = server.get_json(&stats_client, "/stats").await;
        let in_flight = stats["in_flight"].as_i64().unwrap();
        let connections = established_on_port(port);
        if in_flight > STREAMS as i64 {
            break (in_flight, connections);
        }
        assert!(
            Instant::now() < deadline,
            "only {in_flight} requests in flight at once (want {STREAMS} streams + this one)\n{}",
            server.diagnostics()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        connections <= 2,
        "{peak} requests in flight over {connections} connections; h2c should need one"
    );

    for s in streams {
        let (body, first, last) = s.await.unwrap();
        let events = parse_sse(&body);
        assert!(matches!(events.last(), Some(Event::Done)), "{body}");
        assert_eq!(joined_content(&events), crate::harness::DEFAULT_RESPONSE);
        // Chunks come when due, not held until the end: 41 intervals of 40 ms lie between the
        // first and the last.
        assert!(
            last - first >= Duration::from_millis(800),
            "first chunk at {first:?}, last at {last:?}: the stream arrived in one piece"
        );
    }
    // HTTP/1.1 still works on the same port.
    let res = server.chat(&stats_client, &chat_body(true, true)).await;
    assert_eq!(res.version(), reqwest::Version::HTTP_11);
    let events = parse_sse(&res.text().await.unwrap());
    assert!(matches!(events.last(), Some(Event::Done)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_h2c_streams_finish() {
    // One stream takes 10 + 42 × 10 = 430 ms.
    let mut server = Server::start(&["--stream-delay-ms", "10"]);
    let h2 = h2_client();
    let streams: Vec<_> = (0..20)
        .map(|_| tokio::spawn(read_stream(h2.clone(), server.url("/v1/chat/completions"))))
        .collect();
    let stats_client = client();
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.get_json(&stats_client, "/stats").await["in_flight"]
        .as_i64()
        .unwrap()
        <= 20
    {
        assert!(Instant::now() < deadline, "the streams did not start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let status = tokio::task::block_in_place(|| server.terminate(Duration::from_secs(10)));
    assert!(status.success(), "{status:?}\n{}", server.diagnostics());
    for s in streams {
        let (body, _, _) = s.await.unwrap();
        assert!(
            matches!(parse_sse(&body).last(), Some(Event::Done)),
            "stream cut by shutdown: {body}"
        );
    }
    let stderr = server.stderr();
    assert!(stderr.contains("shut down cleanly"), "{stderr}");
}

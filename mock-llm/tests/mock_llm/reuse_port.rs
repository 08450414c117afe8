//! `--reuse-port`: several processes serve one address (each under its own open-file
//! limit) and the kernel spreads new connections over them; without it a second process
//! on a taken port exits naming the flag.

use std::time::Duration;

use crate::harness::{run_to_exit, Server};

/// Fresh connections (no pooling): each request is a new 4-tuple for the kernel to hash.
fn fresh_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The answer text of one non-streamed chat request on a fresh connection.
async fn answer(c: &reqwest::Client, url: &str) -> String {
    let body = serde_json::json!({"messages": [{"role": "user", "content": "who are you"}]});
    let res = c.post(url).json(&body).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let v: serde_json::Value = res.json().await.unwrap();
    v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_port_and_both_serve() {
    let common = ["--reuse-port", "--delay-ms", "0", "--threads", "1"];
    let mut a = Server::start_on(0, &[&common[..], &["--response", "from-a"]].concat(), &[]);
    // The second joins the first's port (the variable form of the flag).
    let b = Server::start_on(
        a.addr.port(),
        &[&common[1..], &["--response", "from-b"]].concat(),
        &[("MOCK_LLM_REUSE_PORT", "true")],
    );
    assert_eq!(a.addr, b.addr, "both listen on one address");

    let c = fresh_client();
    let url = a.url("/v1/chat/completions");
    let (mut by_a, mut by_b) = (0, 0);
    // Each connection has its own source port: with two listeners the chance that the
    // kernel's hash sends all 64 to one is 2^-63.
    for _ in 0..64 {
        match answer(&c, &url).await.as_str() {
            "from-a" => by_a += 1,
            "from-b" => by_b += 1,
            other => panic!("answer {other:?} is from neither server"),
        }
    }
    assert!(
        by_a > 0 && by_b > 0,
        "one port, two processes: a served {by_a}, b served {by_b} of 64\n{}\n{}",
        a.diagnostics(),
        b.diagnostics()
    );

    // One of them stops: the other serves every new connection on the same address.
    let status = tokio::task::block_in_place(|| a.terminate(Duration::from_secs(10)));
    assert!(status.success(), "{}", a.diagnostics());
    for _ in 0..16 {
        assert_eq!(answer(&c, &url).await, "from-b", "{}", b.diagnostics());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_port_without_reuse_port_exits_1_naming_the_flag() {
    // The holder does not share: neither a plain nor a --reuse-port process may join.
    let holder = Server::start(&[]);
    let port = holder.addr.port().to_string();
    for args in [
        vec!["--port", port.as_str()],
        vec!["--port", port.as_str(), "--reuse-port"],
    ] {
        let out = tokio::task::block_in_place(|| run_to_exit(&args, &[]));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("--reuse-port") && stderr.contains(&port),
            "{args:?}: the message names the address and the flag: {stderr}"
        );
    }
    // The holder still serves, alone.
    let health = holder.get_json(&fresh_client(), "/health").await;
    assert_eq!(health["status"], "ok");
}

//! Starting the binary, reading its address, talking to it, and reporting on failure.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_barrage-mock-llm");

/// Every variable the binary reads, removed so the caller's environment cannot leak in.
const VARS: &[&str] = &[
    "MOCK_LLM_HOST",
    "MOCK_LLM_PORT",
    "MOCK_LLM_REUSE_PORT",
    "MOCK_LLM_DELAY_MS",
    "MOCK_LLM_STREAM_DELAY_MS",
    "MOCK_LLM_JITTER_MS",
    "MOCK_LLM_RESPONSE",
    "MOCK_LLM_MODEL",
    "MOCK_LLM_TOOL_CALL_RATE",
    "MOCK_LLM_ERROR_RATE",
    "MOCK_LLM_ERROR_STATUS",
    "MOCK_LLM_DISCONNECT_RATE",
    "MOCK_LLM_MAX_BODY_BYTES",
    "MOCK_LLM_THREADS",
    "MOCK_LLM_GRACE_MS",
    "MOCK_LLM_MODE",
    "MOCK_LLM_TTFT_MS",
    "MOCK_LLM_TTFT_PER_TOKEN_US",
    "MOCK_LLM_TOKENS_PER_S",
    "MOCK_LLM_MAX_CONCURRENCY",
    "MOCK_LLM_QUEUE_SIZE",
    "MOCK_LLM_CALL_LOG_SIZE",
];

/// The default answer: 42 words.
pub const DEFAULT_RESPONSE: &str = "This is a deterministic response from the mock language model server. \
It exists so that benchmarks measure the agent runtime itself rather than the latency of a real model. \
Every request receives exactly the same words, streamed back one word per chunk.";

fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for var in VARS {
        cmd.env_remove(var);
    }
    cmd.env("RUST_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// A running server; killed when dropped. If the test is panicking, the drop prints the
/// command line, stdout and stderr.
pub struct Server {
    child: Option<Child>,
    /// Where it listens.
    pub addr: SocketAddr,
    cmdline: String,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

fn drain(
    mut from: impl Read + Send + 'static,
    into: Arc<Mutex<String>>,
    first_line: Option<mpsc::Sender<String>>,
) {
    thread::spawn(move || {
        let mut first_line = first_line;
        let mut reader = BufReader::new(&mut from);
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            if let Some(tx) = first_line.take() {
                let _ = tx.send(line.clone());
            }
            into.lock().unwrap().push_str(&line);
            line.clear();
        }
    });
}

impl Server {
    /// Starts the binary with `args` (plus `--port 0`) and waits until /health answers.
    pub fn start(args: &[&str]) -> Server {
        Server::start_with_env(args, &[])
    }

    /// Like [`Server::start`], with extra environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        Server::start_on(0, args, env)
    }

    /// Like [`Server::start_with_env`] on `port` (0: the OS picks one), e.g. a port another
    /// server shares with `--reuse-port`.
    pub fn start_on(port: u16, args: &[&str], env: &[(&str, &str)]) -> Server {
        let port = port.to_string();
        let mut all = vec!["--port", port.as_str()];
        all.extend_from_slice(args);
        let mut cmd = command(&all, env);
        let cmdline = format!("{env:?} {BIN} {}", all.join(" "));
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmdline}: {e}"));
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        drain(child.stdout.take().unwrap(), Arc::clone(&stdout), Some(tx));
        drain(child.stderr.take().unwrap(), Arc::clone(&stderr), None);
        let mut server = Server {
            child: Some(child),
            addr: "127.0.0.1:0".parse().unwrap(),
            cmdline,
            stdout,
            stderr,
        };
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                let status = server.child.as_mut().unwrap().try_wait();
                panic!(
                    "no `listening on` line within 30 s (exit: {status:?})\n{}",
                    server.diagnostics()
                )
            });
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "first stdout line is {line:?}, not `listening on ADDR`\n{}",
                    server.diagnostics()
                )
            });
        server.addr = addr
            .parse()
            .unwrap_or_else(|e| panic!("bad address {addr:?}: {e}\n{}", server.diagnostics()));
        server.wait_healthy();
        server
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some((200, body)) = raw_get(self.addr, "/health") {
                assert_eq!(body, r#"{"status":"ok"}"#, "{}", self.diagnostics());
                return;
            }
            assert!(
                Instant::now() < deadline,
                "/health did not answer within 10 s\n{}",
                self.diagnostics()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// `http://ADDR` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends SIGTERM and waits (at most `within`) for the process to exit.
    pub fn terminate(&mut self, within: Duration) -> ExitStatus {
        let pid = self.pid().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {pid} failed");
        self.wait_exit(within)
    }

    /// Waits (at most `within`) for the process to exit.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                // Let the reader threads catch the last lines.
                thread::sleep(Duration::from_millis(50));
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "process did not exit within {within:?}\n{}",
                self.diagnostics()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Everything the process printed so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Command line, stdout and stderr, for failure messages.
    pub fn diagnostics(&self) -> String {
        format!(
            "--- command: {}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.cmdline,
            self.stdout.lock().unwrap(),
            self.stderr.lock().unwrap()
        )
    }

    /// GET `path` → parsed JSON, asserting 200.
    pub async fn get_json(&self, client: &reqwest::Client, path: &str) -> Value {
        let res = client.get(self.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "GET {path}\n{}", self.diagnostics());
        res.json().await.unwrap()
    }

    /// POST a JSON body to /v1/chat/completions.
    pub async fn chat(&self, client: &reqwest::Client, body: &Value) -> reqwest::Response {
        client
            .post(self.url("/v1/chat/completions"))
            .json(body)
            .send()
            .await
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if thread::panicking() {
            eprintln!("{}", self.diagnostics());
        }
    }
}

/// Runs the binary to completion (at most 20 s), e.g. to see it reject a setting.
pub fn run_to_exit(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut child = command(args, env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("start the binary");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{args:?} {env:?}: still running after 20 s; it should have exited");
        }
        thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

/// A minimal blocking GET over a fresh connection: (status, body), or None if it failed.
fn raw_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

/// One server-sent event of a chat stream.
#[derive(Debug)]
pub enum Event {
    /// A `chat.completion.chunk`.
    Chunk(Value),
    /// `data: [DONE]`.
    Done,
}

/// Parses an SSE body into events; panics on anything that is not `data: ...` events.
pub fn parse_sse(body: &str) -> Vec<Event> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let data = e
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data event: {e:?}"));
            if data == "[DONE]" {
                Event::Done
            } else {
                Event::Chunk(
                    serde_json::from_str(data)
                        .unwrap_or_else(|err| panic!("bad chunk {data:?}: {err}")),
                )
            }
        })
        .collect()
}

/// The `content` deltas of a stream, concatenated.
pub fn joined_content(events: &[Event]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Chunk(c) => c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned),
            Event::Done => None,
        })
        .collect()
}

/// A chat request body.
pub fn chat_body(stream: bool, include_usage: bool) -> Value {
    let mut body = serde_json::json!({
        "model": "gpt-test",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": [{"type": "text", "text": "say something nice"}]}
        ],
    });
    if stream {
        body["stream"] = true.into();
        if include_usage {
            body["stream_options"] = serde_json::json!({"include_usage": true});
        }
    }
    body
}

/// Prompt tokens of [`chat_body`]: 3 + 3 words.
pub const CHAT_BODY_PROMPT_TOKENS: u64 = 6;

/// A client without connection reuse surprises: plain HTTP/1.1, no proxy.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

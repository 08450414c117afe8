//! Shared helpers of the process tests: the target (mock LLM + reference runtime,
//! in-process on their own runtime, bound to 127.0.0.1:0 before anything connects), the
//! worker binary with a time bound, and failure output that shows args, stdout, stderr.
use serde_json::Value;
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub const WORKER: &str = env!("CARGO_BIN_EXE_barrage-worker");

/// The reference runtime behind a zero-delay mock LLM.
pub struct Target {
    pub url: String,
    pub rt: tokio::runtime::Runtime,
    stop: CancellationToken,
}

impl Target {
    pub fn start() -> Target {
        Target::start_slow(Duration::ZERO)
    }

    /// With an LLM that takes `llm_delay` before answering.
    pub fn start_slow(llm_delay: Duration) -> Target {
        Target::start_with(llm_delay, false)
    }

    /// Like [`Target::start_slow`]; `assistant_id_from_config` turns on the runtime's
    /// `--assistant-id-from-config` (409 on a second assistant with the same config).
    pub fn start_with(llm_delay: Duration, assistant_id_from_config: bool) -> Target {
        Target::start_opts(llm_delay, assistant_id_from_config, false)
    }

    /// Like [`Target::start_with`]; `buffer_sse` turns on the runtime's `--buffer-sse` (each
    /// stream sent whole when its run ends).
    pub fn start_opts(
        llm_delay: Duration,
        assistant_id_from_config: bool,
        buffer_sse: bool,
    ) -> Target {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let stop = CancellationToken::new();
        let url = rt.block_on(async {
            let llm = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let llm_url = format!("http://{}", llm.local_addr().unwrap());
            let config = barrage_mock_llm::Config {
                delay: llm_delay,
                stream_delay: Duration::ZERO,
                ..Default::default()
            };
            tokio::spawn(barrage_mock_llm::serve(
                llm,
                config,
                stop.clone().cancelled_owned(),
            ));
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let config = barrage_reference_runtime::Args {
                host: "127.0.0.1".into(),
                port: 0,
                openai_base_url: format!("{llm_url}/v1"),
                openai_api_key: "mock".into(),
                model_name: "openai:mock-gpt-4o".into(),
                jwt_secret: None,
                jwt_secret_file: None,
                threads: Some(1),
                llm_http2: None,
                llm_timeout_secs: 10,
                max_body_bytes: 2 * 1024 * 1024,
                assistant_id_from_config,
                buffer_sse,
                leak_runs: false,
            }
            .into_config()
            .unwrap();
            tokio::spawn(barrage_reference_runtime::serve(
                listener,
                config,
                stop.clone().cancelled_owned(),
            ));
            url
        });
        Target { url, rt, stop }
    }

    /// The runtime's own record (`GET /stats`).
    pub fn stats(&self) -> Value {
        let url = format!("{}/stats", self.url);
        self.rt.block_on(async move {
            let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
            serde_json::from_str::<Value>(&text).unwrap()
        })
    }

    /// Requests the runtime served (every operation; /stats and /ok are not counted).
    pub fn requests_total(&self) -> u64 {
        self.stats()["requests_total"]
            .as_u64()
            .expect("requests_total in /stats")
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A finished worker process.
pub struct Finished {
    pub args: Vec<String>,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
    /// A standalone run's `--results-dir` (removed on drop).
    pub results: Option<ResultsDir>,
}

/// A fresh folder for a standalone run's results; removed on drop.
pub struct ResultsDir(pub std::path::PathBuf);

impl ResultsDir {
    pub fn new() -> ResultsDir {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "barrage-worker-results-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        ResultsDir(dir)
    }
}

impl Drop for ResultsDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Finished {
    /// Everything a failing assertion should show.
    pub fn show(&self) -> String {
        format!(
            "barrage-worker {}\nstatus: {:?} after {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.args.join(" "),
            self.status.code(),
            self.took,
            self.stdout,
            self.stderr
        )
    }

    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The standalone run's `summary.json`, checked against `docs/summary.schema.json`.
    pub fn summary(&self) -> serde_json::Value {
        let dir = self.results.as_ref().expect("a standalone run");
        barrage_testkit::summary::only_summary(&dir.0)
    }
}

/// A running worker process; killed (by its PID) if dropped unfinished.
pub struct Worker {
    pub args: Vec<String>,
    pub child: Child,
    started: Instant,
    results: Option<ResultsDir>,
}

impl Worker {
    /// A standalone run writes its summary into a fresh folder (see [`Finished::summary`]).
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Worker {
        let mut cmd = Command::new(WORKER);
        let results = args.contains(&"--standalone").then(ResultsDir::new);
        if let Some(dir) = &results {
            cmd.arg("--results-dir").arg(&dir.0);
        }
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("RUST_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Worker {
            args: args.iter().map(|s| s.to_string()).collect(),
            child: cmd.spawn().expect("spawning barrage-worker"),
            started: Instant::now(),
            results,
        }
    }

    /// Polls for the exit (bounded by `limit`; killed when over it).
    pub fn wait(mut self, limit: Duration) -> Finished {
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if self.started.elapsed() > limit {
                let _ = self.child.kill();
                let status = self.child.wait().unwrap();
                let mut f = self.collect(status);
                f.stderr
                    .push_str(&format!("\n[killed by the test after {limit:?}]"));
                panic!("worker did not exit in time\n{}", f.show());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.collect(status)
    }

    /// Whether the process ended already.
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    fn collect(&mut self, status: ExitStatus) -> Finished {
        let mut stdout = String::new();
        let mut stderr = String::new();
        if let Some(mut o) = self.child.stdout.take() {
            let _ = o.read_to_string(&mut stdout);
        }
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        Finished {
            args: self.args.clone(),
            status,
            stdout,
            stderr,
            took: self.started.elapsed(),
            results: self.results.take(),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Writes `text` to a fresh temporary file and returns it (kept alive by the caller).
pub fn temp_file(text: &str, suffix: &str) -> tempfile_path::TempPath {
    tempfile_path::write(text, suffix)
}

/// A minimal temporary file (no extra dependency): removed on drop.
pub mod tempfile_path {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU64, Ordering};

    pub struct TempPath(pub PathBuf);

    impl TempPath {
        pub fn as_str(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    pub fn write(text: &str, suffix: &str) -> TempPath {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "barrage-worker-test-{}-{}{suffix}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, text).unwrap();
        TempPath(path)
    }
}

/// Parses the summary's `http_reqs` count (`http_reqs......: 120  40.00/s`).
pub fn summary_count(stdout: &str, metric: &str) -> Option<f64> {
    stdout.lines().find_map(|l| {
        let l = l.trim();
        let rest = l.strip_prefix(metric)?;
        let rest = rest.trim_start_matches('.').strip_prefix(':')?;
        let first = rest.split_whitespace().next()?;
        first.parse().ok()
    })
}

/// Whether the summary text has this threshold line (`✓ metric 'expr'`), the dot leaders the
/// summary pads names with aside.
pub fn has_verdict(stdout: &str, line: &str) -> bool {
    stdout.lines().any(|l| {
        let words: Vec<&str> = l
            .split_whitespace()
            .map(|w| w.trim_end_matches('.'))
            .filter(|w| !w.is_empty())
            .collect();
        words.join(" ").starts_with(line)
    })
}

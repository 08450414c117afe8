//! `Server`: the real binary as a child process on 127.0.0.1 with `--port 0`; its
//! address comes from the `listening on` line. It is killed on drop, and its
//! args, stdout and stderr are printed when it misbehaves.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_barrage-reference-runtime");

pub struct Server {
    pub child: Child,
    pub base: String,
    pub args: Vec<String>,
    pub stdout: Arc<Mutex<String>>,
    pub stderr: Arc<Mutex<String>>,
}

/// Variables the child must not inherit from the test's environment.
const CLEARED_ENV: &[&str] = &[
    "PORT",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "MODEL_NAME",
    "SUPABASE_JWT_SECRET",
    "ASSISTANT_ID_FROM_CONFIG",
    "OPENAI_HTTP2",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
];

pub fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
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
pub fn drain(
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
    pub fn start(llm_url: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
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

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Panics with everything known about the process.
    pub fn fail(&mut self, why: &str) -> ! {
        let _ = self.child.kill();
        let status = self.child.wait();
        panic!(
            "barrage-reference-runtime: {why}\nargs: {:?}\nstatus: {status:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.args,
            self.stdout.lock().unwrap(),
            self.stderr.lock().unwrap()
        );
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit by polling `try_wait`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
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

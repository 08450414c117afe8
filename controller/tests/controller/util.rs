//! Test helpers: child processes that are killed on drop and whose output is kept for the
//! failure message, the `listening on` line, `/stats` over plain HTTP, short plans.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BARRAGE: &str = env!("CARGO_BIN_EXE_barrage");

/// A running `barrage …`, killed (SIGKILL) on drop; stdout and stderr collected.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub stdout: Arc<Mutex<String>>,
    pub stderr: Arc<Mutex<String>>,
    first_line: Option<std::sync::mpsc::Receiver<String>>,
}

fn collect(
    r: impl Read + Send + 'static,
    into: Arc<Mutex<String>>,
    first: Option<std::sync::mpsc::Sender<String>>,
) {
    std::thread::spawn(move || {
        let mut first = first;
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if let Some(tx) = first.take() {
                let _ = tx.send(line.clone());
            }
            let mut s = into.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
}

impl Proc {
    pub fn start(name: &str, cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        collect(child.stdout.take().unwrap(), stdout.clone(), Some(tx));
        collect(child.stderr.take().unwrap(), stderr.clone(), None);
        Proc {
            name: name.into(),
            child,
            stdout,
            stderr,
            first_line: Some(rx),
        }
    }

    /// `barrage <args>`.
    pub fn barrage(name: &str, args: &[&str]) -> Proc {
        let mut cmd = Command::new(BARRAGE);
        cmd.args(args).env("RUST_LOG", "info");
        Proc::start(name, &mut cmd)
    }

    /// The address after `listening on ` on the first stdout line.
    pub fn listening(&mut self) -> String {
        let rx = self.first_line.take().expect("first line already read");
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                panic!(
                    "{} did not print `listening on`\n{}",
                    self.name,
                    self.output()
                )
            });
        line.strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{}: unexpected first line {line:?}", self.name))
            .trim()
            .to_string()
    }

    pub fn output(&self) -> String {
        format!(
            "--- {} stdout ---\n{}\n--- {} stderr ---\n{}",
            self.name,
            self.stdout.lock().unwrap(),
            self.name,
            self.stderr.lock().unwrap()
        )
    }

    /// Waits for the exit, at most `limit`.
    pub fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                // let the reader threads catch up
                std::thread::sleep(Duration::from_millis(100));
                return Some(s);
            }
            if Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits for the exit (panicking with the output past `limit`) and returns the code.
    pub fn exit_code(&mut self, limit: Duration) -> i32 {
        match self.wait(limit) {
            Some(s) => s.code().unwrap_or(-1),
            None => panic!(
                "{} still running after {limit:?}\n{}",
                self.name,
                self.output()
            ),
        }
    }

    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The mock LLM (no delay) and the reference runtime pointed at it; returns the
/// runtime's base URL.
pub struct Target {
    /// Held so that both servers live as long as the test (killed on drop).
    #[allow(dead_code)]
    pub mock: Proc,
    #[allow(dead_code)]
    pub runtime: Proc,
    pub url: String,
    /// The mock LLM's `host:port` (its `/admin/config`, `/stats`).
    pub mock_addr: String,
}

/// `barrage mock-llm` on a free loopback port, zero delays: the tests' LLM.
pub const ZERO_DELAY_MOCK: &[&str] = &[
    "mock-llm",
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    "--delay-ms",
    "0",
    "--stream-delay-ms",
    "0",
];

pub fn start_target() -> Target {
    start_target_with_delay(0)
}

/// The mock LLM answering after `delay_ms` (streams without delay) and the reference
/// runtime pointed at it.
pub fn start_target_with_delay(delay_ms: u64) -> Target {
    let delay = delay_ms.to_string();
    let mut args: Vec<&str> = ZERO_DELAY_MOCK.to_vec();
    let at = args.iter().position(|a| *a == "--delay-ms").unwrap() + 1;
    args[at] = &delay;
    let mut mock = Proc::barrage("mock-llm", &args);
    let mock_addr = mock.listening();
    let mut cmd = Command::new(BARRAGE);
    cmd.args(["reference-runtime", "--host", "127.0.0.1", "--port", "0"])
        .env("OPENAI_BASE_URL", format!("http://{mock_addr}/v1"))
        .env_remove("SUPABASE_JWT_SECRET");
    let mut runtime = Proc::start("reference-runtime", &mut cmd);
    let url = runtime.listening();
    Target {
        mock,
        runtime,
        url,
        mock_addr,
    }
}

/// GET `url` (http://host:port/path) and parse the JSON body.
pub fn get_json(url: &str) -> serde_json::Value {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut s = TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    let json = body.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{url}: {e}: {body}"))
}

/// A plan file: constant VUs for a few seconds, interval 1 s, plus `extra` TOML.
pub fn plan_file(dir: &Path, name: &str, vus: u64, secs: u64, extra: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!(
            "name = \"test\"\ninterval = \"1s\"\ngraceful_stop = \"5s\"\n[scenario]\nexecutor = \"constant-vus\"\nvus = {vus}\nduration = \"{secs}s\"\n{extra}"
        ),
    )
    .unwrap();
    p
}

/// `barrage run` of `plan` with one worker against `--target-cmd cmd` (runtime name
/// `name`, 20 s for its health), plus `extra`; its results go to `dir/results`. The running
/// process and the results folder.
pub fn run_target_cmd(
    test: &str,
    dir: &Path,
    plan: &Path,
    name: &str,
    cmd: &str,
    extra: &[&str],
) -> (Proc, PathBuf) {
    let results = dir.join("results");
    let mut args = vec![
        "run",
        "--plan",
        plan.to_str().unwrap(),
        "--no-progress",
        "--workers",
        "1",
        "--runtime-name",
        name,
        "--results-dir",
        results.to_str().unwrap(),
        "--target-cmd",
        cmd,
        "--target-health-timeout",
        "20s",
    ];
    args.extend_from_slice(extra);
    (Proc::barrage(test, &args), results)
}

/// The `*.summary.json` in a results folder, if there is one.
pub fn summary_in(results: &Path) -> Option<PathBuf> {
    std::fs::read_dir(results)
        .ok()?
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".summary.json"))
        .map(|e| e.path())
}

/// A one-worker `barrage run` of `plan` (TOML text) against `target`, its results in a
/// temporary directory: the directory (kept alive by the caller), the results folder and
/// the running process.
pub fn run_plan_text(target: &str, plan: &str) -> (tempfile::TempDir, PathBuf, Proc) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.toml");
    std::fs::write(&path, plan).unwrap();
    let results = dir.path().join("results");
    let run = Proc::barrage(
        "barrage run",
        &[
            "run",
            "--plan",
            path.to_str().unwrap(),
            "--target",
            target,
            "--workers",
            "1",
            "--results-dir",
            results.to_str().unwrap(),
        ],
    );
    (dir, results, run)
}

/// Reads a JSON file; a `*.summary.json` is also checked against `docs/summary.schema.json`.
pub fn read_json(path: &Path) -> serde_json::Value {
    if path.to_string_lossy().ends_with(".summary.json") {
        return barrage_testkit::summary::read_summary(path);
    }
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

pub fn token_file(dir: &Path, name: &str, token: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, token).unwrap();
    p
}

/// `docker info` and `docker-compose version` both answer (a daemon runs): the docker tests'
/// requirement.
pub fn docker_ready() -> Option<()> {
    let ok = |cmd: &str, args: &[&str]| {
        Command::new(cmd)
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    (ok("docker", &["info"]) && ok("docker-compose", &["version"])).then_some(())
}

/// The Chromium binary on PATH, for the browser tests (shared with the report's tests).
pub use barrage_testkit::chromium;

/// Builds barrage's image (`deploy/image/build.sh`, `FROM scratch` with this `barrage`) as
/// `tag` when a docker daemon answers; `None` after [`barrage_testkit::require`] recorded
/// the skip (or failed the test under `.ci/run`).
pub fn docker_image(test: &str, tag: &str) -> Option<String> {
    barrage_testkit::require(
        test,
        "docker (daemon running) and docker-compose",
        docker_ready(),
        "apt-get install docker.io docker-compose; dockerd --bridge=none --iptables=false &",
    )?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/image/build.sh");
    let build = Command::new(script).args([BARRAGE, tag]).output().unwrap();
    assert!(
        build.status.success(),
        "build.sh: {}",
        String::from_utf8_lossy(&build.stderr)
    );
    Some(tag.to_string())
}

/// `barrage controller` on a free loopback port expecting `workers`; it and its address.
pub fn controller(plan: &Path, workers: usize, token: &Path, results: &Path) -> (Proc, String) {
    controller_with(plan, workers, token, results, &[])
}

/// [`controller`] with `extra` flags (`--join-timeout` defaults to 60 s).
pub fn controller_with(
    plan: &Path,
    workers: usize,
    token: &Path,
    results: &Path,
    extra: &[&str],
) -> (Proc, String) {
    let workers = workers.to_string();
    let mut args = vec![
        "controller",
        "--listen",
        "127.0.0.1:0",
        "--expect-workers",
        &workers,
        "--plan",
        plan.to_str().unwrap(),
        "--token-file",
        token.to_str().unwrap(),
        "--results-dir",
        results.to_str().unwrap(),
        "--no-progress",
    ];
    if !extra.contains(&"--join-timeout") {
        args.extend_from_slice(&["--join-timeout", "60s"]);
    }
    args.extend_from_slice(extra);
    let mut c = Proc::barrage("controller", &args);
    let addr = c.listening();
    (c, addr)
}

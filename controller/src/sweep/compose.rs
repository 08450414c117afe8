//! Docker mode of `barrage sweep`: the runtimes are services of a compose file whose limits
//! come from `BENCH_CPUS`/`BENCH_MEMORY` (`deploy.resources.limits`); each pair recreates
//! only its runtime's container with the tier's values, waits until it answers, runs the
//! plan against it with `--target-container` (telemetry from the container's cgroup), and
//! stops it. The `mock-llm` service runs through the whole sweep.
use anyhow::{bail, Context as _};
use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// One compose project.
pub struct Compose {
    pub file: PathBuf,
    pub project: String,
}

impl Compose {
    fn run(&self, env: &[(&str, String)], args: &[&str]) -> anyhow::Result<Output> {
        let out = Command::new("docker-compose")
            .arg("--compatibility")
            .arg("-p")
            .arg(&self.project)
            .arg("-f")
            .arg(&self.file)
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v)))
            .output()
            .context("cannot run docker-compose; install it (apt-get install docker-compose)")?;
        if !out.status.success() {
            bail!(
                "docker-compose {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(out)
    }

    /// (Re)creates `service` alone with `env`.
    pub fn up(&self, service: &str, env: &[(&str, String)]) -> anyhow::Result<()> {
        self.run(env, &["up", "-d", "--force-recreate", "--no-deps", service])
            .map(drop)
    }

    pub fn stop(&self, service: &str) -> anyhow::Result<()> {
        self.run(&[], &["stop", "-t", "10", service]).map(drop)
    }

    /// The container id of `service`.
    pub fn container(&self, service: &str) -> anyhow::Result<String> {
        let out = self.run(&[], &["ps", "-q", service])?;
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if id.is_empty() {
            bail!(
                "service {service} has no container; is it in {}?",
                self.file.display()
            );
        }
        Ok(id)
    }

    pub fn down(&self) {
        if let Err(e) = self.run(&[], &["down", "-t", "5"]) {
            tracing::warn!(error = %e, "docker-compose down failed");
        }
    }
}

/// `GET {url}{path}` until it answers 2xx or `timeout` passes.
pub fn wait_healthy(url: &str, path: &str, timeout: Duration) -> anyhow::Result<()> {
    let authority = crate::target::command::authority(url).to_string();
    let until = Instant::now() + timeout;
    let mut last = String::new();
    while Instant::now() < until {
        match get_status(&authority, path) {
            Ok(code) if (200..300).contains(&code) => return Ok(()),
            Ok(code) => last = format!("status {code}"),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!(
        "GET {url}{path} did not answer 2xx within {}s (last: {last})",
        timeout.as_secs()
    )
}

fn get_status(authority: &str, path: &str) -> std::io::Result<u16> {
    let mut s = std::net::TcpStream::connect(authority)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = [0u8; 32];
    let n = s.read(&mut buf)?;
    String::from_utf8_lossy(&buf[..n])
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP answer"))
}

/// Where the compose file's `mock-llm` service listens: `127.0.0.1:$LLM_PORT` (the
/// variable the compose file reads), 11434 by default.
pub fn llm_addr() -> String {
    let port = std::env::var("LLM_PORT")
        .ok()
        .filter(|p| p.parse::<u16>().is_ok())
        .unwrap_or_else(|| "11434".into());
    format!("127.0.0.1:{port}")
}

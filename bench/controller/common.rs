//! What the controller benches that run a real `barrage controller` process share: starting
//! it on a free loopback port with a plan and a token, reading its address, and the
//! `/proc` readings they sample. One definition, so the benches start and read the
//! controller the same way.
#![allow(dead_code)] // each bench uses its own part

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};

/// The token the simulated workers present.
pub const TOKEN: &str = "controller-bench-token";

/// A running `barrage controller`, killed when dropped.
pub struct Controller {
    pub child: Child,
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `barrage controller` (`BARRAGE_BIN`, or `default_bin`: this build's) on
/// 127.0.0.1:0 with `plan_toml` as its plan, [`TOKEN`] as its token, results in
/// `dir/results`, the `extra` flags and `RUST_LOG=rust_log`; returns it, its `host:port`
/// and its stderr for the bench to read.
pub fn start(
    default_bin: &str,
    dir: &Path,
    plan_toml: &str,
    extra: &[String],
    rust_log: &str,
) -> (Controller, String, BufReader<ChildStderr>) {
    let plan = dir.join("plan.toml");
    std::fs::write(&plan, plan_toml).unwrap();
    let token = dir.join("token");
    std::fs::write(&token, TOKEN).unwrap();
    // another build (e.g. the previous commit's) for before/after rounds
    let barrage = std::env::var("BARRAGE_BIN").unwrap_or_else(|_| default_bin.to_string());
    let mut child = Command::new(barrage)
        .args(["controller", "--listen", "127.0.0.1:0", "--no-progress"])
        .args(extra)
        .arg("--plan")
        .arg(&plan)
        .arg("--token-file")
        .arg(&token)
        .arg("--results-dir")
        .arg(dir.join("results"))
        .env("RUST_LOG", rust_log)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("barrage controller starts");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    let addr = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .trim()
        .to_string();
    std::thread::spawn(move || for _ in out.lines() {});
    let err = BufReader::new(child.stderr.take().unwrap());
    (Controller { child }, addr, err)
}

/// Stage time 0 of the run (µs since the Unix epoch), from the controller's `start sent`
/// line, set by the bench's reader of its stderr.
pub static START: std::sync::Mutex<Option<i64>> = std::sync::Mutex::new(None);

/// Waits until [`START`] is known, and returns it.
pub async fn stage_zero() -> i64 {
    loop {
        if let Some(s) = *START.lock().unwrap() {
            return s;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The value of `key=` in a tracing line.
pub fn field(line: &str, key: &str) -> Option<String> {
    let at = line.find(&format!("{key}="))? + key.len() + 1;
    Some(line[at..].split_whitespace().next()?.to_string())
}

/// A `/proc/<pid>/status` field in KiB (`VmRSS:`, `RssAnon:` …; `pid` may be `"self"`);
/// 0 when unreadable.
pub fn proc_kib(pid: impl std::fmt::Display, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// The process's CPU time so far (utime + stime), in seconds.
pub fn proc_cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // fields after the command's closing parenthesis; utime and stime are the 12th and 13th
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    ticks as f64 / 100.0 // CLK_TCK is 100 on Linux
}

/// The median (the upper one of an even count); NaN for none.
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

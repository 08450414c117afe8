//! Test-only helpers shared by every crate's integration tests (a dev-dependency, never
//! linked into a binary).
//!
//! | item              | what for                                                                |
//! |-------------------|-------------------------------------------------------------------------|
//! | [`require`]       | a test that needs something the machine may lack (root, a real target) |
//! | [`wait_until`]    | the one way a test waits: on a condition it can observe, with a limit   |
//! | [`free_port`]     | a loopback port nobody listens on, for a child that must be told one    |
//! | [`chromium`]      | the headless browser the report and dashboard tests render pages with   |
//! | [`fuzz_config`], [`corpus`] | the property tests' configuration and their committed seed inputs |
//! | [`hostile`]       | a loopback HTTP target that misbehaves on purpose and counts requests   |
//! | [`net`]           | established TCP connections on a port, as the kernel lists them        |
//! | [`summary`]       | every produced `summary.json` checked against `docs/summary.schema.json` |
//!
//! # Requirements and skips
//!
//! Some tests need what a developer's machine may not have: root (network namespaces), the
//! real LangGraph servers (`BARRAGE_TARGET_*_URL`), Python's `openai` SDK. Such a test asks
//! [`require`] first:
//! - under the README's test command (`.ci/run` sets `BARRAGE_REQUIRE_ALL=1`) a missing
//!   requirement fails the test, naming what is missing and how to get it: the full suite
//!   runs every test or fails;
//! - otherwise (a bare `cargo test`) the test is skipped, and says so: one line on stderr and
//!   one line appended to the skip log (`BARRAGE_SKIP_LOG`, default
//!   `$TMPDIR/barrage-skipped.txt`), which `.ci/run` prints as a summary at the end.
//!
//! A skip is never silent, and never the default of the suite that CI runs.
#![forbid(unsafe_code)]

pub mod hostile;
pub mod net;
pub mod summary;

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Env variable that turns every missing requirement into a failure (`.ci/run` sets it).
pub const REQUIRE_ALL: &str = "BARRAGE_REQUIRE_ALL";
/// Env variable naming the file skips are appended to.
pub const SKIP_LOG: &str = "BARRAGE_SKIP_LOG";

/// Where skipped tests are recorded.
pub fn skip_log() -> PathBuf {
    std::env::var_os(SKIP_LOG)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("barrage-skipped.txt"))
}

/// The Chromium binary on PATH (Debian's `chromium`), for the browser tests.
pub fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::var_os("PATH")?
            .to_str()?
            .split(':')
            .map(|d| std::path::Path::new(d).join(name))
            .find(|p| p.is_file())
    })
}

/// Whether missing requirements fail (true under `.ci/run`).
pub fn require_all() -> bool {
    std::env::var_os(REQUIRE_ALL).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Checks one requirement of the test `test`. Returns `Ok(value)` when it is met; when it is
/// not, fails (under [`REQUIRE_ALL`]) or records a skip and returns `None`, so the test
/// returns early: `let Some(url) = require("flow::real", "...", lookup(), "how") else { return };`
///
/// `what` names the requirement, `how` says how to provide it.
pub fn require<T>(test: &str, what: &str, found: Option<T>, how: &str) -> Option<T> {
    if found.is_some() {
        return found;
    }
    let line = format!("SKIP {test}: needs {what} ({how})");
    if require_all() {
        panic!("{line}; {REQUIRE_ALL} is set, so every test must run");
    }
    eprintln!("{line}");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(skip_log())
    {
        let _ = writeln!(f, "{line}");
    }
    None
}

/// The value of env variable `name`, non-empty, as a requirement of `test`.
pub fn require_env(test: &str, name: &str, how: &str) -> Option<String> {
    let found = std::env::var(name).ok().filter(|v| !v.is_empty());
    require(test, &format!("env {name}"), found, how)
}

/// Whether the test runs as root (network namespaces, cgroups need it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Polls `probe` every `every` until it yields `Some`, or `limit` passes (`None`).
/// The one way tests wait: on a condition they can observe (a file, a count, a status),
/// never on a fixed sleep.
pub fn wait_until<T>(
    limit: Duration,
    every: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every.min(deadline.saturating_duration_since(Instant::now())));
    }
}

/// Like [`wait_until`], but panics naming `what` when the limit passes.
pub fn wait_for<T>(what: &str, limit: Duration, probe: impl FnMut() -> Option<T>) -> T {
    wait_until(limit, Duration::from_millis(20), probe)
        .unwrap_or_else(|| panic!("timed out after {limit:?} waiting for {what}"))
}

/// A free loopback port (bound, read, released). Prefer binding `127.0.0.1:0` yourself and
/// handing over the listener; use this only for a child process that must be told a port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Env variable giving the property tests (the fuzzers of every parser that reads bytes from
/// outside) their case count; `.ci/run` sets it so each runs for seconds, bounded.
pub const FUZZ_CASES: &str = "BARRAGE_FUZZ_CASES";

/// Cases per property: [`FUZZ_CASES`], else 256.
pub fn fuzz_cases() -> u32 {
    std::env::var(FUZZ_CASES)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// The one proptest configuration of barrage's fuzzers: [`fuzz_cases`] cases, and failing
/// seeds saved to `regressions` (a path under the crate, committed) or nowhere.
pub fn fuzz_config(regressions: Option<&'static str>) -> proptest::test_runner::Config {
    use proptest::test_runner::{Config, FileFailurePersistence};
    Config {
        cases: fuzz_cases(),
        failure_persistence: regressions
            .map(|p| Box::new(FileFailurePersistence::Direct(p)) as Box<_>),
        ..Config::default()
    }
}

/// The committed seed inputs of a fuzzer: every file of `dir`, sorted by name, as
/// `(file name, bytes)`. Panics when there is none: a corpus is committed with its fuzzer.
pub fn corpus(dir: impl AsRef<std::path::Path>) -> Vec<(String, Vec<u8>)> {
    let dir = dir.as_ref();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus in {}", dir.display());
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (name, bytes)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_until_returns_the_first_value_and_gives_up_at_the_limit() {
        let mut n = 0;
        let got = wait_until(Duration::from_secs(5), Duration::from_millis(1), || {
            n += 1;
            (n == 3).then_some(n)
        });
        assert_eq!(got, Some(3));
        let start = Instant::now();
        let none: Option<()> =
            wait_until(Duration::from_millis(30), Duration::from_millis(5), || None);
        assert!(none.is_none());
        assert!(start.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn require_passes_what_is_found() {
        assert_eq!(require("t", "x", Some(7), "how"), Some(7));
    }

    #[test]
    fn free_ports_are_bindable() {
        let p = free_port();
        assert!(p > 0);
        TcpListener::bind(("127.0.0.1", p)).expect("port is free");
    }
}

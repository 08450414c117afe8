//! Native tiers for real: a target command in its own cgroup gets the tier's CPU quota (by
//! the cgroup's own accounting), and one that allocates past its memory limit is OOM-killed
//! and reported as such.
use crate::telemetry::write_script;
use crate::util::{plan_file, read_json, run_target_cmd, summary_in};
use barrage_testkit::{is_root, require};
use std::time::Duration;

/// The HTTP side of both targets: `GET /ok` answers 200 (the health check), on `$PORT`.
const OK_SERVER: &str = r#"
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a):
        pass
ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

/// An HTTP target answering `GET /ok`, with a thread that spins on the CPU.
const SPINNER: &str = r#"
import os, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
def spin():
    x = 0
    while True:
        x += 1
threading.Thread(target=spin, daemon=True).start()
"#;

/// An HTTP target answering `GET /ok` that, half a second after it starts, allocates (and
/// touches) 8 MiB every 20 ms without end.
const HOG: &str = r#"
import os, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
hoard = []
def eat():
    time.sleep(0.5)
    while True:
        hoard.append(b"x" * (8 << 20))
        time.sleep(0.02)
threading.Thread(target=eat, daemon=True).start()
"#;

fn run_tier(test: &str, script: &str, extra: &[&str], secs: u64) -> Option<serde_json::Value> {
    require(
        test,
        "root (cgroups)",
        is_root().then_some(()),
        "run as root",
    )?;
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(dir.path(), "target.py", &format!("{script}{OK_SERVER}"));
    let plan = plan_file(
        dir.path(),
        "plan.toml",
        1,
        secs,
        "[flow]\nrequest = { method = \"GET\", path = \"/ok\" }\n",
    );
    let cmd = format!("exec python3 {script}");
    let mut args = vec!["--target-sample-interval", "200ms"];
    args.extend_from_slice(extra);
    let (mut run, results) = run_target_cmd(test, dir.path(), &plan, "py", &cmd, &args);
    let code = run.exit_code(Duration::from_secs(60));
    let summary = summary_in(&results)
        .unwrap_or_else(|| panic!("no summary (exit {code})\n{}", run.output()));
    Some(read_json(&summary))
}

#[test]
fn xs_tier_gives_a_cpu_bound_child_a_quarter_core() {
    let Some(s) = run_tier("tiers::xs_cpu", SPINNER, &["--tier", "xs"], 3) else {
        return;
    };
    let t = &s["target_telemetry"];
    assert!(t["source"].as_str().unwrap().starts_with("cgroup"), "{t:#}");
    assert_eq!(t["cpu_quota_cores"], 0.25, "{t:#}");
    assert_eq!(t["memory_limit_bytes"], 256u64 << 20, "{t:#}");
    assert_eq!(s["target"]["tier"], "xs");
    let cores = t["cpu_seconds"].as_f64().unwrap() / t["wall_s"].as_f64().unwrap();
    assert!(
        (cores - 0.25).abs() <= 0.05,
        "the XS child got {cores:.3} CPU, want 0.25 ± 0.05\n{t:#}"
    );
    assert!(t["exit"].is_null(), "{t:#}");
}

#[test]
fn a_child_past_its_memory_limit_is_oom_killed_and_reported() {
    let Some(s) = run_tier(
        "tiers::oom",
        HOG,
        &[
            "--tier",
            "tiny",
            "--target-cpus",
            "1",
            "--target-memory",
            "96M",
        ],
        3,
    ) else {
        return;
    };
    let t = &s["target_telemetry"];
    assert_eq!(t["memory_limit_bytes"], 96u64 << 20, "{t:#}");
    let exit = &t["exit"];
    assert_eq!(exit["oom_killed"], true, "{t:#}");
    assert_eq!(exit["reason"], "oom-killed", "{t:#}");
    assert_eq!(exit["signal"], 9, "{t:#}");
    assert!(exit["last_rss_bytes"].as_u64().unwrap() > 1 << 20, "{t:#}");
    // the cgroup's own high-water mark reached the limit
    assert!(t["rss_peak_bytes"].as_u64().unwrap() >= 80 << 20, "{t:#}");
}

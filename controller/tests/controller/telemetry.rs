//! Target telemetry: what `barrage run --target-cmd` reports the target spent, against what
//! the kernel says for that process (read by the process itself from `/proc/self/stat`).
use crate::util::{plan_file, read_json, run_target_cmd, summary_in};
use std::path::Path;
use std::time::Duration;

/// A one-process HTTP target: `GET /ok` answers at once, `GET /work` burns about 10 ms of
/// CPU. It writes its own CPU ticks (utime + stime, `/proc/self/stat`) to `cpu-first` at
/// the first `/work` and to `cpu-last` when SIGTERM stops it.
pub const BURNER: &str = r#"
import os, signal, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
out = sys.argv[1]
def ticks():
    f = open("/proc/self/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])
first = []
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.path == "/work":
            if not first:
                first.append(ticks())
                open(os.path.join(out, "cpu-first"), "w").write(str(first[0]))
            end = time.process_time() + 0.01
            while time.process_time() < end:
                pass
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
def stop(*_):
    open(os.path.join(out, "cpu-last"), "w").write(str(ticks()))
    os._exit(0)
signal.signal(signal.SIGTERM, stop)
ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

fn clk_tck() -> f64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("getconf");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("CLK_TCK")
}

pub fn write_script(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn target_cmd_cpu_seconds_match_proc() {
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(dir.path(), "burner.py", BURNER);
    let plan = plan_file(
        dir.path(),
        "plan.toml",
        2,
        3,
        "[flow]\nrequest = { method = \"GET\", path = \"/work\" }\n",
    );
    let cmd = format!("exec python3 {script} {}", dir.path().display());
    let (mut run, results) = run_target_cmd(
        "barrage run --target-cmd",
        dir.path(),
        &plan,
        "burner",
        &cmd,
        &[
            "--target-health",
            "/ok",
            "--target-sample-interval",
            "250ms",
        ],
    );
    let code = run.exit_code(Duration::from_secs(60));
    assert_eq!(code, 0, "{}", run.output());
    let summary = summary_in(&results).expect("a summary");
    let s = read_json(&summary);
    let t = &s["target_telemetry"];
    let read_ticks = |f: &str| -> f64 {
        std::fs::read_to_string(dir.path().join(f))
            .unwrap_or_else(|e| panic!("{f}: {e}\n{}", run.output()))
            .trim()
            .parse()
            .unwrap()
    };
    let proc_cpu = (read_ticks("cpu-last") - read_ticks("cpu-first")) / clk_tck();
    let ours = t["cpu_seconds"].as_f64().unwrap();
    assert!(
        proc_cpu > 0.2,
        "the target barely worked: {proc_cpu}s\n{t:#}"
    );
    // 10 %, plus two clock ticks of /proc's granularity
    assert!(
        (ours - proc_cpu).abs() <= proc_cpu * 0.10 + 0.02,
        "barrage says {ours}s of CPU, /proc says {proc_cpu}s\n{t:#}"
    );
    assert!(t["source"].as_str().unwrap().starts_with("pid "), "{t:#}");
    assert!(t["rss_peak_bytes"].as_u64().unwrap() > 1 << 20, "{t:#}");
    assert!(t["fds_peak"].as_u64().unwrap() >= 3, "{t:#}");
    let reqs = s["metrics"]["http_reqs"]["count"].as_f64().unwrap();
    let per_cpu = t["requests_per_cpu_second"].as_f64().unwrap();
    assert!(
        (per_cpu - reqs / ours).abs() <= 0.01 * per_cpu + 0.01,
        "{t:#}"
    );
    assert!(!t["points"].as_array().unwrap().is_empty(), "{t:#}");
    // the command's process group is gone
    assert!(t["exit"].is_null(), "{t:#}");
}

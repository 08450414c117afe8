//! `barrage report`, `compare` and `summarize` on the results of real runs: a fast and a
//! slow mock LLM behind the reference runtime, each run writing its summary and k6 NDJSON.
use crate::util::{plan_file, start_target_with_delay, Proc, BARRAGE};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// One run against the reference runtime whose mock LLM waits `delay_ms` per call;
/// returns the summary and the k6 NDJSON file.
fn run(dir: &Path, tier: &str, delay_ms: u32) -> (PathBuf, PathBuf) {
    let target = start_target_with_delay(u64::from(delay_ms));
    let url = target.url.clone();
    let plan = plan_file(dir, &format!("{tier}.toml"), 2, 3, "");
    let ndjson = dir.join(format!("ts-{tier}.json"));
    let results = dir.join("results");
    let mut run = Proc::barrage(
        "barrage run",
        &[
            "run",
            "--target",
            &url,
            "--runtime-name",
            "ts",
            "--tier",
            tier,
            "--plan",
            plan.to_str().unwrap(),
            "--workers",
            "1",
            "--no-progress",
            "--results-dir",
            results.to_str().unwrap(),
            "--out",
            &format!("json={}", ndjson.display()),
        ],
    );
    assert_eq!(
        run.exit_code(Duration::from_secs(60)),
        0,
        "{}",
        run.output()
    );
    let summary = std::fs::read_dir(&results)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.contains(&format!("-{tier}")) && n.ends_with(".summary.json")
        })
        .unwrap_or_else(|| panic!("no summary of tier {tier}\n{}", run.output()));
    (summary, ndjson)
}

fn barrage(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BARRAGE).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn line_with<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting {prefix:?} in\n{text}"))
}

#[test]
fn report_compare_and_summarize_real_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (fast, fast_k6) = run(dir.path(), "xs", 2);
    let (slow, _) = run(dir.path(), "m", 40);
    let (fast_s, slow_s) = (fast.to_str().unwrap(), slow.to_str().unwrap());

    // summarize: the k6 file and the summary of one run count the same flows and requests
    let (code, from_k6, err) = barrage(&["summarize", fast_k6.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (code, from_summary, err) = barrage(&["summarize", fast_s]);
    assert_eq!(code, 0, "{err}");
    assert!(from_k6.starts_with("source: k6 NDJSON"), "{from_k6}");
    assert!(
        from_summary.starts_with("source: barrage summary"),
        "{from_summary}"
    );
    assert_eq!(
        line_with(&from_k6, "iterations:"),
        line_with(&from_summary, "iterations:")
    );
    assert_ne!(line_with(&from_k6, "iterations:"), "iterations: 0");
    let count = |t: &str, op: &str| {
        line_with(t, &format!("  {op} "))
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    };
    for op in ["create_assistant", "run_wait", "run_stream", "get_state"] {
        assert_eq!(count(&from_k6, op), count(&from_summary, op), "{op}");
    }

    // compare: an identical pair passes; the slow LLM is a regression of run_wait's p95
    let (code, md, err) = barrage(&["compare", fast_s, fast_s]);
    assert_eq!(code, 0, "{md}{err}");
    assert!(md.contains("no regression"), "{md}");
    let (code, md, err) = barrage(&["compare", fast_s, slow_s]);
    assert_eq!(code, 1, "{md}{err}");
    let row = line_with(&md, "| `http_req_duration{operation:run_wait}` | p95 |");
    assert!(row.contains("regression"), "{row}");
    // sets, JSON, and k6 NDJSON against a summary
    let (code, json, err) = barrage(&[
        "compare",
        "--baseline",
        fast_k6.to_str().unwrap(),
        "--current",
        slow_s,
        "--format",
        "json",
    ]);
    assert_eq!(code, 1, "{json}{err}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(v["regressions"].as_u64().unwrap() >= 1, "{json}");
    // a generous budget lets the same change pass
    let (code, md, _) = barrage(&[
        "compare",
        "--budget",
        "p95=100000%",
        "--budget",
        "p99=100000%",
        "--budget",
        "throughput=100%",
        fast_s,
        slow_s,
    ]);
    assert_eq!(code, 0, "{md}");

    // report: a sweep of one runtime over two tiers
    let out = dir.path().join("report");
    let (code, stdout, err) = barrage(&["report", fast_s, slow_s, "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{err}");
    assert!(
        stdout.contains("animation:") && stdout.contains("(12 frames)"),
        "{stdout}"
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
    assert!(out.join("throughput.png").is_file() && out.join("sweep.gif").is_file());
    offline_browser_loads(&out);
}

/// Headless Chromium with every host unresolvable and a dead proxy renders the report: the
/// page needs nothing from a network.
fn offline_browser_loads(out: &Path) {
    let chromium = crate::util::chromium();
    let Some(chromium) = barrage_testkit::require(
        "report::report_compare_and_summarize_real_runs (browser)",
        "chromium",
        chromium,
        "apt-get install -y chromium",
    ) else {
        return;
    };
    let page = format!("file://{}", out.join("report.html").display());
    let shot = out.join("report-screenshot.png");
    let o = Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--proxy-server=127.0.0.1:9",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--window-size=1200,1600",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&page)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let o = Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--proxy-server=127.0.0.1:9",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--dump-dom",
        ])
        .arg(&page)
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&o.stdout);
    assert!(
        dom.contains("<h1>barrage report</h1>") && dom.contains("<svg"),
        "{dom:.400}"
    );
}

#[test]
fn bad_inputs_exit_2_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{\"hello\": 1}\n").unwrap();
    let j = junk.to_str().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (&["report", "/nonexistent/x.summary.json"], "cannot read"),
        (&["report", j], "schema_version"),
        (&["summarize", "/nonexistent/k6.json"], "cannot read"),
        (&["compare", j], "give BASELINE CURRENT"),
        (&["compare", "--budget", "p95=10", j, j], "must end in %"),
    ];
    for (args, want) in cases {
        let (code, out, err) = barrage(args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

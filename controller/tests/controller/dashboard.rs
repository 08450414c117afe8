//! `--dashboard`: a real `barrage run` serves the page, the SSE stream and `/metrics`; a
//! real browser (headless Chromium) shows the controller's own figures live and, at the
//! end, the summary's; `/metrics` parses as Prometheus text; the Grafana dashboard reads
//! only metrics that exist.
use crate::util::{chromium, plan_file, read_json, start_target, Proc};
use barrage_controller::dashboard::{prometheus, LiveState, RunInfo, TargetLoad};
use barrage_testkit::{free_port, require, wait_for, wait_until};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// GET `path` from `addr`; `None` when nothing answers.
fn get(addr: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    let (head, body) = body.split_once("\r\n\r\n")?;
    let status = head.lines().next()?.split(' ').nth(1)?;
    (status == "200").then(|| body.to_string())
}

/// `/metrics`, parsed; also checks that every sample line parsed (the parser skips what it
/// cannot read, so a count is the format check).
fn scrape(addr: &str) -> Option<prometheus_parse::Scrape> {
    let text = get(addr, "/metrics")?;
    Some(parse_strict(&text))
}

fn parse_strict(text: &str) -> prometheus_parse::Scrape {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("metrics parse");
    let sample_lines = text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    let parsed: usize = scrape
        .samples
        .iter()
        .map(|s| match &s.value {
            prometheus_parse::Value::Summary(q) => q.len(),
            prometheus_parse::Value::Histogram(b) => b.len(),
            _ => 1,
        })
        .sum();
    assert_eq!(
        parsed, sample_lines,
        "lines the parser did not read:\n{text}"
    );
    for l in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let kind = l.split(' ').nth(3).unwrap_or("");
        assert!(
            ["counter", "gauge", "summary"].contains(&kind),
            "unknown type: {l}"
        );
    }
    scrape
}

fn value(scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .and_then(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => Some(v),
            _ => None,
        })
}

/// The names a scrape exposes (summaries also as `_sum` and `_count`).
fn names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

/// Headless Chromium with `args` then `url`, as root needs it; output to a file.
fn browser(bin: &Path, args: &[String], url: &str, out: &Path) -> Child {
    let profile = tempfile::tempdir().unwrap().keep();
    Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--window-size=1280,1400",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts")
}

/// Waits for a browser at most `limit` (then kills it): whether it exited.
fn finish(mut child: Child, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        if Instant::now() >= until {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `data-value` (else the text) of the element with `id` in a DOM dump.
fn dom_value(dom: &str, id: &str) -> String {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the page:\n{dom}"));
    let tag = &dom[at..at + dom[at..].find('>').unwrap()];
    if let Some(v) = tag.split("data-value=\"").nth(1) {
        return v.split('"').next().unwrap().to_string();
    }
    let rest = &dom[at + tag.len() + 1..];
    rest[..rest.find('<').unwrap()].to_string()
}

fn unescape(s: &str) -> String {
    s.replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
}

#[test]
fn dashboard_addresses_are_checked_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().to_str().unwrap();
    let mut run = Proc::barrage(
        "run --dashboard 0.0.0.0",
        &[
            "run",
            "--profile",
            "smoke",
            "--results-dir",
            results,
            "--dashboard",
            "0.0.0.0:7401",
        ],
    );
    assert_eq!(
        run.exit_code(Duration::from_secs(20)),
        2,
        "{}",
        run.output()
    );
    let err = run.stderr.lock().unwrap().clone();
    assert!(
        err.contains("--dashboard 0.0.0.0:7401") && err.contains("--dashboard-public"),
        "{err}"
    );
    let mut run = Proc::barrage(
        "run --dashboard-public alone",
        &[
            "run",
            "--profile",
            "smoke",
            "--results-dir",
            results,
            "--dashboard-public",
        ],
    );
    assert_eq!(
        run.exit_code(Duration::from_secs(20)),
        2,
        "{}",
        run.output()
    );
    let port = free_port().to_string();
    let addr = format!("127.0.0.1:{port}");
    let mut ctl = Proc::barrage(
        "controller --dashboard = --listen",
        &[
            "controller",
            "--profile",
            "smoke",
            "--results-dir",
            results,
            "--expect-workers",
            "1",
            "--listen",
            &addr,
            "--dashboard",
            &addr,
        ],
    );
    assert_eq!(
        ctl.exit_code(Duration::from_secs(20)),
        2,
        "{}",
        ctl.output()
    );
    assert!(
        ctl.stderr
            .lock()
            .unwrap()
            .contains("the same address as --listen"),
        "{}",
        ctl.output()
    );
}

#[test]
fn the_grafana_dashboard_reads_metrics_the_controller_exposes() {
    // names exposed in every state, and those only with target telemetry
    let mut s = LiveState::new(RunInfo::default());
    s.target = Some(TargetLoad {
        cpu_pct: 50.0,
        rss_bytes: 1 << 20,
    });
    let text = prometheus::render(&s);
    parse_strict(&text);
    let mut exposed = names(&text);
    // latency families without samples yet: their declared names
    for l in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let mut it = l.split(' ');
        let (name, kind) = (it.next().unwrap(), it.next().unwrap());
        exposed.insert(name.to_string());
        if kind == "summary" {
            exposed.insert(format!("{name}_sum"));
            exposed.insert(format!("{name}_count"));
        }
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/barrage.json");
    let dash = read_json(&path);
    let panels = dash["panels"].as_array().expect("panels");
    assert!(panels.len() >= 8, "{} panels", panels.len());
    let mut used = BTreeSet::new();
    for p in panels {
        let targets = p["targets"].as_array().expect("every panel has targets");
        assert!(!targets.is_empty(), "{}", p["title"]);
        for t in targets {
            let expr = t["expr"].as_str().expect("expr");
            for (i, _) in expr.match_indices("barrage_") {
                let name: String = expr[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                used.insert(name);
            }
        }
    }
    let missing: Vec<_> = used.difference(&exposed).collect();
    assert!(
        missing.is_empty(),
        "the Grafana dashboard reads metrics that do not exist: {missing:?}"
    );
    // every panel's title is unique and ids are unique
    let ids: BTreeSet<_> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), panels.len());
}

#[test]
fn the_page_and_metrics_follow_a_real_run_in_a_browser() {
    let Some(chrome) = require(
        "dashboard::the_page_and_metrics_follow_a_real_run_in_a_browser",
        "chromium",
        chromium(),
        "apt-get install -y chromium",
    ) else {
        return;
    };
    let target = start_target();
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_file(dir.path(), "p.toml", 2, 10, "");
    let results = dir.path().join("results");
    let addr = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{addr}/");
    let mut run = Proc::barrage(
        "barrage run --dashboard",
        &[
            "run",
            "--target",
            &target.url,
            "--runtime-name",
            "dash",
            "--runtime-version",
            "1.0",
            "--plan",
            plan.to_str().unwrap(),
            "--workers",
            "2",
            "--no-progress",
            "--results-dir",
            results.to_str().unwrap(),
            "--dashboard",
            &addr,
        ],
    );
    // two intervals merged, both workers running
    let first = wait_until(Duration::from_secs(30), Duration::from_millis(100), || {
        let s = scrape(&addr)?;
        (value(&s, "barrage_run_intervals_total", &[])? >= 2.0
            && value(&s, "barrage_workers", &[("state", "running")])? == 2.0)
            .then_some(s)
    })
    .unwrap_or_else(|| panic!("the dashboard never showed 2 intervals\n{}", run.output()));
    assert_eq!(value(&first, "barrage_vus", &[]), Some(2.0));
    assert!(value(&first, "barrage_http_reqs_total", &[]).unwrap() > 0.0);
    assert!(value(&first, "barrage_iterations_total", &[]).unwrap() > 0.0);
    assert!(value(&first, "barrage_data_received_bytes_total", &[]).unwrap() > 0.0);
    // the latency summaries: per operation, quantiles in order, counts that add up
    let run_wait = first
        .samples
        .iter()
        .find(|s| {
            s.metric == "barrage_http_req_duration_seconds"
                && s.labels.get("operation") == Some("run_wait")
        })
        .expect("run_wait latency");
    let prometheus_parse::Value::Summary(qs) = &run_wait.value else {
        panic!("not a summary: {run_wait:?}")
    };
    assert_eq!(qs.len(), 5);
    assert!(qs.windows(2).all(|w| w[0].count <= w[1].count), "{qs:?}");
    assert!(qs[0].count > 0.0);

    // the report's throughput chart, drawn from the live run
    let svg = get(&addr, "/charts/rps.svg").expect("throughput chart");
    assert!(svg.contains("<svg") && svg.contains("Throughput"), "{svg}");

    // a browser that stays until the run ends (its SSE stream ends with the final state)
    let final_dom = dir.path().join("final.html");
    let stays = browser(
        &chrome,
        &["--virtual-time-budget=1000".into(), "--dump-dom".into()],
        &url,
        &final_dom,
    );

    // the page now: its figures between the controller's before and after
    let before = value(&scrape(&addr).unwrap(), "barrage_http_reqs_total", &[]).unwrap();
    let live_dom = dir.path().join("live.html");
    let b = browser(&chrome, &["--dump-dom".into()], &url, &live_dom);
    assert!(
        finish(b, Duration::from_secs(60)),
        "chromium --dump-dom hung"
    );
    let after = value(&scrape(&addr).unwrap(), "barrage_http_reqs_total", &[]).unwrap();
    let dom = std::fs::read_to_string(&live_dom).unwrap();
    let page_requests: f64 = dom_value(&dom, "requests").parse().unwrap();
    assert!(
        before <= page_requests && page_requests <= after,
        "page shows {page_requests} requests, the controller had {before} before and {after} after"
    );
    assert_eq!(dom_value(&dom, "vus"), "2");
    assert_eq!(dom_value(&dom, "workers-live"), "2");
    assert!(
        dom.contains("data-op=\"run_wait\""),
        "no latency row for run_wait"
    );
    assert_eq!(dom.matches("data-worker=").count(), 2, "two worker rows");

    // a screenshot of the live page, kept as the test's artifact
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("dashboard-live.png");
    let _ = std::fs::remove_file(&shot);
    let b = browser(
        &chrome,
        &[format!("--screenshot={}", shot.display())],
        &url,
        &dir.path().join("shot.log"),
    );
    assert!(
        finish(b, Duration::from_secs(60)),
        "chromium --screenshot hung"
    );
    let png = std::fs::read(&shot).unwrap_or_default();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "no screenshot at {}",
        shot.display()
    );
    eprintln!("dashboard screenshot: {}", shot.display());
    // the charts the page loads are the report's, drawn as SVG from the live run
    for chart in ["rps", "p95", "operations-p95", "spectrum-http_req_duration"] {
        assert!(
            dom.contains(&format!("data-chart=\"{chart}\"")),
            "no {chart} chart on the page"
        );
    }

    // the end: exit 0, the browser that stayed shows the summary's exact figures
    assert_eq!(
        run.exit_code(Duration::from_secs(60)),
        0,
        "{}",
        run.output()
    );
    assert!(
        finish(stays, Duration::from_secs(30)),
        "the page did not finish with the run"
    );
    let summary_path = results.join("dash-v1.0-mock-2vu.summary.json");
    let summary = read_json(&summary_path);
    let dom = std::fs::read_to_string(&final_dom).unwrap();
    let requests = summary["metrics"]["http_reqs"]["count"].as_f64().unwrap();
    assert_eq!(
        dom_value(&dom, "final-requests").parse::<f64>().unwrap(),
        requests,
        "final page vs summary.json"
    );
    assert_eq!(dom_value(&dom, "phase"), "finished");
    assert_eq!(
        unescape(&dom_value(&dom, "summary-path")),
        summary_path.display().to_string()
    );
    assert!(
        unescape(&dom_value(&dom, "report-command"))
            .starts_with(&format!("barrage report {}", summary_path.display())),
        "{dom}"
    );
    assert!(dom.contains("href=\"/summary.json\""));
    // and the server is gone with the run
    wait_for("the dashboard to close", Duration::from_secs(5), || {
        get(&addr, "/metrics").is_none().then_some(())
    });
}

/// `barrage controller --dashboard`: workers show up on the dashboard while they join,
/// before the run starts.
#[test]
fn a_controller_dashboard_shows_workers_while_they_join() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_file(dir.path(), "p.toml", 1, 5, "");
    let token = crate::util::token_file(dir.path(), "token", "dashboard-test-token");
    let dash = format!("127.0.0.1:{}", free_port());
    let mut ctl = Proc::barrage(
        "controller --dashboard",
        &[
            "controller",
            "--listen",
            "127.0.0.1:0",
            "--expect-workers",
            "2",
            "--plan",
            plan.to_str().unwrap(),
            "--target",
            "http://127.0.0.1:9",
            "--token-file",
            token.to_str().unwrap(),
            "--results-dir",
            dir.path().to_str().unwrap(),
            "--no-progress",
            "--join-timeout",
            "60s",
            "--dashboard",
            &dash,
        ],
    );
    let addr = ctl.listening();
    let _worker = Proc::barrage(
        "worker",
        &[
            "worker",
            "--controller",
            &format!("http://{addr}"),
            "--token-file",
            token.to_str().unwrap(),
            "--name",
            "joiner",
        ],
    );
    let s = wait_until(Duration::from_secs(30), Duration::from_millis(100), || {
        let s = scrape(&dash)?;
        (value(&s, "barrage_workers", &[("state", "joining")])? == 1.0).then_some(s)
    })
    .unwrap_or_else(|| panic!("the worker never showed as joining\n{}", ctl.output()));
    assert_eq!(
        value(&s, "barrage_run_phase", &[("phase", "joining")]),
        Some(1.0)
    );
    assert_eq!(value(&s, "barrage_http_reqs_total", &[]), Some(0.0));
    let state: serde_json::Value =
        serde_json::from_str(&get(&dash, "/state").expect("/state")).unwrap();
    assert_eq!(state["workers"][0]["name"], "joiner", "{state}");
    assert_eq!(state["run"]["expect_workers"], 2);
    assert_eq!(
        get(&dash, "/summary.json"),
        None,
        "no summary before the end"
    );
}

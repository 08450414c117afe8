//! Process faults and exit codes of `barrage` (issue 14): closed stdout/stderr pipes,
//! SIGKILL/SIGHUP/SIGTERM of `barrage run`, results never overwritten, the plan's own
//! target, `--workers` bounds (under a pids cgroup), TLS and plaintext checks, a target that
//! never answers, and the exit codes 98, 99 (`abortOnFail`) and 130.
use crate::util::{
    plan_file, read_json, start_target, start_target_with_delay, token_file, Proc, BARRAGE,
};
use barrage_testkit::{free_port, wait_for, wait_until};
use std::collections::BTreeMap;
use std::io::Read as _;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

// ---------------------------------------------------------------- helpers

/// Starts `barrage <args>` with stdout and stderr connected to pipes whose reading ends
/// are closed at once: every write the process makes to either fails with EPIPE.
fn spawn_with_closed_pipes(args: &[&str]) -> Child {
    let mut child = Command::new(BARRAGE)
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    drop(child.stderr.take());
    child
}

fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let status = wait_until(limit, Duration::from_millis(25), || {
        child.try_wait().unwrap()
    });
    status.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("still running after {limit:?}")
    })
}

/// `(pid, start time)` of every process below `root`, from /proc.
fn descendants(root: u32) -> Vec<(u32, u64)> {
    let mut children: BTreeMap<u32, Vec<(u32, u64)>> = BTreeMap::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Some((ppid, start, _)) = stat(pid) {
            children.entry(ppid).or_default().push((pid, start));
        }
    }
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        for &(c, start) in children.get(&p).map_or(&[][..], |v| &v[..]) {
            out.push((c, start));
            todo.push(c);
        }
    }
    out
}

/// `(ppid, start time, state)` of `pid`.
fn stat(pid: u32) -> Option<(u32, u64, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((
        f[1].parse().ok()?,
        f[19].parse().ok()?,
        f[0].chars().next()?,
    ))
}

/// Whether the process `(pid, start)` still runs (a zombie does not).
fn alive(&(pid, start): &(u32, u64)) -> bool {
    stat(pid).is_some_and(|(_, s, state)| s == start && state != 'Z')
}

/// Waits until the reference runtime at `url` has served at least `n` requests.
fn wait_requests(url: &str, n: u64) {
    wait_for(
        &format!("{n} requests at {url}"),
        Duration::from_secs(30),
        || {
            let stats = crate::util::get_json(&format!("{url}/stats"));
            (stats["requests_total"].as_u64()? >= n).then_some(())
        },
    );
}

/// The embedded runtime's URL, from `barrage run`'s line `barrage: target URL (reference runtime)`.
fn embedded_url(run: &Proc) -> String {
    wait_for("the embedded target", Duration::from_secs(30), || {
        let err = run.stderr.lock().unwrap().clone();
        let line = err.lines().find(|l| l.starts_with("barrage: target "))?;
        Some(line.split_whitespace().nth(2)?.to_string())
    })
}

fn summaries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".summary.json"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

// ---------------------------------------------------------------- §1 closed pipes

#[test]
fn closed_stdout_and_stderr_do_not_end_a_run() {
    let target = start_target();
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let plan = plan_file(dir.path(), "p.toml", 1, 2, "");
    let mut run = spawn_with_closed_pipes(&[
        "run",
        "--plan",
        plan.to_str().unwrap(),
        "--target",
        &target.url,
        "--workers",
        "1",
        "--results-dir",
        results.to_str().unwrap(),
    ]);
    let status = wait_exit(&mut run, Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "barrage run: {status}");
    let names = summaries(&results);
    assert_eq!(names.len(), 1, "{names:?}");
    let s = read_json(&results.join(&names[0]));
    assert!(s["metrics"]["iterations"]["count"].as_f64().unwrap() > 0.0);

    // the worker on its own
    let mut worker = spawn_with_closed_pipes(&[
        "worker",
        "--standalone",
        "--plan",
        plan.to_str().unwrap(),
        "--target",
        &target.url,
        "--results-dir",
        dir.path().join("alone").to_str().unwrap(),
    ]);
    let status = wait_exit(&mut worker, Duration::from_secs(60));
    assert_eq!(
        status.code(),
        Some(0),
        "barrage worker --standalone: {status}"
    );

    // the two servers: they serve, then stop cleanly on SIGTERM
    for server in ["mock-llm", "reference-runtime"] {
        let port = free_port().to_string();
        let mut child = spawn_with_closed_pipes(&[server, "--host", "127.0.0.1", "--port", &port]);
        let addr = format!("127.0.0.1:{port}");
        let answered = wait_until(Duration::from_secs(20), Duration::from_millis(50), || {
            if let Ok(Some(s)) = child.try_wait() {
                panic!("{server} exited with {s} before it served");
            }
            let mut s = TcpStream::connect(&addr).ok()?;
            std::io::Write::write_all(
                &mut s,
                b"GET /stats HTTP/1.0\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
            .ok()?;
            let mut body = String::new();
            s.read_to_string(&mut body).ok()?;
            body.starts_with("HTTP/1.").then_some(())
        });
        assert!(answered.is_some(), "{server} never answered");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let status = wait_exit(&mut child, Duration::from_secs(20));
        assert_eq!(status.code(), Some(0), "{server}: {status}");
    }
}

// ---------------------------------------------------------------- §10 signals, orphans

/// `barrage run` of a 60 s plan against the embedded target, with a private `TMPDIR` (to see
/// what is left there): the run, its `TMPDIR` and its results folder.
fn embedded_run(dir: &Path, vus: u64) -> (Proc, std::path::PathBuf, std::path::PathBuf) {
    let tmp = dir.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let results = dir.join("results");
    let plan = plan_file(dir, "long.toml", vus, 60, "");
    let mut cmd = Command::new(BARRAGE);
    cmd.args([
        "run",
        "--plan",
        plan.to_str().unwrap(),
        "--workers",
        "1",
        "--no-progress",
        "--results-dir",
        results.to_str().unwrap(),
    ])
    .env("TMPDIR", &tmp)
    .env("RUST_LOG", "info");
    (Proc::start("barrage run", &mut cmd), tmp, results)
}

#[test]
fn sigkill_of_barrage_run_leaves_no_child_and_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let (mut run, tmp, _) = embedded_run(dir.path(), 1);
    let pid = run.child.id();
    // mock LLM, reference runtime, one worker
    let kids = wait_for("three children", Duration::from_secs(30), || {
        let d = descendants(pid);
        (d.len() >= 3).then_some(d)
    });
    let url = embedded_url(&run);
    wait_requests(&url, 1);
    run.signal("KILL");
    assert!(run.wait(Duration::from_secs(10)).is_some());
    let left = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        (!kids.iter().any(alive)).then_some(())
    });
    assert!(
        left.is_some(),
        "children still alive after SIGKILL of barrage: {:?}",
        kids.iter().filter(|k| alive(k)).collect::<Vec<_>>()
    );
    let files: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().collect();
    assert!(files.is_empty(), "left in TMPDIR: {files:?}");
}

#[test]
fn sighup_and_sigterm_stop_gracefully_write_results_and_leave_nothing() {
    for sig in ["HUP", "TERM"] {
        let dir = tempfile::tempdir().unwrap();
        let (mut run, tmp, results) = embedded_run(dir.path(), 2);
        let url = embedded_url(&run);
        wait_requests(&url, 20);
        let kids = descendants(run.child.id());
        assert!(kids.len() >= 3, "{kids:?}\n{}", run.output());
        run.signal(sig);
        assert_eq!(
            run.exit_code(Duration::from_secs(30)),
            0,
            "SIG{sig}\n{}",
            run.output()
        );
        assert!(!kids.iter().any(alive), "SIG{sig}: children left");
        let names = summaries(&results);
        assert_eq!(names.len(), 1, "SIG{sig}: {names:?}\n{}", run.output());
        let s = read_json(&results.join(&names[0]));
        assert!(
            s["result"]["end_reason"]
                .as_str()
                .unwrap()
                .starts_with("interrupted"),
            "SIG{sig}: {}",
            s["result"]
        );
        assert!(s["metrics"]["http_reqs"]["count"].as_f64().unwrap() > 0.0);
        let files: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().collect();
        assert!(files.is_empty(), "SIG{sig}: left in TMPDIR: {files:?}");
    }
}

// ---------------------------------------------------------------- §8, §9 target, results

#[test]
fn plan_target_is_used_and_results_are_never_overwritten() {
    let target = start_target();
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let extra = format!(
        "[target]\nurl = \"{}\"\nruntime = \"ts\"\nversion = \"9.9.9\"\n",
        target.url
    );
    let plan = plan_file(dir.path(), "p.toml", 1, 1, &extra);
    let out = dir.path().join("points.json");
    let run_once = |extra_args: &[&str]| {
        let mut args = vec![
            "run",
            "--plan",
            plan.to_str().unwrap(),
            "--workers",
            "1",
            "--no-progress",
            "--results-dir",
            results.to_str().unwrap(),
            "--out",
        ];
        let out_arg = format!("json={}", out.display());
        args.push(&out_arg);
        args.extend_from_slice(extra_args);
        let mut run = Proc::barrage("barrage run", &args);
        let code = run.exit_code(Duration::from_secs(60));
        (code, run.output())
    };
    let (code, output) = run_once(&[]);
    assert_eq!(code, 0, "{output}");
    // no --target: the plan's own target, with the plan's labels (not the embedded one)
    assert_eq!(
        summaries(&results),
        ["ts-v9.9.9-mock-1vu.summary.json"],
        "{output}"
    );
    let first = read_json(&results.join("ts-v9.9.9-mock-1vu.summary.json"));
    assert_eq!(first["target"]["runtime"], "ts");
    let stats = crate::util::get_json(&format!("{}/stats", target.url));
    assert!(stats["requests_total"].as_u64().unwrap() > 0, "{stats}");

    // the --out file exists: refused before anything starts
    let (code, output) = run_once(&[]);
    assert_eq!(code, 2, "{output}");
    assert!(
        output.contains("points.json") && output.contains("--overwrite"),
        "{output}"
    );
    assert_eq!(summaries(&results).len(), 1);

    // with --overwrite: the --out file is replaced, the summary gets -2
    let (code, output) = run_once(&["--overwrite"]);
    assert_eq!(code, 0, "{output}");
    assert_eq!(
        summaries(&results),
        [
            "ts-v9.9.9-mock-1vu-2.summary.json",
            "ts-v9.9.9-mock-1vu.summary.json"
        ]
    );
    assert!(
        output.contains("ts-v9.9.9-mock-1vu-2.summary.json"),
        "the final path is printed\n{output}"
    );
    assert_eq!(
        read_json(&results.join("ts-v9.9.9-mock-1vu.summary.json")),
        first,
        "the first summary was changed"
    );
}

// ---------------------------------------------------------------- §11 --workers bound

#[test]
fn huge_workers_is_refused_before_any_child_exists() {
    let Some(()) = barrage_testkit::require(
        "faults::huge_workers",
        "root and a cgroup v1 pids hierarchy at /sys/fs/cgroup/pids",
        (barrage_testkit::is_root() && Path::new("/sys/fs/cgroup/pids/cgroup.procs").exists())
            .then_some(()),
        "run the tests as root on a host with cgroup v1 pids mounted",
    ) else {
        return;
    };
    // a regression would fork without bound: the cgroup caps it
    let cg =
        Path::new("/sys/fs/cgroup/pids").join(format!("barrage-faults-{}", std::process::id()));
    std::fs::create_dir(&cg).unwrap();
    std::fs::write(cg.join("pids.max"), "64").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_file(dir.path(), "p.toml", 1, 1, "");
    let script = format!(
        "echo $$ > {}/cgroup.procs && exec \"$0\" \"$@\"",
        cg.display()
    );
    let out = Command::new("sh")
        .args(["-c", &script, BARRAGE, "run", "--plan"])
        .arg(&plan)
        .args(["--target", "http://127.0.0.1:9", "--workers", "100000"])
        .arg("--results-dir")
        .arg(dir.path().join("results"))
        .output()
        .unwrap();
    let left: u64 = std::fs::read_to_string(cg.join("pids.current"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _ = std::fs::remove_dir(&cg);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--workers 100000") && stderr.contains("--allow-many-workers"),
        "{stderr}"
    );
    assert_eq!(left, 0, "processes left in the cgroup");
}

// ---------------------------------------------------------------- §5, §7 TLS, plaintext

#[test]
fn bad_pem_and_plaintext_secrets_are_refused_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "this is not PEM\n").unwrap();
    let token = token_file(dir.path(), "token", "shared-token");
    let results = dir.path().join("results");
    let base = |listen: &str| {
        vec![
            "controller".to_string(),
            "--profile".into(),
            "smoke".into(),
            "--expect-workers".into(),
            "1".into(),
            "--listen".into(),
            listen.into(),
            "--results-dir".into(),
            results.display().to_string(),
        ]
    };
    let mut args = base("127.0.0.1:0");
    args.extend(["--tls-cert".into(), junk.display().to_string()]);
    args.extend(["--tls-key".into(), junk.display().to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut c = Proc::barrage("controller", &args);
    assert_eq!(c.exit_code(Duration::from_secs(20)), 2, "{}", c.output());
    let out = c.output();
    assert!(
        out.contains("--tls-cert") && out.contains("junk.pem"),
        "{out}"
    );
    assert!(!out.contains("listening on"), "{out}");

    // the plan's JWT secret would cross the network in clear
    let mut args = base("0.0.0.0:0");
    args.extend([
        "--token-file".into(),
        token.display().to_string(),
        "--jwt-secret-env".into(),
        "FAULTS_JWT_SECRET".into(),
    ]);
    let refused: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = Command::new(BARRAGE);
    cmd.args(&refused).env(
        "FAULTS_JWT_SECRET",
        "a-test-secret-that-is-at-least-32-characters",
    );
    let mut c = Proc::start("controller", &mut cmd);
    assert_eq!(c.exit_code(Duration::from_secs(20)), 2, "{}", c.output());
    let out = c.output();
    assert!(
        out.contains("--insecure-plaintext") && out.contains("jwt_secret"),
        "{out}"
    );
    assert!(!out.contains("listening on"), "{out}");
    assert!(
        !out.contains("a-test-secret"),
        "the secret was printed: {out}"
    );

    // accepted when asked for, and said so at start
    let mut accepted = refused.clone();
    accepted.push("--insecure-plaintext");
    let mut cmd = Command::new(BARRAGE);
    cmd.args(&accepted).env(
        "FAULTS_JWT_SECRET",
        "a-test-secret-that-is-at-least-32-characters",
    );
    let mut c = Proc::start("controller", &mut cmd);
    c.listening();
    assert!(
        c.stderr.lock().unwrap().contains("clear text"),
        "{}",
        c.output()
    );
}

// ---------------------------------------------------------------- a dead target fails

#[test]
fn a_target_that_never_answers_fails_its_thresholds() {
    // accepts connections, reads nothing back, never answers
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = held.clone();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten().take(1000) {
            keep.lock().unwrap().push(s);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let plan = plan_file(
        dir.path(),
        "p.toml",
        1,
        2,
        "[thresholds]\nhttp_req_duration = [\"p(95)<1000\"]\n\"http_req_duration{operation:run_wait}\" = [\"p(95)<5000\"]\n",
    );
    let mut run = Proc::barrage(
        "barrage run",
        &[
            "run",
            "--plan",
            plan.to_str().unwrap(),
            "--target",
            &url,
            "--workers",
            "1",
            "--no-progress",
            "--results-dir",
            results.to_str().unwrap(),
        ],
    );
    assert_eq!(
        run.exit_code(Duration::from_secs(60)),
        99,
        "{}",
        run.output()
    );
    assert!(
        !held.lock().unwrap().is_empty(),
        "the target saw no connection"
    );
    let names = summaries(&results);
    let s = read_json(&results.join(&names[0]));
    let by_metric = |m: &str| {
        s["thresholds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["metric"] == m)
            .unwrap_or_else(|| panic!("no threshold on {m}: {s}"))
            .clone()
    };
    // the requests cut by the stop are data: failed, tagged error=interrupted, and slow
    let cut = by_metric("http_req_duration");
    assert_eq!(cut["ok"].as_bool(), Some(false), "{cut}");
    assert!(cut["observed"].as_f64().is_some(), "{cut}");
    // a step the flow never reached has no data, and that fails too
    let never = by_metric("http_req_duration{operation:run_wait}");
    assert_eq!(
        (never["ok"].as_bool(), never["observed"].is_null()),
        (Some(false), true),
        "{never}"
    );
    let stdout = run.stdout.lock().unwrap().clone();
    let line = stdout
        .lines()
        .find(|l| l.contains("'p(95)<5000'"))
        .unwrap_or_else(|| panic!("no threshold line\n{}", run.output()));
    assert!(
        line.trim_start()
            .starts_with("✗ http_req_duration{operation:run_wait}")
            && line.ends_with("observed=no data"),
        "{line}"
    );
}

// ---------------------------------------------------------------- exit codes 98, 99, 130

#[test]
fn a_lost_worker_with_on_worker_loss_fail_exits_98() {
    let target = start_target();
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let extra = format!("[target]\nurl = \"{}\"\nruntime = \"lost\"\n", target.url);
    let plan = plan_file(dir.path(), "p.toml", 2, 60, &extra);
    let token = token_file(dir.path(), "token", "shared-token-98");
    let mut ctl = Proc::barrage(
        "controller",
        &[
            "controller",
            "--plan",
            plan.to_str().unwrap(),
            "--expect-workers",
            "2",
            "--listen",
            "127.0.0.1:0",
            "--token-file",
            token.to_str().unwrap(),
            "--on-worker-loss",
            "fail",
            "--no-progress",
            "--results-dir",
            results.to_str().unwrap(),
        ],
    );
    let addr = ctl.listening();
    let workers: Vec<Proc> = (1..=2)
        .map(|i| {
            Proc::barrage(
                &format!("worker {i}"),
                &[
                    "worker",
                    "--controller",
                    &format!("http://{addr}"),
                    "--token-file",
                    token.to_str().unwrap(),
                    "--name",
                    &format!("w-{i}"),
                ],
            )
        })
        .collect();
    wait_requests(&target.url, 20);
    workers[0].signal("KILL");
    assert_eq!(
        ctl.exit_code(Duration::from_secs(60)),
        98,
        "{}",
        ctl.output()
    );
    let s = read_json(&results.join("lost-v0.1.0-mock-2vu.summary.json"));
    assert_eq!(s["result"]["exit_code"], 98, "{}", s["result"]);
    assert!(
        s["result"]["end_reason"]
            .as_str()
            .unwrap()
            .starts_with("failed"),
        "{}",
        s["result"]
    );
}

#[test]
fn two_sigints_exit_130_with_partial_results() {
    // a mock LLM slow enough that the graceful stop is still waiting on iterations when the
    // second SIGINT comes
    let target = start_target_with_delay(1500);
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let plan = plan_file(dir.path(), "long.toml", 2, 60, "");
    let mut run = Proc::barrage(
        "barrage run",
        &[
            "run",
            "--plan",
            plan.to_str().unwrap(),
            "--target",
            &target.url,
            "--workers",
            "1",
            "--no-progress",
            "--results-dir",
            results.to_str().unwrap(),
        ],
    );
    wait_requests(&target.url, 4);
    run.signal("INT");
    // two signals sent back to back may reach the process as one (the kernel does not
    // queue a pending standard signal): the second goes once the first was taken
    wait_for(
        "the first SIGINT to be taken",
        Duration::from_secs(10),
        || run.output().contains("again to abort").then_some(()),
    );
    run.signal("INT");
    assert_eq!(
        run.exit_code(Duration::from_secs(30)),
        130,
        "{}",
        run.output()
    );
    let names = summaries(&results);
    assert_eq!(names.len(), 1, "{names:?}");
    let s = read_json(&results.join(&names[0]));
    assert_eq!(s["result"]["exit_code"], 130);
    assert!(
        s["result"]["end_reason"]
            .as_str()
            .unwrap()
            .starts_with("interrupted twice"),
        "{}",
        s["result"]
    );
}

#[test]
fn abort_on_fail_stops_a_real_run_early() {
    let target = start_target();
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let plan = plan_file(
        dir.path(),
        "abort.toml",
        1,
        60,
        "[thresholds]\nhttp_reqs = [{ threshold = \"count<5\", abortOnFail = true }]\n",
    );
    let mut run = Proc::barrage(
        "barrage run",
        &[
            "run",
            "--plan",
            plan.to_str().unwrap(),
            "--target",
            &target.url,
            "--workers",
            "1",
            "--no-progress",
            "--results-dir",
            results.to_str().unwrap(),
        ],
    );
    assert_eq!(
        run.exit_code(Duration::from_secs(50)),
        99,
        "{}",
        run.output()
    );
    let names = summaries(&results);
    let s = read_json(&results.join(&names[0]));
    let reason = s["result"]["end_reason"].as_str().unwrap();
    assert!(
        reason.starts_with("aborted: threshold http_reqs 'count<5' failed"),
        "{reason}"
    );
    // stopped on the threshold, long before the plan's 60 s
    assert!(
        s["duration_s"].as_f64().unwrap() < 45.0,
        "{}",
        s["duration_s"]
    );
}

// ---------------------------------------------------------------- Report::exit_code

#[test]
fn report_exit_codes() {
    use barrage_controller::exit_code as x;
    use barrage_controller::report::{EndReason, RunReport};
    use barrage_core::Verdict;
    let outcome = |ok: bool| Verdict {
        metric: "http_reqs".into(),
        source: "count<1".into(),
        observed: ok.then_some(0.0),
        ok,
        abort_on_fail: false,
        delay_abort_eval: Duration::ZERO,
    };
    let plan = barrage_core::Plan::profile(barrage_core::Profile::Smoke);
    let base = RunReport {
        stages: barrage_core::stages::StageBook::new(&plan.scenario, plan.interval),
        plan,
        start: std::time::SystemTime::UNIX_EPOCH,
        end: std::time::SystemTime::UNIX_EPOCH,
        elapsed: Duration::ZERO,
        total: Default::default(),
        timeseries: Default::default(),
        workers: Vec::new(),
        thresholds: Vec::new(),
        end_reason: EndReason::Completed,
        late_snapshots: 0,
        validity: None,
    };
    // (end reason, thresholds passed?, exit code)
    let cases = [
        (EndReason::Completed, true, x::SUCCESS),
        (EndReason::Completed, false, x::THRESHOLDS_FAILED),
        (EndReason::Interrupted, true, x::SUCCESS),
        (EndReason::Interrupted, false, x::THRESHOLDS_FAILED),
        (EndReason::Aborted, true, x::INTERRUPTED),
        (EndReason::Aborted, false, x::INTERRUPTED),
        (
            EndReason::ThresholdAbort("t".into()),
            false,
            x::THRESHOLDS_FAILED,
        ),
        (EndReason::WorkersLost("w".into()), true, x::WORKERS_LOST),
        (EndReason::WorkersLost("w".into()), false, x::WORKERS_LOST),
        (EndReason::Deadline, true, x::FAILURE),
        (EndReason::Deadline, false, x::THRESHOLDS_FAILED),
    ];
    for (reason, passed, want) in cases {
        let r = RunReport {
            end_reason: reason.clone(),
            thresholds: vec![outcome(passed)],
            ..base.clone()
        };
        assert_eq!(
            r.exit_code(),
            want,
            "{reason:?}, thresholds passed: {passed}"
        );
    }
    assert_eq!((x::SUCCESS, x::FAILURE, x::CONFIG), (0, 1, 2));
    assert_eq!(
        (x::WORKERS_LOST, x::THRESHOLDS_FAILED, x::INTERRUPTED),
        (98, 99, 130)
    );
}

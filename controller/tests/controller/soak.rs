//! Soak runs, compressed to seconds with 100 ms intervals (issue 13 §3): the RSS trend
//! finds a target that leaks on purpose and not the same target without the leak; the
//! controller's own memory stays flat (its RSS floor grows by less than a leak of a fraction
//! of one interval's merged snapshot per interval; smaller leaks over many intervals are
//! `bench/controller/soak_rss.rs`'s to find); a controller killed with -9 and restarted with
//! `--resume` ends with the workers' own totals, less at most one checkpoint period.
use crate::util::{get_json, plan_file, start_target, token_file, Proc};
use barrage_testkit::wait_for;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The one summary `results` holds.
pub(crate) fn summary_in(results: &Path) -> serde_json::Value {
    let found: Vec<PathBuf> = std::fs::read_dir(results)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".summary.json"))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    barrage_testkit::summary::read_summary(&found[0])
}

fn trend<'a>(summary: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    summary["trends"]["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no trends: {}", summary["trends"]))
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no {name} trend: {}", summary["trends"]))
}

/// Resident memory of `pid`, bytes.
fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// A compressed soak of the reference runtime (`--leak-runs` or not) under
/// `barrage run --soak` with the plan's `[thresholds]` (slopes: `SLOPES`); returns its
/// summary, the controller's RSS samples after warm-up, its exit code and its stdout.
fn soak_run(leak: bool) -> (serde_json::Value, Vec<u64>, i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.toml");
    std::fs::write(
        &plan,
        format!(
            "name = \"soak\"\ninterval = \"100ms\"\ngraceful_stop = \"2s\"\n\
             [scenario]\nexecutor = \"constant-vus\"\nvus = 4\nduration = \"40s\"\n\
             [target]\nruntime = \"ref\"\n[thresholds]\n{SLOPES}"
        ),
    )
    .unwrap();
    let results = dir.path().join("results");
    let cmd = if leak {
        "exec \"$BARRAGE\" reference-runtime --leak-runs"
    } else {
        "exec \"$BARRAGE\" reference-runtime"
    };
    let mut run = Proc::barrage(
        "barrage run --soak",
        &[
            "run",
            "--plan",
            plan.to_str().unwrap(),
            "--target-cmd",
            cmd,
            "--target-health",
            "/ok",
            "--workers",
            "1",
            "--no-progress",
            "--results-dir",
            results.to_str().unwrap(),
            "--soak",
            "--soak-warmup",
            "10s",
            "--checkpoint-every",
            "2s",
        ],
    );
    let pid = run.child.id();
    let started = Instant::now();
    let mut samples = Vec::new();
    while run.child.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(90) {
        // while the load runs (the end's summary is built after 40 s)
        let t = started.elapsed();
        if t > Duration::from_secs(15) && t < Duration::from_secs(38) {
            samples.extend(rss(pid));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let code = run.exit_code(Duration::from_secs(60));
    // 0, or 99 for the leak's slope (judged below)
    assert!(code == 0 || code == 99, "{}", run.output());
    let summary = summary_in(&results);
    // the run ended well: its checkpoint folder is gone
    let left: Vec<_> = std::fs::read_dir(&results)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".checkpoint"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let stdout = run.stdout.lock().unwrap().clone();
    (summary, samples, code, stdout)
}

/// Slope thresholds of the soak runs. Seen on a loaded 2-core machine: the leak's RSS
/// slope 1.1 GB/h (interval from 1.0 GB/h), the clean run's −45 MB/h; p99 slopes ±10⁴ %/h,
/// as 30 s of fit make any drift large per hour. The p99 bound fails a p99 that grows
/// fivefold over the fit window.
const SLOPES: &str = "target_rss = [\"slope<300MB/h\"]\n\
                      http_req_duration = [\"p99_slope<50000%/h\"]\n";

/// The verdict of the threshold `expr` on `metric` in a summary.
fn verdict<'a>(summary: &'a serde_json::Value, metric: &str, expr: &str) -> &'a serde_json::Value {
    summary["thresholds"]
        .as_array()
        .unwrap_or_else(|| panic!("no thresholds: {}", summary["thresholds"]))
        .iter()
        .find(|t| t["metric"] == metric && t["threshold"] == expr)
        .unwrap_or_else(|| panic!("no verdict of {metric} {expr}: {}", summary["thresholds"]))
}

/// The slope thresholds are judged on the trends at the end: the leak crosses the RSS
/// slope (exit 99, named in summary.json and the text), the clean run passes both.
fn slope_verdicts(leaky: (&serde_json::Value, i32, &str), clean: (&serde_json::Value, i32, &str)) {
    let rss_expr = "slope<300MB/h";
    let p99_expr = "p99_slope<50000%/h";
    let (summary, code, text) = leaky;
    assert_eq!(code, 99, "{text}");
    let v = verdict(summary, "target_rss", rss_expr);
    assert_eq!(v["ok"], false, "{v}");
    assert!(
        text.lines()
            .any(|l| l.contains('✗') && l.contains("target_rss") && l.contains(rss_expr)),
        "{text}"
    );
    let (summary, code, text) = clean;
    assert_eq!(code, 0, "{text}");
    for (metric, expr) in [("target_rss", rss_expr), ("http_req_duration", p99_expr)] {
        let v = verdict(summary, metric, expr);
        assert_eq!(v["ok"], true, "{v}");
        assert!(v["observed"].is_number(), "{v}");
    }
}

#[test]
fn a_soak_finds_the_leak_and_only_the_leak() {
    let (leaky, ctl_rss_leaky, leaky_code, leaky_text) = soak_run(true);
    let rss = trend(&leaky, "target_rss");
    assert_eq!(rss["direction"], "rising", "{rss}");
    assert!(rss["ci95_low_per_h"].as_f64().unwrap() > 0.0, "{rss}");
    // the leak keeps runs, the cleanup still deletes threads and assistants
    let res = &leaky["trends"]["resources"];
    assert_eq!(res["source"], "GET /stats", "{res}");
    assert_eq!(res["left"], serde_json::json!([]), "{res}");

    let (clean, ctl_rss, clean_code, clean_text) = soak_run(false);
    let rss_clean = trend(&clean, "target_rss");
    eprintln!("target_rss trend, leaky: {rss}\nclean: {rss_clean}");
    eprintln!(
        "p99 trend, leaky: {}\nclean: {}",
        trend(&leaky, "http_req_duration:p99"),
        trend(&clean, "http_req_duration:p99")
    );
    slope_verdicts(
        (&leaky, leaky_code, &leaky_text),
        (&clean, clean_code, &clean_text),
    );
    assert_ne!(rss_clean["direction"], "rising", "{rss_clean}");
    assert!(
        rss_clean["slope_per_h"].as_f64().unwrap() < rss["slope_per_h"].as_f64().unwrap() / 4.0,
        "leaky {rss}, clean {rss_clean}"
    );
    // latency and errors are fitted too
    trend(&clean, "http_req_duration:p99");
    trend(&clean, "http_req_failed:rate");
    // the controller's own memory after warm-up does not rise (`controller_rss_is_flat`)
    for (run, samples) in [("leaky", &ctl_rss_leaky), ("clean", &ctl_rss)] {
        controller_rss_is_flat(run, samples);
    }
}

/// How much the controller's RSS floor may rise per interval closed in the test's window
/// (`controller_rss_is_flat`). The window (intervals 150–380) is still the process's
/// warm-up: a clean run's floor was seen rising 33 KB per interval there (interval 13–52),
/// while `bench/controller/soak_rss.rs` finds the floor flat over thousands of intervals
/// after it. The bound sits twice above that warm-up and below what a soak must not keep:
/// a deliberate leak of 96 KiB per interval failed it, as would keeping each interval's
/// merged snapshot (about 1.5 MB here). Smaller leaks are the bench's to find.
const FLOOR_RISE_PER_INTERVAL: f64 = 65_536.0;

/// The `barrage run --soak` process's RSS in the test's window (a sample every 0.5 s over
/// 230 intervals) does not grow with the intervals closed. Checkpoints every 2 s make it a
/// sawtooth (a checkpoint's transient heap stays resident a while under mimalloc), so the
/// rig's trend fit (`barrage_core::trend::fit`) is made on each 2 s period's lowest reading,
/// what live data holds. It fails when that floor rises for sure (interval above zero) by
/// more than [`FLOOR_RISE_PER_INTERVAL`] per interval closed.
fn controller_rss_is_flat(run: &str, samples: &[u64]) {
    assert!(samples.len() >= 20, "{run}: {} samples", samples.len());
    let floors: Vec<(f64, f64)> = samples
        .chunks(4)
        .enumerate()
        .map(|(i, c)| (i as f64 * 2.0, *c.iter().min().unwrap() as f64))
        .collect();
    let f = barrage_core::trend::fit(&floors).unwrap();
    // bytes per interval: the slope is per second, ten intervals a second
    let per_interval = |bytes_per_s: f64| bytes_per_s / 10.0;
    eprintln!(
        "{run}: controller RSS floor {:.1} MiB mean, {:+.0} [{:+.0}, {:+.0}] bytes per interval",
        f.mean / 1048576.0,
        per_interval(f.slope),
        per_interval(f.low),
        per_interval(f.high)
    );
    assert!(
        f.low <= 0.0 || per_interval(f.slope) <= FLOOR_RISE_PER_INTERVAL,
        "{run}: the controller's RSS floor rises by {:.0} bytes per interval ({f:?}): {samples:?}",
        per_interval(f.slope)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn controller_args<'a>(
    listen: &'a str,
    plan: &'a Path,
    token: &'a Path,
    results: &'a Path,
) -> Vec<&'a str> {
    vec![
        "controller",
        "--listen",
        listen,
        "--expect-workers",
        "2",
        "--plan",
        plan.to_str().unwrap(),
        "--token-file",
        token.to_str().unwrap(),
        "--results-dir",
        results.to_str().unwrap(),
        "--no-progress",
        "--join-timeout",
        "60s",
        "--soak",
        "--checkpoint-every",
        "1s",
        "--rejoin-grace",
        "30s",
        "--soak-warmup",
        "1s",
    ]
}

#[test]
fn a_killed_controller_resumes_and_loses_at_most_one_checkpoint() {
    let target = start_target();
    let dir = tempfile::tempdir().unwrap();
    let extra = format!("[target]\nurl = \"{}\"\nruntime = \"resume\"\n", target.url);
    let plan = plan_file(dir.path(), "p.toml", 2, 16, &extra);
    // 100 ms intervals: many intervals in a short run
    let text = std::fs::read_to_string(&plan)
        .unwrap()
        .replace("interval = \"1s\"", "interval = \"100ms\"");
    std::fs::write(&plan, text).unwrap();
    let token = token_file(dir.path(), "token", "soak-token");
    let results = dir.path().join("results");
    let listen = format!("127.0.0.1:{}", free_port());
    let mut first = Proc::barrage(
        "controller",
        &controller_args(&listen, &plan, &token, &results),
    );
    assert_eq!(first.listening(), listen);
    let workers: Vec<Proc> = (1..=2)
        .map(|i| {
            Proc::barrage(
                &format!("w-{i}"),
                &[
                    "worker",
                    "--controller",
                    &format!("http://{listen}"),
                    "--token-file",
                    token.to_str().unwrap(),
                    "--name",
                    &format!("w-{i}"),
                ],
            )
        })
        .collect();
    // a checkpoint of a few seconds of load
    let checkpoint = wait_for("a checkpoint", Duration::from_secs(60), || {
        let d = std::fs::read_dir(&results).ok()?.find_map(|e| {
            let p = e.ok()?.path();
            p.to_string_lossy().ends_with(".checkpoint").then_some(p)
        })?;
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join("state.json")).ok()?).ok()?;
        (state["closed_through"].as_u64()? >= 40).then_some(d)
    });
    first.signal("KILL");
    first.wait(Duration::from_secs(5));
    // killed for good, it left a valid partial summary
    let partial = barrage_testkit::summary::read_summary(&checkpoint.join("summary.json"));
    let reason = partial["result"]["end_reason"].as_str().unwrap();
    assert!(reason.starts_with("partial:"), "{reason}");
    assert!(partial["metrics"]["iterations"]["count"].as_f64().unwrap() > 0.0);
    let mut summarize = Proc::barrage(
        "summarize",
        &[
            "summarize",
            checkpoint.join("summary.json").to_str().unwrap(),
        ],
    );
    assert_eq!(
        summarize.exit_code(Duration::from_secs(30)),
        0,
        "{}",
        summarize.output()
    );
    // the workers keep their load up meanwhile
    let served = |u: &str| {
        get_json(&format!("{u}/stats"))["requests_total"]
            .as_u64()
            .unwrap()
    };
    let before = served(&target.url);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        served(&target.url) > before,
        "the workers stopped without their controller"
    );

    let mut args = controller_args(&listen, &plan, &token, &results);
    let resume = checkpoint.to_str().unwrap().to_string();
    args.extend_from_slice(&["--resume", &resume]);
    let mut second = Proc::barrage("resumed controller", &args);
    assert_eq!(second.listening(), listen);
    let code = second.exit_code(Duration::from_secs(90));
    assert_eq!(code, 0, "{}", second.output());
    for mut w in workers {
        assert_eq!(w.exit_code(Duration::from_secs(30)), 0, "{}", w.output());
    }
    let summary = summary_in(&results);
    assert_within_one_checkpoint(&summary, &second.output());
    assert!(!checkpoint.exists(), "the checkpoint folder is left");
}

/// The resumed run's merged iterations equal the workers' own totals (their `Done`) less at
/// most one checkpoint period (1 s) of iterations lost, never any counted twice.
fn assert_within_one_checkpoint(summary: &serde_json::Value, output: &str) {
    let merged = summary["metrics"]["iterations"]["count"].as_f64().unwrap();
    let done: u64 = summary["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            w["done_iterations"]
                .as_u64()
                .unwrap_or_else(|| panic!("a worker without Done: {w}\n{output}"))
        })
        .sum();
    let per_s = done as f64 / summary["duration_s"].as_f64().unwrap();
    assert!(
        merged <= done as f64 && merged >= done as f64 - per_s * 1.0 - 1.0,
        "merged {merged}, the workers' own {done} ({per_s:.1}/s)\n{output}"
    );
}

/// Whether `pid` is a running process (a zombie has ended).
pub(crate) fn running(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        let state = s[s.rfind(')').unwrap() + 1..].split_whitespace().next();
        !matches!(state, Some("Z" | "X") | None)
    })
}

/// Every pid a `barrage run --soak` record (`local.json`) names: workers, servers, the
/// target command, the keeper.
pub(crate) fn record_pids(record: &serde_json::Value) -> Vec<u64> {
    let mut pids: Vec<u64> = ["workers", "servers"]
        .iter()
        .flat_map(|k| record[k].as_array().cloned().unwrap_or_default())
        .chain([
            record["keeper"].clone(),
            record["target"]["command"].clone(),
        ])
        .filter_map(|c| c["pid"].as_u64())
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// SIGKILLs what a failed test left running (the children of a soak outlive their run).
pub(crate) struct Reaper(pub(crate) Vec<u64>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for pid in self.0.iter().filter(|p| running(**p)) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

fn wait_all_gone(pids: &[u64], what: &str) {
    wait_for(what, Duration::from_secs(20), || {
        pids.iter().all(|p| !running(*p)).then_some(())
    });
}

/// A compressed soak under `barrage run` with the embedded target (or `target_cmd`): 2
/// workers, 100 ms intervals, checkpoints every second. Returns the run, its checkpoint
/// folder once it holds `closed` intervals, and the record of its children.
pub(crate) fn local_soak(
    dir: &Path,
    closed: u64,
    target_cmd: Option<&str>,
) -> (Proc, PathBuf, serde_json::Value) {
    let plan = dir.join("plan.toml");
    std::fs::write(
        &plan,
        "name = \"soak\"\ninterval = \"100ms\"\ngraceful_stop = \"2s\"\n\
         [scenario]\nexecutor = \"constant-vus\"\nvus = 2\nduration = \"16s\"\n\
         [target]\nruntime = \"local-resume\"\n",
    )
    .unwrap();
    let results = dir.join("results");
    let mut args = vec![
        "run",
        "--plan",
        plan.to_str().unwrap(),
        "--workers",
        "2",
        "--no-progress",
        "--results-dir",
        results.to_str().unwrap(),
        "--soak",
        "--checkpoint-every",
        "1s",
        "--rejoin-grace",
        "30s",
        "--soak-warmup",
        "1s",
    ];
    if let Some(cmd) = target_cmd {
        args.extend(["--target-cmd", cmd, "--target-health", "/ok"]);
    }
    let run = Proc::barrage("barrage run --soak", &args);
    let (checkpoint, record) = wait_for("a checkpoint", Duration::from_secs(60), || {
        let d = std::fs::read_dir(&results).ok()?.find_map(|e| {
            let p = e.ok()?.path();
            p.to_string_lossy().ends_with(".checkpoint").then_some(p)
        })?;
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join("state.json")).ok()?).ok()?;
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join("local.json")).ok()?).ok()?;
        (state["closed_through"].as_u64()? >= closed).then_some((d, record))
    });
    (run, checkpoint, record)
}

#[test]
fn a_killed_barrage_run_resumes_with_its_own_children() {
    let dir = tempfile::tempdir().unwrap();
    let (mut first, checkpoint, record) = local_soak(dir.path(), 30, None);
    let pids = record_pids(&record);
    let _reaper = Reaper(pids.clone());
    // 2 workers, the mock LLM, the reference runtime, the keeper
    assert_eq!(pids.len(), 5, "{record}");
    first.signal("KILL");
    first.wait(Duration::from_secs(5));
    // its children outlive it, and the workers keep their load up
    for p in &pids {
        assert!(running(*p), "pid {p} died with barrage run: {record}");
    }
    let url = record["target"]["url"].as_str().unwrap().to_string();
    let served = || {
        get_json(&format!("{url}/stats"))["requests_total"]
            .as_u64()
            .unwrap()
    };
    let before = served();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        served() > before,
        "the workers stopped without their controller"
    );

    let resume = checkpoint.to_str().unwrap().to_string();
    let mut second = Proc::barrage("barrage run --resume", &["run", "--resume", &resume]);
    // the resumed run records itself and a keeper of its own
    let again = wait_for("the resumed run's record", Duration::from_secs(30), || {
        let r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(checkpoint.join("local.json")).ok()?).ok()?;
        (r["controller"]["pid"].as_u64()? == u64::from(second.child.id())).then_some(r)
    });
    let keeper = again["keeper"]["pid"].as_u64().unwrap();
    let _reaper2 = Reaper(vec![keeper]);
    assert_ne!(Some(keeper), record["keeper"]["pid"].as_u64());
    assert!(
        !running(record["keeper"]["pid"].as_u64().unwrap()),
        "the first keeper was not stood down"
    );
    let code = second.exit_code(Duration::from_secs(90));
    assert_eq!(code, 0, "{}", second.output());
    let summary = summary_in(&dir.path().join("results"));
    assert_within_one_checkpoint(&summary, &second.output());
    assert!(!checkpoint.exists(), "the checkpoint folder is left");
    // every child of the run ends with it: the first run's and the resumed run's keeper
    let mut all = pids.clone();
    all.push(keeper);
    wait_all_gone(&all, "every child of the run to end");
}

#[test]
fn a_resume_whose_worker_died_fails_naming_it_and_stops_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    // a target barrage starts with --target-cmd survives, and is stopped, like its own
    let (mut first, checkpoint, record) =
        local_soak(dir.path(), 10, Some("exec \"$BARRAGE\" reference-runtime"));
    let pids = record_pids(&record);
    // 2 workers, the mock LLM, the target command, the keeper
    assert_eq!(pids.len(), 5, "{record}");
    assert!(record["target"]["command"]["pid"].is_u64(), "{record}");
    let _reaper = Reaper(pids.clone());
    first.signal("KILL");
    first.wait(Duration::from_secs(5));
    for p in &pids {
        assert!(running(*p), "pid {p} died with barrage run: {record}");
    }
    let worker = record["workers"][0]["pid"].as_u64().unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &worker.to_string()])
        .status();
    wait_all_gone(&[worker], "the killed worker to end");
    let resume = checkpoint.to_str().unwrap().to_string();
    let mut second = Proc::barrage("barrage run --resume", &["run", "--resume", &resume]);
    let code = second.exit_code(Duration::from_secs(60));
    let out = second.output();
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("(pid {worker}) has exited")) && out.contains("cannot continue"),
        "{out}"
    );
    // the rest is stopped now, not when the keeper's grace (35 s) is over
    wait_all_gone(&pids, "the other children to be stopped");
    // the partial summary is still there to read
    barrage_testkit::summary::read_summary(&checkpoint.join("summary.json"));
    // a flag besides --resume is refused before anything is touched
    let mut bad = Proc::barrage(
        "barrage run --resume --workers",
        &["run", "--resume", &resume, "--workers", "3"],
    );
    assert_eq!(
        bad.exit_code(Duration::from_secs(30)),
        2,
        "{}",
        bad.output()
    );
    assert!(bad.output().contains("give it alone"), "{}", bad.output());
}

/// `PID:START_TICKS` of a process, as the keeper takes it.
fn ident(pid: u32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let start = stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .nth(19)
        .unwrap()
        .to_string();
    format!("{pid}:{start}")
}

#[test]
fn the_keeper_stops_the_children_of_a_run_nobody_resumed() {
    let sleep = || {
        std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap()
    };
    let (mut run, mut child, mut other) = (sleep(), sleep(), sleep());
    let _reaper = Reaper(vec![child.id().into(), other.id().into()]);
    // `other` is named with a wrong start time: a pid held by someone else is not touched
    let wrong = format!("{}:1", other.id());
    let mut keeper = Proc::barrage(
        "soak-keeper",
        &[
            "soak-keeper",
            "--watch",
            &ident(run.id()),
            "--grace",
            "1s",
            "--child",
            &ident(child.id()),
            "--child",
            &wrong,
        ],
    );
    std::thread::sleep(Duration::from_millis(600));
    // while the run lives, the keeper waits
    assert!(child.try_wait().unwrap().is_none());
    let killed = Instant::now();
    run.kill().unwrap();
    run.wait().unwrap();
    assert_eq!(
        keeper.exit_code(Duration::from_secs(20)),
        0,
        "{}",
        keeper.output()
    );
    // not before the grace, and the child is gone
    assert!(killed.elapsed() >= Duration::from_secs(1));
    assert!(
        child.wait().unwrap().code().is_none(),
        "stopped by a signal"
    );
    assert!(
        keeper.output().contains("not resumed"),
        "{}",
        keeper.output()
    );
    assert!(
        other.try_wait().unwrap().is_none(),
        "a stranger was signalled"
    );
    other.kill().unwrap();
    other.wait().unwrap();
}

//! Resuming a soak whose target barrage started (`--target-cmd`), and the back-to-baseline
//! check of the target's resources (issue 13 §2): kept across a resume, offered to any run.
//!
//! A `--target-cmd` target is a child of `barrage run` like its workers: under `--soak` it
//! outlives a killed run (its own session, no death signal), the record names it with its
//! start time, and the resumed run adopts that same process (never a second one) and stops
//! it at its end.
use crate::soak::{local_soak, record_pids, running, summary_in, Reaper};
use crate::util::{get_json, Proc};
use barrage_testkit::wait_for;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

/// `POST url` (http://host:port/path) with a JSON body; the answer's JSON.
fn post_json(url: &str, body: &Value) -> Value {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let body = body.to_string();
    write!(
        s,
        "POST /{path} HTTP/1.0\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let json = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{url}: {e}: {answer}"))
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// A `barrage run --soak` is killed with -9 mid-soak; its `--target-cmd` target keeps
/// serving the workers, and a thread is left on it while no controller runs. The resumed
/// run adopts the same target process, compares the end with the baseline the first
/// run took (so the thread left meanwhile is reported), and stops the target at its end.
#[test]
fn a_resumed_target_cmd_soak_keeps_its_target_and_its_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let (mut first, checkpoint, record) =
        local_soak(dir.path(), 25, Some("exec \"$BARRAGE\" reference-runtime"));
    let pids = record_pids(&record);
    let _reaper = Reaper(pids.clone());
    let target = record["target"]["command"]["pid"]
        .as_u64()
        .unwrap_or_else(|| panic!("no target command in the record: {record}"));
    // the baseline went into the checkpoint folder when the run started: a fresh target
    let baseline = read_json(&checkpoint.join("baseline.json"))
        .unwrap_or_else(|| panic!("no baseline.json in {}", checkpoint.display()));
    assert_eq!(baseline["source"], "GET /stats", "{baseline}");
    assert_eq!(baseline["counts"]["threads"], 0, "{baseline}");

    first.signal("KILL");
    first.wait(Duration::from_secs(5));
    assert!(
        running(target),
        "the target died with barrage run: {record}"
    );
    let url = record["target"]["url"].as_str().unwrap().to_string();
    let served = || get_json(&format!("{url}/stats"))["requests_total"].as_u64();
    let before = served().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        served().unwrap() > before,
        "the target stopped serving the workers without their controller"
    );
    // left behind while no controller watched: the end must still see it against the start
    let left = post_json(
        &format!("{url}/threads"),
        &json!({"metadata": {"left": true}}),
    );
    assert!(left["thread_id"].is_string(), "{left}");

    let resume = checkpoint.to_str().unwrap().to_string();
    let mut second = Proc::barrage("barrage run --resume", &["run", "--resume", &resume]);
    let again = wait_for("the resumed run's record", Duration::from_secs(30), || {
        let r = read_json(&checkpoint.join("local.json"))?;
        (r["controller"]["pid"].as_u64()? == u64::from(second.child.id())).then_some(r)
    });
    let _reaper2 = Reaper(again["keeper"]["pid"].as_u64().into_iter().collect());
    // adopted, not restarted: the same process (pid and start time) serves the resumed run
    assert_eq!(
        again["target"]["command"], record["target"]["command"],
        "{again}"
    );
    assert_eq!(again["target"]["url"], record["target"]["url"]);
    let code = second.exit_code(Duration::from_secs(90));
    assert_eq!(code, 0, "{}", second.output());
    let summary = summary_in(&results);
    let res = &summary["trends"]["resources"];
    assert_eq!(res["source"], "GET /stats", "{res}\n{}", second.output());
    assert_eq!(res["start"], baseline["counts"], "{res}");
    assert_eq!(
        res["left"],
        json!(["threads: 1 more than at the start (0 → 1)"]),
        "{res}"
    );
    assert!(summary["metrics"]["iterations"]["count"].as_f64().unwrap() > 0.0);
    // the resumed run stopped the target it adopted, and every other child
    wait_for("the run's children to end", Duration::from_secs(20), || {
        pids.iter().all(|p| !running(*p)).then_some(())
    });
    assert!(!checkpoint.exists(), "the checkpoint folder is left");
}

/// A flow that creates a thread per iteration and never deletes it.
const LEAKY: &str = r#"
[flow]
name = "leaky"
[flows.leaky]
description = "a thread per iteration, never deleted"
[[flows.leaky.steps]]
name = "create_thread"
method = "POST"
path = "/threads"
body = '{"metadata":{"source":"barrage-leak"}}'
checks = [{ check = "non_empty", pointer = "/thread_id" }]
"#;

/// `barrage run` of `flow` (TOML, empty: the agent flow) for 3 iterations against the
/// embedded reference runtime, with `flags`; its summary.
fn short_run(flow: &str, flags: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.toml");
    std::fs::write(
        &plan,
        format!(
            "name = \"baseline-check\"\n\
             [scenario]\nexecutor = \"per-vu-iterations\"\nvus = 1\niterations = 3\n{flow}"
        ),
    )
    .unwrap();
    let results = dir.path().join("results");
    let mut args = vec![
        "run",
        "--plan",
        plan.to_str().unwrap(),
        "--workers",
        "1",
        "--no-progress",
        "--results-dir",
        results.to_str().unwrap(),
    ];
    args.extend_from_slice(flags);
    let mut run = Proc::barrage("barrage run", &args);
    let code = run.exit_code(Duration::from_secs(90));
    assert_eq!(code, 0, "{}", run.output());
    summary_in(&results)
}

/// Without `--soak` the check is asked for with `--baseline-check`: the agent flow gives
/// everything back; a flow that leaves a thread per iteration is reported by count; a run
/// without the flag sends no count and has no check.
#[test]
fn baseline_check_of_an_ordinary_run() {
    let clean = short_run("", &["--baseline-check"]);
    let res = &clean["trends"]["resources"];
    assert_eq!(res["source"], "GET /stats", "{}", clean["trends"]);
    assert_eq!(res["left"], json!([]), "{res}");
    assert_eq!(clean["metrics"]["iterations"]["count"], 3.0);

    let leaky = short_run(LEAKY, &["--baseline-check"]);
    let res = &leaky["trends"]["resources"];
    assert_eq!(
        res["left"],
        json!(["threads: 3 more than at the start (0 → 3)"]),
        "{res}"
    );

    let plain = short_run(LEAKY, &[]);
    assert!(plain["trends"].is_null(), "{}", plain["trends"]);
}

//! Per-stage results for real (issue 12 §1): a ramp and two plateaus against the reference
//! runtime, whose mock LLM answers in 20 ms on the first plateau and 150 ms on the second
//! (changed through the mock's `/admin/config` between them). Each plateau's figures reflect
//! its own delay, not the mix, and a threshold may name a stage.
use crate::util::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn post_json(addr: &str, path: &str, body: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

const PLAN: &str = r#"name = "stages"
interval = "1s"
graceful_stop = "5s"
[scenario]
executor = "ramping-vus"
start_vus = 0
stages = [
  { duration = "1s", target = 2 },
  { duration = "4s", target = 2 },
  { duration = "1s", target = 3 },
  { duration = "4s", target = 3 },
]
[thresholds]
"http_req_duration{stage:1,operation:run_wait}" = ["med<100"]
"http_req_duration{stage:3,operation:run_wait}" = ["med<100"]
"#;

#[test]
fn each_plateau_reports_its_own_latency() {
    let target = start_target_with_delay(20);
    let (url, mock_addr) = (target.url.clone(), target.mock_addr.clone());
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.toml");
    std::fs::write(&plan, PLAN).unwrap();
    let results = dir.path().join("results");
    let mut run = Proc::barrage(
        "run",
        &[
            "run",
            "--plan",
            plan.to_str().unwrap(),
            "--target",
            &url,
            "--workers",
            "1",
            "--results-dir",
            results.to_str().unwrap(),
        ],
    );
    // the run's clock starts with its first LLM call; switch the delay mid-way between
    // the plateaus (stage 2 is the 1 s ramp from 5 s to 6 s)
    let calls = || get_json(&format!("http://{mock_addr}/stats"))["calls_total"].as_u64();
    let waited = Instant::now();
    while calls().unwrap_or(0) == 0 {
        assert!(
            waited.elapsed() < Duration::from_secs(20),
            "no LLM call: {}",
            run.output()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(5200));
    let answer = post_json(&mock_addr, "/admin/config", r#"{"delay_ms": 150}"#);
    assert!(
        answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"),
        "{answer}"
    );

    // the second plateau's threshold fails: exit 99
    assert_eq!(
        run.exit_code(Duration::from_secs(60)),
        99,
        "{}",
        run.output()
    );
    let s = barrage_testkit::summary::only_summary(&results);
    let stages = s["stages"].as_array().unwrap();
    let kinds: Vec<&str> = stages.iter().map(|x| x["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["ramp", "plateau", "ramp", "plateau", "stop"]);
    let med = |i: usize| {
        stages[i]["metrics"]["http_req_duration{operation:run_wait}"]["med"]
            .as_f64()
            .unwrap_or_else(|| panic!("stage {i}: {}", stages[i]))
    };
    let (first, second) = (med(1), med(3));
    assert!(
        (20.0..100.0).contains(&first),
        "plateau 1 at 20 ms LLM: med {first}"
    );
    assert!(second >= 150.0, "plateau 2 at 150 ms LLM: med {second}");
    assert_eq!(stages[1]["vus_max"], 2);
    assert_eq!(stages[3]["vus_min"], 3, "{}", stages[3]);
    assert_eq!(stages[3]["planned_to"].as_f64(), Some(3.0));
    assert!(stages[1]["requests"].as_f64().unwrap() > 0.0);
    // the stage thresholds judged each plateau on its own
    let th = |m: &str| {
        s["thresholds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["metric"] == m)
            .unwrap()["ok"]
            .as_bool()
            .unwrap()
    };
    assert!(th("http_req_duration{operation:run_wait,stage:1}"));
    assert!(!th("http_req_duration{operation:run_wait,stage:3}"));
    let text = run.stdout.lock().unwrap().clone();
    assert!(text.contains("█ STAGES"), "{text}");
}

//! Transparent huge pages: off in a controller's own process (a soak's RSS must follow its
//! heap, not khugepaged), and as the system gives them in every process it starts: its
//! workers and, above all, the target, whose memory is what a run measures.
use crate::telemetry::{write_script, BURNER};
use crate::util::{plan_file, run_target_cmd};
use std::path::Path;
use std::time::{Duration, Instant};

/// `THP_enabled` of `/proc/PID/status` (`self` for this test), if the process is there.
fn thp_enabled(pid: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .map(|v| v.trim().to_string())
}

/// The live children of `parent`: (pid, command name).
fn children(parent: u32) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = e.file_name().to_string_lossy().to_string();
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let ppid = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
        if ppid == Some(parent) {
            let comm = head.split_once('(').map_or("", |(_, c)| c).to_string();
            out.push((pid, comm));
        }
    }
    out
}

#[test]
fn a_run_keeps_huge_pages_off_for_itself_and_as_found_for_its_children() {
    let ours = thp_enabled("self").expect("this kernel shows THP_enabled in /proc/PID/status");
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(dir.path(), "burner.py", BURNER);
    let plan = plan_file(
        dir.path(),
        "plan.toml",
        1,
        6,
        "[flow]\nrequest = { method = \"GET\", path = \"/ok\" }\n",
    );
    let target_file = dir.path().join("thp-target");
    let cmd = format!(
        "grep THP_enabled /proc/self/status > {}; exec python3 {script} {}",
        target_file.display(),
        dir.path().display()
    );
    let (mut run, _results) = run_target_cmd(
        "barrage run --target-cmd",
        dir.path(),
        &plan,
        "burner",
        &cmd,
        &["--target-health", "/ok"],
    );
    let pid = run.child.id();
    // the run's own setting, and its children's once the worker and the target are up
    let deadline = Instant::now() + Duration::from_secs(30);
    let (own, kids) = loop {
        let own = thp_enabled(&pid.to_string());
        let kids: Vec<(String, String, Option<String>)> = children(pid)
            .into_iter()
            .map(|(p, c)| {
                let t = thp_enabled(&p);
                (p, c, t)
            })
            .collect();
        let worker_up = kids
            .iter()
            .any(|(_, c, t)| c.contains("barrage") && t.is_some());
        if (worker_up && Path::new(&target_file).exists()) || Instant::now() > deadline {
            break (own, kids);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        own.as_deref(),
        Some("0"),
        "barrage run itself: {}",
        run.output()
    );
    assert!(
        kids.iter().any(|(_, c, _)| c.contains("barrage")),
        "no worker among the run's children {kids:?}\n{}",
        run.output()
    );
    for (p, c, t) in &kids {
        if let Some(t) = t {
            assert_eq!(t, &ours, "child {p} ({c}) of barrage run");
        }
    }
    let target = std::fs::read_to_string(&target_file).unwrap();
    assert_eq!(
        target.split(':').nth(1).map(str::trim),
        Some(ours.as_str()),
        "the target's {target}"
    );
    assert_eq!(
        run.exit_code(Duration::from_secs(60)),
        0,
        "{}",
        run.output()
    );
}

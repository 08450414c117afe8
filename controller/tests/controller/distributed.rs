//! `barrage controller` with external `barrage worker` processes: a killed worker is
//! rebalanced, a killed controller stops its workers, a stalled controller loses nothing, a
//! wrong token is refused.
use crate::util::{
    controller, controller_with, get_json, plan_file, read_json, start_target, token_file, Proc,
};
use barrage_testkit::{require, wait_for};
use std::path::Path;
use std::time::{Duration, Instant};

fn worker(name: &str, addr: &str, token: &Path) -> Proc {
    Proc::barrage(
        name,
        &[
            "worker",
            "--controller",
            &format!("http://{addr}"),
            "--token-file",
            token.to_str().unwrap(),
            "--name",
            name,
        ],
    )
}

/// The target's own count of the requests it has served.
fn served(target_url: &str) -> u64 {
    get_json(&format!("{target_url}/stats"))["requests_total"]
        .as_u64()
        .unwrap()
}

/// Waits until the target has served at least `n` requests: the load is flowing.
fn wait_served(target_url: &str, n: u64) {
    wait_for(
        &format!("{n} requests at the target"),
        Duration::from_secs(60),
        || (served(target_url) >= n).then_some(()),
    );
}

#[test]
fn a_killed_worker_is_rebalanced() {
    let target = start_target();
    let dir = tempfile::tempdir().unwrap();
    let extra = format!("[target]\nurl = \"{}\"\nruntime = \"rb\"\n", target.url);
    let plan = plan_file(dir.path(), "p.toml", 3, 7, &extra);
    let token = token_file(dir.path(), "token", "shared-token-1");
    let results = dir.path().join("results");
    let (mut ctl, addr) = controller(&plan, 3, &token, &results);
    let workers: Vec<Proc> = (1..=3)
        .map(|i| worker(&format!("w-{i}"), &addr, &token))
        .collect();
    // well into the run: load is flowing, and has been for 2.5 intervals (1 s each) by the
    // target's count, so every worker has shipped snapshots (the controller shows no
    // per-worker progress a test could read)
    wait_served(&target.url, 1);
    let first = Instant::now();
    wait_for("2.5 intervals of load", Duration::from_secs(30), || {
        (first.elapsed() >= Duration::from_millis(2500) && served(&target.url) > 1).then_some(())
    });
    let victim = &workers[1];
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &victim.child.id().to_string()])
        .status();
    assert_eq!(
        ctl.exit_code(Duration::from_secs(60)),
        0,
        "{}",
        ctl.output()
    );
    assert!(
        ctl.stderr.lock().unwrap().contains("segments rebalanced"),
        "{}",
        ctl.output()
    );
    let s = read_json(&results.join("rb-v0.1.0-mock-3vu.summary.json"));
    let ws = s["workers"].as_array().unwrap();
    let lost: Vec<_> = ws.iter().filter(|w| !w["lost"].is_null()).collect();
    assert_eq!(lost.len(), 1, "{ws:?}");
    assert!(
        lost[0]["iterations"].as_u64().unwrap() > 0,
        "its samples before the loss are kept"
    );
    let total = s["metrics"]["iterations"]["count"].as_f64().unwrap() as u64;
    assert_eq!(
        ws.iter()
            .map(|w| w["iterations"].as_u64().unwrap())
            .sum::<u64>(),
        total
    );
    // the remaining two got halves, and VUs still add up to 3 after the loss
    let segs: Vec<&str> = ws
        .iter()
        .filter(|w| w["lost"].is_null())
        .map(|w| w["segment"].as_str().unwrap())
        .collect();
    assert_eq!(segs, ["[0/2, 1/2)", "[1/2, 2/2)"]);
    let rows = s["timeseries"]["rows"].as_array().unwrap();
    let full: Vec<u64> = rows
        .iter()
        .filter(|r| r[1] == 2)
        .map(|r| r[2].as_u64().unwrap())
        .collect();
    assert!(
        full.iter().filter(|v| **v == 3).count() >= 2,
        "vus per interval after the loss: {rows:?}"
    );
    assert!(
        ctl.stdout.lock().unwrap().contains("lost w"),
        "{}",
        ctl.output()
    );
    drop(workers);
}

#[test]
fn a_killed_controller_stops_its_workers() {
    let target = start_target();
    let dir = tempfile::tempdir().unwrap();
    let extra = format!("[target]\nurl = \"{}\"\n", target.url);
    let plan = plan_file(dir.path(), "p.toml", 2, 60, &extra);
    let token = token_file(dir.path(), "token", "shared-token-2");
    let results = dir.path().join("results");
    let (ctl, addr) = controller(&plan, 2, &token, &results);
    let mut workers: Vec<Proc> = (1..=2)
        .map(|i| worker(&format!("w-{i}"), &addr, &token))
        .collect();
    wait_served(&target.url, 20);
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &ctl.child.id().to_string()])
        .status();
    let killed = Instant::now();
    for w in &mut workers {
        let status = w.wait(Duration::from_secs(6));
        assert!(
            status.is_some(),
            "worker still running {:?} after the controller died\n{}",
            killed.elapsed(),
            w.output()
        );
    }
    assert!(killed.elapsed() <= Duration::from_secs(6));
}

#[test]
fn a_wrong_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_file(dir.path(), "p.toml", 1, 5, "");
    let good = token_file(dir.path(), "good", "the-right-token");
    let bad = token_file(dir.path(), "bad", "a-wrong-token");
    let results = dir.path().join("results");
    let (ctl, addr) = controller(&plan, 1, &good, &results);
    let mut w = worker("intruder", &addr, &bad);
    let code = w.exit_code(Duration::from_secs(30));
    assert_ne!(code, 0, "{}", w.output());
    let werr = w.stderr.lock().unwrap().clone();
    assert!(
        werr.contains("token"),
        "worker's message does not name the token:\n{}",
        w.output()
    );
    wait_for("the controller's refusal", Duration::from_secs(5), || {
        ctl.stderr
            .lock()
            .unwrap()
            .contains("wrong or missing token")
            .then_some(())
    });
    drop(ctl);
}

#[test]
fn workers_join_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        // a leaf, not a CA: rustls refuses a CA certificate as the server's own
        .args([
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "extendedKeyUsage=serverAuth",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output();
    let made = made.ok().filter(|o| o.status.success());
    if require(
        "distributed::workers_join_over_tls",
        "openssl to make a test certificate",
        made,
        "apt-get install openssl",
    )
    .is_none()
    {
        return;
    }
    let target = start_target();
    let extra = format!("[target]\nurl = \"{}\"\nruntime = \"tls\"\n", target.url);
    let plan = plan_file(dir.path(), "p.toml", 1, 3, &extra);
    let token = token_file(dir.path(), "token", "shared-token-tls");
    let results = dir.path().join("results");
    let (mut ctl, addr) = controller_with(
        &plan,
        1,
        &token,
        &results,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    // without the CA the worker must not get in
    let mut plain = Proc::barrage(
        "no-ca",
        &[
            "worker",
            "--controller",
            &format!("https://{addr}"),
            "--token-file",
            token.to_str().unwrap(),
            "--connect-timeout",
            "3s",
        ],
    );
    assert_ne!(
        plain.exit_code(Duration::from_secs(30)),
        0,
        "{}",
        plain.output()
    );
    let mut w = Proc::barrage(
        "tls-worker",
        &[
            "worker",
            "--controller",
            &format!("https://{addr}"),
            "--token-file",
            token.to_str().unwrap(),
            "--tls-ca",
            cert.to_str().unwrap(),
        ],
    );
    assert_eq!(
        ctl.exit_code(Duration::from_secs(60)),
        0,
        "{}\n{}",
        ctl.output(),
        w.output()
    );
    assert_eq!(w.exit_code(Duration::from_secs(15)), 0, "{}", w.output());
    let s = read_json(&results.join("tls-v0.1.0-mock-1vu.summary.json"));
    assert!(
        s["metrics"]["http_reqs"]["count"].as_f64().unwrap() > 0.0,
        "{s}"
    );
}

/// Issue 14 §4: a controller stopped (SIGSTOP) mid-run for longer than the workers wait.
/// The workers notice the silence, stop their load and hand their last figures to the
/// stalled connection; after SIGCONT the controller reads what was queued before any
/// liveness decision, so the summary holds every request the target served, and it says
/// truthfully that the workers left early (exit 98).
#[test]
fn a_stalled_controller_loses_nothing() {
    let target = start_target();
    let dir = tempfile::tempdir().unwrap();
    let extra = format!("[target]\nurl = \"{}\"\nruntime = \"stall\"\n", target.url);
    let plan = plan_file(dir.path(), "p.toml", 2, 30, &extra);
    let token = token_file(dir.path(), "token", "shared-token-stall");
    let results = dir.path().join("results");
    let (mut ctl, addr) = controller(&plan, 2, &token, &results);
    let mut workers: Vec<Proc> = (1..=2)
        .map(|i| worker(&format!("w-{i}"), &addr, &token))
        .collect();
    wait_served(&target.url, 50);
    ctl.signal("STOP");
    let stopped = Instant::now();
    // the workers give up on their own while the controller is stopped
    for w in &mut workers {
        let code = w.wait(Duration::from_secs(15)).map(|s| s.code());
        assert_eq!(
            code,
            Some(Some(4)),
            "worker after {:?} of a stopped controller\n{}",
            stopped.elapsed(),
            w.output()
        );
    }
    let at_stop = served(&target.url);
    // the target sees no more load once the workers are gone
    assert_eq!(served(&target.url), at_stop);
    ctl.signal("CONT");
    assert_eq!(
        ctl.exit_code(Duration::from_secs(60)),
        98,
        "{}",
        ctl.output()
    );
    let s = read_json(&results.join("stall-v0.1.0-mock-2vu.summary.json"));
    let reqs = s["metrics"]["http_reqs"]["count"].as_f64().unwrap() as u64;
    assert_eq!(reqs, at_stop, "summary vs the target's own count: {s}");
    let iterations = s["metrics"]["iterations"]["count"].as_f64().unwrap() as u64;
    let ws = s["workers"].as_array().unwrap();
    assert_eq!(ws.len(), 2);
    for w in ws {
        let why = w["lost"]["reason"].as_str().unwrap_or_default();
        assert!(why.contains("lost the controller"), "{w}");
    }
    let done: u64 = ws
        .iter()
        .map(|w| w["done_iterations"].as_u64().unwrap())
        .sum();
    assert_eq!(done, iterations, "{ws:?}");
}

/// The join timeout says how many joined and how many got ready, not "0 joined" when one
/// had joined but the run was still waiting for another.
#[test]
fn the_join_timeout_counts_joined_and_ready_workers() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_file(dir.path(), "p.toml", 1, 5, "");
    let token = token_file(dir.path(), "token", "shared-token-join");
    let results = dir.path().join("results");
    let (mut ctl, addr) = controller_with(&plan, 2, &token, &results, &["--join-timeout", "3s"]);
    let _w = worker("alone", &addr, &token);
    assert_ne!(
        ctl.exit_code(Duration::from_secs(30)),
        0,
        "{}",
        ctl.output()
    );
    let err = ctl.stderr.lock().unwrap().clone();
    assert!(
        err.contains("1 of 2 workers joined and 0 got ready within 3s"),
        "{}",
        ctl.output()
    );
}

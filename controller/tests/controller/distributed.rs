//! `barrage controller` with external `barrage worker` processes: a killed worker is
//! rebalanced, a killed controller stops its workers, a wrong token is refused.
use crate::util::{plan_file, read_json, start_target, token_file, Proc};
use std::path::Path;
use std::time::{Duration, Instant};

fn controller(plan: &Path, workers: usize, token: &Path, results: &Path) -> (Proc, String) {
    controller_with(plan, workers, token, results, &[])
}

/// `barrage controller` on a free loopback port with `extra` flags; its address.
fn controller_with(
    plan: &Path,
    workers: usize,
    token: &Path,
    results: &Path,
    extra: &[&str],
) -> (Proc, String) {
    let workers = workers.to_string();
    let mut args = vec![
        "controller",
        "--listen",
        "127.0.0.1:0",
        "--expect-workers",
        &workers,
        "--plan",
        plan.to_str().unwrap(),
        "--token-file",
        token.to_str().unwrap(),
        "--results-dir",
        results.to_str().unwrap(),
        "--no-progress",
        "--join-timeout",
        "60s",
    ];
    args.extend_from_slice(extra);
    let mut c = Proc::barrage("controller", &args);
    let addr = c.listening();
    (c, addr)
}

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

/// Waits until `p`'s stderr contains `needle`.
fn wait_for(p: &Proc, needle: &str, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if p.stderr.lock().unwrap().contains(needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
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
    assert!(
        wait_for(&ctl, "start sent", Duration::from_secs(30)),
        "{}",
        ctl.output()
    );
    std::thread::sleep(Duration::from_millis(3500));
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
    assert!(
        wait_for(&ctl, "start sent", Duration::from_secs(30)),
        "{}",
        ctl.output()
    );
    std::thread::sleep(Duration::from_millis(2000));
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
    assert!(
        wait_for(&ctl, "wrong or missing token", Duration::from_secs(5)),
        "{}",
        ctl.output()
    );
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
    match made {
        Ok(o) if o.status.success() => {}
        Ok(o) if std::env::var_os("CI").is_none() => {
            eprintln!(
                "skipped: openssl could not make a test certificate: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            return;
        }
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: openssl not found ({e}); apt-get install openssl");
            return;
        }
        other => panic!("CI needs openssl to make a test certificate: {other:?}"),
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

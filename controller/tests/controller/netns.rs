//! Multi-host: the controller, two workers and the target each in a network namespace of
//! their own (10.77.0.0/24 on a bridge, addresses that exist only inside these
//! namespaces). Runs as root with `ip netns` working; otherwise prints why and skips.
//! Everything created is removed at the end, also on failure (a `Drop` guard).
use crate::util::{plan_file, read_json, token_file, Proc, BARRAGE, ZERO_DELAY_MOCK};
use std::process::Command;
use std::time::Duration;

struct Netns {
    names: Vec<String>,
    bridge: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    /// One namespace per role, each with a veth to a bridge in the host namespace.
    fn create(tag: &str, roles: &[&str]) -> Result<Netns, String> {
        let bridge = format!("brb{tag}");
        let mut ns = Netns {
            names: Vec::new(),
            bridge: bridge.clone(),
        };
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        ip(&["link", "set", &bridge, "up"])?;
        for (i, role) in roles.iter().enumerate() {
            let name = format!("barrage-{tag}-{role}");
            ip(&["netns", "add", &name])?;
            ns.names.push(name.clone());
            let host_end = format!("vb{tag}{i}");
            ip(&[
                "link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns", &name,
            ])?;
            ip(&["link", "set", &host_end, "master", &bridge])?;
            ip(&["link", "set", &host_end, "up"])?;
            let addr = format!("10.77.0.{}/24", 10 + i);
            ip(&["-n", &name, "addr", "add", &addr, "dev", "eth0"])?;
            ip(&["-n", &name, "link", "set", "eth0", "up"])?;
            ip(&["-n", &name, "link", "set", "lo", "up"])?;
        }
        Ok(ns)
    }

    fn exec(&self, i: usize, name: &str, args: &[&str], env: &[(&str, String)]) -> Proc {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.names[i], BARRAGE])
            .args(args)
            .env("RUST_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Proc::start(name, &mut cmd)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = ip(&["netns", "del", n]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}

fn addr(i: usize) -> String {
    format!("10.77.0.{}", 10 + i)
}

#[test]
fn controller_workers_and_target_on_separate_hosts() {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    if !is_root {
        eprintln!("SKIP controller_workers_and_target_on_separate_hosts: needs root for ip netns");
        return;
    }
    let tag = format!("{}", std::process::id() % 100_000);
    let roles = ["ctl", "w1", "w2", "tgt"];
    let ns = match Netns::create(&tag, &roles) {
        Ok(ns) => ns,
        Err(e) => {
            eprintln!("SKIP controller_workers_and_target_on_separate_hosts: cannot create network namespaces: {e}");
            return;
        }
    };
    let (ctl_i, w1_i, w2_i, tgt_i) = (0, 1, 2, 3);
    // the target namespace runs the mock LLM (on its loopback) and the runtime
    let mut mock = ns.exec(tgt_i, "mock-llm", ZERO_DELAY_MOCK, &[]);
    let mock_addr = mock.listening();
    let mut runtime = ns.exec(
        tgt_i,
        "reference-runtime",
        &[
            "reference-runtime",
            "--host",
            &addr(tgt_i),
            "--port",
            "9000",
        ],
        &[("OPENAI_BASE_URL", format!("http://{mock_addr}/v1"))],
    );
    let target_url = runtime.listening();
    assert_eq!(target_url, format!("http://{}:9000", addr(tgt_i)));

    let dir = tempfile::tempdir().unwrap();
    let plan = plan_file(
        dir.path(),
        "p.toml",
        2,
        3,
        &format!("[target]\nurl = \"{target_url}\"\nruntime = \"netns\"\n"),
    );
    let token = token_file(dir.path(), "token", "netns-token");
    let results = dir.path().join("results");
    let listen = format!("{}:7400", addr(ctl_i));
    let mut ctl = ns.exec(
        ctl_i,
        "controller",
        &[
            "controller",
            "--listen",
            &listen,
            "--expect-workers",
            "2",
            "--plan",
            plan.to_str().unwrap(),
            "--token-file",
            token.to_str().unwrap(),
            "--results-dir",
            results.to_str().unwrap(),
            "--no-progress",
        ],
        &[],
    );
    assert_eq!(ctl.listening(), listen);
    let url = format!("http://{listen}");
    let _w1 = ns.exec(
        w1_i,
        "w1",
        &[
            "worker",
            "--controller",
            &url,
            "--token-file",
            token.to_str().unwrap(),
        ],
        &[],
    );
    let _w2 = ns.exec(
        w2_i,
        "w2",
        &[
            "worker",
            "--controller",
            &url,
            "--token-file",
            token.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(
        ctl.exit_code(Duration::from_secs(60)),
        0,
        "{}",
        ctl.output()
    );
    let s = read_json(&results.join("netns-v0.1.0-mock-2vu.summary.json"));
    let ws = s["workers"].as_array().unwrap();
    assert_eq!(ws.len(), 2);
    assert!(
        ws.iter()
            .all(|w| w["lost"].is_null() && w["iterations"].as_u64().unwrap() > 0),
        "{ws:?}"
    );
    assert!(s["metrics"]["http_reqs"]["count"].as_f64().unwrap() > 0.0);
    drop(runtime);
    drop(mock);
    drop(ns);
}

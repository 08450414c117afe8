//! Multi-host: the controller, two workers and the target each in a network namespace of
//! their own (10.77.0.0/24 on a bridge, addresses that exist only inside these
//! namespaces). Needs root and `ip netns` (`barrage_testkit::require`: skipped and logged
//! under a bare `cargo test`, a failure under `.ci/run`). Everything created is removed at
//! the end, also on failure (a `Drop` guard).
use crate::util::{get_json, plan_file, read_json, token_file, Proc, BARRAGE, ZERO_DELAY_MOCK};
use barrage_testkit::{is_root, require, wait_for};
use std::process::Command;
use std::time::{Duration, Instant};

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

impl Netns {
    /// `barrage controller` in namespace `i` on port 7400, expecting two workers, with the
    /// join token written into `dir` (plain text between namespaces: `--insecure-plaintext`).
    /// Returns the controller, once listening, and its results folder.
    fn controller(
        &self,
        i: usize,
        dir: &std::path::Path,
        plan: &std::path::Path,
    ) -> (Proc, std::path::PathBuf) {
        let token = token_file(dir, "token", "netns-token");
        let results = dir.join("results");
        let listen = format!("{}:7400", addr(i));
        let mut ctl = self.exec(
            i,
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
                "--insecure-plaintext",
            ],
            &[],
        );
        assert_eq!(ctl.listening(), listen);
        (ctl, results)
    }

    /// A worker in namespace `i` joining the controller of namespace `ctl` (the token from `dir`).
    fn worker(&self, i: usize, name: &str, ctl: usize, dir: &std::path::Path) -> Proc {
        let url = format!("http://{}:7400", addr(ctl));
        let token = dir.join("token");
        self.exec(
            i,
            name,
            &[
                "worker",
                "--controller",
                &url,
                "--token-file",
                token.to_str().unwrap(),
            ],
            &[],
        )
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

/// The namespaces of `roles`, or `None` (the test is skipped and says why) when this
/// machine cannot make them.
fn namespaces(test: &str, tag: &str, roles: &[&str]) -> Option<Netns> {
    require(
        test,
        "root",
        is_root().then_some(()),
        "run the tests as root",
    )?;
    let made = Netns::create(tag, roles);
    let why = made.as_ref().err().cloned().unwrap_or_default();
    require(
        test,
        "network namespaces (`ip netns add`, veth, bridge)",
        made.ok(),
        &format!("a kernel and `ip` that allow them; here: {why}"),
    )
}

#[test]
fn controller_workers_and_target_on_separate_hosts() {
    let tag = format!("{}", std::process::id() % 100_000);
    let roles = ["ctl", "w1", "w2", "tgt"];
    let Some(ns) = namespaces(
        "netns::controller_workers_and_target_on_separate_hosts",
        &tag,
        &roles,
    ) else {
        return;
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
    let (mut ctl, results) = ns.controller(ctl_i, dir.path(), &plan);
    let _w1 = ns.worker(w1_i, "w1", ctl_i, dir.path());
    let _w2 = ns.worker(w2_i, "w2", ctl_i, dir.path());
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

/// Issue 14 §4: a silent partition (packets dropped both ways, no RST) between the
/// controller and one of two workers. The cut-off worker must stop its load before the
/// controller hands its share to the other one, so the target never has more LLM calls in
/// flight than the plan has VUs (each VU has at most one: the flow is sequential, and each
/// call takes 200 ms at the mock, so overlapping load would show).
#[test]
fn a_partitioned_worker_stops_before_its_share_is_reassigned() {
    let tag = format!("p{}", std::process::id() % 10_000);
    let roles = ["ctl", "w1", "w2", "tgt"];
    let Some(ns) = namespaces(
        "netns::a_partitioned_worker_stops_before_its_share_is_reassigned",
        &tag,
        &roles,
    ) else {
        return;
    };
    let (ctl_i, w1_i, w2_i, tgt_i) = (0, 1, 2, 3);
    // the host gets an address on the bridge so the test can read the mock's /stats
    ip(&["addr", "add", "10.77.0.1/24", "dev", &ns.bridge]).unwrap();
    let mut mock = ns.exec(
        tgt_i,
        "mock-llm",
        &[
            "mock-llm",
            "--host",
            &addr(tgt_i),
            "--port",
            "0",
            "--delay-ms",
            "200",
            "--stream-delay-ms",
            "0",
        ],
        &[],
    );
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
    let stats = format!("http://{mock_addr}/stats");
    // the poll itself is one of the mock's requests in flight
    let llm_in_flight = || {
        get_json(&stats)["in_flight"]
            .as_u64()
            .unwrap()
            .saturating_sub(1)
    };
    let chat_calls = || get_json(&stats)["requests"]["chat"].as_u64().unwrap_or(0);

    const VUS: u64 = 4;
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_file(
        dir.path(),
        "p.toml",
        VUS,
        14,
        &format!("[target]\nurl = \"{target_url}\"\nruntime = \"part\"\n"),
    );
    let (mut ctl, results) = ns.controller(ctl_i, dir.path(), &plan);
    let _w1 = ns.worker(w1_i, "w1", ctl_i, dir.path());
    let mut w2 = ns.worker(w2_i, "w2", ctl_i, dir.path());
    // load is flowing from both workers
    wait_for("LLM calls at the target", Duration::from_secs(60), || {
        (chat_calls() >= 2 * VUS).then_some(())
    });
    // the partition: each side drops what it would send to the other (a blackhole route
    // discards silently: no RST, no ICMP)
    ip(&[
        "-n",
        &ns.names[w2_i],
        "route",
        "add",
        "blackhole",
        &format!("{}/32", addr(ctl_i)),
    ])
    .unwrap();
    ip(&[
        "-n",
        &ns.names[ctl_i],
        "route",
        "add",
        "blackhole",
        &format!("{}/32", addr(w2_i)),
    ])
    .unwrap();
    let cut = Instant::now();
    let mut max_in_flight = 0;
    let mut polls = 0u64;
    // bounded: the controller's run ends by itself (14 s plan)
    while ctl.child.try_wait().unwrap().is_none() && cut.elapsed() < Duration::from_secs(60) {
        max_in_flight = max_in_flight.max(llm_in_flight());
        polls += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        ctl.exit_code(Duration::from_secs(30)),
        0,
        "{}",
        ctl.output()
    );
    assert!(polls > 100, "the target was polled {polls} times");
    assert!(
        max_in_flight <= VUS,
        "the target had {max_in_flight} LLM calls in flight for a {VUS}-VU plan after the partition\n{}\n{}",
        ctl.output(),
        w2.output()
    );
    // the poll sees full load (so it would see double load): the other worker took it all
    assert_eq!(
        max_in_flight, VUS,
        "planned load not seen after the partition"
    );
    // the cut-off worker gave up on its own (exit 4)
    assert_eq!(w2.exit_code(Duration::from_secs(30)), 4, "{}", w2.output());
    let s = read_json(&results.join("part-v0.1.0-mock-4vu.summary.json"));
    let lost: Vec<_> = s["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| !w["lost"].is_null())
        .cloned()
        .collect();
    assert_eq!(lost.len(), 1, "{s}");
    drop(runtime);
    drop(mock);
    drop(ns);
}

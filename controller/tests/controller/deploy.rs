//! `deploy/`: every flag the Kubernetes manifests and compose files pass to barrage exists
//! in that command's `--help`, and the manifests validate against the Kubernetes schemas.
use crate::util::{docker_image, BARRAGE};
use barrage_testkit::require;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("deploy")
}

fn files(sub: &str, exts: &[&str]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(deploy_dir().join(sub))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| exts.iter().any(|e| x == *e)))
        .collect();
    out.sort();
    out
}

/// The words of a manifest: quoted strings and bare list items, in order.
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find('"') {
            let after = &rest[i + 1..];
            let Some(j) = after.find('"') else { break };
            out.push(after[..j].to_string());
            rest = &after[j + 1..];
        }
        if let Some(item) = line.strip_prefix("- ") {
            if !item.contains('"') && !item.contains(':') || item.starts_with("--") {
                out.push(item.trim().to_string());
            }
        }
    }
    out
}

/// The barrage subcommand a word starts, if it names one.
fn subcommand(word: &str) -> Option<&'static str> {
    Some(match word {
        "controller" => "controller",
        "run" => "run",
        "sweep" => "sweep",
        "worker" | "barrage-worker" => "worker",
        "mock-llm" | "barrage-mock-llm" => "mock-llm",
        "reference-runtime" | "barrage-reference-runtime" => "reference-runtime",
        _ => return None,
    })
}

fn help(sub: &str, cache: &mut BTreeMap<String, String>) -> String {
    cache
        .entry(sub.to_string())
        .or_insert_with(|| {
            let out = Command::new(BARRAGE)
                .args([sub, "--help"])
                .output()
                .unwrap();
            assert!(out.status.success(), "barrage {sub} --help failed");
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .clone()
}

#[test]
fn every_flag_in_the_manifests_exists_in_help() {
    let mut cache = BTreeMap::new();
    let mut checked = 0;
    let mut missing = Vec::new();
    let mut all = files("k8s", &["yaml", "yml"]);
    all.extend(files("compose", &["yaml", "yml"]));
    assert!(!all.is_empty());
    for f in &all {
        let text = std::fs::read_to_string(f).unwrap();
        let mut current: Option<&str> = None;
        for w in words(&text) {
            if let Some(s) = subcommand(&w) {
                current = Some(s);
                continue;
            }
            let Some(flag) = w.strip_prefix("--") else {
                continue;
            };
            let flag = flag.split('=').next().unwrap();
            let Some(sub) = current else {
                panic!("{}: --{flag} before any barrage command", f.display());
            };
            checked += 1;
            let h = help(sub, &mut cache);
            let named = format!("--{flag}");
            let found = h
                .split(|c: char| c.is_whitespace() || c == ',' || c == '=' || c == '[')
                .any(|t| t == named);
            if !found {
                missing.push(format!("{}: barrage {sub} has no --{flag}", f.display()));
            }
        }
    }
    assert!(
        checked >= 10,
        "only {checked} flags found: the scanner is broken"
    );
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn the_scanner_finds_flags_and_commands() {
    let w = words(
        "args: [\"controller\", \"--listen\", \"0.0.0.0:7400\"]\n    command:\n      - run\n      - --target=http://x\n    # \"--comment\"\n",
    );
    assert_eq!(
        w,
        [
            "controller",
            "--listen",
            "0.0.0.0:7400",
            "run",
            "--target=http://x"
        ]
    );
}

/// `kubernetes-validate` (PyPI): the manifests against the Kubernetes schemas.
fn kubernetes_validate() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("KUBERNETES_VALIDATE").map(PathBuf::from),
        Some(PathBuf::from("kubernetes-validate")),
    ];
    candidates.into_iter().flatten().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

#[test]
fn k8s_manifests_validate_against_the_schemas() {
    let Some(kv) = require(
        "deploy::k8s_validate",
        "kubernetes-validate",
        kubernetes_validate(),
        "pip install kubernetes-validate (a venv), and put it on PATH or in KUBERNETES_VALIDATE",
    ) else {
        return;
    };
    let manifests = files("k8s", &["yaml", "yml"]);
    assert!(manifests.len() >= 2, "{manifests:?}");
    let out = Command::new(&kv)
        .arg("--strict")
        .args(&manifests)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    // it checked every document (one line per document)
    assert!(
        text.matches(" passed for resource ").count() >= 10,
        "{text}"
    );
}

/// `docker-compose -p PROJECT -f multi-worker.yml down` when dropped.
struct ComposeDown<'a> {
    args: Vec<String>,
    env: &'a [(String, String)],
}

impl Drop for ComposeDown<'_> {
    fn drop(&mut self) {
        let _ = Command::new("docker-compose")
            .args(&self.args)
            .args(["down", "-t", "2"])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output();
    }
}

#[test]
fn multi_worker_compose_runs_for_real() {
    let test = "deploy::compose_multi_worker";
    let Some(image) = docker_image(test, &format!("barrage-test:{}", std::process::id())) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let plan_dir = dir.path().join("plan");
    let results = dir.path().join("results");
    std::fs::create_dir_all(&plan_dir).unwrap();
    std::fs::create_dir_all(&results).unwrap();
    // the image runs as uid 65534
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&results, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(
        plan_dir.join("plan.toml"),
        "name = \"compose\"\ninterval = \"1s\"\ngraceful_stop = \"5s\"\n[scenario]\nexecutor = \"constant-vus\"\nvus = 2\nduration = \"3s\"\n",
    )
    .unwrap();
    let port = || barrage_testkit::free_port().to_string();
    let env: Vec<(String, String)> = vec![
        ("BARRAGE_IMAGE".into(), image.clone()),
        ("PLAN_DIR".into(), plan_dir.display().to_string()),
        ("RESULTS_DIR".into(), results.display().to_string()),
        ("LLM_PORT".into(), port()),
        ("TARGET_PORT".into(), port()),
        ("CONTROLLER_PORT".into(), port()),
        ("BENCH_CPUS".into(), "0.5".into()),
        ("BENCH_MEMORY".into(), "512M".into()),
    ];
    let project = format!("barragetest{}", std::process::id());
    let file = deploy_dir().join("compose/multi-worker.yml");
    let base: Vec<String> = vec![
        "--compatibility".into(),
        "-p".into(),
        project.clone(),
        "-f".into(),
        file.display().to_string(),
    ];
    let compose = |args: &[&str]| {
        Command::new("docker-compose")
            .args(&base)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap()
    };
    let _down = ComposeDown {
        args: base.clone(),
        env: &env,
    };
    let up = compose(&["up", "-d"]);
    assert!(
        up.status.success(),
        "up: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    let id = |service: &str| {
        String::from_utf8_lossy(&compose(&["ps", "-q", service]).stdout)
            .trim()
            .to_string()
    };
    let controller = id("controller");
    let wait = Command::new("timeout")
        .args(["120", "docker", "wait", &controller])
        .output()
        .unwrap();
    let logs = || String::from_utf8_lossy(&compose(&["logs", "--no-color"]).stdout).into_owned();
    assert_eq!(
        String::from_utf8_lossy(&wait.stdout).trim(),
        "0",
        "controller exit\n{}",
        logs()
    );
    let summary = crate::util::read_json(&results.join("reference-v0.1.0-mock-2vu.summary.json"));
    let workers = summary["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2, "{summary:#}");
    let mut reqs = 0;
    for w in workers {
        assert!(w["iterations"].as_u64().unwrap() > 0, "{w}");
        assert!(w["lost"].is_null(), "{w}");
        reqs += w["requests"].as_u64().unwrap();
    }
    // merged results: the total is the workers' sum
    assert_eq!(
        summary["metrics"]["http_reqs"]["count"].as_f64().unwrap() as u64,
        reqs
    );
    // the target's container got the limits from BENCH_CPUS/BENCH_MEMORY
    let target = id("target");
    let out = Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}}",
            &target,
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("500000000 {}", 512u64 << 20)
    );
    // and the kernel enforces them: the container's own cgroup (it is still running)
    use barrage_controller::target::Cgroup;
    let read = |d: &Path, f: &str| {
        std::fs::read_to_string(d.join(f))
            .unwrap()
            .trim()
            .to_string()
    };
    match &barrage_controller::target::docker::container_cgroup(&target).unwrap() {
        Cgroup::V1 {
            cpu: Some(cpu),
            memory: Some(mem),
            ..
        } => {
            assert_eq!(read(cpu, "cpu.cfs_quota_us"), "50000");
            assert_eq!(read(cpu, "cpu.cfs_period_us"), "100000");
            assert_eq!(
                read(mem, "memory.limit_in_bytes"),
                (512u64 << 20).to_string()
            );
        }
        Cgroup::V2 { dir, .. } => {
            assert_eq!(read(dir, "cpu.max"), "50000 100000");
            assert_eq!(read(dir, "memory.max"), (512u64 << 20).to_string());
        }
        other => panic!("the target's cgroup lacks cpu or memory: {other:?}"),
    }
    let _ = Command::new("docker").args(["rmi", "-f", &image]).output();
}

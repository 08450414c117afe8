//! `deploy/`: every flag the Kubernetes manifests and compose files pass to barrage exists
//! in that command's `--help`, and the manifests validate against the Kubernetes schemas.
use crate::util::BARRAGE;
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

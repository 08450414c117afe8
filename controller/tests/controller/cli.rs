//! Flags and configuration: refused before anything starts, `barrage token`.
use crate::util::{plan_file, Proc};
use std::time::{Duration, Instant};

#[test]
fn token_verifies_with_the_secret() {
    let secret = "a-test-secret-that-is-long-enough-for-hs256-xx";
    let out = std::process::Command::new(crate::util::BARRAGE)
        .args([
            "token",
            "--secret-env",
            "TEST_SECRET_X",
            "--sub",
            "tester",
            "--ttl",
            "10m",
        ])
        .env("TEST_SECRET_X", secret)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8(out.stdout).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.set_audience(&["authenticated"]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        token.trim(),
        &jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
        &v,
    )
    .unwrap()
    .claims;
    assert_eq!(claims["sub"], "tester");
    assert_eq!(claims["role"], "authenticated");
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        600
    );
    assert!(jsonwebtoken::decode::<serde_json::Value>(
        token.trim(),
        &jsonwebtoken::DecodingKey::from_secret(b"other"),
        &v
    )
    .is_err());

    // unset: the seed's default secret, with a note
    let out = std::process::Command::new(crate::util::BARRAGE)
        .args(["token", "--secret-env", "TEST_SECRET_UNSET_Y"])
        .env_remove("TEST_SECRET_UNSET_Y")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("default mock secret"));
    let token = String::from_utf8(out.stdout).unwrap();
    jsonwebtoken::decode::<serde_json::Value>(
        token.trim(),
        &jsonwebtoken::DecodingKey::from_secret(
            b"benchmark-jwt-secret-that-is-at-least-32-characters-long",
        ),
        &v,
    )
    .unwrap();
}

#[test]
fn bad_plans_and_thresholds_exit_2_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str)] = &[
        (
            "[thresholds]\nnot_a_metric = [\"p(95)<1\"]\n",
            "unknown metric \"not_a_metric\"",
        ),
        (
            "[thresholds]\nrun_wait = [\"p95<1\"]\n",
            "thresholds.run_wait",
        ),
        (
            "[thresholds]\nhttp_req_failed = [\"p(95)<1\"]\n",
            "thresholds.http_req_failed",
        ),
        ("[flow]\nstream_mode = [\"bogus\"]\n", "flow.stream_mode"),
    ];
    for (i, (extra, needle)) in cases.iter().enumerate() {
        let plan = plan_file(dir.path(), &format!("p{i}.toml"), 1, 1, extra);
        for cmd in ["run", "controller"] {
            let mut args = vec![
                cmd,
                "--plan",
                plan.to_str().unwrap(),
                "--results-dir",
                dir.path().to_str().unwrap(),
            ];
            if cmd == "controller" {
                args.extend(["--expect-workers", "1", "--listen", "127.0.0.1:0"]);
            }
            let started = Instant::now();
            let mut p = Proc::barrage("barrage", &args);
            let code = p.exit_code(Duration::from_secs(20));
            assert_eq!(code, 2, "{cmd} {extra}\n{}", p.output());
            assert!(
                p.stderr.lock().unwrap().contains(needle),
                "{cmd}: {needle} missing\n{}",
                p.output()
            );
            assert!(
                p.stdout.lock().unwrap().is_empty(),
                "{cmd}: something started\n{}",
                p.output()
            );
            assert!(started.elapsed() < Duration::from_secs(10));
        }
    }
}

#[test]
fn unwritable_results_dir_is_an_error_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "not a folder").unwrap();
    let results = blocker.join("results");
    let plan = plan_file(dir.path(), "p.toml", 1, 30, "");
    let started = Instant::now();
    let mut p = Proc::barrage(
        "barrage run",
        &[
            "run",
            "--plan",
            plan.to_str().unwrap(),
            "--results-dir",
            results.to_str().unwrap(),
        ],
    );
    assert_eq!(p.exit_code(Duration::from_secs(20)), 2, "{}", p.output());
    assert!(
        p.stderr.lock().unwrap().contains("--results-dir"),
        "{}",
        p.output()
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the run started anyway"
    );
    // an --out file in an unwritable place too
    let mut p = Proc::barrage(
        "barrage run",
        &[
            "run",
            "--plan",
            plan.to_str().unwrap(),
            "--results-dir",
            dir.path().to_str().unwrap(),
            "--out",
            &format!("json={}", results.join("x.json").display()),
        ],
    );
    assert_eq!(p.exit_code(Duration::from_secs(20)), 2, "{}", p.output());
}

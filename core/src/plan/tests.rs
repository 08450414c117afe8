use super::*;

#[test]
fn profiles_validate() {
    for p in [
        Profile::Default,
        Profile::Smoke,
        Profile::Tier,
        Profile::Scaling,
    ] {
        Plan::profile(p).validate().unwrap();
    }
    let d = Plan::profile(Profile::Default);
    assert_eq!(d.scenario.duration(), Duration::from_secs(90));
    assert_eq!(d.scenario.max_vus(), 5);
    assert_eq!(Plan::profile(Profile::Tier).scenario.max_vus(), 10);
    assert_eq!(d.parsed_thresholds().unwrap().len(), 6);
    let scaling = Plan::profile(Profile::Scaling);
    assert_eq!(Profile::parse("scaling"), Ok(Profile::Scaling));
    assert_eq!(scaling.scenario.max_vus(), 100);
    let plateaus: Vec<f64> = crate::stages::StageSpan::of(&scaling.scenario)
        .iter()
        .filter(|s| s.kind == crate::stages::StageKind::Plateau)
        .map(|s| s.from)
        .collect();
    assert_eq!(
        plateaus,
        [10.0, 100.0],
        "the two plateaus the scaling figures compare"
    );
}

#[test]
fn toml_plan_round_trips_through_json() {
    let text = r#"
name = "tier-m"
[target]
url = "http://127.0.0.1:9001"
runtime = "ts"
[scenario]
executor = "constant-vus"
vus = 3
duration = "20s"
[thresholds]
"http_req_duration{operation:run_wait}" = [{ threshold = "p(95)<5000", abortOnFail = true }]
"#;
    let plan = Plan::from_toml_str(text).unwrap();
    assert_eq!(plan.target.runtime, "ts");
    let back = Plan::from_json_str(&plan.to_json()).unwrap();
    assert_eq!(back, plan);
    assert_eq!(back.hash(), plan.hash());
    let th = plan.parsed_thresholds().unwrap();
    assert!(th[0].1[0].abort_on_fail);
}

#[test]
fn every_problem_is_reported_with_its_field() {
    let text = r#"
name = ""
[target]
url = "ftp://x"
[scenario]
executor = "constant-vus"
vus = 0
duration = "0s"
[flow]
stream_mode = ["values", "bogus"]
[thresholds]
nope = ["p(95)<1"]
http_req_failed = ["p(95)<1"]
run_wait = ["p95<1"]
"#;
    let err = Plan::from_toml_str(text).unwrap_err();
    let all = err.to_string();
    for needle in [
        "name:",
        "target.url",
        "scenario.vus",
        "scenario.duration",
        "flow.stream_mode",
        "unknown metric \"nope\"",
        "thresholds.http_req_failed",
        "thresholds.run_wait",
    ] {
        assert!(all.contains(needle), "{needle} missing in:\n{all}");
    }
}

#[test]
fn unknown_fields_are_rejected() {
    let err = Plan::from_toml_str(
        "[scenario]\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\nvuz = 3\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("vuz"), "{err}");
    let err = Plan::from_toml_str("[scenario]\nexecutor = \"warp-speed\"\n").unwrap_err();
    assert!(err.to_string().contains("warp-speed"), "{err}");
}

#[test]
fn a_one_request_flow_is_read_and_checked() {
    let base = "[scenario]\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\n[flow]\n";
    let plan = Plan::from_toml_str(&format!(
        "{base}request = {{ path = \"/threads/{{vu}}/state\" }}\n"
    ))
    .unwrap();
    plan.validate().unwrap();
    let r = plan.flow.request.as_ref().unwrap();
    assert_eq!((r.method.as_str(), r.body.as_deref()), ("GET", None));
    let plan = Plan::from_toml_str(&format!(
        "{base}request = {{ method = \"POST\", path = \"/store/items/search\", body = '{{\"limit\":{{iter}}}}' }}\n"
    ))
    .unwrap();
    plan.validate().unwrap();
    let err = Plan::from_toml_str(&format!(
        "{base}request = {{ method = \"get\", path = \"ok\", body = \"{{nope\" }}\n"
    ))
    .unwrap_err()
    .to_string();
    for field in [
        "flow.request.method",
        "flow.request.path",
        "flow.request.body",
    ] {
        assert!(err.contains(field), "{field} in {err}");
    }
    let err = Plan::from_toml_str(&format!("{base}request = {{ url = \"/ok\" }}\n")).unwrap_err();
    assert!(err.to_string().contains("url"), "{err}");
}

#[test]
fn overrides_apply_and_a_jwt_plan_keeps_its_claims() {
    let mut plan = Plan::profile(Profile::Smoke);
    plan.auth = AuthConfig::Jwt {
        secret_env: "OLD".into(),
        secret_file: Some("/run/secret".into()),
        sub: "alice".into(),
        per_vu_sub: true,
        ttl: Duration::from_secs(60),
    };
    plan.apply(&PlanOverrides {
        target: Some("http://127.0.0.1:9001/".into()),
        llm: Some("gpt".into()),
        jwt_secret_env: Some("NEW".into()),
        ..PlanOverrides::default()
    });
    assert_eq!(plan.target.url, "http://127.0.0.1:9001");
    assert_eq!(plan.target.llm, "gpt");
    let AuthConfig::Jwt {
        secret_env,
        secret_file,
        sub,
        per_vu_sub,
        ..
    } = &plan.auth
    else {
        panic!("{:?}", plan.auth)
    };
    assert_eq!(
        (secret_env.as_str(), secret_file, sub.as_str(), *per_vu_sub),
        ("NEW", &None, "alice", true)
    );
    let err = Plan::from_file(std::path::Path::new("/nonexistent/p.toml")).unwrap_err();
    assert!(
        err.to_string().contains("--plan /nonexistent/p.toml"),
        "{err}"
    );
}

/// Issue 14 §6: `--tier "x/../../../escaped"` wrote the results outside `--results-dir`.
#[test]
fn labels_that_name_result_files_are_checked_from_the_file_and_from_flags() {
    let base = "[scenario]\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\n";
    let err = Plan::from_toml_str(&format!(
        "{base}[target]\ntier = \"x/../../../escaped\"\nruntime = \"..\"\n"
    ))
    .unwrap_err()
    .to_string();
    for needle in [
        "target.tier: \"x/../../../escaped\"",
        "target.runtime: \"..\"",
    ] {
        assert!(err.contains(needle), "{needle} missing in:\n{err}");
    }
    for (field, o) in [
        (
            "target.tier",
            PlanOverrides {
                tier: Some("x/../../../escaped".into()),
                ..Default::default()
            },
        ),
        (
            "target.runtime",
            PlanOverrides {
                runtime: Some("../up".into()),
                ..Default::default()
            },
        ),
        (
            "target.version",
            PlanOverrides {
                version: Some("1/2".into()),
                ..Default::default()
            },
        ),
        (
            "target.llm",
            PlanOverrides {
                llm: Some("a\0b".into()),
                ..Default::default()
            },
        ),
    ] {
        let mut plan = Plan::profile(Profile::Smoke);
        plan.apply(&o);
        let err = plan.validate().unwrap_err();
        assert_eq!(err.0.len(), 1, "{err}");
        assert!(err.0[0].starts_with(field), "{field}: {err}");
    }
    let mut plan = Plan::profile(Profile::Smoke);
    plan.apply(&PlanOverrides {
        tier: Some("m".into()),
        ..Default::default()
    });
    plan.validate().unwrap();
}

/// Issue 14: unknown keys in a threshold object (`abortOnFial`, ...) were accepted silently.
#[test]
fn a_threshold_object_takes_k6_keys_and_refuses_others_by_name() {
    let base =
        "[scenario]\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\n[thresholds]\n";
    let plan = Plan::from_toml_str(&format!(
        "{base}http_req_failed = [{{ threshold = \"rate<0.05\", abortOnFail = true, delayAbortEval = \"10s\" }}]\n"
    ))
    .unwrap();
    let th = &plan.parsed_thresholds().unwrap()[0].1[0];
    assert_eq!(
        (th.abort_on_fail, th.delay_abort_eval),
        (true, Duration::from_secs(10))
    );
    let back = Plan::from_json_str(&plan.to_json()).unwrap();
    assert_eq!(back, plan);
    for (key, body) in [
        (
            "abortOnFial",
            "threshold = \"rate<0.05\", abortOnFial = true",
        ),
        (
            "delayAbortEvaluation",
            "threshold = \"rate<0.05\", delayAbortEvaluation = \"5s\"",
        ),
        ("treshold", "treshold = \"rate<0.05\""),
    ] {
        let err = Plan::from_toml_str(&format!("{base}http_req_failed = [{{ {body} }}]\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("`{key}`")),
            "{key} not named in:\n{err}"
        );
    }
    let err = Plan::from_toml_str(&format!(
        "{base}http_req_failed = [{{ threshold = \"rate<0.05\", delayAbortEval = \"soon\" }}]\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("delayAbortEval"), "{err}");
}

/// Issue 14: a NUL byte in `flow.request.path` passed validation.
#[test]
fn a_request_path_with_a_control_character_is_refused() {
    for path in [
        "/ok\0",
        "/a\u{7f}b",
        "/a\u{1b}[0m",
        "/a\u{85}b",
        "/ok\r\nX-Evil: 1",
    ] {
        let mut plan = Plan::profile(Profile::Smoke);
        plan.flow.request = Some(RequestFlow {
            method: "GET".into(),
            path: path.into(),
            body: None,
        });
        let err = plan.validate().unwrap_err();
        assert!(err.0[0].starts_with("flow.request.path"), "{path:?}: {err}");
    }
    let mut plan = Plan::profile(Profile::Smoke);
    plan.flow.request = Some(RequestFlow {
        method: "GET".into(),
        path: "/threads/{vu}/state?x=é".into(),
        body: None,
    });
    plan.validate().unwrap();
}

#[test]
fn the_response_body_limit_has_a_default_and_a_range() {
    let base = "[scenario]\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\n[flow]\n";
    let plan = Plan::from_toml_str(base).unwrap();
    assert_eq!(plan.flow.response_body_limit, 1 << 20);
    let plan = Plan::from_toml_str(&format!("{base}response_body_limit = 4096\n")).unwrap();
    assert_eq!(plan.flow.response_body_limit, 4096);
    plan.validate().unwrap();
    for bad in [0, 1023, (256 << 20) + 1] {
        let err = Plan::from_toml_str(&format!("{base}response_body_limit = {bad}\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("flow.response_body_limit"), "{bad}: {err}");
    }
}

#[test]
fn assistant_tag_defaults_per_vu_and_iteration_and_is_checked() {
    let base = "[scenario]\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\n[flow]\n";
    let plan = Plan::from_toml_str(base).unwrap();
    assert_eq!(plan.flow.assistant_tag, "vu-{vu}-iter-{iter}");
    for ok in ["", "run7.vu-{vu}:{iter}"] {
        let plan = Plan::from_toml_str(&format!("{base}assistant_tag = {ok:?}\n")).unwrap();
        assert_eq!(plan.flow.assistant_tag, ok);
    }
    for bad in [
        "vu-{vu}",
        "iter-{iter}",
        "fixed",
        "vu {vu} {iter}",
        "{vu}\\\"{iter}",
    ] {
        let err = Plan::from_toml_str(&format!("{base}assistant_tag = '{bad}'\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("flow.assistant_tag"), "{bad}: {err}");
    }
}

use super::*;

fn problems(toml_text: &str) -> Vec<String> {
    let f = FlowDef::from_toml_str(toml_text).unwrap();
    let mut errors = Vec::new();
    f.validate("flows.x", &mut errors);
    errors
}

#[test]
fn builtin_flows_parse_validate_and_print_back() {
    for (name, text) in BUILTIN_FLOWS {
        let f = FlowDef::from_toml_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut errors = Vec::new();
        f.validate(&format!("flows.{name}"), &mut errors);
        assert!(errors.is_empty(), "{name}: {errors:?}");
        assert_eq!(FlowDef::from_toml_str(&f.to_toml()).unwrap(), f, "{name}");
    }
}

#[test]
fn thresholds_may_name_the_pattern_figures() {
    let plan = crate::Plan::from_toml_str(
        "[scenario]\nexecutor = \"per-vu-iterations\"\nvus = 1\niterations = 1\n\
         [flow]\nname = \"chain\"\n[thresholds]\n\
         \"chain_turn_duration{depth:19}\" = [\"p(95)<2000\"]\n\
         \"parallel_efficiency{group:fan}\" = [\"avg>10\"]\n\
         step_retries = [\"count<100\"]\n",
    );
    assert!(plan.is_ok(), "{plan:?}");
    let e = crate::Plan::from_toml_str(
        "[scenario]\nexecutor = \"per-vu-iterations\"\nvus = 1\niterations = 1\n[flow]\nname = \"nope\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("flow.name") && e.contains("chain"), "{e}");
}

#[test]
fn a_printed_builtin_flow_pastes_into_a_plan_unchanged() {
    for (name, _) in BUILTIN_FLOWS {
        let text = builtin_flow_plan_toml(name).unwrap();
        let plan = format!(
            "[scenario]\nexecutor = \"per-vu-iterations\"\nvus = 1\niterations = 1\n\n{text}"
        );
        let plan =
            crate::Plan::from_toml_str(&plan).unwrap_or_else(|e| panic!("{name}: {e}\n{text}"));
        assert_eq!(plan.flows.get(*name), builtin_flow(name).as_ref(), "{name}");
    }
    assert!(builtin_flow_plan_toml("nope").is_none());
}

#[test]
fn every_field_error_names_the_step_and_the_field() {
    let cases: &[(&str, &str)] = &[
        (
            "[[steps]]\nname = \"A\"\npath = \"/x\"",
            "flows.x.steps[0].name",
        ),
        (
            "[[steps]]\nname = \"a\"\npath = \"/x\"\n[[steps]]\nname = \"a\"\npath = \"/y\"",
            "flows.x.steps[1] (a).name",
        ),
        (
            "[[steps]]\nname = \"a\"\nmethod = \"FETCH\"\npath = \"/x\"",
            "flows.x.steps[0] (a).method",
        ),
        ("[[steps]]\nname = \"a\"\npath = \"x\"", "flows.x.steps[0] (a).path"),
        (
            "[[steps]]\nname = \"a\"\npath = \"/x\"\ncapture = { id = \"id\" }",
            "flows.x.steps[0] (a).capture.id",
        ),
        (
            "[[steps]]\nname = \"a\"\npath = \"/x\"\ncapture = { vu = \"/id\" }",
            "flows.x.steps[0] (a).capture.vu",
        ),
        (
            "[[steps]]\nname = \"a\"\npath = \"/x\"\nchecks = [{ check = \"status\", in = [] }]",
            "flows.x.steps[0] (a).checks[0].in",
        ),
        (
            "[[steps]]\nname = \"a\"\npath = \"/x\"\nchecks = [{ check = \"exists\", pointer = \"a\" }]",
            "flows.x.steps[0] (a).checks[0].pointer",
        ),
        (
            "[[steps]]\nname = \"a\"\npath = \"/x\"\nchecks = [{ check = \"length\", pointer = \"/a\" }]",
            "flows.x.steps[0] (a).checks[0]: give min",
        ),
        (
            "[[steps]]\nname = \"a\"\npath = \"/x\"\nchecks = [{ check = \"sse_event\", event = \"m\" }]",
            "flows.x.steps[0] (a).checks[0]: has event: m reads a stream",
        ),
        (
            "[[steps]]\nname = \"a\"\npath = \"/x\"\nkind = \"sse\"\nchecks = [{ check = \"non_empty\", pointer = \"/a\" }]",
            "reads a JSON answer",
        ),
        (
            "[[steps]]\nname = \"a\"\npath = \"/x\"\ndepends_on = [\"b\"]",
            "flows.x.steps[0] (a).depends_on: no step is named \"b\"",
        ),
        (
            "[[steps]]\nname = \"a\"\npath = \"/x\"\ndepends_on = [\"b\"]\n[[steps]]\nname = \"b\"\npath = \"/x\"",
            "flows.x.steps[0] (a).depends_on: \"b\" must be a main (not cleanup) step listed before",
        ),
        (
            "[[steps]]\nname = \"a\"\npath = \"/x\"\ngroup = \"g\"",
            "flows.x.steps[0] (a).group: \"g\" is not in flows.x.groups",
        ),
        (
            "groups = { g = { repeat = 0 } }\n[[steps]]\nname = \"a\"\npath = \"/x\"\ngroup = \"g\"",
            "flows.x.groups.g: give repeat = N or fan_out = N",
        ),
        (
            "groups = { g = { repeat = 2, fan_out = 2 } }\n[[steps]]\nname = \"a\"\npath = \"/x\"\ngroup = \"g\"",
            "flows.x.groups.g: give repeat or fan_out, not both",
        ),
        (
            "groups = { g = { repeat = 2 } }\n[[steps]]\nname = \"a\"\npath = \"/x\"\ngroup = \"g\"\n[[steps]]\nname = \"b\"\npath = \"/x\"\n[[steps]]\nname = \"c\"\npath = \"/x\"\ngroup = \"g\"",
            "flows.x.groups.g: its steps must be consecutive",
        ),
        (
            "[[steps]]\nname = \"a\"\npath = \"/x\"\nretry = { attempts = 0 }",
            "flows.x.steps[0] (a).retry.attempts",
        ),
        (
            "[[steps]]\nname = \"a\"\npath = \"/x\"\nretry = { attempts = 2, jitter = 2.0 }",
            "flows.x.steps[0] (a).retry.jitter",
        ),
        (
            "[[steps]]\nname = \"a\"\npath = \"/x\"\nretry = { attempts = 2, backoff = \"10s\", max_backoff = \"1s\" }",
            "flows.x.steps[0] (a).retry.backoff",
        ),
        (
            "[[steps]]\nname = \"a\"\npath = \"/x\"\nmetric = \"Bad-Name\"",
            "flows.x.steps[0] (a).metric",
        ),
        (
            "[[steps]]\nname = \"a\"\npath = \"/x\"\ntags = { operation = \"x\" }",
            "flows.x.steps[0] (a).tags.operation",
        ),
        (
            "[[steps]]\nname = \"a\"\npath = \"/x\"\n[[steps]]\nname = \"d\"\npath = \"/x\"\ncleanup = true",
            "flows.x.steps[1] (d).requires",
        ),
        (
            "[[steps]]\nname = \"a\"\npath = \"/x\"\nrequires = [\"t\"]",
            "flows.x.steps[0] (a).requires: only cleanup steps",
        ),
        (
            "[[steps]]\nname = \"d\"\npath = \"/x\"\ncleanup = true\nrequires = [\"t\"]",
            "flows.x.steps: give at least one step",
        ),
        (
            "vars = { vu = \"1\" }\n[[steps]]\nname = \"a\"\npath = \"/x\"",
            "flows.x.vars.vu",
        ),
        (
            "groups = { g = { fan_out = 2 } }\n[[steps]]\nname = \"d\"\ngroup = \"g\"\npath = \"/x\"\ncleanup = true\nrequires = [\"t\"]\n[[steps]]\nname = \"a\"\ngroup = \"g\"\npath = \"/x\"",
            "flows.x.steps[0] (d).group: a group's cleanup steps come after its main steps",
        ),
        (
            "groups = { g = { fan_out = 2 } }\n[[steps]]\nname = \"a\"\npath = \"/x\"\n[[steps]]\nname = \"d\"\ngroup = \"g\"\npath = \"/x\"\ncleanup = true\nrequires = [\"t\"]",
            "flows.x.groups.g: no main (not cleanup) step",
        ),
        (
            "[[steps]]\nname = \"a\"\npath = \"/x\"\nllm_calls = \"http://llm/stats\"",
            "flows.x.steps[0] (a).llm_calls: \"http://llm/stats\" must be the mock LLM's call log",
        ),
        (
            "[[steps]]\nname = \"a\"\npath = \"/x\"\n[[steps]]\nname = \"d\"\npath = \"/x\"\ncleanup = true\nrequires = [\"t\"]\nllm_calls = \"http://l/stats/calls?key=1\"",
            "flows.x.steps[1] (d).llm_calls: a cleanup step calls no LLM",
        ),
    ];
    for (text, needle) in cases {
        let errors = problems(text);
        assert!(
            errors.iter().any(|e| e.contains(needle)),
            "{needle:?} not in {errors:?} for:\n{text}"
        );
    }
}

#[test]
fn unknown_fields_and_kinds_are_parse_errors_naming_them() {
    let e =
        FlowDef::from_toml_str("[[steps]]\nname = \"a\"\npath = \"/x\"\nbdy = \"{}\"").unwrap_err();
    assert!(e.contains("bdy"), "{e}");
    let e = FlowDef::from_toml_str("[[steps]]\nname = \"a\"\npath = \"/x\"\nkind = \"xml\"")
        .unwrap_err();
    assert!(e.contains("xml") && e.contains("sse"), "{e}");
    let e = FlowDef::from_toml_str(
        "[[steps]]\nname = \"a\"\npath = \"/x\"\nchecks = [{ check = \"nope\" }]",
    )
    .unwrap_err();
    assert!(e.contains("nope") && e.contains("status"), "{e}");
    let e = FlowDef::from_toml_str(
        "[[steps]]\nname = \"a\"\npath = \"/x\"\nchecks = [{ check = \"exists\", pointr = \"/a\" }]",
    )
    .unwrap_err();
    assert!(e.contains("pointr"), "{e}");
}

//! Goodput in a controller run (issue 12 §3): the reference runtime behind a 20 ms mock LLM
//! and `[slo] run_wait = "1ms"`, which no run can meet. Every flow passes its checks, none is
//! good; a threshold on `flow_goodput{stage:plateau}` is judged on the plateau's own data.
use crate::util::*;
use std::time::Duration;

const PLAN: &str = r#"name = "goodput"
interval = "1s"
graceful_stop = "5s"
[scenario]
executor = "ramping-vus"
start_vus = 0
stages = [{ duration = "1s", target = 2 }, { duration = "3s", target = 2 }]
[slo]
run_wait = "1ms"
[thresholds]
"flow_goodput{stage:plateau}" = ["rate>0.95", "rate<0.05"]
"agent_flow_success_rate{stage:plateau}" = ["rate>0.95"]
"#;

#[test]
fn a_plateau_goodput_threshold_judges_the_objectives() {
    let target = start_target_with_delay(20);
    let (_dir, results, mut run) = run_plan_text(&target.url, PLAN);
    assert_eq!(
        run.exit_code(Duration::from_secs(60)),
        99,
        "{}",
        run.output()
    );
    let s = barrage_testkit::summary::only_summary(&results);
    let verdict = |metric: &str, expr: &str| {
        let t = s["thresholds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["metric"] == metric && t["threshold"] == expr)
            .unwrap_or_else(|| panic!("no {metric} '{expr}': {}", s["thresholds"]));
        (t["ok"].as_bool().unwrap(), t["observed"].as_f64())
    };
    assert_eq!(
        verdict("flow_goodput{stage:plateau}", "rate>0.95"),
        (false, Some(0.0))
    );
    assert_eq!(
        verdict("flow_goodput{stage:plateau}", "rate<0.05"),
        (true, Some(0.0))
    );
    assert_eq!(
        verdict("agent_flow_success_rate{stage:plateau}", "rate>0.95"),
        (true, Some(1.0))
    );
    // the plateau's own section has the goodput of its flows, and the run's objectives
    let plateau = &s["stages"][1];
    assert_eq!(plateau["kind"], "plateau");
    let g = &plateau["metrics"]["flow_goodput"];
    assert_eq!(g["rate"].as_f64(), Some(0.0), "{plateau}");
    assert!(g["fails"].as_u64().unwrap() > 0, "{plateau}");
    assert_eq!(s["slo"]["run_wait"].as_f64(), Some(1.0));
    assert_eq!(s["slo"]["create_thread"].as_f64(), Some(500.0));
    let flows_of = |m: &str| {
        s["metrics"][m]["passes"].as_u64().unwrap() + s["metrics"][m]["fails"].as_u64().unwrap()
    };
    let flows = flows_of("agent_flow_success_rate");
    assert_eq!(flows_of("flow_goodput"), flows, "one sample per flow");
    assert_eq!(s["metrics"]["flow_goodput"]["fails"].as_u64(), Some(flows));
    let text = run.stdout.lock().unwrap().clone();
    assert!(
        text.contains(&format!("goodput:  0.00% of {flows} flows (SLO: ")),
        "{text}"
    );
}

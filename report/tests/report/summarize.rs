//! `summarize` on a small k6 NDJSON file gives the figures of the seed's jq recipes, run
//! with the real `jq` on the same file.
use crate::k6file;
use barrage_report::input::ResultsFile;
use barrage_report::summarize::summarize;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn jq(file: &Path, recipe: &str) -> Option<Value> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(recipe)
        .env("F", file)
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "{recipe}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).expect("jq prints JSON"))
}

fn jq_installed() -> Option<()> {
    Command::new("jq")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| ())
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(1.0)
}

#[test]
fn k6_figures_equal_the_jq_recipes() {
    let Some(()) = barrage_testkit::require(
        "summarize::k6_figures_equal_the_jq_recipes",
        "jq",
        jq_installed(),
        "apt-get install -y jq",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = k6file::write(dir.path(), "ts-v0.1.0-mock-5vu", 9, 37, 1.0);
    let got = summarize(&ResultsFile::read(&file).unwrap());
    assert_eq!(got.source, "k6 NDJSON");
    // the seed's recipes, verbatim but for the file name
    let iterations = jq(
        &file,
        r#"grep '"agent_flow_duration"' "$F" | grep '"Point"' | wc -l | jq ."#,
    )
    .unwrap();
    assert_eq!(iterations.as_u64(), Some(got.iterations));
    let flow = jq(
        &file,
        r#"grep '"agent_flow_duration"' "$F" | grep '"Point"' | jq -s '[.[].data.value] | {count: length, min: min, max: max, avg: (add/length), p50: sort[length/2|floor], p95: sort[(length*0.95)|floor], p99: sort[(length*0.99)|floor]}'"#,
    )
    .unwrap();
    let f = got.flow.as_ref().unwrap();
    assert_eq!(flow["count"].as_u64(), Some(f.count));
    for (k, v) in [
        ("min", f.min),
        ("max", f.max),
        ("avg", f.avg),
        ("p50", f.p50),
        ("p95", f.p95),
        ("p99", f.p99),
    ] {
        assert!(
            close(flow[k].as_f64().unwrap(), v),
            "flow {k}: jq {} vs {v}",
            flow[k]
        );
    }
    for op in ["create_thread", "run_wait", "get_state"] {
        let want = jq(
            &file,
            &format!(
                r#"grep '"http_req_duration"' "$F" | grep '"Point"' | grep '"operation":"{op}"' | jq -s '[.[].data.value] | {{count: length, avg: (add/length), p50: sort[length/2|floor], p95: sort[(length*0.95)|floor]}}'"#
            ),
        )
        .unwrap();
        let o = &got.operations[op];
        assert_eq!(want["count"].as_u64(), Some(o.count), "{op}");
        for (k, v) in [("avg", o.avg), ("p50", o.p50), ("p95", o.p95)] {
            assert!(
                close(want[k].as_f64().unwrap(), v),
                "{op} {k}: jq {} vs {v}",
                want[k]
            );
        }
    }
    let text = got.text();
    assert!(
        text.contains(&format!("iterations: {}", got.iterations)),
        "{text}"
    );
}

#[test]
fn summary_figures_are_the_summarys() {
    let dir = tempfile::tempdir().unwrap();
    let path = crate::synth::Synth::default().write(dir.path(), "s");
    let f = ResultsFile::read(&path).unwrap();
    let ResultsFile::Summary(s) = &f else {
        panic!("read as k6")
    };
    let got = summarize(&f);
    let flow = s.metric("agent_flow_duration").unwrap();
    let g = got.flow.as_ref().unwrap();
    assert_eq!(g.count as f64, flow.count());
    assert_eq!(Some(g.p95), flow.stat("p95"));
    assert_eq!(
        got.iterations,
        s.metric("iterations").unwrap().count() as u64
    );
    let rw = s.metric("http_req_duration{operation:run_wait}").unwrap();
    assert_eq!(Some(got.operations["run_wait"].p50), rw.stat("med"));
}

//! Small k6 NDJSON files written by the tests, in k6's `--out json` layout.
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const OPS: &[(&str, f64)] = &[
    ("create_thread", 2.0),
    ("run_wait", 20.0),
    ("get_state", 1.0),
];

/// `flows` flows over about `flows / 5` seconds; latencies × `factor`; `fail_every`-th
/// request fails.
pub fn write(dir: &Path, name: &str, seed: u64, flows: u32, factor: f64) -> PathBuf {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut s = String::new();
    for m in [
        "http_req_duration",
        "http_reqs",
        "http_req_failed",
        "agent_flow_duration",
    ] {
        let _ = writeln!(
            s,
            r#"{{"type":"Metric","data":{{"name":"{m}","type":"trend","contains":"time","thresholds":[],"submetrics":null}},"metric":"{m}"}}"#
        );
    }
    let t0 = 1_735_787_045_000_000i64; // 2025-01-02T03:04:05Z
    let mut t = t0;
    for _ in 0..flows {
        let mut flow = 0.0;
        for (op, base) in OPS {
            // values with a fraction, as k6 writes them
            let v = (base * factor * (0.5 + rng.random::<f64>())) * 1000.0;
            let v = v.round() / 1000.0;
            flow += v;
            t += 40_000 + rng.random_range(0..20_000);
            let time = chrono::DateTime::from_timestamp_micros(t)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
            let tags = format!(r#"{{"operation":"{op}","status":"200"}}"#);
            let _ = writeln!(
                s,
                r#"{{"type":"Point","data":{{"time":"{time}","value":{v},"tags":{tags}}},"metric":"http_req_duration"}}"#
            );
            let _ = writeln!(
                s,
                r#"{{"type":"Point","data":{{"time":"{time}","value":1,"tags":{tags}}},"metric":"http_reqs"}}"#
            );
            let _ = writeln!(
                s,
                r#"{{"type":"Point","data":{{"time":"{time}","value":0,"tags":{tags}}},"metric":"http_req_failed"}}"#
            );
        }
        let time = chrono::DateTime::from_timestamp_micros(t)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
        let _ = writeln!(
            s,
            r#"{{"type":"Point","data":{{"time":"{time}","value":{flow},"tags":{{"scenario":"default"}}}},"metric":"agent_flow_duration"}}"#
        );
    }
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, s).unwrap();
    path
}

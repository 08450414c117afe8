//! `/metrics`: the live state in the Prometheus text exposition format (version 0.0.4), so
//! a Prometheus server (and the Grafana dashboard in `deploy/grafana/`) can follow a run.
//!
//! Every figure is the controller's merged view of all workers, the same numbers as the
//! page and, at the end, the summary. Counters cover the closed intervals (plus late
//! snapshots), so they only grow. Latencies are **summaries over the whole run so far**,
//! read from the merged HDR histograms: with 3 significant digits a quantile is within
//! 0.1 % of the exact sample quantile, and `_sum` (mean × count) too. The `barrage_interval_*`
//! gauges are the last closed interval's, for a live view that does not flatten late in a
//! long run.
//!
//! Adding a metric: write it in [`render`] with [`Writer::family`] (one `# HELP`/`# TYPE`
//! pair per name), name it `barrage_…` with its unit suffix, and add a panel to
//! `deploy/grafana/barrage.json` if it deserves one (the integration test checks that every
//! name the dashboard JSON reads is exposed).
use super::state::{Latency, LiveState, RunPhase, QUANTILES};
use barrage_core::metrics::builtin;
use std::fmt::Write as _;

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Builds the exposition text, one family at a time.
struct Writer {
    out: String,
}

/// A label value, escaped as the format asks (`\\`, `\"`, `\n`).
fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// A sample value: integers plainly, `NaN`/`+Inf` as the format spells them.
fn value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

impl Writer {
    /// `# HELP` and `# TYPE` of one metric family.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(val));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", value(v));
    }

    /// A family with one unlabelled sample.
    fn single(&mut self, name: &str, kind: &str, help: &str, v: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], v);
    }
}

/// Quantile label values, as the format writes them.
fn quantile_label(q: f64) -> String {
    format!("{q}")
}

/// The exposition text of `s`.
pub fn render(s: &LiveState) -> String {
    let mut w = Writer { out: String::new() };
    let run = &s.run;
    let tier = run.tier.clone().unwrap_or_default();
    w.family(
        "barrage_run_info",
        "gauge",
        "The run being measured (always 1; its labels say which).",
    );
    w.sample(
        "barrage_run_info",
        &[
            ("name", &run.name),
            ("scenario", &run.scenario),
            ("target", &run.target_url),
            ("runtime", &run.runtime),
            ("version", &run.version),
            ("llm", &run.llm),
            ("tier", &tier),
            ("barrage_version", barrage_core::VERSION),
        ],
        1.0,
    );
    w.family(
        "barrage_run_phase",
        "gauge",
        "1 for the phase the run is in, 0 for the others.",
    );
    for phase in RunPhase::ALL {
        let on = if phase == s.phase { 1.0 } else { 0.0 };
        w.sample("barrage_run_phase", &[("phase", phase.as_str())], on);
    }
    w.single(
        "barrage_run_elapsed_seconds",
        "gauge",
        "Time since the run's start (stage time 0).",
        s.elapsed_s,
    );
    w.single(
        "barrage_run_intervals_total",
        "counter",
        "Intervals closed and merged so far.",
        s.intervals as f64,
    );

    let t = &s.totals;
    let counters: [(&str, &str, u64); 8] = [
        (
            "barrage_http_reqs_total",
            "HTTP requests completed, all workers.",
            t.requests,
        ),
        (
            "barrage_http_req_failed_total",
            "HTTP requests that failed (http_req_failed true), all workers.",
            t.failed_requests,
        ),
        (
            "barrage_iterations_total",
            "Iterations (flows) completed, all workers.",
            t.iterations,
        ),
        (
            "barrage_interrupted_iterations_total",
            "Iterations cut short by the hard stop.",
            t.interrupted_iterations,
        ),
        (
            "barrage_dropped_iterations_total",
            "Arrival-rate iterations that found no free VU.",
            t.dropped_iterations,
        ),
        (
            "barrage_data_sent_bytes_total",
            "Bytes sent to the target.",
            t.data_sent_bytes,
        ),
        (
            "barrage_data_received_bytes_total",
            "Bytes received from the target.",
            t.data_received_bytes,
        ),
        (
            "barrage_late_snapshots_total",
            "Worker snapshots that arrived after their interval closed (counted, not charted).",
            t.late_snapshots,
        ),
    ];
    for (name, help, v) in counters {
        w.single(name, "counter", help, v as f64);
    }
    w.family(
        "barrage_checks_total",
        "counter",
        "Checks evaluated, by result.",
    );
    w.sample(
        "barrage_checks_total",
        &[("result", "pass")],
        t.checks_passed as f64,
    );
    w.sample(
        "barrage_checks_total",
        &[("result", "fail")],
        t.checks_failed as f64,
    );

    let now = s.now.clone().unwrap_or_default();
    w.single(
        "barrage_vus",
        "gauge",
        "Virtual users active in the last closed interval, all workers.",
        now.vus as f64,
    );
    w.single(
        "barrage_interval_requests_per_second",
        "gauge",
        "Requests per second in the last closed interval.",
        now.requests_per_s,
    );
    w.single(
        "barrage_interval_error_ratio",
        "gauge",
        "Failed requests / requests in the last closed interval (0..1).",
        now.error_rate,
    );

    let mut states: Vec<(&str, f64)> = ["joining", "ready", "running", "done", "lost"]
        .iter()
        .map(|st| (*st, 0.0))
        .collect();
    for wk in &s.workers {
        if let Some(e) = states.iter_mut().find(|(st, _)| *st == wk.state) {
            e.1 += 1.0;
        }
    }
    w.family("barrage_workers", "gauge", "Workers of the run, by state.");
    for (st, n) in &states {
        w.sample("barrage_workers", &[("state", st)], *n);
    }
    w.family(
        "barrage_worker_snapshots_total",
        "counter",
        "Snapshots received from each worker.",
    );
    for wk in &s.workers {
        w.sample(
            "barrage_worker_snapshots_total",
            &[("worker", &wk.id), ("host", &wk.host)],
            wk.snapshots as f64,
        );
    }
    w.family(
        "barrage_worker_requests_total",
        "counter",
        "HTTP requests each worker reported.",
    );
    for wk in &s.workers {
        w.sample(
            "barrage_worker_requests_total",
            &[("worker", &wk.id), ("host", &wk.host)],
            wk.requests as f64,
        );
    }
    w.family(
        "barrage_worker_silent_intervals",
        "gauge",
        "Liveness checks in a row that heard nothing from the worker (3 = lost).",
    );
    for wk in &s.workers {
        w.sample(
            "barrage_worker_silent_intervals",
            &[("worker", &wk.id), ("host", &wk.host)],
            wk.silent_intervals as f64,
        );
    }

    latency_families(&mut w, s);

    if let Some(tl) = s.target {
        w.single(
            "barrage_target_cpu_percent",
            "gauge",
            "CPU of the target over the last interval, % of one core.",
            tl.cpu_pct,
        );
        w.single(
            "barrage_target_rss_bytes",
            "gauge",
            "Resident memory of the target.",
            tl.rss_bytes as f64,
        );
    }
    w.out
}

/// The latency summaries and the last interval's p95 gauges.
fn latency_families(w: &mut Writer, s: &LiveState) {
    const BOUND: &str = "quantiles from the merged HDR histogram, within 0.1 %";
    let is_op = |name: &str| {
        ![
            builtin::HTTP_REQ_DURATION,
            builtin::AGENT_FLOW_DURATION,
            builtin::ITERATION_DURATION,
        ]
        .contains(&name)
    };
    let summary = |w: &mut Writer, name: &str, labels: &[(&str, &str)], l: &Latency| {
        for (q, v) in QUANTILES.iter().zip(&l.quantiles_ms) {
            let ql = quantile_label(*q);
            let mut lab = labels.to_vec();
            lab.push(("quantile", &ql));
            w.sample(name, &lab, v / 1e3);
        }
        w.sample(&format!("{name}_sum"), labels, l.sum_s);
        w.sample(&format!("{name}_count"), labels, l.count as f64);
    };
    let name = "barrage_http_req_duration_seconds";
    w.family(
        name,
        "summary",
        &format!("HTTP request duration by operation, whole run so far; {BOUND}."),
    );
    for l in s.latency.iter().filter(|l| is_op(&l.name)) {
        summary(w, name, &[("operation", &l.name)], l);
    }
    for (metric, name, help) in [
        (
            builtin::HTTP_REQ_DURATION,
            "barrage_http_req_duration_all_operations_seconds",
            "HTTP request duration, every operation together",
        ),
        (
            builtin::AGENT_FLOW_DURATION,
            "barrage_agent_flow_duration_seconds",
            "Agent flow duration (one whole flow)",
        ),
        (
            builtin::ITERATION_DURATION,
            "barrage_iteration_duration_seconds",
            "Iteration duration",
        ),
    ] {
        w.family(
            name,
            "summary",
            &format!("{help}, whole run so far; {BOUND}."),
        );
        if let Some(l) = s.latency(metric) {
            summary(w, name, &[], l);
        }
    }
    let name = "barrage_interval_http_req_duration_p95_seconds";
    w.family(
        name,
        "gauge",
        "p95 of the HTTP request duration in the last closed interval, by operation (`all`: every operation).",
    );
    for l in &s.latency {
        let op = if l.name == builtin::HTTP_REQ_DURATION {
            "all"
        } else if is_op(&l.name) {
            l.name.as_str()
        } else {
            continue;
        };
        if let Some(p95) = l.interval_p95_ms {
            w.sample(name, &[("operation", op)], p95 / 1e3);
        }
    }
    let now = s.now.clone().unwrap_or_default();
    w.family(
        "barrage_interval_agent_flow_duration_seconds",
        "gauge",
        "Agent flow duration percentiles in the last closed interval.",
    );
    for (q, v) in [
        ("0.5", now.flow_p50_ms),
        ("0.95", now.flow_p95_ms),
        ("0.99", now.flow_p99_ms),
    ] {
        if let Some(v) = v {
            w.sample(
                "barrage_interval_agent_flow_duration_seconds",
                &[("quantile", q)],
                v / 1e3,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::state::{latencies, totals, LiveState, RunInfo, WorkerHealth};
    use super::*;

    #[test]
    fn labels_and_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(value(f64::NAN), "NaN");
        assert_eq!(value(f64::INFINITY), "+Inf");
        assert_eq!(value(3.0), "3");
        assert_eq!(value(0.0125), "0.0125");
    }

    #[test]
    fn families_are_declared_once_and_samples_follow_them() {
        let total = super::super::state::tests_support::merged();
        let mut s = LiveState::new(RunInfo {
            name: "t\"est".into(),
            ..RunInfo::default()
        });
        s.totals = totals(&total, 0);
        s.latency = latencies(&total, None);
        s.workers = vec![WorkerHealth {
            id: "w1".into(),
            state: "running",
            snapshots: 4,
            ..WorkerHealth::default()
        }];
        let text = render(&s);
        let mut declared = Vec::new();
        let mut current = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap().to_string();
                assert!(!declared.contains(&name), "{name} declared twice");
                declared.push(name.clone());
                current = name;
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let base = name
                    .strip_suffix("_sum")
                    .or_else(|| name.strip_suffix("_count"))
                    .filter(|b| *b == current)
                    .unwrap_or(name);
                assert_eq!(base, current, "sample outside its family: {line}");
            }
        }
        assert!(text.contains("barrage_http_reqs_total 200\n"), "{text}");
        assert!(text.contains("name=\"t\\\"est\""), "{text}");
        assert!(
            text.contains("barrage_http_req_duration_seconds_count{operation=\"run_wait\"} 100\n"),
            "{text}"
        );
        assert!(
            text.contains("barrage_workers{state=\"running\"} 1\n"),
            "{text}"
        );
        assert!(!text.contains("barrage_target_cpu_percent"), "{text}");
    }
}

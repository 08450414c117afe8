//! [`render_text`]: the human end-of-run summary, shaped like k6's (thresholds with ✓/✗,
//! then one line per metric), printed by `barrage run` and a standalone worker alike. It
//! reads only the [`Summary`], so what is printed is what was written.
use super::{MetricStats, Summary};
use crate::format::{fmt_bytes, fmt_ms, fmt_num};
use crate::metrics::ValueKind;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

/// One metric's values, without the name (k6's layout).
pub fn stat_line(s: &MetricStats) -> String {
    let time = s.contains() == ValueKind::Time;
    let v = |x: Option<f64>| match x {
        Some(x) if time => fmt_ms(x),
        Some(x) => fmt_num(x),
        None => "-".into(),
    };
    match s {
        MetricStats::Trend {
            avg,
            min,
            med,
            max,
            p90,
            p95,
            p99,
            count,
            ..
        } => format!(
            "avg={} min={} med={} max={} p(90)={} p(95)={} p(99)={} count={count}",
            v(*avg),
            v(*min),
            v(*med),
            v(*max),
            v(*p90),
            v(*p95),
            v(*p99)
        ),
        MetricStats::Counter {
            contains: ValueKind::Data,
            count,
            rate,
        } => format!("{} {}/s", fmt_bytes(*count), fmt_bytes(*rate)),
        MetricStats::Counter { count, rate, .. } => format!("{} {rate:.2}/s", fmt_num(*count)),
        MetricStats::Rate {
            rate,
            passes,
            fails,
            ..
        } => format!("{:.2}% {passes} out of {}", rate * 100.0, passes + fails),
        MetricStats::Gauge {
            value, min, max, ..
        } => format!(
            "{} min={} max={}",
            fmt_num(*value),
            fmt_num(*min),
            fmt_num(*max)
        ),
    }
}

fn dots(name: &str, width: usize) -> String {
    let n = name.chars().count();
    format!("{name}{}", ".".repeat(width.saturating_sub(n) + 2))
}

/// The INVALID block: every problem with its worker and stage, and what the exit code says.
fn invalid_block(out: &mut String, v: &crate::validity::Validity, exit_code: u8) {
    let _ = writeln!(
        out,
        "  ✗ INVALID RUN: the load generator did not deliver the plan; the figures below measure it as much as the target\n"
    );
    for p in &v.problems {
        let who = p
            .worker
            .as_deref()
            .map_or_else(|| "all workers".to_string(), |w| format!("worker {w}"));
        let _ = writeln!(
            out,
            "    ✗ {who}, stage {} ({}): {} {} {}, bound {} {}: {}",
            p.stage,
            p.stage_kind.as_str(),
            p.what.as_str(),
            fmt_num(p.observed),
            p.unit,
            fmt_num(p.bound),
            p.unit,
            p.detail
        );
    }
    let why = if v.allow_invalid {
        "--allow-invalid: the exit code ignores it"
    } else {
        "exit code 97 unless --allow-invalid"
    };
    let _ = writeln!(out, "\n    {why} (exit code {exit_code})");
}

/// The human summary; ends with `results: <path>` when the summary was written to a file.
pub fn render_text(s: &Summary, written_to: Option<&Path>) -> String {
    let mut out = String::new();
    let _ = writeln!(out);
    // a run that did not deliver its plan says so before any figure
    if let Some(v) = s.validity.as_ref().filter(|v| !v.valid) {
        invalid_block(&mut out, v, s.result.exit_code);
    }
    let t = &s.target;
    let tier = t
        .tier
        .as_deref()
        .map(|x| format!(", tier {x}"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "  target:   {} ({} v{}, llm {}{tier})",
        t.url, t.runtime, t.version, t.llm
    );
    let _ = writeln!(out, "  scenario: {}", s.scenario);
    let lost: Vec<_> = s.workers.iter().filter(|w| w.lost.is_some()).collect();
    let _ = writeln!(
        out,
        "  workers:  {} ({} lost)   duration: {}s   end: {}",
        s.workers.len(),
        lost.len(),
        s.duration_s,
        s.result.end_reason
    );
    for w in &lost {
        if let Some(l) = &w.lost {
            let _ = writeln!(out, "    lost {} after {}s: {}", w.id, l.after_s, l.reason);
        }
    }
    if let Some(line) = goodput_line(s) {
        let _ = writeln!(out, "  goodput:  {line}");
    }
    if !s.thresholds.is_empty() {
        let _ = writeln!(out, "\n  █ THRESHOLDS\n");
        let width = s
            .thresholds
            .iter()
            .map(|t| t.metric.chars().count())
            .max()
            .unwrap_or(0);
        for t in &s.thresholds {
            let mark = if t.ok { "✓" } else { "✗" };
            let observed = match t.observed {
                Some(x) => format!("{x}"),
                None => "no data".into(),
            };
            let _ = writeln!(
                out,
                "    {mark} {} '{}' observed={observed}",
                dots(&t.metric, width),
                t.threshold
            );
        }
    }
    // a figure that says the stream timings cannot be trusted comes before them
    if let Some(MetricStats::Rate {
        rate,
        passes,
        fails,
        ..
    }) = s.metrics.get("stream_buffered")
    {
        if *passes > 0 {
            // a buffering runtime or proxy holds back most streams; a few that arrive at once
            // are more likely the generator's own stalls (bytes read late, all together)
            let why = if *rate >= 0.5 {
                "the runtime or a proxy buffers SSE: stream timings measure the buffer"
            } else {
                "a few: more likely the load generator stalled than a buffering runtime"
            };
            let _ = writeln!(
                out,
                "\n  ⚠ stream_buffered: {passes} of {} streams ({:.2}%) arrived at once after a long wait; {why}",
                passes + fails,
                rate * 100.0
            );
        }
    }
    let staged: Vec<_> = s.stages.iter().filter(|st| st.intervals > 0).collect();
    if staged.len() > 1 {
        let _ = writeln!(out, "\n  █ STAGES\n");
        for st in staged {
            let p95 = |m: &str| {
                st.metrics
                    .get(m)
                    .and_then(|x| x.stat("p95"))
                    .map_or_else(|| "-".into(), fmt_ms)
            };
            let end = st.end_s.map_or_else(|| "end".into(), |e| format!("{e}s"));
            let errors = st
                .error_rate
                .map_or_else(|| "-".into(), |e| format!("{:.2}%", e * 100.0));
            let _ = writeln!(
                out,
                "    {} {:<7} {}→{} {} ({}s–{end}): VUs {} ({}–{}), {:.2} req/s, errors {errors}, p95 req {} flow {}",
                st.index,
                st.kind.as_str(),
                fmt_num(st.planned_from),
                fmt_num(st.planned_to),
                st.planned_unit,
                st.start_s,
                fmt_num(st.vus_mean),
                st.vus_min,
                st.vus_max,
                st.req_per_s,
                p95("http_req_duration"),
                p95("agent_flow_duration"),
            );
        }
    }
    if let Some(p) = &s.patterns {
        let _ = writeln!(out, "\n  █ PATTERNS\n");
        out.push_str(&p.text());
    }
    let _ = writeln!(out, "\n  █ METRICS\n");
    // metrics, plus the submetrics thresholds name (summary.json has every submetric)
    let named: BTreeSet<&str> = s.thresholds.iter().map(|t| t.metric.as_str()).collect();
    let shown: Vec<(&String, &MetricStats)> = s
        .metrics
        .iter()
        .filter(|(k, _)| !k.contains('{') || named.contains(k.as_str()))
        .collect();
    let width = shown
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    for (name, m) in shown {
        let _ = writeln!(out, "    {}: {}", dots(name, width), stat_line(m));
    }
    if let Some(t) = &s.target_telemetry {
        let _ = writeln!(
            out,
            "\n  target ({}): {}",
            t.source,
            crate::telemetry::describe(t)
        );
    }
    if let Some(t) = &s.trends {
        let _ = writeln!(out, "\n  █ TRENDS (after {}s of warm-up)", t.warmup_s);
        for line in crate::trend::describe(t) {
            let _ = writeln!(out, "    {line}");
        }
    }
    if let Some(p) = written_to {
        let _ = writeln!(out, "\nresults: {}", p.display());
    }
    out
}

/// `97.30% of 1204 flows (SLO: run_wait 5s, …)`: the share of flows that passed every check
/// and met every objective; `None` when no flow was judged.
fn goodput_line(s: &Summary) -> Option<String> {
    let Some(MetricStats::Rate {
        rate,
        passes,
        fails,
        ..
    }) = s.metrics.get(crate::metrics::builtin::FLOW_GOODPUT)
    else {
        return None;
    };
    let slo = if s.slo.is_empty() {
        "checks only".to_string()
    } else {
        s.slo
            .iter()
            .map(|(name, ms)| {
                let d = std::time::Duration::from_secs_f64(ms / 1000.0);
                format!("{name} {}", crate::duration::format_duration(d))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    Some(format!(
        "{:.2}% of {} flows (SLO: {slo})",
        rate * 100.0,
        fmt_num((passes + fails) as f64)
    ))
}

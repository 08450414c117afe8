//! The sweep's closing table: one row per runtime × tier, read from the pairs' summaries.
use barrage_core::format::{fmt_bytes, fmt_ms};
use barrage_core::metrics::builtin;
use barrage_core::stages::StageKind;
use barrage_core::summary::Summary;

/// One pair's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub runtime: String,
    pub tier: String,
    pub req_per_s: Option<f64>,
    pub req_per_cpu_s: Option<f64>,
    /// p95 of the agent flow (of the iteration for a one-request flow), ms.
    pub p95_flow_ms: Option<f64>,
    /// The same on the plan's last plateau with data (the tier's steady load), ms.
    pub p95_plateau_ms: Option<f64>,
    /// `http_req_failed` rate, 0..1.
    pub errors: Option<f64>,
    pub peak_rss: Option<u64>,
    /// `ok`, the target's end (`oom-killed`, …), or why there is no summary.
    pub status: String,
}

impl Row {
    pub fn of(runtime: &str, tier: &str, s: &Summary) -> Row {
        let stat = |m: &str, k: &str| s.metric(m).and_then(|x| x.stat(k));
        let t = s.target_telemetry.as_ref();
        let status = match t.and_then(|t| t.exit.as_ref()) {
            Some(e) => format!("target {}", e.reason),
            None if s.result.exit_code == 0 => "ok".into(),
            None => format!("exit {}", s.result.exit_code),
        };
        let plateau = s
            .stages
            .iter()
            .rev()
            .find(|st| st.kind == StageKind::Plateau && st.intervals > 0);
        let plateau_p95 = |m: &str| plateau.and_then(|st| st.metrics.get(m)?.stat("p95"));
        Row {
            runtime: runtime.into(),
            tier: tier.into(),
            p95_plateau_ms: plateau_p95(builtin::AGENT_FLOW_DURATION)
                .or_else(|| plateau_p95(builtin::ITERATION_DURATION)),
            req_per_s: stat(builtin::HTTP_REQS, "rate"),
            req_per_cpu_s: t.and_then(|t| t.requests_per_cpu_second),
            p95_flow_ms: stat(builtin::AGENT_FLOW_DURATION, "p95")
                .or_else(|| stat(builtin::ITERATION_DURATION, "p95")),
            errors: stat(builtin::HTTP_REQ_FAILED, "rate"),
            peak_rss: t.map(|t| t.rss_peak_bytes),
            status,
        }
    }

    pub fn missing(runtime: &str, tier: &str, why: String) -> Row {
        Row {
            runtime: runtime.into(),
            tier: tier.into(),
            req_per_s: None,
            req_per_cpu_s: None,
            p95_flow_ms: None,
            p95_plateau_ms: None,
            errors: None,
            peak_rss: None,
            status: why,
        }
    }

    /// No summary was written.
    pub fn failed(&self) -> bool {
        self.req_per_s.is_none() && self.status.starts_with("no summary")
    }
}

/// The table, aligned, with a header.
pub fn render(rows: &[Row]) -> String {
    let dash = || "-".to_string();
    let mut cells: Vec<[String; 9]> = vec![[
        "runtime".into(),
        "tier".into(),
        "req/s".into(),
        "req/cpu-s".into(),
        "p95 flow".into(),
        "p95 plateau".into(),
        "errors".into(),
        "peak rss".into(),
        "status".into(),
    ]];
    for r in rows {
        cells.push([
            r.runtime.clone(),
            r.tier.clone(),
            r.req_per_s.map_or_else(dash, |x| format!("{x:.1}")),
            r.req_per_cpu_s.map_or_else(dash, |x| format!("{x:.1}")),
            r.p95_flow_ms.map_or_else(dash, fmt_ms),
            r.p95_plateau_ms.map_or_else(dash, fmt_ms),
            r.errors.map_or_else(dash, |x| format!("{:.2}%", x * 100.0)),
            r.peak_rss.map_or_else(dash, |b| fmt_bytes(b as f64)),
            r.status.clone(),
        ]);
    }
    let widths: Vec<usize> = (0..9)
        .map(|i| {
            cells
                .iter()
                .map(|c| c[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for c in &cells {
        let line: Vec<String> = c
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{v:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_and_shows_missing_pairs() {
        let rows = vec![
            Row {
                runtime: "reference".into(),
                tier: "xs".into(),
                req_per_s: Some(120.04),
                req_per_cpu_s: Some(480.0),
                p95_flow_ms: Some(35.0),
                p95_plateau_ms: Some(30.0),
                errors: Some(0.0),
                peak_rss: Some(12 << 20),
                status: "ok".into(),
            },
            Row::missing("py", "m", "no summary (barrage run exited 1): x".into()),
        ];
        let t = render(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].starts_with("runtime    tier  req/s"), "{t}");
        assert!(
            lines[1].contains("120.0") && lines[1].contains("480.0"),
            "{t}"
        );
        assert!(lines[1].contains("0.00%"), "{t}");
        assert!(lines[1].contains("30.00ms"), "the plateau p95: {t}");
        assert!(lines[2].contains("no summary"), "{t}");
        assert!(rows[1].failed() && !rows[0].failed());
    }
}

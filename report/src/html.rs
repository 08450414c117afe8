//! `report.html`: one self-contained page (inline SVG charts, inline CSS, the animation as
//! a `data:` URI, no script, no network reference), so it opens offline and can be mailed
//! or attached to a CI run as one file.
//!
//! Sections: the runs' metadata (hardware, target, versions, scenario, plan), the figures
//! table (the numbers the charts show, to 3 decimals, equal to the summaries'), the
//! per-operation latencies, the thresholds of every run, the animation of a sweep, and
//! every chart of [`crate::charts::catalog::all`].
use crate::charts::catalog::NamedChart;
use crate::figures::ChartData;
use barrage_core::summary::Summary;
use base64::Engine as _;
use std::fmt::Write as _;

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A figure as the tables print it: the number as the summary stores it, `-` when absent.
pub fn num(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), |x| format!("{x}"))
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222;max-width:1100px}\
table{border-collapse:collapse;margin:1em 0;font-size:14px}\
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}\
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}\
.ok{color:#080}.fail{color:#b00;font-weight:bold}figure{margin:1.5em 0}\
figcaption{color:#555;font-size:13px}svg,img,video{max-width:100%;height:auto}\
pre{background:#f7f7f7;padding:8px;overflow:auto;font-size:12px}";

/// The page. `runs` pairs each summary with its name in `data`; `charts` are SVG strings in
/// the order of `named`; `gif` the animation's bytes for a sweep.
pub fn render(
    runs: &[(String, Summary)],
    data: &ChartData,
    named: &[NamedChart],
    svgs: &[String],
    gif: Option<&[u8]>,
) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>barrage report</title><style>{STYLE}</style></head><body>\n\
<h1>barrage report</h1>\n<p>{} run(s){}. {}</p>\n",
        runs.len(),
        if data.is_sweep() {
            ", a runtime × tier sweep"
        } else {
            ""
        },
        esc(&data.caption())
    );
    metadata(&mut h, runs);
    figures(&mut h, data);
    operations(&mut h, data);
    thresholds(&mut h, runs);
    if let Some(gif) = gif {
        let b64 = base64::engine::general_purpose::STANDARD.encode(gif);
        let _ = write!(
            h,
            "<h2>Tier by tier</h2>\n<figure><img alt=\"runtimes compared tier by tier\" \
src=\"data:image/gif;base64,{b64}\"><figcaption>Animated: bars grow tier by tier \
(also sweep.gif / sweep.mp4 beside this file).</figcaption></figure>\n"
        );
    }
    let _ = writeln!(h, "<h2>Charts</h2>");
    for (c, svg) in named.iter().zip(svgs) {
        // the SVG's own XML declaration is not allowed inside HTML
        let body = svg.trim_start();
        let body = match body.strip_prefix("<?xml") {
            Some(rest) => rest.split_once("?>").map_or(body, |(_, r)| r),
            None => body,
        };
        let _ = writeln!(
            h,
            "<figure id=\"{}\">{body}<figcaption>{} — {}</figcaption></figure>",
            esc(&c.file),
            esc(c.chart.title()),
            esc(c.chart.caption())
        );
    }
    h.push_str("</body></html>\n");
    h
}

fn metadata(h: &mut String, runs: &[(String, Summary)]) {
    let _ = writeln!(
        h,
        "<h2>Runs</h2>\n<table><tr><th>run</th><th>target</th><th>tier</th><th>hardware</th>\
<th>os</th><th>barrage</th><th>scenario</th><th>start</th><th>duration s</th><th>end</th>\
<th>exit</th></tr>"
    );
    for (name, s) in runs {
        let t = &s.target;
        let hw = &s.host;
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{} v{} (llm {}) {}</td><td>{}</td><td>{}, {} cores, {:.1} GiB RAM</td>\
<td>{} / {}</td><td>{} ({}, protocol {})</td><td>{}</td><td>{}</td><td class=\"n\">{}</td>\
<td>{}</td><td class=\"n\">{}</td></tr>",
            esc(name),
            esc(&t.runtime),
            esc(&t.version),
            esc(&t.llm),
            esc(&t.url),
            esc(t.tier.as_deref().unwrap_or("-")),
            esc(&hw.cpu_model),
            hw.cores,
            hw.ram_bytes as f64 / (1u64 << 30) as f64,
            esc(&hw.os),
            esc(&hw.kernel),
            esc(&s.barrage.version),
            esc(&s.barrage.git_sha),
            s.barrage.protocol,
            esc(&s.scenario),
            esc(&s.start),
            s.duration_s,
            esc(&s.result.end_reason),
            s.result.exit_code
        );
    }
    h.push_str("</table>\n");
    for (name, s) in runs {
        let plan = serde_json::to_string_pretty(&s.plan).unwrap_or_default();
        let _ = writeln!(
            h,
            "<details><summary>plan of {} (hash {})</summary><pre>{}</pre></details>",
            esc(name),
            esc(&s.plan_hash),
            esc(&plan)
        );
    }
}

fn figures(h: &mut String, d: &ChartData) {
    let _ = writeln!(
        h,
        "<h2>Figures</h2>\n<table id=\"figures\"><tr><th>run</th><th>runtime</th><th>tier</th>\
<th>req/s</th><th>req per CPU-s</th><th>errors %</th><th>req p50 ms</th><th>req p95 ms</th>\
<th>req p99 ms</th><th>flow p50 ms</th><th>flow p95 ms</th><th>flow p99 ms</th></tr>"
    );
    for r in &d.runs {
        let req = r.requests.as_ref();
        let flow = r.flow.as_ref();
        let cells = [
            num(r.requests_per_s),
            num(r.requests_per_cpu_s),
            num(r.error_rate.map(|e| (e * 100_000.0).round() / 1000.0)),
            num(req.map(|p| p.p50)),
            num(req.map(|p| p.p95)),
            num(req.map(|p| p.p99)),
            num(flow.map(|p| p.p50)),
            num(flow.map(|p| p.p95)),
            num(flow.map(|p| p.p99)),
        ];
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td>",
            esc(&r.name),
            esc(&r.runtime),
            esc(r.tier.as_deref().unwrap_or("-"))
        );
        for c in cells {
            let _ = write!(h, "<td class=\"n\">{c}</td>");
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
}

fn operations(h: &mut String, d: &ChartData) {
    if d.operations().is_empty() {
        return;
    }
    let _ = writeln!(
        h,
        "<h2>Latency per operation (ms, from the HDR histograms)</h2>\n<table id=\"operations\">\
<tr><th>run</th><th>operation</th><th>count</th><th>p50</th><th>p95</th><th>p99</th></tr>"
    );
    for r in &d.runs {
        for (op, p) in &r.operations {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
<td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                esc(&r.name),
                esc(op),
                p.count,
                p.p50,
                p.p95,
                p.p99
            );
        }
    }
    h.push_str("</table>\n");
}

fn thresholds(h: &mut String, runs: &[(String, Summary)]) {
    let _ = writeln!(
        h,
        "<h2>Thresholds</h2>\n<table id=\"thresholds\"><tr><th>run</th><th>metric</th>\
<th>threshold</th><th>observed</th><th>result</th></tr>"
    );
    for (name, s) in runs {
        for t in &s.thresholds {
            let (class, word) = if t.ok {
                ("ok", "✓ pass")
            } else {
                ("fail", "✗ fail")
            };
            let observed = t
                .observed
                .map_or_else(|| "no data".into(), |x| format!("{x}"));
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td>\
<td class=\"{class}\">{word}</td></tr>",
                esc(name),
                esc(&t.metric),
                esc(&t.threshold),
                esc(&observed)
            );
        }
    }
    h.push_str("</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(num(None), "-");
        assert_eq!(num(Some(12.345)), "12.345");
    }
}

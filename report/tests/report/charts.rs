//! The report of a sweep and of one run: the figures behind the charts equal the
//! summaries', the HTML is self-contained, the GIF has one held frame per tier step.
use crate::synth::Synth;
use barrage_report::animation::{Animation, GROWTH_FRAMES, STEP_DELAY_CS};
use barrage_report::charts::catalog::{self, Pct};
use barrage_report::write::read_summaries;
use barrage_report::{write_report, ChartData};
use std::path::PathBuf;

/// A 2 runtimes × 3 tiers sweep: `python` is slower, bigger tiers serve more.
fn sweep(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for (ri, runtime) in ["ts", "python"].into_iter().enumerate() {
        for (ti, tier) in ["xs", "m", "l"].into_iter().enumerate() {
            let s = Synth {
                runtime,
                tier: Some(tier),
                seed: (ri * 10 + ti) as u64,
                intervals: 8,
                flows_per_interval: 10 * (ti as u32 + 1),
                latency_factor: 1.0 + ri as f64,
                fail_share: 0.01 * ri as f64,
            };
            paths.push(s.write(dir, &format!("{runtime}-{tier}")));
        }
    }
    paths
}

#[test]
fn chart_figures_equal_the_summaries() {
    let dir = tempfile::tempdir().unwrap();
    let runs = read_summaries(&sweep(dir.path())).unwrap();
    let data = ChartData::from_summaries(&runs).unwrap();
    assert!(data.is_sweep());
    assert_eq!(data.tiers(), vec!["xs", "m", "l"]);
    assert_eq!(data.runtimes(), vec!["ts", "python"]);
    let thr = catalog::throughput(&data);
    assert_eq!(thr.title, "Throughput by tier (req/s)");
    assert_eq!(thr.groups, vec!["xs", "m", "l"]);
    let p95 = catalog::latency(&data, Pct::P95);
    assert_eq!(p95.title, "Request latency p95 by tier (ms)");
    for (name, s) in &runs {
        let rt = &s.target.runtime;
        let tier = s.target.tier.as_deref().unwrap();
        let ri = data.runtimes().iter().position(|r| r == rt).unwrap();
        let ti = data.tiers().iter().position(|t| t == tier).unwrap();
        let want_rps = s.metric("http_reqs").unwrap().stat("rate").unwrap();
        assert_eq!(thr.series[ri].values[ti], Some(want_rps), "{name} req/s");
        let want_p95 = s.metric("http_req_duration").unwrap().stat("p95").unwrap();
        assert_eq!(p95.series[ri].values[ti], Some(want_p95), "{name} p95");
        let run = data.find(rt, tier).unwrap();
        for (op, p) in &run.operations {
            let m = s
                .metric(&format!("http_req_duration{{operation:{op}}}"))
                .unwrap();
            assert_eq!(Some(p.p50), m.stat("med"), "{name} {op} p50");
            assert_eq!(Some(p.p99), m.stat("p99"), "{name} {op} p99");
        }
        assert!(run.hardware.contains("Synthetic CPU 9000, 2 cores"));
    }
    assert!(
        thr.caption.contains("Synthetic CPU 9000, 2 cores"),
        "{}",
        thr.caption
    );
    assert!(thr.caption.contains("tiers xs, m, l"), "{}", thr.caption);
}

#[test]
fn sweep_report_is_self_contained_with_an_animation() {
    let dir = tempfile::tempdir().unwrap();
    let runs = read_summaries(&sweep(dir.path())).unwrap();
    let out = dir.path().join("report");
    let files = write_report(&runs, &out).unwrap();
    let html = std::fs::read_to_string(&files.html).unwrap();
    for attr in [
        "src=\"http",
        "href=\"http",
        "src='http",
        "href='http",
        "url(http",
        "@import",
    ] {
        assert!(
            !html.contains(attr),
            "network reference {attr} in report.html"
        );
    }
    assert!(!html.contains("<script"), "the report needs no script");
    // the figures table carries each run's numbers as the summary stores them
    let table = html.split("<table id=\"figures\">").nth(1).unwrap();
    let table = table.split("</table>").next().unwrap();
    for (name, s) in &runs {
        let rps = s.metric("http_reqs").unwrap().stat("rate").unwrap();
        let p95 = s.metric("http_req_duration").unwrap().stat("p95").unwrap();
        let row = table
            .lines()
            .find(|l| l.starts_with(&format!("<tr><td>{name}</td><td>")))
            .unwrap_or_else(|| panic!("no figures row for {name}"));
        assert!(
            row.contains(&format!(">{rps}<")),
            "{name}: {rps} not in {row}"
        );
        assert!(
            row.contains(&format!(">{p95}<")),
            "{name}: {p95} not in {row}"
        );
    }
    assert!(html.contains("Throughput by tier (req/s)"));
    assert!(html.contains("<svg"));
    assert!(html.contains("data:image/gif;base64,"));
    // a PNG per chart
    assert!(files.pngs.iter().any(|p| p.ends_with("throughput.png")));
    for p in &files.pngs {
        let bytes = std::fs::read(p).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", p.display());
    }
    // the GIF decodes; GROWTH_FRAMES frames per tier step, one held frame per step
    let gif_path = files.gif.expect("a sweep has an animation");
    let mut opts = gif::DecodeOptions::new();
    opts.set_color_output(gif::ColorOutput::RGBA);
    let mut dec = opts
        .read_info(std::fs::File::open(&gif_path).unwrap())
        .unwrap();
    let mut frames = 0;
    let mut held = 0;
    while let Some(f) = dec.read_next_frame().unwrap() {
        frames += 1;
        if f.delay >= STEP_DELAY_CS {
            held += 1;
        }
        assert_eq!((f.width, f.height), (1280, 720));
    }
    assert_eq!(frames, 3 * GROWTH_FRAMES);
    assert_eq!(held, 3, "one held frame per tier step");
}

#[test]
fn animation_frames_name_their_tier_and_keep_titles() {
    let dir = tempfile::tempdir().unwrap();
    let runs = read_summaries(&sweep(dir.path())).unwrap();
    let data = ChartData::from_summaries(&runs).unwrap();
    let anim = Animation::of(&data).unwrap();
    let titles: Vec<&str> = anim.panels.iter().map(|p| p.title.as_str()).collect();
    assert_eq!(
        titles,
        [
            "Throughput by tier (req/s)",
            "Request latency p95 by tier (ms)",
            "Request latency p99 by tier (ms)",
            "Error rate by tier (% failed)"
        ]
    );
    let steps: Vec<&str> = anim
        .frames
        .iter()
        .filter(|f| f.delay_cs >= STEP_DELAY_CS)
        .map(|f| f.subtitle.as_str())
        .collect();
    assert_eq!(
        steps,
        ["tier xs (1 of 3)", "tier m (2 of 3)", "tier l (3 of 3)"]
    );
    assert_eq!(anim.frames.last().unwrap().shown, 3.0);
    // growth frames grow
    assert!(anim.frames.windows(2).all(|w| w[0].shown < w[1].shown));
}

#[test]
fn one_run_report_has_time_series_and_no_animation() {
    let dir = tempfile::tempdir().unwrap();
    let path = Synth::default().write(dir.path(), "ts-v0.1.0-mock-5vu");
    let runs = read_summaries(&[path]).unwrap();
    let files = write_report(&runs, &dir.path().join("out")).unwrap();
    assert!(files.gif.is_none());
    let names: Vec<String> = files
        .pngs
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in [
        "throughput.png",
        "error-rate.png",
        "latency-p95.png",
        "operations-p99.png",
        "spectrum-http_req_duration.png",
        "timeseries-ts-v0.1.0-mock-5vu-rps.png",
        "timeseries-ts-v0.1.0-mock-5vu-vus.png",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    let data = ChartData::from_summaries(&runs).unwrap();
    let series = catalog::timeseries(&data.runs[0]);
    let (_, rps) = series.iter().find(|(k, _)| k == "rps").unwrap();
    assert_eq!(rps.title, "Throughput — ts-v0.1.0-mock-5vu (req/s)");
    // per-interval req/s times the interval add up to the run's requests
    let total: f64 = rps.series[0].points.iter().filter_map(|p| p.1).sum();
    let count = runs[0].1.metric("http_reqs").unwrap().count();
    assert_eq!(total, count);
}

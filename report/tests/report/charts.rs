//! The report of a sweep and of one run: the figures behind the charts equal the
//! summaries', the HTML is self-contained, the GIF has one held frame per tier step.
use crate::synth::Synth;
use barrage_core::telemetry::TargetPoint;
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
                flows_at: None,
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
    // each interval a step over its second; req/s times the time add up to the requests
    let pts = &rps.series[0].points;
    assert_eq!(pts.len(), 2 * 30);
    assert_eq!((pts[0].0, pts[59].0), (0.0, 30.0));
    let total: f64 = pts
        .chunks(2)
        .map(|s| s[0].1.unwrap() * (s[1].0 - s[0].0))
        .sum();
    let count = runs[0].1.metric("http_reqs").unwrap().count();
    assert_eq!(total, count);
}

#[test]
fn target_telemetry_adds_efficiency_and_resource_charts() {
    let dir = tempfile::tempdir().unwrap();
    let paths = sweep(dir.path());
    let runs = read_summaries(&paths).unwrap();
    let mut data = ChartData::from_summaries(&runs).unwrap();
    assert!(
        catalog::per_cpu_second(&data).is_none(),
        "no telemetry, no chart"
    );
    for (i, r) in data.runs.iter_mut().enumerate() {
        let points: Vec<TargetPoint> = (0..8)
            .map(|q| TargetPoint {
                seq: q,
                span: 1,
                cpu_pct: 50.0 + q as f64,
                rss_bytes: (100 + q) << 20,
                fds: 10,
            })
            .collect();
        r.set_target(Some(100.0 + i as f64), &points);
    }
    let eff = catalog::per_cpu_second(&data).unwrap();
    assert_eq!(eff.title, "Efficiency by tier (req per CPU-s)");
    let ti = data.tiers().iter().position(|t| t == "m").unwrap();
    let want = data.find("python", "m").unwrap().requests_per_cpu_s;
    assert_eq!(eff.series[1].values[ti], want);
    let r = &data.runs[0];
    let charts = catalog::timeseries(r);
    let (_, cpu) = charts
        .iter()
        .find(|(k, _)| k == "cpu")
        .expect("a CPU chart");
    let (_, rss) = charts
        .iter()
        .find(|(k, _)| k == "rss")
        .expect("a memory chart");
    assert_eq!(cpu.title, format!("Target CPU — {} (% of a core)", r.name));
    // interval seq 3 is the step from 3 s to 4 s: 53 % and 103 MiB
    assert_eq!(
        cpu.series[0].points[6..8],
        [(3.0, Some(53.0)), (4.0, Some(53.0))]
    );
    assert_eq!(rss.series[0].points[7], (4.0, Some(103.0)));
    // the target's points merged apart from the time series' rows: a row reads the mean
    // of what overlaps it, weighted by the intervals they share
    let mut r = data.runs[0].clone();
    let merged = [
        TargetPoint {
            seq: 0,
            span: 4,
            cpu_pct: 10.0,
            rss_bytes: 4 << 20,
            fds: 1,
        },
        TargetPoint {
            seq: 4,
            span: 2,
            cpu_pct: 40.0,
            rss_bytes: 8 << 20,
            fds: 1,
        },
    ];
    r.set_target(None, &merged);
    let cpu = r.series.cpu_pct.clone().unwrap();
    assert_eq!(
        cpu[..6],
        [
            Some(10.0),
            Some(10.0),
            Some(10.0),
            Some(10.0),
            Some(40.0),
            Some(40.0)
        ]
    );
    assert_eq!(
        cpu[6..],
        [None, None],
        "intervals without a reading are gaps"
    );
    r.series.rows[1].end_seq = 6; // one row over intervals 1..6: (3 × 10 + 2 × 40) / 5
    r.set_target(None, &merged);
    assert_eq!(r.series.cpu_pct.unwrap()[1], Some(22.0));
    let files = barrage_report::charts::catalog::all(&data);
    assert!(files.iter().any(|c| c.file == "requests-per-cpu-second"));
}

#[test]
fn sweep_mp4_has_every_frame_for_its_delay() {
    let ffmpeg = std::process::Command::new("ffprobe")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
        .then_some(());
    let Some(()) = barrage_testkit::require(
        "charts::sweep_mp4_has_every_frame_for_its_delay",
        "ffmpeg and ffprobe",
        ffmpeg,
        "apt-get install -y ffmpeg",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let runs = read_summaries(&sweep(dir.path())).unwrap();
    let files = write_report(&runs, &dir.path().join("out")).unwrap();
    let mp4 = files.mp4.expect("ffmpeg is installed: an MP4");
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_frames"])
        .args([
            "-show_entries",
            "stream=nb_read_frames,width,height,codec_name",
            "-of",
            "json",
        ])
        .arg(&mp4)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v["streams"][0];
    assert_eq!(s["codec_name"], "h264");
    assert_eq!(
        (s["width"].as_u64(), s["height"].as_u64()),
        (Some(1280), Some(720))
    );
    let data = ChartData::from_summaries(&runs).unwrap();
    let anim = Animation::of(&data).unwrap();
    let want: u32 = anim
        .frames
        .iter()
        .map(|f| barrage_report::animation::mp4_repeats(f.delay_cs))
        .sum();
    assert_eq!(
        s["nb_read_frames"].as_str(),
        Some(want.to_string().as_str())
    );
}

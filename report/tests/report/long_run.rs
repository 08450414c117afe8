//! A run long enough for the time series to downsample (6 h 10 min of 1 s intervals pushed
//! through the real series: 1 min rows, then 10 s rows, then the last hour one row per
//! interval): the charts put every row over the time it covers at its own rate, `compare`
//! weighs rows by their time, and `report.html` draws the whole run in a browser.
use crate::synth::{Synth, OPS};
use barrage_core::timeseries::{TimeSeries, TimeSeriesDoc};
use barrage_report::charts::catalog;
use barrage_report::compare::{compare, Budgets};
use barrage_report::input::Measured;
use barrage_report::stats::DEFAULT_SEED;
use barrage_report::write::read_summaries;
use barrage_report::{write_report, ChartData};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// 6 h 10 min of 1 s intervals: rows of 60, 10 and 1 intervals.
const INTERVALS: u64 = 6 * 3600 + 600;

/// Flows in interval `seq`: 1 to 4, changing every hour (so a merged row's rate is known,
/// and a row drawn at the wrong time shows another hour's rate).
fn flows(seq: u64) -> u32 {
    1 + ((seq / 3600) % 4) as u32
}

/// Requests per second over intervals `a..b`.
fn rate(a: u64, b: u64) -> f64 {
    let reqs: u64 = (a..b).map(|q| u64::from(flows(q)) * OPS.len() as u64).sum();
    reqs as f64 / (b - a) as f64
}

fn long_run(dir: &Path, name: &str, intervals: u64) -> PathBuf {
    Synth {
        intervals,
        flows_at: Some(flows),
        ..Synth::default()
    }
    .write(dir, name)
}

/// The 6 h 10 min run's summary, made once for the tests that read it (in the target's
/// test folder, rewritten by every test run).
fn soak() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-long-run");
        std::fs::create_dir_all(&dir).unwrap();
        long_run(&dir, "soak", INTERVALS)
    })
}

fn spans(doc: &TimeSeriesDoc) -> Vec<(u64, u64)> {
    TimeSeries::from_doc(doc)
        .points
        .iter()
        .map(|p| (u64::from(p.seq), u64::from(p.span)))
        .collect()
}

#[test]
fn merged_rows_are_charted_over_their_time_at_their_rate() {
    let runs = read_summaries(&[soak().to_path_buf()]).unwrap();
    let summary = &runs[0].1;
    let rows = spans(&summary.timeseries);
    // the real downsampling: 10 rows of 1 min, 1800 of 10 s, the last hour one per second
    assert_eq!(rows.iter().filter(|r| r.1 == 60).count(), 10);
    assert_eq!(rows.iter().filter(|r| r.1 == 10).count(), 1800);
    assert_eq!(rows.iter().filter(|r| r.1 == 1).count(), 3600);
    assert_eq!(rows.last(), Some(&(INTERVALS - 1, 1)));

    let data = ChartData::from_summaries(&runs).unwrap();
    let s = &data.runs[0].series;
    assert_eq!(s.rows.len(), rows.len());
    for (i, (row, &(seq, span))) in s.rows.iter().zip(&rows).enumerate() {
        // 1 s intervals: a row is seconds seq..seq+span
        assert_eq!(
            (row.start_s, row.end_s),
            (seq as f64, (seq + span) as f64),
            "row {i}"
        );
        let want = rate(seq, seq + span);
        let got = s.requests_per_s[i].unwrap();
        assert!(
            (got - want).abs() < 1e-9,
            "row {i} ({seq}+{span}): {got} req/s, want {want}"
        );
    }

    let charts = catalog::timeseries(&data.runs[0]);
    let chart = |what: &str| &charts.iter().find(|(k, _)| k == what).unwrap().1;
    let rps = &chart("rps").series[0].points;
    // the time axis runs over the whole run: 0 to its last second
    assert_eq!(rps.first().map(|p| p.0), Some(0.0));
    assert_eq!(rps.last().map(|p| p.0), Some(INTERVALS as f64));
    // every row a step at its rate; rate × time of the steps is the run's requests
    assert_eq!(
        rps.len(),
        2 * rows.len(),
        "no gap in a run without missing data"
    );
    let mut requests = 0.0;
    for step in rps.chunks(2) {
        let ((x0, y0), (x1, y1)) = (step[0], step[1]);
        assert_eq!(y0, y1, "a row holds its value over its span");
        let want = rate(x0 as u64, x1 as u64);
        assert!(
            (y0.unwrap() - want).abs() < 1e-9,
            "{x0}..{x1}: {y0:?} vs {want}"
        );
        requests += y0.unwrap() * (x1 - x0);
    }
    let count = summary.metric("http_reqs").unwrap().count();
    assert!((requests - count).abs() < 1e-6, "{requests} vs {count}");
    // no merged row reads as more than the busiest hour (4 flows × 5 requests per second)
    let top = rps.iter().filter_map(|p| p.1).fold(0.0, f64::max);
    assert_eq!(top, 4.0 * OPS.len() as f64);

    // a percentile row is a step over its span, at the row's stored value
    let p95 = &chart("p95").series[0].points;
    let stored = summary.timeseries.column("req_p95_ms").unwrap();
    for (i, &(seq, span)) in rows.iter().enumerate() {
        assert_eq!(p95[2 * i], (seq as f64, stored[i]));
        assert_eq!(p95[2 * i + 1], ((seq + span) as f64, stored[i]));
    }
}

#[test]
fn compare_weighs_merged_rows_by_their_time() {
    let dir = tempfile::tempdir().unwrap();
    // 1 h 10 min: 10 s rows, then the last hour
    let path = long_run(dir.path(), "a", 4200);
    let runs = read_summaries(std::slice::from_ref(&path)).unwrap();
    assert!(spans(&runs[0].1.timeseries).iter().any(|r| r.1 == 10));
    let m = Measured::read_all(std::slice::from_ref(&path)).unwrap();
    let seconds: f64 = m.intervals.iter().map(|i| i.seconds).sum();
    assert_eq!(seconds, 4200.0, "the rows cover the run");
    let c = compare(&m, &m, &Budgets::default(), DEFAULT_SEED);
    assert_eq!(c.regressions, 0, "{}", c.markdown());
    let thr = c.changes.iter().find(|c| c.metric == "http_reqs").unwrap();
    // the throughput compared is the run's own: requests over its time
    let want = runs[0].1.metric("http_reqs").unwrap().stat("rate").unwrap();
    assert_eq!(thr.baseline, want, "{}", c.markdown());
    assert!((want - rate(0, 4200)).abs() < 1e-3);
}

/// The numbers of the x-axis (centred under their ticks) and of the y-axis (right-aligned
/// beside them) of one chart's SVG, as the browser has it.
fn axis_labels(svg: &str) -> (Vec<f64>, Vec<f64>) {
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for el in svg.split("<text").skip(1) {
        let Some((attrs, rest)) = el.split_once('>') else {
            continue;
        };
        let Some(v) = rest
            .split('<')
            .next()
            .and_then(|t| t.trim().parse::<f64>().ok())
        else {
            continue;
        };
        if attrs.contains("text-anchor=\"middle\"") {
            xs.push(v);
        } else if attrs.contains("text-anchor=\"end\"") {
            ys.push(v);
        }
    }
    (xs, ys)
}

#[test]
fn report_html_draws_the_whole_long_run_in_a_browser() {
    let Some(chromium) = barrage_testkit::require(
        "long_run::report_html_draws_the_whole_long_run_in_a_browser",
        "chromium",
        barrage_testkit::chromium(),
        "apt-get install -y chromium",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let runs = read_summaries(&[soak().to_path_buf()]).unwrap();
    let out = dir.path().join("report");
    let files = write_report(&runs, &out).unwrap();
    let o = Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--proxy-server=127.0.0.1:9",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--dump-dom",
        ])
        .arg(format!("file://{}", files.html.display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let dom = String::from_utf8_lossy(&o.stdout);
    let figure = |id: &str| -> String {
        let start = dom
            .find(&format!("<figure id=\"{id}\">"))
            .unwrap_or_else(|| panic!("no figure {id} in the rendered page"));
        let rest = &dom[start..];
        rest[..rest.find("</figure>").unwrap()].to_string()
    };
    let (xs, ys) = axis_labels(&figure("timeseries-soak-rps"));
    // the time axis covers the run (6 h 10 min = 22,200 s), not only its last hour
    let last = xs.iter().copied().fold(f64::NAN, f64::max);
    let first = xs.iter().copied().fold(f64::NAN, f64::min);
    assert!(
        first <= 0.0 && last >= 0.9 * INTERVALS as f64,
        "x labels {xs:?}"
    );
    assert!(last <= INTERVALS as f64, "x labels {xs:?}");
    // and the throughput axis ends near the busiest hour's 20 req/s (a merged row read as
    // one interval would push it to 60 × that)
    let top = ys.iter().copied().fold(f64::NAN, f64::max);
    assert!((20.0..=25.0).contains(&top), "y labels {ys:?}");
    let (xs, _) = axis_labels(&figure("timeseries-soak-p95"));
    assert!(
        xs.iter().any(|x| *x >= 0.9 * INTERVALS as f64),
        "x labels {xs:?}"
    );
}

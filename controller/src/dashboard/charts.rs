//! The live charts: the report's own charts (`barrage_report::charts`), drawn server-side
//! as SVG from live data instead of a summary, so the dashboard and `barrage report` show
//! the same charts with the same titles, units and captions. The page reloads them when an
//! interval closes; a browser needs no chart library and the page no network.
//!
//! | chart                              | report function                    | live data                         |
//! |------------------------------------|------------------------------------|-----------------------------------|
//! | `vus`, `rps`, `p95`, `errors` (`cpu`, `rss` with telemetry) | `catalog::timeseries` | the last rows of the time series ([`LiveState::recent`]), each a step over its span |
//! | `operations-p95`                   | `catalog::latency_per_operation`   | merged HDR per operation, run so far |
//! | `spectrum-http_req_duration`, `spectrum-agent_flow_duration` | `catalog::spectrum` | the merged HDR histograms' spectra |
use super::state::{LiveState, TargetLoad, QUANTILES};
use barrage_core::metrics::builtin;
use barrage_report::charts::catalog::{self, Pct};
use barrage_report::charts::render::Chart;
use barrage_report::figures::{ChartData, Percentiles, RunFigures, SeriesFigures};

/// Size of a live chart, pixels (smaller than the report's: several sit side by side).
pub const SIZE: (u32, u32) = (720, 360);

/// The percentiles the report's charts read, from a live latency.
fn percentiles(l: &super::Latency) -> Option<Percentiles> {
    let at = |q: f64| {
        QUANTILES
            .iter()
            .position(|x| *x == q)
            .and_then(|i| l.quantiles_ms.get(i).copied())
    };
    (l.count > 0).then(|| Percentiles {
        count: l.count,
        p50: at(0.5).unwrap_or(f64::NAN),
        p95: at(0.95).unwrap_or(f64::NAN),
        p99: at(0.99).unwrap_or(f64::NAN),
    })
}

/// One figure of the target per row, when any row has a reading.
fn measured(
    loads: &[Option<TargetLoad>],
    f: impl Fn(&TargetLoad) -> f64,
) -> Option<Vec<Option<f64>>> {
    loads
        .iter()
        .any(Option::is_some)
        .then(|| loads.iter().map(|l| l.as_ref().map(&f)).collect())
}

/// The run's figures as the report's charts take them, from the live state.
pub fn figures(s: &LiveState) -> RunFigures {
    let interval_ms = s.run.interval_ms.min(u64::from(u32::MAX)) as u32;
    let is_whole = |name: &str| {
        [
            builtin::HTTP_REQ_DURATION,
            builtin::AGENT_FLOW_DURATION,
            builtin::ITERATION_DURATION,
        ]
        .contains(&name)
    };
    // the flow's order first, as the report lists operations
    let mut operations: Vec<(String, Percentiles)> = s
        .latency
        .iter()
        .filter(|l| !is_whole(&l.name))
        .filter_map(|l| percentiles(l).map(|p| (l.name.clone(), p)))
        .collect();
    operations.sort_by_key(|(op, _)| {
        builtin::OPERATIONS
            .iter()
            .position(|o| o == op)
            .unwrap_or(usize::MAX)
    });
    let secs = s.elapsed_s.max(1e-3);
    RunFigures {
        name: s.run.name.clone(),
        runtime: s.run.runtime.clone(),
        version: s.run.version.clone(),
        tier: s.run.tier.clone(),
        hardware: s.run.hardware.clone(),
        duration_s: s.elapsed_s,
        requests_per_s: (s.totals.requests > 0).then(|| s.totals.requests as f64 / secs),
        requests_per_cpu_s: None,
        error_rate: (s.totals.requests > 0)
            .then(|| s.totals.failed_requests as f64 / s.totals.requests as f64),
        requests: s.latency(builtin::HTTP_REQ_DURATION).and_then(percentiles),
        flow: s
            .latency(builtin::AGENT_FLOW_DURATION)
            .and_then(percentiles),
        operations,
        // the report's own reading of rows: times and rates over each row's span
        series: SeriesFigures {
            cpu_pct: measured(&s.target_recent, |t| t.cpu_pct),
            rss_mib: measured(&s.target_recent, |t| t.rss_bytes as f64 / (1024.0 * 1024.0)),
            ..SeriesFigures::from_points(&s.recent, interval_ms)
        },
        spectra: s.spectra.as_ref().clone(),
    }
}

/// Every chart of the live state, named as the page asks for them.
pub fn all(s: &LiveState) -> Vec<(String, Chart)> {
    let run = figures(s);
    let mut out: Vec<(String, Chart)> = catalog::timeseries(&run)
        .into_iter()
        .map(|(name, c)| (name, Chart::Lines(c)))
        .collect();
    let data = ChartData { runs: vec![run] };
    if !data.operations().is_empty() {
        out.push((
            "operations-p95".into(),
            Chart::Bars(catalog::latency_per_operation(&data, Pct::P95)),
        ));
    }
    for metric in [builtin::HTTP_REQ_DURATION, builtin::AGENT_FLOW_DURATION] {
        if let Some(c) = catalog::spectrum(&data, metric) {
            out.push((format!("spectrum-{metric}"), Chart::Spectrum(c)));
        }
    }
    out
}

/// The names of the charts the state can draw now, in page order.
pub fn names(s: &LiveState) -> Vec<String> {
    all(s).into_iter().map(|(n, _)| n).collect()
}

/// The chart `name` of `state` as SVG; `None` for a chart it cannot draw (unknown name,
/// or no data of that kind yet).
pub fn render(name: &str, state: &LiveState) -> Option<Result<String, String>> {
    let (_, chart) = all(state).into_iter().find(|(n, _)| n == name)?;
    Some(chart.svg(SIZE).map_err(|e| e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::super::state::{latencies, tests_support::merged, totals, LiveState, RunInfo};
    use super::*;
    use crate::timeseries::TimePoint;
    use std::sync::Arc;

    #[test]
    fn the_report_charts_draw_from_live_data() {
        let total = merged();
        let mut s = LiveState::new(RunInfo {
            name: "live".into(),
            runtime: "ts".into(),
            interval_ms: 1000,
            hardware: "Test CPU, 2 cores".into(),
            ..RunInfo::default()
        });
        s.elapsed_s = 3.0;
        s.totals = totals(&total, 0);
        s.latency = latencies(&total, None);
        s.spectra = Arc::new(super::super::state::spectra(&total));
        s.recent = Arc::new(vec![
            TimePoint::from_interval(0, &total, 1),
            TimePoint::from_interval(1, &total, 1),
        ]);
        let names = names(&s);
        assert_eq!(
            names,
            [
                "vus",
                "rps",
                "p95",
                "errors",
                "operations-p95",
                "spectrum-http_req_duration"
            ]
        );
        let run = figures(&s);
        // the same figures the page shows: 200 requests over 3 s, 4 failed
        assert_eq!(run.requests_per_s, Some(200.0 / 3.0));
        assert_eq!(run.error_rate, Some(0.02));
        let rw = run
            .operations
            .iter()
            .find(|(o, _)| o == "run_wait")
            .unwrap();
        assert_eq!(rw.1.count, 100);
        assert_eq!(run.series.requests_per_s, vec![Some(200.0), Some(200.0)]);
        for n in &names {
            let svg = render(n, &s).unwrap().unwrap();
            assert!(svg.contains("<svg"), "{n}");
            assert!(
                svg.contains("Test CPU, 2 cores"),
                "{n}: caption with the hardware"
            );
        }
        assert!(render("nope", &s).is_none());
    }

    #[test]
    fn before_the_first_interval_only_the_time_series_exist() {
        let s = LiveState::new(RunInfo::default());
        assert_eq!(names(&s), ["vus", "rps", "p95", "errors"]);
        assert!(render("vus", &s).unwrap().is_ok());
    }
}

//! Trend verdicts for soak runs: does a figure drift with time once the run has warmed up?
//! A leak (memory, file descriptors, latency that creeps up) shows as a slope whose 95 %
//! confidence interval excludes zero; a flat figure's interval straddles zero.
//!
//! ```text
//! rows after warm-up ─► (hours since start, value) ─► fit: least-squares slope
//!                                                       ± t(0.975, n−2) · HAC standard error
//! ```
//!
//! | trend                    | from                                        | slope unit  |
//! |--------------------------|---------------------------------------------|-------------|
//! | `http_req_duration:p99`  | the time series' `req_p99_ms`               | ms/h        |
//! | `http_req_failed:rate`   | the time series' `failures / requests`      | 1/h (share) |
//! | `target_rss`             | target telemetry, resident memory           | bytes/h     |
//! | `target_cpu_per_request` | target CPU seconds ÷ requests, per row      | s/h         |
//! | `target_fds`             | target telemetry, open file descriptors     | fds/h       |
//!
//! Why a HAC (Newey–West) standard error and not the textbook one: consecutive intervals of
//! a run are correlated (a GC pause spans two), and the textbook interval, which assumes
//! independent residuals, is then too narrow and calls noise a leak. Newey–West widens it by
//! the residuals' own autocorrelation (Bartlett weights, `L = ⌊4·(n/100)^(2/9)⌋` lags).
//! A step (memory that grows once, after warm-up, and stays) is still a significant slope:
//! choose a warm-up that covers start-up. Downsampled rows (see
//! [`crate::timeseries`]) enter at their midpoint with their (approximate) merged value.
use crate::telemetry::TargetSummary;
use crate::timeseries::TimeSeries;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

mod resources;
pub use resources::{ResourceCheck, ResourceCounts};

/// Trends need at least this many points after warm-up (fewer: no verdict).
pub const MIN_POINTS: usize = 8;

/// A least-squares line through `(x, y)` points with its slope's 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    pub n: usize,
    pub slope: f64,
    pub intercept: f64,
    /// Mean of the `y` values.
    pub mean: f64,
    /// 95 % confidence interval of the slope.
    pub low: f64,
    pub high: f64,
}

/// Two-sided 97.5 % quantile of Student's t with `df` degrees of freedom (Cornish–Fisher
/// expansion around the normal quantile; within 1 % of the exact value from 3 df up).
pub fn t975(df: f64) -> f64 {
    let z: f64 = 1.959_963_984_540_054;
    let (z3, z5, z7) = (z.powi(3), z.powi(5), z.powi(7));
    z + (z3 + z) / (4.0 * df)
        + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * df * df)
        + (3.0 * z7 + 19.0 * z5 + 17.0 * z3 - 15.0 * z) / (384.0 * df.powi(3))
}

/// The least-squares fit of `points` (non-finite ones skipped) with a Newey–West 95 %
/// interval; `None` with fewer than [`MIN_POINTS`] points or no spread in `x`.
pub fn fit(points: &[(f64, f64)]) -> Option<Fit> {
    let pts: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let n = pts.len();
    if n < MIN_POINTS {
        return None;
    }
    let nf = n as f64;
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / nf;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / nf;
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    // u_i = (x_i − x̄)·e_i; Var(b) = [Σu² + 2 Σ_l w_l Σ u_i u_{i−l}] / Sxx²
    let u: Vec<f64> = pts
        .iter()
        .map(|&(x, y)| (x - mx) * (y - intercept - slope * x))
        .collect();
    let lags = (4.0 * (nf / 100.0).powf(2.0 / 9.0)).floor() as usize;
    let mut s = u.iter().map(|v| v * v).sum::<f64>();
    for l in 1..=lags.min(n - 1) {
        let w = 1.0 - l as f64 / (lags as f64 + 1.0);
        let c: f64 = (l..n).map(|i| u[i] * u[i - l]).sum();
        s += 2.0 * w * c;
    }
    // small-sample correction n/(n−2), as for the textbook variance
    let var = (s.max(0.0) / (sxx * sxx)) * nf / (nf - 2.0);
    let half = t975(nf - 2.0) * var.sqrt();
    Some(Fit {
        n,
        slope,
        intercept,
        mean: my,
        low: slope - half,
        high: slope + half,
    })
}

/// What a slope says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// The interval excludes zero on the rising side, and the fitted drift over the window
    /// is at least [`MIN_DRIFT`] of the mean: a leak for memory, fds, latency.
    Rising,
    /// The interval excludes zero on the falling side (and the drift is as large).
    Falling,
    /// The interval holds zero, or the drift over the window is under [`MIN_DRIFT`] of the
    /// mean: nothing the data can tell from noise, or too small to matter (a process
    /// settling its allocator while it warms up).
    Flat,
}

/// One trend of the summary's `trends` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrendResult {
    /// `http_req_duration:p99`, `http_req_failed:rate`, `target_rss`,
    /// `target_cpu_per_request`, `target_fds` (the module table of `core/src/trend.rs`).
    pub name: String,
    /// Unit of the values; slopes are per hour of it.
    pub unit: String,
    /// Points fitted (after warm-up).
    pub points: u32,
    /// Mean of the fitted values.
    pub mean: f64,
    /// Least-squares slope, `unit` per hour.
    pub slope_per_h: f64,
    /// 95 % confidence interval of the slope (Newey–West), `unit` per hour.
    pub ci95_low_per_h: f64,
    pub ci95_high_per_h: f64,
    /// The slope as % of the mean per hour; `None` when the mean is 0.
    pub slope_pct_per_h: Option<f64>,
    pub direction: Direction,
}

/// The summary's `trends` section (soak runs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Trends {
    /// Seconds from the run's start excluded from the fits.
    pub warmup_s: f64,
    /// One per figure that had enough points.
    pub items: Vec<TrendResult>,
    /// The target's agent resources at the start and the end, when it exposes counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceCheck>,
}

impl Trends {
    /// The trend named `name`, if it had enough points.
    pub fn get(&self, name: &str) -> Option<&TrendResult> {
        self.items.iter().find(|t| t.name == name)
    }
}

fn sig(x: f64) -> f64 {
    // 6 significant digits: enough for any threshold, stable in the file
    if x == 0.0 || !x.is_finite() {
        return if x.is_finite() { 0.0 } else { f64::NAN };
    }
    let scale = 10f64.powi(5 - x.abs().log10().floor() as i32);
    (x * scale).round() / scale
}

/// The least drift over the fitted window, as a share of the mean, for a trend to count as
/// rising or falling (besides its interval excluding zero).
pub const MIN_DRIFT: f64 = 0.01;

fn result(name: &str, unit: &str, points: &[(f64, f64)]) -> Option<TrendResult> {
    let f = fit(points)?;
    let (t0, t1) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.0), b.max(p.0))
        });
    let drift = (f.slope * (t1 - t0)).abs();
    let matters = drift >= MIN_DRIFT * f.mean.abs();
    let direction = if f.low > 0.0 && matters {
        Direction::Rising
    } else if f.high < 0.0 && matters {
        Direction::Falling
    } else {
        Direction::Flat
    };
    Some(TrendResult {
        name: name.into(),
        unit: unit.into(),
        points: f.n as u32,
        mean: sig(f.mean),
        slope_per_h: sig(f.slope),
        ci95_low_per_h: sig(f.low),
        ci95_high_per_h: sig(f.high),
        slope_pct_per_h: (f.mean != 0.0).then(|| sig(f.slope / f.mean.abs() * 100.0)),
        direction,
    })
}

/// The trends of a run after `warmup`: latency and errors from the time series, and with
/// target telemetry the target's memory, fds and CPU per request. Telemetry points are
/// taken at a steady period from the first reading (its wall time over its readings), so
/// point `k` is placed at `k` periods.
pub fn compute(ts: &TimeSeries, target: Option<&TargetSummary>, warmup: Duration) -> Trends {
    let ms = ts.interval_ms;
    let interval_h = crate::timeseries::interval_s(ms) / 3600.0;
    let from = warmup.as_secs_f64() / 3600.0;
    // a row's middle, hours from the start (a merged row covers its whole span)
    let at = |p: &crate::timeseries::TimePoint| (p.start_s(ms) + p.end_s(ms)) / 2.0 / 3600.0;
    let rows: Vec<_> = ts.points.iter().filter(|p| at(p) >= from).collect();
    let p99: Vec<(f64, f64)> = rows
        .iter()
        .map(|p| (at(p), f64::from(p.req_p99_ms)))
        .collect();
    let errors: Vec<(f64, f64)> = rows
        .iter()
        .filter(|p| p.requests > 0)
        .map(|p| (at(p), f64::from(p.failures) / f64::from(p.requests)))
        .collect();
    let mut items: Vec<TrendResult> = [
        result("http_req_duration:p99", "ms", &p99),
        result("http_req_failed:rate", "share", &errors),
    ]
    .into_iter()
    .flatten()
    .collect();
    if let Some(t) = target {
        // the sampler's own period, which need not be the plan's interval
        let period_h = if t.samples > 1 {
            t.wall_s / (t.samples - 1) as f64 / 3600.0
        } else {
            interval_h
        };
        let mid = |seq: u64, span: u64| (seq as f64 + span as f64 / 2.0) * period_h;
        let pts: Vec<_> = t
            .points
            .iter()
            .filter(|p| mid(p.seq, p.span) >= from)
            .collect();
        let rss: Vec<(f64, f64)> = pts
            .iter()
            .map(|p| (mid(p.seq, p.span), p.rss_bytes as f64))
            .collect();
        let fds: Vec<(f64, f64)> = pts
            .iter()
            .filter(|p| p.fds > 0)
            .map(|p| (mid(p.seq, p.span), p.fds as f64))
            .collect();
        // CPU seconds of the telemetry points inside each time-series row, per request
        let cpu: Vec<(f64, f64)> = rows
            .iter()
            .filter(|p| p.requests > 0)
            .filter_map(|p| {
                let (lo, hi) = (p.start_s(ms) / 3600.0, p.end_s(ms) / 3600.0);
                let inside: Vec<_> = t
                    .points
                    .iter()
                    .filter(|q| {
                        let at = mid(q.seq, q.span);
                        at >= lo && at < hi
                    })
                    .collect();
                if inside.is_empty() {
                    return None;
                }
                // CPU seconds of those readings, scaled to the row's length
                let covered_s: f64 = inside
                    .iter()
                    .map(|q| q.span as f64 * period_h * 3600.0)
                    .sum();
                let cpu_s: f64 = inside
                    .iter()
                    .map(|q| q.cpu_pct / 100.0 * q.span as f64 * period_h * 3600.0)
                    .sum::<f64>()
                    * (p.duration_s(ms) / covered_s);
                Some((at(p), cpu_s / f64::from(p.requests)))
            })
            .collect();
        items.extend(
            [
                result("target_rss", "bytes", &rss),
                result("target_cpu_per_request", "s", &cpu),
                result("target_fds", "fds", &fds),
            ]
            .into_iter()
            .flatten(),
        );
    }
    Trends {
        warmup_s: warmup.as_secs_f64(),
        items,
        resources: None,
    }
}

/// One line per trend (and one for the resources) for the human summary.
pub fn describe(t: &Trends) -> Vec<String> {
    let resources = t.resources.iter().flat_map(resources::describe);
    t.items
        .iter()
        .map(|r| {
            let pct = r
                .slope_pct_per_h
                .map(|p| format!(" ({p:+.2} %/h)"))
                .unwrap_or_default();
            format!(
                "{}: {:+.4} {}/h{pct}, 95% CI [{:+.4}, {:+.4}], {} points: {}",
                r.name,
                r.slope_per_h,
                r.unit,
                r.ci95_low_per_h,
                r.ci95_high_per_h,
                r.points,
                match r.direction {
                    Direction::Rising => "RISING",
                    Direction::Falling => "falling",
                    Direction::Flat => "flat",
                }
            )
        })
        .chain(resources)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic noise source (no extra dependency): xorshift, in −0.5..0.5.
    fn noise(state: &mut u64) -> f64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        (*state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    }

    #[test]
    fn t_quantiles_match_the_table() {
        // exact values of t(0.975, df)
        for (df, exact) in [
            (3.0, 3.182),
            (5.0, 2.571),
            (10.0, 2.228),
            (30.0, 2.042),
            (1e6, 1.960),
        ] {
            let got = t975(df);
            assert!(
                (got - exact).abs() / exact < 0.01,
                "df {df}: {got} vs {exact}"
            );
        }
    }

    #[test]
    fn an_exact_line_has_its_slope_and_a_tight_interval() {
        let pts: Vec<(f64, f64)> = (0..100).map(|i| (i as f64, 3.0 + 2.0 * i as f64)).collect();
        let f = fit(&pts).unwrap();
        assert!((f.slope - 2.0).abs() < 1e-9 && (f.intercept - 3.0).abs() < 1e-6);
        assert!(f.low > 1.99 && f.high < 2.01, "{f:?}");
    }

    #[test]
    fn a_sure_but_tiny_drift_is_flat() {
        // a warming process: +0.5 % of its memory over the window, no noise at all
        let pts: Vec<(f64, f64)> = (0..30)
            .map(|i| (i as f64 / 3600.0, 36e6 * (1.0 + 0.005 * i as f64 / 29.0)))
            .collect();
        let r = result("target_rss", "bytes", &pts).unwrap();
        assert!(r.ci95_low_per_h > 0.0, "{r:?}");
        assert_eq!(r.direction, Direction::Flat, "{r:?}");
        // +2 % over the same window is a rise
        let pts: Vec<(f64, f64)> = (0..30)
            .map(|i| (i as f64 / 3600.0, 36e6 * (1.0 + 0.02 * i as f64 / 29.0)))
            .collect();
        assert_eq!(
            result("target_rss", "bytes", &pts).unwrap().direction,
            Direction::Rising
        );
    }

    #[test]
    fn a_leak_is_rising_and_noise_is_flat() {
        let mut s = 0x2545_f491_4f6c_dd1d;
        // 10 MB/h of growth on 50 MB of noise, 600 points over an hour
        let leak: Vec<(f64, f64)> = (0..600)
            .map(|i| {
                let h = i as f64 / 600.0;
                (h, 200e6 + 10e6 * h + 50e6 * noise(&mut s))
            })
            .collect();
        let r = result("target_rss", "bytes", &leak).unwrap();
        assert_eq!(r.direction, Direction::Rising, "{r:?}");
        assert!(r.ci95_low_per_h < 10e6 && r.ci95_high_per_h > 10e6, "{r:?}");
        let mut flat_rising = 0;
        for seed in 1..=40u64 {
            let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let flat: Vec<(f64, f64)> = (0..600)
                .map(|i| (i as f64 / 600.0, 200e6 + 50e6 * noise(&mut s)))
                .collect();
            if fit(&flat).unwrap().low > 0.0 {
                flat_rising += 1;
            }
        }
        // a 95 % interval calls about 1 in 40 flat runs rising; 5 or more would be a bug
        assert!(
            flat_rising < 5,
            "{flat_rising} of 40 flat runs called rising"
        );
    }

    #[test]
    fn too_few_points_or_no_spread_give_no_verdict() {
        assert!(fit(&[(0.0, 1.0); 20]).is_none());
        let few: Vec<(f64, f64)> = (0..MIN_POINTS - 1).map(|i| (i as f64, 1.0)).collect();
        assert!(fit(&few).is_none());
        let nan: Vec<(f64, f64)> = (0..20).map(|i| (i as f64, f64::NAN)).collect();
        assert!(fit(&nan).is_none());
    }
}

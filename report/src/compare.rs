//! `barrage compare`: a baseline set of runs against a current one, per metric and
//! operation, with a 95 % interval for each change ([`crate::stats`]).
//!
//! A change is a **regression** only when it is worse than its budget *and* its interval
//! excludes zero (a change the data cannot tell from noise is not one). Without an interval
//! (fewer than two intervals a side) the budget alone decides. Default budgets:
//!
//! | key          | metric                                  | budget                         |
//! |--------------|-----------------------------------------|--------------------------------|
//! | `throughput` | `http_reqs` per second                  | −10 % (a drop beyond fails)    |
//! | `p50`        | latency p50 of each trend               | none (reported only)           |
//! | `p95`        | latency p95 of each trend               | +15 %                          |
//! | `p99`        | latency p99 of each trend               | +20 %                          |
//! | `error_rate` | share of failed requests                | +0.5 percentage points         |
//!
//! `--budget KEY=VALUE` overrides one (`p95=10%`, `throughput=5%`, `error_rate=1pp`).
use crate::input::Measured;
use crate::stats;
use serde::Serialize;
use std::fmt::Write as _;

/// Budgets, as positive magnitudes of the worsening allowed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Budgets {
    /// Largest drop of throughput, %.
    pub throughput_pct: f64,
    pub p50_pct: Option<f64>,
    pub p95_pct: Option<f64>,
    pub p99_pct: Option<f64>,
    /// Largest rise of the error rate, percentage points.
    pub error_rate_pp: f64,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            throughput_pct: 10.0,
            p50_pct: None,
            p95_pct: Some(15.0),
            p99_pct: Some(20.0),
            error_rate_pp: 0.5,
        }
    }
}

/// A `--budget` that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("--budget {0:?}: {1}")]
pub struct BudgetError(pub String, pub String);

impl Budgets {
    /// Applies `KEY=VALUE` (see the module table).
    pub fn set(&mut self, spec: &str) -> Result<(), BudgetError> {
        let err = |why: &str| BudgetError(spec.to_string(), why.to_string());
        let (k, v) = spec.split_once('=').ok_or_else(|| {
            err("expected KEY=VALUE, e.g. p95=10% or error_rate=1pp (keys: throughput, p50, p95, p99, error_rate)")
        })?;
        let v = v.trim();
        let number = |s: &str, unit: &str| -> Result<f64, BudgetError> {
            let x: f64 = s
                .strip_suffix(unit)
                .ok_or_else(|| err(&format!("the value must end in {unit}, e.g. 10{unit}")))?
                .trim()
                .trim_start_matches(['+', '-'])
                .parse()
                .map_err(|_| err(&format!("not a number before {unit}")))?;
            if !x.is_finite() {
                return Err(err("the budget must be a finite number"));
            }
            Ok(x)
        };
        match k.trim() {
            "throughput" => self.throughput_pct = number(v, "%")?,
            "p50" => self.p50_pct = Some(number(v, "%")?),
            "p95" => self.p95_pct = Some(number(v, "%")?),
            "p99" => self.p99_pct = Some(number(v, "%")?),
            "error_rate" => self.error_rate_pp = number(v, "pp")?,
            other => {
                return Err(err(&format!(
                    "unknown key {other:?}: use throughput, p50, p95, p99 or error_rate"
                )))
            }
        }
        Ok(())
    }
}

/// How a change came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Worse than budget and the interval excludes zero.
    Regression,
    /// Worse than budget, but the interval includes zero: noise.
    OverBudgetNoise,
    /// Better, and the interval excludes zero.
    Improvement,
    Ok,
}

impl Verdict {
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Regression => "❌ regression",
            Verdict::OverBudgetNoise => "⚠️ over budget, within noise",
            Verdict::Improvement => "✅ improvement",
            Verdict::Ok => "ok",
        }
    }
}

/// One compared figure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// `http_req_duration{operation:run_wait}`, `http_reqs`, `http_req_failed`.
    pub metric: String,
    /// `p95`, `rate`, `share`.
    pub stat: String,
    /// Unit of `baseline` and `current`: `ms`, `req/s`, `%`.
    pub unit: String,
    pub baseline: f64,
    pub current: f64,
    /// `%` of the baseline, or `pp` for the error rate.
    pub change: f64,
    pub change_unit: String,
    /// 95 % interval of `change`, same unit.
    pub ci: Option<(f64, f64)>,
    /// The worsening allowed, same unit, signed as a worsening would be.
    pub budget: Option<f64>,
    pub verdict: Verdict,
}

/// The comparison of two sets.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub baseline: Vec<String>,
    pub current: Vec<String>,
    pub budgets: Budgets,
    pub seed: u64,
    pub changes: Vec<Change>,
    pub regressions: usize,
}

fn excludes_zero(ci: Option<(f64, f64)>) -> Option<bool> {
    ci.map(|(lo, hi)| lo > 0.0 || hi < 0.0)
}

/// `higher_is_worse`: latency, errors; else throughput.
fn verdict(
    change: f64,
    ci: Option<(f64, f64)>,
    budget: Option<f64>,
    higher_is_worse: bool,
) -> Verdict {
    let worse = if higher_is_worse { change } else { -change };
    let significant = excludes_zero(ci);
    match budget {
        Some(b) if worse > b => match significant {
            Some(false) => Verdict::OverBudgetNoise,
            _ => Verdict::Regression,
        },
        _ if worse < 0.0 && significant == Some(true) => Verdict::Improvement,
        _ => Verdict::Ok,
    }
}

fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn pct_of(x: f64, base: f64) -> f64 {
    if base == 0.0 {
        if x == 0.0 {
            0.0
        } else {
            f64::INFINITY.copysign(x)
        }
    } else {
        100.0 * x / base
    }
}

/// Compares `current` against `baseline`.
pub fn compare(base: &Measured, cur: &Measured, budgets: &Budgets, seed: u64) -> Comparison {
    let mut changes = Vec::new();
    // throughput: req/s per interval (or per merged row), each weighing the seconds it
    // covers, so the mean is requests over time
    let rate = |m: &Measured| -> Vec<(f64, f64)> {
        m.intervals
            .iter()
            .filter(|i| i.seconds > 0.0)
            .map(|i| (i.requests / i.seconds, i.seconds))
            .collect()
    };
    let (ra, rb) = (rate(base), rate(cur));
    if !ra.is_empty() && !rb.is_empty() {
        let (ma, mb) = (stats::weighted_mean(&ra), stats::weighted_mean(&rb));
        let ci =
            stats::welch_ci_weighted(&ra, &rb).map(|(lo, hi)| (pct_of(lo, ma), pct_of(hi, ma)));
        let change = pct_of(mb - ma, ma);
        changes.push(Change {
            metric: "http_reqs".into(),
            stat: "rate".into(),
            unit: "req/s".into(),
            baseline: r3(ma),
            current: r3(mb),
            change: r3(change),
            change_unit: "%".into(),
            ci: ci.map(|(a, b)| (r3(a), r3(b))),
            budget: Some(-budgets.throughput_pct),
            verdict: verdict(change, ci, Some(budgets.throughput_pct), false),
        });
    }
    // error rate: pooled share, interval from the per-interval shares
    let shares = |m: &Measured| -> (Vec<(f64, f64)>, f64) {
        let v: Vec<(f64, f64)> = m
            .intervals
            .iter()
            .filter(|i| i.requests > 0.0 && i.seconds > 0.0)
            .map(|i| (100.0 * i.failures / i.requests, i.seconds))
            .collect();
        let req: f64 = m.intervals.iter().map(|i| i.requests).sum();
        let fail: f64 = m.intervals.iter().map(|i| i.failures).sum();
        (v, if req > 0.0 { 100.0 * fail / req } else { 0.0 })
    };
    let ((sa, pa), (sb, pb)) = (shares(base), shares(cur));
    if !sa.is_empty() && !sb.is_empty() {
        let change = pb - pa;
        let ci = stats::welch_ci_weighted(&sa, &sb);
        changes.push(Change {
            metric: "http_req_failed".into(),
            stat: "share".into(),
            unit: "%".into(),
            baseline: r3(pa),
            current: r3(pb),
            change: r3(change),
            change_unit: "pp".into(),
            ci: ci.map(|(a, b)| (r3(a), r3(b))),
            budget: Some(budgets.error_rate_pp),
            verdict: verdict(change, ci, Some(budgets.error_rate_pp), true),
        });
    }
    // percentiles of every trend both sides have
    for (name, ta) in &base.trends {
        let Some(tb) = cur.trends.get(name) else {
            continue;
        };
        if ta.count() == 0 || tb.count() == 0 {
            continue;
        }
        for (stat, p, budget) in [
            ("p50", 50.0, budgets.p50_pct),
            ("p95", 95.0, budgets.p95_pct),
            ("p99", 99.0, budgets.p99_pct),
        ] {
            let (a, b) = (ta.percentile(p) / 1000.0, tb.percentile(p) / 1000.0);
            let change = pct_of(b - a, a);
            let ci = stats::percentile_diff_ci(ta, tb, p, seed)
                .map(|(lo, hi)| (pct_of(lo / 1000.0, a), pct_of(hi / 1000.0, a)));
            changes.push(Change {
                metric: name.clone(),
                stat: stat.into(),
                unit: "ms".into(),
                baseline: r3(a),
                current: r3(b),
                change: r3(change),
                change_unit: "%".into(),
                ci: ci.map(|(x, y)| (r3(x), r3(y))),
                budget,
                verdict: verdict(change, ci, budget, true),
            });
        }
    }
    let regressions = changes
        .iter()
        .filter(|c| c.verdict == Verdict::Regression)
        .count();
    let names = |m: &Measured| m.files.iter().map(|p| p.display().to_string()).collect();
    Comparison {
        baseline: names(base),
        current: names(cur),
        budgets: budgets.clone(),
        seed,
        changes,
        regressions,
    }
}

fn signed(x: f64) -> String {
    if x > 0.0 {
        format!("+{x}")
    } else {
        format!("{x}")
    }
}

impl Comparison {
    /// A Markdown report to paste into a pull request.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let head = if self.regressions == 0 {
            "no regression".to_string()
        } else {
            format!("{} regression(s)", self.regressions)
        };
        let _ = writeln!(s, "### barrage compare: {head}\n");
        let _ = writeln!(s, "- baseline: {}", self.baseline.join(", "));
        let _ = writeln!(s, "- current: {}", self.current.join(", "));
        let _ = writeln!(
            s,
            "- a regression is worse than its budget with a 95 % interval excluding zero \
(intervals: per-interval Welch for rates, seeded bootstrap of the histograms for percentiles, seed {})\n",
            self.seed
        );
        s.push_str(
            "| metric | stat | baseline | current | change | 95 % CI | budget | verdict |\n",
        );
        s.push_str("|---|---|---:|---:|---:|---:|---:|---|\n");
        for c in &self.changes {
            let ci = c.ci.map_or_else(
                || "n/a".to_string(),
                |(lo, hi)| format!("[{}, {}] {}", signed(lo), signed(hi), c.change_unit),
            );
            let budget = c.budget.map_or_else(
                || "-".to_string(),
                |b| format!("{}{}", signed(b), c.change_unit),
            );
            let _ = writeln!(
                s,
                "| `{}` | {} | {} {} | {} {} | {}{} | {ci} | {budget} | {} |",
                c.metric,
                c.stat,
                c.baseline,
                c.unit,
                c.current,
                c.unit,
                signed(c.change),
                c.change_unit,
                c.verdict.word()
            );
        }
        s
    }

    /// The comparison as JSON.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a comparison serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_parse() {
        let mut b = Budgets::default();
        b.set("p95=10%").unwrap();
        b.set("throughput=-5%").unwrap();
        b.set("error_rate=1pp").unwrap();
        b.set("p50=+3%").unwrap();
        assert_eq!(b.p95_pct, Some(10.0));
        assert_eq!(b.throughput_pct, 5.0);
        assert_eq!(b.error_rate_pp, 1.0);
        assert_eq!(b.p50_pct, Some(3.0));
        let cases = [
            ("p95", "expected KEY=VALUE"),
            ("p95=10", "must end in %"),
            ("error_rate=1%", "must end in pp"),
            ("p42=1%", "unknown key \"p42\""),
            ("p95=x%", "not a number"),
        ];
        for (spec, want) in cases {
            let e = Budgets::default().set(spec).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains(spec), "{spec}: {e}");
        }
    }

    #[test]
    fn verdict_needs_budget_and_significance() {
        let cases = [
            (
                20.0,
                Some((10.0, 30.0)),
                Some(15.0),
                true,
                Verdict::Regression,
            ),
            (
                20.0,
                Some((-5.0, 45.0)),
                Some(15.0),
                true,
                Verdict::OverBudgetNoise,
            ),
            (20.0, None, Some(15.0), true, Verdict::Regression),
            (10.0, Some((5.0, 15.0)), Some(15.0), true, Verdict::Ok),
            (
                -20.0,
                Some((-30.0, -10.0)),
                Some(15.0),
                true,
                Verdict::Improvement,
            ),
            (
                -20.0,
                Some((-30.0, -10.0)),
                Some(10.0),
                false,
                Verdict::Regression,
            ),
            (30.0, Some((10.0, 50.0)), None, true, Verdict::Ok),
            (0.0, Some((0.0, 0.0)), Some(0.5), true, Verdict::Ok),
        ];
        for (change, ci, budget, hiw, want) in cases {
            assert_eq!(
                verdict(change, ci, budget, hiw),
                want,
                "{change} {ci:?} {budget:?}"
            );
        }
    }
}

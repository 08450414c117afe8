//! `barrage characterize`'s flags ([`CharacterizeArgs`]) and their validated form
//! ([`Settings`]): what to step, how, how long each plateau runs, and the limits a plateau
//! must keep to count as good. Every problem is reported at once, each naming its flag.
use crate::cli::PlanArgs;
use barrage_core::duration::{format_duration, parse_duration};
use barrage_core::metrics::builtin;
use clap::{Args, ValueEnum};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// `barrage characterize`.
#[derive(Debug, Clone, Args)]
#[command(
    mut_arg("listen", |a| a.help(
        "Run the plateaus on remote workers: each plateau is a `barrage controller` listening here (a fixed port), joined by workers started with `barrage worker --controller URL --serve`. Without it, each plateau runs local workers"
    )),
    mut_arg("expect_workers", |a| a.help("With --listen: the workers every plateau waits for")),
    mut_arg("join_timeout", |a| a.help(
        "With --listen: how long each plateau waits for its workers [default: 10m]"
    ))
)]
pub struct CharacterizeArgs {
    /// The flow, target and auth (the plan's scenario and thresholds are replaced by the
    /// plateaus).
    #[command(flatten)]
    pub plan: PlanArgs,
    /// Remote workers: `--listen ADDR --expect-workers N` and `barrage controller`'s other
    /// worker-facing flags (the same flag block as `barrage controller`'s).
    #[command(flatten)]
    pub remote: super::remote::RemoteArgs,
    /// What to step: vus (closed model, constant VUs) or rate (open model, iterations/s).
    #[arg(long, value_enum, default_value_t = By::Vus)]
    pub by: By,
    /// First plateau's load (VUs, or iterations/s with --by rate) [default: 1].
    #[arg(long, value_name = "LOAD")]
    pub start: Option<f64>,
    /// Step between plateaus: x2 (multiply) or +4 (add).
    #[arg(long, value_name = "STEP", default_value = "x2")]
    pub step: String,
    /// Highest load to try [default: 1024 VUs, or 1000 iterations/s].
    #[arg(long, value_name = "LOAD")]
    pub max_load: Option<f64>,
    /// How long each plateau's measured part lasts.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub plateau: Duration,
    /// Warm-up before each plateau at the same load, left out of its figures.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Time iterations get to finish after a plateau (not measured).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub graceful_stop: Duration,
    /// Bisection stops when the last good and the first bad load are this close
    /// [default: 5 % of the first bad load; at least 1 VU].
    #[arg(long, value_name = "LOAD")]
    pub precision: Option<f64>,
    /// Latency limit: METRIC=DURATION on the metric's p95; `none` for no latency limit.
    #[arg(
        long = "p95",
        value_name = "METRIC=DURATION",
        default_value = "agent_flow_duration=8s"
    )]
    pub p95: String,
    /// Lowest goodput (share of good flows: `flow_goodput`, else `agent_flow_success_rate`).
    #[arg(long, value_name = "PERCENT", default_value = "95%")]
    pub min_goodput: String,
    /// Highest share of failed requests (`http_req_failed`).
    #[arg(long, value_name = "PERCENT", default_value = "5%")]
    pub max_error_rate: String,
    /// Least throughput growth per step, as a share of the load's growth (x2 steps: +10 %
    /// throughput per doubling); 0% turns the check off.
    #[arg(long, value_name = "PERCENT", default_value = "10%")]
    pub min_growth: String,
    /// At most this many plateaus in all (steps, bisection and confirmations).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub max_plateaus: u32,
    /// Re-runs of a bad plateau before it is taken as bad: noise on a shared host (a
    /// neighbour's burst, a GC pause of the target) only makes a plateau look worse, so a
    /// plateau is bad when every run of it is; 0 takes the first verdict.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub confirm: u32,
    /// Folder of characterize.json, the table, the chart and each plateau's run.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub results_dir: PathBuf,
    /// Flags passed to every plateau's `barrage run` (after `--`), e.g. `-- --workers 2
    /// --target-cmd "…"`, or with --listen its `barrage controller`'s; plan, output and
    /// remote-worker flags go before `--`.
    #[arg(last = true, value_name = "RUN_FLAGS")]
    pub run_flags: Vec<String>,
}

/// What the plateaus step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum By {
    /// Constant VUs (closed model): each VU runs iterations back to back.
    Vus,
    /// Constant arrival rate (open model): iterations started per second.
    Rate,
}

impl By {
    /// The load's unit, as the summary's stages name it.
    pub fn unit(self) -> &'static str {
        match self {
            By::Vus => "vus",
            By::Rate => "iterations/s",
        }
    }

    /// The finest load step: one VU, or one iteration per minute (rates are planned per
    /// minute so fractional rates run as asked).
    pub fn resolution(self) -> f64 {
        match self {
            By::Vus => 1.0,
            By::Rate => 1.0 / 60.0,
        }
    }

    /// `load` on this unit's grid.
    pub fn round(self, load: f64) -> f64 {
        let r = self.resolution();
        ((load / r).round() * r).max(r)
    }
}

/// How the load grows from one plateau to the next before the first bad one.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// Multiply by this factor (> 1).
    Times(f64),
    /// Add this much.
    Add(f64),
}

impl Step {
    pub fn parse(text: &str) -> Result<Step, String> {
        let bad = || format!("--step {text:?}: use x2 (multiply, factor > 1) or +4 (add, > 0)");
        let t = text.trim();
        let (times, num) = if let Some(n) = t
            .strip_prefix('x')
            .or_else(|| t.strip_prefix('×'))
            .or_else(|| t.strip_prefix('*'))
        {
            (true, n)
        } else if let Some(n) = t.strip_prefix('+') {
            (false, n)
        } else {
            return Err(bad());
        };
        let v: f64 = num.trim().parse().map_err(|_| bad())?;
        match (times, v) {
            (true, v) if v.is_finite() && v > 1.0 => Ok(Step::Times(v)),
            (false, v) if v.is_finite() && v > 0.0 => Ok(Step::Add(v)),
            _ => Err(bad()),
        }
    }

    /// The load after `load`.
    pub fn next(self, load: f64) -> f64 {
        match self {
            Step::Times(f) => load * f,
            Step::Add(a) => load + a,
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Times(v) => write!(f, "x{v}"),
            Step::Add(v) => write!(f, "+{v}"),
        }
    }
}

/// The latency limit: `metric`'s p95 at most `limit_ms`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LatencyLimit {
    pub metric: String,
    pub limit_ms: f64,
}

/// The limits a plateau must keep to count as good.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Limits {
    /// `None`: no latency limit (`--p95 none`).
    pub p95: Option<LatencyLimit>,
    /// Share 0..=1.
    pub min_goodput: f64,
    pub max_error_rate: f64,
    /// Least throughput growth as a share of the load's growth, 0..=1; 0: off.
    pub min_growth: f64,
}

/// Validated settings of one characterization.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Settings {
    pub by: By,
    pub start: f64,
    pub step: Step,
    pub max_load: f64,
    #[serde(with = "barrage_core::duration::serde_str")]
    pub plateau: Duration,
    #[serde(with = "barrage_core::duration::serde_str")]
    pub warmup: Duration,
    #[serde(with = "barrage_core::duration::serde_str")]
    pub graceful_stop: Duration,
    /// `None`: 5 % of the first bad load, at least the unit's resolution.
    pub precision: Option<f64>,
    pub limits: Limits,
    pub max_plateaus: u32,
    /// Re-runs of a bad plateau before it counts as bad.
    pub confirm: u32,
    /// The metric whose percentiles the curve shows (the latency limit's, else the flow's).
    pub latency_metric: String,
}

/// Flags of `barrage run` that `characterize` sets itself or that belong before `--`.
const OWNED_RUN_FLAGS: &[&str] = &[
    "--plan",
    "--profile",
    "--smoke",
    "--results-dir",
    "--out",
    "--overwrite",
    "--no-progress",
    "--dashboard",
    "--target",
    "--runtime-name",
    "--runtime-version",
    "--llm",
    "--tier",
    "--jwt-secret-env",
    "--auth-token-env",
    "--graph-id",
    "--model-name",
];

/// `95%` or `0.95` → 0.95.
pub fn parse_share(flag: &str, text: &str) -> Result<f64, String> {
    let t = text.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => t.parse::<f64>(),
    };
    match v {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "{flag} {text:?}: use a percentage from 0% to 100%, e.g. 95%, or a share, e.g. 0.95"
        )),
    }
}

/// `agent_flow_duration=8s` → the limit; `none` → no limit.
pub fn parse_p95(text: &str) -> Result<Option<LatencyLimit>, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let bad = |why: &str| {
        format!("--p95 {text:?}: {why}; use METRIC=DURATION, e.g. agent_flow_duration=8s, or none")
    };
    let (metric, limit) = t.split_once('=').ok_or_else(|| bad("no `=`"))?;
    let metric = metric.trim();
    if metric.is_empty() || metric.contains(['{', '}', ' ']) {
        return Err(bad("the metric name is empty or has tags"));
    }
    let d = parse_duration(limit.trim()).map_err(|e| bad(&e))?;
    if d.is_zero() {
        return Err(bad("the limit must be > 0"));
    }
    Ok(Some(LatencyLimit {
        metric: metric.to_string(),
        limit_ms: d.as_secs_f64() * 1e3,
    }))
}

impl Settings {
    /// Validates the flags; every problem, one line each.
    pub fn from_args(a: &CharacterizeArgs) -> Result<Settings, Vec<String>> {
        let mut errors = Vec::new();
        let mut check = |r: Result<f64, String>| r.map_err(|e| errors.push(e)).unwrap_or(0.0);
        let min_goodput = check(parse_share("--min-goodput", &a.min_goodput));
        let max_error_rate = check(parse_share("--max-error-rate", &a.max_error_rate));
        let min_growth = check(parse_share("--min-growth", &a.min_growth));
        let step = Step::parse(&a.step).map_err(|e| errors.push(e)).ok();
        let p95 = parse_p95(&a.p95).map_err(|e| errors.push(e)).ok().flatten();
        let start = a.start.unwrap_or(1.0);
        if !(start.is_finite() && start >= a.by.resolution()) {
            errors.push(format!(
                "--start {start}: the first load must be at least {} {}",
                fmt_load(a.by.resolution()),
                a.by.unit()
            ));
        }
        if a.by == By::Vus && start.fract() != 0.0 {
            errors.push(format!("--start {start}: VUs are whole numbers, e.g. 1"));
        }
        let max_load = a.max_load.unwrap_or(match a.by {
            By::Vus => 1024.0,
            By::Rate => 1000.0,
        });
        if !(max_load.is_finite() && max_load >= start) {
            errors.push(format!(
                "--max-load {max_load}: must be at least --start ({start})"
            ));
        }
        if max_load > barrage_core::executor::MAX_VUS as f64 {
            errors.push(format!(
                "--max-load {max_load}: over the limit of {}",
                barrage_core::executor::MAX_VUS
            ));
        }
        if let Some(p) = a.precision {
            if !(p.is_finite() && p >= a.by.resolution()) {
                errors.push(format!(
                    "--precision {p}: must be at least {} {}",
                    fmt_load(a.by.resolution()),
                    a.by.unit()
                ));
            }
        }
        if a.plateau < Duration::from_secs(1) {
            errors.push(format!(
                "--plateau {}: at least 1s (a plateau is measured in whole intervals)",
                format_duration(a.plateau)
            ));
        }
        if a.plateau.subsec_nanos() != 0 || a.warmup.subsec_nanos() != 0 {
            errors.push(
                "--plateau/--warmup: whole seconds, so the plateau falls on whole intervals, e.g. 30s"
                    .into(),
            );
        }
        if a.max_plateaus < 2 {
            errors.push(format!(
                "--max-plateaus {}: at least 2 (one good and one bad plateau)",
                a.max_plateaus
            ));
        }
        for f in &a.run_flags {
            let name = f.split('=').next().unwrap_or(f);
            if OWNED_RUN_FLAGS.contains(&name)
                || super::remote::controller_flags().iter().any(|f| f == name)
            {
                errors.push(format!(
                    "{name} after `--`: characterize sets it itself or takes it before `--`; move it before `--` (or drop it)"
                ));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let latency_metric = p95.as_ref().map_or_else(
            || builtin::AGENT_FLOW_DURATION.to_string(),
            |l| l.metric.clone(),
        );
        Ok(Settings {
            by: a.by,
            start: a.by.round(start),
            step: step.expect("checked above"),
            max_load,
            plateau: a.plateau,
            warmup: a.warmup,
            graceful_stop: a.graceful_stop,
            precision: a.precision,
            limits: Limits {
                p95,
                min_goodput,
                max_error_rate,
                min_growth,
            },
            max_plateaus: a.max_plateaus,
            confirm: a.confirm,
            latency_metric,
        })
    }

    /// The bisection's stopping width between `good` and `bad` loads.
    pub fn precision_for(&self, bad: f64) -> f64 {
        self.precision
            .unwrap_or(bad * 0.05)
            .max(self.by.resolution())
    }
}

/// A load for people: whole numbers bare, others with up to 2 decimals.
pub fn fmt_load(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

impl fmt::Display for Settings {
    /// The banner printed at the start: every default the user did not choose is visible.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = self.by.unit();
        writeln!(
            f,
            "load: {unit} from {} stepping {} up to {} (at most {} plateaus), then bisection to {}",
            fmt_load(self.start),
            self.step,
            fmt_load(self.max_load),
            self.max_plateaus,
            match self.precision {
                Some(p) => format!("{} {unit}", fmt_load(p)),
                None => "5 % of the first bad load".into(),
            }
        )?;
        writeln!(
            f,
            "each plateau: {} warm-up (not measured) + {} measured, {} graceful stop; a bad one {}",
            format_duration(self.warmup),
            format_duration(self.plateau),
            format_duration(self.graceful_stop),
            match self.confirm {
                0 => "counts at once (--confirm 0)".to_string(),
                1 => "is run once more and counts only if bad again (--confirm 1)".to_string(),
                n => format!("is run up to {n} more times and counts only if bad every time"),
            }
        )?;
        let l = &self.limits;
        write!(
            f,
            "a plateau is good when: {}goodput >= {:.1} %, errors <= {:.1} %, {}the run is valid",
            match &l.p95 {
                Some(p) => format!("p95 {} <= {} ms, ", p.metric, fmt_load(p.limit_ms)),
                None => String::new(),
            },
            l.min_goodput * 100.0,
            l.max_error_rate * 100.0,
            if l.min_growth > 0.0 {
                format!(
                    "throughput grows >= {:.0} % of the load's growth, ",
                    l.min_growth * 100.0
                )
            } else {
                String::new()
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_parse() {
        for (text, want) in [
            ("x2", Some(Step::Times(2.0))),
            ("×1.5", Some(Step::Times(1.5))),
            ("*3", Some(Step::Times(3.0))),
            ("+4", Some(Step::Add(4.0))),
            ("+0.5", Some(Step::Add(0.5))),
            ("x1", None),
            ("+0", None),
            ("2", None),
            ("x", None),
            ("-3", None),
        ] {
            assert_eq!(Step::parse(text).ok(), want, "{text}");
        }
        assert_eq!(Step::Times(2.0).next(3.0), 6.0);
        assert_eq!(Step::Add(4.0).next(3.0), 7.0);
    }

    #[test]
    fn shares_and_latency_limits_parse() {
        assert_eq!(parse_share("--f", "95%").unwrap(), 0.95);
        assert_eq!(parse_share("--f", "0.5").unwrap(), 0.5);
        assert!(parse_share("--f", "120%").unwrap_err().contains("--f"));
        assert!(parse_share("--f", "lots").is_err());
        let l = parse_p95("agent_flow_duration=8s").unwrap().unwrap();
        assert_eq!(
            (l.metric.as_str(), l.limit_ms),
            ("agent_flow_duration", 8000.0)
        );
        assert_eq!(
            parse_p95("iteration_duration=250ms")
                .unwrap()
                .unwrap()
                .limit_ms,
            250.0
        );
        assert_eq!(parse_p95("none").unwrap(), None);
        for bad in ["agent_flow_duration", "=8s", "x=0s", "x{a:b}=1s", "x=soon"] {
            assert!(parse_p95(bad).unwrap_err().contains("--p95"), "{bad}");
        }
    }

    #[test]
    fn rates_round_to_a_per_minute_grid() {
        assert_eq!(By::Rate.round(10.0), 10.0);
        assert!((By::Rate.round(10.874) - 652.0 / 60.0).abs() < 1e-9);
        assert_eq!(By::Vus.round(10.5), 11.0);
        assert_eq!(By::Vus.round(0.2), 1.0);
    }
}

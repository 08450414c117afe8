//! k6's executors as pure data. An executor *config* computes its VU curve (or its arrival
//! schedule) without running anything; the worker's executor *runtime* follows it.
//!
//! | executor               | model  | what it schedules                                     |
//! |------------------------|--------|-------------------------------------------------------|
//! | `ramping-vus`          | closed | VUs follow stages (duration → target), linearly       |
//! | `constant-vus`         | closed | a fixed number of VUs for a duration                  |
//! | `per-vu-iterations`    | closed | each VU runs N iterations (smoke: 1 VU × 1)            |
//! | `constant-arrival-rate`| open   | `rate` iterations per `time_unit`, pre-allocated VUs  |
//! | `ramping-arrival-rate` | open   | the rate follows stages                               |
//!
//! The VU count at time `t` is the linear interpolation rounded to the nearest integer
//! (halves up); the workers' segments then split that integer exactly.
use crate::arrivals::{Arrivals, Schedule};
use crate::duration::{format_duration, serde_str};
use serde::{Deserialize, Serialize};
use std::time::Duration;

fn default_grace() -> Duration {
    Duration::from_secs(30)
}
fn default_time_unit() -> Duration {
    Duration::from_secs(1)
}

/// One stage: reach `target` (VUs, or iterations per time unit) over `duration`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    #[serde(with = "serde_str")]
    pub duration: Duration,
    pub target: u64,
}

impl Stage {
    pub fn new(secs: u64, target: u64) -> Self {
        Stage {
            duration: Duration::from_secs(secs),
            target,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "executor", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ExecutorConfig {
    RampingVus {
        #[serde(default)]
        start_vus: u64,
        stages: Vec<Stage>,
        /// Time a VU being removed gets to finish its iteration.
        #[serde(default = "default_grace", with = "serde_str")]
        graceful_ramp_down: Duration,
    },
    ConstantVus {
        vus: u64,
        #[serde(with = "serde_str")]
        duration: Duration,
    },
    PerVuIterations {
        vus: u64,
        iterations: u64,
        #[serde(default = "default_max_duration", with = "serde_str")]
        max_duration: Duration,
    },
    ConstantArrivalRate {
        rate: u64,
        #[serde(default = "default_time_unit", with = "serde_str")]
        time_unit: Duration,
        #[serde(with = "serde_str")]
        duration: Duration,
        pre_allocated_vus: u64,
        #[serde(default)]
        max_vus: u64,
        /// `arrival`, `burstiness`, `seed`: how arrivals are spaced around the rate.
        #[serde(flatten)]
        arrivals: Arrivals,
    },
    RampingArrivalRate {
        #[serde(default)]
        start_rate: u64,
        #[serde(default = "default_time_unit", with = "serde_str")]
        time_unit: Duration,
        stages: Vec<Stage>,
        pre_allocated_vus: u64,
        #[serde(default)]
        max_vus: u64,
        /// `arrival`, `burstiness`, `seed`: how arrivals are spaced around the rate.
        #[serde(flatten)]
        arrivals: Arrivals,
    },
}

fn default_max_duration() -> Duration {
    Duration::from_secs(600)
}

/// Upper bound on VUs in one plan: far above any real run, low enough to catch typos.
pub const MAX_VUS: u64 = 1_000_000;

impl ExecutorConfig {
    pub fn name(&self) -> &'static str {
        match self {
            ExecutorConfig::RampingVus { .. } => "ramping-vus",
            ExecutorConfig::ConstantVus { .. } => "constant-vus",
            ExecutorConfig::PerVuIterations { .. } => "per-vu-iterations",
            ExecutorConfig::ConstantArrivalRate { .. } => "constant-arrival-rate",
            ExecutorConfig::RampingArrivalRate { .. } => "ramping-arrival-rate",
        }
    }

    /// Every problem, each naming the field (under `prefix`) and the accepted form.
    pub fn validate(&self, prefix: &str, errors: &mut Vec<String>) {
        let mut check_stages = |stages: &[Stage], what: &str| {
            if stages.is_empty() {
                errors.push(format!("{prefix}.stages: at least one stage is needed, e.g. [{{ duration = \"30s\", target = 5 }}]"));
            }
            for (i, s) in stages.iter().enumerate() {
                if s.duration.is_zero() && i + 1 == stages.len() && stages.len() == 1 {
                    errors.push(format!("{prefix}.stages[{i}].duration: must be > 0"));
                }
                if s.target > MAX_VUS {
                    errors.push(format!(
                        "{prefix}.stages[{i}].target: {} {what} is over the limit of {MAX_VUS}",
                        s.target
                    ));
                }
            }
            if stages.iter().all(|s| s.duration.is_zero()) && !stages.is_empty() {
                errors.push(format!(
                    "{prefix}.stages: the stages' total duration must be > 0"
                ));
            }
        };
        match self {
            ExecutorConfig::RampingVus {
                start_vus, stages, ..
            } => {
                check_stages(stages, "VUs");
                if *start_vus > MAX_VUS {
                    errors.push(format!(
                        "{prefix}.start_vus: {start_vus} is over the limit of {MAX_VUS}"
                    ));
                }
                if self.max_vus() == 0 {
                    errors.push(format!("{prefix}.stages: every target is 0, so no VU would ever run; raise a target"));
                }
            }
            ExecutorConfig::ConstantVus { vus, duration } => {
                if *vus == 0 || *vus > MAX_VUS {
                    errors.push(format!(
                        "{prefix}.vus: {vus} must be between 1 and {MAX_VUS}"
                    ));
                }
                if duration.is_zero() {
                    errors.push(format!("{prefix}.duration: must be > 0, e.g. \"30s\""));
                }
            }
            ExecutorConfig::PerVuIterations {
                vus,
                iterations,
                max_duration,
            } => {
                if *vus == 0 || *vus > MAX_VUS {
                    errors.push(format!(
                        "{prefix}.vus: {vus} must be between 1 and {MAX_VUS}"
                    ));
                }
                if *iterations == 0 {
                    errors.push(format!("{prefix}.iterations: must be >= 1"));
                }
                if max_duration.is_zero() {
                    errors.push(format!("{prefix}.max_duration: must be > 0, e.g. \"10m\""));
                }
            }
            ExecutorConfig::ConstantArrivalRate {
                rate,
                time_unit,
                duration,
                pre_allocated_vus,
                max_vus,
                arrivals,
            } => {
                if *rate == 0 {
                    errors.push(format!(
                        "{prefix}.rate: must be >= 1 iteration per time_unit"
                    ));
                }
                if time_unit.is_zero() {
                    errors.push(format!("{prefix}.time_unit: must be > 0, e.g. \"1s\""));
                }
                if duration.is_zero() {
                    errors.push(format!("{prefix}.duration: must be > 0, e.g. \"30s\""));
                }
                check_pool(prefix, *pre_allocated_vus, *max_vus, errors);
                arrivals.validate(prefix, errors);
            }
            ExecutorConfig::RampingArrivalRate {
                start_rate,
                time_unit,
                stages,
                pre_allocated_vus,
                max_vus,
                arrivals,
            } => {
                check_stages(stages, "iterations per time_unit");
                if *start_rate == 0 && stages.iter().all(|s| s.target == 0) {
                    errors.push(format!("{prefix}.stages: start_rate and every target are 0, so no iteration would ever start; raise a target"));
                }
                if time_unit.is_zero() {
                    errors.push(format!("{prefix}.time_unit: must be > 0, e.g. \"1s\""));
                }
                check_pool(prefix, *pre_allocated_vus, *max_vus, errors);
                arrivals.validate(prefix, errors);
            }
        }
    }

    /// The scheduled duration, without graceful stop.
    pub fn duration(&self) -> Duration {
        match self {
            ExecutorConfig::RampingVus { stages, .. }
            | ExecutorConfig::RampingArrivalRate { stages, .. } => {
                stages.iter().map(|s| s.duration).sum()
            }
            ExecutorConfig::ConstantVus { duration, .. }
            | ExecutorConfig::ConstantArrivalRate { duration, .. } => *duration,
            ExecutorConfig::PerVuIterations { max_duration, .. } => *max_duration,
        }
    }

    /// The most VUs the plan can ever run at once (k6's `vus_max`).
    pub fn max_vus(&self) -> u64 {
        match self {
            ExecutorConfig::RampingVus {
                start_vus, stages, ..
            } => stages
                .iter()
                .map(|s| s.target)
                .chain([*start_vus])
                .max()
                .unwrap_or(0),
            ExecutorConfig::ConstantVus { vus, .. }
            | ExecutorConfig::PerVuIterations { vus, .. } => *vus,
            ExecutorConfig::ConstantArrivalRate { .. }
            | ExecutorConfig::RampingArrivalRate { .. } => self.vu_pool().map_or(0, |(_, max)| max),
        }
    }

    /// The arrival-rate executors' VU pool: (pre-allocated, max), max at least
    /// pre-allocated; `None` for the closed-model executors.
    pub fn vu_pool(&self) -> Option<(u64, u64)> {
        match self {
            ExecutorConfig::ConstantArrivalRate {
                pre_allocated_vus,
                max_vus,
                ..
            }
            | ExecutorConfig::RampingArrivalRate {
                pre_allocated_vus,
                max_vus,
                ..
            } => Some((*pre_allocated_vus, (*max_vus).max(*pre_allocated_vus))),
            _ => None,
        }
    }

    pub fn is_arrival_rate(&self) -> bool {
        matches!(
            self,
            ExecutorConfig::ConstantArrivalRate { .. } | ExecutorConfig::RampingArrivalRate { .. }
        )
    }

    /// Global VU target at `t` for the closed-model executors; `None` for arrival-rate ones.
    /// After the last stage it stays at the last target (the run is over then).
    pub fn vus_at(&self, t: Duration) -> Option<u64> {
        match self {
            ExecutorConfig::RampingVus {
                start_vus, stages, ..
            } => Some(round_half_up(interpolate(*start_vus, stages, t))),
            ExecutorConfig::ConstantVus { vus, .. }
            | ExecutorConfig::PerVuIterations { vus, .. } => Some(*vus),
            _ => None,
        }
    }

    /// Iterations per second at `t` for the open-model executors.
    pub fn rate_at(&self, t: Duration) -> Option<f64> {
        match self {
            ExecutorConfig::ConstantArrivalRate {
                rate, time_unit, ..
            } => Some(*rate as f64 / time_unit.as_secs_f64()),
            ExecutorConfig::RampingArrivalRate {
                start_rate,
                time_unit,
                stages,
                ..
            } => Some(interpolate(*start_rate, stages, t) / time_unit.as_secs_f64()),
            _ => None,
        }
    }

    /// The arrival settings of the arrival-rate executors; `None` for the closed-model ones.
    pub fn arrivals(&self) -> Option<Arrivals> {
        match self {
            ExecutorConfig::ConstantArrivalRate { arrivals, .. }
            | ExecutorConfig::RampingArrivalRate { arrivals, .. } => Some(*arrivals),
            _ => None,
        }
    }

    /// When global iteration `i` (0-based) of an arrival-rate schedule is due, or `None`
    /// when it falls after the schedule's end (or the executor is not arrival-rate).
    /// Random arrivals are walked from iteration 0, so this costs `O(i)` for them: a
    /// runtime walks a [`Schedule`] instead.
    pub fn iteration_start(&self, i: u64) -> Option<Duration> {
        let arrivals = self.arrivals()?;
        if arrivals.shape().is_none() {
            return self.time_at_count(i as f64);
        }
        let mut schedule = Schedule::new(self)?;
        while schedule.index() < i {
            schedule.due()?;
            schedule.advance();
        }
        schedule.due()
    }

    /// `Λ⁻¹(target)`: when the expected number of arrivals since stage time 0 reaches
    /// `target` (`target = i` is evenly spaced iteration `i`; see [`crate::arrivals`]), or
    /// `None` when that is after the schedule's end (or the executor is not arrival-rate).
    pub fn time_at_count(&self, target: f64) -> Option<Duration> {
        match self {
            ExecutorConfig::ConstantArrivalRate {
                rate,
                time_unit,
                duration,
                ..
            } => {
                let per_sec = *rate as f64 / time_unit.as_secs_f64();
                let t = target / per_sec;
                (t < duration.as_secs_f64()).then(|| Duration::from_secs_f64(t))
            }
            ExecutorConfig::RampingArrivalRate {
                start_rate,
                time_unit,
                stages,
                ..
            } => {
                let unit = time_unit.as_secs_f64();
                let mut done = 0.0; // iterations scheduled before this stage
                let mut t0 = 0.0;
                let mut r0 = *start_rate as f64 / unit;
                for s in stages {
                    let d = s.duration.as_secs_f64();
                    let r1 = s.target as f64 / unit;
                    let area = (r0 + r1) / 2.0 * d;
                    if done + area > target {
                        let need = target - done;
                        // need = r0·τ + (r1−r0)/(2d)·τ²
                        let a = (r1 - r0) / (2.0 * d);
                        let tau = if a.abs() < 1e-12 {
                            need / r0
                        } else {
                            (-r0 + (r0 * r0 + 4.0 * a * need).max(0.0).sqrt()) / (2.0 * a)
                        };
                        return Some(Duration::from_secs_f64(t0 + tau.clamp(0.0, d)));
                    }
                    done += area;
                    t0 += d;
                    r0 = r1;
                }
                None
            }
            _ => None,
        }
    }

    /// A one-line description, like k6's scenario line.
    pub fn describe(&self) -> String {
        match self {
            ExecutorConfig::RampingVus { start_vus, stages, .. } => {
                let mut s = format!("ramping-vus: {start_vus}");
                for st in stages {
                    s.push_str(&format!(" →{}→ {}", format_duration(st.duration), st.target));
                }
                s
            }
            ExecutorConfig::ConstantVus { vus, duration } => format!("constant-vus: {vus} VUs for {}", format_duration(*duration)),
            ExecutorConfig::PerVuIterations { vus, iterations, max_duration } => {
                format!("per-vu-iterations: {vus} VUs × {iterations} iterations (max {})", format_duration(*max_duration))
            }
            ExecutorConfig::ConstantArrivalRate { rate, time_unit, duration, pre_allocated_vus, max_vus, arrivals } => format!(
                "constant-arrival-rate: {rate}/{} for {} ({pre_allocated_vus} pre-allocated VUs, max {}){}",
                format_duration(*time_unit),
                format_duration(*duration),
                (*max_vus).max(*pre_allocated_vus),
                arrivals.describe()
            ),
            ExecutorConfig::RampingArrivalRate { start_rate, time_unit, stages, pre_allocated_vus, max_vus, arrivals } => {
                let mut s = format!("ramping-arrival-rate: {start_rate}/{}", format_duration(*time_unit));
                for st in stages {
                    s.push_str(&format!(" →{}→ {}", format_duration(st.duration), st.target));
                }
                s.push_str(&format!(" ({pre_allocated_vus} pre-allocated VUs, max {})", (*max_vus).max(*pre_allocated_vus)));
                s.push_str(&arrivals.describe());
                s
            }
        }
    }
}

fn check_pool(prefix: &str, pre: u64, max: u64, errors: &mut Vec<String>) {
    if pre == 0 {
        errors.push(format!("{prefix}.pre_allocated_vus: must be >= 1"));
    }
    if max != 0 && max < pre {
        errors.push(format!(
            "{prefix}.max_vus: {max} is below pre_allocated_vus {pre}; raise it or leave it out"
        ));
    }
    if pre.max(max) > MAX_VUS {
        errors.push(format!("{prefix}.max_vus: over the limit of {MAX_VUS}"));
    }
}

fn interpolate(start: u64, stages: &[Stage], t: Duration) -> f64 {
    let mut from = start as f64;
    let mut elapsed = Duration::ZERO;
    for s in stages {
        if t < elapsed + s.duration {
            let frac = (t - elapsed).as_secs_f64() / s.duration.as_secs_f64();
            return from + (s.target as f64 - from) * frac;
        }
        elapsed += s.duration;
        from = s.target as f64;
    }
    from
}

fn round_half_up(x: f64) -> u64 {
    (x + 0.5).floor().max(0.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed_default() -> ExecutorConfig {
        crate::plan::Plan::profile(crate::plan::Profile::Default).scenario
    }

    #[test]
    fn seed_ramp_curve() {
        let e = seed_default();
        let at = |s: f64| e.vus_at(Duration::from_secs_f64(s)).unwrap();
        let cases = [
            (0.0, 0),
            (4.9, 0),
            (5.0, 1),
            (10.0, 1),
            (20.0, 2),
            (30.0, 3),
            (45.0, 4),
            (59.9, 5),
            (60.0, 5),
            (70.0, 4),
            (80.0, 3),
            (90.0, 1),
            (200.0, 1),
        ];
        for (t, v) in cases {
            assert_eq!(at(t), v, "t={t}");
        }
        assert_eq!(e.duration(), Duration::from_secs(90));
        assert_eq!(e.max_vus(), 5);
    }

    #[test]
    fn constant_arrival_schedule() {
        let e = ExecutorConfig::ConstantArrivalRate {
            rate: 10,
            time_unit: Duration::from_secs(1),
            duration: Duration::from_secs(2),
            pre_allocated_vus: 2,
            max_vus: 0,
            arrivals: Default::default(),
        };
        assert_eq!(e.iteration_start(0), Some(Duration::ZERO));
        assert_eq!(e.iteration_start(5), Some(Duration::from_millis(500)));
        assert_eq!(e.iteration_start(19).map(|d| d.as_millis()), Some(1900));
        assert_eq!(e.iteration_start(20), None);
    }

    #[test]
    fn ramping_arrival_schedule_counts() {
        // 0 → 10/s over 10 s: 50 iterations, then 10/s for 5 s: 50 more.
        let e = ExecutorConfig::RampingArrivalRate {
            start_rate: 0,
            time_unit: Duration::from_secs(1),
            stages: vec![Stage::new(10, 10), Stage::new(5, 10)],
            pre_allocated_vus: 5,
            max_vus: 10,
            arrivals: Default::default(),
        };
        let count = (0..1000)
            .take_while(|i| e.iteration_start(*i).is_some())
            .count();
        assert_eq!(count, 100);
        // iteration 50 starts when the ramp ends
        let t = e.iteration_start(50).unwrap().as_secs_f64();
        assert!((t - 10.0).abs() < 1e-6, "{t}");
        let mut last = Duration::ZERO;
        for i in 0..100 {
            let t = e.iteration_start(i).unwrap();
            assert!(t >= last);
            last = t;
        }
    }

    #[test]
    fn validation_names_fields() {
        let bad = ExecutorConfig::ConstantArrivalRate {
            rate: 0,
            time_unit: Duration::ZERO,
            duration: Duration::ZERO,
            pre_allocated_vus: 0,
            max_vus: 0,
            arrivals: Default::default(),
        };
        let mut errs = vec![];
        bad.validate("executor", &mut errs);
        for field in [
            "executor.rate",
            "executor.time_unit",
            "executor.duration",
            "executor.pre_allocated_vus",
        ] {
            assert!(
                errs.iter().any(|e| e.starts_with(field)),
                "{field} missing in {errs:?}"
            );
        }
        let mut errs = vec![];
        ExecutorConfig::RampingVus {
            start_vus: 0,
            stages: vec![],
            graceful_ramp_down: Duration::ZERO,
        }
        .validate("executor", &mut errs);
        assert!(errs.iter().any(|e| e.starts_with("executor.stages")));
    }

    /// Issue 14: an arrival-rate plan whose rates are all zero was accepted and ran nothing.
    #[test]
    fn an_arrival_rate_of_zero_throughout_is_refused() {
        let ramp = |start_rate, targets: &[u64]| {
            let mut errs = vec![];
            ExecutorConfig::RampingArrivalRate {
                start_rate,
                time_unit: Duration::from_secs(1),
                stages: targets.iter().map(|t| Stage::new(10, *t)).collect(),
                pre_allocated_vus: 1,
                max_vus: 2,
                arrivals: Default::default(),
            }
            .validate("scenario", &mut errs);
            errs
        };
        let errs = ramp(0, &[0, 0]);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with("scenario.stages: start_rate and every target are 0"));
        assert_eq!(ramp(0, &[0, 3]), Vec::<String>::new());
        assert_eq!(ramp(2, &[0]), Vec::<String>::new());
    }

    #[test]
    fn toml_round_trip() {
        let text = r#"
executor = "ramping-vus"
start_vus = 1
stages = [{ duration = "30s", target = 5 }, { duration = "1m", target = 10 }]
"#;
        let e: ExecutorConfig = toml::from_str(text).unwrap();
        assert_eq!(e.max_vus(), 10);
        assert_eq!(e.duration(), Duration::from_secs(90));
        let back: ExecutorConfig =
            serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back, e);
    }
}

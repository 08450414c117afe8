//! One plateau: its plan (the user's flow, target and auth with the plateau's scenario), a
//! child `barrage run` of it (`crate::child_run`, as `barrage sweep` runs its pairs), or
//! with remote workers a child `barrage controller` (`super::remote`), and the plateau's
//! figures read back from the run's summary.
//!
//! The scenario holds the load for warm-up + plateau as two stages, so the run's summary
//! has the plateau on its own (`stages[1]`; `stages[0]` with no warm-up):
//!
//! ```text
//! load ▲  warm-up     plateau (measured)   stop tail
//!      │ ┌─────────┬────────────────────┐
//!      │ │ stage 0 │      stage 1       │╲ graceful stop
//!      └─┴─────────┴────────────────────┴─────────► t
//! ```
//!
//! VUs: `ramping-vus` starting at N. Rate: `ramping-arrival-rate` per minute (so fractional
//! rates run as asked), a VU pool from one second's arrivals that may grow to a minute's
//! (an iteration slowed by an overloaded target keeps its VU; running out of VUs would
//! drop iterations and make the plateau invalid for the generator's sake).
//! The plan's thresholds are dropped: the plateau's verdict is characterize's, and an
//! `abortOnFail` threshold would cut a plateau short.
use super::config::{By, Settings};
use super::measure::{self, Measured};
use crate::child_run;
use barrage_core::executor::{ExecutorConfig, Stage, MAX_VUS};
use barrage_core::summary::Summary;
use barrage_core::Plan;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a plateau produced no figures.
#[derive(Debug, thiserror::Error)]
pub enum PlateauError {
    #[error("cannot prepare {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the plateau's plan does not serialize: {0}")]
    Plan(String),
    #[error("`barrage {0}` refused the plateau's flags or plan (see its message above); fix the flags after `--`")]
    Refused(&'static str),
    #[error("cannot run the plateau: {0:#}")]
    Spawn(anyhow::Error),
    #[error("plateau {n} ({load}): {why}; see {log}")]
    NoFigures {
        n: u32,
        load: String,
        why: String,
        log: String,
    },
}

/// Runs plateaus: the base plan, where they go, how to start `barrage run`.
#[derive(Debug)]
pub struct Runner {
    /// barrage's own executable.
    pub exe: PathBuf,
    /// The user's plan with the flags applied (validated).
    pub base: Plan,
    /// The target is the one `barrage run` starts itself: the written plan must not name a
    /// URL (a plan that names one means an external target).
    pub embedded: bool,
    pub settings: Settings,
    /// `{results_dir}/characterize/`: one folder per plateau.
    pub dir: PathBuf,
    /// Passed to every `barrage run` (`barrage controller`) as given.
    pub run_flags: Vec<String>,
    /// Remote workers: each plateau is a `barrage controller` with these flags.
    pub remote: Option<super::remote::Remote>,
}

/// Iterations per minute for a rate in iterations/s.
fn per_minute(rate: f64) -> u64 {
    (rate * 60.0).round().max(1.0) as u64
}

/// The plateau's scenario at `load`.
pub fn scenario(s: &Settings, load: f64) -> ExecutorConfig {
    let stages = |target: u64| {
        let mut v = Vec::new();
        if !s.warmup.is_zero() {
            v.push(Stage {
                duration: s.warmup,
                target,
            });
        }
        v.push(Stage {
            duration: s.plateau,
            target,
        });
        v
    };
    match s.by {
        By::Vus => {
            let n = load.round().max(1.0) as u64;
            ExecutorConfig::RampingVus {
                start_vus: n,
                stages: stages(n),
                graceful_ramp_down: s.graceful_stop,
            }
        }
        By::Rate => {
            let per_min = per_minute(load);
            let pre = load.ceil().max(1.0) as u64;
            ExecutorConfig::RampingArrivalRate {
                start_rate: per_min,
                time_unit: Duration::from_secs(60),
                stages: stages(per_min),
                pre_allocated_vus: pre,
                max_vus: per_min.clamp(pre, MAX_VUS),
                arrivals: Default::default(),
            }
        }
    }
}

/// The index of the measured stage in the run's summary.
pub fn plateau_stage(s: &Settings) -> u32 {
    u32::from(!s.warmup.is_zero())
}

impl Runner {
    /// The plateau's plan at `load`.
    pub fn plan(&self, load: f64) -> Plan {
        let mut p = self.base.clone();
        p.scenario = scenario(&self.settings, load);
        p.graceful_stop = self.settings.graceful_stop;
        p.thresholds.clear();
        p
    }

    /// The plan as TOML for `barrage run --plan`.
    pub fn plan_toml(&self, plan: &Plan) -> Result<String, PlateauError> {
        let mut table =
            toml::Table::try_from(plan).map_err(|e| PlateauError::Plan(e.to_string()))?;
        if self.embedded {
            if let Some(toml::Value::Table(t)) = table.get_mut("target") {
                t.remove("url");
            }
        }
        let text = toml::to_string(&table).map_err(|e| PlateauError::Plan(e.to_string()))?;
        // what `barrage run` will read must be what was meant
        Plan::from_toml_str(&text).map_err(|e| PlateauError::Plan(e.to_string()))?;
        Ok(text)
    }

    /// Folder of plateau `n`: `p01-8vus`, `p02-12.5per_s`.
    pub fn folder(&self, n: u32, load: f64) -> PathBuf {
        let unit = match self.settings.by {
            By::Vus => "vus",
            By::Rate => "per_s",
        };
        self.dir
            .join(format!("p{n:02}-{}{unit}", super::config::fmt_load(load)))
    }

    /// Runs plateau `n` at `load` and reads its figures.
    pub fn run(&self, n: u32, load: f64) -> Result<Measured, PlateauError> {
        let dir = self.folder(n, load);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| PlateauError::Io { path, source }
        };
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let plan_path = dir.join("plan.toml");
        let plan = self.plan(load);
        std::fs::write(&plan_path, self.plan_toml(&plan)?).map_err(io(&plan_path))?;
        let mut args = self.child_args(&plan_path, &dir);
        args.extend(self.run_flags.iter().cloned());
        let log = dir.join("run.log");
        let exit = child_run::run(&self.exe, &args, &log).map_err(PlateauError::Spawn)?;
        if exit.refused_flags() {
            return Err(PlateauError::Refused(exit.1));
        }
        let no_figures = |why: String| PlateauError::NoFigures {
            n,
            load: format!(
                "{} {}",
                super::config::fmt_load(load),
                self.settings.by.unit()
            ),
            why,
            log: log.display().to_string(),
        };
        let path = summary_in(&dir).ok_or_else(|| no_figures("no summary was written".into()))?;
        let summary: Summary = child_run::read_summary(&path, Some(exit)).map_err(&no_figures)?;
        let mut m = measure::measure(
            &summary,
            plateau_stage(&self.settings),
            load,
            &self.settings.latency_metric,
        )
        .map_err(&no_figures)?;
        if n == 1 && !summary.metrics.contains_key(&self.settings.latency_metric) {
            return Err(no_figures(format!(
                "the flow records no {} metric; name one it records with --p95 METRIC=DURATION (e.g. iteration_duration=8s)",
                self.settings.latency_metric
            )));
        }
        m.summary = path.display().to_string();
        Ok(m)
    }

    /// The child's subcommand and flags before the user's (those after `--`).
    fn child_args(&self, plan: &Path, dir: &Path) -> Vec<String> {
        let command = if self.remote.is_some() {
            "controller"
        } else {
            "run"
        };
        let mut args: Vec<String> = vec![
            command.into(),
            "--no-progress".into(),
            "--plan".into(),
            plan.display().to_string(),
            "--results-dir".into(),
            dir.display().to_string(),
        ];
        if let Some(r) = &self.remote {
            args.extend(r.controller_flags.iter().cloned());
        }
        args
    }
}

/// The one `*.summary.json` in a plateau's folder.
fn summary_in(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|f| f.to_string_lossy().ends_with(".summary.json"))
        })
}

#[cfg(test)]
mod tests {
    use super::super::search::tests::settings;
    use super::*;

    #[test]
    fn plateau_plans_hold_the_load_through_warm_up_and_plateau() {
        let s = settings(By::Vus, None);
        match scenario(&s, 8.0) {
            ExecutorConfig::RampingVus {
                start_vus, stages, ..
            } => {
                assert_eq!(start_vus, 8);
                assert_eq!(stages, [Stage::new(1, 8), Stage::new(3, 8)]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(plateau_stage(&s), 1);
        let s = settings(By::Rate, None);
        match scenario(&s, 10.875) {
            ExecutorConfig::RampingArrivalRate {
                start_rate,
                time_unit,
                stages,
                pre_allocated_vus,
                max_vus,
                ..
            } => {
                assert_eq!((start_rate, time_unit), (653, Duration::from_secs(60)));
                assert_eq!(stages, [Stage::new(1, 653), Stage::new(3, 653)]);
                assert_eq!((pre_allocated_vus, max_vus), (11, 653));
            }
            other => panic!("{other:?}"),
        }
        let mut s = settings(By::Rate, None);
        s.warmup = Duration::ZERO;
        assert_eq!(plateau_stage(&s), 0);
    }

    #[test]
    fn the_written_plan_reads_back_and_leaves_the_embedded_target_unnamed() {
        let mut base = Plan::profile(barrage_core::Profile::Default);
        base.target.url = "http://127.0.0.1:9".into();
        let mut r = Runner {
            exe: PathBuf::from("barrage"),
            base,
            embedded: false,
            settings: settings(By::Rate, None),
            dir: PathBuf::from("results"),
            run_flags: vec![],
            remote: None,
        };
        let plan = r.plan(4.0);
        assert!(plan.thresholds.is_empty());
        let text = r.plan_toml(&plan).unwrap();
        let back = Plan::from_toml_str(&text).unwrap();
        assert_eq!(back.scenario, plan.scenario);
        assert_eq!(back.target.url, "http://127.0.0.1:9");
        r.embedded = true;
        let text = r.plan_toml(&plan).unwrap();
        let table: toml::Table = toml::from_str(&text).unwrap();
        assert!(table["target"].get("url").is_none(), "{text}");
        assert_eq!(r.folder(3, 12.5), PathBuf::from("results/p03-12.5per_s"));
    }
}

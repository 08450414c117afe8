//! Soak runs: runs that last hours or days, where what matters is drift, not a p95.
//!
//! | file            | what                                                               |
//! |-----------------|--------------------------------------------------------------------|
//! | `mod.rs`        | [`SoakArgs`] (flags) → [`SoakConfig`]; trends for the summary      |
//! | `checkpoint.rs` | the run's merged state on disk every `--checkpoint-every`, atomically, and a partial summary beside it; `--resume` reads it back |
//! | `resources.rs`  | the target's threads / assistants / store items / active runs before and after, and the verdict's inputs |
//! | `paging.rs`     | the Agent Protocol counts and searches behind it, bounded by pages and time |
//! | `local.rs`      | `barrage run --resume`: `local.json` (children, address, flags), taking the children over |
//! | `keeper.rs`     | `barrage soak-keeper`: stops a dead `barrage run`'s children if nobody resumes |
//!
//! Why each piece: a long run must keep the controller's memory flat (the time series is
//! downsampled: `barrage_core::timeseries`), must survive the controller's own crash (a
//! checkpoint, and workers that wait for it: `barrage_core::liveness::REJOIN_GRACE`), and
//! must say whether the target drifts (`barrage_core::trend`: slopes with 95 % intervals
//! after warm-up) and whether it gave back what the run created (`resources`).
pub mod checkpoint;
pub mod keeper;
pub mod local;
pub mod paging;
pub mod resources;

use barrage_core::telemetry::TargetSummary;
use barrage_core::timeseries::{Ladder, TimeSeries};
use barrage_core::trend::{self, Trends};
use barrage_core::Plan;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// The checkpoint period of `--soak` when `--checkpoint-every` is not given.
pub const DEFAULT_CHECKPOINT_EVERY: Duration = Duration::from_secs(60);
/// How long workers keep their load running while their controller is gone, with `--soak`.
pub const DEFAULT_REJOIN_GRACE: Duration = Duration::from_secs(60);

/// Flags of a soak run (`barrage run` and `barrage controller`).
#[derive(Debug, Clone, Default, Args)]
pub struct SoakArgs {
    /// A long run: trend verdicts in the summary (slopes of p99 latency, error rate and,
    /// with target telemetry, the target's RSS, CPU per request and fds), checkpoints every
    /// minute, workers that wait 60 s for a restarted controller, and a check that the
    /// target's threads/assistants/store items returned to their count at the start.
    #[arg(long)]
    pub soak: bool,
    /// Write the run's merged state (and a partial summary) to the results folder this
    /// often (default 1m with --soak, none without), e.g. 30s, 5m.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub checkpoint_every: Option<Duration>,
    /// Time from the start left out of the trends (default: a tenth of the plan's
    /// duration).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub soak_warmup: Option<Duration>,
    /// How long workers keep running without their controller, waiting for it to come
    /// back (default 60s with --soak; without --soak workers stop their load as soon as
    /// they lose the controller).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub rejoin_grace: Option<Duration>,
    /// How far back the time series keeps one row per interval (default 1h); older rows
    /// are downsampled to a 360th of it (10 s), then, past six times it, to a 60th (1 min).
    /// A soak compressed in time (short intervals) can compress this window with it.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub full_resolution: Option<Duration>,
    /// Continue the run checkpointed in DIR (a `*.checkpoint` folder of the results
    /// folder) after this controller was killed: its workers rejoin, and the figures so
    /// far are loaded. `barrage controller`: give the same plan flags as the first time.
    /// `barrage run`: give it alone; the first run's flags and children are in DIR.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Count the target's threads / assistants / store items / active runs before the run
    /// and check at the end that they returned to that baseline (`trends.resources` in the
    /// summary). On with --soak; off by default otherwise, since it sends requests of its
    /// own to the target (one `GET /stats` on the reference runtime; paged searches on a
    /// LangGraph server).
    #[arg(long)]
    pub baseline_check: bool,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    barrage_core::duration::parse_duration(text)
}

/// A bad soak flag, named with its fix.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SoakError {
    #[error("--checkpoint-every {given:?}: shorter than the plan's interval ({interval:?}); checkpoint at most once per interval")]
    CheckpointTooOften { given: Duration, interval: Duration },
    #[error("--soak-warmup {given:?}: not shorter than the plan ({plan:?}); nothing would be left to fit a trend on, so shorten the warm-up")]
    WarmupTooLong { given: Duration, plan: Duration },
    #[error("--{flag}: only with --soak; add --soak")]
    NeedsSoak { flag: &'static str },
    #[error("--rejoin-grace {given:?}: shorter than the plan's interval ({interval:?}); give the workers at least an interval")]
    GraceTooShort { given: Duration, interval: Duration },
    #[error("--full-resolution {given:?}: its downsampled rows (a 360th of it) would be shorter than the plan's interval ({interval:?}); give at least {least:?}")]
    FullResolutionTooShort {
        given: Duration,
        interval: Duration,
        least: Duration,
    },
    #[error("--full-resolution {given:?}: {rows} rows of {interval:?} kept whole, over the {MAX_FULL_ROWS} the controller keeps; give at most {most:?}")]
    FullResolutionTooLong {
        given: Duration,
        interval: Duration,
        rows: u128,
        most: Duration,
    },
}

/// The most rows `--full-resolution` may keep whole (a row is under 100 bytes).
pub const MAX_FULL_ROWS: u128 = 1_000_000;

/// The soak settings of a run, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct SoakConfig {
    /// Left out of the trends.
    pub warmup: Duration,
    /// Checkpoint period (`None`: no checkpoints).
    pub checkpoint_every: Option<Duration>,
    /// Sent to the workers in the assignment: how long they wait for a lost controller.
    pub rejoin_grace: Duration,
    /// Check the target's resources before and after.
    pub resources: bool,
    /// `--resume DIR`.
    pub resume: Option<PathBuf>,
    /// How the time series (and target telemetry) are downsampled: `--full-resolution`.
    pub ladder: Ladder,
}

impl SoakArgs {
    /// The run's soak settings (`None`: an ordinary run), every flag checked against the
    /// plan.
    pub fn validate(&self, plan: &Plan) -> Result<Option<SoakConfig>, SoakError> {
        let interval = plan.interval;
        if !self.soak {
            for (given, flag) in [
                (self.soak_warmup.is_some(), "soak-warmup"),
                (self.rejoin_grace.is_some(), "rejoin-grace"),
                (self.resume.is_some(), "resume"),
                (self.checkpoint_every.is_some(), "checkpoint-every"),
                (self.full_resolution.is_some(), "full-resolution"),
            ] {
                if given {
                    return Err(SoakError::NeedsSoak { flag });
                }
            }
            return Ok(None);
        }
        let every = self.checkpoint_every.unwrap_or(DEFAULT_CHECKPOINT_EVERY);
        if every < interval {
            return Err(SoakError::CheckpointTooOften {
                given: every,
                interval,
            });
        }
        let length = plan.scenario.duration();
        let warmup = self.soak_warmup.unwrap_or(length / 10);
        if warmup >= length {
            return Err(SoakError::WarmupTooLong {
                given: warmup,
                plan: length,
            });
        }
        let grace = self.rejoin_grace.unwrap_or(DEFAULT_REJOIN_GRACE);
        if grace < interval {
            return Err(SoakError::GraceTooShort {
                given: grace,
                interval,
            });
        }
        let full = self
            .full_resolution
            .unwrap_or(barrage_core::timeseries::FULL_RESOLUTION);
        let least = interval * 360;
        if full < least {
            return Err(SoakError::FullResolutionTooShort {
                given: full,
                interval,
                least,
            });
        }
        let rows = full.as_millis() / interval.as_millis().max(1);
        if rows > MAX_FULL_ROWS {
            return Err(SoakError::FullResolutionTooLong {
                given: full,
                interval,
                rows,
                most: interval * MAX_FULL_ROWS as u32,
            });
        }
        Ok(Some(SoakConfig {
            warmup,
            checkpoint_every: Some(every),
            rejoin_grace: grace,
            resources: true,
            resume: self.resume.clone(),
            ladder: Ladder::new(full),
        }))
    }
}

/// Why a soak run cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SoakStartError {
    /// `--resume DIR` does not hold a checkpoint of this plan (exit 2).
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    /// `--resume DIR` holds a resource baseline that cannot be read (exit 2).
    #[error(transparent)]
    Baseline(#[from] resources::BaselineError),
    #[error("cannot create the checkpoint folder in {}: {source}; check --results-dir", dir.display())]
    Dir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A soak run under way, on the command's side: its checkpoint folder.
pub struct SoakRun {
    cfg: SoakConfig,
    /// The checkpoint folder (the resumed one with `--resume`).
    pub dir: PathBuf,
    writer: checkpoint::Writer,
}

/// The back-to-baseline check of a run (`--soak`, or `--baseline-check`; `None` without
/// either): the target's counts now, written into the soak's checkpoint folder, or with
/// `--resume` the counts the first controller wrote there. Call it once the target is up
/// and before the load starts.
pub async fn baseline(
    cfg: &crate::config::RunConfig,
    soak: Option<&SoakRun>,
) -> Result<Option<resources::Baseline>, SoakStartError> {
    if !cfg.baseline_check {
        return Ok(None);
    }
    let counter = resources::Counter::for_plan(&cfg.plan, &cfg.secrets);
    Ok(Some(match soak {
        Some(s) if s.cfg.resume.is_some() => resources::Baseline::resumed(counter, &s.dir)?,
        Some(s) => resources::Baseline::take(counter, Some(&s.dir)).await,
        None => resources::Baseline::take(counter, None).await,
    }))
}

impl SoakRun {
    /// For a run with `--soak`: loads the checkpoint to resume or creates the folder of
    /// new ones, and gives the coordinator its writer.
    pub async fn prepare(
        cfg: &crate::config::RunConfig,
        coord: &mut crate::coordinator::CoordinatorConfig,
    ) -> Result<Option<SoakRun>, SoakStartError> {
        let Some(soak) = cfg.soak.clone() else {
            return Ok(None);
        };
        let dir = match &soak.resume {
            Some(dir) => {
                coord.resume = Some(crate::coordinator::hub::load_checkpoint(dir, &cfg.plan)?);
                dir.clone()
            }
            None => checkpoint::new_dir(&cfg.results_dir, &cfg.plan).map_err(|source| {
                SoakStartError::Dir {
                    dir: cfg.results_dir.clone(),
                    source,
                }
            })?,
        };
        let writer = checkpoint::Writer::start(dir.clone());
        coord.checkpoints = Some(writer.clone());
        barrage_core::errln!(
            "barrage: soak run; checkpoints every {:?} in {} (resume with --resume {})",
            soak.checkpoint_every.unwrap_or_default(),
            dir.display(),
            dir.display()
        );
        Ok(Some(SoakRun {
            cfg: soak,
            dir,
            writer,
        }))
    }

    /// The `trends` section of the run's summary.
    pub fn trends(
        &self,
        ts: &TimeSeries,
        target: Option<&TargetSummary>,
        resources: Option<barrage_core::trend::ResourceCheck>,
    ) -> Trends {
        let mut t = trends(ts, target, &self.cfg);
        t.resources = resources;
        t
    }

    /// The run's summary is written: its checkpoint folder is obsolete.
    pub async fn close(self) {
        self.writer.flush(Duration::from_secs(5)).await;
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "checkpoint folder not removed");
        }
    }
}

/// The summary's `trends` section of a soak run.
pub fn trends(ts: &TimeSeries, target: Option<&TargetSummary>, cfg: &SoakConfig) -> Trends {
    trend::compute(ts, target, cfg.warmup)
}

#[cfg(test)]
mod tests {
    use super::*;
    use barrage_core::Profile;

    #[test]
    fn soak_flags_are_checked_against_the_plan() {
        let plan = Plan::profile(Profile::Default); // 90 s, 1 s interval
        let s = |f: fn(&mut SoakArgs)| {
            let mut a = SoakArgs {
                soak: true,
                ..Default::default()
            };
            f(&mut a);
            a.validate(&plan)
        };
        let ok = s(|_| {}).unwrap().unwrap();
        assert_eq!(ok.checkpoint_every, Some(DEFAULT_CHECKPOINT_EVERY));
        assert_eq!(ok.rejoin_grace, DEFAULT_REJOIN_GRACE);
        assert_eq!(ok.warmup, plan.scenario.duration() / 10);
        assert_eq!(
            s(|a| a.checkpoint_every = Some(Duration::from_millis(100))),
            Err(SoakError::CheckpointTooOften {
                given: Duration::from_millis(100),
                interval: Duration::from_secs(1)
            })
        );
        let long = s(|a| a.soak_warmup = Some(Duration::from_secs(600))).unwrap_err();
        assert!(long.to_string().contains("shorten the warm-up"), "{long}");
        assert!(matches!(
            s(|a| a.rejoin_grace = Some(Duration::from_millis(10))),
            Err(SoakError::GraceTooShort { .. })
        ));
        assert_eq!(ok.ladder, Ladder::default());
        let six = s(|a| a.full_resolution = Some(Duration::from_secs(360))).unwrap();
        assert_eq!(
            six.unwrap().ladder.full_resolution(),
            Duration::from_secs(360)
        );
        let short = s(|a| a.full_resolution = Some(Duration::from_secs(359))).unwrap_err();
        assert_eq!(
            short.to_string(),
            "--full-resolution 359s: its downsampled rows (a 360th of it) would be shorter \
             than the plan's interval (1s); give at least 360s"
        );
        let long = s(|a| a.full_resolution = Some(Duration::from_secs(1_000_001))).unwrap_err();
        assert!(
            matches!(
                long,
                SoakError::FullResolutionTooLong {
                    rows: 1_000_001,
                    ..
                }
            ),
            "{long}"
        );
        assert!(long.to_string().contains("give at most 1000000s"), "{long}");
        let off = SoakArgs::default();
        assert_eq!(off.validate(&plan), Ok(None));
        let window = SoakArgs {
            full_resolution: Some(Duration::from_secs(600)),
            ..Default::default()
        };
        assert_eq!(
            window.validate(&plan).unwrap_err().to_string(),
            "--full-resolution: only with --soak; add --soak"
        );
        let alone = SoakArgs {
            checkpoint_every: Some(Duration::from_secs(5)),
            ..Default::default()
        };
        assert_eq!(
            alone.validate(&plan).unwrap_err().to_string(),
            "--checkpoint-every: only with --soak; add --soak"
        );
    }
}

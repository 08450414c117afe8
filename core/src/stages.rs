//! Per-stage results. A whole-run p95 mixes ramps and plateaus; a lab comparing runtimes needs
//! each plateau on its own. [`StageSpan::of`] turns the plan's executor into its stages (a
//! ramp when the load changes over the stage, a plateau when it holds, then the `stop` tail of
//! graceful stop and ramp-down), and [`StageBook`] adds every closed interval's merged
//! snapshot into the stage that holds the interval's midpoint: memory is stages × series,
//! never time. Attribution is by interval, so a stage's figures are exact to one interval at
//! its edges (plan stages that are multiples of the interval fall exactly).
//!
//! Thresholds may name a stage: `http_req_duration{stage:2}` (the stage's index, from 0, as
//! k6's `tagWithCurrentStageIndex` counts), `{stage:plateau}` (all plateaus together),
//! `{stage:ramp}`; see [`crate::ThresholdSet`].
use crate::executor::{ExecutorConfig, Stage};
use crate::snapshot::Snapshot;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What the load does over a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StageKind {
    /// The planned load changes over the stage.
    Ramp,
    /// The planned load holds.
    Plateau,
    /// After the schedule: graceful stop and ramp-down (iterations finishing).
    Stop,
}

impl StageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StageKind::Ramp => "ramp",
            StageKind::Plateau => "plateau",
            StageKind::Stop => "stop",
        }
    }
}

/// One stage of the plan, on the run's clock.
#[derive(Debug, Clone, PartialEq)]
pub struct StageSpan {
    pub kind: StageKind,
    pub start: Duration,
    /// `None` for the `stop` tail.
    pub end: Option<Duration>,
    /// Planned load at the start and the end: VUs, or iterations per second.
    pub from: f64,
    pub to: f64,
}

impl StageSpan {
    /// The stages of `executor`, ending with the `stop` tail.
    pub fn of(executor: &ExecutorConfig) -> Vec<StageSpan> {
        let mut out = Vec::new();
        let mut staged = |start_level: u64, stages: &[Stage], per_s: f64| {
            let mut t = Duration::ZERO;
            let mut level = start_level;
            for s in stages {
                out.push(StageSpan {
                    kind: if s.target == level {
                        StageKind::Plateau
                    } else {
                        StageKind::Ramp
                    },
                    start: t,
                    end: Some(t + s.duration),
                    from: level as f64 * per_s,
                    to: s.target as f64 * per_s,
                });
                t += s.duration;
                level = s.target;
            }
        };
        match executor {
            ExecutorConfig::RampingVus {
                start_vus, stages, ..
            } => staged(*start_vus, stages, 1.0),
            ExecutorConfig::RampingArrivalRate {
                start_rate,
                time_unit,
                stages,
                ..
            } => staged(*start_rate, stages, 1.0 / time_unit.as_secs_f64()),
            ExecutorConfig::ConstantVus { vus, duration } => out.push(StageSpan {
                kind: StageKind::Plateau,
                start: Duration::ZERO,
                end: Some(*duration),
                from: *vus as f64,
                to: *vus as f64,
            }),
            ExecutorConfig::PerVuIterations {
                vus, max_duration, ..
            } => out.push(StageSpan {
                kind: StageKind::Plateau,
                start: Duration::ZERO,
                end: Some(*max_duration),
                from: *vus as f64,
                to: *vus as f64,
            }),
            ExecutorConfig::ConstantArrivalRate {
                rate,
                time_unit,
                duration,
                ..
            } => {
                let r = *rate as f64 / time_unit.as_secs_f64();
                out.push(StageSpan {
                    kind: StageKind::Plateau,
                    start: Duration::ZERO,
                    end: Some(*duration),
                    from: r,
                    to: r,
                })
            }
        }
        let end = out.last().and_then(|s| s.end).unwrap_or_default();
        out.push(StageSpan {
            kind: StageKind::Stop,
            start: end,
            end: None,
            from: 0.0,
            to: 0.0,
        });
        out
    }

    fn holds(&self, t: Duration) -> bool {
        t >= self.start && self.end.is_none_or(|e| t < e)
    }
}

/// The stage of `spans` holding interval `seq`'s midpoint (the last one past the end).
pub fn stage_of_interval(spans: &[StageSpan], interval: Duration, seq: u64) -> usize {
    let mid = interval.mul_f64(seq as f64 + 0.5);
    spans
        .iter()
        .position(|s| s.holds(mid))
        .unwrap_or(spans.len().saturating_sub(1))
}

/// Whether a threshold's `stage` filter value names this stage.
pub fn stage_matches(value: &str, index: usize, kind: StageKind) -> bool {
    match value {
        "plateau" => kind == StageKind::Plateau,
        "ramp" => kind == StageKind::Ramp,
        "stop" => kind == StageKind::Stop,
        n => n.parse::<usize>().is_ok_and(|n| n == index),
    }
}

/// Whether `value` is a valid `stage` filter for a plan of `n` stages (the `stop` tail
/// included): an index below `n`, or `plateau`/`ramp`/`stop`.
pub fn check_stage_filter(value: &str, n: usize) -> Result<(), String> {
    match value {
        "plateau" | "ramp" | "stop" => Ok(()),
        v => match v.parse::<usize>() {
            Ok(i) if i < n => Ok(()),
            _ => Err(format!(
                "stage:{v}: name a stage by its index 0..{} (the last is the stop tail), or plateau, ramp or stop",
                n.saturating_sub(1)
            )),
        },
    }
}

/// The merged figures of one stage so far.
#[derive(Debug, Clone, Default)]
pub struct StageData {
    pub snapshot: Snapshot,
    /// Intervals added.
    pub intervals: u32,
    /// Active VUs over those intervals (sum over workers per interval).
    pub vus_min: u64,
    pub vus_max: u64,
    pub vus_sum: u64,
}

/// Per-stage merged data of a run (see the module docs).
#[derive(Debug, Clone)]
pub struct StageBook {
    pub spans: Vec<StageSpan>,
    pub data: Vec<StageData>,
    pub interval: Duration,
}

impl StageBook {
    pub fn new(executor: &ExecutorConfig, interval: Duration) -> StageBook {
        let spans = StageSpan::of(executor);
        StageBook {
            data: vec![StageData::default(); spans.len()],
            spans,
            interval,
        }
    }

    /// The stage holding interval `seq`'s midpoint.
    pub fn stage_of(&self, seq: u64) -> usize {
        stage_of_interval(&self.spans, self.interval, seq)
    }

    /// Adds closed interval `seq` (merged over the workers).
    pub fn add(&mut self, seq: u64, interval: &Snapshot) {
        let i = self.stage_of(seq);
        let d = &mut self.data[i];
        let _ = d.snapshot.accumulate(interval);
        d.vus_min = if d.intervals == 0 {
            interval.vus
        } else {
            d.vus_min.min(interval.vus)
        };
        d.vus_max = d.vus_max.max(interval.vus);
        d.vus_sum += interval.vus;
        d.intervals += 1;
    }

    /// The stages' snapshots a `stage` filter value selects, merged; `None` when none of
    /// them has data yet.
    pub fn select(&self, value: &str) -> Option<Snapshot> {
        let mut out: Option<Snapshot> = None;
        for (i, (span, d)) in self.spans.iter().zip(&self.data).enumerate() {
            if d.intervals == 0 || !stage_matches(value, i, span.kind) {
                continue;
            }
            match &mut out {
                None => out = Some(d.snapshot.clone()),
                Some(acc) => {
                    let _ = acc.merge(&d.snapshot);
                }
            }
        }
        out
    }

    /// Seconds of data in the stages a filter selects (what their rates divide by).
    pub fn seconds(&self, value: &str) -> f64 {
        self.spans
            .iter()
            .zip(&self.data)
            .enumerate()
            .filter(|(i, (s, _))| stage_matches(value, *i, s.kind))
            .map(|(_, (_, d))| d.intervals as f64 * self.interval.as_secs_f64())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{MetricKind, SeriesKey};

    fn ramping() -> ExecutorConfig {
        ExecutorConfig::RampingVus {
            start_vus: 0,
            stages: vec![Stage::new(10, 5), Stage::new(20, 5), Stage::new(10, 10)],
            graceful_ramp_down: Duration::from_secs(5),
        }
    }

    #[test]
    fn stages_of_a_ramping_plan() {
        let spans = StageSpan::of(&ramping());
        let kinds: Vec<StageKind> = spans.iter().map(|s| s.kind).collect();
        use StageKind::*;
        assert_eq!(kinds, vec![Ramp, Plateau, Ramp, Stop]);
        assert_eq!(spans[1].start, Duration::from_secs(10));
        assert_eq!(spans[1].end, Some(Duration::from_secs(30)));
        assert_eq!((spans[2].from, spans[2].to), (5.0, 10.0));
        assert_eq!(spans[3].start, Duration::from_secs(40));
        let rate = ExecutorConfig::ConstantArrivalRate {
            rate: 30,
            time_unit: Duration::from_secs(60),
            duration: Duration::from_secs(5),
            pre_allocated_vus: 1,
            max_vus: 0,
            arrivals: Default::default(),
        };
        let spans = StageSpan::of(&rate);
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0].from, 0.5);
    }

    #[test]
    fn intervals_land_in_their_stage_and_filters_select_them() {
        let mut book = StageBook::new(&ramping(), Duration::from_secs(1));
        let key = SeriesKey::new("http_req_duration");
        for seq in 0..45u64 {
            let mut s = Snapshot::default();
            // 1 ms in the first ramp, 10 ms on the plateau, 100 ms after
            let ms = match seq {
                0..=9 => 1,
                10..=29 => 10,
                _ => 100,
            };
            s.add(key.clone(), MetricKind::Trend, (ms * 1000) as f64);
            s.vus = if (10..30).contains(&seq) { 5 } else { 2 };
            book.add(seq, &s);
        }
        assert_eq!(book.stage_of(9), 0);
        assert_eq!(book.stage_of(10), 1);
        assert_eq!(book.stage_of(44), 3, "after the schedule: the stop tail");
        assert_eq!(book.data[1].intervals, 20);
        assert_eq!((book.data[1].vus_min, book.data[1].vus_max), (5, 5));
        let plateau = book.select("plateau").unwrap();
        let t = match plateau.submetric("http_req_duration", &[]).unwrap() {
            crate::Sink::Trend(t) => t,
            _ => unreachable!(),
        };
        assert_eq!(t.count(), 20);
        assert!((t.percentile(99.0) - 10_000.0).abs() < 20.0);
        assert!(book.select("0").is_some());
        assert_eq!(book.seconds("plateau"), 20.0);
        assert!(check_stage_filter("3", 4).is_ok());
        assert!(check_stage_filter("4", 4).unwrap_err().contains("0..3"));
        assert!(check_stage_filter("plateaux", 4).is_err());
    }
}

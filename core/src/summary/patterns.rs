//! The orchestration patterns' own figures (seed 001) that no single metric holds: they
//! compare parts of the run. [`Patterns::of`] derives them from the stage sections, so the
//! numbers a reader checks by hand (each plateau's iterations, time and p95) are in the
//! same file.
//!
//! **Scaling** (seed: "horizontal scaling 10→100 agents", "coordination overhead growth"):
//! a plan with plateaus at two or more load levels (the `scaling` profile: 10 VUs, then
//! 100) compares its lowest plateau with its highest:
//!
//! ```text
//! throughput_ratio  = iterations/s at the high plateau ÷ at the low one  (seed: "scaling efficiency")
//! per_vu_efficiency = throughput_ratio ÷ (high load ÷ low load)          (1 = linear, 0.1 = no gain from 10×)
//! p95_ratio         = iteration_duration p95 at high ÷ at low           (seed: "coordination overhead growth")
//! ```
//!
//! Iterations, not requests: a flow's requests differ in cost, an iteration is the unit a
//! user waits for. A plateau counts only with closed intervals and iterations in it.
//!
//! **Runtime overhead** (seed: "framework overhead"): per operation with
//! `runtime_overhead` samples (steps with `llm_calls`, the `overhead` flow), its mean, p50
//! and p95 beside the mock LLM's own time for the same runs, and the overhead's share of
//! the mean run (`overhead ÷ (overhead + LLM time)`). The worker matched each run to its
//! calls by key (`worker/src/flow/overhead.rs`), so these are per-run figures.
use super::{MetricStats, StageSummary};
use crate::metrics::builtin;
use crate::stages::StageKind;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The patterns section of `summary.json`: each part present when the run allows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Patterns {
    /// Present when the plan held two or more load levels on plateaus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<Scaling>,
    /// Per operation with `runtime_overhead` samples.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overhead: BTreeMap<String, Overhead>,
}

/// One operation's runtime overhead, ms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Overhead {
    /// Runs measured.
    pub runs: u64,
    pub mean_ms: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    /// The mock LLM's own time for the same runs' calls, mean.
    pub llm_mean_ms: Option<f64>,
    /// LLM calls per run, mean.
    pub llm_calls_mean: Option<f64>,
    /// `mean_ms ÷ (mean_ms + llm_mean_ms)`: the share of a run the runtime added.
    pub share: Option<f64>,
}

/// The lowest plateau against the highest (see the module doc for the formulas).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scaling {
    pub low: ScalingLevel,
    pub high: ScalingLevel,
    /// Planned load at high ÷ at low (10 for 10 → 100 VUs).
    pub load_ratio: f64,
    /// Iterations/s at high ÷ at low.
    pub throughput_ratio: f64,
    /// `throughput_ratio ÷ load_ratio`: 1 when throughput grew with the load.
    pub per_vu_efficiency: f64,
    /// `iteration_duration` p95 at high ÷ at low; `None` when a plateau has no p95.
    pub p95_ratio: Option<f64>,
}

/// One plateau of the comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScalingLevel {
    /// Its index in `stages`.
    pub stage: u32,
    /// Planned load (`vus`, or iterations/s for an arrival-rate plan: `unit`).
    pub planned: f64,
    pub unit: String,
    /// Active VUs, mean over its intervals.
    pub vus_mean: f64,
    pub iterations: f64,
    pub duration_s: f64,
    pub iterations_per_s: f64,
    /// `iteration_duration` p95, ms.
    pub iteration_p95_ms: Option<f64>,
}

impl Patterns {
    /// The patterns' figures of a run's stages and metric entries; `None` when none
    /// applies.
    pub fn of(
        stages: &[StageSummary],
        metrics: &BTreeMap<String, MetricStats>,
    ) -> Option<Patterns> {
        let scaling = Scaling::of(stages);
        let overhead = Overhead::of(metrics);
        (scaling.is_some() || !overhead.is_empty()).then_some(Patterns { scaling, overhead })
    }

    /// The text summary's lines.
    pub fn text(&self) -> String {
        let mut out = String::new();
        if let Some(s) = &self.scaling {
            out.push_str(&s.text());
        }
        let ms = |x: Option<f64>| x.map_or_else(|| "-".into(), |v| format!("{v}ms"));
        for (op, o) in &self.overhead {
            out.push_str(&format!(
                "    runtime overhead {op}: mean {} p50 {} p95 {} over {} runs; LLM {} per run ({} calls), overhead share {}\n",
                ms(o.mean_ms),
                ms(o.p50_ms),
                ms(o.p95_ms),
                o.runs,
                ms(o.llm_mean_ms),
                o.llm_calls_mean.map_or_else(|| "-".into(), |c| c.to_string()),
                o.share.map_or_else(|| "-".into(), |s| format!("{:.1}%", s * 100.0)),
            ));
        }
        out
    }
}

impl Overhead {
    /// One per `runtime_overhead{operation:X}` entry.
    fn of(metrics: &BTreeMap<String, MetricStats>) -> BTreeMap<String, Overhead> {
        let prefix = format!("{}{{operation:", builtin::RUNTIME_OVERHEAD);
        let mut out = BTreeMap::new();
        for (entry, m) in metrics.range(prefix.clone()..) {
            let Some(op) = entry
                .strip_prefix(&prefix)
                .and_then(|r| r.strip_suffix('}'))
            else {
                break;
            };
            if op.contains(',') {
                continue;
            }
            let other = |metric: &str| {
                metrics
                    .get(&format!("{metric}{{operation:{op}}}"))
                    .and_then(|m| m.stat("avg"))
            };
            let mean = m.stat("avg");
            let llm = other(builtin::LLM_SERVICE_TIME);
            let share = match (mean, llm) {
                (Some(o), Some(l)) if o + l > 0.0 => Some(round3(o / (o + l))),
                _ => None,
            };
            out.insert(
                op.to_string(),
                Overhead {
                    runs: m.count() as u64,
                    mean_ms: mean,
                    p50_ms: m.stat("med"),
                    p95_ms: m.stat("p95"),
                    llm_mean_ms: llm,
                    llm_calls_mean: other(builtin::LLM_CALLS),
                    share,
                },
            );
        }
        out
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl ScalingLevel {
    fn of(s: &StageSummary) -> ScalingLevel {
        ScalingLevel {
            stage: s.index,
            planned: s.planned_from,
            unit: s.planned_unit.clone(),
            vus_mean: s.vus_mean,
            iterations: s.iterations,
            duration_s: s.duration_s,
            iterations_per_s: round3(s.iterations / s.duration_s),
            iteration_p95_ms: s
                .metrics
                .get(builtin::ITERATION_DURATION)
                .and_then(|m: &MetricStats| m.stat("p95")),
        }
    }
}

impl Scaling {
    /// The lowest and the highest plateau with data, when their planned loads differ
    /// (the first plateau of each level).
    pub fn of(stages: &[StageSummary]) -> Option<Scaling> {
        let plateaus: Vec<&StageSummary> = stages
            .iter()
            .filter(|s| {
                s.kind == StageKind::Plateau
                    && s.intervals > 0
                    && s.duration_s > 0.0
                    && s.iterations > 0.0
                    && s.planned_from > 0.0
            })
            .collect();
        let mut low = *plateaus.first()?;
        let mut high = low;
        for &s in &plateaus {
            if s.planned_from < low.planned_from {
                low = s;
            }
            if s.planned_from > high.planned_from {
                high = s;
            }
        }
        if high.planned_from <= low.planned_from {
            return None;
        }
        let (low, high) = (ScalingLevel::of(low), ScalingLevel::of(high));
        let load_ratio = high.planned / low.planned;
        let throughput_ratio = high.iterations_per_s / low.iterations_per_s;
        let p95_ratio = match (low.iteration_p95_ms, high.iteration_p95_ms) {
            (Some(l), Some(h)) if l > 0.0 => Some(round3(h / l)),
            _ => None,
        };
        Some(Scaling {
            load_ratio: round3(load_ratio),
            throughput_ratio: round3(throughput_ratio),
            per_vu_efficiency: round3(throughput_ratio / load_ratio),
            p95_ratio,
            low,
            high,
        })
    }

    /// The text summary's lines.
    pub fn text(&self) -> String {
        let p95 = |x: Option<f64>| x.map_or_else(|| "-".into(), |v| format!("{v}ms"));
        format!(
            "    scaling: {} → {} {} (stages {} and {}): {} → {} iterations/s\n      \
             throughput ×{} (scaling efficiency; ×{} per unit of load), \
             iteration p95 {} → {} (coordination overhead growth ×{})\n",
            self.low.planned,
            self.high.planned,
            self.low.unit,
            self.low.stage,
            self.high.stage,
            self.low.iterations_per_s,
            self.high.iterations_per_s,
            self.throughput_ratio,
            self.per_vu_efficiency,
            p95(self.low.iteration_p95_ms),
            p95(self.high.iteration_p95_ms),
            self.p95_ratio.map_or_else(|| "-".into(), |r| r.to_string()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(index: u32, kind: StageKind, load: f64, iterations: f64, p95: f64) -> StageSummary {
        let mut metrics = BTreeMap::new();
        metrics.insert(
            builtin::ITERATION_DURATION.to_string(),
            MetricStats::Trend {
                contains: crate::metrics::ValueKind::Time,
                count: iterations as u64,
                rate: 0.0,
                min: None,
                avg: None,
                med: None,
                p90: None,
                p95: Some(p95),
                p99: None,
                max: None,
            },
        );
        StageSummary {
            index,
            kind,
            start_s: 0.0,
            end_s: Some(10.0),
            planned_from: load,
            planned_to: load,
            planned_unit: "vus".into(),
            intervals: 10,
            duration_s: 10.0,
            vus_min: load as u64,
            vus_max: load as u64,
            vus_mean: load,
            requests: iterations,
            iterations,
            req_per_s: iterations / 10.0,
            error_rate: None,
            metrics,
        }
    }

    #[test]
    fn scaling_compares_the_lowest_plateau_with_the_highest() {
        let stages = [
            stage(0, StageKind::Plateau, 10.0, 100.0, 200.0),
            stage(1, StageKind::Ramp, 55.0, 300.0, 900.0),
            stage(2, StageKind::Plateau, 100.0, 400.0, 500.0),
            stage(3, StageKind::Stop, 0.0, 5.0, 100.0),
        ];
        let s = Scaling::of(&stages).unwrap();
        assert_eq!((s.low.stage, s.high.stage), (0, 2));
        assert_eq!(s.load_ratio, 10.0);
        assert_eq!(
            (s.low.iterations_per_s, s.high.iterations_per_s),
            (10.0, 40.0)
        );
        assert_eq!(s.throughput_ratio, 4.0);
        assert_eq!(s.per_vu_efficiency, 0.4);
        assert_eq!(s.p95_ratio, Some(2.5));
        let text = s.text();
        assert!(text.contains("10 → 100 vus"), "{text}");
        assert!(text.contains("throughput ×4"), "{text}");
        assert!(text.contains("growth ×2.5"), "{text}");
    }

    #[test]
    fn scaling_needs_two_load_levels_with_data() {
        let one = [stage(0, StageKind::Plateau, 10.0, 100.0, 200.0)];
        assert_eq!(Scaling::of(&one), None);
        let same = [
            stage(0, StageKind::Plateau, 10.0, 100.0, 200.0),
            stage(1, StageKind::Plateau, 10.0, 100.0, 200.0),
        ];
        assert_eq!(Scaling::of(&same), None);
        let empty_high = [
            stage(0, StageKind::Plateau, 10.0, 100.0, 200.0),
            stage(1, StageKind::Plateau, 100.0, 0.0, 200.0),
        ];
        assert_eq!(Scaling::of(&empty_high), None);
        assert_eq!(Patterns::of(&empty_high, &BTreeMap::new()), None);
    }

    fn trend(avg: f64, med: f64, p95: f64, count: u64) -> MetricStats {
        MetricStats::Trend {
            contains: crate::metrics::ValueKind::Time,
            count,
            rate: 0.0,
            min: None,
            avg: Some(avg),
            med: Some(med),
            p90: None,
            p95: Some(p95),
            p99: None,
            max: None,
        }
    }

    #[test]
    fn overhead_per_operation_beside_the_llm_time() {
        let metrics = BTreeMap::from([
            ("runtime_overhead".to_string(), trend(9.0, 9.0, 9.0, 10)),
            (
                "runtime_overhead{operation:turn}".to_string(),
                trend(25.0, 20.0, 40.0, 10),
            ),
            (
                "llm_service_time{operation:turn}".to_string(),
                trend(75.0, 75.0, 80.0, 10),
            ),
            (
                "llm_calls{operation:turn}".to_string(),
                trend(1.0, 1.0, 1.0, 10),
            ),
            (
                "runtime_overhead{operation:turn,x:y}".to_string(),
                trend(1.0, 1.0, 1.0, 1),
            ),
            ("stream_events".to_string(), trend(1.0, 1.0, 1.0, 1)),
        ]);
        let p = Patterns::of(&[], &metrics).unwrap();
        assert_eq!(p.scaling, None);
        assert_eq!(p.overhead.len(), 1, "{p:?}");
        let o = &p.overhead["turn"];
        assert_eq!(
            (o.runs, o.mean_ms, o.p50_ms, o.p95_ms),
            (10, Some(25.0), Some(20.0), Some(40.0))
        );
        assert_eq!(
            (o.llm_mean_ms, o.llm_calls_mean, o.share),
            (Some(75.0), Some(1.0), Some(0.25))
        );
        let text = p.text();
        assert!(
            text.contains("runtime overhead turn: mean 25ms p50 20ms p95 40ms over 10 runs"),
            "{text}"
        );
        assert!(text.contains("overhead share 25.0%"), "{text}");
    }
}

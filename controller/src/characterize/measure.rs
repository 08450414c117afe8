//! One plateau's figures ([`Measured`]), read from its run's `summary.json`: only the
//! plateau stage's section counts (the warm-up stage before it and the stop tail after it
//! are left out), and whether the run itself can be trusted ([`invalid_reason`]).
use barrage_core::metrics::builtin;
use barrage_core::summary::{MetricStats, StageSummary, Summary};
use serde::Serialize;

/// Where the goodput figure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GoodputSource {
    /// `flow_goodput`: flows that passed every check and met their SLO.
    FlowGoodput,
    /// `agent_flow_success_rate`: flows that passed every check (no latency SLO in it).
    AgentFlowSuccessRate,
    /// Neither metric was recorded: 1 − the share of failed requests.
    RequestSuccess,
}

impl GoodputSource {
    pub fn describe(self) -> &'static str {
        match self {
            GoodputSource::FlowGoodput => "flow_goodput (flows that passed their checks and SLO)",
            GoodputSource::AgentFlowSuccessRate => {
                "agent_flow_success_rate (flow_goodput not recorded: flows that passed their checks, no latency SLO)"
            }
            GoodputSource::RequestSuccess => {
                "1 - http_req_failed (neither flow_goodput nor agent_flow_success_rate recorded)"
            }
        }
    }
}

/// One plateau's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measured {
    /// Planned load (VUs, or iterations/s).
    pub load: f64,
    /// Iterations completed per second of the plateau.
    pub throughput: f64,
    pub requests_per_s: f64,
    pub iterations: f64,
    /// Active VUs over the plateau (mean).
    pub vus_mean: f64,
    /// The latency metric's percentiles over the plateau, ms; `None` without samples.
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Share of good flows, 0..=1; `None` without flows.
    pub goodput: Option<f64>,
    pub goodput_source: GoodputSource,
    /// Share of failed requests; `None` without requests.
    pub error_rate: Option<f64>,
    /// Iterations the open model could not start (no free VU).
    pub dropped_iterations: f64,
    /// Target CPU (% of one core) and RSS over the plateau, when telemetry exists.
    pub target_cpu_pct: Option<f64>,
    pub target_rss_bytes: Option<u64>,
    /// Workers that took part in the plateau's run (the summary's `workers`).
    pub workers: usize,
    /// Why the run cannot be trusted (the generator or the rig was the limit), if so.
    pub invalid: Option<String>,
    /// The plateau run's `summary.json`, where every other figure of it is.
    pub summary: String,
}

fn stage_metric<'a>(stage: &'a StageSummary, name: &str) -> Option<&'a MetricStats> {
    stage.metrics.get(name)
}

/// The goodput over the plateau and where it came from.
fn goodput(stage: &StageSummary) -> (Option<f64>, GoodputSource) {
    let rate = |name: &str| match stage_metric(stage, name) {
        Some(MetricStats::Rate {
            rate,
            passes,
            fails,
            ..
        }) if passes + fails > 0 => Some(*rate),
        _ => None,
    };
    if let Some(r) = rate(builtin::FLOW_GOODPUT) {
        return (Some(r), GoodputSource::FlowGoodput);
    }
    if let Some(r) = rate(builtin::AGENT_FLOW_SUCCESS_RATE) {
        return (Some(r), GoodputSource::AgentFlowSuccessRate);
    }
    (
        stage.error_rate.map(|e| 1.0 - e),
        GoodputSource::RequestSuccess,
    )
}

/// Why the run cannot be trusted, or `None`. One function so the run's own validity
/// verdict (when the summary carries one) is added here and nowhere else. Today: iterations
/// the open model dropped (no free VU: the generator, not the target, was the limit), a
/// lost worker, a run that did not complete.
pub fn invalid_reason(summary: &Summary, stage: &StageSummary) -> Option<String> {
    let dropped = stage_metric(stage, builtin::DROPPED_ITERATIONS).map_or(0.0, |m| m.count());
    if dropped > 0.0 {
        return Some(format!(
            "{dropped:.0} iterations dropped (no free VU): the generator was the limit; raise the VU pool or lower the load"
        ));
    }
    // the run's own verdict on its load (issue 12 §4), for the measured stage
    if let Some(p) = summary
        .validity
        .iter()
        .flat_map(|v| &v.problems)
        .find(|p| p.stage == stage.index)
    {
        let who = p.worker.as_deref().unwrap_or("all workers");
        return Some(format!(
            "invalid: {} ({who}): {}; the generator, not the target, was the limit",
            p.what.as_str(),
            p.detail
        ));
    }
    if let Some(w) = summary.workers.iter().find(|w| w.lost.is_some()) {
        let why = w.lost.as_ref().map_or("", |l| l.reason.as_str());
        return Some(format!("worker {} was lost ({why})", w.id));
    }
    if summary.result.end_reason != "completed" {
        return Some(format!(
            "the run ended early: {}",
            summary.result.end_reason
        ));
    }
    None
}

/// Target CPU and RSS over `[from_s, to_s)`: the telemetry points are one per sampling
/// interval from its first reading, mapped onto the run's clock by their spacing
/// (exact to one sample).
fn target_use(summary: &Summary, from_s: f64, to_s: f64) -> (Option<f64>, Option<u64>) {
    let Some(t) = &summary.target_telemetry else {
        return (None, None);
    };
    if t.points.is_empty() {
        return (None, None);
    }
    let spacing = (t.wall_s / t.points.len() as f64).max(1e-3);
    let inside: Vec<_> = t
        .points
        .iter()
        .filter(|p| {
            let at = (p.seq as f64 + 1.0) * spacing;
            at > from_s && at <= to_s + spacing / 2.0
        })
        .collect();
    if inside.is_empty() {
        return (None, None);
    }
    let cpu = inside.iter().map(|p| p.cpu_pct).sum::<f64>() / inside.len() as f64;
    let rss = inside.iter().map(|p| p.rss_bytes).max();
    (Some(cpu), rss)
}

/// The plateau's figures from its run's summary: `stage` is the plateau stage's index,
/// `latency_metric` the metric whose percentiles the curve shows.
pub fn measure(
    summary: &Summary,
    stage: u32,
    load: f64,
    latency_metric: &str,
) -> Result<Measured, String> {
    let st = summary
        .stages
        .iter()
        .find(|s| s.index == stage)
        .ok_or_else(|| {
            format!(
                "the run's summary has no stage {stage} (it has {}): did the run end early? ({})",
                summary.stages.len(),
                summary.result.end_reason
            )
        })?;
    let pct = |k: &str| stage_metric(st, latency_metric).and_then(|m| m.stat(k));
    let (goodput, goodput_source) = goodput(st);
    let duration = st.duration_s.max(1e-9);
    let (target_cpu_pct, target_rss_bytes) = target_use(
        summary,
        st.start_s,
        st.end_s.unwrap_or(st.start_s + duration),
    );
    Ok(Measured {
        load,
        throughput: st.iterations / duration,
        requests_per_s: st.req_per_s,
        iterations: st.iterations,
        vus_mean: st.vus_mean,
        p50_ms: pct("med"),
        p95_ms: pct("p95"),
        p99_ms: pct("p99"),
        goodput,
        goodput_source,
        error_rate: st.error_rate,
        dropped_iterations: stage_metric(st, builtin::DROPPED_ITERATIONS)
            .map_or(0.0, |m| m.count()),
        target_cpu_pct,
        target_rss_bytes,
        workers: summary.workers.len(),
        invalid: invalid_reason(summary, st),
        summary: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::config::By;
    use super::super::plateau::{plateau_stage, scenario};
    use super::super::search::{search, tests::settings};
    use super::*;
    use barrage_core::stages::StageBook;
    use barrage_core::summary::{assemble, host, rig, RunFacts, RunMode};
    use barrage_core::timeseries::{TimePoint, TimeSeries};
    use barrage_core::validity::{ProblemKind, Validity, ValidityBounds, ValidityProblem};
    use barrage_core::{MetricKind, Plan, Profile, SeriesKey, Snapshot};
    use std::time::{Duration, SystemTime};

    /// The summary of a plateau run at `load` VUs (1 s warm-up + 3 s plateau), each VU
    /// completing one good 400 ms flow a second; `saturated_in`: the run's own validity
    /// verdict found its worker's CPU saturated in that stage (`None`: a valid run).
    fn plateau_summary(load: f64, saturated_in: Option<u32>) -> Summary {
        let s = settings(By::Vus, Some(1000.0));
        let mut plan = Plan::profile(Profile::Smoke);
        plan.scenario = scenario(&s, load);
        plan.thresholds.clear();
        let mut stages = StageBook::new(&plan.scenario, plan.interval);
        let mut total = Snapshot::default();
        let mut ts = TimeSeries {
            interval_ms: 1000,
            ..TimeSeries::default()
        };
        for seq in 0..4 {
            let mut snap = Snapshot {
                vus: load as u64,
                ..Snapshot::default()
            };
            for _ in 0..load as u64 {
                let mut add = |m: &str, kind, v| snap.add(SeriesKey::new(m), kind, v);
                add(builtin::AGENT_FLOW_DURATION, MetricKind::Trend, 400_000.0);
                add(builtin::ITERATIONS, MetricKind::Counter, 1.0);
                add(builtin::HTTP_REQS, MetricKind::Counter, 8.0);
                add(builtin::HTTP_REQ_FAILED, MetricKind::Rate, 0.0);
                add(builtin::AGENT_FLOW_SUCCESS_RATE, MetricKind::Rate, 1.0);
            }
            stages.add(seq, &snap);
            ts.push(TimePoint::from_interval(seq, &snap, 1));
            total.merge(&snap).unwrap();
        }
        let validity = Validity {
            valid: saturated_in.is_none(),
            problems: saturated_in
                .map(|stage| ValidityProblem {
                    worker: Some("w-1".into()),
                    stage,
                    stage_kind: barrage_core::stages::StageKind::Plateau,
                    what: ProblemKind::WorkerCpu,
                    observed: 99.0,
                    bound: 90.0,
                    unit: "% of a core".into(),
                    detail: "the worker's CPU was 99.0 % of a core".into(),
                })
                .into_iter()
                .collect(),
            bounds: ValidityBounds::from(&plan.validity),
            unchecked: vec![],
            allow_invalid: false,
        };
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let elapsed = Duration::from_secs(4);
        assemble(RunFacts {
            mode: RunMode::Controller,
            plan: &plan,
            rig: rig("test"),
            host: host(),
            start,
            end: start + elapsed,
            elapsed,
            total: &total,
            timeseries: &ts,
            stages: Some(&stages),
            target_telemetry: None,
            workers: vec![],
            verdicts: &[],
            end_reason: "completed".into(),
            exit_code: if saturated_in.is_some() { 97 } else { 0 },
            late_snapshots: 0,
            validity: Some(validity),
        })
    }

    fn measured(load: f64, saturated_in: Option<u32>) -> Measured {
        let s = settings(By::Vus, Some(1000.0));
        measure(
            &plateau_summary(load, saturated_in),
            plateau_stage(&s),
            load,
            builtin::AGENT_FLOW_DURATION,
        )
        .unwrap()
    }

    #[test]
    fn the_runs_validity_verdict_on_the_plateau_stage_makes_it_invalid() {
        let valid = measured(4.0, None);
        assert_eq!(valid.invalid, None);
        assert_eq!(valid.p95_ms.map(f64::round), Some(400.0), "{valid:?}");
        assert_eq!(valid.throughput, 4.0, "{valid:?}");
        let invalid = measured(4.0, Some(1)).invalid.expect("invalid");
        for part in [
            "worker_cpu",
            "w-1",
            "99.0 %",
            "the generator, not the target",
        ] {
            assert!(invalid.contains(part), "{part}: {invalid}");
        }
        // a problem in the warm-up stage alone does not touch the measured plateau
        assert_eq!(measured(4.0, Some(0)).invalid, None);
    }

    #[test]
    fn an_invalid_plateau_stops_the_step_up_as_the_generators_limit() {
        // every plateau keeps the SLO and grows; from 6 VUs on, the generator saturates
        let s = settings(By::Vus, Some(1000.0));
        let (r, err) = search(&s, |_, load| {
            Ok::<_, ()>(measured(load, (load >= 6.0).then_some(1)))
        });
        assert!(err.is_none());
        let loads: Vec<f64> = r.plateaus.iter().map(|p| p.measured.load).collect();
        assert_eq!(loads, [1.0, 2.0, 4.0, 8.0, 6.0, 5.0], "{}", r.stop);
        assert_eq!((r.last_good, r.first_bad), (Some(5.0), Some(6.0)));
        let bad = r.plateaus.iter().find(|p| p.measured.load == 8.0).unwrap();
        assert!(bad.verdict.slo_ok && bad.verdict.growth_ok && !bad.verdict.valid);
        assert!(
            bad.verdict.reasons[0].contains("invalid run")
                && bad.verdict.reasons[0].contains("the generator, not the target, was the limit"),
            "{:?}",
            bad.verdict
        );
    }
}

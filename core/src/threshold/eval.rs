//! The one threshold evaluator, used by `barrage run` (after each closed interval and at the
//! end) and by a standalone worker (at the end): thresholds are evaluated on the merged,
//! cumulative sinks, as k6 evaluates them on the whole run so far.
//!
//! A threshold whose metric has no data FAILS, with `observed: None` ("no data" in the text):
//! a benchmark of a target that never answered must not pass (k6 passes such a threshold).
//! A Counter with no data counts 0. No data never triggers `abortOnFail`: early in a run the
//! first samples may simply not have arrived. `abortOnFail` stops the run once the threshold
//! fails on data at or after `delayAbortEval` of run time.
//!
//! A `stage` tag in the filter (`agent_flow_duration{stage:plateau}`, `{stage:2}`) selects
//! the per-stage data of a [`StageBook`] instead of the whole run; its rates divide by the
//! selected stages' time.
use super::{MetricRef, Threshold};
use crate::metrics::{builtin, MetricKind, ValueKind};
use crate::plan::{Plan, PlanError};
use crate::sink::Sink;
use crate::snapshot::Snapshot;
use crate::stages::{check_stage_filter, StageBook, StageSpan};
use std::time::Duration;

/// One metric reference and its thresholds.
#[derive(Debug, Clone)]
pub struct ThresholdEntry {
    pub mref: MetricRef,
    pub kind: MetricKind,
    /// Time Trends hold µs; thresholds speak ms.
    pub value_kind: ValueKind,
    pub thresholds: Vec<Threshold>,
}

/// The verdict on one threshold expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// `http_req_duration{operation:run_wait}`.
    pub metric: String,
    /// `p(95)<5000`.
    pub source: String,
    /// `None`: no data.
    pub observed: Option<f64>,
    pub ok: bool,
    pub abort_on_fail: bool,
    pub delay_abort_eval: Duration,
}

/// Every threshold of the plan, parsed and resolved against the built-in metrics.
#[derive(Debug, Clone, Default)]
pub struct ThresholdSet {
    pub entries: Vec<ThresholdEntry>,
}

impl ThresholdSet {
    /// Parses the plan's thresholds; an unknown metric or a malformed expression is an
    /// error naming it.
    pub fn from_plan(plan: &Plan) -> Result<Self, PlanError> {
        let mut entries = Vec::new();
        let stages = StageSpan::of(&plan.scenario).len();
        for (mref, thresholds) in plan.parsed_thresholds()? {
            if let Some((_, v)) = mref.filter.iter().find(|(k, _)| k == "stage") {
                check_stage_filter(v, stages)
                    .map_err(|e| PlanError(vec![format!("thresholds.{mref}: {e}")]))?;
            }
            let slopes_only = thresholds
                .iter()
                .all(|t| matches!(t.aggregation, super::Aggregation::Slope(_)));
            // the target_* trends are no metric of the samples (their keys hold slopes only,
            // checked with the plan)
            let (kind, _) = builtin::lookup(&mref.metric)
                .or_else(|| slopes_only.then_some((MetricKind::Gauge, false)))
                .ok_or_else(|| {
                    PlanError(vec![format!(
                        "thresholds: unknown metric {:?}",
                        mref.metric
                    )])
                })?;
            entries.push(ThresholdEntry {
                value_kind: ValueKind::of(&mref.metric, kind),
                mref,
                kind,
                thresholds,
            });
        }
        Ok(ThresholdSet { entries })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Evaluates every threshold on `total` (the cumulative merged sinks), `elapsed` run
    /// time; a threshold naming a stage has no data here (see [`Self::evaluate_staged`]).
    pub fn evaluate(&self, total: &Snapshot, elapsed: Duration) -> Vec<Verdict> {
        self.evaluate_staged(total, None, elapsed)
    }

    /// Evaluates every threshold: on `total`, or for a `stage` filter on `stages`.
    pub fn evaluate_staged(
        &self,
        total: &Snapshot,
        stages: Option<&StageBook>,
        elapsed: Duration,
    ) -> Vec<Verdict> {
        let mut out = Vec::new();
        for e in &self.entries {
            let stage = e.mref.filter.iter().find(|(k, _)| k == "stage");
            let (sink, secs) = match stage {
                None => (total.submetric(&e.mref.metric, &e.mref.filter), elapsed),
                Some((_, v)) => {
                    let rest: Vec<(String, String)> = e
                        .mref
                        .filter
                        .iter()
                        .filter(|(k, _)| k != "stage")
                        .cloned()
                        .collect();
                    let data = stages.and_then(|b| b.select(v));
                    let secs = stages.map_or(0.0, |b| b.seconds(v));
                    (
                        data.and_then(|d| d.submetric(&e.mref.metric, &rest)),
                        Duration::from_secs_f64(secs),
                    )
                }
            };
            let sink = sink.or_else(|| {
                (e.kind == MetricKind::Counter).then(|| Sink::new(MetricKind::Counter))
            });
            for t in e.thresholds.iter().filter(|t| t.slope.is_none()) {
                let observed = sink
                    .as_ref()
                    .and_then(|s| t.observed(s, secs, e.value_kind == ValueKind::Time));
                out.push(Verdict {
                    metric: e.mref.to_string(),
                    source: t.source.clone(),
                    observed,
                    ok: observed.is_some_and(|v| t.passes(v)),
                    abort_on_fail: t.abort_on_fail,
                    delay_abort_eval: t.delay_abort_eval,
                });
            }
        }
        out
    }

    /// Whether any threshold is on a slope (the run then needs its trends).
    pub fn has_slopes(&self) -> bool {
        self.entries
            .iter()
            .any(|e| e.thresholds.iter().any(|t| t.slope.is_some()))
    }

    /// The verdicts of the slope thresholds, on a run's trends (computed at its end; no
    /// trends, or no such trend: no data, which fails). [`Self::evaluate_staged`] leaves
    /// them out.
    pub fn evaluate_trends(&self, trends: Option<&crate::trend::Trends>) -> Vec<Verdict> {
        let mut out = Vec::new();
        for e in &self.entries {
            for t in e.thresholds.iter().filter(|t| t.slope.is_some()) {
                let observed = trends.and_then(|tr| t.observed_slope(&e.mref.metric, tr));
                out.push(Verdict {
                    metric: e.mref.to_string(),
                    source: t.source.clone(),
                    observed,
                    ok: observed.is_some_and(|v| t.passes(v)),
                    abort_on_fail: false,
                    delay_abort_eval: t.delay_abort_eval,
                });
            }
        }
        out
    }

    /// The thresholds of `metric` (any filter), as written: for k6's `Metric` lines.
    pub fn sources_for(&self, metric: &str) -> Vec<String> {
        self.entries
            .iter()
            .filter(|e| e.mref.metric == metric)
            .flat_map(|e| e.thresholds.iter().map(|t| t.source.clone()))
            .collect()
    }
}

/// The first failed `abortOnFail` threshold whose delay has passed, as a reason.
pub fn abort_reason(verdicts: &[Verdict], elapsed: Duration) -> Option<String> {
    verdicts
        .iter()
        .find(|o| !o.ok && o.observed.is_some() && o.abort_on_fail && elapsed >= o.delay_abort_eval)
        .map(|o| {
            format!(
                "threshold {} '{}' failed (observed {}) and has abortOnFail",
                o.metric,
                o.source,
                o.observed.map_or_else(String::new, |v| format!("{v:.3}"))
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::threshold::ThresholdSpec;
    use crate::{Profile, SeriesKey};
    use std::collections::BTreeMap;

    fn plan_with(th: &[(&str, ThresholdSpec)]) -> Plan {
        let mut p = Plan::profile(Profile::Smoke);
        p.thresholds = th
            .iter()
            .map(|(k, v)| (k.to_string(), vec![v.clone()]))
            .collect::<BTreeMap<_, _>>();
        p
    }

    fn e(s: &str) -> ThresholdSpec {
        ThresholdSpec::Expr(s.into())
    }

    /// Two workers' merged data: run_wait 1..=100 ms (worker a: odd, b: even), get_state
    /// 1 ms; 10 requests of 200 failed; 50 iterations.
    fn merged() -> Snapshot {
        let op = |o: &str| SeriesKey::with_tags(builtin::HTTP_REQ_DURATION, [("operation", o)]);
        let mut a = Snapshot::default();
        let mut b = Snapshot::default();
        for ms in 1..=100u64 {
            let w = if ms % 2 == 1 { &mut a } else { &mut b };
            w.add(op("run_wait"), MetricKind::Trend, (ms * 1000) as f64);
            w.add(op("get_state"), MetricKind::Trend, 1000.0);
            w.add(
                SeriesKey::new("run_wait"),
                MetricKind::Trend,
                (ms * 1000) as f64,
            );
        }
        for i in 0..200 {
            let w = if i % 2 == 0 { &mut a } else { &mut b };
            w.add(
                SeriesKey::new(builtin::HTTP_REQ_FAILED),
                MetricKind::Rate,
                if i < 10 { 1.0 } else { 0.0 },
            );
            w.add(SeriesKey::new(builtin::HTTP_REQS), MetricKind::Counter, 1.0);
        }
        a.add(
            SeriesKey::new(builtin::ITERATIONS),
            MetricKind::Counter,
            20.0,
        );
        b.add(
            SeriesKey::new(builtin::ITERATIONS),
            MetricKind::Counter,
            30.0,
        );
        a += &b;
        a
    }

    #[test]
    fn slope_thresholds_are_judged_on_the_trends_only() {
        let mut p = plan_with(&[
            ("target_rss", e("slope<5MB/h")),
            ("http_req_duration", e("p99_slope<2%/h")),
        ]);
        let set = ThresholdSet::from_plan(&p).unwrap();
        assert!(set.has_slopes());
        assert!(set.evaluate(&merged(), Duration::from_secs(1)).is_empty());
        let none = set.evaluate_trends(None);
        assert!(
            none.iter().all(|v| !v.ok && v.observed.is_none()),
            "{none:?}"
        );
        let item = |name: &str, slope: f64, pct: f64| crate::trend::TrendResult {
            name: name.into(),
            unit: "u".into(),
            points: 100,
            mean: 1.0,
            slope_per_h: slope,
            ci95_low_per_h: slope,
            ci95_high_per_h: slope,
            slope_pct_per_h: Some(pct),
            direction: crate::trend::Direction::Rising,
        };
        let trends = crate::trend::Trends {
            warmup_s: 0.0,
            items: vec![
                item("target_rss", 9e6, 1.0),
                item("http_req_duration:p99", 0.5, 1.5),
            ],
            resources: None,
        };
        let v = set.evaluate_trends(Some(&trends));
        let by = |m: &str| v.iter().find(|x| x.metric == m).unwrap();
        assert_eq!(
            (by("target_rss").ok, by("target_rss").observed),
            (false, Some(9e6))
        );
        assert_eq!(
            (by("http_req_duration").ok, by("http_req_duration").observed),
            (true, Some(1.5))
        );
        // a slope on a metric without a trend, or mixed with a plain threshold, is refused
        p.thresholds
            .insert("target_rss".into(), vec![e("slope<5MB/h"), e("p(95)<3")]);
        let err = p.parsed_thresholds().unwrap_err().to_string();
        assert!(err.contains("takes slopes only"), "{err}");
        let q = plan_with(&[("iterations", e("slope<1/h"))]);
        assert!(q.parsed_thresholds().is_err());
    }

    #[test]
    fn evaluation_on_merged_data() {
        // (metric, expression, ok, observed)
        let cases: &[(&str, &str, bool, Option<f64>)] = &[
            (
                "http_req_duration{operation:run_wait}",
                "p(95)<100",
                true,
                Some(95.0),
            ),
            (
                "http_req_duration{operation:run_wait}",
                "p(95)<90",
                false,
                Some(95.0),
            ),
            ("http_req_duration", "max<=100.1", true, Some(100.0)),
            (
                "http_req_duration{operation:get_state}",
                "avg<2",
                true,
                Some(1.0),
            ),
            ("run_wait", "med>=50", true, Some(50.0)),
            ("http_req_failed", "rate<0.05", false, Some(0.05)),
            ("http_req_failed", "rate<=0.05", true, Some(0.05)),
            ("http_reqs", "count<1", false, Some(200.0)),
            ("http_reqs", "rate>=100", true, Some(100.0)),
            ("iterations", "count==50", true, Some(50.0)),
            ("data_sent", "count<1", true, Some(0.0)),
            // no data fails (k6 would pass it): a dead target must not pass
            ("agent_flow_duration", "p(95)<1", false, None),
            (
                "http_req_duration{operation:cleanup}",
                "p(95)<1",
                false,
                None,
            ),
        ];
        let total = merged();
        for (metric, expr, ok, observed) in cases {
            let set = ThresholdSet::from_plan(&plan_with(&[(metric, e(expr))])).unwrap();
            let out = set.evaluate(&total, Duration::from_secs(2));
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].ok, *ok, "{metric} {expr}: {:?}", out[0]);
            match (out[0].observed, observed) {
                (Some(a), Some(b)) => assert!((a - b).abs() < 0.1, "{metric} {expr}: {a} vs {b}"),
                (a, b) => assert_eq!(a, *b, "{metric} {expr}"),
            }
        }
    }

    #[test]
    fn abort_waits_for_the_delay() {
        let spec = ThresholdSpec::Full {
            threshold: "p(95)<10".into(),
            abort_on_fail: true,
            delay_abort_eval: Duration::from_secs(5),
        };
        let set = ThresholdSet::from_plan(&plan_with(&[("run_wait", spec)])).unwrap();
        let out = set.evaluate(&merged(), Duration::from_secs(2));
        assert!(abort_reason(&out, Duration::from_secs(2)).is_none());
        let why = abort_reason(&out, Duration::from_secs(5)).unwrap();
        assert!(why.contains("run_wait 'p(95)<10'"), "{why}");
        let plain = ThresholdSet::from_plan(&plan_with(&[("run_wait", e("p(95)<10"))])).unwrap();
        assert!(abort_reason(
            &plain.evaluate(&merged(), Duration::from_secs(9)),
            Duration::from_secs(9)
        )
        .is_none());
        // no data yet fails the threshold but never aborts the run
        let spec = ThresholdSpec::Full {
            threshold: "p(95)<10".into(),
            abort_on_fail: true,
            delay_abort_eval: Duration::ZERO,
        };
        let set = ThresholdSet::from_plan(&plan_with(&[("agent_flow_duration", spec)])).unwrap();
        let out = set.evaluate(&merged(), Duration::from_secs(9));
        assert_eq!((out[0].ok, out[0].observed), (false, None));
        assert!(abort_reason(&out, Duration::from_secs(9)).is_none());
    }

    #[test]
    fn bad_thresholds_name_the_field() {
        for (metric, expr, needle) in [
            ("nope", "p(95)<1", "unknown metric \"nope\""),
            ("http_req_failed", "p(95)<1", "thresholds.http_req_failed"),
            ("run_wait", "p95<1", "thresholds.run_wait"),
            ("http_req_duration{operation", "p(95)<1", "tag filter"),
        ] {
            let err = ThresholdSet::from_plan(&plan_with(&[(metric, e(expr))]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{metric} {expr}: {err}");
        }
    }
}

#[cfg(test)]
mod stage_tests {
    use super::*;
    use crate::executor::{ExecutorConfig, Stage};
    use crate::threshold::ThresholdSpec;
    use crate::{Profile, SeriesKey};

    /// A ramp (1 ms answers) and a plateau (10 ms answers): a `{stage:plateau}` threshold
    /// sees only the plateau, the whole-run one sees the mix.
    #[test]
    fn a_stage_filter_selects_the_stage_data() {
        let mut plan = Plan::profile(Profile::Smoke);
        plan.scenario = ExecutorConfig::RampingVus {
            start_vus: 0,
            stages: vec![Stage::new(10, 4), Stage::new(10, 4)],
            graceful_ramp_down: Duration::from_secs(1),
        };
        plan.thresholds.clear();
        for key in [
            "http_req_duration{stage:plateau}",
            "http_req_duration{stage:0}",
            "http_req_duration",
        ] {
            plan.thresholds
                .insert(key.into(), vec![ThresholdSpec::Expr("med<5".into())]);
        }
        plan.thresholds.insert(
            "http_reqs{stage:1}".into(),
            vec![ThresholdSpec::Expr("rate>=1".into())],
        );
        let set = ThresholdSet::from_plan(&plan).unwrap();
        let mut book = StageBook::new(&plan.scenario, Duration::from_secs(1));
        let mut total = Snapshot::default();
        for seq in 0..20u64 {
            let mut s = Snapshot::default();
            let us = if seq < 10 { 1000.0 } else { 10_000.0 };
            for _ in 0..(if seq < 10 { 3 } else { 1 }) {
                s.add(SeriesKey::new("http_req_duration"), MetricKind::Trend, us);
                s.add(SeriesKey::new("http_reqs"), MetricKind::Counter, 1.0);
            }
            book.add(seq, &s);
            total.accumulate(&s).unwrap();
        }
        let v = set.evaluate_staged(&total, Some(&book), Duration::from_secs(20));
        let by = |m: &str| v.iter().find(|x| x.metric == m).unwrap();
        assert!(!by("http_req_duration{stage:plateau}").ok);
        let med = by("http_req_duration{stage:plateau}").observed.unwrap();
        assert!((med - 10.0).abs() < 0.02, "HDR's 3 digits: {med}");
        assert!(by("http_req_duration{stage:0}").ok);
        assert!(by("http_req_duration").ok, "the mix hides the plateau");
        // 10 requests over the plateau's 10 s
        assert_eq!(by("http_reqs{stage:1}").observed, Some(1.0));
        // without stage data, a stage threshold has none
        let bare = set.evaluate(&total, Duration::from_secs(20));
        assert_eq!(
            bare.iter()
                .find(|x| x.metric == "http_req_duration{stage:0}")
                .unwrap()
                .observed,
            None
        );
        // a stage that does not exist is refused by name
        plan.thresholds.insert(
            "http_req_duration{stage:7}".into(),
            vec![ThresholdSpec::Expr("med<5".into())],
        );
        let err = ThresholdSet::from_plan(&plan).unwrap_err().to_string();
        assert!(err.contains("stage:7"), "{err}");
    }
}

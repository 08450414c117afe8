//! The one threshold evaluator, used by `barrage run` (after each closed interval and at the
//! end) and by a standalone worker (at the end): thresholds are evaluated on the merged,
//! cumulative sinks, as k6 evaluates them on the whole run so far.
//!
//! A threshold whose metric has no data FAILS, with `observed: None` ("no data" in the text):
//! a benchmark of a target that never answered must not pass (k6 passes such a threshold).
//! A Counter with no data counts 0. No data never triggers `abortOnFail`: early in a run the
//! first samples may simply not have arrived. `abortOnFail` stops the run once the threshold
//! fails on data at or after `delayAbortEval` of run time.
use super::{MetricRef, Threshold};
use crate::metrics::{builtin, MetricKind, ValueKind};
use crate::plan::{Plan, PlanError};
use crate::sink::Sink;
use crate::snapshot::Snapshot;
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
        for (mref, thresholds) in plan.parsed_thresholds()? {
            let (kind, _) = builtin::lookup(&mref.metric).ok_or_else(|| {
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

    /// Evaluates every threshold on `total` (the cumulative merged sinks), `elapsed` run time.
    pub fn evaluate(&self, total: &Snapshot, elapsed: Duration) -> Vec<Verdict> {
        let mut out = Vec::new();
        for e in &self.entries {
            let sink = total.submetric(&e.mref.metric, &e.mref.filter).or_else(|| {
                (e.kind == MetricKind::Counter).then(|| Sink::new(MetricKind::Counter))
            });
            for t in &e.thresholds {
                let observed = sink
                    .as_ref()
                    .and_then(|s| t.observed(s, elapsed, e.value_kind == ValueKind::Time));
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

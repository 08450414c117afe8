//! Threshold resolution: a plan's `metric{tag:value}` keys and expressions, checked against
//! the built-in metrics' kinds.
use super::{Plan, PlanError};
use crate::metrics::builtin;
use crate::threshold::{slope_trend, Aggregation, MetricRef, Threshold, ThresholdSpec};

/// A key with slope thresholds (soak trends, see `crate::threshold`): every expression of
/// it must be a slope of a trend the run computes, without a tag filter.
fn slope_thresholds(
    key: &str,
    mref: MetricRef,
    parsed: Vec<Result<Threshold, String>>,
) -> Result<(MetricRef, Vec<Threshold>), Vec<String>> {
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for t in parsed {
        match t {
            Ok(t) => match t.aggregation {
                Aggregation::Slope(agg)
                    if mref.filter.is_empty() && slope_trend(&mref.metric, agg).is_some() =>
                {
                    out.push(t)
                }
                _ => errors.push(format!(
                    "thresholds.{key}: {:?}: a key with slopes takes slopes only, of a trend: slope on target_rss, target_cpu_per_request or target_fds, p99_slope on http_req_duration, rate_slope on http_req_failed (no tag filter)",
                    t.source
                )),
            },
            Err(e) => errors.push(format!("thresholds.{key}: {e}")),
        }
    }
    if errors.is_empty() {
        Ok((mref, out))
    } else {
        Err(errors)
    }
}

impl Plan {
    pub(super) fn resolve_threshold(
        &self,
        key: &str,
        specs: &[ThresholdSpec],
    ) -> Result<(MetricRef, Vec<Threshold>), Vec<String>> {
        let mut errors = Vec::new();
        let mref = MetricRef::parse(key).map_err(|e| vec![format!("thresholds: {e}")])?;
        let parsed: Vec<Result<Threshold, String>> =
            specs.iter().map(ThresholdSpec::to_threshold).collect();
        let is_slope = |t: &Result<Threshold, String>| {
            t.as_ref()
                .is_ok_and(|t| matches!(t.aggregation, Aggregation::Slope(_)))
        };
        if !specs.is_empty() && parsed.iter().any(is_slope) {
            return slope_thresholds(key, mref, parsed);
        }
        let Some((kind, _)) = builtin::lookup(&mref.metric) else {
            return Err(vec![format!(
                "thresholds: unknown metric {:?}; known: {}",
                mref.metric,
                builtin::ALL
                    .iter()
                    .map(|(n, _, _)| *n)
                    .chain(builtin::OPERATIONS.iter().copied())
                    .collect::<Vec<_>>()
                    .join(", ")
            )]);
        };
        let mut out = Vec::new();
        for spec in specs {
            match spec
                .to_threshold()
                .and_then(|t| t.check_kind(kind).map(|_| t))
            {
                Ok(t) => out.push(t),
                Err(e) => errors.push(format!("thresholds.{key}: {e}")),
            }
        }
        if specs.is_empty() {
            errors.push(format!(
                "thresholds.{key}: give at least one expression, e.g. [\"p(95)<500\"]"
            ));
        }
        if errors.is_empty() {
            Ok((mref, out))
        } else {
            Err(errors)
        }
    }

    /// The thresholds, parsed (call after `validate`).
    pub fn parsed_thresholds(&self) -> Result<Vec<(MetricRef, Vec<Threshold>)>, PlanError> {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for (k, v) in &self.thresholds {
            match self.resolve_threshold(k, v) {
                Ok(x) => out.push(x),
                Err(mut e) => errors.append(&mut e),
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(PlanError(errors))
        }
    }
}

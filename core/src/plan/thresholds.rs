//! Threshold resolution: a plan's `metric{tag:value}` keys and expressions, checked against
//! the built-in metrics' kinds.
use super::{Plan, PlanError};
use crate::metrics::builtin;
use crate::threshold::{MetricRef, Threshold, ThresholdSpec};

impl Plan {
    pub(super) fn resolve_threshold(
        &self,
        key: &str,
        specs: &[ThresholdSpec],
    ) -> Result<(MetricRef, Vec<Threshold>), Vec<String>> {
        let mut errors = Vec::new();
        let mref = MetricRef::parse(key).map_err(|e| vec![format!("thresholds: {e}")])?;
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

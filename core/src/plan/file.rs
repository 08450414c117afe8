//! [`PlanFile`]: the plan as written (TOML file, JSON assignment). It differs from
//! [`Plan`] in one place: `[scenario]` and `[scenarios]` are alternatives here, while a
//! `Plan` always holds an executor in `scenario` (the leading scenario's with
//! `[scenarios]`), so an executor runtime handed a scenario's own plan reads it as before.
//! A plan with one `[scenario]` is written exactly as it always was.
use super::scenarios::{leading_scenario, ScenarioConfig};
use super::{
    default_graceful_stop, default_interval, default_name, AuthConfig, FlowConfig, FlowDef, Plan,
    SloConfig, TargetConfig,
};
use crate::duration::serde_str;
use crate::executor::ExecutorConfig;
use crate::threshold::ThresholdSpec;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanFile {
    #[serde(default = "default_name")]
    pub name: String,
    #[serde(default)]
    pub target: TargetConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<ExecutorConfig>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scenarios: BTreeMap<String, ScenarioConfig>,
    #[serde(default)]
    pub flow: FlowConfig,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub flows: BTreeMap<String, FlowDef>,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub thresholds: BTreeMap<String, Vec<ThresholdSpec>>,
    #[serde(default, skip_serializing_if = "SloConfig::is_empty")]
    pub slo: SloConfig,
    #[serde(
        default,
        skip_serializing_if = "crate::validity::ValidityConfig::is_default"
    )]
    pub validity: crate::validity::ValidityConfig,
    #[serde(default = "default_interval", with = "serde_str")]
    pub interval: Duration,
    #[serde(default = "default_graceful_stop", with = "serde_str")]
    pub graceful_stop: Duration,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// A plan file that gives no scenario, or two kinds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScenarioShapeError {
    #[error("give the load as [scenario] (one scenario) or as [scenarios.NAME] (several), not both; move [scenario] to [scenarios.default]")]
    Both,
    #[error("missing the load: add [scenario] (e.g. executor = \"constant-vus\", vus = 5, duration = \"30s\") or [scenarios.NAME] tables")]
    Neither,
    #[error("scenarios: no scenario starts at 0s; set the first one's start_time to \"0s\" and shift the others")]
    NoneAtZero,
}

impl TryFrom<PlanFile> for Plan {
    type Error = ScenarioShapeError;

    fn try_from(f: PlanFile) -> Result<Plan, ScenarioShapeError> {
        let scenario = match (f.scenario, f.scenarios.is_empty()) {
            (Some(_), false) => return Err(ScenarioShapeError::Both),
            (None, true) => return Err(ScenarioShapeError::Neither),
            (Some(s), true) => s,
            (None, false) => {
                let lead = leading_scenario(&f.scenarios).ok_or(ScenarioShapeError::NoneAtZero)?;
                f.scenarios[lead].executor.clone()
            }
        };
        Ok(Plan {
            name: f.name,
            target: f.target,
            scenario,
            scenarios: f.scenarios,
            flow: f.flow,
            flows: f.flows,
            auth: f.auth,
            thresholds: f.thresholds,
            slo: f.slo,
            validity: f.validity,
            interval: f.interval,
            graceful_stop: f.graceful_stop,
            tags: f.tags,
        })
    }
}

impl From<Plan> for PlanFile {
    fn from(p: Plan) -> PlanFile {
        PlanFile {
            name: p.name,
            target: p.target,
            // with [scenarios], `scenario` is derived from them
            scenario: p.scenarios.is_empty().then_some(p.scenario),
            scenarios: p.scenarios,
            flow: p.flow,
            flows: p.flows,
            auth: p.auth,
            thresholds: p.thresholds,
            slo: p.slo,
            validity: p.validity,
            interval: p.interval,
            graceful_stop: p.graceful_stop,
            tags: p.tags,
        }
    }
}

//! The plan: one validated description of a run. Flags, built-in profiles and `plan.toml`
//! all become a [`Plan`]; [`Plan::validate`] reports every problem at once, each naming the
//! field, the value and the accepted form.
//!
//! ```toml
//! name = "tier-m"
//! interval = "1s"
//! graceful_stop = "30s"
//! [target]
//! url = "http://127.0.0.1:9001"
//! runtime = "ts"
//! version = "0.1.0"
//! llm = "mock"
//! [scenario]
//! executor = "ramping-vus"
//! start_vus = 1
//! stages = [{ duration = "30s", target = 5 }, { duration = "30s", target = 10 }]
//! [flow]
//! graph_id = "agent"
//! model_name = "openai:mock-gpt-4o"
//! assistant_tag = "vu-{vu}-iter-{iter}"   # config.configurable.barrage_tag; "" leaves it out
//! # or, instead of the agent flow, one request per iteration:
//! # request = { method = "GET", path = "/threads/{vu}/state" }
//! [auth]
//! kind = "jwt"                      # none | token | jwt | gotrue
//! [thresholds]
//! http_req_failed = ["rate<0.05"]
//! "http_req_duration{operation:run_wait}" = [{ threshold = "p(95)<5000", abortOnFail = true }]
//! ```
//!
//! | file             | what it holds                                              |
//! |------------------|------------------------------------------------------------|
//! | `mod.rs`         | [`Plan`], [`PlanError`], parsing from TOML/JSON, the hash  |
//! | `file.rs`        | `PlanFile`: the file and wire form serde goes through      |
//! | `scenarios.rs`   | [`ScenarioConfig`] (`[scenarios.NAME]`), [`ScenarioRun`]   |
//! | `target.rs`      | [`TargetConfig`]                                           |
//! | `flow.rs`        | [`FlowConfig`], [`STREAM_MODES`]                           |
//! | `flowdef.rs`     | [`FlowDef`] (`[flows.NAME]`), the built-in flows           |
//! | `check.rs`       | [`Check`]: a step's checks                                 |
//! | `request.rs`     | [`RequestFlow`], [`REQUEST_METHODS`]                       |
//! | `auth.rs`        | [`AuthConfig`]                                             |
//! | `profiles.rs`    | [`Profile`], [`default_thresholds`]                        |
//! | `overrides.rs`   | [`PlanOverrides`], [`Plan::apply`]                         |
//! | `validate.rs`    | [`Plan::validate`]                                         |
//! | `thresholds.rs`  | threshold resolution, [`Plan::parsed_thresholds`]          |
//! | `slo.rs`         | [`SloConfig`] (`[slo]`), [`Plan::slo_objectives`]          |
mod auth;
mod check;
mod file;
mod flow;
mod flowdef;
mod overrides;
mod profiles;
mod request;
mod scenarios;
mod slo;
mod target;
#[cfg(test)]
mod tests;
mod thresholds;
mod validate;

pub use auth::AuthConfig;
pub use check::Check;
pub use flow::{
    FlowConfig, DEFAULT_RESPONSE_BODY_LIMIT, HISTORY_BYTES_RANGE, RESPONSE_BODY_LIMIT_RANGE,
    STREAM_MODES,
};
pub use flowdef::{
    builtin_flow, builtin_flow_plan_toml, FlowDef, GroupDef, RetryPolicy, StepKind, StepSpec,
    BUILTIN_FLOWS, MAX_GROUP_COUNT, RESERVED_VARS, STEP_METHODS,
};
pub use overrides::PlanOverrides;
pub use profiles::{default_thresholds, Profile, UnknownProfile};
pub use request::{RequestFlow, REQUEST_METHODS};
pub use scenarios::{
    leading_scenario, ScenarioConfig, ScenarioRun, DEFAULT_SCENARIO, MAX_START_TIME, SCENARIO_TAG,
};
pub use slo::{Objective, SloConfig, SloScope, DEFAULT_SLO, SLO_OFF};
pub use target::TargetConfig;

use crate::executor::ExecutorConfig;
use crate::threshold::ThresholdSpec;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Every problem found in a plan, one line each.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct PlanError(pub Vec<String>);

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the plan has {} problem(s):", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

/// A validated run description. Its file and wire form is [`file::PlanFile`] (serde goes
/// through it), where `[scenario]` and `[scenarios]` are alternatives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "file::PlanFile", into = "file::PlanFile")]
pub struct Plan {
    pub name: String,
    pub target: TargetConfig,
    /// The executor: `[scenario]`'s, or with `[scenarios]` the leading scenario's
    /// ([`leading_scenario`]), whose stages per-stage results follow.
    pub scenario: ExecutorConfig,
    /// The named scenarios (`[scenarios.NAME]`); empty for a `[scenario]` plan.
    pub scenarios: BTreeMap<String, ScenarioConfig>,
    pub flow: FlowConfig,
    /// Flows defined by the plan, by name (`[flows.NAME]`); `flow.name` picks one.
    pub flows: BTreeMap<String, FlowDef>,
    pub auth: AuthConfig,
    /// Metric (with optional tag filter) → threshold expressions.
    pub thresholds: BTreeMap<String, Vec<ThresholdSpec>>,
    /// Service-level objectives per step or metric (`[slo]`), for `flow_goodput`; the
    /// seed's thresholds when empty ([`DEFAULT_SLO`]).
    pub slo: SloConfig,
    /// Snapshot interval.
    pub interval: Duration,
    /// After the scenario's end, how long running iterations may take to finish.
    pub graceful_stop: Duration,
    /// Tags added to every sample.
    pub tags: BTreeMap<String, String>,
    /// What a valid run must deliver (`[validity]`, `core/src/validity/`).
    pub validity: crate::validity::ValidityConfig,
}

pub(crate) fn default_name() -> String {
    "agent-flow".into()
}
pub(crate) fn default_interval() -> Duration {
    Duration::from_secs(1)
}
pub(crate) fn default_graceful_stop() -> Duration {
    Duration::from_secs(30)
}

impl Plan {
    /// Parses a TOML plan and validates it.
    pub fn from_toml_str(text: &str) -> Result<Plan, PlanError> {
        let plan: Plan = toml::from_str(text).map_err(|e| {
            // serde says "unknown field"; name the executors that take arrival keys instead
            let misuse = text
                .parse::<toml::Table>()
                .ok()
                .and_then(|t| t.get("scenario").and_then(|s| s.as_table()).cloned())
                .map(|s| crate::arrivals::closed_model_misuse(&s))
                .unwrap_or_default();
            if misuse.is_empty() {
                PlanError(vec![format!("plan file: {}", e.to_string().trim())])
            } else {
                PlanError(misuse)
            }
        })?;
        plan.validate()?;
        Ok(plan)
    }

    /// Reads and validates a TOML plan file; every problem is prefixed with the file's path.
    pub fn from_file(path: &std::path::Path) -> Result<Plan, PlanError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            PlanError(vec![format!(
                "--plan {}: {e}; point it at a readable TOML plan",
                path.display()
            )])
        })?;
        Plan::from_toml_str(&text).map_err(|e| {
            PlanError(
                e.0.into_iter()
                    .map(|l| format!("{}: {l}", path.display()))
                    .collect(),
            )
        })
    }

    /// Parses the JSON form (as sent in an assignment) and validates it.
    pub fn from_json_str(text: &str) -> Result<Plan, PlanError> {
        let plan: Plan =
            serde_json::from_str(text).map_err(|e| PlanError(vec![format!("plan JSON: {e}")]))?;
        plan.validate()?;
        Ok(plan)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a plan always serializes")
    }

    /// FNV-1a of the JSON form: both sides of an assignment check they run the same plan.
    pub fn hash(&self) -> String {
        let mut h: u64 = 0xcbf29ce484222325;
        for b in self.to_json().bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
        format!("{h:016x}")
    }

    /// The flow the VUs run (`flow.name`): the plan's `[flows.NAME]`, else the built-in
    /// one of that name. `None` when neither exists (validation reports it).
    pub fn flow_def(&self) -> Option<FlowDef> {
        self.flows
            .get(&self.flow.name)
            .cloned()
            .or_else(|| builtin_flow(&self.flow.name))
    }

    /// Scheduled duration (the latest scenario end) plus graceful stop: no worker may run
    /// past this.
    pub fn max_duration(&self) -> Duration {
        self.duration() + self.graceful_stop
    }
}

//! `[scenarios.NAME]`: several named scenarios in one plan, as k6 users write them. Each
//! has its own executor (the fields of `[scenario]`), its own flow, a `start_time` and
//! optional tags; scenarios run side by side, or one after another when their start
//! times say so. A plan gives either `[scenario]` (one scenario, named
//! [`DEFAULT_SCENARIO`]) or `[scenarios]`, never both.
//!
//! ```toml
//! [scenarios.agents]
//! executor = "ramping-vus"
//! stages = [{ duration = "30s", target = 20 }, { duration = "1m", target = 20 }]
//! [scenarios.probe]
//! executor = "constant-arrival-rate"
//! rate = 1
//! duration = "1m30s"
//! pre_allocated_vus = 2
//! flow = "probe"            # a [flows.NAME] or a built-in flow; default: the plan's [flow]
//! start_time = "0s"         # default 0
//! tags = { kind = "probe" } # added to this scenario's samples
//! ```
//!
//! Every sample of a `[scenarios]` plan carries `scenario=NAME`, so thresholds can filter on
//! it: `"http_req_duration{scenario:probe}" = ["p(95)<200"]`. A `[scenario]` plan's samples
//! carry no such tag (its output stays what it always was).
//!
//! The worker runs each scenario on a plan of its own ([`Plan::scenario_runs`]): the same
//! plan with `scenario` set to that scenario's executor, `flow` to its flow and `tags` to
//! the plan's tags plus its own, so an executor runtime never needs to know about the
//! others.
//!
//! # The leading scenario
//! `Plan::scenario` always holds one executor: with `[scenarios]`, that of the *leading*
//! scenario ([`leading_scenario`]): among those starting at 0 s, the one running longest,
//! then the one with the most VUs, then the first by name. Per-stage results follow its
//! stages, which therefore start with the run.
use super::Plan;
use crate::duration::{format_duration, serde_str};
use crate::executor::ExecutorConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The name of a `[scenario]` plan's one scenario (k6's name for it, too).
pub const DEFAULT_SCENARIO: &str = "default";
/// The tag every sample of a `[scenarios]` plan carries.
pub const SCENARIO_TAG: &str = "scenario";
/// Latest accepted `start_time`: a day, far beyond any run, low enough to catch typos.
pub const MAX_START_TIME: Duration = Duration::from_secs(24 * 3600);

/// One `[scenarios.NAME]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioConfig {
    /// The executor and its fields, as in `[scenario]`.
    #[serde(flatten)]
    pub executor: ExecutorConfig,
    /// When the scenario starts, from the run's start.
    #[serde(default, with = "serde_str")]
    pub start_time: Duration,
    /// The flow its VUs run: a `[flows.NAME]` of the plan or a built-in flow; `None`: the
    /// plan's `[flow]` (its `name`, or its `request`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<String>,
    /// Tags added to this scenario's samples (beside the plan's and `scenario=NAME`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

impl ScenarioConfig {
    /// When its schedule ends on the run's clock (graceful stop not included).
    pub fn end(&self) -> Duration {
        self.start_time + self.executor.duration()
    }
}

/// One scenario as the worker runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioRun {
    pub name: String,
    /// When its stage time 0 falls, from the run's start.
    pub start_time: Duration,
    /// The plan as this scenario sees it: `scenario` is its executor, `flow` its flow,
    /// `tags` the plan's tags and its own (with `scenario=NAME` for a `[scenarios]` plan),
    /// `scenarios` empty.
    pub plan: Plan,
}

/// The leading scenario's name (see the module docs); `None` when `scenarios` is empty or
/// none starts at 0 s.
pub fn leading_scenario(scenarios: &BTreeMap<String, ScenarioConfig>) -> Option<&str> {
    scenarios
        .iter()
        .filter(|(_, s)| s.start_time.is_zero())
        // max_by_key keeps the last maximum: iterate names backwards so the first wins
        .rev()
        .max_by_key(|(_, s)| (s.executor.duration(), s.executor.max_vus()))
        .map(|(n, _)| n.as_str())
}

impl Plan {
    /// Whether the plan gives `[scenarios]` (rather than one `[scenario]`).
    pub fn has_named_scenarios(&self) -> bool {
        !self.scenarios.is_empty()
    }

    /// The scenarios as the worker runs them, by name: one (`default`) for a `[scenario]`
    /// plan.
    pub fn scenario_runs(&self) -> Vec<ScenarioRun> {
        if self.scenarios.is_empty() {
            let mut plan = self.clone();
            plan.scenarios.clear();
            return vec![ScenarioRun {
                name: DEFAULT_SCENARIO.to_string(),
                start_time: Duration::ZERO,
                plan,
            }];
        }
        self.scenarios
            .iter()
            .map(|(name, s)| {
                let mut plan = self.clone();
                plan.scenarios.clear();
                plan.scenario = s.executor.clone();
                if let Some(flow) = &s.flow {
                    plan.flow.name.clone_from(flow);
                    plan.flow.request = None;
                }
                plan.tags
                    .extend(s.tags.iter().map(|(k, v)| (k.clone(), v.clone())));
                plan.tags.insert(SCENARIO_TAG.to_string(), name.clone());
                ScenarioRun {
                    name: name.clone(),
                    start_time: s.start_time,
                    plan,
                }
            })
            .collect()
    }

    /// The scheduled duration of the whole plan: the latest scenario end (start time plus
    /// duration), without graceful stop.
    pub fn duration(&self) -> Duration {
        if self.scenarios.is_empty() {
            return self.scenario.duration();
        }
        self.scenarios
            .values()
            .map(ScenarioConfig::end)
            .max()
            .unwrap_or_default()
    }

    /// The most VUs the plan may ever allocate: the sum over its scenarios (k6's
    /// `vus_max` counts every scenario's, whether or not they overlap).
    pub fn max_vus(&self) -> u64 {
        if self.scenarios.is_empty() {
            return self.scenario.max_vus();
        }
        self.scenarios
            .values()
            .map(|s| s.executor.max_vus())
            .fold(0u64, u64::saturating_add)
    }

    /// A one-line description of the load: the executor's, or one part per scenario
    /// (`name: executor …`, `@start_time` when it starts later).
    pub fn describe_scenarios(&self) -> String {
        if self.scenarios.is_empty() {
            return self.scenario.describe();
        }
        self.scenarios
            .iter()
            .map(|(name, s)| {
                let at = if s.start_time.is_zero() {
                    String::new()
                } else {
                    format!(" @{}", format_duration(s.start_time))
                };
                format!("{name}{at}: {}", s.executor.describe())
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Every problem of `[scenarios]` (called by [`Plan::validate`]).
    pub(super) fn validate_scenarios(&self, errors: &mut Vec<String>) {
        if self.scenarios.is_empty() {
            return;
        }
        for (name, s) in &self.scenarios {
            let field = format!("scenarios.{name}");
            if let Err(e) = crate::label::check_path_label(name) {
                errors.push(format!(
                    "{field}: the name {name:?} {e}; name scenarios like \"agents\" or \"probe\""
                ));
            }
            s.executor.validate(&field, errors);
            if s.start_time > MAX_START_TIME {
                errors.push(format!(
                    "{field}.start_time: {} is over the limit of {}; give e.g. \"30s\"",
                    format_duration(s.start_time),
                    format_duration(MAX_START_TIME)
                ));
            }
            if let Some(flow) = &s.flow {
                if !self.flows.contains_key(flow) && super::builtin_flow(flow).is_none() {
                    let mut known: Vec<&str> = self.flows.keys().map(String::as_str).collect();
                    known.extend(super::BUILTIN_FLOWS.iter().map(|(n, _)| *n));
                    errors.push(format!(
                        "{field}.flow: {flow:?} is neither a [flows.NAME] of the plan nor a built-in flow; use one of {}, or leave it out to run the plan's [flow]",
                        known.join(", ")
                    ));
                }
            }
            for (k, v) in &s.tags {
                if k == SCENARIO_TAG {
                    errors.push(format!(
                        "{field}.tags.{k}: the {SCENARIO_TAG:?} tag is set to the scenario's name; use another key"
                    ));
                } else if k.is_empty() || v.is_empty() {
                    errors.push(format!(
                        "{field}.tags: {k:?} = {v:?}: keys and values must not be empty"
                    ));
                }
            }
        }
        if self.tags.contains_key(SCENARIO_TAG) {
            errors.push(format!(
                "tags.{SCENARIO_TAG}: with [scenarios], every sample's {SCENARIO_TAG:?} tag is its scenario's name; use another key"
            ));
        }
        match leading_scenario(&self.scenarios) {
            None => errors.push(format!(
                "scenarios: no scenario starts at 0s (the earliest is {}); set the first one's start_time to \"0s\" and shift the others",
                format_duration(
                    self.scenarios.values().map(|s| s.start_time).min().unwrap_or_default()
                )
            )),
            Some(lead) if self.scenarios[lead].executor != self.scenario => errors.push(format!(
                "scenario: must be the executor of the leading scenario {lead:?} in a plan with [scenarios]; build the plan from a file, or copy scenarios.{lead} into it"
            )),
            Some(_) => {}
        }
    }

    /// Thresholds that filter on a scenario name the plan does not have.
    pub(super) fn check_threshold_scenario(&self, key: &str, errors: &mut Vec<String>) {
        let Ok(mref) = crate::threshold::MetricRef::parse(key) else {
            return; // reported by the threshold's own check
        };
        for (k, v) in &mref.filter {
            // a [scenario] plan may tag its samples itself (`tags = { scenario = … }`)
            if k != SCENARIO_TAG || (self.scenarios.is_empty() && self.tags.contains_key(k)) {
                continue;
            }
            let known: Vec<&str> = if self.scenarios.is_empty() {
                Vec::new()
            } else {
                self.scenarios.keys().map(String::as_str).collect()
            };
            if !known.contains(&v.as_str()) {
                errors.push(if known.is_empty() {
                    format!(
                        "thresholds.{key}: a plan with one [scenario] tags no sample with {SCENARIO_TAG}; name scenarios with [scenarios.NAME] or drop the filter"
                    )
                } else {
                    format!(
                        "thresholds.{key}: the plan has no scenario {v:?}; use one of {}",
                        known.join(", ")
                    )
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PlanOverrides, Profile};

    const TWO: &str = r#"
name = "with-probe"
[scenarios.agents]
executor = "ramping-vus"
stages = [{ duration = "10s", target = 4 }, { duration = "20s", target = 4 }]
[scenarios.probe]
executor = "constant-arrival-rate"
rate = 1
duration = "25s"
pre_allocated_vus = 2
flow = "probe"
tags = { kind = "probe" }
[scenarios.late]
executor = "constant-vus"
vus = 1
duration = "10s"
start_time = "25s"
[flows.probe]
[[flows.probe.steps]]
name = "probe"
path = "/ok"
[thresholds]
"http_req_duration{scenario:probe}" = ["p(95)<200"]
"#;

    fn errors_of(text: &str) -> Vec<String> {
        Plan::from_toml_str(text).unwrap_err().0
    }

    fn has(errors: &[String], prefix: &str) -> bool {
        errors.iter().any(|e| e.starts_with(prefix))
    }

    #[test]
    fn k6_style_scenarios_parse_into_runs_of_their_own() {
        let plan = Plan::from_toml_str(TWO).unwrap();
        assert!(plan.has_named_scenarios());
        // the leading scenario: starts at 0 and runs longest
        assert_eq!(leading_scenario(&plan.scenarios), Some("agents"));
        assert_eq!(plan.scenario, plan.scenarios["agents"].executor);
        // the latest end: late starts at 25 s and runs 10 s
        assert_eq!(plan.duration(), Duration::from_secs(35));
        assert_eq!(plan.max_duration(), Duration::from_secs(35 + 30));
        assert_eq!(plan.max_vus(), 4 + 2 + 1);
        let runs = plan.scenario_runs();
        let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["agents", "late", "probe"]);
        for r in &runs {
            assert!(r.plan.scenarios.is_empty());
            assert_eq!(r.plan.scenario, plan.scenarios[&r.name].executor);
            assert_eq!(r.plan.tags.get(SCENARIO_TAG), Some(&r.name));
            r.plan.validate().unwrap();
        }
        assert_eq!(runs[1].start_time, Duration::from_secs(25));
        assert_eq!(runs[0].plan.flow.name, "agent");
        assert_eq!(runs[2].plan.flow.name, "probe");
        assert_eq!(
            runs[2].plan.tags.get("kind").map(String::as_str),
            Some("probe")
        );
        assert!(plan
            .describe_scenarios()
            .contains("late @25s: constant-vus"));
    }

    #[test]
    fn a_scenarios_plan_round_trips_through_json_and_a_scenario_plan_is_written_as_before() {
        let plan = Plan::from_toml_str(TWO).unwrap();
        let json = plan.to_json();
        let back = Plan::from_json_str(&json).unwrap();
        assert_eq!(back, plan);
        assert_eq!(back.hash(), plan.hash());
        let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert!(
            doc.get("scenario").is_none(),
            "derived, not written: {json}"
        );
        assert_eq!(
            doc["scenarios"]["probe"]["executor"],
            "constant-arrival-rate"
        );
        assert_eq!(doc["scenarios"]["probe"]["rate"], 1);

        let one = Plan::profile(Profile::Default);
        let doc: serde_json::Value = serde_json::from_str(&one.to_json()).unwrap();
        assert!(doc.get("scenarios").is_none());
        assert_eq!(doc["scenario"]["executor"], "ramping-vus");
        let runs = one.scenario_runs();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].name, DEFAULT_SCENARIO);
        // a [scenario] plan's samples are not tagged: its output stays as it was
        assert_eq!(runs[0].plan, one);
    }

    #[test]
    fn scenario_and_scenarios_are_alternatives() {
        let both =
            format!("{TWO}\n[scenario]\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\n");
        let e = errors_of(&both);
        assert!(e[0].contains("not both"), "{e:?}");
        let e = errors_of("name = \"x\"\n");
        assert!(e[0].contains("missing the load"), "{e:?}");
        let late_only = r#"
[scenarios.a]
executor = "constant-vus"
vus = 1
duration = "5s"
start_time = "2s"
"#;
        let e = errors_of(late_only);
        assert!(e[0].contains("no scenario starts at 0s"), "{e:?}");
    }

    #[test]
    fn every_scenario_problem_names_its_field() {
        let text = r#"
tags = { scenario = "x" }
[scenarios."bad name!"]
executor = "constant-vus"
vus = 1
duration = "5s"
[scenarios.rate]
executor = "constant-arrival-rate"
rate = 0
duration = "5s"
pre_allocated_vus = 0
flow = "nosuchflow"
start_time = "48h"
tags = { scenario = "mine" }
[thresholds]
"http_req_duration{scenario:nope}" = ["p(95)<200"]
"#;
        let e = errors_of(text);
        for prefix in [
            "scenarios.bad name!: the name \"bad name!\"",
            "scenarios.rate.rate:",
            "scenarios.rate.pre_allocated_vus:",
            "scenarios.rate.flow: \"nosuchflow\" is neither",
            "scenarios.rate.start_time: 48h is over the limit of 24h",
            "scenarios.rate.tags.scenario:",
            "tags.scenario:",
            "thresholds.http_req_duration{scenario:nope}: the plan has no scenario \"nope\"; use one of bad name!, rate",
        ] {
            assert!(has(&e, prefix), "{prefix:?} missing in {e:#?}");
        }
        // a field no executor knows is named by the parser
        let e = errors_of(
            "[scenarios.a]\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"5s\"\nstartTime = \"1s\"\n",
        );
        assert!(e[0].contains("startTime"), "{e:?}");
        // a scenario filter on a one-[scenario] plan can never match
        let e = errors_of(
            "[scenario]\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"5s\"\n[thresholds]\n\"http_req_duration{scenario:default}\" = [\"p(95)<1\"]\n",
        );
        assert!(e[0].contains("tags no sample with scenario"), "{e:?}");
    }

    #[test]
    fn a_plan_built_in_code_must_keep_scenario_on_the_leading_one() {
        let mut plan = Plan::from_toml_str(TWO).unwrap();
        plan.scenario = Plan::profile(Profile::Smoke).scenario;
        let e = plan.validate().unwrap_err().0;
        assert!(
            has(
                &e,
                "scenario: must be the executor of the leading scenario \"agents\""
            ),
            "{e:?}"
        );
    }

    /// The README's example: it parses, its probe runs the probe flow at 1/s, and the
    /// agents scenario leads (per-stage results follow its ramp).
    #[test]
    fn the_probe_example_plan_validates() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/plans/probe.toml");
        let plan = Plan::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(leading_scenario(&plan.scenarios), Some("agents"));
        let probe = &plan.scenarios["probe"];
        assert_eq!(probe.flow.as_deref(), Some("probe"));
        assert_eq!(probe.executor.rate_at(Duration::ZERO), Some(1.0));
        assert_eq!(probe.executor.duration(), plan.duration());
        assert!(plan
            .thresholds
            .contains_key("http_req_duration{scenario:probe}"));
    }

    #[test]
    fn smoke_runs_every_scenario_once_from_the_start() {
        let mut plan = Plan::from_toml_str(TWO).unwrap();
        plan.apply(&PlanOverrides {
            smoke: true,
            ..PlanOverrides::default()
        });
        plan.validate().unwrap();
        let smoke = Plan::profile(Profile::Smoke).scenario;
        assert!(plan
            .scenarios
            .values()
            .all(|s| s.executor == smoke && s.start_time.is_zero()));
        assert_eq!(plan.scenario, smoke);
    }
}

//! `[slo]`: the service-level objectives that say when a flow was *good*, for the
//! `flow_goodput` Rate. A flow whose checks all passed can still have kept its user waiting
//! too long; goodput counts only the flows that passed every check **and** met every
//! objective, so a runtime that answers correctly but slowly does not look healthy.
//!
//! ```toml
//! [slo]
//! create_thread = "500ms"      # each request of the step named create_thread
//! run_wait = "5s"
//! cleanup = "1s"               # a step's metric: each request of the steps recording it
//! http_req_duration = "10s"    # each request of the flow
//! stream_first_token = "1s"    # each stream's first event with AI content (sse steps)
//! stream_first_event = "500ms" # each stream's first event
//! agent_flow_duration = "8s"   # the agent flow, intended start → end of its cleanup
//! iteration_duration = "20s"   # any flow, the same span
//! create_assistant = "off"     # no objective (turns a default off)
//! ```
//!
//! Without `[slo]` the seed's latency thresholds are the objectives ([`DEFAULT_SLO`]:
//! create_assistant and create_thread 500 ms, run_wait 5 s, agent_flow_duration 8 s), each
//! where the plan's flow has that step or metric. An entry replaces the default of its name
//! and leaves the others; `"off"` removes one. A request (or stream) that takes longer than
//! its objective makes its flow not good; when several objectives name a request (its step
//! and its metric, `http_req_duration`), it must meet each. A stream with a first-token
//! objective that carried no AI content missed it.
//!
//! Names are checked against the plan's flow, so a typo is an error naming the entry and
//! the names that flow has, never an objective that silently judges nothing.
use super::{builtin_flow, Plan, StepKind};
use crate::duration::parse_duration;
use crate::metrics::builtin;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The objectives in use when the plan gives none: the seed's latency thresholds (its p95
/// limits, applied to each flow).
pub const DEFAULT_SLO: &[(&str, Duration)] = &[
    ("create_assistant", Duration::from_millis(500)),
    ("create_thread", Duration::from_millis(500)),
    ("run_wait", Duration::from_secs(5)),
    (builtin::AGENT_FLOW_DURATION, Duration::from_secs(8)),
];

/// The word that turns an objective off.
pub const SLO_OFF: &str = "off";

/// `[slo]` as written: name → `"500ms"`-style duration or `"off"`. Checked by
/// [`Plan::validate`]; [`Plan::slo_objectives`] gives the objectives in use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct SloConfig(pub BTreeMap<String, String>);

impl<'de> Deserialize<'de> for SloConfig {
    /// Values must be strings: a bare number would be a unit guess (the seed's thresholds
    /// are ms, k6's durations s), so the parser refuses it saying what to write.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entry(String);
        struct EntryVisitor;
        impl serde::de::Visitor<'_> for EntryVisitor {
            type Value = Entry;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "an objective as a string: a duration such as \"500ms\" or \"5s\", or \"off\"",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Entry, E> {
                Ok(Entry(v.to_string()))
            }
        }
        impl<'de> Deserialize<'de> for Entry {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_str(EntryVisitor)
            }
        }
        let entries = BTreeMap::<String, Entry>::deserialize(d)?;
        Ok(SloConfig(
            entries.into_iter().map(|(k, v)| (k, v.0)).collect(),
        ))
    }
}

impl SloConfig {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What an objective times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SloScope {
    /// Each request of the steps whose name or metric it is (`http_req_duration`: all).
    Request,
    /// Each stream's first event (`stream_first_event`).
    FirstEvent,
    /// Each stream's first event with AI content (`stream_first_token`).
    FirstToken,
    /// The whole flow, from its intended start (`agent_flow_duration`, `iteration_duration`).
    Flow,
}

/// One objective in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Objective {
    /// A step's name or metric, or one of the metrics of [`SloScope`].
    pub name: String,
    pub scope: SloScope,
    /// Met when the timed span is at most this.
    pub within: Duration,
}

/// The names a flow's objectives may use, with what each times.
fn flow_names(plan: &Plan) -> Option<Vec<(String, SloScope)>> {
    let mut names: Vec<(String, SloScope)> = Vec::new();
    let mut add = |n: &str, scope| {
        if !names.iter().any(|(x, _)| x == n) {
            names.push((n.to_string(), scope));
        }
    };
    if plan.flow.request.is_some() {
        add("request", SloScope::Request);
    } else {
        let def = plan
            .flows
            .get(&plan.flow.name)
            .cloned()
            .or_else(|| builtin_flow(&plan.flow.name))?;
        for s in &def.steps {
            add(&s.name, SloScope::Request);
        }
        for s in &def.steps {
            if let Some(m) = &s.metric {
                add(m, SloScope::Request);
            }
        }
        if def.steps.iter().any(|s| s.kind == StepKind::Sse) {
            add(builtin::STREAM_FIRST_EVENT, SloScope::FirstEvent);
            add(builtin::STREAM_FIRST_TOKEN, SloScope::FirstToken);
        }
        if plan.flow.name == "agent" {
            add(builtin::AGENT_FLOW_DURATION, SloScope::Flow);
        }
    }
    add(builtin::HTTP_REQ_DURATION, SloScope::Request);
    add(builtin::ITERATION_DURATION, SloScope::Flow);
    Some(names)
}

/// An entry's value: `Some(d)` an objective, `None` off.
fn parse_value(name: &str, value: &str) -> Result<Option<Duration>, String> {
    let fix = "use a duration such as \"500ms\" or \"5s\", or \"off\" for no objective";
    if value.trim() == SLO_OFF {
        return Ok(None);
    }
    match parse_duration(value) {
        Ok(d) if d.is_zero() => Err(format!(
            "slo.{name}: {value:?} is zero, which no request can meet; {fix}"
        )),
        Ok(d) => Ok(Some(d)),
        // `e` says what to write already
        Err(e) => Err(format!("slo.{name}: {e}, or \"off\" for no objective")),
    }
}

impl Plan {
    /// Every problem of `[slo]`: names the plan's flow does not have, values that are not
    /// a positive duration or `"off"`.
    pub(super) fn validate_slo(&self, errors: &mut Vec<String>) {
        // an unknown flow is reported by `validate` already
        let Some(names) = flow_names(self) else {
            return;
        };
        let flow = if self.flow.request.is_some() {
            "flow.request".to_string()
        } else {
            format!("flow {:?}", self.flow.name)
        };
        for (name, value) in &self.slo.0 {
            if !names.iter().any(|(n, _)| n == name) {
                let known: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
                errors.push(format!(
                    "slo.{name}: {flow} has no step or metric {name:?}; use one of {} (or remove the entry)",
                    known.join(", ")
                ));
                continue;
            }
            if let Err(e) = parse_value(name, value) {
                errors.push(e);
            }
        }
    }

    /// The objectives in use, by name: [`DEFAULT_SLO`] where the flow has the name, with
    /// `[slo]` replacing (or turning off) entries and adding others. Empty when the flow is
    /// unknown (validation reports it).
    pub fn slo_objectives(&self) -> Vec<Objective> {
        let Some(names) = flow_names(self) else {
            return Vec::new();
        };
        let mut chosen: BTreeMap<&str, Option<Duration>> =
            DEFAULT_SLO.iter().map(|(n, d)| (*n, Some(*d))).collect();
        for (name, value) in &self.slo.0 {
            chosen.insert(name, parse_value(name, value).ok().flatten());
        }
        chosen
            .into_iter()
            .filter_map(|(name, within)| {
                let scope = names.iter().find(|(n, _)| n == name)?.1;
                Some(Objective {
                    name: name.to_string(),
                    scope,
                    within: within?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Profile;

    fn plan_with(slo: &[(&str, &str)], extra: &str) -> Result<Plan, String> {
        let entries: String = slo
            .iter()
            .map(|(k, v)| format!("{k} = \"{v}\"\n"))
            .collect();
        let text = format!(
            "[scenario]\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\n{extra}\n[slo]\n{entries}"
        );
        Plan::from_toml_str(&text).map_err(|e| e.to_string())
    }

    fn objectives(p: &Plan) -> Vec<(String, Duration)> {
        p.slo_objectives()
            .into_iter()
            .map(|o| (o.name, o.within))
            .collect()
    }

    #[test]
    fn without_slo_the_seed_thresholds_are_the_objectives() {
        let p = Plan::profile(Profile::Default);
        assert!(p.slo.is_empty());
        assert_eq!(
            objectives(&p),
            [
                ("agent_flow_duration".to_string(), Duration::from_secs(8)),
                ("create_assistant".to_string(), Duration::from_millis(500)),
                ("create_thread".to_string(), Duration::from_millis(500)),
                ("run_wait".to_string(), Duration::from_secs(5)),
            ]
        );
        let scopes: Vec<SloScope> = p.slo_objectives().iter().map(|o| o.scope).collect();
        assert_eq!(
            scopes,
            [
                SloScope::Flow,
                SloScope::Request,
                SloScope::Request,
                SloScope::Request
            ]
        );
    }

    #[test]
    fn entries_replace_add_and_turn_off_defaults() {
        let p = plan_with(
            &[
                ("run_wait", "1ms"),
                ("stream_first_token", "1s"),
                ("create_assistant", "off"),
                ("cleanup", "250ms"),
            ],
            "",
        )
        .unwrap();
        assert_eq!(
            objectives(&p),
            [
                ("agent_flow_duration".to_string(), Duration::from_secs(8)),
                ("cleanup".to_string(), Duration::from_millis(250)),
                ("create_thread".to_string(), Duration::from_millis(500)),
                ("run_wait".to_string(), Duration::from_millis(1)),
                ("stream_first_token".to_string(), Duration::from_secs(1)),
            ]
        );
        let token = p
            .slo_objectives()
            .into_iter()
            .find(|o| o.name == "stream_first_token")
            .unwrap();
        assert_eq!(token.scope, SloScope::FirstToken);
        // the plan's JSON (sent to workers, hashed) carries the entries
        let back = Plan::from_json_str(&p.to_json()).unwrap();
        assert_eq!(back.slo, p.slo);
        // and a plan without [slo] keeps its JSON, so its hash is unchanged
        assert!(!Plan::profile(Profile::Smoke).to_json().contains("slo"));
    }

    #[test]
    fn defaults_apply_only_to_names_the_flow_has() {
        let p = plan_with(&[], "[flow]\nrequest = { path = \"/ok\" }").unwrap();
        assert!(p.slo_objectives().is_empty(), "{:?}", p.slo_objectives());
        let p = plan_with(
            &[("request", "20ms")],
            "[flow]\nrequest = { path = \"/ok\" }",
        )
        .unwrap();
        assert_eq!(
            objectives(&p),
            [("request".to_string(), Duration::from_millis(20))]
        );
        // the chain pattern has no create_assistant or agent_flow_duration
        let p = plan_with(&[("iteration_duration", "30s")], "[flow]\nname = \"chain\"").unwrap();
        let names: Vec<String> = objectives(&p).into_iter().map(|(n, _)| n).collect();
        assert!(
            !names.contains(&"create_assistant".to_string()),
            "{names:?}"
        );
        assert!(
            !names.contains(&"agent_flow_duration".to_string()),
            "{names:?}"
        );
        assert!(
            names.contains(&"iteration_duration".to_string()),
            "{names:?}"
        );
    }

    /// Each message names the entry and says how to fix it.
    #[test]
    fn every_bad_entry_is_named_with_its_fix() {
        // ([slo] entries, extra plan TOML, what the message must say)
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a [&'a str]);
        let cases: &[Case] = &[
            (
                &[("run_wiat", "5s")],
                "",
                &[
                    "slo.run_wiat:",
                    "flow \"agent\" has no step or metric \"run_wiat\"",
                    "use one of create_assistant, create_thread, run_wait",
                    "or remove the entry",
                ],
            ),
            (
                &[("run_wait", "5 seconds")],
                "",
                &[
                    "slo.run_wait:",
                    "unknown unit",
                    "use ms, s, m or h, or \"off\"",
                ],
            ),
            (
                &[("run_wait", "0ms")],
                "",
                &["slo.run_wait:", "is zero", "\"off\" for no objective"],
            ),
            (
                &[("create_thread", "fast")],
                "",
                &[
                    "slo.create_thread:",
                    "\"fast\" is malformed",
                    "250ms, or \"off\"",
                ],
            ),
            (
                &[("agent_flow_duration", "8s")],
                "[flow]\nrequest = { path = \"/ok\" }",
                &[
                    "slo.agent_flow_duration: flow.request has no step or metric",
                    "use one of request, http_req_duration, iteration_duration",
                ],
            ),
            (
                &[("stream_first_token", "1s")],
                "[flow]\nrequest = { path = \"/ok\" }",
                &["slo.stream_first_token: flow.request has no step or metric"],
            ),
        ];
        for (slo, extra, needles) in cases {
            let err = plan_with(slo, extra).unwrap_err();
            for n in *needles {
                assert!(err.contains(n), "{slo:?}: {n:?} not in\n{err}");
            }
        }
        // several problems at once, one line each
        let err = plan_with(&[("nope", "1s"), ("run_wait", "x")], "").unwrap_err();
        assert!(err.contains("2 problem(s)"), "{err}");
        // a value that is not a string is refused by the parser, showing the entry
        let err = Plan::from_toml_str(
            "[scenario]\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\n[slo]\nrun_wait = 5\n",
        )
        .unwrap_err()
        .to_string();
        for n in ["run_wait = 5", "integer `5`", "\"5s\"", "\"off\""] {
            assert!(err.contains(n), "{n:?} not in\n{err}");
        }
    }
}

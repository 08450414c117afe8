//! [`FlowDef`]: a flow as data (`[flows.NAME]` in a plan, or a built-in one), the steps
//! one iteration of a VU runs. The worker compiles it once per run
//! (`barrage_worker::flow`); this module is its shape and its validation.
//!
//! ```toml
//! [flow]
//! name = "chat"                     # which flow the VUs run (default "agent", built in)
//! [flows.chat]
//! description = "a thread, then 5 turns on it"
//! vars = { greeting = "hi" }        # constants for the templates
//! groups = { turn = { repeat = 5 } } # {turn} = 0..4 inside the group
//! [[flows.chat.steps]]
//! name = "create_thread"
//! method = "POST"
//! path = "/threads"
//! body = '{"metadata":{"vu":{vu}}}'
//! capture = { thread_id = "/thread_id" }
//! [[flows.chat.steps]]
//! name = "turn"
//! group = "turn"
//! method = "POST"
//! path = "/threads/{thread_id}/runs/wait"
//! body = '{"assistant_id":"agent","input":{"messages":[{"role":"user","content":"{greeting} {turn}"}]}}'
//! checks = [{ check = "no_run_error" }]
//! tags = { depth = "{turn}" }
//! retry = { attempts = 3, backoff = "200ms", on_status = [500, 503] }
//! [[flows.chat.steps]]
//! name = "delete_thread"
//! method = "DELETE"
//! path = "/threads/{thread_id}"
//! kind = "ignore"
//! cleanup = true
//! requires = ["thread_id"]
//! ```
//!
//! # Templates
//! `path`, `body`, `equals`/`array_has` values and tag values hold `{name}` references:
//! `vu`, `iter` (per iteration), the plan's `graph_id`, `model_name`, `message`,
//! `stream_mode` (a JSON array, spliced as written), `assistant_tag_field` (`,
//! "barrage_tag":"…"` or nothing, spliced), `history` (the plan's `flow.history_bytes` of
//! JSON messages, each followed by a comma, or nothing: spliced first in a messages
//! array, `"messages":[{history}{"role":"user",…}]`), the flow's `vars`, every `capture`d and
//! `mark`ed variable, and a group's index (`{turn}` above). Values are JSON-escaped in
//! bodies and percent-encoded in paths. An unknown name is an error naming the step.
//!
//! # Order
//! Main steps (not `cleanup`) run in waves: a step runs after every step of its
//! `depends_on` (by default: the step before it). Steps of one wave run at the same time,
//! each on a copy of the variables; what they capture is merged back after the wave. The
//! first failure stops the main steps after its wave; cleanup steps then run, in order,
//! for each resource whose `requires` variables were captured.
//!
//! # Groups
//! Consecutive steps with the same `group` form one unit: `repeat = N` runs them N times
//! in order (a multi-turn conversation on one thread), `fan_out = N` runs N copies at
//! once (their captures stay in their copy). The group's name is a variable holding the
//! turn or copy index (0-based). A `cleanup` step in a group (after its main steps) runs
//! at the end of each turn or copy, on that copy's variables, even after a failure: a
//! fan-out copy that fails still deletes the thread it created.
use super::check::Check;
use crate::duration::serde_str;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// What a step's answer is read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// JSON (whatever the content type), read only where checks and captures look.
    #[default]
    Json,
    /// Server-Sent Events, parsed as they arrive.
    Sse,
    /// Drained, not read (deletes).
    Ignore,
}

/// When and how a step is sent again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1..=10).
    pub attempts: u32,
    /// Wait before the second attempt; doubled before each next one, up to `max_backoff`.
    #[serde(default = "default_backoff", with = "serde_str")]
    pub backoff: Duration,
    #[serde(default = "default_max_backoff", with = "serde_str")]
    pub max_backoff: Duration,
    /// Fraction of each wait drawn at random (0 = none, 1 = anywhere in 0..wait).
    #[serde(default = "default_jitter")]
    pub jitter: f64,
    /// Statuses that are retried.
    #[serde(default = "default_retry_statuses")]
    pub on_status: Vec<u16>,
    /// Whether a request that got no answer (connect, reset, timeout) is retried.
    #[serde(default = "default_true")]
    pub on_error: bool,
    /// Whether a 2xx answer failing a check that marks the request failed (a run's
    /// `__error__`, a stream's `event: error`) is retried.
    #[serde(default)]
    pub on_run_error: bool,
}

fn default_backoff() -> Duration {
    Duration::from_millis(100)
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(5)
}
fn default_jitter() -> f64 {
    0.2
}
fn default_retry_statuses() -> Vec<u16> {
    vec![429, 500, 502, 503, 504]
}
fn default_true() -> bool {
    true
}

/// A unit of consecutive steps run several times: in order, or at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupDef {
    /// Run the group's steps this many times, one after the other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<u32>,
    /// Run this many copies of the group's steps at the same time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fan_out: Option<u32>,
}

/// The most turns or copies of a group.
pub const MAX_GROUP_COUNT: u32 = 1000;

/// One request of a flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// The `operation` tag of its samples and its name in failures (an identifier).
    pub name: String,
    #[serde(default = "default_method")]
    pub method: String,
    /// Path and query after the target URL, starting with `/`.
    pub path: String,
    /// JSON body template, sent with `content-type: application/json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default)]
    pub kind: StepKind,
    /// Checks, in order; with no status check, `status_2xx` comes first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
    /// Variable ← JSON pointer of the answer (a string or a number), when the step passed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub capture: BTreeMap<String, String>,
    /// A variable set (to `1`) when the step passed: marks a resource created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<String>,
    /// The Trend its duration goes to (default: its name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// Tags of that Trend sample, beside `operation`; values are templates.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Steps it waits for (by default, the step before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Pause after the step.
    #[serde(default, with = "serde_str", skip_serializing_if = "Duration::is_zero")]
    pub think_time: Duration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// Runs after the main steps, even after a failure, when every variable of `requires`
    /// is set.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cleanup: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<String>,
    /// Runtime overhead: the URL (a template) of the mock LLM's call log for this step's
    /// run, e.g. `"{llm_url}/stats/calls?key={vu}.{iter}"`, its key written into the
    /// step's prompt as `[barrage-key:{vu}.{iter}]`. After the step passes, the calls
    /// the mock served for it give `llm_service_time` and `runtime_overhead` (the run's
    /// latency minus that time), per operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_calls: Option<String>,
}

fn default_method() -> String {
    "GET".into()
}

/// A flow: its steps and what they share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowDef {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Constants for the templates.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, GroupDef>,
    pub steps: Vec<StepSpec>,
}

/// Methods a step may use.
pub const STEP_METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Variables every flow has; a flow may not define them again.
pub const RESERVED_VARS: &[&str] = &[
    "vu",
    "iter",
    "graph_id",
    "model_name",
    "message",
    "stream_mode",
    "assistant_tag_field",
    "history",
];

/// The built-in flows, by name, as TOML (what `barrage flow show NAME` prints).
pub const BUILTIN_FLOWS: &[(&str, &str)] = &[
    ("agent", include_str!("flows/agent.toml")),
    ("chain", include_str!("flows/chain.toml")),
    ("fanout", include_str!("flows/fanout.toml")),
    (
        "fanout_one_thread",
        include_str!("flows/fanout_one_thread.toml"),
    ),
    ("diamond", include_str!("flows/diamond.toml")),
    ("recovery", include_str!("flows/recovery.toml")),
    ("overhead", include_str!("flows/overhead.toml")),
];

/// A built-in flow, parsed.
pub fn builtin_flow(name: &str) -> Option<FlowDef> {
    let (_, text) = BUILTIN_FLOWS.iter().find(|(n, _)| *n == name)?;
    Some(FlowDef::from_toml_str(text).expect("built-in flows parse"))
}

/// A built-in flow's TOML as tables of a plan (`[flows.NAME]`, `[[flows.NAME.steps]]`),
/// with its comments: what `barrage flow show NAME` prints, to paste into a plan.
pub fn builtin_flow_plan_toml(name: &str) -> Option<String> {
    let (_, text) = BUILTIN_FLOWS.iter().find(|(n, _)| *n == name)?;
    let mut out = format!(
        "# The built-in flow {name:?}. Paste into a plan and change it; the plan's\n\
         # [flows.{name}] replaces the built-in one (or rename it and set flow.name).\n"
    );
    let mut opened = false;
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("[[") {
            out.push_str(&format!("[[flows.{name}.{rest}\n"));
            opened = true;
            continue;
        }
        if let Some(rest) = t.strip_prefix('[').filter(|_| !t.starts_with("[ ")) {
            if !opened && !rest.starts_with('{') {
                out.push_str(&format!("[flows.{name}.{rest}\n"));
                opened = true;
                continue;
            }
        }
        if !opened && !t.is_empty() && !t.starts_with('#') {
            out.push_str(&format!("[flows.{name}]\n"));
            opened = true;
        }
        out.push_str(line);
        out.push('\n');
    }
    Some(out)
}

fn is_ident(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

impl FlowDef {
    /// Parses one flow's TOML (the content of a `[flows.NAME]` table, as printed by
    /// `barrage flow show`).
    pub fn from_toml_str(text: &str) -> Result<FlowDef, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim().to_owned())
    }

    /// The TOML form.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a flow always serializes")
    }

    /// How many times one iteration sends `{history}` (the plan's `flow.history_bytes`):
    /// each step whose body holds it, times its group's turns or copies.
    pub fn history_sends(&self) -> u64 {
        self.steps
            .iter()
            .filter(|s| !s.cleanup && s.body.as_deref().is_some_and(|b| b.contains("{history}")))
            .map(|s| {
                let group = s.group.as_ref().and_then(|g| self.groups.get(g));
                u64::from(group.map_or(1, |g| g.repeat.or(g.fan_out).unwrap_or(1)))
            })
            .sum()
    }

    /// Problems, each naming `at` (e.g. `flows.chat`) + the step and the field.
    pub fn validate(&self, at: &str, errors: &mut Vec<String>) {
        let main: Vec<&StepSpec> = self.steps.iter().filter(|s| !s.cleanup).collect();
        if main.is_empty() {
            errors.push(format!(
                "{at}.steps: give at least one step that is not cleanup"
            ));
        }
        let mut vars: Vec<&str> = RESERVED_VARS.to_vec();
        for name in self.vars.keys() {
            if !is_ident(name) || RESERVED_VARS.contains(&name.as_str()) {
                errors.push(format!(
                    "{at}.vars.{name}: must be a lowercase identifier (a-z, 0-9, _) and not one of {}",
                    RESERVED_VARS.join(", ")
                ));
            }
            vars.push(name);
        }
        for (name, g) in &self.groups {
            let field = format!("{at}.groups.{name}");
            if !is_ident(name) || vars.contains(&name.as_str()) {
                errors.push(format!(
                    "{field}: the name is its index variable: a lowercase identifier that is not already a variable"
                ));
            }
            match (g.repeat, g.fan_out) {
                (Some(n), None) | (None, Some(n)) if (1..=MAX_GROUP_COUNT).contains(&n) => {}
                (Some(_), Some(_)) => errors.push(format!(
                    "{field}: give repeat or fan_out, not both (nest two groups instead)"
                )),
                _ => errors.push(format!(
                    "{field}: give repeat = N or fan_out = N, with N in 1..={MAX_GROUP_COUNT}"
                )),
            }
            let members: Vec<usize> = (0..self.steps.len())
                .filter(|&i| self.steps[i].group.as_deref() == Some(name))
                .collect();
            if members.iter().all(|&i| self.steps[i].cleanup) {
                errors.push(format!(
                    "{field}: no main (not cleanup) step has group = {name:?}"
                ));
            } else if members.last().unwrap() - members[0] + 1 != members.len() {
                errors.push(format!(
                    "{field}: its steps must be consecutive in the step list"
                ));
            }
        }
        let mut seen: Vec<&str> = Vec::new();
        for (i, s) in self.steps.iter().enumerate() {
            let field = format!("{at}.steps[{i}] ({})", s.name);
            if !is_ident(&s.name) {
                errors.push(format!(
                    "{at}.steps[{i}].name: {:?} must be a lowercase identifier (a-z, 0-9, _), e.g. \"create_thread\"",
                    s.name
                ));
            }
            if seen.contains(&s.name.as_str()) {
                errors.push(format!(
                    "{field}.name: another step has this name; names must be unique"
                ));
            }
            if !STEP_METHODS.contains(&s.method.as_str()) {
                errors.push(format!(
                    "{field}.method: {:?} is not one of {}",
                    s.method,
                    STEP_METHODS.join(", ")
                ));
            }
            if !s.path.starts_with('/')
                || s.path.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                errors.push(format!(
                    "{field}.path: {:?} must start with / and hold no spaces or control characters, e.g. \"/threads/{{thread_id}}\"",
                    s.path
                ));
            }
            for (j, c) in s.checks.iter().enumerate() {
                c.validate(&format!("{field}.checks[{j}]"), errors);
                let sse_only = matches!(
                    c,
                    Check::SseEvent { .. } | Check::NoSseEvent { .. } | Check::MinEvents { .. }
                );
                if sse_only && s.kind != StepKind::Sse {
                    errors.push(format!(
                        "{field}.checks[{j}]: {} reads a stream; set kind = \"sse\"",
                        c.describe()
                    ));
                }
                if c.needs_json() && s.kind != StepKind::Json {
                    errors.push(format!(
                        "{field}.checks[{j}]: {} reads a JSON answer; set kind = \"json\"",
                        c.describe()
                    ));
                }
            }
            for (var, pointer) in &s.capture {
                if !is_ident(var) || RESERVED_VARS.contains(&var.as_str()) {
                    errors.push(format!(
                        "{field}.capture.{var}: must be a lowercase identifier and not one of {}",
                        RESERVED_VARS.join(", ")
                    ));
                }
                if !pointer.starts_with('/') {
                    errors.push(format!(
                        "{field}.capture.{var}: {pointer:?} is not a JSON pointer; start it with /, e.g. \"/thread_id\""
                    ));
                }
                if s.kind != StepKind::Json {
                    errors.push(format!(
                        "{field}.capture.{var}: captures read a JSON answer; set kind = \"json\""
                    ));
                }
            }
            if let Some(m) = &s.mark {
                if !is_ident(m) || RESERVED_VARS.contains(&m.as_str()) {
                    errors.push(format!(
                        "{field}.mark: {m:?} must be a lowercase identifier and not one of {}",
                        RESERVED_VARS.join(", ")
                    ));
                }
            }
            if let Some(m) = &s.metric {
                if !is_ident(m) {
                    errors.push(format!(
                        "{field}.metric: {m:?} must be a lowercase identifier, e.g. \"chain_turn_duration\""
                    ));
                }
            }
            for k in s.tags.keys() {
                if !is_ident(k) || k == "operation" {
                    errors.push(format!(
                        "{field}.tags.{k}: a tag name is a lowercase identifier other than `operation` (set by the step's name)"
                    ));
                }
            }
            if let Some(deps) = &s.depends_on {
                for d in deps {
                    match self.steps.iter().position(|o| &o.name == d) {
                        Some(j) if j < i && !self.steps[j].cleanup => {}
                        Some(_) => errors.push(format!(
                            "{field}.depends_on: {d:?} must be a main (not cleanup) step listed before this one"
                        )),
                        None => errors.push(format!(
                            "{field}.depends_on: no step is named {d:?}"
                        )),
                    }
                }
            }
            if let Some(g) = &s.group {
                if !self.groups.contains_key(g) {
                    errors.push(format!(
                        "{field}.group: {g:?} is not in {at}.groups; add {at}.groups.{g} = {{ repeat = N }} or {{ fan_out = N }}"
                    ));
                }
            }
            if s.cleanup {
                if s.depends_on.is_some() || s.retry.is_some() {
                    errors.push(format!(
                        "{field}: a cleanup step takes no depends_on or retry"
                    ));
                }
                let main_after = s.group.is_some()
                    && self.steps[i + 1..]
                        .iter()
                        .any(|o| o.group == s.group && !o.cleanup);
                if main_after {
                    errors.push(format!(
                        "{field}.group: a group's cleanup steps come after its main steps; move it to the end of the group"
                    ));
                }
                if s.requires.is_empty() {
                    errors.push(format!(
                        "{field}.requires: name the variables of the resource it deletes, e.g. [\"thread_id\"]"
                    ));
                }
            } else if !s.requires.is_empty() {
                errors.push(format!(
                    "{field}.requires: only cleanup steps take requires"
                ));
            }
            if let Some(r) = &s.retry {
                if !(1..=10).contains(&r.attempts) {
                    errors.push(format!(
                        "{field}.retry.attempts: {} must be in 1..=10 (the first attempt included)",
                        r.attempts
                    ));
                }
                if !(0.0..=1.0).contains(&r.jitter) {
                    errors.push(format!(
                        "{field}.retry.jitter: {} must be in 0..=1 (the fraction of each wait drawn at random)",
                        r.jitter
                    ));
                }
                if r.backoff > r.max_backoff {
                    errors.push(format!(
                        "{field}.retry.backoff: above max_backoff; raise max_backoff or lower backoff"
                    ));
                }
                if r.on_status.iter().any(|s| !(100..=599).contains(s)) {
                    errors.push(format!(
                        "{field}.retry.on_status: {:?} must list HTTP statuses (100..=599)",
                        r.on_status
                    ));
                }
            }
            if let Some(u) = &s.llm_calls {
                let base =
                    u.starts_with("http://") || u.starts_with("https://") || u.starts_with('{');
                if !base || !u.contains("/stats/calls?") || !u.contains("key=") {
                    errors.push(format!(
                        "{field}.llm_calls: {u:?} must be the mock LLM's call log with this run's key, e.g. \"{{llm_url}}/stats/calls?key={{vu}}.{{iter}}\""
                    ));
                }
                if s.cleanup {
                    errors.push(format!(
                        "{field}.llm_calls: a cleanup step calls no LLM; put llm_calls on the run step"
                    ));
                }
            }
            if s.think_time > Duration::from_secs(3600) {
                errors.push(format!("{field}.think_time: at most 1h"));
            }
            seen.push(&s.name);
        }
    }
}

#[cfg(test)]
mod tests;

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
use crate::duration::serde_str;
use crate::executor::{ExecutorConfig, Stage};
use crate::metrics::builtin;
use crate::threshold::{MetricRef, Threshold, ThresholdSpec};
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

/// What the command line may change in a plan ([`Plan::apply`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanOverrides {
    /// `target.url` (a trailing `/` is dropped).
    pub target: Option<String>,
    /// `target.runtime`, `target.version`, `target.llm`, `target.tier`.
    pub runtime: Option<String>,
    pub version: Option<String>,
    pub llm: Option<String>,
    pub tier: Option<String>,
    /// Mint HS256 JWTs from the secret in this env variable (a plan already on `jwt` keeps
    /// its claims).
    pub jwt_secret_env: Option<String>,
    /// A static bearer token from this env variable.
    pub auth_token_env: Option<String>,
}

/// Built-in profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// The seed's ramp: 10 s 0→1, 20 s 1→3, 30 s 3→5, 20 s 5→3, 10 s 3→1.
    Default,
    /// 1 VU, 1 iteration.
    Smoke,
    /// The tier sweep's ramp 1→5→10 over 90 s.
    Tier,
}

impl Profile {
    pub const NAMES: &'static str = "default, smoke, tier";

    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "default" => Ok(Profile::Default),
            "smoke" => Ok(Profile::Smoke),
            "tier" => Ok(Profile::Tier),
            other => Err(format!(
                "unknown profile {other:?}; use one of {}",
                Profile::NAMES
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Profile::Default => "default",
            Profile::Smoke => "smoke",
            Profile::Tier => "tier",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// Base URL of the Agent Protocol server.
    #[serde(default = "default_url")]
    pub url: String,
    /// Label for results and metadata (`ts`, `python`, `reference`).
    #[serde(default = "default_runtime")]
    pub runtime: String,
    #[serde(default = "default_version")]
    pub version: String,
    /// Which LLM sits behind the target (`mock` for the mock LLM).
    #[serde(default = "default_llm")]
    pub llm: String,
    /// Resource tier label (`xs`, `s`, `m`, `l`), when the run is part of a sweep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
}

fn default_url() -> String {
    "http://127.0.0.1:9000".into()
}
fn default_runtime() -> String {
    "reference".into()
}
fn default_version() -> String {
    "0.1.0".into()
}
fn default_llm() -> String {
    "mock".into()
}

impl Default for TargetConfig {
    fn default() -> Self {
        TargetConfig {
            url: default_url(),
            runtime: default_runtime(),
            version: default_version(),
            llm: default_llm(),
            tier: None,
        }
    }
}

/// Stream modes the Agent Protocol accepts.
pub const STREAM_MODES: &[&str] = &[
    "values",
    "updates",
    "messages",
    "messages-tuple",
    "events",
    "debug",
    "custom",
    "tasks",
    "checkpoints",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowConfig {
    #[serde(default = "default_graph")]
    pub graph_id: String,
    /// Passed in the assistant's `config.configurable.model_name`.
    #[serde(default = "default_model")]
    pub model_name: String,
    #[serde(default = "default_stream_mode")]
    pub stream_mode: Vec<String>,
    /// Pause between a VU's iterations.
    #[serde(default, with = "serde_str")]
    pub think_time: Duration,
    /// Timeout of one HTTP request (a stream's whole body included).
    #[serde(default = "default_timeout", with = "serde_str")]
    pub request_timeout: Duration,
    /// Text of the user message sent to runs.
    #[serde(default = "default_message")]
    pub message: String,
    /// Sent as the assistant's `config.configurable.barrage_tag`, `{vu}` and `{iter}`
    /// replaced: servers that key assistants by graph + config answer 409 to a second
    /// assistant with the same config, so each VU's (and iteration's) must differ.
    /// LangGraph passes `configurable` through untouched. `""` sends no tag.
    #[serde(default = "default_assistant_tag")]
    pub assistant_tag: String,
    /// Instead of the agent flow, this one request per iteration (what `oha`/`wrk` do on
    /// one URL, or a k6 script with one `http.get`): `request = { path = "/ok" }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestFlow>,
}

/// A flow of one request ([`FlowConfig::request`]), checked for a 2xx status, recorded
/// with `operation=request` (and the `request` Trend). `{vu}` and `{iter}` in the path
/// or body are replaced per iteration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestFlow {
    #[serde(default = "default_method")]
    pub method: String,
    /// Path and query after the target URL, starting with `/`.
    pub path: String,
    /// JSON body, sent with `content-type: application/json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

fn default_method() -> String {
    "GET".into()
}

/// Methods a [`RequestFlow`] may use.
pub const REQUEST_METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

impl RequestFlow {
    fn validate(&self, errors: &mut Vec<String>) {
        if !REQUEST_METHODS.contains(&self.method.as_str()) {
            errors.push(format!(
                "flow.request.method: {:?} is not one of {}",
                self.method,
                REQUEST_METHODS.join(", ")
            ));
        }
        if !self.path.starts_with('/') || self.path.chars().any(char::is_whitespace) {
            errors.push(format!(
                "flow.request.path: {:?} must start with / and hold no spaces, e.g. \"/ok\"",
                self.path
            ));
        }
        if let Some(body) = &self.body {
            let sample = body.replace("{vu}", "1").replace("{iter}", "0");
            if let Err(e) = serde_json::from_str::<serde_json::Value>(&sample) {
                errors.push(format!(
                    "flow.request.body: not JSON ({e}); give a JSON document, e.g. '{{\"n\":{{iter}}}}'"
                ));
            }
        }
    }
}

fn default_graph() -> String {
    "agent".into()
}
fn default_model() -> String {
    "openai:mock-gpt-4o".into()
}
fn default_stream_mode() -> Vec<String> {
    vec!["values".into()]
}
fn default_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_message() -> String {
    "Hello from barrage".into()
}
fn default_assistant_tag() -> String {
    "vu-{vu}-iter-{iter}".into()
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            graph_id: default_graph(),
            model_name: default_model(),
            stream_mode: default_stream_mode(),
            think_time: Duration::ZERO,
            request_timeout: default_timeout(),
            message: default_message(),
            assistant_tag: default_assistant_tag(),
            request: None,
        }
    }
}

/// How VUs authenticate to the target. Secrets never live in the plan: the controller reads
/// them (env or file) and hands them to workers in the assignment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum AuthConfig {
    /// No `Authorization` header.
    #[default]
    None,
    /// A fixed bearer token (`AUTH_TOKEN`).
    Token {
        #[serde(default = "default_token_env")]
        token_env: String,
    },
    /// HS256 JWTs minted from a secret, like `create-mock-jwt.sh`.
    Jwt {
        #[serde(default = "default_secret_env")]
        secret_env: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret_file: Option<String>,
        #[serde(default = "default_sub")]
        sub: String,
        /// A distinct `sub` per VU: `{sub}-vu-{n}`.
        #[serde(default)]
        per_vu_sub: bool,
        #[serde(default = "default_ttl", with = "serde_str")]
        ttl: Duration,
    },
    /// A real token from a Supabase GoTrue password grant, refreshed before it expires.
    Gotrue {
        url: String,
        #[serde(default = "default_anon_env")]
        anon_key_env: String,
        email: String,
        #[serde(default = "default_password_env")]
        password_env: String,
    },
}

fn default_token_env() -> String {
    "AUTH_TOKEN".into()
}
fn default_secret_env() -> String {
    "SUPABASE_JWT_SECRET".into()
}
fn default_sub() -> String {
    "benchmark-user".into()
}
fn default_ttl() -> Duration {
    Duration::from_secs(3600)
}
fn default_anon_env() -> String {
    "SUPABASE_ANON_KEY".into()
}
fn default_password_env() -> String {
    "SUPABASE_PASSWORD".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    #[serde(default = "default_name")]
    pub name: String,
    #[serde(default)]
    pub target: TargetConfig,
    pub scenario: ExecutorConfig,
    #[serde(default)]
    pub flow: FlowConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    /// Metric (with optional tag filter) → threshold expressions.
    #[serde(default)]
    pub thresholds: BTreeMap<String, Vec<ThresholdSpec>>,
    /// Snapshot interval.
    #[serde(default = "default_interval", with = "serde_str")]
    pub interval: Duration,
    /// After the scenario's end, how long running iterations may take to finish.
    #[serde(default = "default_graceful_stop", with = "serde_str")]
    pub graceful_stop: Duration,
    /// Tags added to every sample.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

fn default_name() -> String {
    "agent-flow".into()
}
fn default_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_graceful_stop() -> Duration {
    Duration::from_secs(30)
}

/// The seed's threshold table.
pub fn default_thresholds() -> BTreeMap<String, Vec<ThresholdSpec>> {
    let t = |s: &str| vec![ThresholdSpec::Expr(s.into())];
    BTreeMap::from([
        (builtin::HTTP_REQ_FAILED.to_string(), t("rate<0.05")),
        ("create_assistant".to_string(), t("p(95)<500")),
        ("create_thread".to_string(), t("p(95)<500")),
        ("run_wait".to_string(), t("p(95)<5000")),
        (builtin::AGENT_FLOW_DURATION.to_string(), t("p(95)<8000")),
        (builtin::AGENT_FLOW_SUCCESS_RATE.to_string(), t("rate>0.95")),
    ])
}

impl Plan {
    /// A built-in profile with the seed's thresholds and default target, flow and auth.
    pub fn profile(p: Profile) -> Plan {
        let scenario = match p {
            Profile::Default => ExecutorConfig::RampingVus {
                start_vus: 0,
                stages: vec![
                    Stage::new(10, 1),
                    Stage::new(20, 3),
                    Stage::new(30, 5),
                    Stage::new(20, 3),
                    Stage::new(10, 1),
                ],
                graceful_ramp_down: Duration::from_secs(30),
            },
            Profile::Smoke => ExecutorConfig::PerVuIterations {
                vus: 1,
                iterations: 1,
                max_duration: Duration::from_secs(600),
            },
            Profile::Tier => ExecutorConfig::RampingVus {
                start_vus: 1,
                stages: vec![Stage::new(30, 5), Stage::new(30, 10), Stage::new(30, 10)],
                graceful_ramp_down: Duration::from_secs(30),
            },
        };
        Plan {
            name: p.name().to_string(),
            target: TargetConfig::default(),
            scenario,
            flow: FlowConfig::default(),
            auth: AuthConfig::None,
            thresholds: default_thresholds(),
            interval: default_interval(),
            graceful_stop: default_graceful_stop(),
            tags: BTreeMap::new(),
        }
    }

    /// Parses a TOML plan and validates it.
    pub fn from_toml_str(text: &str) -> Result<Plan, PlanError> {
        let plan: Plan = toml::from_str(text)
            .map_err(|e| PlanError(vec![format!("plan file: {}", e.to_string().trim())]))?;
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

    /// Applies the command line's overrides (the flags `barrage run`/`controller` and
    /// `barrage-worker --standalone` share). Call [`Plan::validate`] afterwards.
    pub fn apply(&mut self, o: &PlanOverrides) {
        if let Some(url) = &o.target {
            self.target.url = url.trim_end_matches('/').to_string();
        }
        for (field, value) in [
            (&mut self.target.runtime, &o.runtime),
            (&mut self.target.version, &o.version),
            (&mut self.target.llm, &o.llm),
        ] {
            if let Some(v) = value {
                field.clone_from(v);
            }
        }
        if let Some(v) = &o.tier {
            self.target.tier = Some(v.clone());
        }
        if let Some(var) = &o.jwt_secret_env {
            match &mut self.auth {
                // a plan that already mints JWTs keeps its claims; only the secret moves
                AuthConfig::Jwt {
                    secret_env,
                    secret_file,
                    ..
                } => {
                    secret_env.clone_from(var);
                    *secret_file = None;
                }
                other => {
                    *other = AuthConfig::Jwt {
                        secret_env: var.clone(),
                        secret_file: None,
                        sub: default_sub(),
                        per_vu_sub: false,
                        ttl: default_ttl(),
                    }
                }
            }
        }
        if let Some(var) = &o.auth_token_env {
            self.auth = AuthConfig::Token {
                token_env: var.clone(),
            };
        }
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

    /// Every problem at once.
    pub fn validate(&self) -> Result<(), PlanError> {
        let mut errors = Vec::new();
        if self.name.trim().is_empty() {
            errors.push("name: must not be empty".into());
        }
        let url = self.target.url.as_str();
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"));
        match rest {
            Some(r) if !r.is_empty() && !r.starts_with('/') && !r.contains(char::is_whitespace) => {
            }
            _ => errors.push(format!(
                "target.url: {url:?} must be an http(s) URL, e.g. http://127.0.0.1:9001"
            )),
        }
        for (field, value) in [
            ("target.runtime", &self.target.runtime),
            ("target.version", &self.target.version),
            ("target.llm", &self.target.llm),
        ] {
            if value.is_empty()
                || !value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            {
                errors.push(format!("{field}: {value:?} must be non-empty letters, digits, '.', '_' or '-' (it names result files)"));
            }
        }
        self.scenario.validate("scenario", &mut errors);
        if self.flow.graph_id.trim().is_empty() {
            errors.push("flow.graph_id: must not be empty (e.g. \"agent\")".into());
        }
        if self.flow.model_name.trim().is_empty() {
            errors.push("flow.model_name: must not be empty (e.g. \"openai:mock-gpt-4o\")".into());
        }
        if self.flow.stream_mode.is_empty() {
            errors.push("flow.stream_mode: give at least one mode, e.g. [\"values\"]".into());
        }
        for m in &self.flow.stream_mode {
            if !STREAM_MODES.contains(&m.as_str()) {
                errors.push(format!(
                    "flow.stream_mode: {m:?} is not a stream mode; use {}",
                    STREAM_MODES.join(", ")
                ));
            }
        }
        let tag = &self.flow.assistant_tag;
        let literal = tag.replace("{vu}", "").replace("{iter}", "");
        if !tag.is_empty()
            && (!tag.contains("{vu}")
                || !tag.contains("{iter}")
                || tag.len() > 128
                || !literal
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c)))
        {
            errors.push(format!(
                "flow.assistant_tag: {tag:?} must hold {{vu}} and {{iter}} (so no two assistants share a config) and otherwise only letters, digits, '.', '_', ':' or '-', at most 128 bytes, e.g. \"vu-{{vu}}-iter-{{iter}}\"; \"\" sends no tag"
            ));
        }
        if let Some(r) = &self.flow.request {
            r.validate(&mut errors);
        }
        if self.flow.request_timeout.is_zero() {
            errors.push("flow.request_timeout: must be > 0, e.g. \"60s\"".into());
        }
        if self.interval < Duration::from_millis(100) || self.interval > Duration::from_secs(60) {
            errors.push(format!(
                "interval: {:?} must be between 100ms and 60s",
                self.interval
            ));
        }
        match &self.auth {
            AuthConfig::Jwt {
                secret_env,
                secret_file,
                sub,
                ..
            } => {
                if secret_env.is_empty() && secret_file.is_none() {
                    errors.push(
                        "auth.secret_env: name an env variable or set auth.secret_file".into(),
                    );
                }
                if sub.is_empty() {
                    errors.push("auth.sub: must not be empty".into());
                }
            }
            AuthConfig::Gotrue { url, email, .. } => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    errors.push(format!("auth.url: {url:?} must be the GoTrue http(s) URL, e.g. http://127.0.0.1:54321"));
                }
                if !email.contains('@') {
                    errors.push(format!("auth.email: {email:?} is not an email address"));
                }
            }
            AuthConfig::Token { token_env } if token_env.is_empty() => {
                errors.push("auth.token_env: name the env variable holding the token".into())
            }
            _ => {}
        }
        for (key, specs) in &self.thresholds {
            match self.resolve_threshold(key, specs) {
                Ok(_) => {}
                Err(mut e) => errors.append(&mut e),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(PlanError(errors))
        }
    }

    fn resolve_threshold(
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

    /// Scheduled duration plus graceful stop: no worker may run past this.
    pub fn max_duration(&self) -> Duration {
        self.scenario.duration() + self.graceful_stop
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_validate() {
        for p in [Profile::Default, Profile::Smoke, Profile::Tier] {
            Plan::profile(p).validate().unwrap();
        }
        let d = Plan::profile(Profile::Default);
        assert_eq!(d.scenario.duration(), Duration::from_secs(90));
        assert_eq!(d.scenario.max_vus(), 5);
        assert_eq!(Plan::profile(Profile::Tier).scenario.max_vus(), 10);
        assert_eq!(d.parsed_thresholds().unwrap().len(), 6);
    }

    #[test]
    fn toml_plan_round_trips_through_json() {
        let text = r#"
name = "tier-m"
[target]
url = "http://127.0.0.1:9001"
runtime = "ts"
[scenario]
executor = "constant-vus"
vus = 3
duration = "20s"
[thresholds]
"http_req_duration{operation:run_wait}" = [{ threshold = "p(95)<5000", abortOnFail = true }]
"#;
        let plan = Plan::from_toml_str(text).unwrap();
        assert_eq!(plan.target.runtime, "ts");
        let back = Plan::from_json_str(&plan.to_json()).unwrap();
        assert_eq!(back, plan);
        assert_eq!(back.hash(), plan.hash());
        let th = plan.parsed_thresholds().unwrap();
        assert!(th[0].1[0].abort_on_fail);
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let text = r#"
name = ""
[target]
url = "ftp://x"
[scenario]
executor = "constant-vus"
vus = 0
duration = "0s"
[flow]
stream_mode = ["values", "bogus"]
[thresholds]
nope = ["p(95)<1"]
http_req_failed = ["p(95)<1"]
run_wait = ["p95<1"]
"#;
        let err = Plan::from_toml_str(text).unwrap_err();
        let all = err.to_string();
        for needle in [
            "name:",
            "target.url",
            "scenario.vus",
            "scenario.duration",
            "flow.stream_mode",
            "unknown metric \"nope\"",
            "thresholds.http_req_failed",
            "thresholds.run_wait",
        ] {
            assert!(all.contains(needle), "{needle} missing in:\n{all}");
        }
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = Plan::from_toml_str(
            "[scenario]\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\nvuz = 3\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("vuz"), "{err}");
        let err = Plan::from_toml_str("[scenario]\nexecutor = \"warp-speed\"\n").unwrap_err();
        assert!(err.to_string().contains("warp-speed"), "{err}");
    }

    #[test]
    fn assistant_tag_defaults_per_vu_and_iteration_and_is_checked() {
        let base = "[scenario]\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\n[flow]\n";
        let plan = Plan::from_toml_str(base).unwrap();
        assert_eq!(plan.flow.assistant_tag, "vu-{vu}-iter-{iter}");
        for ok in ["", "run7.vu-{vu}:{iter}"] {
            let plan = Plan::from_toml_str(&format!("{base}assistant_tag = {ok:?}\n")).unwrap();
            assert_eq!(plan.flow.assistant_tag, ok);
        }
        for bad in [
            "vu-{vu}",
            "iter-{iter}",
            "fixed",
            "vu {vu} {iter}",
            "{vu}\\\"{iter}",
        ] {
            let err = Plan::from_toml_str(&format!("{base}assistant_tag = '{bad}'\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("flow.assistant_tag"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_one_request_flow_is_read_and_checked() {
        let base = "[scenario]\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\n[flow]\n";
        let plan = Plan::from_toml_str(&format!(
            "{base}request = {{ path = \"/threads/{{vu}}/state\" }}\n"
        ))
        .unwrap();
        plan.validate().unwrap();
        let r = plan.flow.request.as_ref().unwrap();
        assert_eq!((r.method.as_str(), r.body.as_deref()), ("GET", None));
        let plan = Plan::from_toml_str(&format!(
            "{base}request = {{ method = \"POST\", path = \"/store/items/search\", body = '{{\"limit\":{{iter}}}}' }}\n"
        ))
        .unwrap();
        plan.validate().unwrap();
        let err = Plan::from_toml_str(&format!(
            "{base}request = {{ method = \"get\", path = \"ok\", body = \"{{nope\" }}\n"
        ))
        .unwrap_err()
        .to_string();
        for field in [
            "flow.request.method",
            "flow.request.path",
            "flow.request.body",
        ] {
            assert!(err.contains(field), "{field} in {err}");
        }
        let err =
            Plan::from_toml_str(&format!("{base}request = {{ url = \"/ok\" }}\n")).unwrap_err();
        assert!(err.to_string().contains("url"), "{err}");
    }

    #[test]
    fn overrides_apply_and_a_jwt_plan_keeps_its_claims() {
        let mut plan = Plan::profile(Profile::Smoke);
        plan.auth = AuthConfig::Jwt {
            secret_env: "OLD".into(),
            secret_file: Some("/run/secret".into()),
            sub: "alice".into(),
            per_vu_sub: true,
            ttl: Duration::from_secs(60),
        };
        plan.apply(&PlanOverrides {
            target: Some("http://127.0.0.1:9001/".into()),
            llm: Some("gpt".into()),
            jwt_secret_env: Some("NEW".into()),
            ..PlanOverrides::default()
        });
        assert_eq!(plan.target.url, "http://127.0.0.1:9001");
        assert_eq!(plan.target.llm, "gpt");
        let AuthConfig::Jwt {
            secret_env,
            secret_file,
            sub,
            per_vu_sub,
            ..
        } = &plan.auth
        else {
            panic!("{:?}", plan.auth)
        };
        assert_eq!(
            (secret_env.as_str(), secret_file, sub.as_str(), *per_vu_sub),
            ("NEW", &None, "alice", true)
        );
        let err = Plan::from_file(std::path::Path::new("/nonexistent/p.toml")).unwrap_err();
        assert!(
            err.to_string().contains("--plan /nonexistent/p.toml"),
            "{err}"
        );
    }
}

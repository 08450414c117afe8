//! [`Plan::validate`]: every problem at once, each naming the field, the value and the
//! accepted form.
use super::{
    AuthConfig, Plan, PlanError, HISTORY_BYTES_RANGE, RESPONSE_BODY_LIMIT_RANGE, STREAM_MODES,
};
use crate::label::check_path_label;
use std::time::Duration;

impl Plan {
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
        let labels = [
            ("target.runtime", Some(&self.target.runtime)),
            ("target.version", Some(&self.target.version)),
            ("target.llm", Some(&self.target.llm)),
            ("target.tier", self.target.tier.as_ref()),
        ];
        for (field, value) in labels {
            if let Some(value) = value {
                if let Err(e) = check_path_label(value) {
                    errors.push(format!("{field}: {value:?} {e}"));
                }
            }
        }
        self.target.validate_source_addrs(&mut errors);
        if self.scenarios.is_empty() {
            self.scenario.validate("scenario", &mut errors);
        }
        self.validate_scenarios(&mut errors);
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
        if let Some(r) = &self.flow.request {
            r.validate(&mut errors);
        }
        for (name, f) in &self.flows {
            f.validate(&format!("flows.{name}"), &mut errors);
        }
        if self.flow.request.is_none() && self.flow_def().is_none() {
            let mut known: Vec<&str> = self.flows.keys().map(String::as_str).collect();
            known.extend(super::BUILTIN_FLOWS.iter().map(|(n, _)| *n));
            errors.push(format!(
                "flow.name: {:?} is neither a [flows.NAME] of the plan nor a built-in flow; use one of {}",
                self.flow.name,
                known.join(", ")
            ));
        }
        if self.flow.request_timeout.is_zero() {
            errors.push("flow.request_timeout: must be > 0, e.g. \"60s\"".into());
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
        if !RESPONSE_BODY_LIMIT_RANGE.contains(&self.flow.response_body_limit) {
            errors.push(format!(
                "flow.response_body_limit: {} bytes is outside {}..={}; use e.g. 1048576 (1 MiB)",
                self.flow.response_body_limit,
                RESPONSE_BODY_LIMIT_RANGE.start(),
                RESPONSE_BODY_LIMIT_RANGE.end()
            ));
        }
        self.validate_history(&mut errors);
        self.validity.validate(&mut errors);
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
        self.validate_slo(&mut errors);
        for (key, specs) in &self.thresholds {
            match self.resolve_threshold(key, specs) {
                Ok(_) => self.check_threshold_scenario(key, &mut errors),
                Err(mut e) => errors.append(&mut e),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(PlanError(errors))
        }
    }
}

impl Plan {
    /// `flow.history_bytes`: in range, sent by the flow(s) the VUs run, and within what
    /// the worker keeps of an answer once the runtime echoes it (a thread's state, a
    /// `runs/wait` answer and a `values` event hold every message sent to the thread).
    fn validate_history(&self, errors: &mut Vec<String>) {
        let bytes = self.flow.history_bytes;
        if bytes == 0 {
            return;
        }
        if !HISTORY_BYTES_RANGE.contains(&bytes) {
            errors.push(format!(
                "flow.history_bytes: {bytes} is outside {}..={}; use e.g. 102400 (100 KB of messages), or 0 for none",
                HISTORY_BYTES_RANGE.start(),
                HISTORY_BYTES_RANGE.end()
            ));
            return;
        }
        for run in self.scenario_runs() {
            let Some(def) = run
                .plan
                .flow_def()
                .filter(|_| run.plan.flow.request.is_none())
            else {
                if run.plan.flow.request.is_some() {
                    errors.push(
                        "flow.history_bytes: a one-request flow (flow.request) sends no {history}; give the history in its body or drop history_bytes".into(),
                    );
                }
                continue;
            };
            let sends = def.history_sends();
            let name = &run.plan.flow.name;
            if sends == 0 {
                errors.push(format!(
                    "flow.history_bytes: flow {name:?} sends no {{history}}; put it first in a run's messages array, e.g. \"messages\":[{{history}}{{\"role\":\"user\",\"content\":\"{{message}}\"}}]"
                ));
                continue;
            }
            let need = sends.saturating_mul(bytes) + HISTORY_ANSWER_MARGIN;
            if self.flow.response_body_limit < need {
                errors.push(format!(
                    "flow.response_body_limit: {} bytes is too small for flow.history_bytes = {bytes}: flow {name:?} sends the history {sends} times per iteration, and an answer echoing the thread (its state, a runs/wait answer, a values event) can hold it that many times; raise response_body_limit to at least {need}",
                    self.flow.response_body_limit
                ));
            }
        }
    }
}

/// Room above the history in an answer: the AI messages and the state's other fields.
const HISTORY_ANSWER_MARGIN: u64 = 64 << 10;

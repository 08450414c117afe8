//! `flow.request`: the one-request flow and its checks.
use serde::{Deserialize, Serialize};

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
    pub(super) fn validate(&self, errors: &mut Vec<String>) {
        if !REQUEST_METHODS.contains(&self.method.as_str()) {
            errors.push(format!(
                "flow.request.method: {:?} is not one of {}",
                self.method,
                REQUEST_METHODS.join(", ")
            ));
        }
        // a control character (NUL, CR, LF) would cut or split the request line on the wire
        if !self.path.starts_with('/')
            || self
                .path
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            errors.push(format!(
                "flow.request.path: {:?} must start with / and hold no spaces or control characters, e.g. \"/ok\"",
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

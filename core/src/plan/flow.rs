//! `[flow]`: what one iteration does against the target (the agent flow or one request).
use super::request::RequestFlow;
use crate::duration::serde_str;
use serde::{Deserialize, Serialize};
use std::time::Duration;

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
    /// The flow the VUs run: a `[flows.NAME]` of the plan, else a built-in one
    /// ([`super::BUILTIN_FLOWS`]: `barrage flow show NAME` prints it).
    #[serde(default = "default_flow_name")]
    pub name: String,
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
    /// Bytes of each response body a worker keeps for checks and captures; the rest is
    /// counted in `data_received` and dropped as it streams. An answer the checks must
    /// read that is longer fails its step, and so does an SSE line or event longer than
    /// this. A worker's memory is bounded by VUs × this, whatever the target sends.
    #[serde(default = "default_response_body_limit")]
    pub response_body_limit: u64,
    /// Sent as the assistant's `config.configurable.barrage_tag`, `{vu}` and `{iter}`
    /// replaced: servers that key assistants by graph + config answer 409 to a second
    /// assistant with the same config, so each VU's (and iteration's) must differ.
    /// LangGraph passes `configurable` through untouched. `""` sends no tag.
    #[serde(default = "default_assistant_tag")]
    pub assistant_tag: String,
    /// Bytes of conversation history each run's input carries before the user message:
    /// `{history}` in a flow's body (the built-in `agent` flow's three runs have it)
    /// becomes this many bytes of JSON messages (a system prompt, then user and assistant
    /// turns), as an agent's prompt carries tens of thousands of tokens. 0: none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub history_bytes: u64,
    /// Instead of the agent flow, this one request per iteration (what `oha`/`wrk` do on
    /// one URL, or a k6 script with one `http.get`): `request = { path = "/ok" }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestFlow>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
/// The accepted range of a non-zero `flow.history_bytes`: room for one message, at most
/// 16 MiB (a prompt far beyond any model's context).
pub const HISTORY_BYTES_RANGE: std::ops::RangeInclusive<u64> = 256..=(16 << 20);
fn default_flow_name() -> String {
    "agent".into()
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
/// 1 MiB: an agent answer is a few KiB.
pub const DEFAULT_RESPONSE_BODY_LIMIT: u64 = 1 << 20;
/// The accepted range of `flow.response_body_limit`.
pub const RESPONSE_BODY_LIMIT_RANGE: std::ops::RangeInclusive<u64> = 1024..=(256 << 20);
fn default_response_body_limit() -> u64 {
    DEFAULT_RESPONSE_BODY_LIMIT
}
fn default_assistant_tag() -> String {
    "vu-{vu}-iter-{iter}".into()
}
fn default_message() -> String {
    "Hello from barrage".into()
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            name: default_flow_name(),
            graph_id: default_graph(),
            model_name: default_model(),
            stream_mode: default_stream_mode(),
            think_time: Duration::ZERO,
            request_timeout: default_timeout(),
            message: default_message(),
            response_body_limit: DEFAULT_RESPONSE_BODY_LIMIT,
            assistant_tag: default_assistant_tag(),
            history_bytes: 0,
            request: None,
        }
    }
}

//! `[target]`: where the load goes and the labels that name its results.
use serde::{Deserialize, Serialize};

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

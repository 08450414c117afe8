//! `[auth]`: how VUs authenticate to the target (the secrets themselves never live here).
use crate::duration::serde_str;
use serde::{Deserialize, Serialize};
use std::time::Duration;

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
pub(super) fn default_sub() -> String {
    "benchmark-user".into()
}
pub(super) fn default_ttl() -> Duration {
    Duration::from_secs(3600)
}
fn default_anon_env() -> String {
    "SUPABASE_ANON_KEY".into()
}
fn default_password_env() -> String {
    "SUPABASE_PASSWORD".into()
}

//! What the command line may change in a plan: the flags `barrage run`/`controller` and
//! `barrage-worker --standalone` share.
use super::auth::{default_sub, default_ttl};
use super::{AuthConfig, Plan};

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

impl Plan {
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
}

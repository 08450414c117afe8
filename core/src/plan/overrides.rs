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
    /// Like `auth_token_env`, but only for a plan without auth (the k6 script's
    /// `AUTH_TOKEN`: sent when set).
    pub auth_token_env_if_none: Option<String>,
    /// `flow.graph_id`, `flow.model_name`.
    pub graph_id: Option<String>,
    pub model_name: Option<String>,
    /// One VU, one iteration: the smoke profile's scenario replaces the plan's (every
    /// scenario's executor with `[scenarios]`, each then starting at 0 s).
    pub smoke: bool,
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
        if let (Some(var), AuthConfig::None) = (&o.auth_token_env_if_none, &self.auth) {
            self.auth = AuthConfig::Token {
                token_env: var.clone(),
            };
        }
        if let Some(g) = &o.graph_id {
            self.flow.graph_id.clone_from(g);
        }
        if let Some(m) = &o.model_name {
            self.flow.model_name.clone_from(m);
        }
        if o.smoke {
            let smoke = Plan::profile(super::Profile::Smoke).scenario;
            for s in self.scenarios.values_mut() {
                s.executor = smoke.clone();
                s.start_time = std::time::Duration::ZERO;
            }
            self.scenario = smoke;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Profile;

    #[test]
    fn the_k6_variables_overrides_reach_the_plan() {
        let mut p = Plan::profile(Profile::Default);
        p.apply(&PlanOverrides {
            graph_id: Some("g2".into()),
            model_name: Some("openai:m2".into()),
            smoke: true,
            auth_token_env_if_none: Some("AUTH_TOKEN".into()),
            ..PlanOverrides::default()
        });
        assert_eq!(p.flow.graph_id, "g2");
        assert_eq!(p.flow.model_name, "openai:m2");
        assert_eq!(p.scenario, Plan::profile(Profile::Smoke).scenario);
        assert_eq!(
            p.auth,
            AuthConfig::Token {
                token_env: "AUTH_TOKEN".into()
            }
        );
        // a plan with its own auth keeps it
        let mut p = Plan::profile(Profile::Default);
        p.apply(&PlanOverrides {
            jwt_secret_env: Some("S".into()),
            ..PlanOverrides::default()
        });
        let jwt = p.auth.clone();
        p.apply(&PlanOverrides {
            auth_token_env_if_none: Some("AUTH_TOKEN".into()),
            ..PlanOverrides::default()
        });
        assert_eq!(p.auth, jwt);
    }
}

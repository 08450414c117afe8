//! Flags → one validated [`RunConfig`], before any port is bound or child started: the plan
//! (file or profile, with the flags' overrides), its thresholds, the secrets its auth needs,
//! the outputs, and a results folder proven writable.
use crate::cli::{OnWorkerLoss, OutSpec, OutputArgs, PlanArgs};
use crate::results::{self, ResultsError};
use crate::thresholds::ThresholdSet;
use barrage_core::{Plan, PlanError, PlanOverrides, Profile, Secret};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Plan(#[from] PlanError),
    #[error("{0}")]
    Results(#[from] ResultsError),
    #[error("{0}")]
    Invalid(String),
}

/// Everything a run needs, validated.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub plan: Plan,
    pub thresholds: ThresholdSet,
    /// By the names of `Assignment.secrets`; never logged.
    pub secrets: BTreeMap<String, Secret>,
    pub outs: Vec<OutSpec>,
    pub results_dir: PathBuf,
    pub on_worker_loss: OnWorkerLoss,
    pub progress: bool,
}

/// Reads the plan (file or profile) and applies the flags' overrides, then validates.
pub fn load_plan(args: &PlanArgs) -> Result<Plan, ConfigError> {
    let mut plan = match (&args.plan, &args.profile) {
        (Some(path), _) => Plan::from_file(path)?,
        (None, Some(name)) => Plan::profile(
            Profile::parse(name).map_err(|e| ConfigError::Invalid(format!("--profile: {e}")))?,
        ),
        (None, None) => Plan::profile(Profile::Default),
    };
    plan.apply(&PlanOverrides {
        target: args.target.clone(),
        runtime: args.runtime_name.clone(),
        version: args.runtime_version.clone(),
        llm: args.llm.clone(),
        tier: args.tier.clone(),
        jwt_secret_env: args.jwt_secret_env.clone(),
        auth_token_env: args.auth_token_env.clone(),
    });
    plan.validate()?;
    Ok(plan)
}

/// The secrets the plan's auth needs, read from the environment or files
/// (`barrage_core::auth::plan_secrets`).
pub fn read_secrets(
    plan: &Plan,
    env: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, Secret>, ConfigError> {
    barrage_core::auth::plan_secrets(&plan.auth, env)
        .map_err(|e| ConfigError::Invalid(e.to_string()))
}

pub fn build(plan: &PlanArgs, output: &OutputArgs) -> Result<RunConfig, ConfigError> {
    let plan = load_plan(plan)?;
    let thresholds = ThresholdSet::from_plan(&plan)?;
    let secrets = read_secrets(&plan, |k| std::env::var(k).ok())?;
    let mut seen = Vec::new();
    for o in &output.outs {
        if seen.contains(&&o.path) {
            return Err(ConfigError::Invalid(format!(
                "--out: {} is given twice; use one file per output",
                o.path.display()
            )));
        }
        seen.push(&o.path);
        results::probe_dir(results::parent_dir(&o.path))?;
    }
    results::probe_dir(&output.results_dir)?;
    Ok(RunConfig {
        plan,
        thresholds,
        secrets,
        outs: output.outs.clone(),
        results_dir: output.results_dir.clone(),
        on_worker_loss: output.on_worker_loss,
        progress: !output.no_progress,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_args() -> PlanArgs {
        PlanArgs {
            plan: None,
            profile: None,
            target: None,
            runtime_name: None,
            runtime_version: None,
            llm: None,
            tier: None,
            jwt_secret_env: None,
            auth_token_env: None,
        }
    }

    #[test]
    fn overrides_and_errors() {
        let p = load_plan(&PlanArgs {
            target: Some("http://127.0.0.1:9001/".into()),
            runtime_name: Some("ts".into()),
            profile: Some("smoke".into()),
            ..plan_args()
        })
        .unwrap();
        assert_eq!(
            (
                p.target.url.as_str(),
                p.target.runtime.as_str(),
                p.name.as_str()
            ),
            ("http://127.0.0.1:9001", "ts", "smoke")
        );
        let e = load_plan(&PlanArgs {
            profile: Some("warp".into()),
            ..plan_args()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("--profile") && e.contains("warp"), "{e}");
        let e = load_plan(&PlanArgs {
            runtime_name: Some("a b".into()),
            ..plan_args()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("target.runtime"), "{e}");
        let e = load_plan(&PlanArgs {
            plan: Some("/nonexistent/p.toml".into()),
            ..plan_args()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("/nonexistent/p.toml"), "{e}");
    }

    #[test]
    fn secrets_come_from_the_environment() {
        let p = load_plan(&PlanArgs {
            jwt_secret_env: Some("MY_SECRET".into()),
            ..plan_args()
        })
        .unwrap();
        let s = read_secrets(&p, |k| (k == "MY_SECRET").then(|| "s3cret".into())).unwrap();
        assert_eq!(s["jwt_secret"].expose(), "s3cret");
        let e = read_secrets(&p, |_| None).unwrap_err().to_string();
        assert!(
            e.contains("MY_SECRET") && e.contains("--jwt-secret-env"),
            "{e}"
        );
        let p = load_plan(&PlanArgs {
            auth_token_env: Some("TOK".into()),
            ..plan_args()
        })
        .unwrap();
        assert_eq!(
            read_secrets(&p, |_| Some("t".into())).unwrap()["token"].expose(),
            "t"
        );
    }
}

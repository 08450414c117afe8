//! Built-in profiles: the seed's plans, named on the command line with `--profile`.
use super::{default_graceful_stop, default_interval, AuthConfig, FlowConfig, Plan, TargetConfig};
use crate::executor::{ExecutorConfig, Stage};
use crate::metrics::builtin;
use crate::threshold::ThresholdSpec;
use std::collections::BTreeMap;
use std::time::Duration;

/// Built-in profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// The seed's ramp: 10 s 0→1, 20 s 1→3, 30 s 3→5, 20 s 5→3, 10 s 3→1.
    Default,
    /// 1 VU, 1 iteration.
    Smoke,
    /// The tier sweep's ramp 1→5→10 over 90 s.
    Tier,
    /// Seed 001's horizontal scaling: a plateau at 10 VUs, a ramp, a plateau at 100 VUs;
    /// the summary's `patterns.scaling` compares the two plateaus.
    Scaling,
}

/// A `--profile` name that is not a built-in profile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown profile {0:?}; use one of {names}", names = Profile::NAMES)]
pub struct UnknownProfile(pub String);

impl Profile {
    pub const NAMES: &'static str = "default, smoke, tier, scaling";

    pub fn parse(name: &str) -> Result<Self, UnknownProfile> {
        match name {
            "default" => Ok(Profile::Default),
            "smoke" => Ok(Profile::Smoke),
            "tier" => Ok(Profile::Tier),
            "scaling" => Ok(Profile::Scaling),
            other => Err(UnknownProfile(other.to_string())),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Profile::Default => "default",
            Profile::Smoke => "smoke",
            Profile::Tier => "tier",
            Profile::Scaling => "scaling",
        }
    }
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
            Profile::Scaling => ExecutorConfig::RampingVus {
                start_vus: 10,
                stages: vec![Stage::new(30, 10), Stage::new(15, 100), Stage::new(30, 100)],
                graceful_ramp_down: Duration::from_secs(30),
            },
        };
        Plan {
            name: p.name().to_string(),
            target: TargetConfig::default(),
            scenario,
            scenarios: BTreeMap::new(),
            flow: FlowConfig::default(),
            flows: BTreeMap::new(),
            auth: AuthConfig::None,
            thresholds: default_thresholds(),
            slo: Default::default(),
            interval: default_interval(),
            graceful_stop: default_graceful_stop(),
            tags: BTreeMap::new(),
            validity: Default::default(),
        }
    }
}

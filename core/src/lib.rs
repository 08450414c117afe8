//! barrage's shared model: everything the controller and the workers must agree on, with no
//! network and no clock of its own.
//!
//! | module        | principal types                         | what for                                   |
//! |---------------|------------------------------------------|--------------------------------------------|
//! | [`duration`]  | `parse_duration`, `serde` helpers         | k6 durations: `10s`, `1m30s`, `250ms`       |
//! | [`segment`]   | [`Fraction`], [`Segment`]                 | exact shares of the VU space per worker    |
//! | [`executor`]  | [`ExecutorConfig`], [`Stage`]             | k6 executors as data: VU and rate curves   |
//! | [`plan`]      | [`Plan`], [`FlowConfig`], [`AuthConfig`]  | the one validated description of a run     |
//! | [`metrics`]   | [`MetricKind`], [`SeriesKey`], `builtin`  | k6's metric vocabulary                     |
//! | [`sink`]      | [`Sink`] (Trend/Counter/Rate/Gauge)       | aggregation of samples, exact merging      |
//! | [`snapshot`]  | [`Snapshot`], histogram codec             | one interval of sinks per series           |
//! | [`threshold`] | [`Threshold`], [`MetricRef`]              | k6 threshold syntax, parse and evaluate    |
//! | [`auth`]      | [`Secret`], [`mint_hs256`]                | the one place JWTs are minted              |
//!
//! Data flow: a `Plan` (from TOML, a built-in profile or flags) is validated here; the
//! controller splits the VU space into `Segment`s; each worker asks the plan's executor how
//! many VUs (or iterations) its segment owns at time `t`; VUs record samples into `Sink`s
//! keyed by `SeriesKey`; every interval a worker cuts a `Snapshot`; the controller merges
//! snapshots with `+=` and evaluates `Threshold`s on the merged sinks.
#![forbid(unsafe_code)]

pub mod auth;
pub mod duration;
pub mod executor;
pub mod format;
pub mod hdr;
pub mod label;
pub mod metrics;
pub mod plan;
pub mod point;
pub mod segment;
pub mod sink;
pub mod snapshot;
pub mod threshold;

pub use auth::{mint_hs256, JwtClaims, Secret};
pub use executor::{ExecutorConfig, Stage};
pub use metrics::{MetricKind, SeriesKey};
pub use plan::{
    AuthConfig, FlowConfig, Plan, PlanError, PlanOverrides, Profile, RequestFlow, TargetConfig,
};
pub use point::Point;
pub use segment::{Fraction, Segment};
pub use sink::Sink;
pub use snapshot::Snapshot;
pub use threshold::{MetricRef, Threshold};

/// The crate version every binary reports; workers and controller must agree on it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Version of the controller/worker conversation (`barrage.v1`).
pub const PROTOCOL: u32 = 1;

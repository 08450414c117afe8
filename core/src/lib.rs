//! barrage's shared model: everything the controller and the workers must agree on. It
//! never touches the network and keeps no time of its own, with one exception: minting a
//! JWT ([`auth`]) reads the wall clock for the token's `iat`/`exp`.
//!
//! | module        | principal types                          | what for                                   |
//! |---------------|------------------------------------------|--------------------------------------------|
//! | [`duration`]  | `parse_duration`, `serde` helpers        | k6 durations: `10s`, `1m30s`, `250ms`      |
//! | [`segment`]   | [`Fraction`], [`Segment`]                | exact shares of the VU space per worker    |
//! | [`executor`]  | [`ExecutorConfig`], [`Stage`]            | k6 executors as data: VU and rate curves   |
//! | [`arrivals`]  | `Arrivals`, `Schedule`                   | uniform, Poisson, gamma arrivals; seeded   |
//! | [`plan`]      | [`Plan`], [`FlowConfig`], [`AuthConfig`] | the one validated description of a run     |
//! | [`label`]     | `check_path_label`                       | the one rule for labels that name files    |
//! | [`metrics`]   | [`MetricKind`], [`SeriesKey`], `builtin` | k6's metric vocabulary                     |
//! | [`sink`]      | [`Sink`] (Trend/Counter/Rate/Gauge)      | aggregation of samples, exact merging      |
//! | [`snapshot`]  | [`Snapshot`], `SeriesPart`               | one interval of sinks per series; the merge |
//! | [`fdlimit`]   | `raise_fd_limit`, `raise_and_log`        | the soft descriptor limit raised to the hard one at start |
//! | [`hdr`]       | `SparseDecoder`, `add_pairs`             | HDR V2 wire histograms decoded sparsely    |
//! | [`point`]     | [`Point`]                                | a raw sample, for `--out` formats          |
//! | [`threshold`] | [`Threshold`], [`ThresholdSet`], [`Verdict`] | k6 threshold syntax; the one evaluator |
//! | [`timeseries`]| `TimeSeries`, `TimePoint`, `downsample`  | the compact, bounded per-interval series   |
//! | [`trend`]     | `fit`, `Trends`                          | soak trend verdicts: slopes with 95 % CIs  |
//! | [`results`]   | `summary_path`, `write_new`              | result names; atomic, never-overwriting writes |
//! | [`stages`]    | `StageSpan`, `StageBook`                 | per-stage (ramp/plateau) merged results    |
//! | [`summary`]   | `Summary`, `assemble`, `render_text`     | the one model of a run's results           |
//! | [`telemetry`]| `TargetSummary`, `TelemetryRecorder`      | what the target consumed (CPU, RSS, LLM calls) |
//! | [`validity`]  | `WorkerHealth`, `HealthBook`, `check`     | whether the run delivered its plan (exit 97) |
//! | [`auth`]      | [`Secret`], [`mint_hs256`]               | the one place JWTs are minted (wall clock) |
//! | [`liveness`]  | `controller_gives_up`, `worker_silence`  | when each side gives the other up          |
//! | [`logging`]   | `init`, `outln!`, `errln!`               | logs and prints a closed pipe cannot kill  |
//! | [`format`]    | `fmt_ms`, `fmt_num`, `fmt_bytes`         | numbers as the summaries print them        |
//!
//! Data flow: a `Plan` (from TOML, a built-in profile or flags) is validated here; the
//! controller splits the VU space into `Segment`s; each worker asks the plan's executor how
//! many VUs (or iterations) its segment owns at time `t`; VUs record samples into `Sink`s
//! keyed by `SeriesKey`; every interval a worker cuts a `Snapshot`; the controller merges
//! the workers' snapshots of one interval (`merge_parts` off the wire), adds each closed
//! interval into the run (`accumulate`) and evaluates `Threshold`s on the merged sinks.
#![forbid(unsafe_code)]

pub mod arrivals;
pub mod auth;
pub mod duration;
pub mod executor;
pub mod fdlimit;
pub mod format;
pub mod hdr;
pub mod label;
pub mod liveness;
pub mod logging;
pub mod metrics;
pub mod plan;
pub mod point;
pub mod results;
pub mod segment;
pub mod sink;
pub mod snapshot;
pub mod stages;
pub mod summary;
pub mod telemetry;
pub mod threshold;
pub mod timeseries;
pub mod trend;
pub mod validity;

pub use auth::{mint_hs256, JwtClaims, Secret};
pub use executor::{ExecutorConfig, Stage};
pub use metrics::{MetricKind, SeriesKey, ValueKind};
pub use plan::{
    AuthConfig, FlowConfig, Plan, PlanError, PlanOverrides, Profile, RequestFlow, TargetConfig,
};
pub use point::Point;
pub use segment::{Fraction, Segment};
pub use sink::Sink;
pub use snapshot::Snapshot;
pub use summary::Summary;
pub use threshold::{MetricRef, Threshold, ThresholdSet, Verdict};

/// The crate version every binary reports; workers and controller must agree on it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Version of the controller/worker conversation (`barrage.v1`).
pub const PROTOCOL: u32 = 1;

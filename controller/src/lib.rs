//! `barrage`: the CLI and the gRPC controller of barrage's distributed load rig.
//!
//! # Layout
//!
//! | module            | holds                                                                  |
//! |-------------------|------------------------------------------------------------------------|
//! | [`cli`]           | `Cli` (clap): subcommands and flags; `--worker-cores`, `--out` parsers |
//! | [`config`]        | flags → validated `RunConfig`, `LocalRun`, `ControllerRun`; every check |
//! | [`exit_code`]     | every exit code                                                        |
//! | [`token`]         | `barrage token`: mock HS256 JWTs                                       |
//! | [`coordinator`]   | the gRPC service, one session per worker, the run's state machine      |
//! | [`local`]         | child processes of `barrage run`: spawn, pin, read ports, stop         |
//! | [`merge`]         | exact merging of interval snapshots, interval buckets                  |
//! | [`progress`]      | live progress: a bar on a terminal, plain lines otherwise              |
//! | [`dashboard`]     | `--dashboard`: the live web page, SSE, `/metrics` for Prometheus       |
//! | [`report`]        | `RunReport`: what a run produced, why it ended, its exit code          |
//! | [`summary`]       | `summary.json` and the human end-of-test summary                       |
//! | [`results`]       | result names, the folder probe, atomic writes                          |
//! | [`sweep`]         | `barrage sweep`: runtime × tier pairs, one `barrage run` each, a table |
//! | [`characterize`]  | `barrage characterize`: plateaus up to the limit, bisection, the curve |
//! | `child_run`       | one child `barrage run`/`controller` and its summary (pairs, plateaus) |
//! | [`soak`]          | `--soak`: trends, checkpoints, `--resume`, the target's resources back to baseline |
//! | [`target`]        | the target's processes: tiers (cgroups), `--target-cmd`, telemetry    |
//! | [`output`]        | raw-point outputs: k6 NDJSON, k6 CSV                                   |
//! | [`heap_count`]    | the live heap counted (`--features heap-count`), for the soak bench    |
//! | [`thp`]           | transparent huge pages off for controllers, restored for their children |
//! | `app`             | the subcommands, end to end                                            |
//! | `analyze`         | `report`, `compare`, `summarize`: read results, write charts/verdicts  |
//!
//! # Data flow
//!
//! ```text
//! flags ─► config::RunConfig (validated; exit 2 before anything starts)
//!   │ barrage run: local::spawn mock LLM + reference runtime + N workers (pinned)
//!   ▼
//! coordinator::serve ─► session per worker: Hello → Welcome → Ping×5 → Assignment → Ready
//!   │ hub: all Ready → Start{start_at}; Snapshot ─► merge::Merger ─► timeseries, thresholds,
//!   │      progress; PointBatch ─► output::Output; loss ─► Reassign; SIGINT ─► Stop/Abort
//!   ▼
//! report::RunReport ─► summary.json (atomic) + human summary + exit code
//! ```
// `unsafe` only where `local`, `target::command` and `thp` talk to the kernel (between
// fork and exec, and `prctl`), and in `heap_count`'s allocator, which forwards every call.
#![deny(unsafe_code)]

mod analyze;
mod app;
pub mod characterize;
mod child_run;
pub mod cli;
pub mod config;
pub mod coordinator;
pub mod dashboard;
pub mod exit_code;
pub mod heap_count;
pub mod local;
pub mod merge;
pub mod output;
pub mod progress;
pub mod report;
pub mod soak;
/// Result names and atomic writes are core's (the standalone worker writes results too).
pub use barrage_core::results;
pub mod summary;
pub mod sweep;
pub mod target;
pub mod thp;
/// The time series is core's (the standalone worker keeps one too).
pub use barrage_core::timeseries;
pub mod token;

pub use app::run;

//! barrage-worker: joins a controller over gRPC (or runs a plan standalone) and runs
//! virtual users that drive the agent flow against an Agent Protocol server.
//!
//! # Layout
//!
//! | module        | holds                                                                  |
//! |---------------|------------------------------------------------------------------------|
//! | [`cli`]       | [`Args`] (flags, `clap::Args`) → validated [`cli::Mode`]                |
//! | [`exit_code`] | every exit code                                                         |
//! | [`join`]      | the gRPC conversation with the controller (Hello … Done)               |
//! | `dial`        | dialling the controller: TLS, token, `Hello`, retries to a deadline     |
//! | [`rejoin`]    | soak runs: the load goes on while a lost controller is dialled again    |
//! | [`serve`]     | `--serve`: run after run, redialling the controller between runs        |
//! | [`standalone`]| `--standalone`: plan from file/profile, run, k6-like summary            |
//! | [`session`]   | one run: executor runtime + snapshot ticker + final cut                 |
//! | [`executor`]  | executor runtimes (closed VU curve, arrival rate); VU lifecycle table   |
//! | [`vu`]        | the one VU loop, its feeds (closed, open) and slots                     |
//! | [`registry`]  | metrics registry: interned series, interval sinks, snapshot cuts        |
//! | [`interval`]  | the snapshot ticker, aligned to the run's start                         |
//! | [`health`]    | the worker measuring itself: CPU, loop lag, iterations due (validity)   |
//! | [`clock`]     | instants ↔ controller wall clock                                        |
//! | [`pin`]       | pinning the worker thread to a core                                     |
//! | [`sample`]    | the seam: `Scenario` (a flow), `Record` (the registry), `Sample`        |
//! | [`flow`]      | the agent flow: step definitions, the iteration runner, checks, target auth |
//! | [`http`]      | the HTTP client (inline HTTP/1.1 and TLS paths) and the SSE parser      |
//!
//! # Data flow
//!
//! ```text
//! Args ─validate─► Mode ─┬─ Join: Hello ► Welcome ► Ping/Pong ► Assignment ► Ready ► Start ─┐
//!                        └─ Standalone: plan file / profile ───────────────────────────────┤
//!                                                                                          ▼
//!   executor runtime (segment.scale(vus_at(t)) VUs | owned iterations at iteration_start(i))
//!        ─► VUs ─► Scenario::iteration ─► Sample ─► Registry (interned series, HDR µs)
//!        ticker every plan.interval ─► Snapshot ─► controller (gRPC) | merged total ─► summary
//! ```
//!
//! Everything runs on one thread: a `current_thread` tokio runtime with a `LocalSet`,
//! pinned to `--core N` when asked.
#![forbid(unsafe_code)]

pub mod flow;
pub mod http;
pub mod sample;

pub mod cli;
pub mod clock;
mod dial;
pub mod executor;
pub mod exit_code;
pub mod health;
pub mod interval;
pub mod join;
pub mod pin;
pub mod registry;
pub mod rejoin;
pub mod serve;
pub mod session;
pub mod standalone;
pub mod vu;

pub use cli::Args;

use std::process::ExitCode;

/// Runs the worker as the flags say; the `ExitCode` follows [`exit_code`].
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    tracing::info!(
        version = barrage_core::VERSION,
        protocol = barrage_core::PROTOCOL,
        pid = std::process::id(),
        "barrage-worker starting"
    );
    // one descriptor per open stream: the soft limit is raised to the hard one
    http::raise_and_log("barrage-worker");
    match args.validate() {
        Err(e) => {
            barrage_core::errln!("barrage-worker: {e}");
            Ok(exit_code::code(exit_code::CONFIG))
        }
        Ok(cli::Mode::Standalone(a)) => standalone::run(a),
        Ok(cli::Mode::Join(a)) => join::run(a),
    }
}

//! barrage-mock-llm: an OpenAI-compatible mock LLM service for benchmarking agent runtimes.
//!
//! It answers `POST /v1/chat/completions` with a fixed text (or a tool call), as one
//! `chat.completion` or as an SSE stream of `chat.completion.chunk`s paced like a real model,
//! with configurable latency and injected faults, and it counts what it served so a load
//! test can compare its own figures with the server's.
//!
//! # Layout
//!
//! | module | holds |
//! | --- | --- |
//! | [`config`] | `Args` (flags + `MOCK_LLM_*` variables, as text) → validated `Config`; `ConfigError` lists every problem |
//! | [`server`] | `serve(listener, config, shutdown)`: accept loop, connections, graceful drain |
//! | `sniff` | HTTP/1.1 or h2c, told from a connection's first bytes (peeked; read and replayed when they come in pieces) |
//! | `routes` | routing and the endpoint handlers; the chat pipeline (size → parse → fault → answer → slot → delay) |
//! | [`model`] | model mode: `Generations` (slots + FIFO queue, 429 when full), the queue-wait histogram, the timing formulas |
//! | [`live`] | `Tunables` (what `/admin/config` may change) in `Live`, copied by each request on arrival |
//! | [`calls`] | the per-call log (a ring buffer): arrival, service time, prompt size, key → `/stats/calls` |
//! | `request` | the parts of a chat request the mock reads; counts prompt words while parsing |
//! | `completion` | preserialized answer pieces (`Template`) → `chat.completion` JSON and stream `Frames` (written per frame when due) |
//! | `stream` | `SseBody`: sends frames on a fixed schedule (`first + i * interval`), or all at once |
//! | `body` | `ResponseBody`: full or stream, holding its `Guards` (in flight, slot, call record) |
//! | `tool` | tool-call arguments filled in from the tool's JSON Schema |
//! | [`tokens`] | word splitting and counting (a token is a whitespace-separated word) |
//! | [`stats`] | atomic counters → `/stats` JSON and `/metrics` Prometheus text |
//! | [`error`] | OpenAI-shaped error answers; the injected-disconnect error |
//! | [`exit_code`] | every exit code of the binary |
//! | `run` | `run(args)`: runtime, bind (`SO_REUSEPORT` with `--reuse-port`: several processes on one port), signals; used by `main.rs` and by `barrage` |
//!
//! # Data flow
//!
//! ```text
//! Args ──into_config──▶ Config ──App::new──▶ Template (escaped text, one delta per word)
//!                                              │
//! request ─▶ routes ─▶ ChatRequest::parse ─▶ Template::completion / ::stream ─▶ sleep_until(first byte)
//!                                              │                                  │
//!                                            Stats (atomics)                ResponseBody ─▶ hyper
//! ```
//!
//! # Embedding
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let config = barrage_mock_llm::Config { delay: std::time::Duration::ZERO, ..Default::default() };
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! barrage_mock_llm::serve(listener, config, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod body;
pub mod calls;
mod completion;
pub mod config;
pub mod error;
pub mod exit_code;
mod intake;
pub mod live;
pub mod model;
mod request;
mod routes;
mod run;
pub mod server;
mod sniff;
pub mod stats;
mod stream;
pub mod tokens;
mod tool;

pub use config::{Args, Config, ConfigError, ErrorStatus, Mode, ModelSettings};
pub use run::run;
pub use server::serve;

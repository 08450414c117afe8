//! barrage-reference-runtime: a small in-memory Agent Protocol server with the
//! wire shapes of the LangGraph Python server (`langgraph dev`), and no overhead of
//! its own worth measuring. It is `barrage run`'s embedded default target, the
//! fast target of barrage's tests, and the floor in comparisons.
//!
//! # Layout
//!
//! | module | concept |
//! | --- | --- |
//! | [`config`] | [`Args`] (flags + env) → validated [`Config`], [`ConfigError`] |
//! | `state` | `AppState`: the maps, the LLM client, the counters, behind one `Arc` |
//! | `assistants` | `POST/GET/DELETE /assistants`, built-in assistant per graph |
//! | `threads` | `POST/GET/DELETE /threads`, `GET /threads/{id}/state`, per-thread history |
//! | `runs` | the run engine and `runs/wait`, `runs/stream` (thread and stateless) |
//! | `messages` | LangChain message shapes, OpenAI conversion |
//! | `llm` | the pooled OpenAI-compatible client (streamed and not) |
//! | `sse` | SSE framing out, SSE decoding of the LLM's stream in |
//! | `store` | `/store/items` put, get, search, delete |
//! | `auth` | HS256 JWT check (`SUPABASE_JWT_SECRET`) |
//! | `stats` | `GET /stats`: the server's own counters |
//! | `leak` | `--leak-runs`: finished runs kept forever, a leak on purpose for soak tests |
//! | `error` | `ApiError` → `{"detail":...}`, body parsing (422, 413) |
//!
//! # Data flow of a run
//!
//! ```text
//! POST /threads/{id}/runs/stream ──► runs::prepare (422/404/409) ──► spawn Run::execute
//!        ▲                                                              │ metadata, values(input)
//!        └──── SSE frames ◄── mpsc ◄── Sink::Sse ◄──────────────────────┤ llm::stream deltas → messages
//!                                                                       │ commit to thread, updates, values(final)
//! ```
//!
//! Embedding: `barrage` flattens [`Args`] into its own CLI, then calls [`run`], or
//! binds a listener itself and awaits [`serve`].

#![forbid(unsafe_code)]

pub mod config;

mod assistants;
mod auth;
mod error;
mod leak;
mod llm;
mod messages;
mod runs;
mod sse;
mod state;
mod stats;
mod store;
mod threads;

use std::future::{Future, IntoFuture};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{middleware, Json, Router};
use serde_json::{json, Value};
use tokio::net::TcpListener;

pub use config::{Args, Config, ConfigError};
use error::ApiError;
use state::AppState;

/// How long in-flight requests may take to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves on `listener` until `shutdown` completes, then drains in-flight
/// requests for at most [`SHUTDOWN_GRACE`].
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = AppState::new(config).map_err(std::io::Error::other)?;
    let app = router(state);
    let (stopping_tx, mut stopping_rx) = tokio::sync::watch::channel(false);
    let signal = async move {
        shutdown.await;
        tracing::info!("shutdown requested; draining in-flight requests");
        let _ = stopping_tx.send(true);
    };
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(%err, "could not set TCP_NODELAY");
        }
    });
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(signal)
        .into_future();
    let deadline = async move {
        // Completes only if the signal came and the grace period passed.
        if stopping_rx.wait_for(|stopping| *stopping).await.is_err() {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        result = server => {
            tracing::info!("server stopped");
            result
        }
        () = deadline => {
            tracing::warn!(grace_s = SHUTDOWN_GRACE.as_secs(), "requests still running after the grace period; stopping anyway");
            Ok(())
        }
    }
}

/// Validates `args`, starts a tokio runtime with the configured threads, binds,
/// prints `listening on http://HOST:PORT` on stdout and serves until SIGINT or
/// SIGTERM. Configuration errors are printed and give exit code 2.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = match args.into_config() {
        Ok(config) => config,
        Err(err) => {
            barrage_core::errln!("barrage-reference-runtime: {err}");
            return Ok(ExitCode::from(2));
        }
    };
    let mut builder = if config.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(config.threads);
        builder
    };
    let runtime = builder
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    // every streaming run holds a connection in (and over HTTP/1.1 one out to the LLM)
    barrage_core::fdlimit::raise_and_log("barrage-reference-runtime");
    runtime.block_on(async move {
        let listener = TcpListener::bind(config.listen).await.with_context(|| {
            format!(
                "binding {}: pick another address with --host/--port (or PORT)",
                config.listen
            )
        })?;
        let addr = listener.local_addr().context("reading the bound address")?;
        barrage_core::outln!("listening on http://{addr}");
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            %addr,
            llm = %config.chat_completions_url,
            llm_http2 = config.llm_http2,
            model = %config.default_model,
            auth = config.jwt_secret.is_some(),
            threads = config.threads,
            "reference runtime started"
        );
        serve(listener, config, shutdown_signal())
            .await
            .context("serving")?;
        Ok(ExitCode::SUCCESS)
    })
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

fn router(state: AppState) -> Router {
    let max_body = state.config.max_body_bytes;
    let protected = Router::new()
        .route("/assistants", post(assistants::create))
        .route(
            "/assistants/{assistant_id}",
            get(assistants::get).delete(assistants::delete),
        )
        .route("/threads", post(threads::create))
        .route(
            "/threads/{thread_id}",
            get(threads::get).delete(threads::delete),
        )
        .route("/threads/{thread_id}/state", get(threads::get_state))
        .route("/threads/{thread_id}/runs/wait", post(runs::thread_wait))
        .route(
            "/threads/{thread_id}/runs/stream",
            post(runs::thread_stream),
        )
        .route("/runs/wait", post(runs::stateless_wait))
        .route("/runs/stream", post(runs::stateless_stream))
        .route(
            "/store/items",
            put(store::put).get(store::get).delete(store::delete),
        )
        .route("/store/items/search", post(store::search))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_jwt,
        ));
    Router::new()
        .route("/ok", get(ok))
        .route("/info", get(info))
        .route("/stats", get(stats))
        .merge(protected)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// `GET /ok`
async fn ok() -> Json<Value> {
    Json(json!({"ok": true}))
}

/// `GET /info`
async fn info(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "runtime": "barrage-reference-runtime",
        "graphs": assistants::GRAPHS,
        "auth": state.verifier.is_some(),
        "multitask_strategy": "enqueue",
        "flags": {"assistants": true, "crons": false, "langsmith": false},
    }))
}

/// `GET /stats`
async fn stats(State(state): State<AppState>) -> Json<Value> {
    let mut v = state
        .stats
        .to_json(state.live(), state.started.elapsed().as_secs_f64());
    if let Value::Object(m) = &mut v {
        m.insert("leaked_runs".into(), state.leaked.to_json());
    }
    Json(v)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("Not Found".into())
}

async fn method_not_allowed() -> (StatusCode, Json<Value>) {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({"detail": "Method Not Allowed"})),
    )
}

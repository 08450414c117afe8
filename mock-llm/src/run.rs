//! The process around the server: runtime, listener, signals, exit code.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use tracing::{error, info};

use crate::config::{Args, Config};
use crate::exit_code;

/// Validates `args`, builds the runtime (`config.threads` workers; 1 = current-thread),
/// binds, prints `listening on ADDR` as the first stdout line, and serves until SIGINT or
/// SIGTERM. Invalid settings are printed to stderr and give [`exit_code::CONFIG`] (2).
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = match args.into_config() {
        Ok(config) => config,
        Err(e) => {
            barrage_core::errln!("barrage-mock-llm: {e}");
            return Ok(ExitCode::from(exit_code::CONFIG));
        }
    };
    let runtime = if config.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.threads)
            .enable_all()
            .build()
    }
    .context("could not start the tokio runtime")?;
    runtime.block_on(async_main(config))?;
    Ok(ExitCode::SUCCESS)
}

async fn async_main(config: Config) -> anyhow::Result<()> {
    let addr = SocketAddr::new(config.host, config.port);
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!(
            "could not listen on {addr}; pick another --port / MOCK_LLM_PORT (0 = any free port)"
        )
    })?;
    let local = listener
        .local_addr()
        .context("could not read the bound address")?;
    // The first stdout line: tests and scripts read the port from it.
    barrage_core::outln!("listening on {local}");
    info!(
        version = env!("CARGO_PKG_VERSION"),
        addr = %local,
        model = %config.model,
        delay_ms = config.delay.as_millis() as u64,
        stream_delay_ms = config.stream_delay.as_millis() as u64,
        jitter_ms = config.jitter.as_millis() as u64,
        tool_call_rate = config.tool_call_rate,
        error_rate = config.error_rate,
        error_status = config.error_status.code(),
        disconnect_rate = config.disconnect_rate,
        threads = config.threads,
        mode = config.mode.name(),
        max_concurrency = config.model_settings.max_concurrency,
        queue_size = config.model_settings.queue_size,
        call_log_size = config.call_log_size,
        "mock LLM listening"
    );
    crate::serve(listener, config, shutdown_signal())
        .await
        .context("server failed")
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => info!(signal = "SIGINT", "shutdown requested"),
        () = term => info!(signal = "SIGTERM", "shutdown requested"),
    }
}

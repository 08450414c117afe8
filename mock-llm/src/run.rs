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
    // one descriptor per connection: tens of thousands of open streams need the hard limit
    barrage_core::fdlimit::raise_and_log("barrage-mock-llm");
    let addr = SocketAddr::new(config.host, config.port);
    let listener = bind(addr, config.reuse_port).with_context(|| {
        if config.reuse_port {
            format!(
                "could not listen on {addr} with --reuse-port; a process holding it without \
                 --reuse-port (or as another user) blocks it: give every process sharing the \
                 port --reuse-port, or pick another --port / MOCK_LLM_PORT"
            )
        } else {
            format!(
                "could not listen on {addr}; pick another --port / MOCK_LLM_PORT (0 = any free \
                 port), or give every process that should share it --reuse-port"
            )
        }
    })?;
    let local = listener
        .local_addr()
        .context("could not read the bound address")?;
    // The first stdout line: tests and scripts read the port from it.
    barrage_core::outln!("listening on {local}");
    info!(
        version = env!("CARGO_PKG_VERSION"),
        addr = %local,
        reuse_port = config.reuse_port,
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

/// Pending connections the kernel queues per listening socket (what `TcpListener::bind`
/// uses; with `--reuse-port` each process has its own queue).
const BACKLOG: u32 = 1024;

/// Binds `addr` as `TcpListener::bind` does (`SO_REUSEADDR` on Unix, so a restart does not
/// wait out TIME_WAIT) and, with `reuse_port`, sets `SO_REUSEPORT` first: every process
/// that binds the same address with it set gets its own accept queue, and the kernel
/// spreads new connections over them by a hash of the 4-tuple. That is how one address is
/// served by several processes, each under its own open-file limit.
fn bind(addr: SocketAddr, reuse_port: bool) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    if reuse_port {
        set_reuse_port(&socket)?;
    }
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

#[cfg(all(unix, not(target_os = "solaris"), not(target_os = "illumos")))]
fn set_reuse_port(socket: &tokio::net::TcpSocket) -> std::io::Result<()> {
    // tokio's TcpSocket is socket2's `Socket` underneath (`set_reuse_port`).
    socket.set_reuseport(true)
}

#[cfg(not(all(unix, not(target_os = "solaris"), not(target_os = "illumos"))))]
fn set_reuse_port(_: &tokio::net::TcpSocket) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "SO_REUSEPORT is not available on this platform; drop --reuse-port",
    ))
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

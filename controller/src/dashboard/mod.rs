//! The live dashboard of `barrage run|controller --dashboard ADDR`: a web page that follows
//! the run second by second, and `/metrics` for Prometheus/Grafana, on one loopback port.
//!
//! | file            | holds                                                              |
//! |-----------------|--------------------------------------------------------------------|
//! | `state.rs`      | [`LiveState`] (what is shown) and [`LiveFeed`] (the hub's publisher) |
//! | `views.rs`      | the figures from merged data: totals, latencies (HDR), spectra      |
//! | `server.rs`     | the axum routes: page, SSE, `/metrics`, `/state`, `/summary.json`, charts |
//! | `page.rs`       | the page (`page.html`, self-contained) with the state embedded      |
//! | `prometheus.rs` | the Prometheus text format, and the metrics' error bound            |
//! | `charts.rs`     | the live charts as SVG                                              |
//! | `long_run.rs`   | (tests) a long run's merged time-series rows, shown over their span  |
//!
//! # Data flow
//!
//! ```text
//! hub tick ─► LiveFeed::tick(status, merged run, time series, roster)   (only with --dashboard)
//!               │ watch channel: the latest Arc<LiveState>, never waited on by the hub
//!               ▼
//!   GET /  /events (SSE)  /metrics  /state  /charts/*.svg
//! command ─► LiveFeed::finished(summary, path) ─► final SSE event ─► streams end ─► server stops
//! ```
//!
//! Why a watch channel: the hub must never wait for a browser. Every client reads the
//! latest value when it is ready; a slow one skips states instead of queueing them.
//!
//! Why loopback by default: the page shows the plan, the target and the workers' hosts, and
//! has no authentication; `--dashboard-public` opens it to other hosts on purpose.
pub mod charts;
#[cfg(test)]
mod long_run;
pub mod page;
pub mod prometheus;
mod server;
pub mod state;
mod views;

pub use state::{
    Latency, LiveFeed, LiveState, RunInfo, RunPhase, TargetLoad, Tick, Totals, WorkerHealth,
};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long the server waits at the end for pages to receive the final state.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Why the dashboard cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("--dashboard {addr}: cannot listen: {source}; pick another port (or 127.0.0.1:0 for any free one)")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The running dashboard server.
pub struct Dashboard {
    addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl Dashboard {
    /// Binds `addr` (validated by `config`: loopback unless `--dashboard-public`).
    pub async fn bind(addr: SocketAddr) -> Result<TcpListener, DashboardError> {
        TcpListener::bind(addr)
            .await
            .map_err(|source| DashboardError::Bind { addr, source })
    }

    /// Serves the state of `rx` on `listener` until [`Dashboard::shutdown`].
    pub fn serve(listener: TcpListener, rx: watch::Receiver<Arc<LiveState>>) -> Dashboard {
        let addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        let stop = CancellationToken::new();
        let app = server::router(server::Shared {
            state: rx,
            stop: stop.clone(),
        });
        let until = stop.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { until.cancelled().await })
                .await
        });
        tracing::info!(%addr, "dashboard listening");
        Dashboard { addr, stop, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Stops the server: open pages get the state published last (the final one, when the
    /// command published it first), then their streams end; bounded by [`SHUTDOWN_GRACE`].
    pub async fn shutdown(self) {
        // let streams that are due to send the final state send it before they see the stop
        tokio::task::yield_now().await;
        self.stop.cancel();
        let mut task = self.task;
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await {
            Ok(Ok(Ok(()))) => tracing::debug!("dashboard stopped"),
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "dashboard server failed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "dashboard task failed"),
            Err(_) => {
                tracing::warn!("dashboard still serving after the grace period; closing it");
                task.abort();
            }
        }
    }
}

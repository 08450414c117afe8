//! The HTTP/1.1 server: accept loop, one task per connection, graceful shutdown.
//!
//! Shutdown, once the `shutdown` future completes:
//!
//! | step | what happens |
//! | --- | --- |
//! | 1 | the listener is dropped: no new connections |
//! | 2 | every connection is told to finish: idle keep-alive connections close, requests in flight (streams too) run to their end |
//! | 3 | wait up to `Config::grace` for all connections to end; log either way |
//! | 4 | connections still open after the grace period are dropped |

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::routes::App;

/// Serves the mock LLM on `listener` until `shutdown` completes, then drains connections
/// for at most `config.grace`. Returns once every connection has ended or been dropped.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let grace = config.grace;
    let app = Arc::new(App::new(config));
    let mut http = http1::Builder::new();
    // No timer is configured, so hyper arms none per request (no header-read timeout).
    http.keep_alive(true);
    let http = Arc::new(http);
    let finish = CancellationToken::new();
    let abort = CancellationToken::new();
    let tracker = TaskTracker::new();

    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    tracker.spawn(connection(stream, Arc::clone(&app), Arc::clone(&http), finish.clone(), abort.clone()));
                }
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(%error, "accept failed; retrying in 10 ms");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        }
    }

    drop(listener);
    tracker.close();
    finish.cancel();
    info!(
        connections = tracker.len(),
        grace_ms = grace.as_millis() as u64,
        "shutting down: stopped accepting, draining connections"
    );
    if tokio::time::timeout(grace, tracker.wait()).await.is_ok() {
        info!("all connections finished; shut down cleanly");
    } else {
        warn!(
            connections = tracker.len(),
            grace_ms = grace.as_millis() as u64,
            "grace period elapsed; dropping the remaining connections"
        );
        abort.cancel();
        tracker.wait().await;
    }
    Ok(())
}

/// Serves one connection until it closes, finishing gracefully on `finish` and dropping
/// it on `abort`.
async fn connection(
    stream: TcpStream,
    app: Arc<App>,
    http: Arc<http1::Builder>,
    finish: CancellationToken,
    abort: CancellationToken,
) {
    // Answers are small writes that must not wait for Nagle's algorithm.
    if let Err(error) = stream.set_nodelay(true) {
        debug!(%error, "could not set TCP_NODELAY");
    }
    let service = service_fn(move |req| {
        let app = Arc::clone(&app);
        async move { Ok::<_, Infallible>(app.handle(req).await) }
    });
    let conn = http.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = finish.cancelled() => {
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                result = conn.as_mut() => result,
                () = abort.cancelled() => return,
            }
        }
    };
    if let Err(error) = result {
        // Client resets and injected disconnects end up here; neither is a server problem.
        debug!(%error, "connection ended with an error");
    }
}

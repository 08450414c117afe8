//! The HTTP server: accept loop, one task per connection, graceful shutdown.
//!
//! Each connection speaks HTTP/1.1 or HTTP/2 with prior knowledge (h2c), whichever its first
//! bytes announce, on the same port. HTTP/2 is there for runtimes that multiplex their LLM
//! calls, as real ones do against providers: thousands of concurrent streams then share a
//! few connections instead of holding one descriptor each. An h2 connection takes up to
//! [`H2_MAX_STREAMS`] streams at once; each stream is its own task (hyper spawns it), its
//! frames handed to the connection as they come due, so chunks are not held back over h2
//! either.
//!
//! The protocol is told once per connection (`sniff`: the first bytes peeked, not read) and
//! the connection is then served by hyper's HTTP/1.1 or HTTP/2 connection directly, not by
//! hyper-util's `auto` one: an HTTP/1.1 connection is then the same object over the same
//! socket as on a server that speaks nothing else (no version layer on every read, the
//! task no larger), which matters at tens of thousands of open streams. The HTTP/2
//! connection, larger, is boxed so that HTTP/1.1 tasks do not carry its size.
//!
//! Shutdown, once the `shutdown` future completes:
//!
//! | step | what happens |
//! | --- | --- |
//! | 1 | the listener is dropped: no new connections |
//! | 2 | every connection is told to finish: idle keep-alive connections close, requests in flight (streams too) run to their end; an h2 connection gets a GOAWAY and its open streams run to their end |
//! | 3 | wait up to `Config::grace` for all connections to end; log either way |
//! | 4 | connections still open after the grace period are dropped |

use std::convert::Infallible;
use std::fmt::Display;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::routes::App;
use crate::sniff::{sniff, Protocol, Replay, Sniffed};

/// Concurrent streams one HTTP/2 connection may carry: above the stream counts barrage
/// drives through one runtime (tens of thousands), so a client multiplexing its calls is
/// never queued by the mock. hyper's default (200) would queue it.
pub const H2_MAX_STREAMS: u32 = 100_000;

/// The connection builders: HTTP/1.1, and HTTP/2 with prior knowledge; which one serves a
/// connection is told by its first bytes.
struct Http {
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
}

/// Serves the mock LLM on `listener` until `shutdown` completes, then drains connections
/// for at most `config.grace`. Returns once every connection has ended or been dropped.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let grace = config.grace;
    let app = Arc::new(App::new(config));
    let mut h1 = http1::Builder::new();
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    // No timer is configured, so hyper arms none per request (no header-read timeout, no
    // h2 keep-alive ping).
    h1.keep_alive(true);
    h2.max_concurrent_streams(H2_MAX_STREAMS);
    let http = Arc::new(Http { h1, h2 });
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
    mut stream: TcpStream,
    app: Arc<App>,
    http: Arc<Http>,
    finish: CancellationToken,
    abort: CancellationToken,
) {
    // Answers are small writes that must not wait for Nagle's algorithm.
    if let Err(error) = stream.set_nodelay(true) {
        debug!(%error, "could not set TCP_NODELAY");
    }
    // A connection that has not said which protocol it speaks is idle: close it on `finish`.
    let sniffed = tokio::select! {
        sniffed = sniff(&mut stream) => sniffed,
        () = finish.cancelled() => return,
    };
    let service = service_fn(move |req| {
        let app = Arc::clone(&app);
        async move { Ok::<_, Infallible>(app.handle(req).await) }
    });
    let (finish, abort) = (&finish, &abort);
    match sniffed {
        Ok(Sniffed::Peeked(Protocol::Http1)) => {
            let conn = pin!(http.h1.serve_connection(TokioIo::new(stream), service));
            drive(conn, |c| c.graceful_shutdown(), finish, abort).await;
        }
        Ok(Sniffed::Peeked(Protocol::Http2)) => {
            let mut conn = Box::pin(http.h2.serve_connection(TokioIo::new(stream), service));
            drive(conn.as_mut(), |c| c.graceful_shutdown(), finish, abort).await;
        }
        Ok(Sniffed::Read(Protocol::Http1, first)) => {
            let io = TokioIo::new(Replay::new(first, stream));
            let conn = pin!(http.h1.serve_connection(io, service));
            drive(conn, |c| c.graceful_shutdown(), finish, abort).await;
        }
        Ok(Sniffed::Read(Protocol::Http2, first)) => {
            let io = TokioIo::new(Replay::new(first, stream));
            let mut conn = Box::pin(http.h2.serve_connection(io, service));
            drive(conn.as_mut(), |c| c.graceful_shutdown(), finish, abort).await;
        }
        Ok(Sniffed::Closed) => {}
        Err(error) => debug!(%error, "connection ended before its first bytes"),
    }
}

/// Runs `conn` to its end; on `finish`, `graceful` tells it to finish (keep-alive off, or a
/// GOAWAY) and it runs on until `abort`.
async fn drive<C, E>(
    mut conn: Pin<&mut C>,
    graceful: impl FnOnce(Pin<&mut C>),
    finish: &CancellationToken,
    abort: &CancellationToken,
) where
    C: Future<Output = Result<(), E>>,
    E: Display,
{
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = finish.cancelled() => {
            graceful(conn.as_mut());
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

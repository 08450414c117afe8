//! The worker's HTTP client and the one request executor that measures every exchange.
//!
//! | module | holds |
//! | --- | --- |
//! | this one | [`Http`]: the idle stack, the timeout, the retry rule, which path a URL takes |
//! | `exchange` | [`Request`], [`BodySink`], [`Exchange`], the request's form on the wire |
//! | `h1` | one keep-alive HTTP/1.1 connection: the inline path |
//! | `tls` | the reqwest path (`https://` and the other URLs the inline path refuses) |
//! | [`sse`] | the incremental Server-Sent Events parser a stream's body is fed to |
//!
//! # Client
//!
//! Two paths, one behaviour (HTTP/1.1 only, keep-alive, idle connections dropped after
//! [`POOL_IDLE_TIMEOUT`] (4 s), `TCP_NODELAY`, no proxy, user agent `barrage/<version>`,
//! no compression, the same headers):
//!
//! - **plain `http://host[:port]/…` URLs** (the load path) go through the worker's own
//!   lean HTTP/1.1 connection ([`h1`]: `httparse` for the response head,
//!   `content-length`, `chunked` and read-until-close bodies, 1xx heads skipped): an
//!   exchange takes an idle connection of this `Http` (most recently used first) or opens
//!   one, and drives it in the VU's own task: no pool task, no channel hop, no spawn, no
//!   header map. A VU is sequential, so a connection serves one exchange at a time; it
//!   goes back to the idle stack only after a complete exchange whose response allows
//!   keep-alive, and is dropped on any error, timeout or hard stop. The idle stack is a
//!   `Mutex<Vec<_>>` (uncontended: the worker is one thread) ordered by last use, so the
//!   ones idle longer than 4 s are cut from its bottom.
//!
//!   New connections leave from the plan's `target.source_addrs` round-robin when it
//!   names any ([`Http::with_sources`]).
//! - **everything else** (`https://`, upper-case schemes, userinfo, fragments) goes
//!   through one [`reqwest::Client`] (rustls, [`tls`]), configured the same way. TLS is rarely the
//!   hot path of a load test against a local runtime; keeping reqwest there keeps its
//!   certificate handling.
//!
//! The request timeout is enforced here, not by the client, so that a timeout and a hard
//! stop are told apart.
//!
//! # What one exchange measures ([`Exchange`])
//!
//! | field | from | to |
//! | --- | --- | --- |
//! | `waiting` (`http_req_waiting`) | the start of the send | the response headers (time to first byte) |
//! | `duration` (`http_req_duration`) | the start of the send | the end of the body (a stream's last byte) |
//! | `sent` (`data_sent`) | request line + headers + body, as written (`name: value\r\n`; `host`, `user-agent`, `accept`, `content-type`, `content-length` included); the reqwest path counts the same headers the same way | |
//! | `received` (`data_received`) | the response head as received (status line and header lines; an informational `1xx` head too) + body bytes (chunked framing not counted); the reqwest path rebuilds the head's size from the canonical reason and `name: value\r\n` per header | |
//!
//! A failed exchange is an [`Exchange`] with `error` set, never an `Err`: the only `Err`
//! is [`Cancelled`], for a hard stop, and then nothing is recorded. The plain-http path
//! looks at the token when an exchange starts; a hard stop while one is in flight drops
//! it, since the VU loop (`crate::vu`) selects on the VU's token around the whole
//! iteration (polling the token on every wake-up of every exchange showed in profiles).
//!
//! # Retry rule (stale keep-alive connections)
//!
//! Servers close idle keep-alive connections after about 5 s (uvicorn 5.0 s, Node ~6 s
//! advertising `Keep-Alive: timeout=5`); idle connections are dropped after 4 s so one the
//! server is closing is rarely reused, and an idle connection whose close has already
//! arrived is noticed (one non-blocking poll) and dropped before it is used. The race is
//! still possible, so an exchange is sent again **once**, whatever its method, only when
//! both hold (what browsers and hyper do):
//! - it went on a **reused idle connection** (never one opened for it), and
//! - it failed **before any byte of the answer** came back: the connection closed (EOF),
//!   or an I/O reset, abort, broken pipe or unexpected EOF.
//!
//! A server that closes an idle connection has not read the request on it, so repeating
//! even a `POST` creates nothing twice; a server that reads a request on a fresh
//! connection and closes without answering may have acted on it, so that request is a
//! failed sample, not sent again. A connect error is not retried either. The discarded
//! attempt is not a sample (debug log only); the retry is measured from its own start and
//! goes on a fresh connection. A second failure is the sample (`status` tag `0`).
//!
//! The TLS path does not retry by itself: it cannot tell a reused connection from a new
//! one, and hyper's pool under reqwest already sends a request again when a reused
//! connection was closed before the request was written.
//!
//! # Cost
//!
//! The inline path exists for CPU per request: hyper's client dispatcher (request
//! channel, want/giver signalling, header maps) was the largest user-space cost, and
//! reqwest's pool task hops more. The measured figures, with their floors, are in
//! `bench/RESULTS.md` (`## worker`).
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use tokio_util::sync::CancellationToken;

mod exchange;
mod h1;
mod limits;
mod recv_buf;
pub mod sse;
mod tls;

pub use exchange::{
    status_str, BodySink, Cancelled, Exchange, Kept, ReqBody, Request, TooLarge, TransportError,
    INLINE_BODY_MAX, USER_AGENT,
};

use h1::{Conn, Failure, Progress};
pub use limits::{raise_and_log, raise_fd_limit, FdLimit};

/// Idle pooled connections are closed after this, before the servers' ~5 s.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// Builds the client of the TLS path ([`tls`]).
pub fn build_client() -> Result<reqwest::Client, reqwest::Error> {
    tls::build_client(POOL_IDLE_TIMEOUT)
}

/// The worker's client with its request timeout.
/// The worker's client with its request timeout.
#[derive(Clone)]
pub struct Http {
    /// For the URLs the inline path does not take (https, …): module docs.
    client: reqwest::Client,
    timeout: Duration,
    /// Idle plain-http connections, oldest first (pushed when an exchange completes).
    idle: Arc<Mutex<Vec<Conn>>>,
    /// Where new plain-http connections leave from (`target.source_addrs`).
    sources: Arc<Sources>,
}

/// Local source addresses, taken round-robin by new connections.
#[derive(Default)]
struct Sources {
    addrs: Box<[IpAddr]>,
    next: AtomicUsize,
}

impl Sources {
    fn next(&self) -> Option<IpAddr> {
        if self.addrs.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.addrs.len();
        Some(self.addrs[i])
    }
}

/// A plain `http://` URL split for the inline path.
struct PlainUrl<'a> {
    authority: &'a str,
    /// Path and query; empty means `/`.
    target: &'a str,
}

/// Splits `http://host[:port][/path][?query]`; `None` for anything the inline path does
/// not take (module docs), which then goes through reqwest.
fn plain_url(url: &str) -> Option<PlainUrl<'_>> {
    let rest = url.strip_prefix("http://")?;
    // Visible ASCII only, and no fragment: the authority and the target go on the wire as
    // written (the `host` header, the request line); anything else is left to reqwest,
    // which encodes or refuses it. One branch-free pass, which the compiler vectorises
    // (a per-byte `all` cost ~1 k instructions per request).
    let clean = rest.bytes().fold(true, |ok, b| {
        ok & (b.wrapping_sub(0x21) < 0x5e) & (b != b'#')
    });
    if !clean {
        return None;
    }
    let end = memchr::memchr2(b'/', b'?', rest.as_bytes()).unwrap_or(rest.len());
    let (authority, target) = rest.split_at(end);
    let ok = !authority.is_empty()
        && !authority.contains('@')
        && (target.is_empty() || target.starts_with('/'));
    ok.then_some(PlainUrl { authority, target })
}

impl Http {
    pub fn new(client: reqwest::Client, timeout: Duration) -> Self {
        Http {
            client,
            timeout,
            idle: Arc::default(),
            sources: Arc::default(),
        }
    }

    /// Spreads the new plain-http connections over `addrs`, round-robin (the plan's
    /// `target.source_addrs`: a source address has about 28,000 ephemeral ports, so tens
    /// of thousands of open streams to one target need several). Empty: the kernel picks.
    pub fn with_sources(mut self, addrs: &[IpAddr]) -> Self {
        self.sources = Arc::new(Sources {
            addrs: addrs.into(),
            next: AtomicUsize::new(0),
        });
        self
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends `req`, streams its body into `sink`, measures it. Retries once on a stale
    /// connection (module docs).
    pub async fn execute(
        &self,
        req: &Request<'_>,
        sink: &mut dyn BodySink,
        cancel: &CancellationToken,
    ) -> Result<Exchange, Cancelled> {
        match plain_url(req.url) {
            Some(url) => self.execute_inline(req, &url, sink, cancel).await,
            None => tls::execute(&self.client, self.timeout, req, sink, cancel).await,
        }
    }

    /// The most recently used idle connection to `authority` that is still open; drops
    /// the ones idle longer than [`POOL_IDLE_TIMEOUT`].
    fn take_idle(&self, authority: &str, now: Instant) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let stale = idle
            .iter()
            .take_while(|c| now.saturating_duration_since(c.idle_since) >= POOL_IDLE_TIMEOUT)
            .count();
        if stale > 0 {
            idle.drain(..stale);
        }
        while let Some(i) = idle.iter().rposition(|c| &*c.authority == authority) {
            let mut conn = idle.remove(i);
            if conn.still_open() {
                return Some(conn);
            }
        }
        None
    }

    /// Back to the idle stack after a complete exchange (a close that arrives meanwhile is
    /// noticed by `take_idle`).
    fn put_idle(&self, mut conn: Conn, now: Instant) {
        conn.idle_since = now;
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(conn);
    }

    /// The lean HTTP/1.1 path ([`h1`], module docs).
    async fn execute_inline(
        &self,
        req: &Request<'_>,
        url: &PlainUrl<'_>,
        sink: &mut dyn BodySink,
        cancel: &CancellationToken,
    ) -> Result<Exchange, Cancelled> {
        let target = if url.target.is_empty() {
            "/"
        } else {
            url.target
        };
        // A hard stop ends an exchange in flight by dropping it (module docs).
        if cancel.is_cancelled() {
            return Err(Cancelled);
        }
        let head_request = *req.method == Method::HEAD;
        let mut retried = false;
        loop {
            let start = Instant::now();
            let deadline = tokio::time::sleep_until((start + self.timeout).into());
            tokio::pin!(deadline);
            let idle = self.take_idle(url.authority, start);
            // Only a reused idle connection may be tried again (module docs).
            let reused = idle.is_some();
            let mut conn = match idle {
                Some(c) => c,
                None => {
                    let opened = tokio::select! {
                        biased;
                        () = &mut deadline => return Ok(Exchange::failed(TransportError::Timeout, start, 0, retried)),
                        c = Conn::open(url.authority, self.sources.next()) => c,
                    };
                    match opened {
                        Ok(c) => c,
                        Err(err) => {
                            tracing::debug!(url = req.url, error = %err, "connect failed");
                            return Ok(Exchange::failed(
                                TransportError::Connect,
                                start,
                                0,
                                retried,
                            ));
                        }
                    }
                }
            };
            conn.write_request(req, target);
            let sent = conn.request_len();
            let mut progress = Progress::default();
            let outcome = tokio::select! {
                biased;
                () = &mut deadline => None,
                r = conn.exchange(req.body.as_ref(), head_request, start, &mut progress, sink) => Some(r),
            };
            let error = match outcome {
                None => Some(TransportError::Timeout),
                Some(Ok(reusable)) => {
                    if reusable {
                        self.put_idle(conn, start + progress.at);
                    }
                    None
                }
                Some(Err(Failure::Stale(err))) if reused && !retried => {
                    tracing::debug!(url = req.url, error = %err, "stale connection; sending again");
                    retried = true;
                    continue;
                }
                Some(Err(err)) => {
                    tracing::debug!(url = req.url, error = %err, "exchange failed");
                    Some(match err {
                        Failure::Body(_) => TransportError::Body,
                        Failure::TooLarge => TransportError::BodyLimit,
                        Failure::Stale(_) | Failure::Send(_) => TransportError::Send,
                    })
                }
            };
            let Some(waiting) = progress.waiting else {
                // No response head: nothing of the answer is reported.
                let kind = error.unwrap_or(TransportError::Send);
                return Ok(Exchange::failed(kind, start, sent, retried));
            };
            // A complete body ended with the read that brought its last bytes.
            let duration = match error {
                None => progress.at,
                Some(_) => start.elapsed(),
            };
            return Ok(Exchange {
                status: progress.status,
                error,
                waiting,
                duration,
                sent,
                received: progress.received,
                retried,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_urls_take_the_inline_path_and_the_rest_goes_to_reqwest() {
        let split = |u| plain_url(u).map(|p| (p.authority, p.target));
        assert_eq!(
            split("http://127.0.0.1:8123/threads/x/state?a=1"),
            Some(("127.0.0.1:8123", "/threads/x/state?a=1"))
        );
        assert_eq!(split("http://[::1]:80"), Some(("[::1]:80", "")));
        assert_eq!(split("http://h?q"), None, "a query needs a path");
        for other in [
            "https://h/x",
            "HTTP://h/x",
            "http://user@h/x",
            "http://h/x#frag",
            "http://h/a b",
            "http://h/caf\u{e9}",
            "http:///x",
            "http://h/\x7f",
        ] {
            assert_eq!(split(other), None, "{other}");
        }
    }
}

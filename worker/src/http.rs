//! The worker's HTTP client and the one request executor that measures every exchange.
//!
//! # Client
//!
//! Two paths, one behaviour (HTTP/1.1 only, keep-alive, idle connections dropped after
//! [`POOL_IDLE_TIMEOUT`] (4 s), `TCP_NODELAY`, no proxy, user agent `barrage/<version>`,
//! no compression, the same headers):
//!
//! - **plain `http://host[:port]/…` URLs** (the load path) go through the worker's own
//!   lean HTTP/1.1 connection (`crate::h1`: `httparse` for the response head,
//!   `content-length`, `chunked` and read-until-close bodies, 1xx heads skipped): an
//!   exchange takes an idle connection of this `Http` (most recently used first) or opens
//!   one, and drives it in the VU's own task: no pool task, no channel hop, no spawn, no
//!   header map. A VU is sequential, so a connection serves one exchange at a time; it
//!   goes back to the idle stack only after a complete exchange whose response allows
//!   keep-alive, and is dropped on any error, timeout or hard stop. The idle stack is a
//!   `Mutex<Vec<_>>` (uncontended: the worker is one thread) ordered by last use, so the
//!   ones idle longer than 4 s are cut from its bottom.
//! - **everything else** (`https://`, upper-case schemes, userinfo, fragments) goes
//!   through one [`reqwest::Client`] (rustls), configured the same way. TLS is rarely the
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
//! still possible, so an exchange is sent again **once**, whatever its method, when the
//! first attempt failed **before any response byte** with one of:
//! - a connect error (`reqwest::Error::is_connect`, or opening the TCP connection);
//! - the connection closed (EOF) before any response byte; on the reqwest path, hyper's
//!   "connection closed before message completed" (`is_incomplete_message`) or "request
//!   canceled" (the connection died while the request was queued on it);
//! - an I/O reset, abort, broken pipe or unexpected EOF.
//!
//! A server that closes an idle connection has not read the request on it, so repeating
//! even a `POST` creates nothing twice. The discarded attempt is not a sample (debug log
//! only); the retry is measured from its own start. A second failure is the sample
//! (`status` tag `0`). A server that dies mid-request is not helped by this: the retry
//! fails to connect and counts.
//!
//! # Cost
//!
//! Worker CPU (user + kernel) per agent-flow request, release build, loopback, 2-core
//! KVM guest, `bench/worker/bench.py` (same run, same target): ~67 µs with reqwest for
//! every URL (reqwest's pool/dispatch task hops); ~48 µs with hyper's
//! `client::conn::http1` driven inline; ~39 µs once samples were recorded by series id
//! and mimalloc came in; ~28–31 µs with `crate::h1` in place of hyper, whose dispatcher
//! (request channel, want/giver signalling, header maps) was ~30 % of user space. k6
//! spends 176–195 µs. A request costs one `write` and about one `recvfrom`; more than half
//! of the worker's CPU is now the kernel's loopback TCP path (a loopback send also runs
//! the target's receive path) (bench/RESULTS.md, `## worker`).
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, Url};
use tokio_util::sync::CancellationToken;

use crate::h1::{Conn, Failure, Progress};

/// Idle pooled connections are closed after this, before the servers' ~5 s.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// `barrage/<version>`.
pub const USER_AGENT: &str = concat!("barrage/", env!("CARGO_PKG_VERSION"));

/// Builds the worker's client.
pub fn build_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .http1_only()
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .tcp_nodelay(true)
        .no_proxy()
        .user_agent(USER_AGENT)
        .build()
}

/// One request to send.
pub struct Request<'a> {
    pub method: &'a Method,
    /// Absolute URL, already percent-encoded.
    pub url: &'a str,
    /// JSON body (sent with `content-type: application/json`).
    pub body: Option<Bytes>,
    /// `Authorization` header value (`Bearer …`).
    pub auth: Option<&'a HeaderValue>,
    /// `Accept` header; reqwest sends `*/*` when `None`.
    pub accept: Option<&'static str>,
    /// Further headers (GoTrue's `apikey`).
    pub extra: &'a [(&'static str, &'a HeaderValue)],
}

/// Receives the response body as it arrives.
pub trait BodySink {
    /// A chunk of the body; `since_start` is measured from the start of the send.
    fn chunk(&mut self, bytes: &[u8], since_start: Duration);
    /// The body ended (not called when reading it failed).
    fn end(&mut self, since_start: Duration);
}

/// Collects the body into a reusable buffer.
impl BodySink for Vec<u8> {
    fn chunk(&mut self, bytes: &[u8], _: Duration) {
        self.extend_from_slice(bytes);
    }
    fn end(&mut self, _: Duration) {}
}

/// Why an exchange failed below HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportError {
    /// The URL did not parse.
    BadUrl,
    /// No connection (refused, unreachable, DNS).
    Connect,
    /// The request failed after connecting, before a response.
    Send,
    /// The body broke off after the headers.
    Body,
    /// The request timeout passed (headers or body).
    Timeout,
}

impl TransportError {
    pub fn as_str(self) -> &'static str {
        match self {
            TransportError::BadUrl => "bad URL",
            TransportError::Connect => "connection failed",
            TransportError::Send => "request failed before a response",
            TransportError::Body => "response body broke off",
            TransportError::Timeout => "request timeout",
        }
    }
}

/// What one exchange did and took.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    /// The response status; `0` when there was none.
    pub status: u16,
    /// Set when the exchange failed below HTTP; then the sample's status is `0` even if
    /// headers had arrived (`status` keeps what came, for the failure's reason).
    pub error: Option<TransportError>,
    pub waiting: Duration,
    pub duration: Duration,
    pub sent: u64,
    pub received: u64,
    /// The first attempt failed on a stale connection and was sent again.
    pub retried: bool,
}

impl Exchange {
    /// The status to tag samples with: `0` on transport errors.
    pub fn tag_status(&self) -> u16 {
        if self.error.is_some() {
            0
        } else {
            self.status
        }
    }

    pub fn is_2xx(&self) -> bool {
        self.error.is_none() && (200..300).contains(&self.status)
    }
}

/// A hard stop cut the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

/// The worker's client with its request timeout.
#[derive(Clone)]
pub struct Http {
    /// For the URLs the inline path does not take (https, …): module docs.
    client: reqwest::Client,
    timeout: Duration,
    /// Idle plain-http connections, oldest first (pushed when an exchange completes).
    idle: Arc<Mutex<Vec<Conn>>>,
}

const JSON: HeaderValue = HeaderValue::from_static("application/json");

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
        }
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
            None => self.execute_reqwest(req, sink, cancel).await,
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

    /// The lean HTTP/1.1 path (`crate::h1`, module docs).
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
            let mut conn = match self.take_idle(url.authority, start) {
                Some(c) => c,
                None => {
                    let opened = tokio::select! {
                        biased;
                        () = &mut deadline => return Ok(failed(TransportError::Timeout, start, 0, retried)),
                        c = Conn::open(url.authority) => c,
                    };
                    match opened {
                        Ok(c) => c,
                        Err(err) => {
                            if !retried {
                                tracing::debug!(url = req.url, error = %err, "connect failed; trying again");
                                retried = true;
                                continue;
                            }
                            tracing::debug!(url = req.url, error = %err, "connect failed");
                            return Ok(failed(TransportError::Connect, start, 0, retried));
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
                r = conn.exchange(head_request, start, &mut progress, sink) => Some(r),
            };
            let error = match outcome {
                None => Some(TransportError::Timeout),
                Some(Ok(reusable)) => {
                    if reusable {
                        self.put_idle(conn, start + progress.at);
                    }
                    None
                }
                Some(Err(Failure::Stale(err))) if !retried => {
                    tracing::debug!(url = req.url, error = %err, "stale connection; sending again");
                    retried = true;
                    continue;
                }
                Some(Err(err)) => {
                    tracing::debug!(url = req.url, error = %err, "exchange failed");
                    Some(match err {
                        Failure::Body(_) => TransportError::Body,
                        Failure::Stale(_) | Failure::Send(_) => TransportError::Send,
                    })
                }
            };
            let Some(waiting) = progress.waiting else {
                // No response head: nothing of the answer is reported.
                let kind = error.unwrap_or(TransportError::Send);
                return Ok(failed(kind, start, sent, retried));
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

    /// The reqwest path (module docs).
    async fn execute_reqwest(
        &self,
        req: &Request<'_>,
        sink: &mut dyn BodySink,
        cancel: &CancellationToken,
    ) -> Result<Exchange, Cancelled> {
        let cancelled = cancel.cancelled();
        tokio::pin!(cancelled);
        let mut retried = false;
        loop {
            let start = Instant::now();
            let Ok(url) = Url::parse(req.url) else {
                return Ok(failed(TransportError::BadUrl, start, 0, retried));
            };
            let sent = request_bytes(req, &url);
            let deadline = tokio::time::sleep(self.timeout);
            tokio::pin!(deadline);
            let mut builder = self.client.request(req.method.clone(), url);
            if let Some(auth) = req.auth {
                builder = builder.header(AUTHORIZATION, auth.clone());
            }
            if let Some(accept) = req.accept {
                builder = builder.header(ACCEPT, HeaderValue::from_static(accept));
            }
            for (name, value) in req.extra {
                builder = builder.header(*name, (*value).clone());
            }
            if let Some(body) = &req.body {
                builder = builder.header(CONTENT_TYPE, JSON).body(body.clone());
            }
            let answer = tokio::select! {
                biased;
                () = &mut cancelled => return Err(Cancelled),
                () = &mut deadline => return Ok(failed(TransportError::Timeout, start, sent, retried)),
                r = builder.send() => r,
            };
            let mut response = match answer {
                Ok(r) => r,
                Err(err) => {
                    if !retried && stale_connection(&err) {
                        tracing::debug!(url = req.url, error = %err, "stale connection; sending again");
                        retried = true;
                        continue;
                    }
                    let kind = if err.is_connect() {
                        TransportError::Connect
                    } else {
                        TransportError::Send
                    };
                    tracing::debug!(url = req.url, error = %err, "request failed");
                    let sent = if kind == TransportError::Connect {
                        0
                    } else {
                        sent
                    };
                    return Ok(failed(kind, start, sent, retried));
                }
            };
            let waiting = start.elapsed();
            let status = response.status().as_u16();
            let mut received = head_bytes(response.status(), response.headers());
            let error = loop {
                let next = tokio::select! {
                    biased;
                    () = &mut cancelled => return Err(Cancelled),
                    () = &mut deadline => break Some(TransportError::Timeout),
                    c = response.chunk() => c,
                };
                match next {
                    Ok(Some(chunk)) => {
                        received += chunk.len() as u64;
                        sink.chunk(&chunk, start.elapsed());
                    }
                    Ok(None) => {
                        sink.end(start.elapsed());
                        break None;
                    }
                    Err(err) => {
                        tracing::debug!(url = req.url, error = %err, "response body failed");
                        break Some(TransportError::Body);
                    }
                }
            };
            return Ok(Exchange {
                status,
                error,
                waiting,
                duration: start.elapsed(),
                sent,
                received,
                retried,
            });
        }
    }
}

/// The I/O errors of a connection the server had already closed: reset, abort, broken
/// pipe, unexpected EOF (the retry rule; `crate::h1` uses it too).
pub(crate) fn stale_io(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        kind,
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
    )
}

fn failed(kind: TransportError, start: Instant, sent: u64, retried: bool) -> Exchange {
    let d = start.elapsed();
    Exchange {
        status: 0,
        error: Some(kind),
        waiting: d,
        duration: d,
        sent,
        received: 0,
        retried,
    }
}

/// True when `err` is a failure before any response on a connection that was not usable:
/// see the module's retry rule.
pub fn stale_connection(err: &reqwest::Error) -> bool {
    if err.is_connect() {
        return true;
    }
    if !err.is_request() {
        return false;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(e) = source {
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() || h.is_canceled() {
                return true;
            }
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if stale_io(io.kind()) {
                return true;
            }
        }
        source = e.source();
    }
    false
}

/// `name: value\r\n`
fn header_len(name: &str, value_len: usize) -> u64 {
    (name.len() + 2 + value_len + 2) as u64
}

/// Request line + headers + body, as the inline path would write them
/// (`crate::h1::encode_request`): one definition of the request on the wire for both paths.
fn request_bytes(req: &Request<'_>, url: &Url) -> u64 {
    let mut target = url.path().to_owned();
    if let Some(q) = url.query() {
        target.push('?');
        target.push_str(q);
    }
    let host = url.host_str().unwrap_or_default();
    let host = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let mut wire = Vec::new();
    crate::h1::encode_request(&mut wire, req, &target, &host);
    wire.len() as u64
}

/// Status line + headers.
fn head_bytes(status: reqwest::StatusCode, headers: &reqwest::header::HeaderMap) -> u64 {
    let reason = status.canonical_reason().map_or(0, str::len);
    // HTTP/1.1 SP 200 SP reason CRLF
    let mut n = (9 + 3 + 1 + reason + 2) as u64;
    for (name, value) in headers {
        n += header_len(name.as_str(), value.len());
    }
    n + 2
}

/// `200` → `"200"` without allocating: the three digits of a status (0 → `"0"`).
pub fn status_str(status: u16, buf: &mut [u8; 3]) -> &str {
    if status == 0 || status > 999 {
        return "0";
    }
    buf[0] = b'0' + (status / 100) as u8;
    buf[1] = b'0' + (status / 10 % 10) as u8;
    buf[2] = b'0' + (status % 10) as u8;
    std::str::from_utf8(buf).unwrap_or("0")
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

    #[test]
    fn status_strings() {
        let mut b = [0; 3];
        assert_eq!(status_str(200, &mut b), "200");
        assert_eq!(status_str(0, &mut b), "0");
        assert_eq!(status_str(404, &mut b), "404");
        assert_eq!(status_str(1000, &mut b), "0");
    }

    #[test]
    fn request_bytes_count_line_headers_and_body() {
        let auth = HeaderValue::from_static("Bearer abc");
        let req = Request {
            method: &Method::POST,
            url: "http://127.0.0.1:9001/threads?x=1",
            body: Some(Bytes::from_static(b"{}")),
            auth: Some(&auth),
            accept: None,
            extra: &[],
        };
        let url = Url::parse(req.url).unwrap();
        let mut wire = Vec::new();
        crate::h1::encode_request(&mut wire, &req, "/threads?x=1", "127.0.0.1:9001");
        let text = String::from_utf8(wire.clone()).unwrap();
        assert!(
            text.starts_with("POST /threads?x=1 HTTP/1.1\r\nhost: 127.0.0.1:9001\r\n"),
            "{text}"
        );
        assert!(text.ends_with("content-length: 2\r\n\r\n{}"), "{text}");
        assert_eq!(
            wire.len() as u64,
            request_bytes(&req, &url),
            "both paths count alike"
        );
        let want = "POST /threads?x=1 HTTP/1.1\r\n".len()
            + "host: 127.0.0.1:9001\r\n".len()
            + format!("user-agent: {USER_AGENT}\r\n").len()
            + "accept: */*\r\n".len()
            + "authorization: Bearer abc\r\n".len()
            + "content-type: application/json\r\n".len()
            + "content-length: 2\r\n".len()
            + 2
            + 2;
        assert_eq!(request_bytes(&req, &url), want as u64);
        // a five-digit port, no body
        let get = Request {
            method: &Method::GET,
            url: "http://h:65535",
            body: None,
            ..req
        };
        let want = "GET / HTTP/1.1\r\n".len()
            + "host: h:65535\r\n".len()
            + format!("user-agent: {USER_AGENT}\r\n").len()
            + "accept: */*\r\n".len()
            + "authorization: Bearer abc\r\n".len()
            + 2;
        assert_eq!(
            request_bytes(&get, &Url::parse(get.url).unwrap()),
            want as u64
        );
    }
}

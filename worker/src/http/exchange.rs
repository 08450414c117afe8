//! What one exchange is, whichever path carries it: the [`Request`] to send, the
//! [`BodySink`] its answer streams into, the [`Exchange`] measured, and the request's one
//! form on the wire ([`encode_request`]), which both paths count the same way.
use std::time::{Duration, Instant};

use reqwest::header::HeaderValue;
use reqwest::Method;

/// `barrage/<version>`.
pub const USER_AGENT: &str = concat!("barrage/", env!("CARGO_PKG_VERSION"));

/// One request to send.
pub struct Request<'a> {
    pub method: &'a Method,
    /// Absolute URL, already percent-encoded.
    pub url: &'a str,
    /// JSON body (sent with `content-type: application/json`).
    pub body: Option<ReqBody<'a>>,
    /// `Authorization` header value (`Bearer …`).
    pub auth: Option<&'a HeaderValue>,
    /// `Accept` header; reqwest sends `*/*` when `None`.
    pub accept: Option<&'static str>,
    /// Further headers (GoTrue's `apikey`).
    pub extra: &'a [(&'static str, &'a HeaderValue)],
}

/// A request's body, borrowed from where it was made: one buffer, or pieces sent in order
/// as one body (a flow's large fixed text and the values rendered between its parts), each
/// from where it is.
#[derive(Debug, Clone, Copy)]
pub enum ReqBody<'a> {
    One(&'a [u8]),
    Pieces(&'a [&'a [u8]]),
}

impl<'a> ReqBody<'a> {
    /// No bytes (still sent, with `content-length: 0`).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.pieces().iter().map(|p| p.len()).sum()
    }

    /// Its buffers, in order.
    pub fn pieces(&self) -> &[&'a [u8]] {
        match self {
            ReqBody::One(b) => std::slice::from_ref(b),
            ReqBody::Pieces(p) => p,
        }
    }
}

/// A body up to this size is copied after the request's head and sent with it in one
/// `write`; a larger one is sent from where it is, after the head (a vectored write):
/// copying a 100 KB prompt per request would cost what sending it does.
pub const INLINE_BODY_MAX: usize = 16 * 1024;

/// A sink refused more of the body (an SSE line or event over the limit): the exchange
/// ends there, as [`TransportError::BodyLimit`], and its connection is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge;

/// Receives the response body as it arrives.
pub trait BodySink {
    /// A chunk of the body; `since_start` is measured from the start of the send.
    /// `Err(TooLarge)` stops reading the body.
    fn chunk(&mut self, bytes: &[u8], since_start: Duration) -> Result<(), TooLarge>;
    /// The body ended (not called when reading it failed).
    fn end(&mut self, since_start: Duration);
}

/// Collects the whole body, without a bound: for tests and answers from trusted places
/// only; the flow keeps bodies with [`Kept`].
impl BodySink for Vec<u8> {
    fn chunk(&mut self, bytes: &[u8], _: Duration) -> Result<(), TooLarge> {
        self.extend_from_slice(bytes);
        Ok(())
    }
    fn end(&mut self, _: Duration) {}
}

/// Keeps the first `limit` bytes of a body in `buf` and drops the rest as it streams
/// (it is still read, and counted in `received`); `overflow` says whether anything was
/// dropped. Memory per exchange stays at `limit` whatever the target sends.
pub struct Kept<'a> {
    pub buf: &'a mut Vec<u8>,
    pub limit: usize,
    pub overflow: bool,
}

impl<'a> Kept<'a> {
    pub fn new(buf: &'a mut Vec<u8>, limit: usize) -> Self {
        Kept {
            buf,
            limit,
            overflow: false,
        }
    }
}

/// [`Kept`]'s first growth step.
const GROW_STEP: usize = 64 * 1024;

impl BodySink for Kept<'_> {
    fn chunk(&mut self, bytes: &[u8], _: Duration) -> Result<(), TooLarge> {
        let room = self.limit.saturating_sub(self.buf.len());
        let take = bytes.len().min(room);
        let spare = self.buf.capacity() - self.buf.len();
        if take > spare {
            // Two steps (64 KiB, then the limit), never past the limit: the allocator
            // keeps what a doubling sequence frees, several times the buffer itself.
            let step = if self.buf.len() + take <= GROW_STEP {
                GROW_STEP
            } else {
                self.limit
            };
            let want = step.max(self.buf.len() + take).min(self.limit);
            self.buf.reserve_exact(want - self.buf.len());
        }
        self.buf.extend_from_slice(&bytes[..take]);
        self.overflow |= take < bytes.len();
        Ok(())
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
    /// The body held an SSE line or event longer than `flow.response_body_limit`.
    BodyLimit,
    /// A hard stop (the end of the run's stop time) cut the request.
    Interrupted,
}

impl TransportError {
    pub fn as_str(self) -> &'static str {
        match self {
            TransportError::BadUrl => "bad URL",
            TransportError::Connect => "connection failed",
            TransportError::Send => "request failed before a response",
            TransportError::Body => "response body broke off",
            TransportError::Timeout => "request timeout",
            TransportError::BodyLimit => {
                "an SSE line or event is longer than flow.response_body_limit (raise it if the target's are legitimate)"
            }
            TransportError::Interrupted => "interrupted by the hard stop",
        }
    }

    /// The `error` tag of the request's samples (k6 tags failed requests with `error`).
    pub fn tag(self) -> &'static str {
        match self {
            TransportError::BadUrl => "bad_url",
            TransportError::Connect => "connect",
            TransportError::Send => "send",
            TransportError::Body => "body",
            TransportError::Timeout => "timeout",
            TransportError::BodyLimit => "body_limit",
            TransportError::Interrupted => "interrupted",
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

impl Exchange {
    /// A failed exchange without a response, measured from `start`.
    pub(crate) fn failed(
        kind: TransportError,
        start: Instant,
        sent: u64,
        retried: bool,
    ) -> Exchange {
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
}

/// The I/O errors of a connection the server had already closed: reset, abort, broken
/// pipe, unexpected EOF (the retry rule in [`super`]).
pub(crate) fn stale_io(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        kind,
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
    )
}

/// The request as it goes on the wire, into `w`: the same headers, in the same order and
/// spelling, as the reqwest path sends (`super::tls` counts them with it). `true` when `w`
/// holds the whole request; `false` when the body ([`INLINE_BODY_MAX`] and longer) is to
/// be sent after `w`, from where it is.
pub(crate) fn encode_request(w: &mut Vec<u8>, req: &Request<'_>, target: &str, host: &str) -> bool {
    w.clear();
    w.extend_from_slice(req.method.as_str().as_bytes());
    w.push(b' ');
    w.extend_from_slice(target.as_bytes());
    w.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    w.extend_from_slice(host.as_bytes());
    w.extend_from_slice(b"\r\nuser-agent: ");
    w.extend_from_slice(USER_AGENT.as_bytes());
    w.extend_from_slice(b"\r\naccept: ");
    w.extend_from_slice(req.accept.unwrap_or("*/*").as_bytes());
    w.extend_from_slice(b"\r\n");
    if let Some(auth) = req.auth {
        w.extend_from_slice(b"authorization: ");
        w.extend_from_slice(auth.as_bytes());
        w.extend_from_slice(b"\r\n");
    }
    for (name, value) in req.extra {
        w.extend_from_slice(name.as_bytes());
        w.extend_from_slice(b": ");
        w.extend_from_slice(value.as_bytes());
        w.extend_from_slice(b"\r\n");
    }
    let Some(body) = &req.body else {
        w.extend_from_slice(b"\r\n");
        return true;
    };
    let len = body.len();
    w.extend_from_slice(b"content-type: application/json\r\ncontent-length: ");
    w.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
    w.extend_from_slice(b"\r\n\r\n");
    if len > INLINE_BODY_MAX {
        return false;
    }
    for piece in body.pieces() {
        w.extend_from_slice(piece);
    }
    true
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
    fn kept_keeps_the_limit_and_counts_the_overflow() {
        let mut buf = Vec::new();
        let mut k = Kept::new(&mut buf, 100_000);
        for _ in 0..50 {
            k.chunk(&[b'x'; 10_000], Duration::ZERO).unwrap();
        }
        assert!(k.overflow);
        assert_eq!(buf.len(), 100_000);
        assert!(buf.capacity() <= 100_000, "{}", buf.capacity());
        let mut small = Vec::new();
        let mut k = Kept::new(&mut small, 100_000);
        k.chunk(b"{}", Duration::ZERO).unwrap();
        assert!(!k.overflow);
        assert_eq!(small, b"{}");
    }

    #[test]
    fn status_strings() {
        let mut b = [0; 3];
        assert_eq!(status_str(200, &mut b), "200");
        assert_eq!(status_str(0, &mut b), "0");
        assert_eq!(status_str(1000, &mut b), "0");
    }
}

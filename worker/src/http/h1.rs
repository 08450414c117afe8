//! One keep-alive HTTP/1.1 client connection for plain `http://` URLs: the worker's load
//! path (see [`super`] for the client's behaviour, its measurements and retry rule).
//!
//! A VU is sequential, so a connection carries one exchange at a time and is driven by
//! the VU's own task: the request is written with one `write` (a body over
//! [`super::INLINE_BODY_MAX`] follows its head in vectored writes, not copied), the response head is
//! parsed with `httparse` (the parser hyper uses) straight from the connection's read
//! buffer, and the body (`content-length`, `chunked`, or until close) is handed to the
//! [`BodySink`] as it arrives, de-chunked. No connection task, no channel, no header map
//! is built: after the kernel's share (~half of the worker's CPU), hyper's client
//! dispatcher was the largest user-space cost per request.
//!
//! A read always leaves spare room in the buffer, so a read that drains the socket comes
//! back short and tokio clears the socket's readiness without a second `recvfrom` that
//! would return `EAGAIN`: an exchange on a warm connection is one `write` and usually one
//! `recvfrom`. [`Conn::still_open`] asks tokio for the readiness it already has (no system
//! call) to notice a close that arrived while the connection was idle.
use std::io::{self, ErrorKind, IoSlice};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use std::net::{IpAddr, SocketAddr};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{lookup_host, TcpSocket, TcpStream};

use super::exchange::{encode_request, stale_io, BodySink, ReqBody, Request, TooLarge};
use super::recv_buf::RecvBuf;

/// A response head larger than this is refused (hyper's default limit is ~400 KiB of
/// buffer; Agent Protocol heads are a few hundred bytes).
const MAX_HEAD: usize = 64 * 1024;
/// Header slots for one response head.
const MAX_HEADERS: usize = 100;
/// Room free in the read buffer for a read (the buffer is allocated by the read that
/// needs it and freed once consumed: [`RecvBuf`]).
const READ_ROOM: usize = 16 * 1024;
/// A body (or chunk) known to have more than [`READ_ROOM`] bytes still to come is read
/// with room for what is left, up to this: each `recvfrom` of a large answer costs a
/// system call and a window update that the peer's stack processes on the reader's core
/// (on loopback), so a 1 MB answer read 16 KiB at a time paid for 64 of each. Only bytes
/// the body is known to hold are asked for, so the buffer is consumed and freed by the
/// same exchange and no idle connection keeps a large one.
const READ_ROOM_MAX: usize = 256 * 1024;
/// The request buffer's first allocation (a request head is a few hundred bytes).
const WBUF_START: usize = 1024;
/// A chunk-size line or a trailer line longer than this is refused.
const MAX_LINE: usize = 4 * 1024;

/// One connection (module docs).
pub(crate) struct Conn {
    /// `host[:port]` as written in URLs: the idle stack is searched by it.
    pub authority: Box<str>,
    /// The `host` header (`authority` without a default `:80`).
    host: Box<str>,
    stream: TcpStream,
    /// Received and not yet consumed; no memory while empty ([`RecvBuf`]).
    rbuf: RecvBuf,
    /// The request being sent: its head, and its body unless that is large. Freed once
    /// written (a stream then holds no copy of its request).
    wbuf: Vec<u8>,
    /// The body is to be sent after `wbuf`, from where it is ([`encode_request`]).
    body_after: usize,
    /// When it went back to the idle stack.
    pub idle_since: Instant,
}

/// What one exchange got so far; kept outside the exchange's future so that a timeout,
/// which drops that future, still knows what had arrived.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// The final response's status (0 until its head is complete).
    pub status: u16,
    /// Time to the final response head, once it is complete.
    pub waiting: Option<Duration>,
    /// Head bytes as received (status line and header lines, informational heads
    /// included) plus body bytes (without chunked framing).
    pub received: u64,
    /// When the last read returned, since the start: the time the bytes it brought
    /// arrived (one clock read per read, shared by the head, the body chunks and the end).
    pub at: Duration,
}

/// How an exchange failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Before any response byte, the way a connection the server had closed fails: the
    /// retry rule's case.
    Stale(io::Error),
    /// Any other failure before the response head was complete (a malformed head, a
    /// close in the middle of it, a write error).
    Send(io::Error),
    /// The body broke off or was malformed.
    Body(io::Error),
    /// The sink refused more of the body ([`TooLarge`]).
    TooLarge,
}

/// Why reading a body stopped early.
#[derive(Debug)]
enum BodyError {
    Io(io::Error),
    TooLarge,
}

impl From<io::Error> for BodyError {
    fn from(e: io::Error) -> Self {
        BodyError::Io(e)
    }
}

impl From<TooLarge> for BodyError {
    fn from(_: TooLarge) -> Self {
        BodyError::TooLarge
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Stale(e) => write!(f, "connection closed before a response: {e}"),
            Failure::Send(e) => write!(f, "request failed: {e}"),
            Failure::Body(e) => write!(f, "response body failed: {e}"),
            Failure::TooLarge => write!(f, "the body's reader refused more of it"),
        }
    }
}

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, msg)
}

/// How the body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    /// Until the server closes the connection.
    Close,
}

/// What the response head says about the body and the connection.
struct Head {
    status: u16,
    framing: Framing,
    keep_alive: bool,
}

/// What a complete response head says about its body and its connection.
fn read_head(resp: &httparse::Response<'_, '_>, head_request: bool) -> io::Result<Head> {
    let status = resp.code.unwrap_or(0);
    let http11 = resp.version == Some(1);
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut close = !http11;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| invalid("invalid content-length"))?;
            if length.is_some_and(|l| l != v) {
                return Err(invalid("conflicting content-length headers"));
            }
            length = Some(v);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Only the last coding decides: we never ask for compression.
            chunked = h
                .value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && !http11 {
                    close = false;
                }
            }
        }
    }
    let framing = if head_request || status == 204 || status == 304 {
        Framing::Length(0)
    } else if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::Close
    };
    Ok(Head {
        status,
        framing,
        keep_alive: !close && framing != Framing::Close,
    })
}

/// Connects to the first of `to` in `src`'s address family, from `src` (the kernel picks
/// the port: each source address has its own ephemeral range).
async fn connect_from(src: IpAddr, to: impl Iterator<Item = SocketAddr>) -> io::Result<TcpStream> {
    let mut to = to;
    let dst = to.find(|a| a.is_ipv4() == src.is_ipv4()).ok_or_else(|| {
        io::Error::new(
            ErrorKind::InvalidInput,
            format!("the target has no address in the family of source address {src}"),
        )
    })?;
    let socket = if src.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(src, 0))?;
    socket.connect(dst).await
}

impl Conn {
    /// Opens a connection to `authority` (`host[:port]`, port 80 by default), from
    /// `source` when given (the plan's `target.source_addrs`).
    pub async fn open(authority: &str, source: Option<IpAddr>) -> io::Result<Conn> {
        let has_port = !authority.ends_with(']') && authority.contains(':');
        let host = authority.trim_start_matches('[').trim_end_matches(']');
        let stream = match (source, has_port) {
            (None, true) => TcpStream::connect(authority).await?,
            (None, false) => TcpStream::connect((host, 80)).await?,
            (Some(src), true) => connect_from(src, lookup_host(authority).await?).await?,
            (Some(src), false) => connect_from(src, lookup_host((host, 80)).await?).await?,
        };
        stream.set_nodelay(true)?;
        let host = authority.strip_suffix(":80").unwrap_or(authority);
        Ok(Conn {
            authority: authority.into(),
            host: host.into(),
            stream,
            rbuf: RecvBuf::default(),
            wbuf: Vec::new(),
            body_after: 0,
            idle_since: Instant::now(),
        })
    }

    /// True unless a close (or stray bytes) arrived while the connection was idle. Asks
    /// tokio for the readiness it already has: no system call unless the socket turned
    /// readable, which an idle keep-alive connection does only when the server closes it.
    pub fn still_open(&mut self) -> bool {
        if !self.rbuf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            // Readable: EOF, stray bytes or an error; or a stale readiness, which the
            // `WouldBlock` clears.
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == ErrorKind::WouldBlock)
            }
        }
    }

    /// Prepares `req` for [`Conn::exchange`] ([`encode_request`]).
    pub fn write_request(&mut self, req: &Request<'_>, target: &str) {
        if self.wbuf.capacity() == 0 {
            self.wbuf.reserve(WBUF_START);
        }
        let whole = encode_request(&mut self.wbuf, req, target, &self.host);
        self.body_after = match (&req.body, whole) {
            (Some(body), false) => body.len(),
            _ => 0,
        };
    }

    /// Bytes of the request [`Conn::write_request`] prepared.
    pub fn request_len(&self) -> u64 {
        (self.wbuf.len() + self.body_after) as u64
    }

    /// Writes the prepared request: `wbuf`, then `body`'s pieces when they were not
    /// copied into it, with vectored writes (no copy of a large body in user space).
    async fn send(&mut self, body: Option<&ReqBody<'_>>) -> io::Result<()> {
        let sent = self.send_prepared(body).await;
        self.wbuf = Vec::new();
        sent
    }

    async fn send_prepared(&mut self, body: Option<&ReqBody<'_>>) -> io::Result<()> {
        let Some(body) = body.filter(|_| self.body_after > 0) else {
            return self.stream.write_all(&self.wbuf).await;
        };
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(1 + body.pieces().len());
        slices.push(IoSlice::new(&self.wbuf));
        slices.extend(body.pieces().iter().map(|p| IoSlice::new(p)));
        let mut rest = &mut slices[..];
        IoSlice::advance_slices(&mut rest, 0);
        while !rest.is_empty() {
            let n = self.stream.write_vectored(rest).await?;
            if n == 0 {
                return Err(ErrorKind::WriteZero.into());
            }
            IoSlice::advance_slices(&mut rest, n);
        }
        Ok(())
    }

    /// Reads more into the buffer, with room for at least `room` bytes (clamped to
    /// [`READ_ROOM`]..=[`READ_ROOM_MAX`]; callers ask one byte more than they expect, so
    /// that the read that drains the socket comes back short); `Ok(0)` at EOF. Sets `p.at`.
    async fn read_more(
        &mut self,
        start: Instant,
        p: &mut Progress,
        room: u64,
    ) -> io::Result<usize> {
        let room = room.clamp(READ_ROOM as u64, READ_ROOM_MAX as u64) as usize;
        // Waits for readiness without a buffer: a stream between two events holds none
        // ([`RecvBuf`]). Then `read_buf` reads at once (and clears the readiness after a
        // short read, so a drained socket costs no extra `recvfrom`).
        let n = match self.stream.readable().await {
            Ok(()) => self.stream.read_buf(self.rbuf.spare(room)).await,
            Err(e) => Err(e),
        };
        p.at = start.elapsed();
        n
    }

    /// Sends the prepared request and reads the response into `sink`, filling `p` as it
    /// goes. `Ok(true)` when the connection may carry another exchange.
    pub async fn exchange(
        &mut self,
        body: Option<&ReqBody<'_>>,
        head_request: bool,
        start: Instant,
        p: &mut Progress,
        sink: &mut dyn BodySink,
    ) -> Result<bool, Failure> {
        if let Err(e) = self.send(body).await {
            return Err(if stale_io(e.kind()) {
                Failure::Stale(e)
            } else {
                Failure::Send(e)
            });
        }
        let head = self.read_response_head(head_request, start, p).await?;
        let complete = match head.framing {
            Framing::Length(n) => self.body_length(n, start, p, sink).await,
            Framing::Chunked => self.body_chunked(start, p, sink).await,
            Framing::Close => self.body_until_close(start, p, sink).await,
        };
        complete.map_err(|e| match e {
            BodyError::Io(e) => Failure::Body(e),
            BodyError::TooLarge => Failure::TooLarge,
        })?;
        sink.end(p.at);
        Ok(head.keep_alive && self.rbuf.is_empty())
    }

    /// Reads up to the final (non-1xx) response head.
    async fn read_response_head(
        &mut self,
        head_request: bool,
        start: Instant,
        p: &mut Progress,
    ) -> Result<Head, Failure> {
        let mut any_byte = false;
        loop {
            if !self.rbuf.is_empty() {
                let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut resp = httparse::Response::new(&mut slots);
                match resp.parse(&self.rbuf) {
                    Ok(httparse::Status::Complete(len)) => {
                        let head = read_head(&resp, head_request).map_err(Failure::Send)?;
                        self.rbuf.advance(len);
                        p.received += len as u64;
                        // 1xx (100 Continue, 103 Early Hints): another head follows.
                        if (100..200).contains(&head.status) && head.status != 101 {
                            continue;
                        }
                        p.status = head.status;
                        p.waiting = Some(p.at);
                        return Ok(head);
                    }
                    Ok(httparse::Status::Partial) if self.rbuf.len() > MAX_HEAD => {
                        return Err(Failure::Send(invalid("response head too large")));
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(e) => return Err(Failure::Send(io::Error::new(ErrorKind::InvalidData, e))),
                }
            }
            match self.read_more(start, p, 0).await {
                Ok(0) if !any_byte => {
                    return Err(Failure::Stale(ErrorKind::UnexpectedEof.into()));
                }
                Ok(0) => return Err(Failure::Send(invalid("closed in the response head"))),
                Ok(_) => any_byte = true,
                Err(e) if !any_byte && stale_io(e.kind()) => return Err(Failure::Stale(e)),
                Err(e) => return Err(Failure::Send(e)),
            }
        }
    }

    /// Hands `n` buffered bytes to the sink.
    fn deliver(
        &mut self,
        n: usize,
        p: &mut Progress,
        sink: &mut dyn BodySink,
    ) -> Result<(), TooLarge> {
        if n > 0 {
            p.received += n as u64;
            let taken = sink.chunk(&self.rbuf[..n], p.at);
            self.rbuf.advance(n);
            taken?;
        }
        Ok(())
    }

    async fn body_length(
        &mut self,
        mut left: u64,
        start: Instant,
        p: &mut Progress,
        sink: &mut dyn BodySink,
    ) -> Result<(), BodyError> {
        loop {
            let n = left.min(self.rbuf.len() as u64) as usize;
            self.deliver(n, p, sink)?;
            left -= n as u64;
            if left == 0 {
                return Ok(());
            }
            if self.read_more(start, p, left.saturating_add(1)).await? == 0 {
                return Err(io::Error::from(ErrorKind::UnexpectedEof).into());
            }
        }
    }

    async fn body_until_close(
        &mut self,
        start: Instant,
        p: &mut Progress,
        sink: &mut dyn BodySink,
    ) -> Result<(), BodyError> {
        loop {
            self.deliver(self.rbuf.len(), p, sink)?;
            if self.read_more(start, p, 0).await? == 0 {
                return Ok(());
            }
        }
    }

    async fn body_chunked(
        &mut self,
        start: Instant,
        p: &mut Progress,
        sink: &mut dyn BodySink,
    ) -> Result<(), BodyError> {
        let mut state = Chunked::Size;
        loop {
            // Consume what the buffer holds; `true` when the body is complete.
            loop {
                match state {
                    Chunked::Size => match httparse::parse_chunk_size(&self.rbuf) {
                        Ok(httparse::Status::Complete((used, 0))) => {
                            self.rbuf.advance(used);
                            state = Chunked::Trailer;
                        }
                        Ok(httparse::Status::Complete((used, size))) => {
                            self.rbuf.advance(used);
                            state = Chunked::Data(size);
                        }
                        Ok(httparse::Status::Partial) if self.rbuf.len() > MAX_LINE => {
                            return Err(invalid("chunk size line too long").into());
                        }
                        Ok(httparse::Status::Partial) => break,
                        Err(_) => return Err(invalid("invalid chunk size").into()),
                    },
                    Chunked::Data(left) => {
                        let n = left.min(self.rbuf.len() as u64) as usize;
                        self.deliver(n, p, sink)?;
                        state = if left == n as u64 {
                            Chunked::DataEnd
                        } else {
                            Chunked::Data(left - n as u64)
                        };
                        if self.rbuf.is_empty() {
                            break;
                        }
                    }
                    Chunked::DataEnd => {
                        if self.rbuf.len() < 2 {
                            break;
                        }
                        if &self.rbuf[..2] != b"\r\n" {
                            return Err(invalid("chunk data not followed by CRLF").into());
                        }
                        self.rbuf.advance(2);
                        state = Chunked::Size;
                    }
                    Chunked::Trailer => match memchr::memmem::find(&self.rbuf, b"\r\n") {
                        Some(0) => {
                            self.rbuf.advance(2);
                            return Ok(());
                        }
                        Some(end) => self.rbuf.advance(end + 2),
                        None if self.rbuf.len() > MAX_LINE => {
                            return Err(invalid("trailer line too long").into());
                        }
                        None => break,
                    },
                }
            }
            let room = match state {
                Chunked::Data(left) => left.saturating_add(1),
                _ => 0,
            };
            if self.read_more(start, p, room).await? == 0 {
                return Err(io::Error::from(ErrorKind::UnexpectedEof).into());
            }
        }
    }
}

/// Where a chunked body's decoder stands.
#[derive(Debug, Clone, Copy)]
enum Chunked {
    Size,
    /// Bytes of the current chunk still to come.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines up to an empty line.
    Trailer,
}

#[cfg(test)]
#[path = "h1_tests.rs"]
mod tests;

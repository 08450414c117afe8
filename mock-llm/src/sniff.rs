//! Which protocol a new connection speaks, HTTP/1.1 or HTTP/2 with prior knowledge (h2c),
//! told from its first bytes.
//!
//! An h2c client opens with the 24-byte preface `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`; anything
//! else is HTTP/1.1. The first bytes are *peeked* (`MSG_PEEK`), not read, so on the usual
//! path (the first segment holds a whole preface, or diverges from it early, as `GET` or
//! `POST` do) nothing is consumed and the connection is served over the bare socket by
//! hyper's own HTTP/1.1 or HTTP/2 connection: no wrapper per read, no buffer of our own.
//!
//! The first segment can be shorter than 24 bytes and still agree with the preface so far
//! (a client writing in pieces, or `P` of `POST` arriving alone). Peeking again would only
//! see the same bytes (the socket stays readable), and taking it for HTTP/1.1 would break
//! an h2 client, so then the bytes are *read*, until 24 of them or the first one that
//! diverges, and handed back to hyper first by [`Replay`]. End of stream before a verdict is
//! HTTP/1.1 (hyper then answers or closes as it would for any truncated request).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The client connection preface of HTTP/2 (RFC 9113 §3.4).
pub(crate) const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Http1,
    Http2,
}

/// The protocol `first` (a connection's first bytes) announces, or `None` while it agrees
/// with the preface but is shorter than it. A byte that diverges settles it at once.
pub(crate) fn verdict(first: &[u8]) -> Option<Protocol> {
    let n = first.len().min(H2_PREFACE.len());
    if first[..n] != H2_PREFACE[..n] {
        Some(Protocol::Http1)
    } else if n == H2_PREFACE.len() {
        Some(Protocol::Http2)
    } else {
        None
    }
}

/// How a connection is to be served.
#[derive(Debug)]
pub(crate) enum Sniffed {
    /// The client closed before sending a byte.
    Closed,
    /// Told by peeking: nothing was consumed.
    Peeked(Protocol),
    /// Told by reading: these bytes were consumed and are to be replayed.
    Read(Protocol, Vec<u8>),
}

/// Tells the protocol of `stream` from its first bytes; see the module docs.
pub(crate) async fn sniff(stream: &mut TcpStream) -> io::Result<Sniffed> {
    let mut first = [0u8; H2_PREFACE.len()];
    let n = stream.peek(&mut first).await?;
    if n == 0 {
        return Ok(Sniffed::Closed);
    }
    if let Some(protocol) = verdict(&first[..n]) {
        return Ok(Sniffed::Peeked(protocol));
    }
    // A short first segment that agrees with the preface: read until it is settled.
    let mut filled = 0;
    loop {
        let got = stream.read(&mut first[filled..]).await?;
        if got == 0 {
            return Ok(match filled {
                0 => Sniffed::Closed,
                _ => Sniffed::Read(Protocol::Http1, first[..filled].to_vec()),
            });
        }
        filled += got;
        if let Some(protocol) = verdict(&first[..filled]) {
            return Ok(Sniffed::Read(protocol, first[..filled].to_vec()));
        }
    }
}

/// An IO that yields `pending` before reading from `inner`; writes go straight through.
#[derive(Debug)]
pub(crate) struct Replay<T> {
    pending: Vec<u8>,
    offset: usize,
    inner: T,
}

impl<T> Replay<T> {
    pub(crate) fn new(pending: Vec<u8>, inner: T) -> Self {
        Self {
            pending,
            offset: 0,
            inner,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Replay<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.offset < this.pending.len() {
            let rest = &this.pending[this.offset..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.offset += n;
            if this.offset == this.pending.len() {
                this.pending = Vec::new();
                this.offset = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Replay<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[path = "sniff_tests.rs"]
mod tests;

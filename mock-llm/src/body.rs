//! The response body type of every answer: a whole buffer, or a stream.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

use crate::error::InjectedDisconnect;
use crate::stats::InFlight;
use crate::stream::SseBody;

/// A response body. It holds the request's in-flight guard, so `/stats` counts a request
/// as in flight until its body is finished or dropped.
#[derive(Debug)]
pub struct ResponseBody {
    /// The bytes to send.
    content: Content,
    /// Released when the body is dropped.
    _in_flight: InFlight,
}

#[derive(Debug)]
enum Content {
    /// A complete body, taken on the first poll.
    Full(Option<Bytes>),
    /// A chat-completion stream.
    Sse(SseBody),
}

impl ResponseBody {
    /// A complete body.
    pub fn full(bytes: impl Into<Bytes>, in_flight: InFlight) -> Self {
        ResponseBody {
            content: Content::Full(Some(bytes.into())),
            _in_flight: in_flight,
        }
    }

    /// A stream body.
    pub fn sse(body: SseBody, in_flight: InFlight) -> Self {
        ResponseBody {
            content: Content::Sse(body),
            _in_flight: in_flight,
        }
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = InjectedDisconnect;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, InjectedDisconnect>>> {
        match &mut self.get_mut().content {
            Content::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Content::Sse(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.content {
            Content::Full(bytes) => bytes.is_none(),
            Content::Sse(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.content {
            Content::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Content::Full(None) => SizeHint::with_exact(0),
            Content::Sse(body) => body.size_hint(),
        }
    }
}

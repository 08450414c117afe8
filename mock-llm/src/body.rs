//! The response body type of every answer: a whole buffer, or a stream.
//!
//! The body carries what must last exactly as long as the answer: the in-flight guard, the
//! model-mode generation slot, and the call's record, which is written to the call log when
//! the last byte is handed over, the stream is cut, or the body is dropped.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::time::Instant;

use crate::calls::{micros, Call, CallLog, End};
use crate::error::InjectedDisconnect;
use crate::model::Slot;
use crate::stats::InFlight;
use crate::stream::SseBody;

/// A response body. It holds the request's [`Guards`], so `/stats` counts a request as in
/// flight (and a generation holds its slot) until its body is finished or dropped.
#[derive(Debug)]
pub struct ResponseBody {
    /// The bytes to send.
    content: Content,
    /// Released (and the call recorded) when the body ends or is dropped.
    guards: Guards,
}

/// What an answer holds until it ends.
#[derive(Debug)]
pub struct Guards {
    /// Counts the request in flight.
    _in_flight: InFlight,
    /// A chat call's record, written when the answer ends.
    pub call: Option<Recorder>,
    /// Model mode: the generation slot.
    pub slot: Option<Slot>,
}

impl Guards {
    /// Guards of a request that is not a chat call.
    pub fn new(in_flight: InFlight) -> Self {
        Guards {
            _in_flight: in_flight,
            call: None,
            slot: None,
        }
    }

    /// Records the call (if any) with how it ended.
    fn end(&mut self, end: End) {
        if let Some(recorder) = self.call.take() {
            recorder.finish(end);
        }
    }
}

impl Drop for Guards {
    fn drop(&mut self) {
        self.end(End::Dropped);
    }
}

/// A chat call being served: its record and where it goes.
#[derive(Debug)]
pub struct Recorder {
    /// The log the record goes to.
    log: Arc<CallLog>,
    /// When the request head arrived.
    started: Instant,
    /// The record, filled in as the call is served.
    pub call: Call,
}

impl Recorder {
    /// Starts the record of a call that arrived at `started`.
    pub fn new(log: Arc<CallLog>, started: Instant, key: Option<Box<str>>) -> Self {
        let call = log.begin(started, key);
        Recorder { log, started, call }
    }

    /// Stamps the service time and writes the record.
    fn finish(mut self, end: End) {
        self.call.service_us = micros(self.started.elapsed());
        self.call.end = end;
        self.log.finish(self.call);
    }
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
    pub fn full(bytes: impl Into<Bytes>, guards: Guards) -> Self {
        ResponseBody {
            content: Content::Full(Some(bytes.into())),
            guards,
        }
    }

    /// A stream body.
    pub fn sse(body: SseBody, guards: Guards) -> Self {
        ResponseBody {
            content: Content::Sse(body),
            guards,
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
        let this = self.get_mut();
        let polled = match &mut this.content {
            Content::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Content::Sse(body) => Pin::new(body).poll_frame(cx),
        };
        match &polled {
            Poll::Ready(Some(Err(_))) => this.guards.end(End::Cut),
            Poll::Ready(None) => this.guards.end(End::Complete),
            Poll::Ready(Some(Ok(_))) if this.is_end_stream() => this.guards.end(End::Complete),
            _ => {}
        }
        polled
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

//! The SSE side of a step: a [`BodySink`] that feeds the answer's bytes to the parser as they
//! are read, and notes each event in the step's [`SseSummary`] with the time it arrived
//! (first event, first token, gaps, the checks' event names), without an allocation per event.
use std::time::Duration;

use super::check::SseSummary;
use crate::http::sse::{SseEvent, SseParser};
use crate::http::{BodySink, TooLarge};

/// Feeds a stream into the SSE parser and sums it up.
pub(super) struct SseSink<'a> {
    pub(super) parser: &'a mut SseParser,
    pub(super) summary: &'a mut SseSummary,
}

impl SseSink<'_> {
    fn take(summary: &mut SseSummary, since_start: Duration) -> impl FnMut(SseEvent<'_>) + '_ {
        move |e| {
            summary.events += 1;
            summary.first_event.get_or_insert(since_start);
            summary.last_event = Some(since_start);
            if summary.first_token.is_none()
                && super::check::ai_content(e.event, e.data, &mut summary.ai_in_input)
            {
                summary.first_token = Some(since_start);
            }
            summary.note_event(e.event, since_start);
            if e.event == "error" && summary.error_data.is_none() {
                let mut cut = e.data.len().min(300);
                while !e.data.is_char_boundary(cut) {
                    cut -= 1;
                }
                summary.error_data = Some(e.data[..cut].to_owned());
            }
        }
    }
}

impl BodySink for SseSink<'_> {
    fn chunk(&mut self, bytes: &[u8], since_start: Duration) -> Result<(), TooLarge> {
        self.parser
            .feed(bytes, &mut Self::take(self.summary, since_start))
    }
    fn end(&mut self, since_start: Duration) {
        // A line over the limit at the very end: the stream's last event is not counted
        // (the limit is reported for lines cut while streaming).
        let _ = self
            .parser
            .finish(&mut Self::take(self.summary, since_start));
    }
}

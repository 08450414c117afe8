//! The SSE stream body: writes the [`Frames`] of an answer on a fixed schedule, each when due.
//!
//! Frame i is due at `first + i * interval`, where `first` is when the first byte was due.
//! Each wait is a `sleep_until` that absolute instant, so lateness in one wake-up does not
//! push the later frames back. When the server falls behind, every frame already due goes
//! out in one write. With a zero interval there is no timer at all: the whole stream is
//! one frame.
//!
//! An injected disconnect (`cut`) stops after that many frames and ends the body with an
//! error; hyper then drops the connection without the terminating chunk, so the client
//! sees a truncated stream with no `[DONE]`.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::time::{Duration, Instant, Sleep};

use crate::completion::Frames;
use crate::error::InjectedDisconnect;

/// A paced (or, with a zero interval, immediate) chat-completion stream.
#[derive(Debug)]
pub struct SseBody {
    /// The frames, written when due.
    frames: Frames,
    /// Index of the next frame to send.
    next: usize,
    /// When frame 0 is due.
    first: Instant,
    /// Spacing of frames; zero sends everything at once.
    interval: Duration,
    /// Number of frames sent before an injected disconnect, if one is planned.
    cut: Option<usize>,
    /// The timer, created on the first wait and re-armed for each later frame.
    sleep: Option<Pin<Box<Sleep>>>,
    /// Whether an unpaced stream has yielded once before its cut.
    yielded: bool,
}

impl SseBody {
    /// A stream of `frames`; frame 0 is due at `first`, frame i at `first + i * interval`.
    /// `cut`, if set, is how many frames go out before the connection is dropped (it is
    /// clamped so that at least one frame and never the last one is sent).
    pub fn new(frames: Frames, first: Instant, interval: Duration, cut: Option<usize>) -> Self {
        let n = frames.count();
        let cut = cut.filter(|_| n >= 2).map(|c| c.clamp(1, n - 1));
        SseBody {
            frames,
            next: 0,
            first,
            interval,
            cut,
            sleep: None,
            yielded: false,
        }
    }

    /// When frame `i` is due.
    fn due(&self, i: usize) -> Instant {
        let offset = self
            .interval
            .saturating_mul(u32::try_from(i).unwrap_or(u32::MAX));
        self.first.checked_add(offset).unwrap_or(self.first)
    }

    /// Frames `from..to`, in one buffer: one write.
    fn slice(&self, from: usize, to: usize) -> Bytes {
        self.frames.write(from, to)
    }

    /// Ready once `due` has passed; arms the (single, reused) timer otherwise.
    fn wait_until(&mut self, due: Instant, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= due {
            return Poll::Ready(());
        }
        let sleep = match &mut self.sleep {
            Some(sleep) => {
                if sleep.deadline() != due {
                    sleep.as_mut().reset(due);
                }
                sleep
            }
            None => self.sleep.insert(Box::pin(tokio::time::sleep_until(due))),
        };
        sleep.as_mut().poll(cx)
    }

    /// Frames that may be sent: all of them, or those before the cut.
    fn limit(&self) -> usize {
        self.cut.unwrap_or(self.frames.count())
    }
}

impl http_body::Body for SseBody {
    type Data = Bytes;
    type Error = InjectedDisconnect;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, InjectedDisconnect>>> {
        let this = self.get_mut();
        let limit = this.limit();
        if this.next >= limit {
            if this.cut.is_none() {
                return Poll::Ready(None);
            }
            // The cut: let what was sent reach the client first. A paced stream stalls until
            // the next frame would have been due; an unpaced one yields once, so hyper
            // flushes its buffer before the connection is dropped.
            if this.interval.is_zero() {
                if !this.yielded {
                    this.yielded = true;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
            } else {
                ready!(this.wait_until(this.due(this.next), cx));
            }
            this.cut = None;
            this.next = this.frames.count();
            return Poll::Ready(Some(Err(InjectedDisconnect)));
        }
        if this.interval.is_zero() {
            let frame = this.slice(this.next, limit);
            this.next = limit;
            return Poll::Ready(Some(Ok(Frame::data(frame))));
        }
        ready!(this.wait_until(this.due(this.next), cx));
        // Send every frame that is due by now (at least the one waited for).
        let elapsed = Instant::now().saturating_duration_since(this.first);
        let due_count = (elapsed.as_nanos() / this.interval.as_nanos()).saturating_add(1);
        let end = usize::try_from(due_count)
            .unwrap_or(usize::MAX)
            .clamp(this.next + 1, limit);
        let frame = this.slice(this.next, end);
        this.next = end;
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        self.next >= self.frames.count() && self.cut.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        if self.interval.is_zero() && self.cut.is_none() && self.next == 0 {
            SizeHint::with_exact(self.frames.total_len() as u64)
        } else {
            SizeHint::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// `n` frames `data: {i}\n\n`.
    fn frames(n: usize) -> Frames {
        let deltas = (0..n - 1).map(|i| i.to_string().into_bytes()).collect();
        Frames::new(
            Bytes::from_static(b"data: "),
            std::sync::Arc::new(deltas),
            b"\n\n",
            Bytes::from(format!("data: {}\n\n", n - 1)),
        )
    }

    /// (elapsed since start, bytes) of each frame, in paused time.
    async fn collect(mut body: SseBody) -> (Vec<(Duration, Bytes)>, bool) {
        let start = Instant::now();
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => out.push((start.elapsed(), f.into_data().unwrap())),
                Err(_) => return (out, true),
            }
        }
        (out, false)
    }

    #[tokio::test(start_paused = true)]
    async fn frames_follow_a_fixed_schedule() {
        let start = Instant::now();
        let body = SseBody::new(frames(5), start, Duration::from_millis(5), None);
        let (got, cut) = collect(body).await;
        assert!(!cut);
        let times: Vec<u64> = got.iter().map(|(t, _)| t.as_millis() as u64).collect();
        assert_eq!(times, [0, 5, 10, 15, 20]);
        assert_eq!(got[3].1, Bytes::from_static(b"data: 3\n\n"));
    }

    #[tokio::test(start_paused = true)]
    async fn late_frames_are_coalesced_and_the_schedule_kept() {
        let start = Instant::now();
        let mut body = SseBody::new(frames(6), start, Duration::from_millis(5), None);
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, Bytes::from_static(b"data: 0\n\n"));
        // The consumer stalls 12 ms: frames 1 and 2 are overdue and go out together.
        tokio::time::sleep(Duration::from_millis(12)).await;
        let next = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(next, Bytes::from_static(b"data: 1\n\ndata: 2\n\n"));
        // Frame 3 is still due at 15 ms, not 12 + 5.
        let (rest, _) = collect(body).await;
        let times: Vec<u64> = rest.iter().map(|(t, _)| t.as_millis() as u64).collect();
        assert_eq!(times, [3, 8, 13]);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_interval_is_one_frame_with_exact_size() {
        let body = SseBody::new(frames(4), Instant::now(), Duration::ZERO, None);
        assert_eq!(http_body::Body::size_hint(&body).exact(), Some(36));
        let (got, cut) = collect(body).await;
        assert!(!cut);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1.len(), 36);
    }

    #[tokio::test(start_paused = true)]
    async fn cut_stops_early_with_an_error() {
        // (frames, cut asked, frames delivered)
        for (n, cut, delivered) in [(5, 2, 2), (5, 0, 1), (5, 9, 4), (1, 1, 1)] {
            for interval in [Duration::ZERO, Duration::from_millis(1)] {
                let body = SseBody::new(frames(n), Instant::now(), interval, Some(cut));
                let (got, was_cut) = collect(body).await;
                let bytes: usize = got.iter().map(|(_, b)| b.len()).sum();
                assert_eq!(
                    bytes,
                    9 * delivered,
                    "n={n} cut={cut} interval={interval:?}"
                );
                assert_eq!(was_cut, n >= 2, "n={n} cut={cut}");
            }
        }
    }
}

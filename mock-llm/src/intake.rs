//! Reading a chat request's body into one buffer, for the JSON parser.
//!
//! A body that arrives in one frame (a small request) is kept as hyper hands it over, with
//! no copy. A large one arrives in many frames. Held until the last one and then joined,
//! they made the connection read every frame into a new buffer (its read buffer still
//! shared with the held frames) and cost a second copy's worth of fresh memory; here each
//! frame is copied into one buffer of the declared length as it arrives and let go at once,
//! so the connection reads the next frame into the same, already warm, buffer.
//!
//! The joined buffers go back to a small pool when the request has been parsed: allocated
//! and freed at every large request, they made the allocator hand the memory back to the
//! kernel and fault it in again on the next request. The pool holds at most
//! [`POOL_BYTES`] of buffers, so the memory it keeps is bounded whatever the body limit.

use std::ops::Deref;
use std::sync::Mutex;

use bytes::Bytes;
use http_body::Body as HttpBody;
use http_body_util::BodyExt;

/// At most this many bytes of buffers wait in the pool for the next large bodies.
pub const POOL_BYTES: usize = 8 * 1024 * 1024;

/// A request body in one piece.
#[derive(Debug)]
pub enum Body {
    /// The only frame of the body, as received.
    Frame(Bytes),
    /// The frames of a longer body, joined (a buffer from the pool).
    Joined(Vec<u8>),
}

impl Deref for Body {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Body::Frame(bytes) => bytes,
            Body::Joined(buf) => buf,
        }
    }
}

/// Reads bodies, and keeps the buffers of large ones for the next ones.
#[derive(Debug, Default)]
pub struct Bodies {
    /// Buffers waiting for a body (empty, with their capacity).
    free: Mutex<Vec<Vec<u8>>>,
}

impl Bodies {
    /// Reads `body` whole; `hint` is its declared length (0 when unknown). Trailers are
    /// skipped; the first error of `body` (such as its length limit) is returned.
    pub async fn read<B>(&self, mut body: B, hint: usize) -> Result<Body, B::Error>
    where
        B: HttpBody<Data = Bytes> + Unpin,
    {
        let mut only: Option<Bytes> = None;
        let mut joined: Option<Vec<u8>> = None;
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame?.into_data() else {
                continue; // trailers
            };
            match (&mut joined, only.take()) {
                (Some(buf), _) => buf.extend_from_slice(&data),
                (None, None) => only = Some(data),
                (None, Some(head)) => {
                    let mut buf = self.take(hint.max(head.len() + data.len()));
                    buf.extend_from_slice(&head);
                    buf.extend_from_slice(&data);
                    joined = Some(buf);
                }
            }
        }
        Ok(match joined {
            Some(buf) => Body::Joined(buf),
            None => Body::Frame(only.unwrap_or_default()),
        })
    }

    /// Takes the body back when it has been read: a joined buffer waits in the pool for
    /// the next large body, if the pool has room for it.
    pub fn give_back(&self, body: Body) {
        let Body::Joined(mut buf) = body else {
            return;
        };
        buf.clear();
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let kept: usize = free.iter().map(Vec::capacity).sum();
        if kept + buf.capacity() <= POOL_BYTES {
            free.push(buf);
        }
    }

    /// An empty buffer for at least `len` bytes: one from the pool if there is one.
    fn take(&self, len: usize) -> Vec<u8> {
        let pooled = self.free.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut buf = pooled.unwrap_or_default();
        buf.reserve(len);
        buf
    }

    /// Bytes of buffers in the pool.
    #[cfg(test)]
    fn pooled(&self) -> usize {
        self.free.lock().unwrap().iter().map(Vec::capacity).sum()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::convert::Infallible;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use http_body::Frame;
    use http_body_util::{LengthLimitError, Limited};

    use super::*;

    /// A body that hands out the given frames, one per poll.
    struct Frames(VecDeque<Frame<Bytes>>);

    impl HttpBody for Frames {
        type Data = Bytes;
        type Error = Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(self.0.pop_front().map(Ok))
        }
    }

    fn data(parts: &[&'static str]) -> VecDeque<Frame<Bytes>> {
        parts
            .iter()
            .map(|p| Frame::data(Bytes::from_static(p.as_bytes())))
            .collect()
    }

    #[tokio::test]
    async fn bodies_are_read_whole() {
        let bodies = Bodies::default();
        // (frames, declared length)
        let cases: &[(&[&str], usize)] = &[
            (&[], 0),
            (&[""], 0),
            (&["{}"], 2),
            (&["ab", "cd", "", "ef"], 6),
            (&["ab", "cd"], 0),
            (&["ab", "cd", "ef"], 3),
            (&["x", "y"], 2),
        ];
        // Twice: the second time the joined ones get buffers from the pool.
        for _ in 0..2 {
            for (parts, hint) in cases {
                let got = bodies.read(Frames(data(parts)), *hint).await.unwrap();
                assert_eq!(&*got, parts.concat().as_bytes(), "{parts:?}");
                bodies.give_back(got);
            }
        }
        // Trailers are skipped wherever they come.
        let mut frames = data(&["ab", "cd"]);
        frames.insert(1, Frame::trailers(http::HeaderMap::new()));
        frames.push_back(Frame::trailers(http::HeaderMap::new()));
        assert_eq!(&*bodies.read(Frames(frames), 4).await.unwrap(), b"abcd");
    }

    #[tokio::test]
    async fn a_single_frame_is_not_copied() {
        let frame = Bytes::from_static(b"{\"messages\":[]}");
        let body = Frames(VecDeque::from([Frame::data(frame.clone())]));
        let got = Bodies::default().read(body, 15).await.unwrap();
        assert!(matches!(&got, Body::Frame(b) if b.as_ptr() == frame.as_ptr()));
    }

    #[tokio::test]
    async fn the_limit_still_applies() {
        let body = Limited::new(Frames(data(&["abc", "def"])), 5);
        let err = Bodies::default()
            .read(body, 6)
            .await
            .expect_err("over the limit");
        assert!(err.downcast_ref::<LengthLimitError>().is_some(), "{err}");
    }

    #[test]
    fn the_pool_is_bounded() {
        let bodies = Bodies::default();
        let chunk = POOL_BYTES / 4;
        for _ in 0..6 {
            bodies.give_back(Body::Joined(Vec::with_capacity(chunk)));
        }
        assert_eq!(bodies.pooled(), 4 * chunk, "four fit, the rest are freed");
        bodies.give_back(Body::Joined(Vec::with_capacity(POOL_BYTES + 1)));
        bodies.give_back(Body::Frame(Bytes::from_static(b"{}")));
        assert_eq!(bodies.pooled(), 4 * chunk);
        // A taken buffer leaves the pool, empty and large enough.
        let buf = bodies.take(10);
        assert!(buf.is_empty() && buf.capacity() >= 10);
        assert_eq!(bodies.pooled(), 3 * chunk);
    }
}

//! A connection's read buffer that holds memory only while it holds bytes.
//!
//! A worker keeps one connection per VU, and with agent streams most of them sit between
//! two events most of the time: a read buffer kept for the connection's life is memory
//! per open stream that carries nothing (and a buffer consumed from its front walks
//! through all its pages over an exchange or two, so all of them become resident). This
//! one is allocated by the read that needs it and given back as soon as everything in it
//! was consumed; the allocator hands the same warm block to the next read of any
//! connection, so the worker's resident read memory follows the reads in progress, not
//! the connections open. Bytes left over (a line or a head cut by a read) move to the
//! front before the next read, so the buffer never walks.
use std::ops::Deref;

/// Received bytes not yet consumed: `buf[start..]`.
#[derive(Debug, Default)]
pub(crate) struct RecvBuf {
    buf: Vec<u8>,
    start: usize,
}

impl RecvBuf {
    /// Consumes `n` bytes from the front; an emptied buffer gives its memory back.
    pub(crate) fn advance(&mut self, n: usize) {
        self.start += n;
        debug_assert!(self.start <= self.buf.len());
        if self.start >= self.buf.len() {
            self.buf = Vec::new();
            self.start = 0;
        }
    }

    /// The vector to read into, with at least `room` bytes free after what it holds
    /// (leftover bytes moved to the front first).
    pub(crate) fn spare(&mut self, room: usize) -> &mut Vec<u8> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.capacity() - self.buf.len() < room {
            self.buf.reserve(room);
        }
        &mut self.buf
    }

    /// Bytes of memory held (for tests).
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}

impl Deref for RecvBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_memory_only_while_it_holds_bytes_and_never_walks() {
        let mut b = RecvBuf::default();
        assert_eq!(b.capacity(), 0);
        b.spare(1024).extend_from_slice(b"hello world");
        assert!(b.capacity() >= 1024);
        b.advance(6);
        assert_eq!(&b[..], b"world");
        // the leftover moves to the front: the next read appends after it
        let v = b.spare(1024);
        assert_eq!(&v[..], b"world");
        assert!(v.capacity() - v.len() >= 1024);
        v.extend_from_slice(b"!");
        assert_eq!(&b[..], b"world!");
        b.advance(6);
        assert!(b.is_empty());
        assert_eq!(b.capacity(), 0, "an emptied buffer holds no memory");
    }
}

//! The live heap, counted: [`Counting`] wraps an allocator and keeps the bytes allocated and
//! not yet freed. The `barrage` binary installs it around mimalloc when built with the
//! `heap-count` feature, and [`log_every_second`] then logs the figure (`heap
//! live_bytes=…`, target `barrage_controller::heap`), which `bench/controller/soak_rss.rs`
//! reads.
//!
//! Why: a soak's RSS says what the process holds, including what the allocator and the
//! kernel keep (freed pages held a while, huge pages filled in by khugepaged: see
//! [`crate::thp`]). The
//! live heap says what the program itself holds, so a rising RSS can be told apart as a
//! leak or as allocator retention. Off by default: every allocation and free pays an
//! atomic operation.
use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// An allocator that counts what `A` hands out and takes back.
#[derive(Debug)]
pub struct Counting<A> {
    inner: A,
    live: AtomicI64,
}

impl<A> Counting<A> {
    pub const fn new(inner: A) -> Self {
        Counting {
            inner,
            live: AtomicI64::new(0),
        }
    }

    /// Bytes allocated through this allocator and not freed, over all threads.
    pub fn live_bytes(&self) -> i64 {
        self.live.load(Ordering::Relaxed)
    }

    fn add(&self, n: i64) {
        self.live.fetch_add(n, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded to `A` unchanged; the counter is only arithmetic on the
// sizes the caller passed.
#[allow(unsafe_code)]
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = self.inner.alloc(layout);
        if !p.is_null() {
            self.add(layout.size() as i64);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = self.inner.alloc_zeroed(layout);
        if !p.is_null() {
            self.add(layout.size() as i64);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.inner.dealloc(ptr, layout);
        self.add(-(layout.size() as i64));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = self.inner.realloc(ptr, layout, new_size);
        if !p.is_null() {
            self.add(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

/// Logs `heap.live_bytes()` once a second, from a thread of its own, for the process's life.
pub fn log_every_second<A: Sync>(heap: &'static Counting<A>) {
    let spawned = std::thread::Builder::new()
        .name("heap-count".into())
        .spawn(move || loop {
            tracing::info!(
                target: "barrage_controller::heap",
                live_bytes = heap.live_bytes(),
                "heap"
            );
            std::thread::sleep(Duration::from_secs(1));
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "the heap-count thread did not start");
    }
}

#[cfg(test)]
#[allow(unsafe_code)]
mod tests {
    use super::*;
    use std::alloc::System;

    #[test]
    fn it_counts_what_is_allocated_grown_shrunk_and_freed() {
        let heap = Counting::new(System);
        let l = Layout::from_size_align(1000, 8).unwrap();
        // SAFETY: each pointer is used with the layout it was allocated with, once.
        unsafe {
            let a = heap.alloc(l);
            let b = heap.alloc_zeroed(l);
            assert!(!a.is_null() && !b.is_null());
            assert_eq!(heap.live_bytes(), 2000);
            assert_eq!(*b.add(999), 0);
            let a = heap.realloc(a, l, 5000);
            assert_eq!(heap.live_bytes(), 6000);
            let a = heap.realloc(a, Layout::from_size_align(5000, 8).unwrap(), 10);
            assert_eq!(heap.live_bytes(), 1010);
            heap.dealloc(a, Layout::from_size_align(10, 8).unwrap());
            heap.dealloc(b, l);
        }
        assert_eq!(heap.live_bytes(), 0);
    }
}

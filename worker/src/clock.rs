//! Time bases. Stage time, intervals and due times are [`tokio::time::Instant`]s (so tests
//! can pause time); the wire speaks wall-clock µs since the Unix epoch in the *controller's*
//! clock. A [`Clock`] converts between the two with the offset measured by ping/pong:
//!
//! ```text
//! local_unix_us = controller_unix_us + offset_us      (offset = worker − controller)
//! ```
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::time::{Duration, Instant};

/// Wall clock of this host, µs since the Unix epoch.
pub fn unix_now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// A monotonic instant paired with the wall clock, plus the controller's offset.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// A monotonic instant taken together with `anchor_unix_us`.
    anchor: Instant,
    /// This host's wall clock at `anchor`.
    anchor_unix_us: i64,
    /// worker − controller, µs (0 standalone).
    offset_us: i64,
}

impl Clock {
    /// Anchors now; `offset_us` is worker − controller.
    pub fn new(offset_us: i64) -> Clock {
        Clock {
            anchor: Instant::now(),
            anchor_unix_us: unix_now_us(),
            offset_us,
        }
    }

    pub fn offset_us(&self) -> i64 {
        self.offset_us
    }

    /// `at` in the controller's clock, µs since the Unix epoch.
    pub fn controller_us(&self, at: Instant) -> i64 {
        let delta = if at >= self.anchor {
            (at - self.anchor).as_micros() as i64
        } else {
            -((self.anchor - at).as_micros() as i64)
        };
        self.anchor_unix_us + delta - self.offset_us
    }

    /// The local instant at which the controller's clock reads `controller_us`. Times far
    /// in the past map to the anchor (an instant cannot precede the process by much).
    pub fn instant_at(&self, controller_us: i64) -> Instant {
        let local = controller_us + self.offset_us;
        let delta = local - self.anchor_unix_us;
        if delta >= 0 {
            self.anchor + Duration::from_micros(delta as u64)
        } else {
            self.anchor
                .checked_sub(Duration::from_micros(delta.unsigned_abs()))
                .unwrap_or(self.anchor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_controller_clock() {
        let c = Clock::new(1_500);
        let t = c.anchor + Duration::from_millis(250);
        let us = c.controller_us(t);
        assert_eq!(us, c.anchor_unix_us + 250_000 - 1_500);
        assert_eq!(c.instant_at(us), t);
        // a start time 2 s ahead in controller time is 2 s after the anchor locally
        let start = c.instant_at(c.anchor_unix_us - 1_500 + 2_000_000);
        assert_eq!(start - c.anchor, Duration::from_secs(2));
    }
}

//! Liveness by the clock: when each worker was last heard from, stamped by its session as
//! its messages come off the wire ([`Heard`]), and the controller's own stalls
//! ([`Stalls`]), which are not the workers' silence.
//!
//! Why not count the hub's ticks: at a thousand workers the hub's tick runs late while it
//! merges a thousand snapshots a second, so "N silent ticks" took 3.8 intervals of wall
//! time instead of 3. Stamping at the session also keeps a worker's word from waiting in
//! the hub's queue behind other workers' snapshots: the hub needs to read nothing to know
//! who spoke. The hub checks at the earliest deadline (last word + the silence limit), so
//! a silent worker is dropped at that deadline, not at the next tick after it.
//!
//! What counting ticks got right is kept: a stall of the controller process itself
//! (SIGSTOP, a starved host) is not the workers' silence. Every turn of the hub's loop
//! notes the time; a gap between turns longer than [`STALL_AFTER`] intervals is a stall,
//! and what exceeds it is not counted against any worker heard before it. After the stall,
//! what the workers sent meanwhile is read before the limit can be reached (their figures
//! and `Done` count, as in `a_stalled_controller_loses_nothing`).
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

/// A gap between two turns of the hub longer than this many intervals is a stall of the
/// controller (the hub turns at least every tick, a few times per interval; lateness
/// under load stays well below an interval, and is never excused).
pub const STALL_AFTER: u32 = 1;

/// The origin of the stamps (an `Instant` does not fit an atomic).
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Nanoseconds since [`EPOCH`] (exact both ways; 584 years fit).
fn to_ns(t: Instant) -> u64 {
    t.saturating_duration_since(*EPOCH).as_nanos() as u64
}

fn from_ns(ns: u64) -> Instant {
    *EPOCH + Duration::from_nanos(ns)
}

/// `t` as µs since the Unix epoch (by the system clock now), for log lines that a reader
/// on the same host compares with its own clock.
pub fn unix_us(t: Instant) -> i64 {
    let now = (Instant::now(), super::clock::now_us());
    if t <= now.0 {
        now.1 - now.0.duration_since(t).as_micros() as i64
    } else {
        now.1 + t.duration_since(now.0).as_micros() as i64
    }
}

/// When a worker's latest message arrived: its session writes it, the hub reads it. The
/// stamp only moves forward.
///
/// A message the session holds because the hub's queue is full (the controller behind a
/// fleet's snapshots, or starved of CPU) keeps its worker heard until the hub takes it:
/// otherwise the words waiting unread in the socket behind it would count as the worker's
/// silence, and a busy controller would drop workers that are speaking.
#[derive(Debug)]
pub struct Heard {
    stamp: AtomicU64,
    waiting: AtomicBool,
}

impl Heard {
    /// A stamp of now.
    pub fn new() -> Arc<Heard> {
        Arc::new(Heard {
            stamp: AtomicU64::new(to_ns(Instant::now())),
            waiting: AtomicBool::new(false),
        })
    }
    /// The session holds a message of this worker that the hub has not taken yet (`true`),
    /// or the hub took it (`false`, which stamps now: silence counts from the hand-over).
    pub fn waiting(&self, waiting: bool) {
        if !waiting {
            self.mark();
        }
        self.waiting.store(waiting, Ordering::Relaxed);
    }
    /// A message arrived now.
    pub fn mark(&self) {
        self.advance(Instant::now());
    }
    /// Moves the stamp to `at` unless it is later already (`at` may be in the future: the
    /// run's stage time 0, before which nobody is expected to speak).
    pub fn advance(&self, at: Instant) {
        self.stamp.fetch_max(to_ns(at), Ordering::Relaxed);
    }
    /// When the worker was last heard: now while one of its messages waits for the hub.
    pub fn at(&self) -> Instant {
        if self.waiting.load(Ordering::Relaxed) {
            return Instant::now();
        }
        from_ns(self.stamp.load(Ordering::Relaxed))
    }
}

/// The controller's own stalls, as the hub saw them (see the module docs).
#[derive(Debug, Default)]
pub struct Stalls {
    last_turn: Option<Instant>,
    /// (when the hub woke from a stall, the part of it excused), oldest first.
    excused: VecDeque<(Instant, Duration)>,
}

impl Stalls {
    /// The hub takes a turn at `now`. A gap since its last turn beyond `allowed` is a
    /// stall; stalls older than `keep` (the silence limit) are forgotten, as any worker
    /// silent since before them is past the limit anyway.
    pub fn turn(&mut self, now: Instant, allowed: Duration, keep: Duration) {
        if let Some(prev) = self.last_turn {
            let gap = now.saturating_duration_since(prev);
            if gap > allowed {
                tracing::warn!(
                    stalled_ms = gap.as_millis() as u64,
                    "the controller itself was stalled; that time is not counted as the workers' silence"
                );
                self.excused.push_back((now, gap - allowed));
            }
        }
        self.last_turn = Some(now.max(self.last_turn.unwrap_or(now)));
        while self
            .excused
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > keep)
        {
            self.excused.pop_front();
        }
    }

    /// How long a worker last heard at `since` has been silent at `now`, less the
    /// controller's stalls since.
    pub fn silence(&self, since: Instant, now: Instant) -> Duration {
        let excused: Duration = self
            .excused
            .iter()
            .filter(|(at, _)| *at > since)
            .map(|(_, d)| *d)
            .sum();
        now.saturating_duration_since(since).saturating_sub(excused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stamp_only_moves_forward() {
        let h = Heard::new();
        let later = Instant::now() + Duration::from_secs(5);
        h.advance(later);
        h.mark(); // earlier than `later`
        assert_eq!(h.at(), from_ns(to_ns(later)));
    }

    #[test]
    fn a_message_waiting_for_the_hub_keeps_its_worker_heard() {
        let h = Heard::new();
        let first = h.at();
        h.waiting(true);
        std::thread::sleep(Duration::from_millis(5));
        assert!(
            h.at() > first,
            "heard now while the hub has not taken the message"
        );
        h.waiting(false);
        let handed = h.at();
        assert!(handed > first, "the hand-over stamps the worker heard");
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(h.at(), handed, "then silence counts from the hand-over");
    }

    #[test]
    fn a_stall_of_the_controller_is_not_the_workers_silence() {
        let s0 = Instant::now();
        let ms = Duration::from_millis;
        let (allowed, keep) = (ms(1000), ms(3000));
        let mut st = Stalls::default();
        // the hub turns every 200 ms, sometimes 600 ms late: lateness is not excused
        for t in [0, 200, 400, 1200, 1400] {
            st.turn(s0 + ms(t), allowed, keep);
        }
        assert_eq!(st.silence(s0, s0 + ms(1400)), ms(1400));
        // then it is stopped for 10 s
        st.turn(s0 + ms(11_400), allowed, keep);
        // a worker heard before the stall: only 1 s of the 10 s counts
        assert_eq!(st.silence(s0 + ms(1300), s0 + ms(11_400)), ms(1100));
        // one heard after it: all of its silence counts
        assert_eq!(st.silence(s0 + ms(11_500), s0 + ms(12_000)), ms(500));
        // the stall is forgotten once older than the limit
        st.turn(s0 + ms(14_500), ms(10_000), keep);
        assert_eq!(st.silence(s0 + ms(1300), s0 + ms(14_500)), ms(13_200));
    }
}

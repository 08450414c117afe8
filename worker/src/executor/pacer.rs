//! Arrival pacing: an arrival-rate iteration is handed to its VU within tens of
//! microseconds of its due time. tokio's timer has a 1 ms wheel and rounds every deadline
//! up to the next millisecond, so with it alone an iteration starts up to a millisecond
//! late at any rate, and `schedule_lag` would measure the timer rather than the generator.
//!
//! How [`Pacer::wait_until`] waits for `due`:
//!
//! | time left            | how                                                                   |
//! |----------------------|-----------------------------------------------------------------------|
//! | none (already due)   | returns at once                                                       |
//! | more than [`SPIN`]   | a timerfd (the kernel's high-resolution timer) armed for `due − SPIN`, read through tokio's reactor: no CPU while waiting |
//! | the last [`SPIN`]    | yields to the runtime until `due` (other tasks keep running); bounded by [`SPIN_CAP`] of real time, then tokio's sleep |
//!
//! So the CPU spent waiting is at most [`SPIN`] per arrival: nothing at low rates, and at
//! high rates the thread is busy anyway. Without a timerfd (its creation failed) the long
//! stretch is a tokio sleep ending a tick before `due − SPIN`, then the yield loop.
//!
//! **Paused time.** Tests run the engine with tokio's clock paused; a timerfd runs on the
//! real clock, and yielding never lets a paused clock advance. A pacer therefore uses the
//! timerfd only once it has seen tokio's clock move in step with the real one (during a
//! yield stretch), and when it sees tokio's clock frozen while real time passes it uses
//! tokio's sleep for good.
//!
//! [`use_tokio_pacing`] switches new pacers to tokio's `sleep_until` alone, the pacing this
//! module replaced: benchmarks measure it as the reference in the same run.
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

/// The last stretch before an arrival, spent yielding instead of in a timer: covers the
/// timerfd's wake-up latency (the thread being scheduled, the reactor's turn).
pub const SPIN: Duration = Duration::from_micros(50);
/// The most real time one yield stretch may take before it gives up to tokio's sleep.
pub const SPIN_CAP: Duration = Duration::from_millis(3);
/// Real time with tokio's clock not moving at all after which the clock is taken as paused.
const FROZEN_AFTER: Duration = Duration::from_micros(200);
/// tokio's timer resolution: it fires a deadline up to this late.
const TOKIO_TICK: Duration = Duration::from_millis(1);

static TOKIO_PACING: AtomicBool = AtomicBool::new(false);

/// Benchmarks: pacers created from now on wait with tokio's `sleep_until` alone (`true`),
/// the pacing before this module, or precisely (`false`, the default).
#[doc(hidden)]
pub fn use_tokio_pacing(on: bool) {
    TOKIO_PACING.store(on, Ordering::Relaxed);
}

/// What the pacer knows of tokio's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clock {
    /// Not seen moving yet.
    Unknown,
    /// Moves with the real clock: the timerfd may be used.
    Real,
    /// Frozen while real time passed (a test's paused time): tokio's sleep only.
    Paused,
}

/// Waits for arrival times; one per arrival-rate runtime.
pub struct Pacer {
    tokio_only: bool,
    clock: Clock,
    /// Created on first use; `None` after its creation failed (then tokio's sleep).
    timer: Option<AsyncFd<OwnedFd>>,
    timer_failed: bool,
    /// The timer may hold an expiry nobody read (a wait was cancelled).
    armed: bool,
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer::new()
    }
}

impl Pacer {
    pub fn new() -> Pacer {
        Pacer {
            tokio_only: TOKIO_PACING.load(Ordering::Relaxed),
            clock: Clock::Unknown,
            timer: None,
            timer_failed: false,
            armed: false,
        }
    }

    /// Resolves at `due` (at once when it is past). Cancel-safe.
    pub async fn wait_until(&mut self, due: Instant) {
        if self.tokio_only || self.clock == Clock::Paused {
            return tokio::time::sleep_until(due).await;
        }
        let now = Instant::now();
        if now >= due {
            return;
        }
        if due - now > SPIN {
            let wake = due - SPIN;
            if self.clock == Clock::Real && self.ensure_timer() {
                if let Err(e) = self.sleep_timer(wake).await {
                    tracing::warn!(error = %e, "the arrival timerfd failed; pacing with tokio's timer from now on");
                    self.timer = None;
                    self.timer_failed = true;
                }
            } else if due - now > SPIN + TOKIO_TICK {
                tokio::time::sleep_until(wake - TOKIO_TICK).await;
            }
        }
        self.yield_until(due).await;
    }

    fn ensure_timer(&mut self) -> bool {
        if self.timer.is_none() && !self.timer_failed {
            use rustix::time::{timerfd_create, TimerfdClockId, TimerfdFlags};
            let made = timerfd_create(
                TimerfdClockId::Monotonic,
                TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
            )
            .map_err(std::io::Error::from)
            // `AsyncFd::new` is deprecated for inner types whose descriptor could change
            // under the reactor; an `OwnedFd` owns one descriptor for its whole life and is
            // never handed out mutably here, which is the requirement of the `unsafe`
            // `register` this crate cannot call (`forbid(unsafe_code)`)
            .and_then(|fd| {
                #[allow(deprecated)]
                AsyncFd::with_interest(fd, tokio::io::Interest::READABLE)
            });
            match made {
                Ok(fd) => self.timer = Some(fd),
                Err(e) => {
                    tracing::warn!(error = %e, "no timerfd for arrival pacing; pacing with tokio's timer");
                    self.timer_failed = true;
                }
            }
        }
        self.timer.is_some()
    }

    /// Sleeps on the timerfd until `wake` (tokio's `Instant` is the monotonic clock here:
    /// `Clock::Real` was seen).
    async fn sleep_timer(&mut self, wake: Instant) -> std::io::Result<()> {
        use rustix::time::{timerfd_settime, Itimerspec, TimerfdTimerFlags, Timespec};
        let Some(fd) = &self.timer else {
            return Ok(());
        };
        let mut buf = [0u8; 8];
        if self.armed {
            // a cancelled wait may have left an expiry behind: drop it before re-arming
            let _ = rustix::io::read(fd.get_ref(), &mut buf);
        }
        let left = wake.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        let spec = Itimerspec {
            it_interval: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: Timespec::try_from(left).map_err(std::io::Error::other)?,
        };
        timerfd_settime(fd.get_ref(), TimerfdTimerFlags::empty(), &spec)?;
        self.armed = true;
        loop {
            let mut ready = fd.readable().await?;
            match rustix::io::read(fd.get_ref(), &mut buf) {
                Ok(_) => {
                    self.armed = false;
                    return Ok(());
                }
                Err(e) if e == rustix::io::Errno::AGAIN => ready.clear_ready(),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Yields to the runtime until `due`, watching whether tokio's clock is the real one.
    async fn yield_until(&mut self, due: Instant) {
        let (t0, r0) = (Instant::now(), std::time::Instant::now());
        loop {
            let now = Instant::now();
            let real = r0.elapsed();
            if now >= due {
                let moved = now - t0;
                if self.clock == Clock::Unknown
                    && !moved.is_zero()
                    && moved.abs_diff(real) < Duration::from_micros(500)
                {
                    self.clock = Clock::Real;
                }
                return;
            }
            if now == t0 && real > FROZEN_AFTER {
                tracing::debug!("tokio's clock is paused; pacing arrivals with its timer");
                self.clock = Clock::Paused;
                return tokio::time::sleep_until(due).await;
            }
            if real > SPIN_CAP {
                return tokio::time::sleep_until(due).await;
            }
            tokio::task::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lateness of `n` waits `gap` apart, each measured right after it resolved.
    async fn lateness(pacer: &mut Pacer, n: u32, gap: Duration) -> Vec<Duration> {
        let start = Instant::now() + Duration::from_millis(2);
        let mut late = Vec::new();
        for i in 1..=n {
            let due = start + gap * i;
            pacer.wait_until(due).await;
            let now = Instant::now();
            assert!(now >= due, "woke before the due time");
            late.push(now - due);
        }
        late
    }

    #[tokio::test(flavor = "current_thread")]
    async fn precise_waits_end_at_the_due_time_and_use_the_timer() {
        let mut pacer = Pacer::new();
        let late = lateness(&mut pacer, 40, Duration::from_micros(2_300)).await;
        assert_eq!(pacer.clock, Clock::Real);
        assert!(pacer.timer.is_some(), "the timerfd is in use");
        // on a shared machine single wake-ups can be late; the median must not be a tick
        let mut sorted = late.clone();
        sorted.sort();
        assert!(
            sorted[sorted.len() / 2] < Duration::from_micros(500),
            "median lateness {:?}",
            sorted[sorted.len() / 2]
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn paused_time_is_noticed_and_waits_follow_tokio() {
        let mut pacer = Pacer::new();
        let start = Instant::now();
        for i in 1..=5u32 {
            let due = start + Duration::from_millis(10) * i;
            pacer.wait_until(due).await;
            assert!(Instant::now() >= due);
        }
        assert_eq!(pacer.clock, Clock::Paused);
        assert!(pacer.timer.is_none());
        // an hour of paused time passes at once
        let hour = start + Duration::from_secs(3600);
        let real = std::time::Instant::now();
        pacer.wait_until(hour).await;
        assert!(Instant::now() >= hour);
        assert!(real.elapsed() < Duration::from_secs(60));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_cancelled_wait_is_cleaned_up_by_the_next() {
        let mut pacer = Pacer::new();
        lateness(&mut pacer, 3, Duration::from_millis(2)).await; // the clock is known
        let far = Instant::now() + Duration::from_millis(5);
        let cut = tokio::time::timeout(Duration::from_millis(1), pacer.wait_until(far)).await;
        assert!(cut.is_err());
        assert!(pacer.armed, "the cancelled wait left its timer armed");
        tokio::time::sleep(Duration::from_millis(6)).await; // its expiry fires unread
        let due = Instant::now() + Duration::from_millis(3);
        pacer.wait_until(due).await;
        assert!(Instant::now() >= due);
        assert!(!pacer.armed, "the next wait read its own expiry");
    }
}

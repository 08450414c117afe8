//! Liveness between the controller and its workers: one definition for both sides, so that a
//! worker cut off from its controller has stopped its load strictly before the controller
//! hands that worker's share to the others (otherwise the target sees both for a while).
//!
//! With `I` the plan's snapshot interval:
//!
//! ```text
//! controller ─ Ping every heartbeat(I) ─────────────────────────►  worker (answers Pong)
//! controller ◄──────────── Snapshot every I, Pong per Ping ──────  worker
//!
//! t_m  the last word from the worker reaches the controller
//!      controller: a worker is lost when controller_gives_up(I) = 2.5·I of wall-clock time
//!      passed since t_m (checked at that deadline), and its share is handed out at once
//! t_p  the last Ping reaches the worker; its Pong may be lost, the one before arrived:
//!      t_p ≤ t_m + heartbeat(I)
//!      worker: gives up after worker_silence(I) without a word and stops all load within
//!      stop_bound(I): done by t_p + worker_silence(I) + stop_bound(I)
//! ```
//!
//! so the worker is done by `t_m + heartbeat + worker_silence + stop_bound` (2.125·I below
//! 8/3 s of interval, see the test), strictly before `t_m + 2.5·I`; and `worker_silence +
//! stop_bound ≤ 5 s` keeps the documented promise that load stops within 5 s of losing the
//! controller, whatever the interval.
//!
//! Why 2.5 intervals: the promise to users is that a lost worker's share is running
//! elsewhere within 3 intervals of its last word. The deadline itself cannot be 3: the
//! check, the `Reassign` fan-out and the stream's end reaching the worker take time of
//! their own, which at a thousand workers is a sizeable part of an interval; the half
//! interval is their budget. A healthy worker speaks every heartbeat (its `Pong`s, a
//! quarter of `worker_silence`) and every interval (its snapshot), so 2.5 intervals of
//! silence is six missed pongs and two missed snapshots, never a slow but live worker.
//!
//! A stall of the controller process itself (SIGSTOP, a long pause of its host) is not the
//! workers' silence: beyond one interval it is left out of it, so what the workers sent
//! meanwhile is read first (`controller/src/coordinator/heard.rs`).
use std::time::Duration;

/// Intervals within which a silent running worker's share is running elsewhere: the
/// promise; the deadline ([`controller_gives_up`]) leaves room for acting on it.
pub const ACT_WITHIN_INTERVALS: u32 = 3;

/// How long a running worker may send nothing before the controller declares it lost and
/// reassigns its share: 2.5 intervals (wall-clock time, checked at the deadline; see the
/// module docs for why not 3).
pub fn controller_gives_up(interval: Duration) -> Duration {
    interval * 5 / 2
}

/// How long a running worker waits without any word from its controller before it gives
/// up: 1.5 intervals, at most 4 s.
pub fn worker_silence(interval: Duration) -> Duration {
    (interval * 3 / 2).min(Duration::from_secs(4))
}

/// How often the controller pings each running worker: four times per
/// [`worker_silence`], so a few lost or late pings never trip it.
pub fn heartbeat(interval: Duration) -> Duration {
    worker_silence(interval) / 4
}

/// Once a worker gave up: running iterations get this long to finish before they are
/// cancelled hard. A quarter interval, at most 1 s.
pub fn stop_bound(interval: Duration) -> Duration {
    (interval / 4).min(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worker_stops_strictly_before_the_controller_reassigns_and_within_5s() {
        // every interval a plan accepts (100 ms to 60 s), in 10 ms steps
        for ms in (100..=60_000).step_by(10) {
            let i = Duration::from_millis(ms);
            let worker_done = heartbeat(i) + worker_silence(i) + stop_bound(i);
            assert!(
                worker_done < controller_gives_up(i),
                "interval {i:?}: worker done after {worker_done:?}, controller reassigns after {:?}",
                controller_gives_up(i)
            );
            assert!(worker_silence(i) + stop_bound(i) <= Duration::from_secs(5));
            // half an interval is left to act within the promise
            assert!(controller_gives_up(i) + i / 2 <= i * ACT_WITHIN_INTERVALS);
            // a live worker speaks (pongs) several times within the deadline
            assert!(heartbeat(i) * 6 <= controller_gives_up(i));
            // a heartbeat or two may be late without the worker giving up
            assert!(heartbeat(i) * 3 < worker_silence(i));
        }
    }

    #[test]
    fn at_the_default_interval() {
        let i = Duration::from_secs(1);
        assert_eq!(controller_gives_up(i), Duration::from_millis(2500));
        assert_eq!(worker_silence(i), Duration::from_millis(1500));
        assert_eq!(heartbeat(i), Duration::from_millis(375));
        assert_eq!(stop_bound(i), Duration::from_millis(250));
    }
}

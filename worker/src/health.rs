//! The worker measuring itself ([`barrage_core::validity::WorkerHealth`]), so a run can
//! prove it delivered its plan (issue 12 §4): at every snapshot cut the [`Monitor`] adds
//! to the engine's own counts (VUs planned against running, iterations started: kept by
//! the registry) what only the worker's thread can see:
//!
//! - **CPU**: the thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`, the kernel's utime+stime
//!   of this thread, in ns) over the interval's wall time. Everything a worker does runs on
//!   this one thread (VUs, HTTP, the gRPC stream, this ticker), so near one core it is
//!   saturated; other processes on its core lower this figure and raise the loop lag.
//! - **Event-loop lag**: a probe wakes every [`PROBE_EVERY`] and records how late it woke
//!   (max and p99 per interval). On an idle loop that is tokio's timer granularity (up
//!   to 1 ms); a busy or starved thread wakes it later.
//! - **Iterations due** (open model): how many of this worker's share of the arrival
//!   schedule fell in the interval, counted from the plan alone (`iteration_start`,
//!   `owns_iteration`), to compare with the iterations it started.
//!
//! An interval in which the segment changed (`Reassign`) or a stop came is flagged
//! `schedule_changed` (its counts are not compared); after a stop nothing is due.
use crate::registry::Registry;
use barrage_core::metrics::builtin;
use barrage_core::validity::WorkerHealth;
use barrage_core::{ExecutorConfig, Plan, Segment, Sink, Snapshot};
use std::cell::RefCell;
use std::rc::Rc;
use tokio::sync::watch;
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often the loop-lag probe wakes.
pub const PROBE_EVERY: Duration = Duration::from_millis(10);

/// What the monitor watches of the run.
pub struct Watched {
    pub plan: Rc<Plan>,
    /// The worker's current share (a `Reassign` changes it).
    pub segment: watch::Receiver<Segment>,
    /// A graceful stop was asked for.
    pub stop: watch::Receiver<Option<Duration>>,
    /// The hard stop.
    pub hard: CancellationToken,
    /// Stage time 0 and the interval.
    pub start: Instant,
    pub every: Duration,
}

struct State {
    /// Thread CPU time and instant at the last cut (or at stage time 0).
    cpu_at: Duration,
    wall_at: Instant,
    /// This interval's probe lateness, µs.
    lag_us: Vec<u64>,
    /// Open model: per open scenario, the first global iteration not yet counted as due.
    cursors: Vec<u64>,
    /// The segment at the last cut.
    segment: Segment,
    /// A stop was seen at an earlier cut: nothing more is due.
    stopped: bool,
}

/// The worker's self-measurement over a run (see the module docs).
pub struct Monitor {
    w: Watched,
    /// The open-model scenarios (start time, executor): a plan's one `[scenario]`, or
    /// those of its `[scenarios]` that are arrival-rate ones.
    open: Vec<(Duration, ExecutorConfig)>,
    state: RefCell<State>,
}

/// This thread's CPU time so far.
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        t.tv_sec.max(0) as u64,
        t.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// The first global iteration at or after `from` whose start is not before `t` (iterations
/// past the schedule's end count as never before `t`). `iteration_start` grows with `i`,
/// so a galloping then binary search needs O(log n) calls.
fn first_not_before(exec: &ExecutorConfig, from: u64, t: Duration) -> u64 {
    let before = |i: u64| exec.iteration_start(i).is_some_and(|s| s < t);
    if !before(from) {
        return from;
    }
    let (mut lo, mut step) = (from, 1u64);
    let mut hi = loop {
        let probe = lo.saturating_add(step);
        if probe == u64::MAX || !before(probe) {
            break probe;
        }
        lo = probe;
        step = step.saturating_mul(2);
    };
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if before(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// Iterations of `seg` among global iterations `[from, to)`.
fn owned(seg: &Segment, from: u64, to: u64) -> u64 {
    (from..to).filter(|&i| seg.owns_iteration(i)).count() as u64
}

/// The 99th percentile (nearest rank) of `v`, which it sorts.
fn p99(v: &mut [u64]) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    let rank = ((v.len() as f64) * 0.99).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

impl Monitor {
    pub fn new(w: Watched) -> Rc<Monitor> {
        let segment = *w.segment.borrow();
        let open: Vec<(Duration, ExecutorConfig)> = w
            .plan
            .scenario_runs()
            .into_iter()
            .filter(|r| r.plan.scenario.is_arrival_rate())
            .map(|r| (r.start_time, r.plan.scenario))
            .collect();
        Rc::new(Monitor {
            state: RefCell::new(State {
                cpu_at: thread_cpu(),
                wall_at: w.start,
                lag_us: Vec::new(),
                cursors: vec![0; open.len()],
                segment,
                stopped: false,
            }),
            open,
            w,
        })
    }

    /// The loop-lag probe: from stage time 0 until `until` is cancelled, wakes every
    /// [`PROBE_EVERY`] and records how late it woke. Resets the CPU baseline at the start.
    pub async fn probe(&self, until: &CancellationToken) {
        tokio::select! {
            biased;
            _ = until.cancelled() => return,
            _ = tokio::time::sleep_until(self.w.start) => {}
        }
        {
            let mut st = self.state.borrow_mut();
            st.cpu_at = thread_cpu();
            st.wall_at = Instant::now();
        }
        let mut due = self.w.start;
        loop {
            due += PROBE_EVERY;
            tokio::select! {
                biased;
                _ = until.cancelled() => return,
                _ = tokio::time::sleep_until(due) => {}
            }
            let now = Instant::now();
            let late = now.saturating_duration_since(due);
            self.state
                .borrow_mut()
                .lag_us
                .push(late.as_micros().min(u64::MAX as u128) as u64);
            if late > PROBE_EVERY {
                // a stalled thread: measure from now on, not a burst of catch-up wake-ups
                due = now;
            }
        }
    }

    /// The health of interval `seq`, cut now: `snapshot` is the interval's cut (for its
    /// dropped iterations) and `registry` hands over the engine's counts.
    pub fn cut(&self, seq: u64, snapshot: &Snapshot, registry: &Registry) -> WorkerHealth {
        let (vus, started) = registry.take_engine_counts();
        let now = Instant::now();
        let cpu_now = thread_cpu();
        let mut st = self.state.borrow_mut();
        let wall = now.saturating_duration_since(st.wall_at);
        let cpu = if wall.is_zero() {
            0.0
        } else {
            cpu_now.saturating_sub(st.cpu_at).as_secs_f64() / wall.as_secs_f64()
        };
        st.cpu_at = cpu_now;
        st.wall_at = now;
        let loop_lag_max_us = st.lag_us.iter().copied().max().unwrap_or(0);
        let loop_lag_p99_us = p99(&mut st.lag_us);
        st.lag_us.clear();
        let segment = *self.w.segment.borrow();
        let stopping = self.w.stop.borrow().is_some() || self.w.hard.is_cancelled();
        let mut changed = segment != st.segment || (stopping && !st.stopped);
        st.segment = segment;
        let iterations_due = (!self.open.is_empty()).then(|| {
            if st.stopped {
                return 0;
            }
            let end = self.w.every * (seq as u32 + 1);
            let mut n = 0;
            for ((at, exec), cursor) in self.open.iter().zip(st.cursors.iter_mut()) {
                // a scenario's schedule runs from its start time
                let Some(local) = end.checked_sub(*at) else {
                    continue;
                };
                let to = first_not_before(exec, *cursor, local);
                n += owned(&segment, *cursor, to);
                *cursor = to;
            }
            n
        });
        if stopping {
            st.stopped = true;
        }
        if iterations_due.is_none() {
            changed = false;
        }
        let iterations_dropped = match snapshot.submetric(builtin::DROPPED_ITERATIONS, &[]) {
            Some(Sink::Counter(c)) => c.sum.max(0.0) as u64,
            _ => 0,
        };
        WorkerHealth {
            cpu,
            cpu_wall_us: wall.as_micros().min(u64::MAX as u128) as u64,
            loop_lag_max_us,
            loop_lag_p99_us,
            vus,
            iterations_started: started,
            iterations_due,
            iterations_dropped,
            schedule_changed: changed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use barrage_core::Stage;

    #[test]
    fn due_counts_follow_the_schedule_and_the_share() {
        let exec = ExecutorConfig::RampingArrivalRate {
            start_rate: 0,
            time_unit: Duration::from_secs(1),
            stages: vec![Stage::new(2, 100), Stage::new(2, 100)],
            pre_allocated_vus: 1,
            max_vus: 1,
            arrivals: Default::default(),
        };
        let s = Duration::from_secs;
        // 0→100/s over 2 s: 100 iterations; then 100/s for 2 s: 200 more
        let at1 = first_not_before(&exec, 0, s(1));
        let at2 = first_not_before(&exec, at1, s(2));
        let end = first_not_before(&exec, at2, s(60));
        assert_eq!((at1, at2, end), (25, 100, 300));
        assert_eq!(
            first_not_before(&exec, end, s(61)),
            end,
            "nothing after the end"
        );
        // the shares of two workers add up to every iteration, each about half
        let halves = Segment::split_even(2);
        let a = owned(&halves[0], 0, end);
        let b = owned(&halves[1], 0, end);
        assert_eq!(a + b, 300);
        assert!(a.abs_diff(b) <= 2, "{a} {b}");
    }

    #[test]
    fn p99_is_the_nearest_rank() {
        let mut v: Vec<u64> = (1..=200).collect();
        assert_eq!(p99(&mut v), 198);
        assert_eq!(p99(&mut [7]), 7);
        assert_eq!(p99(&mut []), 0);
    }
}

//! What the target consumed during a run: [`TargetSummary`], the `target_telemetry` section of
//! `summary.json`, and [`TelemetryRecorder`], the pure accumulator that turns raw readings of
//! the target's processes (or its cgroup) into it.
//!
//! Why it is here: a tier comparison is about efficiency (requests and flows per CPU-second,
//! memory at a given CPU quota), and a throughput figure without what it cost the target says
//! little. The controller reads the kernel (`/proc`, cgroups) every interval and hands each
//! reading to the recorder; the recorder never reads anything itself, so its arithmetic is
//! tested without processes.
//!
//! CPU is cumulative (user + system seconds since some origin); per-interval CPU % is the
//! difference of two readings over the wall time between them (100 % = one core busy). The
//! run's `cpu_seconds` is the last reading minus the first: what the target spent while the
//! load ran, not its start-up.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How many LLM calls one agent-flow iteration makes: `runs/wait`, `runs/stream` and the
/// stateless `runs/wait` each run the graph once, and the graph calls the model once.
pub const LLM_CALLS_PER_FLOW: u64 = 3;

/// The target's resource use over a run (`summary.json`'s `target_telemetry`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TargetSummary {
    /// What was measured: `pid 1234 and descendants`, `cgroup v1 /sys/fs/cgroup/...`,
    /// `container NAME`.
    pub source: String,
    /// Readings taken.
    pub samples: u64,
    /// Wall time between the first and the last reading, seconds.
    pub wall_s: f64,
    /// User + system CPU seconds spent between the first and the last reading.
    pub cpu_seconds: f64,
    /// Mean CPU over the run, % of one core.
    pub cpu_mean_pct: f64,
    /// Highest CPU of one interval, % of one core.
    pub cpu_peak_pct: f64,
    /// The CPU quota (cores) when the target ran under a limit.
    pub cpu_quota_cores: Option<f64>,
    /// Mean CPU, % of the quota.
    pub cpu_mean_pct_of_quota: Option<f64>,
    /// Peak interval CPU, % of the quota.
    pub cpu_peak_pct_of_quota: Option<f64>,
    /// The memory limit when the target ran under one, bytes.
    pub memory_limit_bytes: Option<u64>,
    /// Highest resident memory seen (a cgroup's own high-water mark when it keeps one), bytes.
    pub rss_peak_bytes: u64,
    /// Mean resident memory over the readings, bytes.
    pub rss_mean_bytes: u64,
    /// Highest thread count seen.
    pub threads_peak: u64,
    /// Highest count of open file descriptors seen.
    pub fds_peak: u64,
    /// `http_reqs` per CPU-second of the target.
    pub requests_per_cpu_second: Option<f64>,
    /// Completed iterations per CPU-second of the target.
    pub flows_per_cpu_second: Option<f64>,
    /// The mock LLM's own count of calls against what the flow expects.
    pub llm_calls: Option<LlmCalls>,
    /// Set when the target ended during the run (crash, OOM kill).
    pub exit: Option<TargetExit>,
    /// One point per interval; a long run's older points are downsampled like the time
    /// series (`core/src/timeseries.rs`), so `span` says how many intervals a point covers.
    pub points: Vec<TargetPoint>,
}

/// One interval of the target (or, downsampled, `span` intervals).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TargetPoint {
    /// Interval number, 0 = the first interval after the first reading.
    pub seq: u64,
    /// Intervals the point covers (1 at full resolution).
    #[serde(default = "one")]
    pub span: u64,
    /// CPU over the interval, % of one core (a merged point: the mean).
    pub cpu_pct: f64,
    /// Resident memory at the end of the interval, bytes (a merged point: the mean).
    pub rss_bytes: u64,
    /// Open file descriptors at the end of the interval (a merged point: the mean).
    #[serde(default)]
    pub fds: u64,
}

fn one() -> u64 {
    1
}

impl crate::timeseries::Row for TargetPoint {
    fn seq(&self) -> u64 {
        self.seq
    }
    fn span(&self) -> u64 {
        self.span.max(1)
    }
    /// Means weighted by the points' spans: a merged point stands for its intervals.
    fn merge(rows: &[Self], seq: u64, span: u64) -> Self {
        let w: f64 = rows
            .iter()
            .map(|p| p.span.max(1) as f64)
            .sum::<f64>()
            .max(1.0);
        let mean = |f: fn(&TargetPoint) -> f64| {
            rows.iter()
                .map(|p| f(p) * p.span.max(1) as f64)
                .sum::<f64>()
                / w
        };
        TargetPoint {
            seq,
            span,
            cpu_pct: r3(mean(|p| p.cpu_pct)),
            rss_bytes: mean(|p| p.rss_bytes as f64).round() as u64,
            fds: mean(|p| p.fds as f64).round() as u64,
        }
    }
}

/// The mock LLM's `/stats` chat count over the run against [`LLM_CALLS_PER_FLOW`] per
/// completed agent-flow iteration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LlmCalls {
    /// Chat completions the mock LLM answered during the run (its own count).
    pub observed: u64,
    /// [`LLM_CALLS_PER_FLOW`] × completed iterations.
    pub expected: u64,
    /// Observed beyond expected (retries inside the runtime, calls of interrupted iterations).
    pub extra: u64,
    /// Expected but never seen by the LLM.
    pub missing: u64,
}

impl LlmCalls {
    pub fn reconcile(observed: u64, flows: u64) -> LlmCalls {
        let expected = flows * LLM_CALLS_PER_FLOW;
        LlmCalls {
            observed,
            expected,
            extra: observed.saturating_sub(expected),
            missing: expected.saturating_sub(observed),
        }
    }
}

/// How the target ended, when it ended during the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TargetExit {
    /// `oom-killed`, `killed by signal N`, `exited with code N`.
    pub reason: String,
    /// The kernel's OOM killer ended it (the cgroup's `oom_kill` count rose).
    pub oom_killed: bool,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// Seconds after the first reading.
    pub after_s: f64,
    /// Resident memory at the last reading before it ended, bytes.
    pub last_rss_bytes: u64,
}

/// One reading of the target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// Seconds since an origin of the caller's choosing (monotonic).
    pub at_s: f64,
    /// Cumulative user + system CPU seconds.
    pub cpu_s: f64,
    pub rss_bytes: u64,
    /// The source's own high-water mark of memory, when it keeps one.
    pub rss_max_bytes: Option<u64>,
    pub threads: u64,
    pub fds: u64,
}

/// Limits the target ran under.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Limits {
    pub cpu_cores: Option<f64>,
    pub memory_bytes: Option<u64>,
}

/// Accumulates [`Reading`]s into a [`TargetSummary`].
#[derive(Debug, Clone)]
pub struct TelemetryRecorder {
    source: String,
    limits: Limits,
    first: Option<Reading>,
    last: Option<Reading>,
    samples: u64,
    rss_sum: u128,
    rss_peak: u64,
    threads_peak: u64,
    fds_peak: u64,
    points: Vec<TargetPoint>,
    /// Points made so far (the next point's `seq`; `points` is downsampled).
    intervals: u64,
    /// The reading interval, from the first two readings: what downsampling counts in.
    interval_ms: Option<u32>,
    /// How the points are downsampled as they age (the run's time series' ladder).
    ladder: crate::timeseries::Ladder,
    exit: Option<TargetExit>,
}

fn r3(x: f64) -> f64 {
    if x.is_finite() {
        (x * 1000.0).round() / 1000.0
    } else {
        0.0
    }
}

impl TelemetryRecorder {
    pub fn new(source: impl Into<String>, limits: Limits) -> Self {
        TelemetryRecorder {
            source: source.into(),
            limits,
            first: None,
            last: None,
            samples: 0,
            rss_sum: 0,
            rss_peak: 0,
            threads_peak: 0,
            fds_peak: 0,
            points: Vec::new(),
            intervals: 0,
            interval_ms: None,
            ladder: Default::default(),
            exit: None,
        }
    }

    /// Downsamples the points as `ladder` does (the run's time series' own).
    pub fn with_ladder(mut self, ladder: crate::timeseries::Ladder) -> Self {
        self.ladder = ladder;
        self
    }

    /// The last interval's point, when there is one.
    pub fn last_point(&self) -> Option<&TargetPoint> {
        self.points.last()
    }

    /// Adds one reading; readings come in time order. A CPU counter that went backwards
    /// (a process of the tree was reaped before its parent counted it) counts as no CPU.
    pub fn push(&mut self, r: Reading) {
        if let Some(prev) = self.last {
            let dt = r.at_s - prev.at_s;
            let cpu = (r.cpu_s - prev.cpu_s).max(0.0);
            let pct = if dt > 0.0 { cpu / dt * 100.0 } else { 0.0 };
            self.points.push(TargetPoint {
                seq: self.intervals,
                span: 1,
                cpu_pct: r3(pct),
                rss_bytes: r.rss_bytes,
                fds: r.fds,
            });
            self.intervals += 1;
            let interval_ms = *self
                .interval_ms
                .get_or_insert(((dt * 1000.0).round() as u32).max(1));
            crate::timeseries::downsample(&mut self.points, interval_ms, self.ladder);
        }
        if self.first.is_none() {
            self.first = Some(r);
        }
        // cumulative CPU never decreases in the summary
        let cpu_s = self.last.map_or(r.cpu_s, |p| p.cpu_s.max(r.cpu_s));
        self.last = Some(Reading { cpu_s, ..r });
        self.samples += 1;
        self.rss_sum += u128::from(r.rss_bytes);
        self.rss_peak = self
            .rss_peak
            .max(r.rss_bytes)
            .max(r.rss_max_bytes.unwrap_or(0));
        self.threads_peak = self.threads_peak.max(r.threads);
        self.fds_peak = self.fds_peak.max(r.fds);
    }

    /// Records that the target ended (after its last reading).
    pub fn ended(&mut self, at_s: f64, oom_killed: bool, code: Option<i32>, signal: Option<i32>) {
        let reason = if oom_killed {
            "oom-killed".to_string()
        } else if let Some(s) = signal {
            format!("killed by signal {s}")
        } else {
            format!("exited with code {}", code.unwrap_or(-1))
        };
        let origin = self.first.map_or(at_s, |f| f.at_s);
        self.exit = Some(TargetExit {
            reason,
            oom_killed,
            code,
            signal,
            after_s: r3(at_s - origin),
            last_rss_bytes: self.last.map_or(0, |l| l.rss_bytes),
        });
    }

    /// A high-water mark of memory the source kept, read when no full reading can be taken
    /// (after the target ended: a cgroup still knows how high it went).
    pub fn peak(&mut self, bytes: u64) {
        self.rss_peak = self.rss_peak.max(bytes);
    }

    /// Whether [`Self::ended`] was called.
    pub fn has_ended(&self) -> bool {
        self.exit.is_some()
    }

    /// The summary so far; `requests`, `flows` (completed iterations) and the LLM's chat count
    /// come from the run.
    pub fn summary(&self, requests: f64, flows: u64, llm_observed: Option<u64>) -> TargetSummary {
        let (wall_s, cpu_seconds) = match (self.first, self.last) {
            (Some(f), Some(l)) => ((l.at_s - f.at_s).max(0.0), (l.cpu_s - f.cpu_s).max(0.0)),
            _ => (0.0, 0.0),
        };
        let cpu_mean_pct = if wall_s > 0.0 {
            cpu_seconds / wall_s * 100.0
        } else {
            0.0
        };
        let cpu_peak_pct = self.points.iter().map(|p| p.cpu_pct).fold(0.0, f64::max);
        let of_quota = |pct: f64| self.limits.cpu_cores.map(|q| r3(pct / q));
        let per_cpu = |n: f64| (cpu_seconds > 0.0).then(|| r3(n / cpu_seconds));
        TargetSummary {
            source: self.source.clone(),
            samples: self.samples,
            wall_s: r3(wall_s),
            cpu_seconds: r3(cpu_seconds),
            cpu_mean_pct: r3(cpu_mean_pct),
            cpu_peak_pct: r3(cpu_peak_pct),
            cpu_quota_cores: self.limits.cpu_cores,
            cpu_mean_pct_of_quota: of_quota(cpu_mean_pct),
            cpu_peak_pct_of_quota: of_quota(cpu_peak_pct),
            memory_limit_bytes: self.limits.memory_bytes,
            rss_peak_bytes: self.rss_peak,
            rss_mean_bytes: if self.samples > 0 {
                (self.rss_sum / u128::from(self.samples)) as u64
            } else {
                0
            },
            threads_peak: self.threads_peak,
            fds_peak: self.fds_peak,
            requests_per_cpu_second: per_cpu(requests),
            flows_per_cpu_second: per_cpu(flows as f64),
            llm_calls: llm_observed.map(|o| LlmCalls::reconcile(o, flows)),
            exit: self.exit.clone(),
            points: self.points.clone(),
        }
    }
}

/// One line for the human summary: CPU, memory, efficiency, LLM calls, the target's end.
pub fn describe(t: &TargetSummary) -> String {
    use crate::format::fmt_bytes;
    let mut parts = vec![format!(
        "cpu {:.2}s (mean {:.1}%, peak {:.1}% of a core{})",
        t.cpu_seconds,
        t.cpu_mean_pct,
        t.cpu_peak_pct,
        t.cpu_quota_cores
            .map(|q| format!("; quota {q} cores"))
            .unwrap_or_default()
    )];
    parts.push(format!(
        "rss peak {} mean {}",
        fmt_bytes(t.rss_peak_bytes as f64),
        fmt_bytes(t.rss_mean_bytes as f64)
    ));
    if let Some(r) = t.requests_per_cpu_second {
        parts.push(format!("{r:.1} req/cpu-s"));
    }
    if let Some(l) = &t.llm_calls {
        parts.push(format!(
            "llm calls {} (expected {}, extra {}, missing {})",
            l.observed, l.expected, l.extra, l.missing
        ));
    }
    if let Some(e) = &t.exit {
        parts.push(format!("ENDED: {} after {:.1}s", e.reason, e.after_s));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(at_s: f64, cpu_s: f64, rss: u64) -> Reading {
        Reading {
            at_s,
            cpu_s,
            rss_bytes: rss,
            rss_max_bytes: None,
            threads: 4,
            fds: 10,
        }
    }

    #[test]
    fn cpu_rss_and_efficiency() {
        let mut r = TelemetryRecorder::new(
            "pid 1",
            Limits {
                cpu_cores: Some(0.5),
                memory_bytes: Some(512 << 20),
            },
        );
        r.push(reading(10.0, 3.0, 100)); // start-up CPU before the run is not counted
        r.push(reading(11.0, 3.25, 300));
        r.push(reading(12.0, 3.75, 200));
        let s = r.summary(100.0, 10, Some(31));
        assert_eq!(s.samples, 3);
        assert_eq!(s.cpu_seconds, 0.75);
        assert_eq!(s.wall_s, 2.0);
        assert_eq!(s.cpu_mean_pct, 37.5);
        assert_eq!(s.cpu_peak_pct, 50.0);
        assert_eq!(s.cpu_mean_pct_of_quota, Some(75.0));
        assert_eq!(s.cpu_peak_pct_of_quota, Some(100.0));
        assert_eq!(s.rss_peak_bytes, 300);
        assert_eq!(s.rss_mean_bytes, 200);
        assert_eq!(s.requests_per_cpu_second, Some(133.333));
        assert_eq!(s.flows_per_cpu_second, Some(13.333));
        assert_eq!(
            s.points,
            vec![
                TargetPoint {
                    seq: 0,
                    span: 1,
                    cpu_pct: 25.0,
                    rss_bytes: 300,
                    fds: 10
                },
                TargetPoint {
                    seq: 1,
                    span: 1,
                    cpu_pct: 50.0,
                    rss_bytes: 200,
                    fds: 10
                },
            ]
        );
        assert_eq!(
            s.llm_calls,
            Some(LlmCalls {
                observed: 31,
                expected: 30,
                extra: 1,
                missing: 0
            })
        );
        assert!(s.exit.is_none());
    }

    #[test]
    fn a_cpu_counter_going_back_counts_nothing() {
        let mut r = TelemetryRecorder::new("pid 1", Limits::default());
        r.push(reading(0.0, 2.0, 1));
        r.push(reading(1.0, 1.5, 1)); // a child was reaped before the parent counted it
        r.push(reading(2.0, 2.5, 1));
        let s = r.summary(0.0, 0, None);
        assert_eq!(s.points[0].cpu_pct, 0.0);
        assert_eq!(s.cpu_seconds, 0.5);
        assert_eq!(s.requests_per_cpu_second, Some(0.0));
        assert_eq!(s.cpu_mean_pct_of_quota, None);
    }

    #[test]
    fn peak_uses_the_sources_high_water_mark_and_exit_keeps_the_last_rss() {
        let mut r = TelemetryRecorder::new("cgroup", Limits::default());
        r.push(Reading {
            rss_max_bytes: Some(900),
            ..reading(0.0, 0.0, 100)
        });
        r.push(reading(0.5, 0.1, 250));
        r.ended(0.75, true, None, Some(9));
        let s = r.summary(0.0, 0, Some(0));
        assert_eq!(s.rss_peak_bytes, 900);
        let exit = s.exit.clone().unwrap();
        assert_eq!(exit.reason, "oom-killed");
        assert!(exit.oom_killed);
        assert_eq!(exit.after_s, 0.75);
        assert_eq!(exit.last_rss_bytes, 250);
        let line = describe(&s);
        assert!(line.contains("ENDED: oom-killed after 0.8s"), "{line}");
        assert!(line.contains("llm calls 0 (expected 0"), "{line}");
        let mut r = TelemetryRecorder::new("pid", Limits::default());
        r.ended(1.0, false, Some(3), None);
        assert_eq!(
            r.summary(0.0, 0, None).exit.unwrap().reason,
            "exited with code 3"
        );
    }

    #[test]
    fn llm_calls_missing() {
        assert_eq!(
            LlmCalls::reconcile(5, 2),
            LlmCalls {
                observed: 5,
                expected: 6,
                extra: 0,
                missing: 1
            }
        );
    }
}

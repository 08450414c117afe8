//! Summaries made from generated samples through the real pipeline: snapshots per interval,
//! the time series, the threshold evaluator and `summary::assemble`, so the tests read the
//! same `summary.json` a run writes.
use barrage_core::metrics::builtin;
use barrage_core::summary::{self, RunFacts, RunMode, Summary};
use barrage_core::threshold::ThresholdSet;
use barrage_core::timeseries::{TimePoint, TimeSeries};
use barrage_core::{MetricKind, Plan, Profile, SeriesKey, Snapshot};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The agent flow's operations and their base latency, ms.
pub const OPS: &[(&str, f64)] = &[
    ("create_assistant", 2.0),
    ("create_thread", 1.5),
    ("run_wait", 20.0),
    ("run_stream", 25.0),
    ("get_state", 1.0),
];

/// What to generate.
#[derive(Debug, Clone)]
pub struct Synth {
    pub runtime: &'static str,
    pub tier: Option<&'static str>,
    pub seed: u64,
    pub intervals: u64,
    /// Flows per interval (each makes one request per operation of [`OPS`]), ±10 %.
    pub flows_per_interval: u32,
    /// Flows in interval `seq`, exactly: replaces `flows_per_interval` and its jitter.
    pub flows_at: Option<fn(u64) -> u32>,
    /// Every latency multiplied by this.
    pub latency_factor: f64,
    /// Share of failed requests, 0..1.
    pub fail_share: f64,
}

impl Default for Synth {
    fn default() -> Self {
        Synth {
            runtime: "ts",
            tier: None,
            seed: 1,
            intervals: 30,
            flows_per_interval: 40,
            flows_at: None,
            latency_factor: 1.0,
            fail_share: 0.0,
        }
    }
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

impl Synth {
    pub fn summary(&self) -> Summary {
        let mut plan = Plan::profile(Profile::Smoke);
        plan.target.runtime = self.runtime.into();
        plan.target.tier = self.tier.map(Into::into);
        let mut rng = StdRng::seed_from_u64(self.seed);
        let mut total = Snapshot::default();
        let mut ts = TimeSeries {
            interval_ms: 1000,
            start_unix_us: 1_700_000_000_000_000,
            points: Vec::new(),
            ladder: Default::default(),
        };
        for seq in 0..self.intervals {
            let mut snap = Snapshot {
                seq,
                interval_ms: 1000,
                vus: 5,
                vus_max: 5,
                ..Snapshot::default()
            };
            // ±10 % flows per interval
            let jitter = 1.0 + 0.1 * (rng.random::<f64>() * 2.0 - 1.0);
            let flows = match self.flows_at {
                Some(f) => f(seq),
                None => (f64::from(self.flows_per_interval) * jitter).round() as u32,
            };
            for _ in 0..flows {
                let mut flow_ms = 0.0;
                for (op, base) in OPS {
                    let ms = base * self.latency_factor * (0.25 * normal(&mut rng)).exp();
                    flow_ms += ms;
                    let tags = [("operation", *op)];
                    snap.add(
                        SeriesKey::with_tags(builtin::HTTP_REQ_DURATION, tags),
                        MetricKind::Trend,
                        (ms * 1000.0).round(),
                    );
                    snap.add(
                        SeriesKey::with_tags(builtin::HTTP_REQS, tags),
                        MetricKind::Counter,
                        1.0,
                    );
                    let failed = rng.random::<f64>() < self.fail_share;
                    snap.add(
                        SeriesKey::with_tags(builtin::HTTP_REQ_FAILED, tags),
                        MetricKind::Rate,
                        if failed { 1.0 } else { 0.0 },
                    );
                }
                snap.add(
                    SeriesKey::new(builtin::AGENT_FLOW_DURATION),
                    MetricKind::Trend,
                    (flow_ms * 1000.0).round(),
                );
                snap.add(
                    SeriesKey::new(builtin::ITERATIONS),
                    MetricKind::Counter,
                    1.0,
                );
            }
            ts.push(TimePoint::from_interval(seq, &snap, 1));
            total.accumulate(&snap).expect("same kinds");
        }
        let elapsed = Duration::from_secs(self.intervals);
        let verdicts = ThresholdSet::from_plan(&plan)
            .expect("the smoke profile's thresholds parse")
            .evaluate(&total, elapsed);
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        summary::assemble(RunFacts {
            mode: RunMode::Controller,
            plan: &plan,
            rig: summary::rig("synth"),
            host: summary::HostInfo {
                hostname: "synth".into(),
                cpu_model: "Synthetic CPU 9000".into(),
                cores: 2,
                ram_bytes: 24 << 30,
                os: "Debian".into(),
                kernel: "6.1".into(),
            },
            start,
            end: start + elapsed,
            elapsed,
            total: &total,
            timeseries: &ts,
            stages: None,
            target_telemetry: None,
            workers: Vec::new(),
            verdicts: &verdicts,
            end_reason: "completed".into(),
            exit_code: 0,
            late_snapshots: 0,
            validity: None,
        })
    }

    /// Writes the summary as `dir/name.summary.json`.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(format!("{name}.summary.json"));
        let json = serde_json::to_vec_pretty(&self.summary()).expect("a summary serializes");
        std::fs::write(&path, json).expect("write the summary");
        path
    }
}

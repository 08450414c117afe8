//! The seam between a flow (what one iteration does) and the engine (who runs iterations,
//! when, and where samples go). A flow records [`Sample`]s through a [`Record`]er and
//! answers one iteration at a time through [`Scenario::iteration`]; the engine owns VUs,
//! executors, the metrics registry and the controller link.
//!
//! Units: Trend samples of times are **microseconds**; Rate samples are `1.0` (true) or
//! `0.0` (false); Counter samples are the amount added (requests, bytes, iterations).
use barrage_core::MetricKind;
use futures_util::future::LocalBoxFuture;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// One measurement. Tags are borrowed so that recording allocates nothing at the call site.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    pub metric: &'a str,
    pub kind: MetricKind,
    /// `(key, value)` pairs, in any order (the registry sorts them into a series key).
    pub tags: &'a [(&'a str, &'a str)],
    pub value: f64,
}

/// Index of a series interned by one recorder ([`Record::series`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesId(pub u32);

/// Where samples go. Implemented by the worker's registry (interior mutability: VUs of one
/// worker share one single-threaded registry).
///
/// Two ways to record: [`Record::record`] finds the sample's series from its metric and
/// tags every time; a caller that records the same series over and over (a flow step:
/// ~10 samples per request) resolves it once with [`Record::series`] and then records by
/// id with [`Record::record_series`], skipping the hashing, sorting and comparing of the
/// key. [`CachedSeries`] does this bookkeeping.
pub trait Record {
    fn record(&self, sample: Sample<'_>);

    /// The series of `metric` + `tags` (the recorder's own tags merged in as `record`
    /// does), created when new. `None` when the series exists with another kind: such
    /// samples go through `record`, which counts and drops them.
    fn series(&self, metric: &str, kind: MetricKind, tags: &[(&str, &str)]) -> Option<SeriesId>;

    /// Records `value` into a series returned by this recorder's `series`.
    fn record_series(&self, id: SeriesId, value: f64);

    /// Tells recorders apart: ids from `series` are valid only with the recorder whose
    /// `instance` was the same. Unique per recorder for the life of the process.
    fn instance(&self) -> u64;
}

/// A fresh value for [`Record::instance`].
pub fn next_instance() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A series resolved on first use, then recorded by id. Valid for one recorder: the owner
/// of a cache resets it when [`Record::instance`] changes.
#[derive(Debug, Default, Clone, Copy)]
pub struct CachedSeries(Option<SeriesId>);

impl CachedSeries {
    pub fn record(
        &mut self,
        recorder: &dyn Record,
        metric: &str,
        kind: MetricKind,
        tags: &[(&str, &str)],
        value: f64,
    ) {
        let id = match self.0 {
            Some(id) => id,
            None => match recorder.series(metric, kind, tags) {
                Some(id) => *self.0.insert(id),
                None => {
                    return recorder.record(Sample {
                        metric,
                        kind,
                        tags,
                        value,
                    })
                }
            },
        };
        recorder.record_series(id, value);
    }
}

/// What the engine tells a flow about the iteration it is about to run.
#[derive(Clone, Copy)]
pub struct IterationCtx<'a> {
    /// Global VU number (1-based, unique across workers: segment offset + local index).
    pub vu: u64,
    /// This VU's iteration number (0-based).
    pub iteration: u64,
    /// When the iteration was meant to start: the schedule's time for arrival-rate
    /// executors (so latencies are free of coordinated omission), else the actual start.
    pub intended_start: Instant,
    /// Cancelled on a hard stop: the flow returns as soon as it can, recording only the
    /// request it cut (failed, `error=interrupted`).
    pub cancel: &'a CancellationToken,
    /// Where samples go.
    pub recorder: &'a dyn Record,
}

/// How an iteration ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IterationOutcome {
    /// Every step passed its checks.
    Success,
    /// A step failed (its request or its checks); the VU goes on with the next iteration.
    Failed { step: String, reason: String },
    /// The iteration was cut by a hard stop; counted in `interrupted_iterations`, not as a
    /// success or a failure.
    Interrupted,
}

/// A flow the engine can run: one iteration per call. VUs on one worker share one
/// `Scenario` (per-VU state lives in the flow's own per-VU structures or in the ctx).
pub trait Scenario {
    fn iteration<'a>(&'a self, ctx: IterationCtx<'a>) -> LocalBoxFuture<'a, IterationOutcome>;
}

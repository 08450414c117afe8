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

/// Where samples go. Implemented by the worker's registry (interior mutability: VUs of one
/// worker share one single-threaded registry).
pub trait Record {
    fn record(&self, sample: Sample<'_>);
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
    /// Cancelled on a hard stop: the flow returns as soon as it can, recording nothing more.
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
    /// The iteration was cut by a hard stop; not counted as a success or a failure.
    Interrupted,
}

/// A flow the engine can run: one iteration per call. VUs on one worker share one
/// `Scenario` (per-VU state lives in the flow's own per-VU structures or in the ctx).
pub trait Scenario {
    fn iteration<'a>(&'a self, ctx: IterationCtx<'a>) -> LocalBoxFuture<'a, IterationOutcome>;
}

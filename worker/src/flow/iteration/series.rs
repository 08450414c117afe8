//! The series an iteration state records into, resolved once per recorder: a step records
//! about ten samples per request, so each is looked up by id, not by metric and tags.
use super::super::http_series::HttpSeries;
use super::super::step::Step;
use crate::sample::{CachedSeries, Record};

/// The series this iteration state records into, resolved once per recorder
/// ([`crate::sample::CachedSeries`]): a step records ~10 samples per request.
#[derive(Default)]
pub(super) struct SeriesCache {
    /// The [`Record::instance`] the ids belong to.
    instance: u64,
    pub(super) flow_duration: CachedSeries,
    pub(super) flow_success: CachedSeries,
    pub(super) flow_goodput: CachedSeries,
    /// One per step, by index.
    pub(super) steps: Vec<StepSeries>,
}

#[derive(Default, Clone)]
pub(super) struct StepSeries {
    pub(super) http: HttpSeries,
    pub(super) trend: CachedSeries,
    pub(super) first_event: CachedSeries,
    pub(super) events: CachedSeries,
    pub(super) buffered: CachedSeries,
    pub(super) first_token: CachedSeries,
    /// `stream_event_gap{event}` per event name seen on this step's streams.
    pub(super) gaps: Vec<(String, CachedSeries)>,
    /// One per check, by index.
    pub(super) checks: Vec<CachedSeries>,
}

impl SeriesCache {
    /// Makes the cache fit `steps` and `recorder`, forgetting ids of another recorder.
    pub(super) fn prepare(&mut self, steps: &[Step], recorder: &dyn Record) {
        let instance = recorder.instance();
        if self.instance != instance || self.steps.len() != steps.len() {
            *self = SeriesCache {
                instance,
                steps: steps
                    .iter()
                    .map(|s| StepSeries {
                        checks: vec![CachedSeries::default(); s.checks.len()],
                        ..StepSeries::default()
                    })
                    .collect(),
                ..SeriesCache::default()
            };
        }
    }
}

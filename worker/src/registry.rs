//! The worker's metrics registry: implements [`Record`], keeps one interval [`Sink`] per
//! series, and cuts a [`Snapshot`] every interval.
//!
//! Built for the hot path (every request of every VU records several samples):
//!
//! - a series (metric + sorted tags, the plan's tags merged in) is interned to a small
//!   [`SeriesId`]; recording hashes the borrowed metric and tags (FxHash, not SipHash:
//!   it showed in the worker's profile), sorts them in a stack buffer and finds the id,
//!   so the steady state allocates nothing per sample; callers that record one series
//!   many times (a flow step) resolve it once ([`Record::series`]) and record by id;
//! - [`Registry::cut`] clones each non-empty sink into the snapshot and resets it in place
//!   (histograms keep their buckets), one allocation per series per interval;
//! - raw points (`Assignment.raw_points`) are the one per-sample allocation, and only when
//!   asked for; they are handed out in batches of [`POINT_BATCH`].
//!
//! One registry per worker, shared by its VUs on one thread (`RefCell`, never held across
//! an `.await`). A plan with several scenarios records through one [`Registry::scoped`]
//! view per scenario: the same series and sinks, its own tags (`scenario=NAME`) and its
//! own VU counts, which the cut sums.
use crate::clock::Clock;
pub use crate::sample::SeriesId;
use crate::sample::{Record, Sample};
use barrage_core::validity::VuSample;
use barrage_core::{MetricKind, Point, SeriesKey, Sink, Snapshot};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::rc::Rc;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Points per `PointBatch` at most; a full batch is handed out before the interval ends.
pub const POINT_BATCH: usize = 5000;
/// Tags sorted on the stack; a sample with more (plan tags included) takes a heap path.
const STACK_TAGS: usize = 32;

struct Series {
    key: SeriesKey,
    kind: MetricKind,
    /// This interval's aggregate; reset by `cut`.
    sink: Sink,
    /// Set when the sink holds data since the last cut.
    dirty: bool,
}

struct RawPoints {
    clock: Clock,
    current: Vec<Point>,
    full: Vec<Vec<Point>>,
    /// Woken when a batch is full.
    ready: Rc<Notify>,
}

#[derive(Default)]
struct Inner {
    series: Vec<Series>,
    /// hash of (metric, sorted tags) → candidate ids (collisions are compared exactly).
    index: HashMap<u64, Vec<u32>, BuildHasherDefault<FxHasher>>,
    raw: Option<RawPoints>,
    /// Active and allocated VUs of each view ([`Registry::scoped`]); the root is 0.
    scopes: Vec<(u64, u64)>,
    /// Their sums.
    vus: u64,
    vus_max: u64,
    /// Most VUs active / allocated at once since the last cut: what the snapshot carries,
    /// so a VU that starts and stops within one interval is still seen.
    vus_peak: u64,
    vus_max_peak: u64,
    /// Samples whose kind disagreed with their series' kind (dropped).
    kind_clashes: u64,
    /// Closed model: planned against running VUs at the executor's ticks since the last
    /// cut, per view (`None`: no tick), for the worker's health (`crate::health`). Per
    /// view, so that two scenarios' different counts do not read as a ramp.
    vu_plan: Vec<Option<VuSample>>,
    /// Iterations started since the last cut.
    started: u64,
}

/// The worker's metrics registry (see the module docs).
pub struct Registry {
    /// Shared by the root and its scoped views.
    inner: Rc<RefCell<Inner>>,
    /// This view's entry in `Inner::scopes`.
    scope: usize,
    /// The plan's tags, sorted: added to every sample (a sample's own tag wins).
    plan_tags: Vec<(String, String)>,
    hasher: BuildHasherDefault<FxHasher>,
    /// [`Record::instance`].
    instance: u64,
    /// Its iterations count as started for the open model's due-against-started check
    /// (`crate::health`): false for a closed-model scenario's view beside open ones.
    counts_starts: bool,
}

/// rustc's FxHash: one rotate-xor-multiply per 8 bytes, several times faster than the
/// std SipHash on the short strings of a series key (every sample hashes its metric and
/// tags). Not DoS-resistant, which is fine here: keys come from the plan and the flow,
/// and collisions are compared exactly anyway.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

impl FxHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            self.add(u64::from_le_bytes(b));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(b) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl Registry {
    pub fn new(plan_tags: &BTreeMap<String, String>) -> Registry {
        let inner = Inner {
            scopes: vec![(0, 0)],
            ..Inner::default()
        };
        Registry {
            inner: Rc::new(RefCell::new(inner)),
            scope: 0,
            plan_tags: plan_tags
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            hasher: BuildHasherDefault::default(),
            instance: crate::sample::next_instance(),
            counts_starts: true,
        }
    }

    /// A view recording into the same series with `tags` in place of the plan's tags and
    /// VU counts of its own (the snapshot carries the sum over the views): one per
    /// scenario of a plan with several. Its [`Record::instance`] is its own.
    pub fn scoped(&self, tags: &BTreeMap<String, String>) -> Registry {
        let scope = {
            let mut inner = self.inner.borrow_mut();
            inner.scopes.push((0, 0));
            inner.scopes.len() - 1
        };
        Registry {
            inner: self.inner.clone(),
            scope,
            plan_tags: tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            hasher: BuildHasherDefault::default(),
            instance: crate::sample::next_instance(),
            counts_starts: true,
        }
    }

    /// The same view, its started iterations counted or not (see `counts_starts`).
    pub fn counting_starts(mut self, counts: bool) -> Registry {
        self.counts_starts = counts;
        self
    }

    /// Also turn every sample into a raw point stamped with `clock`'s controller time.
    /// Returns the notifier woken whenever a batch of [`POINT_BATCH`] is ready.
    pub fn enable_raw_points(&self, clock: Clock) -> Rc<Notify> {
        let ready = Rc::new(Notify::new());
        self.inner.borrow_mut().raw = Some(RawPoints {
            clock,
            current: Vec::with_capacity(POINT_BATCH),
            full: Vec::new(),
            ready: ready.clone(),
        });
        ready
    }

    /// Interns a series ahead of time (the engine's own hot series).
    pub fn intern(&self, metric: &str, kind: MetricKind, tags: &[(&str, &str)]) -> SeriesId {
        self.with_sorted_tags(tags, |sorted| {
            let mut inner = self.inner.borrow_mut();
            self.find_or_insert(&mut inner, metric, kind, sorted)
        })
    }

    /// Adds `value` to an interned series.
    pub fn add(&self, id: SeriesId, value: f64) {
        let mut inner = self.inner.borrow_mut();
        add_to(&mut inner, id, value);
    }

    /// Active and allocated VUs now; each snapshot carries the most of each since the last
    /// cut (the run's `vus` gauge is built from those, not from a series).
    /// With scoped views, each sets its own and the snapshot carries their sums.
    pub fn set_vus(&self, vus: u64, vus_max: u64) {
        let inner = &mut *self.inner.borrow_mut();
        inner.scopes[self.scope] = (vus, vus_max);
        let (vus, vus_max) = inner
            .scopes
            .iter()
            .fold((0, 0), |(a, b), (c, d)| (a + c, b + d));
        inner.vus = vus;
        inner.vus_max = vus_max;
        inner.vus_peak = inner.vus_peak.max(vus);
        inner.vus_max_peak = inner.vus_max_peak.max(vus_max);
    }

    /// Closed model, at each executor tick: the VUs the plan wants of this worker and how
    /// many of them run (see `crate::health`).
    pub fn set_vus_plan(&self, planned: u64, active: u64) {
        let inner = &mut *self.inner.borrow_mut();
        if inner.vu_plan.len() <= self.scope {
            inner.vu_plan.resize(self.scope + 1, None);
        }
        let slot = &mut inner.vu_plan[self.scope];
        *slot = Some(
            slot.unwrap_or_default()
                .with(slot.is_none(), planned, active),
        );
    }

    /// A VU starts an iteration.
    pub fn iteration_started(&self) {
        if self.counts_starts {
            self.inner.borrow_mut().started += 1;
        }
    }

    /// The engine's counts since the last call (called at each cut, right after
    /// [`Registry::cut`]): the VU plan samples (the views' summed) and the iterations
    /// started.
    pub fn take_engine_counts(&self) -> (Option<VuSample>, u64) {
        let mut inner = self.inner.borrow_mut();
        let sum = inner
            .vu_plan
            .iter_mut()
            .filter_map(Option::take)
            .reduce(|a, b| VuSample {
                planned_min: a.planned_min + b.planned_min,
                planned_max: a.planned_max + b.planned_max,
                active_min: a.active_min + b.active_min,
                active_max: a.active_max + b.active_max,
            });
        (sum, std::mem::take(&mut inner.started))
    }

    /// This view's active and allocated VUs (the whole worker's without scoped views).
    pub fn vus(&self) -> (u64, u64) {
        self.inner.borrow().scopes[self.scope]
    }

    /// The whole worker's: the sums over every view.
    pub fn vus_total(&self) -> (u64, u64) {
        let inner = self.inner.borrow();
        (inner.vus, inner.vus_max)
    }

    /// Cuts the interval: every series with data since the last cut, and the most VUs
    /// active and allocated during the interval; the sinks are reset.
    pub fn cut(&self, seq: u64, interval_start_us: i64, interval_ms: u32) -> Snapshot {
        let inner = &mut *self.inner.borrow_mut();
        let vus = std::mem::replace(&mut inner.vus_peak, inner.vus);
        let vus_max = std::mem::replace(&mut inner.vus_max_peak, inner.vus_max);
        let mut series = BTreeMap::new();
        for s in inner.series.iter_mut().filter(|s| s.dirty) {
            series.insert(s.key.clone(), s.sink.clone());
            reset(&mut s.sink);
            s.dirty = false;
        }
        Snapshot {
            seq,
            interval_start_us,
            interval_ms,
            series,
            vus,
            vus_max,
        }
    }

    /// Every raw point recorded so far, in batches of at most [`POINT_BATCH`].
    pub fn take_points(&self) -> Vec<Vec<Point>> {
        let mut inner = self.inner.borrow_mut();
        let Some(raw) = inner.raw.as_mut() else {
            return Vec::new();
        };
        let mut out = std::mem::take(&mut raw.full);
        if !raw.current.is_empty() {
            out.push(std::mem::replace(
                &mut raw.current,
                Vec::with_capacity(POINT_BATCH),
            ));
        }
        out
    }

    /// Only the full batches (called when the notifier fires mid-interval).
    pub fn take_full_batches(&self) -> Vec<Vec<Point>> {
        let mut inner = self.inner.borrow_mut();
        inner
            .raw
            .as_mut()
            .map(|r| std::mem::take(&mut r.full))
            .unwrap_or_default()
    }

    /// Samples dropped because their kind disagreed with their series' first sample.
    pub fn kind_clashes(&self) -> u64 {
        self.inner.borrow().kind_clashes
    }

    /// Number of interned series.
    pub fn series_count(&self) -> usize {
        self.inner.borrow().series.len()
    }

    fn find_or_insert(
        &self,
        inner: &mut Inner,
        metric: &str,
        kind: MetricKind,
        sorted: &[(&str, &str)],
    ) -> SeriesId {
        let mut h = self.hasher.build_hasher();
        metric.hash(&mut h);
        for (k, v) in sorted {
            k.hash(&mut h);
            v.hash(&mut h);
        }
        let hash = h.finish();
        if let Some(ids) = inner.index.get(&hash) {
            for &id in ids {
                let key = &inner.series[id as usize].key;
                if key.metric == metric
                    && key.tags.len() == sorted.len()
                    && key
                        .tags
                        .iter()
                        .zip(sorted)
                        .all(|((a, b), (c, d))| a == c && b == d)
                {
                    return SeriesId(id);
                }
            }
        }
        let id = inner.series.len() as u32;
        inner.series.push(Series {
            key: SeriesKey {
                metric: metric.to_string(),
                tags: sorted
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
            kind,
            sink: Sink::new(kind),
            dirty: false,
        });
        inner.index.entry(hash).or_default().push(id);
        SeriesId(id)
    }

    /// Calls `f` with plan tags + `tags`, sorted by key, a repeated key keeping its last
    /// value (so a sample's tag overrides the plan's).
    fn with_sorted_tags<R>(
        &self,
        tags: &[(&str, &str)],
        f: impl FnOnce(&[(&str, &str)]) -> R,
    ) -> R {
        let n = self.plan_tags.len() + tags.len();
        if n <= STACK_TAGS {
            let mut buf: [(&str, &str); STACK_TAGS] = [("", ""); STACK_TAGS];
            let mut len = 0;
            for (k, v) in &self.plan_tags {
                buf[len] = (k.as_str(), v.as_str());
                len += 1;
            }
            for t in tags {
                buf[len] = *t;
                len += 1;
            }
            let len = sort_dedup(&mut buf[..len]);
            f(&buf[..len])
        } else {
            let mut buf: Vec<(&str, &str)> = self
                .plan_tags
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .chain(tags.iter().copied())
                .collect();
            let len = sort_dedup(&mut buf);
            f(&buf[..len])
        }
    }
}

/// Stable insertion sort by key, then keeps the last of each run of equal keys; returns
/// the new length. No allocation.
fn sort_dedup(tags: &mut [(&str, &str)]) -> usize {
    for i in 1..tags.len() {
        let mut j = i;
        while j > 0 && tags[j - 1].0 > tags[j].0 {
            tags.swap(j - 1, j);
            j -= 1;
        }
    }
    let mut out = 0;
    for i in 0..tags.len() {
        if i + 1 < tags.len() && tags[i + 1].0 == tags[i].0 {
            continue; // a later value of the same key wins
        }
        tags[out] = tags[i];
        out += 1;
    }
    out
}

fn reset(sink: &mut Sink) {
    match sink {
        Sink::Trend(t) => t.hist.reset(),
        other => *other = Sink::new(other.kind()),
    }
}

fn add_to(inner: &mut Inner, id: SeriesId, value: f64) {
    let s = &mut inner.series[id.0 as usize];
    s.sink.add(value);
    s.dirty = true;
    if let Some(raw) = inner.raw.as_mut() {
        let s = &inner.series[id.0 as usize];
        raw.current.push(Point {
            metric: s.key.metric.clone(),
            kind: s.kind,
            tags: s.key.tags.clone(),
            time_unix_us: raw.clock.controller_us(Instant::now()),
            value,
        });
        if raw.current.len() >= POINT_BATCH {
            let batch = std::mem::replace(&mut raw.current, Vec::with_capacity(POINT_BATCH));
            raw.full.push(batch);
            raw.ready.notify_one();
        }
    }
}

impl Record for Registry {
    fn record(&self, sample: Sample<'_>) {
        self.with_sorted_tags(sample.tags, |sorted| {
            let mut inner = self.inner.borrow_mut();
            let id = self.find_or_insert(&mut inner, sample.metric, sample.kind, sorted);
            if inner.series[id.0 as usize].kind != sample.kind {
                count_clash(&mut inner, sample.metric);
                return;
            }
            add_to(&mut inner, id, sample.value);
        })
    }

    fn series(&self, metric: &str, kind: MetricKind, tags: &[(&str, &str)]) -> Option<SeriesId> {
        let id = self.intern(metric, kind, tags);
        (self.inner.borrow().series[id.0 as usize].kind == kind).then_some(id)
    }

    fn record_series(&self, id: SeriesId, value: f64) {
        self.add(id, value);
    }

    fn instance(&self) -> u64 {
        self.instance
    }
}

fn count_clash(inner: &mut Inner, metric: &str) {
    inner.kind_clashes += 1;
    if inner.kind_clashes == 1 {
        tracing::warn!(
            metric,
            "a sample's kind disagrees with its series; dropping such samples"
        );
    }
}

#[cfg(test)]
mod tests;

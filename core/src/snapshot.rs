//! A `Snapshot` is one interval of sinks, one per series. Workers cut one per interval; the
//! controller merges them into per-interval totals and into the cumulative run.
//!
//! This is the one place snapshots merge. Two operations, because series and VUs add up
//! differently:
//!
//! | operation                       | series                      | `vus`, `vus_max`             |
//! |---------------------------------|-----------------------------|------------------------------|
//! | [`Snapshot::merge`] / `+=` / [`Snapshot::absorb`] / [`Snapshot::merge_parts`] | sinks merge per key | **sum**: workers of one interval |
//! | [`Snapshot::accumulate`]        | sinks merge per key         | **the later interval's**: a level, not a count; recorded into the run's `vus`/`vus_max` gauges |
//!
//! [`Snapshot::merge_parts`] is the off-the-wire fast path: trends arrive as `(value,
//! count)` pairs from [`crate::hdr::SparseDecoder`] and are recorded straight into the
//! collecting histogram, so no histogram is built per worker and series.
use crate::metrics::{builtin, MetricKind, SeriesKey};
use crate::sink::{Sink, SinkError};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::AddAssign;

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Interval number, 0 for the first interval after start.
    pub seq: u64,
    /// Start of the interval, controller clock, µs since the Unix epoch.
    pub interval_start_us: i64,
    pub interval_ms: u32,
    pub series: BTreeMap<SeriesKey, Sink>,
    /// Most VUs active at once during the interval (summed over the workers of one
    /// interval when merged). The run's `vus` gauge (last, min, max) is read from these,
    /// interval by interval; no series carries it a second time.
    pub vus: u64,
    /// Most VUs allocated during the interval (summed over workers when merged).
    pub vus_max: u64,
}

/// One series of a snapshot on its way into a merge.
#[derive(Debug, Clone)]
pub enum SeriesPart {
    /// A whole sink (counters, rates, gauges, or a decoded trend).
    Sink(Sink),
    /// A trend's histogram as `(value, count)` pairs (see [`crate::hdr::SparseDecoder`]).
    Pairs(Vec<(u64, u64)>),
}

impl SeriesPart {
    pub fn kind(&self) -> MetricKind {
        match self {
            SeriesPart::Sink(s) => s.kind(),
            SeriesPart::Pairs(_) => MetricKind::Trend,
        }
    }
}

impl Snapshot {
    /// The sink of `key`, created empty with `kind` if absent.
    pub fn entry(&mut self, key: SeriesKey, kind: MetricKind) -> &mut Sink {
        self.series.entry(key).or_insert_with(|| Sink::new(kind))
    }

    /// Records one sample into `key`'s sink.
    pub fn add(&mut self, key: SeriesKey, kind: MetricKind, value: f64) {
        self.entry(key, kind).add(value);
    }

    /// Merges one series: into the sink already there, or inserted (moved when owned).
    fn merge_series(
        &mut self,
        key: Cow<'_, SeriesKey>,
        sink: Cow<'_, Sink>,
    ) -> Result<(), SinkError> {
        match self.series.get_mut(key.as_ref()) {
            Some(mine) => mine.merge(&sink),
            None => {
                self.series.insert(key.into_owned(), sink.into_owned());
                Ok(())
            }
        }
    }

    /// Merges every series of `series`; a series of a clashing kind is reported (the first
    /// clash) and skipped, every other series is still merged.
    fn merge_all<'a>(
        &mut self,
        series: impl Iterator<Item = (Cow<'a, SeriesKey>, Cow<'a, Sink>)>,
    ) -> Result<(), SinkError> {
        let mut first_err = None;
        for (key, sink) in series {
            if let Err(e) = self.merge_series(key, sink) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Merges another worker's snapshot of the same interval into `self`: series merge per
    /// key, VUs add. A series of a clashing kind is reported and skipped; every other
    /// series is still merged.
    pub fn merge(&mut self, other: &Snapshot) -> Result<(), SinkError> {
        self.vus += other.vus;
        self.vus_max += other.vus_max;
        self.merge_all(
            other
                .series
                .iter()
                .map(|(k, s)| (Cow::Borrowed(k), Cow::Borrowed(s))),
        )
    }

    /// [`Snapshot::merge`], taking `other` by value: series new to `self` are moved, not
    /// copied.
    pub fn absorb(&mut self, other: Snapshot) -> Result<(), SinkError> {
        self.vus += other.vus;
        self.vus_max += other.vus_max;
        self.merge_all(
            other
                .series
                .into_iter()
                .map(|(k, s)| (Cow::Owned(k), Cow::Owned(s))),
        )
    }

    /// Adds a later interval into a cumulative view of the run: series merge as in
    /// [`Snapshot::merge`]; `vus` and `vus_max` become `later`'s (VUs are a level: they add
    /// across the workers of one interval, not across time), and each is recorded into the
    /// run's `vus` / `vus_max` gauge (last, min, max over the intervals), the one place those
    /// gauges are made.
    pub fn accumulate(&mut self, later: &Snapshot) -> Result<(), SinkError> {
        self.vus = later.vus;
        self.vus_max = later.vus_max;
        self.add(
            SeriesKey::new(builtin::VUS),
            MetricKind::Gauge,
            later.vus as f64,
        );
        self.add(
            SeriesKey::new(builtin::VUS_MAX),
            MetricKind::Gauge,
            later.vus_max as f64,
        );
        self.merge_all(
            later
                .series
                .iter()
                .map(|(k, s)| (Cow::Borrowed(k), Cow::Borrowed(s))),
        )
    }

    /// Merges one worker's interval given as parts (the off-the-wire path): every part's
    /// kind is checked against `self` first, and on a clash **nothing** is merged; then
    /// sinks merge as in [`Snapshot::merge`] and trend pairs are recorded into the
    /// collecting histogram. `vus` and `vus_max` add.
    pub fn merge_parts(
        &mut self,
        parts: Vec<(SeriesKey, SeriesPart)>,
        vus: u64,
        vus_max: u64,
    ) -> Result<(), SinkError> {
        for (key, part) in &parts {
            if let Some(mine) = self.series.get(key) {
                if mine.kind() != part.kind() {
                    return Err(SinkError::KindMismatch {
                        this: mine.kind().as_str(),
                        other: part.kind().as_str(),
                    });
                }
            }
        }
        for (key, part) in parts {
            match part {
                SeriesPart::Sink(sink) => self.merge_series(Cow::Owned(key), Cow::Owned(sink))?,
                SeriesPart::Pairs(pairs) => match self.entry(key, MetricKind::Trend) {
                    Sink::Trend(t) => crate::hdr::add_pairs(&mut t.hist, &pairs)?,
                    // the kinds were checked above
                    other => {
                        return Err(SinkError::KindMismatch {
                            this: other.kind().as_str(),
                            other: MetricKind::Trend.as_str(),
                        })
                    }
                },
            }
        }
        self.vus += vus;
        self.vus_max += vus_max;
        Ok(())
    }

    /// All series of `metric` whose tags include `filter`, merged into one sink (k6's
    /// submetric); `None` when no such series has data.
    pub fn submetric(&self, metric: &str, filter: &[(String, String)]) -> Option<Sink> {
        let mut out: Option<Sink> = None;
        for (_, sink) in self
            .series
            .iter()
            .filter(|(k, _)| k.metric == metric && k.matches(filter))
        {
            match &mut out {
                Some(acc) => *acc += sink,
                None => out = Some(sink.clone()),
            }
        }
        out
    }

    /// Names of the metrics present.
    pub fn metrics(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.series.keys().map(|k| k.metric.as_str()).collect();
        names.dedup();
        names
    }

    pub fn is_empty(&self) -> bool {
        self.series.values().all(Sink::is_empty)
    }
}

impl AddAssign<&Snapshot> for Snapshot {
    /// [`Snapshot::merge`], a clashing series skipped.
    fn add_assign(&mut self, rhs: &Snapshot) {
        let _ = self.merge(rhs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::builtin;

    #[test]
    fn merge_and_submetric() {
        let op = |o: &str| SeriesKey::with_tags(builtin::HTTP_REQ_DURATION, [("operation", o)]);
        let mut a = Snapshot::default();
        a.add(op("run_wait"), MetricKind::Trend, 1000.0);
        a.add(op("get_state"), MetricKind::Trend, 10.0);
        a.add(SeriesKey::new(builtin::HTTP_REQS), MetricKind::Counter, 2.0);
        a.vus = 2;
        let mut b = Snapshot::default();
        b.add(op("run_wait"), MetricKind::Trend, 3000.0);
        b.add(SeriesKey::new(builtin::HTTP_REQS), MetricKind::Counter, 1.0);
        b.vus = 3;
        a += &b;
        assert_eq!(a.vus, 5);
        let Some(Sink::Counter(c)) = a.submetric(builtin::HTTP_REQS, &[]) else {
            panic!()
        };
        assert_eq!(c.sum, 3.0);
        let Some(Sink::Trend(t)) = a.submetric(
            builtin::HTTP_REQ_DURATION,
            &[("operation".into(), "run_wait".into())],
        ) else {
            panic!()
        };
        assert_eq!(t.count(), 2);
        let Some(Sink::Trend(all)) = a.submetric(builtin::HTTP_REQ_DURATION, &[]) else {
            panic!()
        };
        assert_eq!(all.count(), 3);
        assert!(a.submetric("nope", &[]).is_none());
    }

    #[test]
    fn kind_clash_is_reported_but_rest_merges() {
        let mut a = Snapshot::default();
        a.add(SeriesKey::new("x"), MetricKind::Counter, 1.0);
        let mut b = Snapshot::default();
        b.add(SeriesKey::new("x"), MetricKind::Rate, 1.0);
        b.add(SeriesKey::new("y"), MetricKind::Counter, 1.0);
        assert!(a.merge(&b).is_err());
        assert!(a.series.contains_key(&SeriesKey::new("y")));
    }

    #[test]
    fn vus_add_across_workers_and_follow_the_latest_interval_across_time() {
        let at = |seq, vus| Snapshot {
            seq,
            vus,
            vus_max: vus + 1,
            ..Default::default()
        };
        let mut interval = at(0, 2);
        interval.merge(&at(0, 3)).unwrap();
        interval.absorb(at(0, 1)).unwrap();
        interval.merge_parts(vec![], 4, 4).unwrap();
        assert_eq!((interval.vus, interval.vus_max), (10, 13));
        let mut run = Snapshot::default();
        run.accumulate(&interval).unwrap();
        run.accumulate(&at(1, 2)).unwrap();
        assert_eq!((run.vus, run.vus_max), (2, 3));
        let Some(Sink::Gauge(g)) = run.submetric(builtin::VUS, &[]) else {
            panic!("no vus gauge")
        };
        assert_eq!((g.last, g.min, g.max), (2.0, 2.0, 10.0));
        let Some(Sink::Gauge(g)) = run.submetric(builtin::VUS_MAX, &[]) else {
            panic!("no vus_max gauge")
        };
        assert_eq!((g.last, g.min, g.max), (3.0, 3.0, 13.0));
    }

    #[test]
    fn parts_merge_like_sinks_and_a_clash_merges_nothing() {
        let key = SeriesKey::new(builtin::HTTP_REQ_DURATION);
        let mut by_sink = Snapshot::default();
        let mut by_parts = Snapshot::default();
        let mut one = crate::sink::TrendSink::default();
        for v in [120u64, 5_000, 5_000, 1_000_000] {
            one.record(v);
        }
        by_sink.series.insert(key.clone(), Sink::Trend(one.clone()));
        by_sink.merge(&by_sink.clone()).unwrap();
        let mut dec = crate::hdr::SparseDecoder::default();
        let mut pairs = Vec::new();
        dec.decode(&one.encode().unwrap(), &mut pairs).unwrap();
        for _ in 0..2 {
            by_parts
                .merge_parts(
                    vec![
                        (key.clone(), SeriesPart::Pairs(pairs.clone())),
                        (
                            SeriesKey::new(builtin::HTTP_REQS),
                            SeriesPart::Sink(Sink::Counter(crate::sink::CounterSink { sum: 4.0 })),
                        ),
                    ],
                    1,
                    1,
                )
                .unwrap();
        }
        let (Sink::Trend(a), Sink::Trend(b)) = (&by_sink.series[&key], &by_parts.series[&key])
        else {
            panic!("not trends")
        };
        assert_eq!(a.count(), 8);
        for p in [0.0, 50.0, 99.0, 100.0] {
            assert_eq!(a.percentile(p), b.percentile(p), "p{p}");
        }
        let before = format!("{:?}", by_parts.series);
        let err = by_parts.merge_parts(
            vec![
                (
                    SeriesKey::new("fresh"),
                    SeriesPart::Sink(Sink::new(MetricKind::Counter)),
                ),
                (SeriesKey::new(builtin::HTTP_REQS), SeriesPart::Pairs(pairs)),
            ],
            5,
            5,
        );
        assert!(
            matches!(
                err,
                Err(SinkError::KindMismatch {
                    this: "counter",
                    other: "trend"
                })
            ),
            "{err:?}"
        );
        assert_eq!(format!("{:?}", by_parts.series), before);
        assert_eq!(by_parts.vus, 2);
    }
}

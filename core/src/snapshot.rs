//! A `Snapshot` is one interval of sinks, one per series. Workers cut one per interval; the
//! controller merges them with `+=` into per-interval totals and into the cumulative run.
use crate::metrics::{MetricKind, SeriesKey};
use crate::sink::{Sink, SinkError};
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
    /// Active VUs at the end of the interval (summed over workers when merged).
    pub vus: u64,
    /// Allocated VUs (summed over workers when merged).
    pub vus_max: u64,
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

    /// Merges `other` into `self` series by series; series of a clashing kind are reported
    /// and skipped, every other series is still merged.
    pub fn merge(&mut self, other: &Snapshot) -> Result<(), SinkError> {
        let mut first_err = None;
        for (key, sink) in &other.series {
            match self.series.get_mut(key) {
                Some(mine) => {
                    if let Err(e) = mine.merge(sink) {
                        first_err.get_or_insert(e);
                    }
                }
                None => {
                    self.series.insert(key.clone(), sink.clone());
                }
            }
        }
        self.vus += other.vus;
        self.vus_max += other.vus_max;
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
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
}

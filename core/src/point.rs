//! A raw sample with its time, for outputs that want every sample (k6's JSON and CSV
//! outputs, `--out`). Only recorded when the run asks for raw points: barrage aggregates
//! at the edge, and this is the one exception the user opts into.
use crate::metrics::{builtin, MetricKind};

/// One raw sample, controller clock. `value` is in the sample's unit: µs for time trends
/// (formats convert to k6's ms with [`Point::k6_value`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub metric: String,
    pub kind: MetricKind,
    /// Sorted by key (a series key's tags).
    pub tags: Vec<(String, String)>,
    /// Controller clock, µs since the Unix epoch.
    pub time_unix_us: i64,
    pub value: f64,
}

impl Point {
    /// The value as k6 reports it: ms for time trends, else as is.
    pub fn k6_value(&self) -> f64 {
        match builtin::lookup(&self.metric) {
            Some((MetricKind::Trend, true)) => self.value / 1000.0,
            _ => self.value,
        }
    }
}

//! Sinks aggregate the samples of one series; merging two sinks of a kind is exact.
//!
//! | kind    | sink                        | merge (`+=`)                          |
//! |---------|-----------------------------|---------------------------------------|
//! | Trend   | HDR histogram, 3 sig. digits | histograms add (same configuration)   |
//! | Counter | sum                          | sums add                              |
//! | Rate    | trues / total                | both add                              |
//! | Gauge   | last, min, max               | later last wins, min of mins, max of maxes |
//!
//! Trends of times hold microseconds; thresholds and summaries speak milliseconds.
use crate::metrics::MetricKind;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use std::ops::AddAssign;

/// Significant digits of every Trend histogram.
pub const SIGFIG: u8 = 3;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("histogram bytes do not decode: {0}")]
    Decode(String),
    #[error("histogram does not encode: {0}")]
    Encode(String),
    #[error("cannot merge a {other} sink into a {this} sink of the same series")]
    KindMismatch {
        this: &'static str,
        other: &'static str,
    },
}

#[derive(Debug, Clone)]
pub struct TrendSink {
    pub hist: Histogram<u64>,
}

impl Default for TrendSink {
    fn default() -> Self {
        let mut hist = Histogram::new(SIGFIG).expect("3 significant digits is a valid histogram");
        hist.auto(true);
        TrendSink { hist }
    }
}

impl TrendSink {
    pub fn record(&mut self, value: u64) {
        // auto-resizing histograms accept any u64
        let _ = self.hist.record(value);
    }

    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// Percentile `p` in 0..=100, in the histogram's unit.
    pub fn percentile(&self, p: f64) -> f64 {
        if self.hist.is_empty() {
            return 0.0;
        }
        self.hist.value_at_percentile(p.clamp(0.0, 100.0)) as f64
    }

    pub fn encode(&self) -> Result<Vec<u8>, SinkError> {
        encode_histogram(&self.hist)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, SinkError> {
        let mut hist = decode_histogram(bytes)?;
        hist.auto(true);
        Ok(TrendSink { hist })
    }
}

/// V2 deflate serialization of an HDR histogram (the format HdrHistogram's tools read),
/// by one reused [`SparseEncoder`](crate::hdr::SparseEncoder) per thread: a worker encodes
/// every trend of every interval (see [`crate::hdr`] for why not the library's serializer).
pub fn encode_histogram(h: &Histogram<u64>) -> Result<Vec<u8>, SinkError> {
    thread_local! {
        static ENCODER: std::cell::RefCell<crate::hdr::SparseEncoder> = Default::default();
    }
    let mut out = Vec::new();
    ENCODER.with(|e| e.borrow_mut().encode(h, &mut out))?;
    Ok(out)
}

pub fn decode_histogram(bytes: &[u8]) -> Result<Histogram<u64>, SinkError> {
    Deserializer::new()
        .deserialize(&mut std::io::Cursor::new(bytes))
        .map_err(|e| SinkError::Decode(format!("{e:?}")))
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CounterSink {
    pub sum: f64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateSink {
    pub trues: u64,
    pub total: u64,
}

impl RateSink {
    pub fn rate(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.trues as f64 / self.total as f64
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GaugeSink {
    pub last: f64,
    pub min: f64,
    pub max: f64,
}

impl Default for GaugeSink {
    fn default() -> Self {
        GaugeSink {
            last: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

/// The aggregate of one series.
#[derive(Debug, Clone)]
pub enum Sink {
    Counter(CounterSink),
    Gauge(GaugeSink),
    Rate(RateSink),
    Trend(TrendSink),
}

impl Sink {
    pub fn new(kind: MetricKind) -> Self {
        match kind {
            MetricKind::Counter => Sink::Counter(CounterSink::default()),
            MetricKind::Gauge => Sink::Gauge(GaugeSink::default()),
            MetricKind::Rate => Sink::Rate(RateSink::default()),
            MetricKind::Trend => Sink::Trend(TrendSink::default()),
        }
    }

    pub fn kind(&self) -> MetricKind {
        match self {
            Sink::Counter(_) => MetricKind::Counter,
            Sink::Gauge(_) => MetricKind::Gauge,
            Sink::Rate(_) => MetricKind::Rate,
            Sink::Trend(_) => MetricKind::Trend,
        }
    }

    /// Adds one sample: a value for Trend/Counter/Gauge, non-zero = true for Rate.
    pub fn add(&mut self, value: f64) {
        match self {
            Sink::Counter(c) => c.sum += value,
            Sink::Gauge(g) => {
                g.last = value;
                g.min = g.min.min(value);
                g.max = g.max.max(value);
            }
            Sink::Rate(r) => {
                r.total += 1;
                if value != 0.0 {
                    r.trues += 1;
                }
            }
            Sink::Trend(t) => t.record(value.max(0.0).round() as u64),
        }
    }

    /// Exact merge; a kind mismatch is an error (and leaves `self` untouched).
    pub fn merge(&mut self, other: &Sink) -> Result<(), SinkError> {
        match (self, other) {
            (Sink::Counter(a), Sink::Counter(b)) => a.sum += b.sum,
            (Sink::Rate(a), Sink::Rate(b)) => {
                a.trues += b.trues;
                a.total += b.total;
            }
            (Sink::Gauge(a), Sink::Gauge(b)) => {
                if b.min.is_finite() || b.max.is_finite() {
                    a.last = b.last;
                }
                a.min = a.min.min(b.min);
                a.max = a.max.max(b.max);
            }
            (Sink::Trend(a), Sink::Trend(b)) => {
                a.hist
                    .add(&b.hist)
                    .map_err(|e| SinkError::Decode(format!("{e:?}")))?;
            }
            (a, b) => {
                return Err(SinkError::KindMismatch {
                    this: a.kind().as_str(),
                    other: b.kind().as_str(),
                })
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        match self {
            Sink::Counter(c) => c.sum == 0.0,
            Sink::Gauge(g) => !g.max.is_finite(),
            Sink::Rate(r) => r.total == 0,
            Sink::Trend(t) => t.hist.is_empty(),
        }
    }
}

impl AddAssign<&Sink> for Sink {
    /// Merges; a sink of another kind is ignored (use [`Sink::merge`] to see the error).
    fn add_assign(&mut self, rhs: &Sink) {
        let _ = self.merge(rhs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_histograms_equal_one_fed_all_samples() {
        let mut all = TrendSink::default();
        let mut parts = vec![
            TrendSink::default(),
            TrendSink::default(),
            TrendSink::default(),
        ];
        let mut x: u64 = 12345;
        for i in 0..30_000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let v = 100 + (x >> 40) % 2_000_000;
            all.record(v);
            parts[(i % 3) as usize].record(v);
        }
        let mut merged = Sink::Trend(TrendSink::default());
        for p in &parts {
            // through the wire codec, as the controller sees them
            let decoded = TrendSink::decode(&p.encode().unwrap()).unwrap();
            merged += &Sink::Trend(decoded);
        }
        let Sink::Trend(m) = merged else {
            unreachable!()
        };
        assert_eq!(m.count(), all.count());
        for p in [50.0, 90.0, 95.0, 99.0, 99.9, 100.0] {
            assert_eq!(m.percentile(p), all.percentile(p), "p{p}");
        }
    }

    #[test]
    fn counters_rates_gauges_merge() {
        let mut c = Sink::new(MetricKind::Counter);
        c.add(3.0);
        c += &{
            let mut o = Sink::new(MetricKind::Counter);
            o.add(4.0);
            o
        };
        assert!(matches!(c, Sink::Counter(CounterSink { sum }) if sum == 7.0));

        let mut r = Sink::new(MetricKind::Rate);
        r.add(1.0);
        r.add(0.0);
        let mut r2 = Sink::new(MetricKind::Rate);
        r2.add(1.0);
        r.merge(&r2).unwrap();
        assert!(matches!(r, Sink::Rate(RateSink { trues: 2, total: 3 })));

        let mut g = Sink::new(MetricKind::Gauge);
        g.add(5.0);
        g.add(2.0);
        let mut g2 = Sink::new(MetricKind::Gauge);
        g2.add(9.0);
        g2.add(7.0);
        g.merge(&g2).unwrap();
        assert!(
            matches!(g, Sink::Gauge(GaugeSink { last, min, max }) if last == 7.0 && min == 2.0 && max == 9.0)
        );

        assert!(c.merge(&r).is_err());
    }

    #[test]
    fn garbage_bytes_do_not_decode() {
        assert!(TrendSink::decode(b"not a histogram").is_err());
        assert!(TrendSink::decode(&[]).is_err());
    }
}

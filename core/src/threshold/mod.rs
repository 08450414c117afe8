//! Thresholds in k6's syntax, parsed before a run and evaluated on merged sinks.
//!
//! ```text
//! metric_ref := name [ "{" tag ":" value { "," tag ":" value } "}" ]
//! threshold  := aggregation operator number
//! aggregation:= "avg" | "min" | "max" | "med" | "count" | "rate" | "value"
//!             | "p(" number ")"                       (0 <= number <= 100)
//! operator   := "<" | "<=" | ">" | ">=" | "==" | "===" | "!="
//! ```
//! | kind    | aggregations                  | unit of the number                 |
//! |---------|-------------------------------|------------------------------------|
//! | Trend   | avg min max med p(N) count    | ms for times, else the raw value   |
//! | Counter | count rate                    | total, or per second of run time   |
//! | Rate    | rate                          | share of true samples, 0..1        |
//! | Gauge   | value min max                 | the gauge's value                  |
//!
//! In a plan: `"http_req_duration{operation:run_wait}" = ["p(95)<5000"]`, or with k6's
//! object form `{ threshold = "rate<0.05", abortOnFail = true, delayAbortEval = "10s" }`.
//!
//! Soak runs add thresholds on **slopes** (the trends of `crate::trend`, after warm-up):
//!
//! ```text
//! slope_threshold := ( "slope" | "p99_slope" | "rate_slope" ) operator number [ unit ] "/h"
//! unit            := "%" | "KB" | "MB" | "GB" | "ms" | "s"
//! ```
//! `target_rss = ["slope<5MB/h"]` (bytes; KB/MB/GB are powers of 1000),
//! `http_req_duration = ["p99_slope<2%/h"]` (% of the trend's mean per hour),
//! `http_req_failed = ["rate_slope<0.01/h"]`. The metrics: `http_req_duration` (`p99_slope`),
//! `http_req_failed` (`rate_slope`), `target_rss`, `target_cpu_per_request` (s),
//! `target_fds` (`slope`). They compare the slope's estimate, are evaluated once at the end
//! of a run ([`ThresholdSet::evaluate_trends`]), and fail without a trend (no data).
mod eval;

pub use eval::{abort_reason, ThresholdEntry, ThresholdSet, Verdict};

use crate::duration::serde_str;
use crate::metrics::MetricKind;
use crate::sink::Sink;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// A metric name with an optional tag filter (k6's submetric).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MetricRef {
    pub metric: String,
    pub filter: Vec<(String, String)>,
}

impl MetricRef {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (name, rest) = match text.find('{') {
            Some(i) => (&text[..i], Some(&text[i..])),
            None => (text, None),
        };
        let name = name.trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
        {
            return Err(format!(
                "metric {text:?}: the name must be letters, digits and _ (e.g. http_req_duration)"
            ));
        }
        let mut filter = Vec::new();
        if let Some(rest) = rest {
            let inner = rest
                .strip_prefix('{')
                .and_then(|r| r.strip_suffix('}'))
                .ok_or_else(|| {
                    format!("metric {text:?}: tag filter must look like {{operation:run_wait}}")
                })?;
            for part in inner.split(',') {
                let (k, v) = part.split_once(':').ok_or_else(|| {
                    format!("metric {text:?}: tag filter part {part:?} must be key:value")
                })?;
                let (k, v) = (k.trim(), v.trim());
                if k.is_empty() || v.is_empty() {
                    return Err(format!(
                        "metric {text:?}: empty tag key or value in {part:?}"
                    ));
                }
                filter.push((k.to_string(), v.to_string()));
            }
            filter.sort();
        }
        Ok(MetricRef {
            metric: name.to_string(),
            filter,
        })
    }
}

impl fmt::Display for MetricRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.metric)?;
        if !self.filter.is_empty() {
            let parts: Vec<String> = self
                .filter
                .iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect();
            write!(f, "{{{}}}", parts.join(","))?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Aggregation {
    Avg,
    Min,
    Max,
    Med,
    Count,
    Rate,
    Value,
    Percentile(f64),
    /// The slope per hour of the trend named by the metric and this (`None`: the metric's
    /// own trend, `Some("p99")`: `metric:p99`); see the module docs.
    Slope(Option<&'static str>),
}

/// What a slope threshold's number is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlopeUnit {
    /// The trend's own unit (bytes, ms, share, s, fds) per hour.
    PerHour,
    /// % of the trend's mean per hour.
    PercentPerHour,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Operator {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Operator::Lt => a < b,
            Operator::Le => a <= b,
            Operator::Gt => a > b,
            Operator::Ge => a >= b,
            Operator::Eq => a == b,
            Operator::Ne => a != b,
        }
    }
}

/// One threshold expression on one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The expression as written, e.g. `p(95)<500`.
    pub source: String,
    pub aggregation: Aggregation,
    pub operator: Operator,
    pub value: f64,
    pub abort_on_fail: bool,
    pub delay_abort_eval: Duration,
    /// For a slope: what `value` is in (converted to the trend's base unit per hour).
    pub slope: Option<SlopeUnit>,
}

/// The trend a slope threshold on `metric` reads, and the unit suffixes it accepts: `None`
/// when the metric has no trend of that aggregation.
pub fn slope_trend(metric: &str, agg: Option<&str>) -> Option<String> {
    match (metric, agg) {
        ("http_req_duration", Some("p99")) | ("http_req_failed", Some("rate")) => {
            Some(format!("{metric}:{}", agg.unwrap_or_default()))
        }
        ("target_rss" | "target_cpu_per_request" | "target_fds", None) => Some(metric.into()),
        _ => None,
    }
}

/// `5MB/h` → (5e6, PerHour); `2%/h` → (2, PercentPerHour).
fn slope_value(expr: &str, text: &str) -> Result<(f64, SlopeUnit), String> {
    let num = text.strip_suffix("/h").ok_or_else(|| {
        format!("threshold {expr:?}: a slope is per hour; end it with /h, e.g. slope<5MB/h")
    })?;
    let (num, scale, unit) = [
        ("%", 1.0, SlopeUnit::PercentPerHour),
        ("KB", 1e3, SlopeUnit::PerHour),
        ("MB", 1e6, SlopeUnit::PerHour),
        ("GB", 1e9, SlopeUnit::PerHour),
        ("ms", 1.0, SlopeUnit::PerHour),
        ("s", 1.0, SlopeUnit::PerHour),
    ]
    .iter()
    .find_map(|(suffix, scale, unit)| num.strip_suffix(suffix).map(|n| (n, *scale, *unit)))
    .unwrap_or((num, 1.0, SlopeUnit::PerHour));
    let v: f64 = num.parse().map_err(|_| {
        format!(
            "threshold {expr:?}: {num:?} is not a number; write e.g. slope<5MB/h or p99_slope<2%/h"
        )
    })?;
    if !v.is_finite() {
        return Err(format!("threshold {expr:?}: the number must be finite"));
    }
    Ok((v * scale, unit))
}

/// How a threshold appears in a plan: k6's string or object form. The object form accepts
/// `threshold`, `abortOnFail` and `delayAbortEval` (or their snake_case spellings) and
/// refuses any other key by name, so a typo never turns an abort off silently.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ThresholdSpec {
    Expr(String),
    Full {
        threshold: String,
        #[serde(default, rename = "abortOnFail", alias = "abort_on_fail")]
        abort_on_fail: bool,
        #[serde(
            default,
            rename = "delayAbortEval",
            alias = "delay_abort_eval",
            with = "serde_str"
        )]
        delay_abort_eval: Duration,
    },
}

/// The keys of the object form, as the error for an unknown key lists them.
const SPEC_KEYS: &[&str] = &["threshold", "abortOnFail", "delayAbortEval"];

impl<'de> Deserialize<'de> for ThresholdSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = ThresholdSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a threshold expression such as \"p(95)<500\", or an object \
                     { threshold = \"...\", abortOnFail = true, delayAbortEval = \"10s\" }",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ThresholdSpec, E> {
                Ok(ThresholdSpec::Expr(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ThresholdSpec, A::Error> {
                use serde::de::Error;
                let mut threshold = None;
                let mut abort_on_fail = None;
                let mut delay_abort_eval = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "threshold" if threshold.is_none() => threshold = Some(map.next_value()?),
                        "abortOnFail" | "abort_on_fail" if abort_on_fail.is_none() => {
                            abort_on_fail = Some(map.next_value()?)
                        }
                        "delayAbortEval" | "delay_abort_eval" if delay_abort_eval.is_none() => {
                            let text: String = map.next_value()?;
                            let d = crate::duration::parse_duration(&text)
                                .map_err(|e| A::Error::custom(format!("delayAbortEval: {e}")))?;
                            delay_abort_eval = Some(d);
                        }
                        "threshold" | "abortOnFail" | "abort_on_fail" | "delayAbortEval"
                        | "delay_abort_eval" => {
                            return Err(A::Error::custom(format!("the key `{key}` is given twice")))
                        }
                        _ => return Err(A::Error::unknown_field(&key, SPEC_KEYS)),
                    }
                }
                Ok(ThresholdSpec::Full {
                    threshold: threshold.ok_or_else(|| A::Error::missing_field("threshold"))?,
                    abort_on_fail: abort_on_fail.unwrap_or(false),
                    delay_abort_eval: delay_abort_eval.unwrap_or(Duration::ZERO),
                })
            }
        }
        d.deserialize_any(Visit)
    }
}

impl ThresholdSpec {
    pub fn to_threshold(&self) -> Result<Threshold, String> {
        match self {
            ThresholdSpec::Expr(e) => Threshold::parse(e),
            ThresholdSpec::Full {
                threshold,
                abort_on_fail,
                delay_abort_eval,
            } => {
                let mut t = Threshold::parse(threshold)?;
                t.abort_on_fail = *abort_on_fail;
                t.delay_abort_eval = *delay_abort_eval;
                Ok(t)
            }
        }
    }
}

impl Threshold {
    pub fn parse(expr: &str) -> Result<Self, String> {
        let s: String = expr.chars().filter(|c| !c.is_whitespace()).collect();
        let bad = || {
            format!("threshold {expr:?} is malformed; use e.g. \"p(95)<500\", \"rate<0.05\", \"avg<=200\"")
        };
        let op_at = s.find(['<', '>', '=', '!']).ok_or_else(bad)?;
        let (agg_text, rest) = s.split_at(op_at);
        let (operator, num_text) = [
            ("===", Operator::Eq),
            ("<=", Operator::Le),
            (">=", Operator::Ge),
            ("==", Operator::Eq),
            ("!=", Operator::Ne),
            ("<", Operator::Lt),
            (">", Operator::Gt),
        ]
        .iter()
        .find_map(|(tok, op)| rest.strip_prefix(tok).map(|r| (*op, r)))
        .ok_or_else(bad)?;
        let slope_agg = match agg_text {
            "slope" => Some(None),
            "p99_slope" => Some(Some("p99")),
            "rate_slope" => Some(Some("rate")),
            _ => None,
        };
        if let Some(agg) = slope_agg {
            let (value, unit) = slope_value(expr, num_text)?;
            return Ok(Threshold {
                source: expr.trim().to_string(),
                aggregation: Aggregation::Slope(agg),
                operator,
                value,
                abort_on_fail: false,
                delay_abort_eval: Duration::ZERO,
                slope: Some(unit),
            });
        }
        let value: f64 = num_text
            .parse()
            .map_err(|_| format!("threshold {expr:?}: {num_text:?} is not a number"))?;
        if !value.is_finite() {
            return Err(format!("threshold {expr:?}: the number must be finite"));
        }
        let aggregation = match agg_text {
            "avg" => Aggregation::Avg,
            "min" => Aggregation::Min,
            "max" => Aggregation::Max,
            "med" => Aggregation::Med,
            "count" => Aggregation::Count,
            "rate" => Aggregation::Rate,
            "value" => Aggregation::Value,
            p if p.starts_with("p(") && p.ends_with(')') => {
                let n: f64 = p[2..p.len() - 1].parse().map_err(|_| format!("threshold {expr:?}: percentile {p:?} needs a number, e.g. p(95)"))?;
                if !(0.0..=100.0).contains(&n) {
                    return Err(format!("threshold {expr:?}: percentile {n} must be between 0 and 100"));
                }
                Aggregation::Percentile(n)
            }
            other => {
                return Err(format!(
                    "threshold {expr:?}: unknown aggregation {other:?}; use avg, min, max, med, p(N), count, rate, value, or on soak trends slope, p99_slope, rate_slope"
                ))
            }
        };
        Ok(Threshold {
            source: expr.trim().to_string(),
            aggregation,
            operator,
            value,
            abort_on_fail: false,
            delay_abort_eval: Duration::ZERO,
            slope: None,
        })
    }

    /// The slope this threshold compares, from a run's trends (`None`: no such trend).
    pub fn observed_slope(&self, metric: &str, trends: &crate::trend::Trends) -> Option<f64> {
        let Aggregation::Slope(agg) = self.aggregation else {
            return None;
        };
        let t = trends.get(&slope_trend(metric, agg)?)?;
        match self.slope? {
            SlopeUnit::PerHour => Some(t.slope_per_h),
            SlopeUnit::PercentPerHour => t.slope_pct_per_h,
        }
    }

    /// Whether the aggregation applies to a metric of `kind`.
    pub fn check_kind(&self, kind: MetricKind) -> Result<(), String> {
        use Aggregation::*;
        let ok = match kind {
            MetricKind::Trend => matches!(
                self.aggregation,
                Avg | Min | Max | Med | Count | Percentile(_)
            ),
            MetricKind::Counter => matches!(self.aggregation, Count | Rate),
            MetricKind::Rate => matches!(self.aggregation, Rate),
            MetricKind::Gauge => matches!(self.aggregation, Value | Min | Max),
        };
        if ok {
            Ok(())
        } else {
            let accepted = match kind {
                MetricKind::Trend => "avg, min, max, med, p(N), count",
                MetricKind::Counter => "count, rate",
                MetricKind::Rate => "rate",
                MetricKind::Gauge => "value, min, max",
            };
            Err(format!(
                "threshold {:?} does not apply to a {} metric; use {accepted}",
                self.source,
                kind.as_str()
            ))
        }
    }

    /// The aggregated value of `sink` this threshold compares (ms for time trends), or
    /// `None` when there is no data yet.
    pub fn observed(&self, sink: &Sink, elapsed: Duration, is_time: bool) -> Option<f64> {
        use Aggregation::*;
        if sink.is_empty() && !matches!(sink, Sink::Counter(_)) {
            return None;
        }
        let scale = if is_time { 1e-3 } else { 1.0 };
        Some(match (sink, self.aggregation) {
            (Sink::Trend(t), Avg) => t.hist.mean() * scale,
            (Sink::Trend(t), Min) => t.hist.min() as f64 * scale,
            (Sink::Trend(t), Max) => t.hist.max() as f64 * scale,
            (Sink::Trend(t), Med) => t.percentile(50.0) * scale,
            (Sink::Trend(t), Percentile(p)) => t.percentile(p) * scale,
            (Sink::Trend(t), Count) => t.count() as f64,
            (Sink::Counter(c), Count) => c.sum,
            (Sink::Counter(c), Rate) => c.sum / elapsed.as_secs_f64().max(1e-9),
            (Sink::Rate(r), Rate) => r.rate(),
            (Sink::Gauge(g), Value) => g.last,
            (Sink::Gauge(g), Min) => g.min,
            (Sink::Gauge(g), Max) => g.max,
            _ => return None,
        })
    }

    /// True when `observed` satisfies the threshold.
    pub fn passes(&self, observed: f64) -> bool {
        self.operator.holds(observed, self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::TrendSink;

    #[test]
    fn parses_k6_expressions() {
        let cases: &[(&str, Aggregation, Operator, f64)] = &[
            (
                "p(95)<500",
                Aggregation::Percentile(95.0),
                Operator::Lt,
                500.0,
            ),
            (
                "p(99.9) <= 1000",
                Aggregation::Percentile(99.9),
                Operator::Le,
                1000.0,
            ),
            ("rate<0.05", Aggregation::Rate, Operator::Lt, 0.05),
            ("rate>0.95", Aggregation::Rate, Operator::Gt, 0.95),
            ("avg>=2", Aggregation::Avg, Operator::Ge, 2.0),
            ("count==10", Aggregation::Count, Operator::Eq, 10.0),
            ("count===10", Aggregation::Count, Operator::Eq, 10.0),
            ("med!=3", Aggregation::Med, Operator::Ne, 3.0),
            ("value<5", Aggregation::Value, Operator::Lt, 5.0),
        ];
        for (text, agg, op, v) in cases {
            let t = Threshold::parse(text).unwrap();
            assert_eq!(
                (t.aggregation, t.operator, t.value),
                (*agg, *op, *v),
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_malformed_expressions() {
        for text in [
            "p95<500", "p(101)<5", "rate", "rate<abc", "foo<1", "<5", "p()<3", "rate<inf",
        ] {
            assert!(Threshold::parse(text).is_err(), "{text} should fail");
        }
    }

    #[test]
    fn metric_refs() {
        let m = MetricRef::parse("http_req_duration{operation:run_wait}").unwrap();
        assert_eq!(m.metric, "http_req_duration");
        assert_eq!(
            m.filter,
            vec![("operation".to_string(), "run_wait".to_string())]
        );
        assert_eq!(m.to_string(), "http_req_duration{operation:run_wait}");
        for bad in ["", "a{b}", "a{:x}", "a{b:c", "bad name"] {
            assert!(MetricRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn evaluates_on_sinks() {
        let mut t = TrendSink::default();
        for ms in 1..=100u64 {
            t.record(ms * 1000);
        }
        let sink = Sink::Trend(t);
        let p95 = Threshold::parse("p(95)<500").unwrap();
        let obs = p95.observed(&sink, Duration::from_secs(1), true).unwrap();
        assert!((obs - 95.0).abs() < 0.1, "{obs}");
        assert!(p95.passes(obs));
        assert!(!Threshold::parse("p(95)<50").unwrap().passes(obs));
        let rate = Threshold::parse("rate<0.05").unwrap();
        assert!(rate.check_kind(MetricKind::Trend).is_err());
        let mut r = Sink::new(MetricKind::Rate);
        for i in 0..100 {
            r.add(if i < 10 { 1.0 } else { 0.0 });
        }
        assert!(!rate.passes(rate.observed(&r, Duration::from_secs(1), false).unwrap()));
    }

    #[test]
    fn slope_thresholds() {
        let cases: &[(&str, Option<&str>, f64, SlopeUnit)] = &[
            ("slope<5MB/h", None, 5e6, SlopeUnit::PerHour),
            (
                "p99_slope<2%/h",
                Some("p99"),
                2.0,
                SlopeUnit::PercentPerHour,
            ),
            ("rate_slope<=0.01/h", Some("rate"), 0.01, SlopeUnit::PerHour),
            ("slope < 300 KB/h", None, 3e5, SlopeUnit::PerHour),
            ("p99_slope<50ms/h", Some("p99"), 50.0, SlopeUnit::PerHour),
        ];
        for (text, agg, v, unit) in cases {
            let t = Threshold::parse(text).unwrap();
            assert_eq!(
                (t.aggregation, t.value, t.slope),
                (Aggregation::Slope(*agg), *v, Some(*unit)),
                "{text}"
            );
        }
        let e = Threshold::parse("slope<5MB").unwrap_err();
        assert!(e.contains("end it with /h"), "{e}");
        assert!(Threshold::parse("slope<lots/h").is_err());
        assert_eq!(
            slope_trend("http_req_duration", Some("p99")).as_deref(),
            Some("http_req_duration:p99")
        );
        assert_eq!(
            slope_trend("target_rss", None).as_deref(),
            Some("target_rss")
        );
        assert_eq!(slope_trend("http_req_duration", None), None);
    }

    #[test]
    fn object_form() {
        let spec: ThresholdSpec = serde_json::from_str(
            r#"{"threshold":"rate<0.05","abortOnFail":true,"delayAbortEval":"10s"}"#,
        )
        .unwrap();
        let t = spec.to_threshold().unwrap();
        assert!(t.abort_on_fail);
        assert_eq!(t.delay_abort_eval, Duration::from_secs(10));
    }
}

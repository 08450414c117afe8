//! k6's measurement vocabulary: metric kinds, series keys and the built-in metric names.
use serde::{Deserialize, Serialize};
use std::fmt;

/// How a metric aggregates (k6's `MetricType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    /// A sum (requests, bytes, iterations).
    Counter,
    /// A last value, with min and max (VUs).
    Gauge,
    /// A share of true samples (failures, checks).
    Rate,
    /// A distribution (latencies), kept as an HDR histogram.
    Trend,
}

impl MetricKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Rate => "rate",
            MetricKind::Trend => "trend",
        }
    }
}

/// What a metric's values are (k6's `ValueType`: `Default`, `Time`, `Data`): it decides the
/// unit a summary prints and the scale a threshold compares in. Time Trends hold µs and are
/// shown and compared in ms; Data Counters hold bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ValueKind {
    /// A plain number (counts, ratios, events).
    Default,
    /// A duration: stored in µs, shown and compared in ms.
    Time,
    /// A byte count.
    Data,
}

impl ValueKind {
    /// The one rule: built-in Time Trends are times, `data_*` Counters are bytes, anything
    /// else (custom metrics included) is a plain number.
    pub fn of(metric: &str, kind: MetricKind) -> ValueKind {
        match kind {
            MetricKind::Trend if builtin::lookup(metric).is_some_and(|(_, t)| t) => ValueKind::Time,
            MetricKind::Counter if builtin::is_data(metric) => ValueKind::Data,
            _ => ValueKind::Default,
        }
    }

    /// Factor from the stored value to the shown/compared one (µs → ms for times).
    pub fn scale(self) -> f64 {
        match self {
            ValueKind::Time => 1e-3,
            _ => 1.0,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ValueKind::Default => "default",
            ValueKind::Time => "time",
            ValueKind::Data => "data",
        }
    }
}

/// The built-in metrics, with k6's names so that habits and jq recipes carry over.
///
/// Adding one: add the constant, add it to [`builtin::ALL`] with its kind and whether its
/// values are times, record it in the worker, and mention it in the README's metric table.
pub mod builtin {
    use super::MetricKind::{self, *};

    pub const HTTP_REQ_DURATION: &str = "http_req_duration";
    pub const HTTP_REQ_WAITING: &str = "http_req_waiting";
    pub const ITERATION_DURATION: &str = "iteration_duration";
    pub const AGENT_FLOW_DURATION: &str = "agent_flow_duration";
    pub const STREAM_FIRST_EVENT: &str = "stream_first_event";
    pub const STREAM_EVENTS: &str = "stream_events";
    /// Send → the first event that carries AI content (a non-empty `messages` chunk, an
    /// `updates` or `values` event with a new AI message): what a user waits for, where
    /// `stream_first_event` is usually the runtime's `metadata`.
    pub const STREAM_FIRST_TOKEN: &str = "stream_first_token";
    /// Time between consecutive events of one type in a stream, tagged `event`: how a
    /// runtime paces its output (token chunks, state updates between tool calls).
    pub const STREAM_EVENT_GAP: &str = "stream_event_gap";
    /// Share of streams (of 3 events or more) that arrived at once, within
    /// [`STREAM_BUFFERED_WINDOW_US`], after a first event that took at least
    /// [`STREAM_BUFFERED_WAIT_US`]: the runtime (or a proxy) held the stream back.
    pub const STREAM_BUFFERED: &str = "stream_buffered";
    /// All events of a buffered stream arrive within this window (µs).
    pub const STREAM_BUFFERED_WINDOW_US: u64 = 5_000;
    /// A stream counts as buffered only when its first event came this late (µs): a stream
    /// whose work is that quick has nothing to spread its events over.
    pub const STREAM_BUFFERED_WAIT_US: u64 = 50_000;
    pub const HTTP_REQS: &str = "http_reqs";
    pub const ITERATIONS: &str = "iterations";
    pub const DROPPED_ITERATIONS: &str = "dropped_iterations";
    /// Iterations cut by the hard stop (k6 prints them as "interrupted iterations").
    pub const INTERRUPTED_ITERATIONS: &str = "interrupted_iterations";
    pub const DATA_SENT: &str = "data_sent";
    pub const DATA_RECEIVED: &str = "data_received";
    pub const HTTP_REQ_FAILED: &str = "http_req_failed";
    pub const CHECKS: &str = "checks";
    pub const AGENT_FLOW_SUCCESS_RATE: &str = "agent_flow_success_rate";
    pub const VUS: &str = "vus";
    pub const VUS_MAX: &str = "vus_max";
    /// A flow step sent again by its retry policy (tag `operation`), one per retry.
    pub const STEP_RETRIES: &str = "step_retries";
    /// Attempts a step with a retry policy took, the first included (tag `operation`).
    pub const STEP_ATTEMPTS: &str = "step_attempts";
    /// A fan-out group's wall time, first copy sent to last copy done (tag `group`).
    pub const FANOUT_WALL: &str = "fanout_wall";
    /// A fan-out group's sum of its copies' times ÷ its wall time (tag `group`): N when N
    /// copies ran fully in parallel, 1 when they ran one after the other.
    pub const PARALLEL_EFFICIENCY: &str = "parallel_efficiency";
    /// The built-in `chain` flow's run per turn (tag `depth`: 0, 1, …).
    pub const CHAIN_TURN_DURATION: &str = "chain_turn_duration";
    /// The built-in fan-out flows' runs (one sample per copy).
    pub const FANOUT_RUN_DURATION: &str = "fanout_run_duration";
    /// Share of flows that were good: every check passed and every step met its
    /// service-level objective (the plan's `[slo]`).
    pub const FLOW_GOODPUT: &str = "flow_goodput";
    /// Open model: an iteration's actual start minus its scheduled start.
    pub const SCHEDULE_LAG: &str = "schedule_lag";
    /// A step with `llm_calls`: the mock LLM's own service time summed over the calls it
    /// served for that run (tag `operation`).
    pub const LLM_SERVICE_TIME: &str = "llm_service_time";
    /// A step with `llm_calls`: the calls the mock served for that run (tag `operation`).
    pub const LLM_CALLS: &str = "llm_calls";
    /// A step with `llm_calls`: the run's latency minus [`LLM_SERVICE_TIME`], what the
    /// runtime itself added (tag `operation`; seed 001's framework overhead).
    pub const RUNTIME_OVERHEAD: &str = "runtime_overhead";

    /// Operations of the agent flow (and `request`, the one-request flow's); each is also
    /// a Trend of its own.
    pub const OPERATIONS: &[&str] = &[
        "create_assistant",
        "create_thread",
        "run_wait",
        "run_stream",
        "get_state",
        "stateless_run",
        "store_put",
        "store_get",
        "store_search",
        "cleanup",
        "request",
    ];

    /// (name, kind, values are durations)
    pub const ALL: &[(&str, MetricKind, bool)] = &[
        (HTTP_REQ_DURATION, Trend, true),
        (HTTP_REQ_WAITING, Trend, true),
        (ITERATION_DURATION, Trend, true),
        (AGENT_FLOW_DURATION, Trend, true),
        (STREAM_FIRST_EVENT, Trend, true),
        (STREAM_EVENTS, Trend, false),
        (STREAM_FIRST_TOKEN, Trend, true),
        (STREAM_EVENT_GAP, Trend, true),
        (STREAM_BUFFERED, Rate, false),
        (HTTP_REQS, Counter, false),
        (ITERATIONS, Counter, false),
        (DROPPED_ITERATIONS, Counter, false),
        (INTERRUPTED_ITERATIONS, Counter, false),
        (DATA_SENT, Counter, false),
        (DATA_RECEIVED, Counter, false),
        (HTTP_REQ_FAILED, Rate, false),
        (CHECKS, Rate, false),
        (AGENT_FLOW_SUCCESS_RATE, Rate, false),
        (VUS, Gauge, false),
        (VUS_MAX, Gauge, false),
        (STEP_RETRIES, Counter, false),
        (STEP_ATTEMPTS, Trend, false),
        (FANOUT_WALL, Trend, true),
        (PARALLEL_EFFICIENCY, Trend, false),
        (CHAIN_TURN_DURATION, Trend, true),
        (FANOUT_RUN_DURATION, Trend, true),
        (FLOW_GOODPUT, Rate, false),
        (SCHEDULE_LAG, Trend, true),
        (LLM_SERVICE_TIME, Trend, true),
        (LLM_CALLS, Trend, false),
        (RUNTIME_OVERHEAD, Trend, true),
    ];

    /// Whether a Counter counts bytes (k6's `contains: "data"`: `data_sent`,
    /// `data_received`), printed in byte units by the summaries.
    pub fn is_data(name: &str) -> bool {
        name.starts_with("data_")
    }

    /// Kind of a built-in metric (the operation trends included), and whether it is a time.
    pub fn lookup(name: &str) -> Option<(MetricKind, bool)> {
        ALL.iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, k, t)| (*k, *t))
            .or_else(|| OPERATIONS.contains(&name).then_some((Trend, true)))
    }
}

/// One time series: a metric and its sorted tags (k6's `TimeSeries`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeriesKey {
    pub metric: String,
    /// Sorted by key, keys unique.
    pub tags: Vec<(String, String)>,
}

impl SeriesKey {
    pub fn new(metric: impl Into<String>) -> Self {
        SeriesKey {
            metric: metric.into(),
            tags: Vec::new(),
        }
    }

    /// A key with tags; sorts them and keeps the last value of a repeated key.
    pub fn with_tags<K: Into<String>, V: Into<String>>(
        metric: impl Into<String>,
        tags: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let mut t: Vec<(String, String)> = tags
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        t.sort_by(|a, b| a.0.cmp(&b.0));
        t.dedup_by(|later, earlier| {
            if later.0 == earlier.0 {
                earlier.1 = std::mem::take(&mut later.1);
                true
            } else {
                false
            }
        });
        SeriesKey {
            metric: metric.into(),
            tags: t,
        }
    }

    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// True when every `(key, value)` of `filter` is among this series' tags.
    pub fn matches(&self, filter: &[(String, String)]) -> bool {
        filter.iter().all(|(k, v)| self.tag(k) == Some(v.as_str()))
    }
}

impl fmt::Display for SeriesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.metric)?;
        if !self.tags.is_empty() {
            f.write_str("{")?;
            for (i, (k, v)) in self.tags.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                write!(f, "{k}:{v}")?;
            }
            f.write_str("}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_keys_sort_and_match() {
        let k = SeriesKey::with_tags(
            "http_req_duration",
            [
                ("status", "200"),
                ("operation", "run_wait"),
                ("status", "201"),
            ],
        );
        assert_eq!(
            k.to_string(),
            "http_req_duration{operation:run_wait,status:201}"
        );
        assert!(k.matches(&[("operation".into(), "run_wait".into())]));
        assert!(!k.matches(&[("operation".into(), "get_state".into())]));
    }

    #[test]
    fn builtin_lookup() {
        assert_eq!(builtin::lookup("run_wait"), Some((MetricKind::Trend, true)));
        assert_eq!(
            builtin::lookup("http_req_failed"),
            Some((MetricKind::Rate, false))
        );
        assert_eq!(builtin::lookup("nope"), None);
    }
}

//! The six http series every request records (`http_reqs`, `http_req_duration`,
//! `http_req_waiting`, `http_req_failed`, `data_sent`, `data_received`), shared by the
//! flow's steps and target auth's token requests.
use barrage_core::metrics::builtin;
use barrage_core::MetricKind;
use reqwest::Method;

use crate::http::{status_str, Exchange, TransportError};
use crate::sample::{CachedSeries, Record};

/// Records the http samples of one exchange under `operation` (no series cache: for the
/// occasional request, e.g. a token grant).
pub(crate) fn record_http(
    recorder: &dyn Record,
    operation: &str,
    method: &Method,
    ex: &Exchange,
    failed: bool,
) {
    HttpSeries::default().record(recorder, operation, method, ex, failed);
}

/// The six http series of one step (`http_reqs`, `http_req_duration`, `http_req_waiting`,
/// `http_req_failed`, `data_sent`, `data_received`), resolved for the last status seen:
/// a step's status rarely changes, so its samples are recorded by id.
#[derive(Debug, Default, Clone)]
pub(crate) struct HttpSeries {
    /// The status tag and the error tag the ids were resolved for.
    key: Option<(u16, Option<TransportError>)>,
    ids: [CachedSeries; 6],
}

impl HttpSeries {
    pub(crate) fn record(
        &mut self,
        recorder: &dyn Record,
        operation: &str,
        method: &Method,
        ex: &Exchange,
        failed: bool,
    ) {
        let status_code = ex.tag_status();
        if self.key != Some((status_code, ex.error)) {
            self.key = Some((status_code, ex.error));
            self.ids = Default::default();
        }
        let mut buf = [0u8; 3];
        let status = status_str(status_code, &mut buf);
        let with_error;
        let tags: &[(&str, &str)] = match ex.error {
            None => &[
                ("operation", operation),
                ("method", method.as_str()),
                ("status", status),
            ],
            // A failed request also says why, as k6's `error` tag does.
            Some(e) => {
                with_error = [
                    ("operation", operation),
                    ("method", method.as_str()),
                    ("status", status),
                    ("error", e.tag()),
                ];
                &with_error
            }
        };
        let values = [
            (builtin::HTTP_REQS, MetricKind::Counter, 1.0),
            (
                builtin::HTTP_REQ_DURATION,
                MetricKind::Trend,
                micros(ex.duration),
            ),
            (
                builtin::HTTP_REQ_WAITING,
                MetricKind::Trend,
                micros(ex.waiting),
            ),
            (
                builtin::HTTP_REQ_FAILED,
                MetricKind::Rate,
                if failed || !ex.is_2xx() { 1.0 } else { 0.0 },
            ),
            (builtin::DATA_SENT, MetricKind::Counter, ex.sent as f64),
            (
                builtin::DATA_RECEIVED,
                MetricKind::Counter,
                ex.received as f64,
            ),
        ];
        for (slot, (metric, kind, value)) in self.ids.iter_mut().zip(values) {
            slot.record(recorder, metric, kind, tags, value);
        }
    }
}

/// A duration in microseconds (fractional).
pub(crate) fn micros(d: std::time::Duration) -> f64 {
    d.as_nanos() as f64 / 1000.0
}

//! Runtime overhead (seed 001's "framework overhead"): a run's latency minus the time the
//! LLM itself took for the calls of that run. Barrage's mock LLM knows the second part
//! exactly and keeps it per call in its call log (`GET /stats/calls`, `service_us`), keyed
//! by a `[barrage-key:KEY]` marker the flow writes into the run's prompt (every runtime
//! passes the conversation to its model, so no runtime support is needed).
//!
//! Matching is per run, by key, not by totals: after a step with `llm_calls` passes, the
//! worker asks the mock for that run's calls and records, tagged `operation`:
//!
//! | metric | value |
//! | --- | --- |
//! | `llm_calls` | calls the mock served for the run (0: none found, then no overhead) |
//! | `llm_service_time` | their summed `service_us` (request head to last byte) |
//! | `runtime_overhead` | the run's `http_req_duration` minus that sum, at least 0 |
//!
//! A retried step reuses its key, so only calls that arrived after this attempt was sent
//! count ([`CLOCK_SLACK_US`] allows for the two clocks). The mock writes a call's record
//! as the answer's last byte leaves, a hair after the runtime may already have answered,
//! so an empty answer is asked again once after [`RELOOK`]. The extra request goes to the
//! mock, not to the runtime, after the run's time was taken: it is not in any `http_*`
//! sample, and it is why `llm_calls` is opt-in per step.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use barrage_core::metrics::builtin;
use barrage_core::MetricKind;
use reqwest::Method;
use serde::Deserialize;

use super::http_series::micros;
use super::step::Step;
use super::template::Vars;
use super::AgentFlow;
use crate::http::{Cancelled, Request};
use crate::sample::{IterationCtx, Sample};

/// Calls that arrived this long before the run was sent still count: the mock's clock is
/// its start's wall time plus monotonic time, the worker's the wall clock.
pub const CLOCK_SLACK_US: u64 = 2_000;

/// When the log holds no call of the run yet, it is asked again after this long.
pub const RELOOK: Duration = Duration::from_millis(20);

/// The part of `/stats/calls` read here.
#[derive(Deserialize)]
struct CallLog {
    calls: Vec<LoggedCall>,
}

#[derive(Deserialize)]
struct LoggedCall {
    received_unix_us: u64,
    service_us: u64,
}

/// Now, µs since the Unix epoch (the clock of the mock's `received_unix_us`).
pub fn unix_us_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Of the logged calls, those received from `from_unix_us` on: (count, summed service µs).
fn matched(log: &CallLog, from_unix_us: u64) -> (u64, u64) {
    log.calls
        .iter()
        .filter(|c| c.received_unix_us >= from_unix_us)
        .fold((0, 0), |(n, s), c| (n + 1, s + c.service_us))
}

impl AgentFlow {
    /// Records the overhead samples of a passed step with `llm_calls`, sent at
    /// `sent_unix_us` and answered after `latency`.
    pub(super) async fn record_overhead(
        &self,
        step: &Step,
        vars: &Vars,
        sent_unix_us: u64,
        latency: Duration,
        ctx: &IterationCtx<'_>,
    ) -> Result<(), Cancelled> {
        let Some(template) = &step.llm_calls else {
            return Ok(());
        };
        let mut url = String::new();
        template.render_raw(vars, &mut url);
        let from = sent_unix_us.saturating_sub(CLOCK_SLACK_US);
        let mut found = (0, 0);
        for look in 0..2 {
            if look > 0 {
                tokio::time::sleep(RELOOK).await;
            }
            let mut body = Vec::new();
            let req = Request {
                method: &Method::GET,
                url: &url,
                body: None,
                auth: None,
                accept: None,
                extra: &[],
            };
            let ex = self.http.execute(&req, &mut body, ctx.cancel).await?;
            let log = match serde_json::from_slice::<CallLog>(&body) {
                Ok(log) if ex.is_2xx() => log,
                Ok(_) | Err(_) => {
                    tracing::debug!(
                        operation = step.operation,
                        url,
                        status = ex.status,
                        "llm_calls: not a mock LLM call log"
                    );
                    break;
                }
            };
            found = matched(&log, from);
            if found.0 > 0 {
                break;
            }
        }
        let tags: &[(&str, &str)] = &[("operation", &step.operation)];
        let (calls, service_us) = found;
        ctx.recorder.record(Sample {
            metric: builtin::LLM_CALLS,
            kind: MetricKind::Trend,
            tags,
            value: calls as f64,
        });
        if calls > 0 {
            let service = Duration::from_micros(service_us);
            ctx.recorder.record(Sample {
                metric: builtin::LLM_SERVICE_TIME,
                kind: MetricKind::Trend,
                tags,
                value: micros(service),
            });
            ctx.recorder.record(Sample {
                metric: builtin::RUNTIME_OVERHEAD,
                kind: MetricKind::Trend,
                tags,
                value: micros(latency.saturating_sub(service)),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_calls_since_the_attempt_count() {
        let log: CallLog = serde_json::from_str(
            r#"{"calls":[
                {"received_unix_us":1000,"service_us":50,"seq":0},
                {"received_unix_us":5000,"service_us":70},
                {"received_unix_us":6000,"service_us":30}
            ]}"#,
        )
        .unwrap();
        assert_eq!(matched(&log, 0), (3, 150));
        assert_eq!(
            matched(&log, 4000),
            (2, 100),
            "an earlier attempt's call is left out"
        );
        assert_eq!(matched(&log, 7000), (0, 0));
    }
}

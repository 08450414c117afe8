//! Server-side counters, shared by all connections through atomics (no lock on the hot
//! path), rendered as `/stats` JSON and `/metrics` Prometheus text.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

/// What a request was, for counting. Every request counts once, in exactly one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `POST /v1/chat/completions` without `"stream": true` (also requests refused with 4xx).
    Chat,
    /// `POST /v1/chat/completions` with `"stream": true`.
    ChatStream,
    /// `GET /v1/models`.
    Models,
    /// `GET /health`.
    Health,
    /// `GET /stats` and `GET /stats/calls` (a stats answer counts itself).
    Stats,
    /// `GET /metrics`.
    Metrics,
    /// `GET`/`POST /admin/config`.
    Admin,
    /// Anything else (404 and 405 answers).
    Other,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 8] = [
        Kind::Chat,
        Kind::ChatStream,
        Kind::Models,
        Kind::Health,
        Kind::Stats,
        Kind::Metrics,
        Kind::Admin,
        Kind::Other,
    ];

    /// The name used in `/stats` and as the `kind` label in `/metrics`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Chat => "chat",
            Kind::ChatStream => "chat_stream",
            Kind::Models => "models",
            Kind::Health => "health",
            Kind::Stats => "stats",
            Kind::Metrics => "metrics",
            Kind::Admin => "admin",
            Kind::Other => "other",
        }
    }
}

/// The counters.
#[derive(Debug)]
pub struct Stats {
    /// When the server started, for uptime.
    started: Instant,
    /// Requests by [`Kind`], indexed by `Kind as usize`.
    requests: [AtomicU64; Kind::ALL.len()],
    /// Prompt tokens of answered chat requests.
    tokens_in: AtomicU64,
    /// Completion tokens of answered chat requests.
    tokens_out: AtomicU64,
    /// Answers that were tool calls.
    tool_calls: AtomicU64,
    /// Chat requests answered with an injected error status.
    errors_injected: AtomicU64,
    /// Streams cut on purpose before `[DONE]`.
    disconnects_injected: AtomicU64,
    /// Requests refused with a 4xx (bad JSON, missing messages, too large, 404, 405).
    rejected: AtomicU64,
    /// Chat calls answered with an error status, for any reason (4xx, injected, queue full).
    chat_errors: AtomicU64,
    /// Requests whose response is not finished yet (a stream counts until its body ends).
    in_flight: AtomicI64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            started: Instant::now(),
            requests: Default::default(),
            tokens_in: AtomicU64::new(0),
            tokens_out: AtomicU64::new(0),
            tool_calls: AtomicU64::new(0),
            errors_injected: AtomicU64::new(0),
            disconnects_injected: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            chat_errors: AtomicU64::new(0),
            in_flight: AtomicI64::new(0),
        }
    }
}

/// Decrements the in-flight gauge when dropped: held by a response body until it is done.
#[derive(Debug)]
pub struct InFlight(Arc<Stats>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

impl Stats {
    /// Marks a request as started; the guard marks it finished.
    pub fn enter(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Relaxed);
        InFlight(Arc::clone(self))
    }

    /// Counts one request of `kind`.
    pub fn count(&self, kind: Kind) {
        self.requests[kind as usize].fetch_add(1, Relaxed);
    }

    /// Counts the tokens of one answered chat request.
    pub fn tokens(&self, prompt: u64, completion: u64) {
        self.tokens_in.fetch_add(prompt, Relaxed);
        self.tokens_out.fetch_add(completion, Relaxed);
    }

    /// Counts a tool-call answer.
    pub fn tool_call(&self) {
        self.tool_calls.fetch_add(1, Relaxed);
    }

    /// Counts an injected error answer.
    pub fn error_injected(&self) {
        self.errors_injected.fetch_add(1, Relaxed);
    }

    /// Counts a stream that will be cut.
    pub fn disconnect_injected(&self) {
        self.disconnects_injected.fetch_add(1, Relaxed);
    }

    /// Counts a 4xx refusal.
    pub fn rejected(&self) {
        self.rejected.fetch_add(1, Relaxed);
    }

    /// Counts a chat call answered with an error status.
    pub fn chat_error(&self) {
        self.chat_errors.fetch_add(1, Relaxed);
    }

    fn requests_of(&self, kind: Kind) -> u64 {
        self.requests[kind as usize].load(Relaxed)
    }

    fn requests_total(&self) -> u64 {
        Kind::ALL.iter().map(|&k| self.requests_of(k)).sum()
    }

    fn uptime_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// The `/stats` document.
    pub fn to_json(&self, model: &str) -> serde_json::Value {
        let by_kind: serde_json::Map<String, serde_json::Value> = Kind::ALL
            .iter()
            .map(|&k| (k.name().to_owned(), self.requests_of(k).into()))
            .collect();
        serde_json::json!({
            "requests_total": self.requests_total(),
            "requests": by_kind,
            "tokens_in": self.tokens_in.load(Relaxed),
            "tokens_out": self.tokens_out.load(Relaxed),
            "tool_calls": self.tool_calls.load(Relaxed),
            "errors_injected": self.errors_injected.load(Relaxed),
            "disconnects_injected": self.disconnects_injected.load(Relaxed),
            "rejected": self.rejected.load(Relaxed),
            "calls_total": self.requests_of(Kind::Chat) + self.requests_of(Kind::ChatStream),
            "chat_errors": self.chat_errors.load(Relaxed),
            "in_flight": self.in_flight.load(Relaxed),
            "uptime_s": self.uptime_s(),
            "model": model,
        })
    }

    /// The `/metrics` document, Prometheus text exposition format 0.0.4.
    pub fn to_prometheus(&self) -> String {
        let mut out = String::with_capacity(2048);
        let mut family = |name: &str, kind: &str, help: &str, samples: &[(&str, f64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let by_kind: Vec<(String, f64)> = Kind::ALL
            .iter()
            .map(|&k| {
                (
                    format!("{{kind=\"{}\"}}", k.name()),
                    self.requests_of(k) as f64,
                )
            })
            .collect();
        let by_kind: Vec<(&str, f64)> = by_kind.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        family(
            "mock_llm_requests_total",
            "counter",
            "Requests received, by kind.",
            &by_kind,
        );
        family(
            "mock_llm_tokens_total",
            "counter",
            "Tokens (whitespace words) of answered chat requests, by direction.",
            &[
                ("{direction=\"in\"}", self.tokens_in.load(Relaxed) as f64),
                ("{direction=\"out\"}", self.tokens_out.load(Relaxed) as f64),
            ],
        );
        let single = |a: &AtomicU64| [("", a.load(Relaxed) as f64)];
        family(
            "mock_llm_tool_calls_total",
            "counter",
            "Answers that were tool calls.",
            &single(&self.tool_calls),
        );
        family(
            "mock_llm_errors_injected_total",
            "counter",
            "Chat requests answered with an injected error status.",
            &single(&self.errors_injected),
        );
        family(
            "mock_llm_disconnects_injected_total",
            "counter",
            "Streams cut on purpose before [DONE].",
            &single(&self.disconnects_injected),
        );
        family(
            "mock_llm_rejected_total",
            "counter",
            "Requests refused with a 4xx status.",
            &single(&self.rejected),
        );
        family(
            "mock_llm_chat_errors_total",
            "counter",
            "Chat calls answered with an error status (4xx, injected, queue full).",
            &single(&self.chat_errors),
        );
        family(
            "mock_llm_in_flight",
            "gauge",
            "Requests whose response is not finished.",
            &[("", self.in_flight.load(Relaxed) as f64)],
        );
        family(
            "mock_llm_uptime_seconds",
            "gauge",
            "Seconds since the server started.",
            &[("", self.uptime_s())],
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_renders() {
        let stats = Arc::new(Stats::default());
        stats.count(Kind::Chat);
        stats.count(Kind::Chat);
        stats.count(Kind::Other);
        stats.tokens(3, 42);
        let guard = stats.enter();
        let json = stats.to_json("m");
        assert_eq!(json["requests_total"], 3);
        assert_eq!(json["requests"]["chat"], 2);
        assert_eq!(json["requests"]["chat_stream"], 0);
        assert_eq!(json["tokens_out"], 42);
        assert_eq!(json["in_flight"], 1);
        drop(guard);
        assert_eq!(stats.to_json("m")["in_flight"], 0);
        let text = stats.to_prometheus();
        assert!(
            text.contains("# TYPE mock_llm_requests_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("mock_llm_requests_total{kind=\"chat\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("mock_llm_tokens_total{direction=\"in\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE mock_llm_in_flight gauge\nmock_llm_in_flight 0\n"),
            "{text}"
        );
    }
}

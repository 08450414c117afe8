//! The settings that may change while the server runs, and `/admin/config`.
//!
//! A benchmark with two plateaus at two model latencies needs one mock whose delay changes
//! between them, without a restart (a restart would drop the runtime's open connections).
//! [`Tunables`] is that subset of [`Config`]; [`Live`] holds the current value. Every request
//! copies it once on arrival, so one request never sees two versions.
//!
//! `GET /admin/config` answers the current values; `POST /admin/config` with a JSON object
//! of any of the fields below changes them, all or none: every invalid field is reported
//! at once (400, each naming the field, the value and the accepted form), and nothing is
//! changed then. The answer is the new full set. Values are JSON numbers (or strings
//! holding one), validated like their flags.
//!
//! | field | flag |
//! | --- | --- |
//! | `delay_ms`, `stream_delay_ms`, `jitter_ms` | `--delay-ms`, `--stream-delay-ms`, `--jitter-ms` |
//! | `error_rate`, `error_status`, `tool_call_rate`, `disconnect_rate` | the flags of the same names |
//! | `ttft_ms`, `ttft_per_token_us`, `tokens_per_s` | model mode's timings |
//!
//! The mode, the slot count, the queue size and everything else are fixed at start.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::RwLock;
use std::time::Duration;

use serde_json::Value;

use crate::config::{
    parse_error_status, parse_ms, parse_per_token_us, parse_rate, parse_tokens_per_s, Config,
    ErrorStatus, Problem, EXPECT_MS, EXPECT_PER_TOKEN_US, EXPECT_RATE, EXPECT_STATUS,
    EXPECT_TOKENS_PER_S,
};

/// The settings `/admin/config` may change.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tunables {
    /// Fixed mode: wait before the first byte.
    pub delay: Duration,
    /// Fixed mode: spacing of stream chunks.
    pub stream_delay: Duration,
    /// Uniform random 0..=jitter added to the first-byte delay (both modes).
    pub jitter: Duration,
    /// Probability of a tool call when tools are offered.
    pub tool_call_rate: f64,
    /// Probability of an injected error answer.
    pub error_rate: f64,
    /// Status of injected errors.
    pub error_status: ErrorStatus,
    /// Probability of a cut stream.
    pub disconnect_rate: f64,
    /// Model mode: time to first token of an empty prompt.
    pub ttft: Duration,
    /// Model mode: prefill time per prompt token.
    pub ttft_per_token: Duration,
    /// Model mode: chunks per second of one stream.
    pub tokens_per_s: f64,
}

impl Tunables {
    /// The tunable part of `config`.
    pub fn of(config: &Config) -> Self {
        Tunables {
            delay: config.delay,
            stream_delay: config.stream_delay,
            jitter: config.jitter,
            tool_call_rate: config.tool_call_rate,
            error_rate: config.error_rate,
            error_status: config.error_status,
            disconnect_rate: config.disconnect_rate,
            ttft: config.model_settings.ttft,
            ttft_per_token: config.model_settings.ttft_per_token,
            tokens_per_s: config.model_settings.tokens_per_s,
        }
    }

    /// Model mode's spacing of stream chunks.
    pub fn token_interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.tokens_per_s)
    }

    /// Model mode's time to first token for a prompt of `prompt_tokens`.
    pub fn ttft_for(&self, prompt_tokens: u64) -> Duration {
        let per = self
            .ttft_per_token
            .saturating_mul(u32::try_from(prompt_tokens).unwrap_or(u32::MAX));
        self.ttft.saturating_add(per)
    }

    /// The `/admin/config` document (also part of `/stats`).
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "delay_ms": self.delay.as_millis() as u64,
            "stream_delay_ms": self.stream_delay.as_millis() as u64,
            "jitter_ms": self.jitter.as_millis() as u64,
            "tool_call_rate": self.tool_call_rate,
            "error_rate": self.error_rate,
            "error_status": self.error_status.code(),
            "disconnect_rate": self.disconnect_rate,
            "ttft_ms": self.ttft.as_millis() as u64,
            "ttft_per_token_us": self.ttft_per_token.as_micros() as u64,
            "tokens_per_s": self.tokens_per_s,
        })
    }

    /// `self` with the changes of an `/admin/config` body applied, or every problem.
    pub fn with_changes(mut self, body: &[u8]) -> Result<Self, Vec<Problem>> {
        let doc: Value = serde_json::from_slice(body).map_err(|_| {
            vec![Problem {
                source: "body".into(),
                value: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
                expected: EXPECT_OBJECT,
            }]
        })?;
        let Value::Object(fields) = doc else {
            return Err(vec![Problem {
                source: "body".into(),
                value: doc.to_string(),
                expected: EXPECT_OBJECT,
            }]);
        };
        let mut problems = Vec::new();
        for (name, value) in &fields {
            let text = match value {
                Value::Number(n) => n.to_string(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let ok = match name.as_str() {
                "delay_ms" => set(&mut self.delay, parse_ms(&text)),
                "stream_delay_ms" => set(&mut self.stream_delay, parse_ms(&text)),
                "jitter_ms" => set(&mut self.jitter, parse_ms(&text)),
                "tool_call_rate" => set(&mut self.tool_call_rate, parse_rate(&text)),
                "error_rate" => set(&mut self.error_rate, parse_rate(&text)),
                "error_status" => set(&mut self.error_status, parse_error_status(&text)),
                "disconnect_rate" => set(&mut self.disconnect_rate, parse_rate(&text)),
                "ttft_ms" => set(&mut self.ttft, parse_ms(&text)),
                "ttft_per_token_us" => set(&mut self.ttft_per_token, parse_per_token_us(&text)),
                "tokens_per_s" => set(&mut self.tokens_per_s, parse_tokens_per_s(&text)),
                _ => {
                    problems.push(Problem {
                        source: name.clone(),
                        value: text,
                        expected: "a known field: delay_ms, stream_delay_ms, jitter_ms, tool_call_rate, error_rate, error_status, disconnect_rate, ttft_ms, ttft_per_token_us, tokens_per_s",
                    });
                    continue;
                }
            };
            // A string must hold a number: `"50"` is accepted, `true` or `{}` are not.
            let ok = ok && matches!(value, Value::Number(_) | Value::String(_));
            if !ok {
                problems.push(Problem {
                    source: name.clone(),
                    value: text,
                    expected: expected_of(name),
                });
            }
        }
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(problems)
        }
    }
}

/// Stores `parsed` in `slot` if it is valid; tells whether it was.
fn set<T>(slot: &mut T, parsed: Option<T>) -> bool {
    match parsed {
        Some(v) => {
            *slot = v;
            true
        }
        None => false,
    }
}

fn expected_of(field: &str) -> &'static str {
    match field {
        "delay_ms" | "stream_delay_ms" | "jitter_ms" | "ttft_ms" => EXPECT_MS,
        "error_status" => EXPECT_STATUS,
        "ttft_per_token_us" => EXPECT_PER_TOKEN_US,
        "tokens_per_s" => EXPECT_TOKENS_PER_S,
        _ => EXPECT_RATE,
    }
}

/// The accepted form of an `/admin/config` body.
const EXPECT_OBJECT: &str = "a JSON object such as {\"delay_ms\": 50}";

/// The current [`Tunables`], shared by all connections.
#[derive(Debug)]
pub struct Live {
    /// The values; a request copies them once (a read lock held for a copy).
    current: RwLock<Tunables>,
    /// Changes applied since start.
    changes: AtomicU64,
}

impl Live {
    /// Starts from the configured values.
    pub fn new(config: &Config) -> Self {
        Live {
            current: RwLock::new(Tunables::of(config)),
            changes: AtomicU64::new(0),
        }
    }

    /// A copy of the current values.
    pub fn get(&self) -> Tunables {
        *self.current.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies an `/admin/config` body: all of it, or nothing and every problem.
    pub fn change(&self, body: &[u8]) -> Result<Tunables, Vec<Problem>> {
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        let next = current.with_changes(body)?;
        *current = next;
        self.changes.fetch_add(1, Relaxed);
        Ok(next)
    }

    /// Changes applied since start.
    pub fn changes(&self) -> u64 {
        self.changes.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Tunables {
        Tunables::of(&Config::default())
    }

    #[test]
    fn valid_changes_apply() {
        // (body, check)
        type Check = fn(&Tunables) -> bool;
        let cases: &[(&str, Check)] = &[
            (r#"{"delay_ms": 50}"#, |t| {
                t.delay == Duration::from_millis(50)
            }),
            (r#"{"delay_ms": "7", "jitter_ms": 0}"#, |t| {
                t.delay == Duration::from_millis(7) && t.jitter.is_zero()
            }),
            (r#"{"error_rate": 0.2, "error_status": 500}"#, |t| {
                t.error_rate == 0.2 && t.error_status == ErrorStatus::Internal
            }),
            (r#"{"tokens_per_s": 12.5, "ttft_per_token_us": 10}"#, |t| {
                t.tokens_per_s == 12.5 && t.ttft_per_token == Duration::from_micros(10)
            }),
            (r#"{}"#, |t| *t == base()),
        ];
        for (body, check) in cases {
            let t = base()
                .with_changes(body.as_bytes())
                .unwrap_or_else(|p| panic!("{body}: {p:?}"));
            assert!(check(&t), "{body}: {t:?}");
        }
    }

    #[test]
    fn invalid_changes_name_every_field_and_change_nothing() {
        // (body, fields named)
        let cases: &[(&str, &[&str])] = &[
            (r#"{"delay_ms": -1}"#, &["delay_ms"]),
            (r#"{"delay_ms": 1.5}"#, &["delay_ms"]),
            (r#"{"delay_ms": true}"#, &["delay_ms"]),
            (
                r#"{"error_rate": 2, "error_status": 404}"#,
                &["error_rate", "error_status"],
            ),
            (r#"{"tokens_per_s": 0}"#, &["tokens_per_s"]),
            (r#"{"delay": 5}"#, &["delay"]),
            (r#"[1]"#, &["body"]),
            (r#"{"#, &["body"]),
        ];
        for (body, fields) in cases {
            let problems = base().with_changes(body.as_bytes()).unwrap_err();
            let named: Vec<&str> = problems.iter().map(|p| p.source.as_str()).collect();
            assert_eq!(named, *fields, "{body}");
        }
        let live = Live::new(&Config::default());
        assert!(live.change(br#"{"delay_ms": 5, "error_rate": 9}"#).is_err());
        assert_eq!(live.get(), base(), "a rejected change changes nothing");
        assert_eq!(live.changes(), 0);
        live.change(br#"{"delay_ms": 5}"#).unwrap();
        assert_eq!(live.get().delay, Duration::from_millis(5));
        assert_eq!(live.changes(), 1);
    }

    #[test]
    fn model_timing_formulas() {
        let t = Tunables {
            ttft: Duration::from_millis(100),
            ttft_per_token: Duration::from_micros(250),
            tokens_per_s: 40.0,
            ..base()
        };
        assert_eq!(t.ttft_for(0), Duration::from_millis(100));
        assert_eq!(t.ttft_for(1000), Duration::from_millis(350));
        assert_eq!(t.token_interval(), Duration::from_millis(25));
    }
}

//! Configuration: the command-line/environment surface (`Args`) and the validated
//! settings the server runs with (`Config`).
//!
//! Every setting has a flag and a `MOCK_LLM_*` variable. A flag wins over the variable; an
//! empty variable counts as unset. All values arrive as text and are validated here, in one
//! pass that reports every problem at once, each naming where the value came from (the flag
//! or the variable), the value, and the accepted form.
//!
//! | flag | variable | default | accepted |
//! | --- | --- | --- | --- |
//! | `--host` | `MOCK_LLM_HOST` | 127.0.0.1 | an IP address, or `localhost` |
//! | `--port` | `MOCK_LLM_PORT` | 11434 | 0..=65535 (0: the OS picks one) |
//! | `--reuse-port` | `MOCK_LLM_REUSE_PORT` | false | `true`/`false`/`1`/`0` (the bare flag: true): share the port with other processes (`SO_REUSEPORT`) |
//! | `--delay-ms` | `MOCK_LLM_DELAY_MS` | 10 | 0..=600000, wait before the first byte |
//! | `--stream-delay-ms` | `MOCK_LLM_STREAM_DELAY_MS` | 5 | 0..=600000, between stream chunks |
//! | `--jitter-ms` | `MOCK_LLM_JITTER_MS` | 0 | 0..=600000, uniform 0..=N ms added to the first-byte delay |
//! | `--response` | `MOCK_LLM_RESPONSE` | the 42-word sentence | text with at least one word |
//! | `--model` | `MOCK_LLM_MODEL` | mock-gpt-4o | non-empty text |
//! | `--tool-call-rate` | `MOCK_LLM_TOOL_CALL_RATE` | 0 | 0..=1 |
//! | `--error-rate` | `MOCK_LLM_ERROR_RATE` | 0 | 0..=1 |
//! | `--error-status` | `MOCK_LLM_ERROR_STATUS` | 429 | 429, 500 or 503 |
//! | `--disconnect-rate` | `MOCK_LLM_DISCONNECT_RATE` | 0 | 0..=1 |
//! | `--max-body-bytes` | `MOCK_LLM_MAX_BODY_BYTES` | 4194304 | 1..=1073741824 |
//! | `--threads` | `MOCK_LLM_THREADS` | available parallelism | 1..=1024 (1: single-threaded runtime) |
//! | `--grace-ms` | `MOCK_LLM_GRACE_MS` | 5000 | 0..=600000, shutdown grace period |
//! | `--mode` | `MOCK_LLM_MODE` | fixed | `fixed` or `model` (see [`Mode`]) |
//! | `--ttft-ms` | `MOCK_LLM_TTFT_MS` | 200 | 0..=600000, model mode: time to first token of an empty prompt |
//! | `--ttft-per-token-us` | `MOCK_LLM_TTFT_PER_TOKEN_US` | 100 | 0..=1000000, model mode: added per prompt token |
//! | `--tokens-per-s` | `MOCK_LLM_TOKENS_PER_S` | 50 | 0.1..=1000000, model mode: chunks per second of one stream |
//! | `--max-concurrency` | `MOCK_LLM_MAX_CONCURRENCY` | 16 | 1..=1000000, model mode: generations at once |
//! | `--queue-size` | `MOCK_LLM_QUEUE_SIZE` | 64 | 0..=1000000, model mode: requests waiting for a slot |
//! | `--call-log-size` | `MOCK_LLM_CALL_LOG_SIZE` | 10000 | 0..=1000000, chat calls kept for `/stats/calls` (0: none) |
//!
//! Delays, jitter, rates, the error status and the model-mode timings can also be changed
//! while the server runs (`POST /admin/config`, see [`crate::live`]); the other settings are
//! fixed at start.

mod parse;

use parse::{parse_bool, parse_bounded, parse_host, parse_mode};
pub(crate) use parse::{
    parse_error_status, parse_ms, parse_per_token_us, parse_rate, parse_tokens_per_s, EXPECT_MS,
    EXPECT_PER_TOKEN_US, EXPECT_RATE, EXPECT_STATUS, EXPECT_TOKENS_PER_S,
};

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// The answer text when none is configured: the same 42 words as the Bun anchor's.
pub const DEFAULT_RESPONSE: &str = "This is a deterministic response from the mock language model server. \
It exists so that benchmarks measure the agent runtime itself rather than the latency of a real model. \
Every request receives exactly the same words, streamed back one word per chunk.";

/// The model name when none is configured.
pub const DEFAULT_MODEL: &str = "mock-gpt-4o";

/// Largest accepted delay, jitter or grace period (10 minutes).
const MAX_MS: u64 = 600_000;
/// Largest accepted request-body limit (1 GiB).
const MAX_BODY_LIMIT: u64 = 1 << 30;
/// Largest accepted worker-thread count.
const MAX_THREADS: u64 = 1024;

/// Command-line flags of the mock LLM. Each one falls back to its `MOCK_LLM_*` variable.
///
/// Derives `clap::Args`, so another CLI can flatten it into a subcommand. Values stay text
/// until [`Args::into_config`] validates them all at once.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Args {
    /// Address to listen on [env: MOCK_LLM_HOST] [default: 127.0.0.1]
    #[arg(long, value_name = "IP")]
    pub host: Option<String>,
    /// Port to listen on; 0 lets the OS pick one [env: MOCK_LLM_PORT] [default: 11434]
    #[arg(long, value_name = "PORT")]
    pub port: Option<String>,
    /// Share the port with other mock processes that set it too (SO_REUSEPORT; the kernel
    /// spreads new connections over them) [env: MOCK_LLM_REUSE_PORT] [default: false]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub reuse_port: Option<String>,
    /// Milliseconds before the first byte of an answer [env: MOCK_LLM_DELAY_MS] [default: 10]
    #[arg(long, value_name = "MS")]
    pub delay_ms: Option<String>,
    /// Milliseconds between stream chunks [env: MOCK_LLM_STREAM_DELAY_MS] [default: 5]
    #[arg(long, value_name = "MS")]
    pub stream_delay_ms: Option<String>,
    /// Uniform random 0..=MS added to the first-byte delay [env: MOCK_LLM_JITTER_MS] [default: 0]
    #[arg(long, value_name = "MS")]
    pub jitter_ms: Option<String>,
    /// Answer text [env: MOCK_LLM_RESPONSE] [default: a 42-word sentence]
    #[arg(long, value_name = "TEXT")]
    pub response: Option<String>,
    /// Model name when the request names none, and in /v1/models [env: MOCK_LLM_MODEL] [default: mock-gpt-4o]
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// Share of requests offering tools that get a tool call, 0..=1 [env: MOCK_LLM_TOOL_CALL_RATE] [default: 0]
    #[arg(long, value_name = "RATE")]
    pub tool_call_rate: Option<String>,
    /// Share of chat requests answered with an injected error, 0..=1 [env: MOCK_LLM_ERROR_RATE] [default: 0]
    #[arg(long, value_name = "RATE")]
    pub error_rate: Option<String>,
    /// HTTP status of injected errors: 429, 500 or 503 [env: MOCK_LLM_ERROR_STATUS] [default: 429]
    #[arg(long, value_name = "STATUS")]
    pub error_status: Option<String>,
    /// Share of streams cut mid-way without [DONE], 0..=1 [env: MOCK_LLM_DISCONNECT_RATE] [default: 0]
    #[arg(long, value_name = "RATE")]
    pub disconnect_rate: Option<String>,
    /// Largest accepted request body in bytes [env: MOCK_LLM_MAX_BODY_BYTES] [default: 4194304]
    #[arg(long, value_name = "BYTES")]
    pub max_body_bytes: Option<String>,
    /// Tokio worker threads; 1 runs a single-threaded runtime [env: MOCK_LLM_THREADS] [default: available parallelism]
    #[arg(long, value_name = "N")]
    pub threads: Option<String>,
    /// Milliseconds in-flight streams get to finish on SIGINT/SIGTERM [env: MOCK_LLM_GRACE_MS] [default: 5000]
    #[arg(long, value_name = "MS")]
    pub grace_ms: Option<String>,
    /// `fixed` (fixed delays) or `model` (a loaded model: TTFT by prompt length, token rate, a queue) [env: MOCK_LLM_MODE] [default: fixed]
    #[arg(long, value_name = "MODE")]
    pub mode: Option<String>,
    /// Model mode: milliseconds to the first token of an empty prompt [env: MOCK_LLM_TTFT_MS] [default: 200]
    #[arg(long, value_name = "MS")]
    pub ttft_ms: Option<String>,
    /// Model mode: microseconds of prefill added per prompt token [env: MOCK_LLM_TTFT_PER_TOKEN_US] [default: 100]
    #[arg(long, value_name = "US")]
    pub ttft_per_token_us: Option<String>,
    /// Model mode: stream chunks (tokens) per second of one generation [env: MOCK_LLM_TOKENS_PER_S] [default: 50]
    #[arg(long, value_name = "RATE")]
    pub tokens_per_s: Option<String>,
    /// Model mode: generations running at once; the rest wait in a FIFO queue [env: MOCK_LLM_MAX_CONCURRENCY] [default: 16]
    #[arg(long, value_name = "N")]
    pub max_concurrency: Option<String>,
    /// Model mode: requests that may wait for a slot; beyond, 429 with retry-after [env: MOCK_LLM_QUEUE_SIZE] [default: 64]
    #[arg(long, value_name = "N")]
    pub queue_size: Option<String>,
    /// Chat calls kept (newest) for GET /stats/calls; 0 keeps none [env: MOCK_LLM_CALL_LOG_SIZE] [default: 10000]
    #[arg(long, value_name = "N")]
    pub call_log_size: Option<String>,
}

/// How the first-byte delay and the chunk spacing of an answer are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Fixed delays: the first byte after `delay` (+ jitter), chunks every `stream_delay`,
    /// no limit on concurrent answers. What isolates a runtime's own overhead.
    Fixed,
    /// A loaded model: at most `max_concurrency` generations at once behind a FIFO queue of
    /// `queue_size`; once a request holds a slot its first byte comes after
    /// `ttft + ttft_per_token × prompt_tokens` (+ jitter), then one chunk every
    /// `1 / tokens_per_s`. See [`crate::model`].
    Model,
}

impl Mode {
    /// The name used in flags, `/stats` and `/admin/config`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Fixed => "fixed",
            Mode::Model => "model",
        }
    }
}

/// Settings of model mode ([`Mode::Model`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelSettings {
    /// Time to first token of an empty prompt.
    pub ttft: Duration,
    /// Prefill time added per prompt token.
    pub ttft_per_token: Duration,
    /// Chunks (tokens) per second of one stream.
    pub tokens_per_s: f64,
    /// Generations at once.
    pub max_concurrency: usize,
    /// Requests that may wait for a generation slot.
    pub queue_size: usize,
}

impl Default for ModelSettings {
    fn default() -> Self {
        ModelSettings {
            ttft: Duration::from_millis(200),
            ttft_per_token: Duration::from_micros(100),
            tokens_per_s: 50.0,
            max_concurrency: 16,
            queue_size: 64,
        }
    }
}

/// HTTP status of injected errors. Only statuses a real provider sends under load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorStatus {
    /// 429 Too Many Requests (`rate_limit_exceeded`).
    TooManyRequests,
    /// 500 Internal Server Error.
    Internal,
    /// 503 Service Unavailable.
    Unavailable,
}

impl ErrorStatus {
    /// The numeric status code.
    pub fn code(self) -> u16 {
        match self {
            ErrorStatus::TooManyRequests => 429,
            ErrorStatus::Internal => 500,
            ErrorStatus::Unavailable => 503,
        }
    }
}

/// Validated settings of a mock LLM server.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Address to listen on (used by [`crate::run`]; [`crate::serve`] takes a bound listener).
    pub host: IpAddr,
    /// Port to listen on; 0 lets the OS pick.
    pub port: u16,
    /// Bind with `SO_REUSEPORT`, so several processes (one per core, each under its own
    /// open-file limit) serve one address; the kernel spreads connections over them.
    pub reuse_port: bool,
    /// Wait before the first byte of every chat answer.
    pub delay: Duration,
    /// Spacing of stream chunks: chunk i is due at `first byte + i * stream_delay`.
    pub stream_delay: Duration,
    /// Upper bound of a uniform random extra first-byte delay (0..=jitter).
    pub jitter: Duration,
    /// Answer text; split into one chunk per word (with its leading whitespace) when streaming.
    pub response: String,
    /// Model named in answers when the request names none, and listed by /v1/models.
    pub model: String,
    /// Probability that a request offering tools is answered with a tool call.
    pub tool_call_rate: f64,
    /// Probability that a chat request is answered with an injected error.
    pub error_rate: f64,
    /// Status of injected errors.
    pub error_status: ErrorStatus,
    /// Probability that a stream is cut after some chunks, without `[DONE]`.
    pub disconnect_rate: f64,
    /// Largest accepted request body; larger ones get 413.
    pub max_body_bytes: usize,
    /// Tokio worker threads for [`crate::run`]; 1 selects a current-thread runtime.
    pub threads: usize,
    /// How long in-flight requests may run on after a shutdown signal.
    pub grace: Duration,
    /// Fixed delays or a loaded model.
    pub mode: Mode,
    /// Model-mode settings (read only in [`Mode::Model`]).
    pub model_settings: ModelSettings,
    /// Chat calls kept for `/stats/calls`, newest first out; 0 keeps none.
    pub call_log_size: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 11434,
            reuse_port: false,
            delay: Duration::from_millis(10),
            stream_delay: Duration::from_millis(5),
            jitter: Duration::ZERO,
            response: DEFAULT_RESPONSE.to_owned(),
            model: DEFAULT_MODEL.to_owned(),
            tool_call_rate: 0.0,
            error_rate: 0.0,
            error_status: ErrorStatus::TooManyRequests,
            disconnect_rate: 0.0,
            max_body_bytes: 4 * 1024 * 1024,
            threads: default_threads(),
            grace: Duration::from_secs(5),
            mode: Mode::Fixed,
            model_settings: ModelSettings::default(),
            call_log_size: 10_000,
        }
    }
}

/// Available parallelism (on Linux it respects the affinity mask set by `taskset`).
fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// One invalid setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where the value came from: the flag (`--port`) or the variable (`MOCK_LLM_PORT`).
    pub source: String,
    /// The value as given.
    pub value: String,
    /// The accepted form.
    pub expected: &'static str,
}

/// Every invalid setting found in one validation pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render_problems(.problems))]
pub struct ConfigError {
    /// The problems, in flag order.
    pub problems: Vec<Problem>,
}

fn render_problems(problems: &[Problem]) -> String {
    let mut out = String::from("invalid mock LLM configuration:");
    for p in problems {
        out.push_str(&format!(
            "\n  {}={:?}: expected {}",
            p.source, p.value, p.expected
        ));
    }
    out.push_str("\nfix or unset these values (see --help)");
    out
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={:?}: expected {}",
            self.source, self.value, self.expected
        )
    }
}

/// A setting's two names.
struct Names {
    flag: &'static str,
    env: &'static str,
}

const HOST: Names = Names {
    flag: "--host",
    env: "MOCK_LLM_HOST",
};
const PORT: Names = Names {
    flag: "--port",
    env: "MOCK_LLM_PORT",
};
const REUSE_PORT: Names = Names {
    flag: "--reuse-port",
    env: "MOCK_LLM_REUSE_PORT",
};
const DELAY: Names = Names {
    flag: "--delay-ms",
    env: "MOCK_LLM_DELAY_MS",
};
const STREAM_DELAY: Names = Names {
    flag: "--stream-delay-ms",
    env: "MOCK_LLM_STREAM_DELAY_MS",
};
const JITTER: Names = Names {
    flag: "--jitter-ms",
    env: "MOCK_LLM_JITTER_MS",
};
const RESPONSE: Names = Names {
    flag: "--response",
    env: "MOCK_LLM_RESPONSE",
};
const MODEL: Names = Names {
    flag: "--model",
    env: "MOCK_LLM_MODEL",
};
const TOOL_CALL_RATE: Names = Names {
    flag: "--tool-call-rate",
    env: "MOCK_LLM_TOOL_CALL_RATE",
};
const ERROR_RATE: Names = Names {
    flag: "--error-rate",
    env: "MOCK_LLM_ERROR_RATE",
};
const ERROR_STATUS: Names = Names {
    flag: "--error-status",
    env: "MOCK_LLM_ERROR_STATUS",
};
const DISCONNECT_RATE: Names = Names {
    flag: "--disconnect-rate",
    env: "MOCK_LLM_DISCONNECT_RATE",
};
const MAX_BODY: Names = Names {
    flag: "--max-body-bytes",
    env: "MOCK_LLM_MAX_BODY_BYTES",
};
const THREADS: Names = Names {
    flag: "--threads",
    env: "MOCK_LLM_THREADS",
};
const GRACE: Names = Names {
    flag: "--grace-ms",
    env: "MOCK_LLM_GRACE_MS",
};
const MODE: Names = Names {
    flag: "--mode",
    env: "MOCK_LLM_MODE",
};
const TTFT: Names = Names {
    flag: "--ttft-ms",
    env: "MOCK_LLM_TTFT_MS",
};
const TTFT_PER_TOKEN: Names = Names {
    flag: "--ttft-per-token-us",
    env: "MOCK_LLM_TTFT_PER_TOKEN_US",
};
const TOKENS_PER_S: Names = Names {
    flag: "--tokens-per-s",
    env: "MOCK_LLM_TOKENS_PER_S",
};
const MAX_CONCURRENCY: Names = Names {
    flag: "--max-concurrency",
    env: "MOCK_LLM_MAX_CONCURRENCY",
};
const QUEUE_SIZE: Names = Names {
    flag: "--queue-size",
    env: "MOCK_LLM_QUEUE_SIZE",
};
const CALL_LOG_SIZE: Names = Names {
    flag: "--call-log-size",
    env: "MOCK_LLM_CALL_LOG_SIZE",
};

/// Largest model-mode concurrency or queue size.
const MAX_SLOTS: u64 = 1_000_000;

/// Collects values and problems during one validation pass.
struct Resolver<E> {
    env: E,
    problems: Vec<Problem>,
}

impl<E: Fn(&str) -> Option<String>> Resolver<E> {
    /// The flag's value if given, else the variable's if set and non-empty, with its source.
    fn raw(&self, flag: Option<String>, names: &Names) -> Option<(&'static str, String)> {
        match flag {
            Some(v) => Some((names.flag, v)),
            None => (self.env)(names.env)
                .filter(|v| !v.is_empty())
                .map(|v| (names.env, v)),
        }
    }

    /// Parses the setting with `parse`; on failure records a problem and returns `default`.
    fn get<T>(
        &mut self,
        flag: Option<String>,
        names: &Names,
        default: T,
        expected: &'static str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> T {
        let Some((source, value)) = self.raw(flag, names) else {
            return default;
        };
        match parse(&value) {
            Some(v) => v,
            None => {
                self.problems.push(Problem {
                    source: source.to_owned(),
                    value,
                    expected,
                });
                default
            }
        }
    }
}

impl Args {
    /// Validates the flags, falling back to the process environment for unset ones.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        self.into_config_with_env(|name| std::env::var(name).ok())
    }

    /// Validates the flags, falling back to `env` (a variable lookup) for unset ones.
    /// Reports every invalid value at once.
    pub fn into_config_with_env(
        self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let d = Config::default();
        let dm = d.model_settings;
        let mut r = Resolver {
            env,
            problems: Vec::new(),
        };
        let config = Config {
            host: r.get(
                self.host,
                &HOST,
                d.host,
                "an IP address such as 127.0.0.1 or ::1",
                parse_host,
            ),
            port: r.get(self.port, &PORT, d.port, "a port number 0..=65535", |s| {
                parse_bounded(s, 0, 65535).map(|p| p as u16)
            }),
            reuse_port: r.get(
                self.reuse_port,
                &REUSE_PORT,
                d.reuse_port,
                "true or false (1 or 0); the bare flag means true",
                parse_bool,
            ),
            delay: r.get(
                self.delay_ms,
                &DELAY,
                d.delay,
                "whole milliseconds 0..=600000",
                parse_ms,
            ),
            stream_delay: r.get(
                self.stream_delay_ms,
                &STREAM_DELAY,
                d.stream_delay,
                "whole milliseconds 0..=600000",
                parse_ms,
            ),
            jitter: r.get(
                self.jitter_ms,
                &JITTER,
                d.jitter,
                "whole milliseconds 0..=600000",
                parse_ms,
            ),
            response: r.get(
                self.response,
                &RESPONSE,
                d.response,
                "text with at least one word",
                |s| (!s.trim().is_empty()).then(|| s.to_owned()),
            ),
            model: r.get(
                self.model,
                &MODEL,
                d.model,
                "a non-empty model name without control characters",
                |s| (!s.is_empty() && !s.chars().any(char::is_control)).then(|| s.to_owned()),
            ),
            tool_call_rate: r.get(
                self.tool_call_rate,
                &TOOL_CALL_RATE,
                d.tool_call_rate,
                "a probability 0..=1 such as 0.25",
                parse_rate,
            ),
            error_rate: r.get(
                self.error_rate,
                &ERROR_RATE,
                d.error_rate,
                "a probability 0..=1 such as 0.01",
                parse_rate,
            ),
            error_status: r.get(
                self.error_status,
                &ERROR_STATUS,
                d.error_status,
                "one of 429, 500, 503",
                parse_error_status,
            ),
            disconnect_rate: r.get(
                self.disconnect_rate,
                &DISCONNECT_RATE,
                d.disconnect_rate,
                "a probability 0..=1 such as 0.01",
                parse_rate,
            ),
            max_body_bytes: r.get(
                self.max_body_bytes,
                &MAX_BODY,
                d.max_body_bytes,
                "bytes 1..=1073741824",
                |s| parse_bounded(s, 1, MAX_BODY_LIMIT).map(|n| n as usize),
            ),
            threads: r.get(
                self.threads,
                &THREADS,
                d.threads,
                "a thread count 1..=1024",
                |s| parse_bounded(s, 1, MAX_THREADS).map(|n| n as usize),
            ),
            grace: r.get(
                self.grace_ms,
                &GRACE,
                d.grace,
                "whole milliseconds 0..=600000",
                parse_ms,
            ),
            mode: r.get(self.mode, &MODE, d.mode, "`fixed` or `model`", parse_mode),
            model_settings: ModelSettings {
                ttft: r.get(self.ttft_ms, &TTFT, dm.ttft, EXPECT_MS, parse_ms),
                ttft_per_token: r.get(
                    self.ttft_per_token_us,
                    &TTFT_PER_TOKEN,
                    dm.ttft_per_token,
                    EXPECT_PER_TOKEN_US,
                    parse_per_token_us,
                ),
                tokens_per_s: r.get(
                    self.tokens_per_s,
                    &TOKENS_PER_S,
                    dm.tokens_per_s,
                    EXPECT_TOKENS_PER_S,
                    parse_tokens_per_s,
                ),
                max_concurrency: r.get(
                    self.max_concurrency,
                    &MAX_CONCURRENCY,
                    dm.max_concurrency,
                    "a generation count 1..=1000000",
                    |s| parse_bounded(s, 1, MAX_SLOTS).map(|n| n as usize),
                ),
                queue_size: r.get(
                    self.queue_size,
                    &QUEUE_SIZE,
                    dm.queue_size,
                    "a request count 0..=1000000",
                    |s| parse_bounded(s, 0, MAX_SLOTS).map(|n| n as usize),
                ),
            },
            call_log_size: r.get(
                self.call_log_size,
                &CALL_LOG_SIZE,
                d.call_log_size,
                "a call count 0..=1000000",
                |s| parse_bounded(s, 0, MAX_SLOTS).map(|n| n as usize),
            ),
        };
        if r.problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError {
                problems: r.problems,
            })
        }
    }
}

#[cfg(test)]
mod tests;

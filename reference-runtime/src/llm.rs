//! [`LlmClient`]: the agent graph's one model call, `POST {OPENAI_BASE_URL}/chat/completions`,
//! non-streamed ([`LlmClient::complete`]) or streamed ([`LlmClient::stream`], for the
//! `messages` stream modes, like the Python server which streams only then).
//!
//! One shared `reqwest::Client` pools connections; idle ones are dropped after
//! [`POOL_IDLE_TIMEOUT`], below the 5 s after which uvicorn and Node servers close
//! them, so a pooled connection is never reused just as the LLM closes it. Over HTTP/1.1
//! (the default) each call in flight holds a connection of its own; with
//! `Config::llm_http2` every call is a stream of one shared HTTP/2 connection, as
//! runtimes talk to LLM providers, so the LLM leg costs a handful of descriptors however
//! many runs stream at once.
//! Failures become [`LlmError`], whose [`LlmError::name`] is the exception name the
//! Python server reports in `__error__` / `event: error`.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use axum::http::HeaderValue;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::Url;
use serde_json::{json, Value};

use crate::config::Config;
use crate::sse;

/// Idle pooled connections to the LLM are closed after this long.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// How much of an LLM error body goes into the error message.
const ERROR_BODY_LIMIT: usize = 500;

/// A shared, pooled client for one LLM endpoint.
#[derive(Debug, Clone)]
pub struct LlmClient {
    http: reqwest::Client,
    /// `{OPENAI_BASE_URL}/chat/completions`.
    url: Url,
    /// `Bearer {OPENAI_API_KEY}`, marked sensitive so it never shows in logs.
    authorization: HeaderValue,
}

/// Token counts as the LLM reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

/// The whole answer of one call.
#[derive(Debug, Clone, Default)]
pub struct Completion {
    /// `chatcmpl-...`
    pub id: String,
    /// Model as the LLM named it in the answer.
    pub model: String,
    pub content: String,
    pub finish_reason: Option<String>,
    pub system_fingerprint: Value,
    pub usage: Option<Usage>,
}

/// One chunk of a streamed answer.
#[derive(Debug, Clone, Default)]
pub struct Delta {
    pub content: String,
    pub finish_reason: Option<String>,
    pub usage: Option<Usage>,
}

/// Why a call gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("LLM unreachable at {url}: {detail}")]
    Connect { url: String, detail: String },
    #[error("LLM request timed out")]
    Timeout,
    #[error("Error code: {status} - {body}")]
    Status { status: u16, body: String },
    #[error("LLM answer could not be read: {0}")]
    InvalidResponse(String),
}

impl LlmError {
    /// The exception name the Python server (openai SDK) reports for this failure.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Connect { .. } => "OpenAIConnectionError",
            Self::Timeout => "APITimeoutError",
            Self::Status { status, .. } => match status {
                400 => "BadRequestError",
                401 => "AuthenticationError",
                403 => "PermissionDeniedError",
                404 => "NotFoundError",
                409 => "ConflictError",
                422 => "UnprocessableEntityError",
                429 => "RateLimitError",
                500.. => "InternalServerError",
                _ => "APIStatusError",
            },
            Self::InvalidResponse(_) => "APIResponseValidationError",
        }
    }

    /// The message sent to clients. Connection errors say what the Python server
    /// says; the full cause is logged instead.
    pub fn public_message(&self) -> String {
        match self {
            Self::Connect { .. } => "An internal error occurred".into(),
            Self::Timeout => "Request timed out.".into(),
            other => other.to_string(),
        }
    }

    fn from_reqwest(err: reqwest::Error, url: &Url) -> Self {
        if err.is_timeout() {
            Self::Timeout
        } else if err.is_decode() {
            Self::InvalidResponse(err.to_string())
        } else {
            let mut detail = err.to_string();
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                detail.push_str(": ");
                detail.push_str(&cause.to_string());
                source = cause.source();
            }
            Self::Connect {
                url: url.to_string(),
                detail,
            }
        }
    }
}

impl LlmClient {
    pub fn new(config: &Config) -> Result<Self, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .timeout(config.llm_timeout)
            .connect_timeout(config.llm_timeout.min(Duration::from_secs(10)))
            .tcp_nodelay(true);
        if config.llm_http2 {
            builder = builder.http2_prior_knowledge();
        }
        if is_loopback(&config.chat_completions_url) {
            // A proxy from HTTP_PROXY would sit between a benchmark and its mock LLM.
            builder = builder.no_proxy();
        }
        let http = builder.build()?;
        let mut authorization =
            HeaderValue::from_str(&format!("Bearer {}", config.openai_api_key.expose()))
                .unwrap_or_else(|_| HeaderValue::from_static("Bearer invalid"));
        authorization.set_sensitive(true);
        Ok(Self {
            http,
            url: config.chat_completions_url.clone(),
            authorization,
        })
    }

    /// One non-streamed call.
    pub async fn complete(
        &self,
        model: &str,
        messages: Vec<Value>,
    ) -> Result<Completion, LlmError> {
        let body = json!({ "model": model, "messages": messages, "stream": false });
        let response = self.send(body).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|e| LlmError::from_reqwest(e, &self.url))?;
        let answer: Value = serde_json::from_slice(&bytes)
            .map_err(|e| LlmError::InvalidResponse(format!("not JSON: {e}")))?;
        let choice = answer
            .pointer("/choices/0")
            .ok_or_else(|| LlmError::InvalidResponse("no choices in the answer".into()))?;
        Ok(Completion {
            id: str_field(&answer, "id"),
            model: str_field(&answer, "model"),
            content: choice
                .pointer("/message/content")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            finish_reason: choice
                .get("finish_reason")
                .and_then(Value::as_str)
                .map(str::to_owned),
            system_fingerprint: answer
                .get("system_fingerprint")
                .cloned()
                .unwrap_or(Value::Null),
            usage: answer.get("usage").and_then(usage),
        })
    }

    /// One streamed call; read it with [`CompletionStream::next_delta`].
    pub async fn stream(
        &self,
        model: &str,
        messages: Vec<Value>,
    ) -> Result<CompletionStream, LlmError> {
        let body = json!({
            "model": model,
            "messages": messages,
            "stream": true,
            "stream_options": {"include_usage": true},
        });
        let response = self.send(body).await?;
        Ok(CompletionStream {
            body: Box::pin(response.bytes_stream()),
            url: self.url.clone(),
            decoder: sse::Decoder::default(),
            pending: VecDeque::new(),
            completion: Completion::default(),
            done: false,
            chunks: 0,
        })
    }

    async fn send(&self, body: Value) -> Result<reqwest::Response, LlmError> {
        let response = self
            .http
            .post(self.url.clone())
            .header(reqwest::header::AUTHORIZATION, self.authorization.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&body).unwrap_or_default())
            .send()
            .await
            .map_err(|e| LlmError::from_reqwest(e, &self.url))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        let body: String = text.chars().take(ERROR_BODY_LIMIT).collect();
        Err(LlmError::Status {
            status: status.as_u16(),
            body,
        })
    }
}

/// A streamed answer being read.
pub struct CompletionStream {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    url: Url,
    decoder: sse::Decoder,
    /// Event data decoded but not handed out yet.
    pending: VecDeque<String>,
    /// The answer so far.
    completion: Completion,
    /// `[DONE]` seen or body ended.
    done: bool,
    /// Chunks read; an answer without any is an error, not an empty message.
    chunks: usize,
}

impl CompletionStream {
    /// The next chunk, `None` at the end of the answer.
    pub async fn next_delta(&mut self) -> Result<Option<Delta>, LlmError> {
        loop {
            if let Some(data) = self.pending.pop_front() {
                if data.trim() == "[DONE]" {
                    self.done = true;
                    self.pending.clear();
                    return self.end();
                }
                self.chunks += 1;
                return self.chunk(&data).map(Some);
            }
            if self.done {
                return self.end();
            }
            match self.body.next().await {
                Some(Ok(bytes)) => self.pending.extend(self.decoder.feed(&bytes)),
                Some(Err(e)) => return Err(LlmError::from_reqwest(e, &self.url)),
                None => {
                    self.done = true;
                    self.pending.extend(self.decoder.finish());
                }
            }
        }
    }

    fn end(&self) -> Result<Option<Delta>, LlmError> {
        if self.chunks == 0 {
            return Err(LlmError::InvalidResponse(
                "the streamed answer held no chunks (is the LLM speaking SSE?)".into(),
            ));
        }
        Ok(None)
    }

    /// The whole answer, once [`Self::next_delta`] returned `None`.
    pub fn into_completion(self) -> Completion {
        self.completion
    }

    fn chunk(&mut self, data: &str) -> Result<Delta, LlmError> {
        let chunk: Value = serde_json::from_str(data)
            .map_err(|e| LlmError::InvalidResponse(format!("stream chunk is not JSON: {e}")))?;
        if let Some(error) = chunk.get("error") {
            return Err(LlmError::InvalidResponse(format!(
                "error in stream: {error}"
            )));
        }
        let done = &mut self.completion;
        if done.id.is_empty() {
            done.id = str_field(&chunk, "id");
        }
        if done.model.is_empty() {
            done.model = str_field(&chunk, "model");
        }
        if let Some(fp) = chunk.get("system_fingerprint") {
            done.system_fingerprint = fp.clone();
        }
        let choice = chunk.pointer("/choices/0");
        let delta = Delta {
            content: choice
                .and_then(|c| c.pointer("/delta/content"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            finish_reason: choice
                .and_then(|c| c.get("finish_reason"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            usage: chunk.get("usage").and_then(usage),
        };
        done.content.push_str(&delta.content);
        if delta.finish_reason.is_some() {
            done.finish_reason.clone_from(&delta.finish_reason);
        }
        if delta.usage.is_some() {
            done.usage = delta.usage;
        }
        Ok(delta)
    }
}

fn is_loopback(url: &Url) -> bool {
    let host = url.host_str().unwrap_or("");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn str_field(value: &Value, field: &str) -> String {
    value
        .get(field)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

fn usage(value: &Value) -> Option<Usage> {
    let n = |field: &str| value.get(field).and_then(Value::as_u64);
    let prompt_tokens = n("prompt_tokens")?;
    let completion_tokens = n("completion_tokens")?;
    Some(Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens: n("total_tokens").unwrap_or(prompt_tokens + completion_tokens),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_follow_the_openai_sdk() {
        let cases = [
            (400, "BadRequestError"),
            (401, "AuthenticationError"),
            (429, "RateLimitError"),
            (500, "InternalServerError"),
            (503, "InternalServerError"),
            (418, "APIStatusError"),
        ];
        for (status, name) in cases {
            assert_eq!(
                LlmError::Status {
                    status,
                    body: String::new()
                }
                .name(),
                name
            );
        }
        let down = LlmError::Connect {
            url: "u".into(),
            detail: "refused".into(),
        };
        assert_eq!(
            (down.name(), down.public_message().as_str()),
            ("OpenAIConnectionError", "An internal error occurred")
        );
    }

    #[test]
    fn loopback_hosts() {
        for (url, want) in [
            ("http://127.0.0.1:1/v1", true),
            ("http://[::1]:1/v1", true),
            ("http://LOCALHOST/v1", true),
            ("https://api.openai.com/v1", false),
            ("http://10.0.0.1/v1", false),
        ] {
            assert_eq!(is_loopback(&Url::parse(url).unwrap()), want, "{url}");
        }
    }

    #[test]
    fn usage_needs_both_counts() {
        assert_eq!(
            usage(&json!({"prompt_tokens": 2, "completion_tokens": 3})).map(|u| u.total_tokens),
            Some(5)
        );
        assert!(usage(&json!({"prompt_tokens": 2})).is_none());
    }
}

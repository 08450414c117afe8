//! Error answers in OpenAI's shape, and the error a cut stream ends with.
//!
//! Every non-2xx answer has the body `{"error":{"message","type","param","code"}}`, which the
//! official SDKs turn into their typed errors (`BadRequestError`, `RateLimitError`, ...).

use http::StatusCode;

use crate::config::{ErrorStatus, ModelSettings};

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Human-readable message: what was wrong and how to fix it.
    pub message: String,
    /// OpenAI error type, e.g. `invalid_request_error`.
    pub kind: &'static str,
    /// The offending request field, if known.
    pub param: Option<&'static str>,
    /// Machine-readable code, if any.
    pub code: Option<&'static str>,
}

impl ApiError {
    /// 400: the body is not a valid chat completion request.
    pub fn invalid_request(message: String, param: Option<&'static str>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message,
            kind: "invalid_request_error",
            param,
            code: None,
        }
    }

    /// 413: the body is larger than the configured limit.
    pub fn too_large(limit: usize) -> Self {
        ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!(
                "request body exceeds {limit} bytes; send a smaller body or raise --max-body-bytes / MOCK_LLM_MAX_BODY_BYTES"
            ),
            kind: "invalid_request_error",
            param: None,
            code: Some("request_too_large"),
        }
    }

    /// 404: no such route.
    pub fn not_found(method: &http::Method, path: &str) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!(
                "no route for {method} {path}; routes: POST /v1/chat/completions, GET /v1/models, GET /health, GET /stats, GET /stats/calls, GET /metrics, GET or POST /admin/config"
            ),
            kind: "invalid_request_error",
            param: None,
            code: Some("unknown_url"),
        }
    }

    /// 405: the route exists, the method does not.
    pub fn method_not_allowed(method: &http::Method, path: &str, allow: &str) -> Self {
        ApiError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            message: format!("{method} is not allowed on {path}; use {allow}"),
            kind: "invalid_request_error",
            param: None,
            code: Some("method_not_allowed"),
        }
    }

    /// 429 in model mode: every generation slot is busy and the queue is full.
    pub fn queue_full(settings: &ModelSettings, model: &str) -> Self {
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!(
                "Rate limit reached for {model}: {} generations running and {} requests queued (barrage-mock-llm model mode); retry after the retry-after header's seconds, or raise --max-concurrency / --queue-size",
                settings.max_concurrency, settings.queue_size
            ),
            kind: "requests",
            param: None,
            code: Some("rate_limit_exceeded"),
        }
    }

    /// An injected failure with the configured status.
    pub fn injected(status: ErrorStatus, model: &str) -> Self {
        let (status, message, kind, code) = match status {
            ErrorStatus::TooManyRequests => (
                StatusCode::TOO_MANY_REQUESTS,
                format!("Rate limit reached for {model} (injected by barrage-mock-llm, MOCK_LLM_ERROR_RATE)"),
                "requests",
                Some("rate_limit_exceeded"),
            ),
            ErrorStatus::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The server had an error while processing your request (injected by barrage-mock-llm, MOCK_LLM_ERROR_RATE)".to_owned(),
                "server_error",
                None,
            ),
            ErrorStatus::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "The engine is currently overloaded, please try again later (injected by barrage-mock-llm, MOCK_LLM_ERROR_RATE)".to_owned(),
                "server_error",
                Some("service_unavailable"),
            ),
        };
        ApiError {
            status,
            message,
            kind,
            param: None,
            code,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Vec<u8> {
        let doc = serde_json::json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        });
        serde_json::to_vec(&doc).unwrap_or_default()
    }
}

/// The error a stream body ends with when a disconnect is injected: hyper then closes the
/// connection without the terminating chunk, as a crashed upstream would.
#[derive(Debug, thiserror::Error)]
#[error("stream cut on purpose (MOCK_LLM_DISCONNECT_RATE)")]
pub struct InjectedDisconnect;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_shape() {
        let cases = [
            (
                ApiError::invalid_request("bad".into(), Some("messages")),
                400,
                "invalid_request_error",
            ),
            (ApiError::too_large(10), 413, "invalid_request_error"),
            (
                ApiError::not_found(&http::Method::GET, "/x"),
                404,
                "invalid_request_error",
            ),
            (
                ApiError::injected(ErrorStatus::TooManyRequests, "m"),
                429,
                "requests",
            ),
            (
                ApiError::injected(ErrorStatus::Internal, "m"),
                500,
                "server_error",
            ),
            (
                ApiError::injected(ErrorStatus::Unavailable, "m"),
                503,
                "server_error",
            ),
        ];
        for (err, status, kind) in cases {
            assert_eq!(err.status.as_u16(), status);
            let v: serde_json::Value = serde_json::from_slice(&err.body()).unwrap();
            let e = &v["error"];
            assert_eq!(e["type"], kind);
            assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
            assert!(e.as_object().unwrap().contains_key("param"));
            assert!(e.as_object().unwrap().contains_key("code"));
        }
    }
}

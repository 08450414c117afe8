//! [`ApiError`]: every non-2xx answer, rendered like the Python server's
//! `{"detail":"..."}` with `application/json`; and [`json_body`], which turns a
//! request body into a value or the right error (422 malformed, 413 too large).

use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde_json::{json, Value};

/// An answer other than success, with the detail shown to the client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Conflict(String),
    /// A 409 in the shape of servers that key assistants by graph and config:
    /// `{"error":"conflict","message":...}` (see `--assistant-id-from-config`).
    #[error("{0}")]
    KeyedConflict(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    BadRequest(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Conflict(_) | Self::KeyedConflict(_) => StatusCode::CONFLICT,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            Self::KeyedConflict(message) => json!({"error": "conflict", "message": message}),
            other => json!({ "detail": other.to_string() }),
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                "www-authenticate",
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// The request body parsed as JSON. Handlers take the body as
/// `Result<Bytes, BytesRejection>` so they run (and count) even when it is bad.
pub fn json_body(body: Result<Bytes, BytesRejection>) -> Result<Value, ApiError> {
    let bytes = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(
            "Request body too large; send at most --max-body-bytes".into(),
        ),
        _ => ApiError::BadRequest(format!(
            "Could not read the request body: {}",
            rejection.body_text()
        )),
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::Unprocessable(
            "Request body is empty; send a JSON object".into(),
        ));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::Unprocessable(format!("Invalid JSON body: {e}")))
}

/// The body as a JSON object (`{}` when absent), for endpoints whose fields are all optional.
pub fn optional_object_body(
    body: Result<Bytes, BytesRejection>,
) -> Result<serde_json::Map<String, Value>, ApiError> {
    match &body {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => return Ok(Default::default()),
        _ => {}
    }
    object(json_body(body)?)
}

/// The body as a JSON object, 422 otherwise.
pub fn object_body(
    body: Result<Bytes, BytesRejection>,
) -> Result<serde_json::Map<String, Value>, ApiError> {
    object(json_body(body)?)
}

fn object(value: Value) -> Result<serde_json::Map<String, Value>, ApiError> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(ApiError::Unprocessable(format!(
            "Request body must be a JSON object, got {}",
            type_name(&other)
        ))),
    }
}

/// `"object"`, `"string"`, ... for error messages.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// An optional string field: absent or null → `None`, another type → 422.
pub fn opt_str<'a>(
    body: &'a serde_json::Map<String, Value>,
    field: &str,
) -> Result<Option<&'a str>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(ApiError::Unprocessable(format!(
            "Field '{field}' must be a string, got {}",
            type_name(other)
        ))),
    }
}

/// An optional object field: absent or null → `None`, another type → 422.
pub fn opt_object<'a>(
    body: &'a serde_json::Map<String, Value>,
    field: &str,
) -> Result<Option<&'a serde_json::Map<String, Value>>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(other) => Err(ApiError::Unprocessable(format!(
            "Field '{field}' must be an object, got {}",
            type_name(other)
        ))),
    }
}

//! JWT auth, as the seed's runtimes do it with `SUPABASE_JWT_SECRET`: every
//! endpoint but `/ok`, `/info` and `/stats` wants `Authorization: Bearer <JWT>`,
//! HS256-signed with the secret, `aud: authenticated`, `exp` in the future.
//! Failures are 401 `{"detail":...}`. With no secret configured the layer passes
//! everything through. Neither the secret nor tokens are ever logged.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::config::Secret;
use crate::error::ApiError;
use crate::state::AppState;
use crate::stats::Stats;

/// The audience Supabase puts in user tokens.
pub const AUDIENCE: &str = "authenticated";

/// Checks tokens against one secret.
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

impl Verifier {
    pub fn new(secret: &Secret) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "aud"]);
        Self {
            key: DecodingKey::from_secret(secret.expose().as_bytes()),
            validation,
        }
    }

    pub fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let value = headers.get(header::AUTHORIZATION).ok_or_else(|| {
            ApiError::Unauthorized(
                "Missing authorization header; send Authorization: Bearer <JWT>".into(),
            )
        })?;
        let value = value.to_str().unwrap_or("");
        let token = match value.split_once(' ') {
            Some((scheme, token))
                if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
            {
                token.trim()
            }
            _ => {
                return Err(ApiError::Unauthorized(
                    "Authorization header must be 'Bearer <JWT>'".into(),
                ))
            }
        };
        jsonwebtoken::decode::<serde_json::Value>(token, &self.key, &self.validation)
            .map(drop)
            .map_err(|e| ApiError::Unauthorized(format!("Invalid token: {e}")))
    }
}

/// Middleware on the protected routes.
pub async fn require_jwt(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(verifier) = &state.verifier else {
        return next.run(request).await;
    };
    match verifier.check(request.headers()) {
        Ok(()) => next.run(request).await,
        Err(err) => {
            Stats::add(&state.stats.unauthorized, 1);
            tracing::debug!(path = %request.uri().path(), reason = %err, "unauthorized");
            err.into_response()
        }
    }
}

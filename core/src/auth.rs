//! The one place JWTs are minted: HS256 tokens with the claims a Supabase-authenticated
//! runtime expects (`sub`, `role: authenticated`, `aud`, `iat`, `exp`), as the seed's
//! `create-mock-jwt.sh` made them.
use jsonwebtoken::{encode, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A secret (JWT secret, token, password) whose `Debug`/`Display` print `***`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself; keep it out of logs.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Claims of a mock Supabase access token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JwtClaims {
    pub sub: String,
    pub role: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

impl JwtClaims {
    /// `sub`, role `authenticated`, aud `authenticated`, issued now, valid for `ttl`.
    pub fn new(sub: impl Into<String>, ttl: Duration) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        JwtClaims {
            sub: sub.into(),
            role: "authenticated".into(),
            aud: "authenticated".into(),
            iat: now,
            exp: now + ttl.as_secs(),
            email: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the JWT secret is empty; set SUPABASE_JWT_SECRET or pass a secret file")]
    EmptySecret,
    #[error("cannot sign the JWT: {0}")]
    Sign(String),
}

/// Mints an HS256 JWT signed with `secret`.
pub fn mint_hs256(secret: &Secret, claims: &JwtClaims) -> Result<String, AuthError> {
    if secret.is_empty() {
        return Err(AuthError::EmptySecret);
    }
    encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(secret.expose().as_bytes()),
    )
    .map_err(|e| AuthError::Sign(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{decode, DecodingKey, Validation};

    #[test]
    fn minted_token_verifies_with_the_secret_only() {
        let secret = Secret::new("benchmark-jwt-secret-that-is-at-least-32-characters-long");
        let claims = JwtClaims::new("vu-7", Duration::from_secs(3600));
        let token = mint_hs256(&secret, &claims).unwrap();
        let mut v = Validation::new(jsonwebtoken::Algorithm::HS256);
        v.set_audience(&["authenticated"]);
        let got = decode::<JwtClaims>(
            &token,
            &DecodingKey::from_secret(secret.expose().as_bytes()),
            &v,
        )
        .unwrap();
        assert_eq!(got.claims.sub, "vu-7");
        assert_eq!(got.claims.role, "authenticated");
        assert_eq!(got.claims.exp - got.claims.iat, 3600);
        assert!(
            decode::<JwtClaims>(&token, &DecodingKey::from_secret(b"another-secret"), &v).is_err()
        );
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        assert!(mint_hs256(
            &Secret::default(),
            &JwtClaims::new("x", Duration::from_secs(1))
        )
        .is_err());
    }
}

//! The one place JWTs are minted: HS256 tokens with the claims a Supabase-authenticated
//! runtime expects (`sub`, `role: authenticated`, `aud`, `iat`, `exp`), as the seed's
//! `create-mock-jwt.sh` made them.
use crate::plan::AuthConfig;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Names of the secrets an assignment carries (`Assignment.secrets`), read by the flow.
pub mod keys {
    pub const TOKEN: &str = "token";
    pub const JWT_SECRET: &str = "jwt_secret";
    pub const GOTRUE_ANON_KEY: &str = "gotrue_anon_key";
    pub const GOTRUE_PASSWORD: &str = "gotrue_password";
}

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
    Sign(#[source] jsonwebtoken::errors::Error),
    #[error("{field}: the value of {var} holds a line break or another character an HTTP header cannot carry; store the secret on one line of visible characters")]
    NotHeaderSafe { field: &'static str, var: String },
    #[error("cannot read the secret file {path}: {source}; point it at a file holding the secret")]
    ReadFile {
        path: String,
        source: std::io::Error,
    },
    #[error("the secret file {0} is empty; write the secret into it")]
    EmptyFile(String),
    #[error("{field}: the environment variable {var} is unset or empty; export it, or name another variable in the plan's {field} (or with {flag})")]
    MissingEnv {
        field: &'static str,
        var: String,
        flag: &'static str,
    },
}

/// Reads a secret file; surrounding whitespace and line ends are ignored.
pub fn read_secret_file(path: &Path) -> Result<Secret, AuthError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuthError::ReadFile {
        path: path.display().to_string(),
        source,
    })?;
    let text = text.trim();
    if text.is_empty() {
        return Err(AuthError::EmptyFile(path.display().to_string()));
    }
    Ok(Secret::new(text))
}

/// Whether `value` can be sent as (part of) an HTTP header value: tabs and the visible
/// ASCII characters plus space only. A CR or LF would split the header (or let a secret
/// inject one), so such a secret is refused before the run, not by the worker mid-run.
pub fn is_header_safe(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
}

/// Checks a secret that travels in a header ([`is_header_safe`]); `field` and `var` name
/// where it came from, the value itself is never printed.
pub fn check_header_secret(
    field: &'static str,
    var: &str,
    secret: &Secret,
) -> Result<(), AuthError> {
    if is_header_safe(secret.expose()) {
        Ok(())
    } else {
        Err(AuthError::NotHeaderSafe {
            field,
            var: var.to_string(),
        })
    }
}

/// The secrets the plan's `auth` needs, by [`keys`], read from the environment (`env`
/// looks a variable up) or from the secret file. The controller sends them in the
/// assignment; a standalone worker reads them itself.
pub fn plan_secrets(
    auth: &AuthConfig,
    env: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, Secret>, AuthError> {
    let need = |var: &str, field: &'static str, flag: &'static str| {
        env(var)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .map(Secret::new)
            .ok_or_else(|| AuthError::MissingEnv {
                field,
                var: var.to_string(),
                flag,
            })
    };
    let mut out = BTreeMap::new();
    match auth {
        AuthConfig::None => {}
        AuthConfig::Token { token_env } => {
            let token = need(token_env, "auth.token_env", "--auth-token-env")?;
            check_header_secret("auth.token_env", token_env, &token)?;
            out.insert(keys::TOKEN.into(), token);
        }
        AuthConfig::Jwt {
            secret_env,
            secret_file,
            ..
        } => {
            let secret = match secret_file {
                Some(f) => read_secret_file(Path::new(f))?,
                None => need(secret_env, "auth.secret_env", "--jwt-secret-env")?,
            };
            out.insert(keys::JWT_SECRET.into(), secret);
        }
        AuthConfig::Gotrue {
            anon_key_env,
            password_env,
            ..
        } => {
            let anon = need(anon_key_env, "auth.anon_key_env", "the plan only")?;
            check_header_secret("auth.anon_key_env", anon_key_env, &anon)?;
            out.insert(keys::GOTRUE_ANON_KEY.into(), anon);
            out.insert(
                keys::GOTRUE_PASSWORD.into(),
                need(password_env, "auth.password_env", "the plan only")?,
            );
        }
    }
    Ok(out)
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
    .map_err(AuthError::Sign)
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
    fn plan_secrets_come_from_env_or_file() {
        let jwt = |file: Option<String>| AuthConfig::Jwt {
            secret_env: "MY_SECRET".into(),
            secret_file: file,
            sub: "s".into(),
            per_vu_sub: false,
            ttl: Duration::from_secs(60),
        };
        let s = plan_secrets(&jwt(None), |k| {
            (k == "MY_SECRET").then(|| " s3cret\n".into())
        })
        .unwrap();
        assert_eq!(s[keys::JWT_SECRET].expose(), "s3cret");
        let e = plan_secrets(&jwt(None), |_| None).unwrap_err().to_string();
        assert!(
            e.contains("MY_SECRET") && e.contains("auth.secret_env"),
            "{e}"
        );
        let dir = std::env::temp_dir().join(format!("barrage-auth-{}", std::process::id()));
        std::fs::write(&dir, "from-file\n").unwrap();
        let s = plan_secrets(&jwt(Some(dir.display().to_string())), |_| None).unwrap();
        assert_eq!(s[keys::JWT_SECRET].expose(), "from-file");
        std::fs::write(&dir, "\n").unwrap();
        assert!(plan_secrets(&jwt(Some(dir.display().to_string())), |_| None).is_err());
        let _ = std::fs::remove_file(&dir);
        assert!(plan_secrets(&AuthConfig::None, |_| None)
            .unwrap()
            .is_empty());
    }

    /// Issue 14: a token with CR/LF was refused by the worker at run time, after the start.
    #[test]
    fn a_token_that_cannot_be_a_header_is_refused_before_the_run() {
        let token = AuthConfig::Token {
            token_env: "TOK".into(),
        };
        for bad in ["abc\r\nX-Evil: 1", "a\nb", "a\0b", "a\u{7f}", "tök"] {
            let e = plan_secrets(&token, |_| Some(bad.into())).unwrap_err();
            let text = e.to_string();
            assert!(
                matches!(&e, AuthError::NotHeaderSafe { field: "auth.token_env", var } if var == "TOK"),
                "{bad:?}: {text}"
            );
            assert!(!text.contains(bad), "the secret leaked: {text}");
        }
        let s = plan_secrets(&token, |_| Some(" ey.J\tx-y_z=/+ \n".into())).unwrap();
        assert_eq!(s[keys::TOKEN].expose(), "ey.J\tx-y_z=/+");
        let gotrue = AuthConfig::Gotrue {
            url: "http://127.0.0.1:1".into(),
            anon_key_env: "ANON".into(),
            email: "a@b".into(),
            password_env: "PW".into(),
        };
        let e = plan_secrets(&gotrue, |k| {
            Some(if k == "ANON" { "a\rb" } else { "pw\nok" }.into())
        })
        .unwrap_err();
        assert!(
            matches!(
                e,
                AuthError::NotHeaderSafe {
                    field: "auth.anon_key_env",
                    ..
                }
            ),
            "{e}"
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

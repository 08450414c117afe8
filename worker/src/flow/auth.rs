//! Bearer tokens for the target: none, a static token, HS256 JWTs minted per VU, or a real
//! token from a Supabase GoTrue password grant, refreshed before it expires.
//!
//! | `auth.kind` | secret key (in the assignment's secrets map) | token |
//! | --- | --- | --- |
//! | `none` | — | no `Authorization` header |
//! | `token` | `token` | the same for every request |
//! | `jwt` | `jwt_secret` | [`barrage_core::mint_hs256`]: `sub` (`{sub}-vu-{n}` with `per_vu_sub`), `role`/`aud` `authenticated`, `iat`, `exp` = `iat + ttl`; cached per VU (one for all without `per_vu_sub`), minted again once less than `min(60 s, ttl/2)` is left |
//! | `gotrue` | `gotrue_anon_key`, `gotrue_password` | `POST {url}/auth/v1/token?grant_type=password` (`apikey` header, `{email,password}`), one token per worker shared by its VUs; `grant_type=refresh_token` with the refresh token before it expires (a failed refresh falls back to the password grant) |
//!
//! Secrets stay in [`Secret`]s and header values marked sensitive; nothing here logs
//! one. GoTrue's requests are measured like the flow's, under `operation=auth`.
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use barrage_core::{mint_hs256, AuthConfig, JwtClaims, Secret};
use bytes::Bytes;
use reqwest::header::HeaderValue;
use reqwest::Method;
use tokio_util::sync::CancellationToken;

use super::http_series::record_http;
use crate::http::{Cancelled, Http, Kept, ReqBody, Request};
use crate::sample::Record;

/// Secret keys of the assignment's secrets map (defined once, in core).
pub use barrage_core::auth::keys::{GOTRUE_ANON_KEY, GOTRUE_PASSWORD, JWT_SECRET, TOKEN};

/// Why target auth cannot be set up from the plan and its secrets; each message names the
/// secret or setting and the fix.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("auth.kind = {kind} needs the secret `{key}`: {hint} on the controller, which hands it to the workers")]
    MissingSecret {
        kind: &'static str,
        key: &'static str,
        hint: String,
    },
    #[error("the secret `{key}` is unusable: {why}; check its value")]
    BadSecret {
        key: &'static str,
        why: &'static str,
    },
    #[error(
        "auth.kind = jwt: cannot mint a token: {0}; check SUPABASE_JWT_SECRET / auth.secret_file"
    )]
    Jwt(String),
}

/// The most of a GoTrue answer read (a token grant is about 1 KiB).
const GRANT_KEPT: usize = 64 * 1024;

/// Why no token could be had for an iteration.
#[derive(Debug)]
pub enum AuthFailure {
    Cancelled,
    Failed(String),
}

impl From<Cancelled> for AuthFailure {
    fn from(_: Cancelled) -> Self {
        AuthFailure::Cancelled
    }
}

/// How VUs authenticate.
pub enum Auth {
    None,
    Static(HeaderValue),
    Jwt(JwtMinter),
    Gotrue(Gotrue),
}

impl Auth {
    /// Builds the authenticator of `config`, taking its secrets from `secrets`.
    pub fn new(config: &AuthConfig, secrets: &BTreeMap<String, Secret>) -> Result<Auth, AuthError> {
        let need = |key: &'static str, kind: &'static str, hint: String| {
            secrets
                .get(key)
                .filter(|s| !s.is_empty())
                .cloned()
                .ok_or(AuthError::MissingSecret { kind, key, hint })
        };
        Ok(match config {
            AuthConfig::None => Auth::None,
            AuthConfig::Token { token_env } => {
                let token = need(TOKEN, "token", format!("set {token_env}"))?;
                Auth::Static(bearer(token.expose()).map_err(|_| AuthError::BadSecret {
                    key: TOKEN,
                    why: "it holds characters not allowed in an HTTP header",
                })?)
            }
            AuthConfig::Jwt {
                secret_env,
                secret_file,
                sub,
                per_vu_sub,
                ttl,
            } => {
                let hint = match secret_file {
                    Some(f) => format!("check that {f} holds the HS256 secret"),
                    None => format!("set {secret_env} (or auth.secret_file)"),
                };
                let secret = need(JWT_SECRET, "jwt", hint)?;
                let minter = JwtMinter {
                    secret,
                    sub: sub.clone(),
                    per_vu_sub: *per_vu_sub,
                    ttl: *ttl,
                    cache: Mutex::new(HashMap::new()),
                };
                // Fail now, not in every iteration, if the secret cannot sign.
                minter.mint(1)?;
                Auth::Jwt(minter)
            }
            AuthConfig::Gotrue {
                url,
                anon_key_env,
                email,
                password_env,
            } => {
                let anon = need(GOTRUE_ANON_KEY, "gotrue", format!("set {anon_key_env}"))?;
                let password = need(GOTRUE_PASSWORD, "gotrue", format!("set {password_env}"))?;
                let mut apikey =
                    HeaderValue::from_str(anon.expose()).map_err(|_| AuthError::BadSecret {
                        key: GOTRUE_ANON_KEY,
                        why: "it holds characters not allowed in an HTTP header",
                    })?;
                apikey.set_sensitive(true);
                let base = url.trim_end_matches('/');
                let body = serde_json::to_vec(&serde_json::json!({
                    "email": email,
                    "password": password.expose(),
                }))
                .map_err(|_| AuthError::BadSecret {
                    key: GOTRUE_PASSWORD,
                    why: "it cannot be written as JSON",
                })?;
                Auth::Gotrue(Gotrue {
                    password_url: format!("{base}/auth/v1/token?grant_type=password"),
                    refresh_url: format!("{base}/auth/v1/token?grant_type=refresh_token"),
                    apikey,
                    password_body: Bytes::from(body),
                    token: tokio::sync::Mutex::new(None),
                })
            }
        })
    }

    /// The `Authorization` value for VU `vu`, minting or fetching a token when needed.
    pub async fn header(
        &self,
        vu: u64,
        http: &Http,
        cancel: &CancellationToken,
        recorder: &dyn Record,
    ) -> Result<Option<HeaderValue>, AuthFailure> {
        match self {
            Auth::None => Ok(None),
            Auth::Static(h) => Ok(Some(h.clone())),
            Auth::Jwt(m) => m
                .header(vu)
                .map(Some)
                .map_err(|e| AuthFailure::Failed(e.to_string())),
            Auth::Gotrue(g) => g.header(http, cancel, recorder).await.map(Some),
        }
    }
}

fn bearer(token: &str) -> Result<HeaderValue, reqwest::header::InvalidHeaderValue> {
    let mut h = HeaderValue::from_str(&format!("Bearer {token}"))?;
    h.set_sensitive(true);
    Ok(h)
}

/// Renew a token once less than this is left of its life.
fn renew_margin(life: Duration) -> Duration {
    (life / 2).min(Duration::from_secs(60))
}

/// HS256 JWTs, one per VU (or one for all), cached until shortly before they expire.
pub struct JwtMinter {
    secret: Secret,
    sub: String,
    per_vu_sub: bool,
    ttl: Duration,
    /// VU (0 for the shared token) → header and when to mint again.
    cache: Mutex<HashMap<u64, (HeaderValue, Instant)>>,
}

impl JwtMinter {
    /// The claims' `sub` for VU `vu`.
    pub fn sub_for(&self, vu: u64) -> String {
        if self.per_vu_sub {
            format!("{}-vu-{vu}", self.sub)
        } else {
            self.sub.clone()
        }
    }

    fn mint(&self, vu: u64) -> Result<HeaderValue, AuthError> {
        let claims = JwtClaims::new(self.sub_for(vu), self.ttl);
        let token = mint_hs256(&self.secret, &claims).map_err(|e| AuthError::Jwt(e.to_string()))?;
        bearer(&token).map_err(|_| AuthError::Jwt("the token is not a valid header".into()))
    }

    /// The cached header of `vu`, minted again when it is about to expire.
    pub fn header(&self, vu: u64) -> Result<HeaderValue, AuthError> {
        let key = if self.per_vu_sub { vu } else { 0 };
        let now = Instant::now();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((h, renew_at)) = cache.get(&key) {
            if now < *renew_at {
                return Ok(h.clone());
            }
        }
        let h = self.mint(vu)?;
        cache.insert(key, (h.clone(), now + self.ttl - renew_margin(self.ttl)));
        Ok(h)
    }
}

/// A GoTrue password-grant client holding the worker's token.
pub struct Gotrue {
    password_url: String,
    refresh_url: String,
    apikey: HeaderValue,
    /// `{"email":…,"password":…}`, rendered once.
    password_body: Bytes,
    /// Held while fetching, so concurrent VUs wait for one grant instead of each asking.
    token: tokio::sync::Mutex<Option<GotrueToken>>,
}

struct GotrueToken {
    header: HeaderValue,
    refresh: Option<Secret>,
    renew_at: Instant,
}

#[derive(serde::Deserialize)]
struct GrantAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<String>,
}

impl Gotrue {
    async fn header(
        &self,
        http: &Http,
        cancel: &CancellationToken,
        recorder: &dyn Record,
    ) -> Result<HeaderValue, AuthFailure> {
        let mut slot = tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(AuthFailure::Cancelled),
            g = self.token.lock() => g,
        };
        let now = Instant::now();
        if let Some(t) = slot.as_ref() {
            if now < t.renew_at {
                return Ok(t.header.clone());
            }
        }
        let refresh = slot.as_ref().and_then(|t| t.refresh.clone());
        let mut answer = None;
        if let Some(refresh) = refresh {
            let body =
                serde_json::to_vec(&serde_json::json!({ "refresh_token": refresh.expose() }))
                    .unwrap_or_default();
            match self
                .grant(&self.refresh_url, &body, http, cancel, recorder)
                .await
            {
                Ok(a) => answer = Some(a),
                Err(AuthFailure::Cancelled) => return Err(AuthFailure::Cancelled),
                Err(AuthFailure::Failed(why)) => {
                    tracing::warn!(reason = %why, "GoTrue refresh failed; using the password grant");
                }
            }
        }
        let answer = match answer {
            Some(a) => a,
            None => {
                self.grant(
                    &self.password_url,
                    &self.password_body,
                    http,
                    cancel,
                    recorder,
                )
                .await?
            }
        };
        let life = Duration::from_secs(answer.expires_in.unwrap_or(3600).max(1));
        let header = bearer(&answer.access_token).map_err(|_| {
            AuthFailure::Failed("GoTrue's access_token is not a valid header".into())
        })?;
        *slot = Some(GotrueToken {
            header: header.clone(),
            refresh: answer.refresh_token.map(Secret::new),
            renew_at: now + life - renew_margin(life),
        });
        tracing::debug!(expires_in_s = life.as_secs(), "GoTrue token obtained");
        Ok(header)
    }

    async fn grant(
        &self,
        url: &str,
        body: &[u8],
        http: &Http,
        cancel: &CancellationToken,
        recorder: &dyn Record,
    ) -> Result<GrantAnswer, AuthFailure> {
        let mut buf = Vec::new();
        let mut sink = Kept::new(&mut buf, GRANT_KEPT);
        let req = Request {
            method: &Method::POST,
            url,
            body: Some(ReqBody::One(body)),
            auth: None,
            accept: None,
            extra: &[("apikey", &self.apikey)],
        };
        let ex = http.execute(&req, &mut sink, cancel).await?;
        let too_long = sink.overflow;
        let parsed = if ex.is_2xx() && !too_long {
            serde_json::from_slice::<GrantAnswer>(&buf).ok()
        } else {
            None
        };
        record_http(recorder, "auth", &Method::POST, &ex, parsed.is_none());
        match (ex.error, parsed) {
            (Some(e), _) => Err(AuthFailure::Failed(format!("GoTrue: {}", e.as_str()))),
            (None, Some(a)) if !a.access_token.is_empty() => Ok(a),
            (None, _) if !ex.is_2xx() => Err(AuthFailure::Failed(format!(
                "GoTrue answered HTTP {} (check auth.email and the password/anon key)",
                ex.status
            ))),
            (None, _) => Err(AuthFailure::Failed(
                "GoTrue's answer has no access_token".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};

    const SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";

    fn minter(per_vu_sub: bool, ttl: Duration) -> JwtMinter {
        let config = AuthConfig::Jwt {
            secret_env: "SUPABASE_JWT_SECRET".into(),
            secret_file: None,
            sub: "load".into(),
            per_vu_sub,
            ttl,
        };
        let secrets = BTreeMap::from([(JWT_SECRET.to_string(), Secret::new(SECRET))]);
        match Auth::new(&config, &secrets).unwrap() {
            Auth::Jwt(m) => m,
            _ => panic!("auth.kind = jwt builds a JwtMinter"),
        }
    }

    /// The claims of the token in `header`, verified with the secret as a target would.
    fn sent_claims(header: &HeaderValue) -> JwtClaims {
        let token = header.to_str().unwrap().strip_prefix("Bearer ").unwrap();
        let mut v = Validation::new(Algorithm::HS256);
        v.set_audience(&["authenticated"]);
        decode::<JwtClaims>(token, &DecodingKey::from_secret(SECRET.as_bytes()), &v)
            .unwrap()
            .claims
    }

    #[test]
    fn each_vu_sends_its_own_sub_and_the_claims_a_target_checks() {
        let m = minter(true, Duration::from_secs(3600));
        for vu in [1, 7, 42] {
            let claims = sent_claims(&m.header(vu).unwrap());
            assert_eq!(claims.sub, format!("load-vu-{vu}"));
            assert_eq!(
                (claims.role.as_str(), claims.aud.as_str()),
                ("authenticated", "authenticated")
            );
            assert_eq!(claims.exp - claims.iat, 3600);
        }
        assert!(
            m.header(7).unwrap().is_sensitive(),
            "never printed in Debug output"
        );
        let shared = minter(false, Duration::from_secs(3600));
        assert_eq!(sent_claims(&shared.header(1).unwrap()).sub, "load");
        assert_eq!(
            shared.header(1).unwrap(),
            shared.header(2).unwrap(),
            "one token for all"
        );
    }

    #[test]
    fn a_token_is_reused_then_minted_again_before_it_expires() {
        let renew_at = |m: &JwtMinter, vu| m.cache.lock().unwrap().get(&vu).map(|e| e.1);
        // A long life: minted again a minute before the end.
        let m = minter(true, Duration::from_secs(3600));
        let t0 = Instant::now();
        let first = m.header(3).unwrap();
        assert_eq!(m.header(3).unwrap(), first, "cached");
        let at = renew_at(&m, 3).unwrap();
        assert!(
            at >= t0 + Duration::from_secs(3540)
                && at <= Instant::now() + Duration::from_secs(3540)
        );
        // A short life: minted again at half of it, so never sent expired.
        let m = minter(true, Duration::from_millis(40));
        let t0 = Instant::now();
        m.header(3).unwrap();
        let at = renew_at(&m, 3).unwrap();
        assert!(
            at >= t0 + Duration::from_millis(20)
                && at < t0 + Duration::from_millis(40) + (Instant::now() - t0)
        );
        std::thread::sleep(Duration::from_millis(25));
        m.header(3).unwrap();
        assert!(
            renew_at(&m, 3).unwrap() > at,
            "minted again once the margin was reached"
        );
    }
}

//! `barrage token`: prints a mock HS256 JWT, like the seed's `create-mock-jwt.sh`.
use crate::cli::TokenArgs;
use barrage_core::{mint_hs256, JwtClaims, Secret};
use std::path::Path;

/// The seed's mock secret, used when neither the env variable nor a file gives one.
pub const DEFAULT_SECRET: &str = "benchmark-jwt-secret-that-is-at-least-32-characters-long";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Auth(#[from] barrage_core::auth::AuthError),
}

/// Where the secret came from (the default gets a note on stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSource {
    File,
    Env,
    Default,
}

/// Reads a secret file (`barrage_core::auth::read_secret_file`).
pub fn read_secret_file(path: &Path) -> Result<Secret, TokenError> {
    Ok(barrage_core::auth::read_secret_file(path)?)
}

/// The secret `barrage token` signs with: the file, else the env variable, else the seed's
/// default.
pub fn resolve_secret(
    args: &TokenArgs,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(Secret, SecretSource), TokenError> {
    if let Some(path) = &args.secret_file {
        return Ok((read_secret_file(path)?, SecretSource::File));
    }
    match env(&args.secret_env).filter(|v| !v.is_empty()) {
        Some(v) => Ok((Secret::new(v), SecretSource::Env)),
        None => Ok((Secret::new(DEFAULT_SECRET), SecretSource::Default)),
    }
}

/// Mints the token `barrage token` prints.
pub fn mint(args: &TokenArgs, secret: &Secret) -> Result<String, TokenError> {
    Ok(mint_hs256(
        secret,
        &JwtClaims::new(args.sub.clone(), args.ttl),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn args() -> TokenArgs {
        TokenArgs {
            secret_env: "X_SECRET".into(),
            secret_file: None,
            sub: "benchmark-user".into(),
            ttl: Duration::from_secs(3600),
        }
    }

    #[test]
    fn secret_sources() {
        let (s, src) = resolve_secret(&args(), |_| None).unwrap();
        assert_eq!((s.expose(), src), (DEFAULT_SECRET, SecretSource::Default));
        let (s, src) = resolve_secret(&args(), |_| Some(String::new())).unwrap();
        assert_eq!((s.expose(), src), (DEFAULT_SECRET, SecretSource::Default));
        let (s, src) =
            resolve_secret(&args(), |k| (k == "X_SECRET").then(|| "abc".into())).unwrap();
        assert_eq!((s.expose(), src), ("abc", SecretSource::Env));
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s");
        std::fs::write(&f, "from-file\n").unwrap();
        let a = TokenArgs {
            secret_file: Some(f.clone()),
            ..args()
        };
        let (s, src) = resolve_secret(&a, |_| Some("env".into())).unwrap();
        assert_eq!((s.expose(), src), ("from-file", SecretSource::File));
        std::fs::write(&f, "\n").unwrap();
        assert!(matches!(
            resolve_secret(&a, |_| None),
            Err(TokenError::Auth(barrage_core::auth::AuthError::EmptyFile(
                _
            )))
        ));
    }
}

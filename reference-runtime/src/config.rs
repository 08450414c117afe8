//! Configuration: [`Args`] (what the user typed, flags and env) becomes a
//! validated [`Config`] before any port is bound.
//!
//! The environment variables are the seed runtimes' (`PORT`, `OPENAI_BASE_URL`,
//! `OPENAI_API_KEY`, `MODEL_NAME`, `SUPABASE_JWT_SECRET`), so a shell that starts the
//! Python or TypeScript runtime starts this one too. `OPENAI_HTTP2` is this runtime's own:
//! HTTP/1.1 holds one connection (one descriptor) per concurrent LLM call, so thousands of
//! streaming runs need thousands of descriptors on the LLM leg besides their clients'; over
//! HTTP/2 they share one connection. [`Args::into_config`] reports
//! the first problem as a [`ConfigError`] whose message names the variable or flag
//! and says how to fix it.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;

/// Flags and environment of the reference runtime. `#[command(flatten)]` it into
/// another CLI (the `barrage` binary embeds the runtime this way).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,

    /// Port to listen on; 0 picks a free one (the `listening on` line tells which).
    #[arg(long, env = "PORT", default_value_t = 9000)]
    pub port: u16,

    /// Base URL of the OpenAI-compatible LLM; the runtime POSTs `{base}/chat/completions`.
    #[arg(
        long,
        env = "OPENAI_BASE_URL",
        default_value = "http://127.0.0.1:11434/v1"
    )]
    pub openai_base_url: String,

    /// API key sent to the LLM as `Authorization: Bearer ...`.
    #[arg(
        long,
        env = "OPENAI_API_KEY",
        default_value = "mock",
        hide_env_values = true
    )]
    pub openai_api_key: String,

    /// Model used when an assistant's config names none (`openai:` prefix optional).
    #[arg(long, env = "MODEL_NAME", default_value = "openai:mock-gpt-4o")]
    pub model_name: String,

    /// HS256 secret; when set, every endpoint but /ok, /info and /stats requires a
    /// Supabase-style JWT (`aud: authenticated`). Empty means unset.
    #[arg(long, env = "SUPABASE_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Read the JWT secret from this file instead (trailing newline ignored).
    #[arg(long)]
    pub jwt_secret_file: Option<PathBuf>,

    /// Tokio worker threads; 1 runs everything on one thread. Default: available
    /// parallelism.
    #[arg(long)]
    pub threads: Option<usize>,

    /// Talk HTTP/2 to the LLM without negotiation (h2c on http://, h2 on https://): every
    /// concurrent call is a stream of one shared connection instead of a connection of its
    /// own. The LLM must speak HTTP/2 (barrage's mock LLM does). `--llm-http2` alone means
    /// on; values 1/0, true/false, yes/no, on/off; empty means off.
    #[arg(
        long,
        env = "OPENAI_HTTP2",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "1"
    )]
    pub llm_http2: Option<String>,

    /// Timeout of one LLM request, whole answer included, in seconds.
    #[arg(long, default_value_t = 60)]
    pub llm_timeout_secs: u64,

    /// Largest accepted request body in bytes; larger ones get 413.
    #[arg(long, default_value_t = 2 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Behave like Agent Protocol servers that key assistants by graph and config: a
    /// `POST /assistants` without `assistant_id` gets an id derived from `graph_id` +
    /// `config` (name and metadata ignored), and a second one with the same graph and
    /// config while the first exists is `409 {"error":"conflict",...}`.
    #[arg(long, env = "ASSISTANT_ID_FROM_CONFIG")]
    pub assistant_id_from_config: bool,

    /// Debug: hold each `runs/stream` answer until the run ends and send it at once, as a
    /// buffering proxy or runtime does (what the worker's `stream_buffered` detects).
    #[arg(long)]
    pub buffer_sse: bool,

    /// Debug: keep every finished run's values in memory forever, a leak on purpose
    /// (what barrage's soak trend `target_rss` must detect); `/stats` counts them.
    #[arg(long)]
    pub leak_runs: bool,
}

/// Validated configuration of one server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to bind (used by [`crate::run`]; [`crate::serve`] takes a bound listener).
    pub listen: SocketAddr,
    /// `{OPENAI_BASE_URL}/chat/completions`, computed once.
    pub chat_completions_url: Url,
    /// Bearer token for the LLM.
    pub openai_api_key: Secret,
    /// Model for assistants whose config names none, provider prefix stripped.
    pub default_model: String,
    /// HS256 secret; `None` turns auth off (passthrough, like the seed's runtimes).
    pub jwt_secret: Option<Secret>,
    /// Tokio worker threads for [`crate::run`].
    pub threads: usize,
    /// HTTP/2 with prior knowledge to the LLM (`OPENAI_HTTP2`).
    pub llm_http2: bool,
    /// Timeout of one whole LLM request.
    pub llm_timeout: Duration,
    /// Body size limit (413 above it).
    pub max_body_bytes: usize,
    /// Assistant ids derived from graph + config, 409 on a duplicate
    /// (`--assistant-id-from-config`).
    pub assistant_id_from_config: bool,
    /// `runs/stream` answers sent whole at the end (`--buffer-sse`).
    pub buffer_sse: bool,
    /// Every finished run kept in memory forever (`--leak-runs`).
    pub leak_runs: bool,
}

/// A string that never shows in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Why [`Args::into_config`] refused the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--host {0:?} is not an IP address; use e.g. 127.0.0.1, ::1 or 0.0.0.0")]
    Host(String),
    #[error("OPENAI_BASE_URL {value:?} is not a usable URL ({reason}); set it like http://127.0.0.1:11434/v1")]
    BaseUrl { value: String, reason: String },
    #[error("OPENAI_API_KEY must not contain control characters or be empty; set it to any token (\"mock\" for mock LLMs)")]
    ApiKey,
    #[error("MODEL_NAME {0:?} is empty after the provider prefix; set it like openai:mock-gpt-4o")]
    ModelName(String),
    #[error(
        "both SUPABASE_JWT_SECRET (or --jwt-secret) and --jwt-secret-file are set; keep only one"
    )]
    TwoSecrets,
    #[error(
        "--jwt-secret-file {path}: {source}; point it at a readable file holding the HS256 secret"
    )]
    SecretFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--jwt-secret-file {0} is empty; write the HS256 secret into it or drop the flag")]
    EmptySecretFile(PathBuf),
    #[error("--threads must be at least 1 (got 0); omit it to use every core")]
    Threads,
    #[error("OPENAI_HTTP2 (or --llm-http2=) {0:?} is not a yes/no value; use 1 or 0 (true/false, yes/no, on/off), or leave it empty for HTTP/1.1")]
    LlmHttp2(String),
    #[error("--llm-timeout-secs must be at least 1 (got 0)")]
    LlmTimeout,
    #[error("--max-body-bytes must be at least 1024 (got {0})")]
    MaxBody(usize),
}

impl Args {
    /// Validates everything and computes the derived values.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let ip: IpAddr = self
            .host
            .parse()
            .map_err(|_| ConfigError::Host(self.host.clone()))?;
        let chat_completions_url = chat_completions_url(&self.openai_base_url)?;
        if self.openai_api_key.is_empty() || self.openai_api_key.chars().any(char::is_control) {
            return Err(ConfigError::ApiKey);
        }
        let default_model = strip_provider(&self.model_name).to_owned();
        if default_model.trim().is_empty() {
            return Err(ConfigError::ModelName(self.model_name));
        }
        let jwt_secret = self.jwt_secret()?;
        let threads = match self.threads {
            Some(0) => return Err(ConfigError::Threads),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let llm_http2 = parse_switch(self.llm_http2.as_deref())
            .ok_or_else(|| ConfigError::LlmHttp2(self.llm_http2.clone().unwrap_or_default()))?;
        if self.llm_timeout_secs == 0 {
            return Err(ConfigError::LlmTimeout);
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::MaxBody(self.max_body_bytes));
        }
        Ok(Config {
            listen: SocketAddr::new(ip, self.port),
            chat_completions_url,
            openai_api_key: Secret::new(self.openai_api_key),
            default_model,
            jwt_secret,
            threads,
            llm_http2,
            llm_timeout: Duration::from_secs(self.llm_timeout_secs),
            max_body_bytes: self.max_body_bytes,
            assistant_id_from_config: self.assistant_id_from_config,
            buffer_sse: self.buffer_sse,
            leak_runs: self.leak_runs,
        })
    }

    fn jwt_secret(&self) -> Result<Option<Secret>, ConfigError> {
        let inline = self.jwt_secret.as_deref().filter(|s| !s.is_empty());
        match (inline, &self.jwt_secret_file) {
            (Some(_), Some(_)) => Err(ConfigError::TwoSecrets),
            (Some(secret), None) => Ok(Some(Secret::new(secret))),
            (None, Some(path)) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| ConfigError::SecretFile {
                        path: path.clone(),
                        source,
                    })?;
                let secret = text.trim_end_matches(['\r', '\n']);
                if secret.is_empty() {
                    return Err(ConfigError::EmptySecretFile(path.clone()));
                }
                Ok(Some(Secret::new(secret)))
            }
            (None, None) => Ok(None),
        }
    }
}

impl Default for Args {
    /// The defaults of the flags, ignoring the environment.
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 9000,
            openai_base_url: "http://127.0.0.1:11434/v1".into(),
            openai_api_key: "mock".into(),
            model_name: "openai:mock-gpt-4o".into(),
            jwt_secret: None,
            jwt_secret_file: None,
            threads: None,
            llm_http2: None,
            llm_timeout_secs: 60,
            max_body_bytes: 2 * 1024 * 1024,
            assistant_id_from_config: false,
            buffer_sse: false,
            leak_runs: false,
        }
    }
}

/// A yes/no setting: unset or empty is no; `None` when the text is neither.
fn parse_switch(value: Option<&str>) -> Option<bool> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Some(false);
    };
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// `openai:gpt-4o` → `gpt-4o`; names without a provider prefix stay as they are.
pub(crate) fn strip_provider(model: &str) -> &str {
    model.strip_prefix("openai:").unwrap_or(model)
}

fn chat_completions_url(base: &str) -> Result<Url, ConfigError> {
    let err = |reason: &str| ConfigError::BaseUrl {
        value: base.to_owned(),
        reason: reason.to_owned(),
    };
    let url = Url::parse(&format!("{}/chat/completions", base.trim_end_matches('/')))
        .map_err(|e| err(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(err("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(err("it has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(err("it must not carry a query or fragment"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        let config = Args::default().into_config().unwrap();
        assert_eq!(
            config.chat_completions_url.as_str(),
            "http://127.0.0.1:11434/v1/chat/completions"
        );
        assert_eq!(config.default_model, "mock-gpt-4o");
        assert!(config.jwt_secret.is_none());
        assert!(config.threads >= 1);
    }

    #[test]
    fn rejections_name_the_variable() {
        let cases: &[(Args, &str)] = &[
            (
                Args {
                    host: "localhost:1".into(),
                    ..Args::default()
                },
                "--host",
            ),
            (
                Args {
                    openai_base_url: "ftp://x/v1".into(),
                    ..Args::default()
                },
                "OPENAI_BASE_URL",
            ),
            (
                Args {
                    openai_base_url: "not a url".into(),
                    ..Args::default()
                },
                "OPENAI_BASE_URL",
            ),
            (
                Args {
                    openai_api_key: String::new(),
                    ..Args::default()
                },
                "OPENAI_API_KEY",
            ),
            (
                Args {
                    model_name: "openai:".into(),
                    ..Args::default()
                },
                "MODEL_NAME",
            ),
            (
                Args {
                    threads: Some(0),
                    ..Args::default()
                },
                "--threads",
            ),
            (
                Args {
                    llm_timeout_secs: 0,
                    ..Args::default()
                },
                "--llm-timeout-secs",
            ),
            (
                Args {
                    llm_http2: Some("maybe".into()),
                    ..Args::default()
                },
                "OPENAI_HTTP2",
            ),
            (
                Args {
                    jwt_secret: Some("s".into()),
                    jwt_secret_file: Some("/nonexistent".into()),
                    ..Args::default()
                },
                "keep only one",
            ),
            (
                Args {
                    jwt_secret_file: Some("/nonexistent/secret".into()),
                    ..Args::default()
                },
                "--jwt-secret-file",
            ),
        ];
        for (args, needle) in cases {
            let err = args.clone().into_config().unwrap_err().to_string();
            assert!(err.contains(needle), "{err:?} should mention {needle}");
        }
    }

    #[test]
    fn empty_secret_means_no_auth_and_debug_hides_it() {
        let config = Args {
            jwt_secret: Some(String::new()),
            ..Args::default()
        }
        .into_config()
        .unwrap();
        assert!(config.jwt_secret.is_none());
        let config = Args {
            jwt_secret: Some("hunter2".into()),
            ..Args::default()
        }
        .into_config()
        .unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn llm_http2_switch() {
        for (value, want) in [
            (None, false),
            (Some(""), false),
            (Some("1"), true),
            (Some("ON"), true),
            (Some(" yes "), true),
            (Some("false"), false),
            (Some("0"), false),
        ] {
            let config = Args {
                llm_http2: value.map(Into::into),
                ..Args::default()
            }
            .into_config()
            .unwrap();
            assert_eq!(config.llm_http2, want, "{value:?}");
        }
    }

    #[test]
    fn trailing_slash_and_prefixless_model() {
        let config = Args {
            openai_base_url: "http://[::1]:8080/v1/".into(),
            model_name: "gpt-4o".into(),
            ..Args::default()
        }
        .into_config()
        .unwrap();
        assert_eq!(
            config.chat_completions_url.as_str(),
            "http://[::1]:8080/v1/chat/completions"
        );
        assert_eq!(config.default_model, "gpt-4o");
    }
}

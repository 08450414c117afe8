//! [`AppState`]: everything a handler can reach, behind one `Arc`. Each map has
//! its own lock (see `assistants`, `threads`, `store`); no lock is held across an
//! `.await`.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;

use crate::assistants::Assistants;
use crate::auth::Verifier;
use crate::config::Config;
use crate::llm::LlmClient;
use crate::stats::{Live, Stats};
use crate::store::Store;
use crate::threads::Threads;

/// Cheap to clone; handlers get it through axum's `State`.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    /// The one pooled LLM client.
    pub llm: LlmClient,
    pub assistants: Assistants,
    pub threads: Threads,
    pub store: Store,
    pub stats: Stats,
    /// Finished runs kept forever under `--leak-runs` (`crate::leak`).
    pub leaked: crate::leak::LeakedRuns,
    /// `None` when no JWT secret is configured (no auth).
    pub verifier: Option<Verifier>,
    /// For `uptime_s` in `/stats`.
    pub started: Instant,
}

impl AppState {
    pub fn new(config: Config) -> Result<Self, reqwest::Error> {
        Ok(Self(Arc::new(Inner {
            llm: LlmClient::new(&config)?,
            verifier: config.jwt_secret.as_ref().map(Verifier::new),
            assistants: Assistants::default(),
            threads: Threads::default(),
            store: Store::default(),
            stats: Stats::default(),
            leaked: Default::default(),
            started: Instant::now(),
            config,
        })))
    }

    pub fn live(&self) -> Live {
        Live {
            assistants: self.assistants.len(),
            threads: self.threads.len(),
            store_items: self.store.len(),
        }
    }
}

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// Timestamps as the Python server writes them: `2026-11-24T01:28:09.072046+00:00`.
pub fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6f+00:00")
        .to_string()
}

//! The target's agent resources before and after a soak: a run's cleanup deletes what its
//! iteration created, so at the end the target should hold no more threads, assistants or
//! store items than at the start. Agent servers are known to fail here (runs left pending,
//! threads never deleted), and a soak is where it adds up.
//!
//! Counts come from the reference runtime's `GET /stats` when the target has it, else from
//! the Agent Protocol search endpoints (`POST /threads/search`, `/assistants/search`,
//! `/store/items/search`) paged to the end. A target that answers neither has no check.
//! The plan's bearer token (when its auth is a fixed token) goes with the requests.
use barrage_core::trend::{ResourceCheck, ResourceCounts};
use serde_json::{json, Value};
use std::time::Duration;

/// Items asked per search page.
const PAGE: u64 = 1000;
/// Pages read at most per kind (a target with more than this is counted as this many).
const MAX_PAGES: u64 = 100;

/// Reads a target's resource counts.
#[derive(Debug, Clone)]
pub struct Counter {
    base: String,
    client: reqwest::Client,
    bearer: Option<String>,
}

impl Counter {
    /// For the target at `base` (`http://host:port`).
    pub fn new(base: &str, bearer: Option<String>) -> Counter {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Counter {
            base: base.trim_end_matches('/').to_string(),
            client,
            bearer,
        }
    }

    async fn call(&self, req: reqwest::RequestBuilder) -> Option<Value> {
        let req = match &self.bearer {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req.send().await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        serde_json::from_slice(&resp.bytes().await.ok()?).ok()
    }

    /// `(source, counts)`, or `None` when the target exposes no counts.
    pub async fn count(&self) -> Option<(String, ResourceCounts)> {
        let stats = self
            .call(self.client.get(format!("{}/stats", self.base)))
            .await;
        if let Some(v) = stats.filter(|v| v.get("threads").is_some_and(Value::is_u64)) {
            let n = |k: &str| v.get(k).and_then(Value::as_u64);
            return Some((
                "GET /stats".into(),
                ResourceCounts {
                    threads: n("threads"),
                    assistants: n("assistants"),
                    store_items: n("store_items"),
                },
            ));
        }
        let counts = ResourceCounts {
            threads: self.search("/threads/search", json!({}), None).await,
            assistants: self.search("/assistants/search", json!({}), None).await,
            store_items: self
                .search(
                    "/store/items/search",
                    json!({"namespace_prefix": []}),
                    Some("items"),
                )
                .await,
        };
        (counts != ResourceCounts::default()).then(|| ("search endpoints".into(), counts))
    }

    /// Items a search endpoint lists, paged with `limit`/`offset`; the answer is an array,
    /// or an object holding it under `field`.
    async fn search(&self, path: &str, body: Value, field: Option<&str>) -> Option<u64> {
        let mut total = 0;
        for page in 0..MAX_PAGES {
            let mut b = body.clone();
            b["limit"] = json!(PAGE);
            b["offset"] = json!(page * PAGE);
            let v = self
                .call(
                    self.client
                        .post(format!("{}{path}", self.base))
                        .header("content-type", "application/json")
                        .body(b.to_string()),
                )
                .await?;
            let items = match field {
                Some(f) => v.get(f)?.as_array()?.len() as u64,
                None => v.as_array()?.len() as u64,
            };
            total += items;
            if items < PAGE {
                break;
            }
        }
        Some(total)
    }
}

/// The check at the end of a run, from the counts taken at its start.
pub async fn check(
    counter: &Counter,
    start: Option<(String, ResourceCounts)>,
) -> Option<ResourceCheck> {
    let (source, start) = start?;
    let (_, end) = counter.count().await?;
    Some(ResourceCheck::compare(source, start, end))
}

//! Bounded reads of a target's Agent Protocol listings, for [`super::resources`]: one count
//! (the start's or the end's) gets a time budget and each listing a page limit, so a
//! target holding millions of threads, or one that answers slowly, cannot stall the end
//! of a run. A count stopped by either limit is a lower bound, marked capped.
//!
//! | kind          | asked with                                                                  |
//! |---------------|-----------------------------------------------------------------------------|
//! | `threads`     | `POST /threads/count` (LangGraph servers), else `POST /threads/search` paged |
//! | `assistants`  | `POST /assistants/count`, else `POST /assistants/search` paged (system assistants a LangGraph server makes from its graphs are in both counts, so the baseline holds them) |
//! | `runs_active` | `POST /threads/search {"status":"busy"}` paged, then `GET /threads/{id}/runs` per busy thread (pending + running) |
//! | `store_items` | `POST /store/items/search` paged under each prefix (the flow's, else the top-level namespaces of `POST /store/namespaces`, else `[]`) |
//!
//! Paging is `limit`/`offset`, a page being full meaning there may be more; LangGraph
//! servers accept at most 1000 per page.
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// How far one count goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Items asked per page (LangGraph servers accept 1 to 1000).
    pub page: u64,
    /// Pages read at most per listing; more items than `page × max_pages` count as that
    /// many, capped.
    pub max_pages: u64,
    /// Time for one whole count (every kind); what is not read by then is capped.
    pub budget: Duration,
    /// Busy threads whose runs are listed at most (a request each); the others count one
    /// active run each, capped.
    pub max_run_lists: u64,
    /// At the end, how long runs still active beyond the start's count get to finish
    /// before they are reported: a run the last iteration started may be finishing.
    pub settle: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            page: 1000,
            max_pages: 100,
            budget: Duration::from_secs(30),
            max_run_lists: 200,
            settle: Duration::from_secs(5),
        }
    }
}

/// The most one request may take, inside the budget.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A count, exact or stopped at a limit (then a lower bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tally {
    pub n: u64,
    pub capped: bool,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.n += other.n;
        self.capped |= other.capped;
    }
}

/// One count's requests: the target, its auth header, the limits and the deadline.
pub(super) struct Session<'a> {
    pub base: &'a str,
    pub client: &'a reqwest::Client,
    /// The `Authorization` value, when the plan's auth gives one.
    pub auth: Option<&'a str>,
    pub limits: Limits,
    pub deadline: Instant,
}

impl Session<'_> {
    fn out_of_time(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// A 2xx answer's JSON (any content type; leading whitespace allowed), else `None`.
    async fn call(&self, req: reqwest::RequestBuilder) -> Option<Value> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        let req = match self.auth {
            Some(a) => req.header(reqwest::header::AUTHORIZATION, a),
            None => req,
        };
        let resp = req.timeout(left.min(REQUEST_TIMEOUT)).send().await;
        let resp = match resp {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                tracing::debug!(status = %r.status(), url = %r.url(), "resource count: not answered");
                return None;
            }
            Err(e) => {
                tracing::debug!(error = %e, "resource count: request failed");
                return None;
            }
        };
        serde_json::from_slice(resp.bytes().await.ok()?.trim_ascii_start()).ok()
    }

    pub async fn get(&self, path: &str) -> Option<Value> {
        self.call(self.client.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Option<Value> {
        self.call(
            self.client
                .post(format!("{}{path}", self.base))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string()),
        )
        .await
    }

    /// Reads a listing page by page (`limit`/`offset` added to `body`), handing each page's
    /// items to `each`; the answer is an array, or an object holding it under `field`.
    /// `None` when the first page is not answered (the target has no such listing); a
    /// later page not answered, or a limit reached, caps the tally.
    pub async fn pages(
        &self,
        path: &str,
        body: &Value,
        field: Option<&str>,
        mut each: impl FnMut(&[Value]),
    ) -> Option<Tally> {
        let mut tally = Tally::default();
        for page in 0..self.limits.max_pages {
            if self.out_of_time() {
                tally.capped = true;
                return Some(tally);
            }
            let mut b = body.clone();
            b["limit"] = json!(self.limits.page);
            b["offset"] = json!(page * self.limits.page);
            let answer = self.post(path, &b).await;
            let items = answer.as_ref().and_then(|v| match field {
                Some(f) => v.get(f)?.as_array(),
                None => v.as_array(),
            });
            let Some(items) = items else {
                if page == 0 && !self.out_of_time() {
                    return None;
                }
                tally.capped = true;
                return Some(tally);
            };
            tally.n += items.len() as u64;
            each(items);
            if (items.len() as u64) < self.limits.page {
                return Some(tally);
            }
        }
        tally.capped = true;
        Some(tally)
    }

    /// `POST {kind}/count` (a bare number), else `POST {kind}/search` paged.
    pub async fn count(&self, kind: &str) -> Option<Tally> {
        if let Some(n) = self
            .post(&format!("/{kind}/count"), &json!({}))
            .await
            .and_then(|v| v.as_u64())
        {
            return Some(Tally { n, capped: false });
        }
        self.pages(&format!("/{kind}/search"), &json!({}), None, |_| {})
            .await
    }

    /// Runs pending or running, on the threads the target calls busy.
    pub async fn runs_active(&self) -> Option<Tally> {
        let mut busy = Vec::new();
        let listed = self
            .pages(
                "/threads/search",
                &json!({"status": "busy"}),
                None,
                |items| {
                    busy.extend(
                        items
                            .iter()
                            .filter_map(|t| t.get("thread_id")?.as_str().map(str::to_string)),
                    )
                },
            )
            .await?;
        let mut tally = Tally {
            n: 0,
            capped: listed.capped,
        };
        for (i, id) in busy.iter().enumerate() {
            // a busy thread holds at least one active run
            let one = Tally { n: 1, capped: true };
            if i as u64 >= self.limits.max_run_lists || self.out_of_time() {
                tally.add(one);
                continue;
            }
            let path = format!("/threads/{id}/runs?limit={}", self.limits.page);
            match self.get(&path).await.as_ref().and_then(Value::as_array) {
                Some(runs) => {
                    let active = runs
                        .iter()
                        .filter(|r| {
                            matches!(
                                r.get("status").and_then(Value::as_str),
                                Some("pending" | "running")
                            )
                        })
                        .count() as u64;
                    tally.add(Tally {
                        n: active,
                        capped: runs.len() as u64 >= self.limits.page,
                    });
                }
                None => tally.add(one),
            }
        }
        Some(tally)
    }

    /// Store items under each prefix; with none given, under each top-level namespace the
    /// target lists, or under `[]` when it lists none.
    pub async fn store_items(&self, prefixes: &[Vec<String>]) -> Option<Tally> {
        let mut tally = Tally::default();
        let prefixes =
            if prefixes.is_empty() {
                let mut top = BTreeSet::new();
                let listed = self
                    .pages(
                        "/store/namespaces",
                        &json!({"max_depth": 1}),
                        Some("namespaces"),
                        |items| {
                            top.extend(items.iter().filter_map(|ns| {
                                Some(ns.as_array()?.first()?.as_str()?.to_string())
                            }))
                        },
                    )
                    .await;
                match listed {
                    Some(t) => {
                        tally.capped = t.capped;
                        top.into_iter().map(|l| vec![l]).collect()
                    }
                    None => vec![vec![]],
                }
            } else {
                prefixes.to_vec()
            };
        let mut any = prefixes.is_empty();
        for prefix in &prefixes {
            let body = json!({ "namespace_prefix": prefix });
            if let Some(t) = self
                .pages("/store/items/search", &body, Some("items"), |_| {})
                .await
            {
                any = true;
                tally.add(t);
            }
        }
        any.then_some(tally)
    }
}

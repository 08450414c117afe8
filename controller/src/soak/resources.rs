//! The target's agent resources before and after a soak: a run's cleanup deletes what its
//! iteration created, so at the end the target should hold no more threads, assistants or
//! store items than at the start, and no more runs pending or running. Agent servers are
//! known to fail here (runs left pending, threads never deleted), and a soak is where it
//! adds up.
//!
//! Counts come from the reference runtime's `GET /stats` when the target has it, else from
//! the Agent Protocol endpoints any LangGraph-compatible server has ([`super::paging`]:
//! counts, searches paged to the end within a page limit and a time budget). A target that
//! answers neither has no check. The requests carry the run's auth: its fixed token, or a
//! JWT minted for the plan's `sub` (with `per_vu_sub` each VU is its own user on a
//! multi-tenant server, and these counts see only `sub`'s resources); GoTrue tokens are
//! the workers' own, so with `auth.kind = "gotrue"` the counts go without one.
//!
//! Store items are counted under the namespace prefix the flow writes to (the literal
//! leading labels of its `PUT /store/items` bodies, `["barrage"]` for the agent flow), so
//! other tenants of a shared store do not blur the check; a flow without one counts every
//! top-level namespace the target lists.
use super::paging::{Limits, Session, Tally};
use barrage_core::auth::keys;
use barrage_core::plan::{AuthConfig, FlowDef};
use barrage_core::trend::{ResourceCheck, ResourceCounts};
use barrage_core::{mint_hs256, JwtClaims, Plan, Secret};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The source of counts read from the reference runtime.
pub const STATS: &str = "GET /stats";

/// The `Authorization` the counts carry, from the plan's auth and its secrets.
#[derive(Debug, Clone, Default)]
pub enum Auth {
    #[default]
    None,
    /// `auth.kind = "token"`.
    Bearer(Secret),
    /// `auth.kind = "jwt"`: minted for each count (a soak may outlast a token's `ttl`).
    Jwt {
        secret: Secret,
        sub: String,
        ttl: Duration,
    },
}

impl Auth {
    /// The auth of a run of `auth` with `secrets` (by [`keys`]).
    pub fn from_plan(auth: &AuthConfig, secrets: &BTreeMap<String, Secret>) -> Auth {
        match auth {
            AuthConfig::None => Auth::None,
            AuthConfig::Token { .. } => secrets
                .get(keys::TOKEN)
                .map(|t| Auth::Bearer(t.clone()))
                .unwrap_or_default(),
            AuthConfig::Jwt { sub, ttl, .. } => secrets
                .get(keys::JWT_SECRET)
                .map(|s| Auth::Jwt {
                    secret: s.clone(),
                    sub: sub.clone(),
                    ttl: *ttl,
                })
                .unwrap_or_default(),
            AuthConfig::Gotrue { .. } => {
                tracing::warn!("auth.kind = gotrue: the target's resources are counted without a token (GoTrue tokens are the workers'); a target that requires one has no resource check");
                Auth::None
            }
        }
    }

    fn header(&self) -> Option<String> {
        match self {
            Auth::None => None,
            Auth::Bearer(t) => Some(format!("Bearer {}", t.expose())),
            Auth::Jwt { secret, sub, ttl } => {
                match mint_hs256(secret, &JwtClaims::new(sub.clone(), *ttl)) {
                    Ok(t) => Some(format!("Bearer {t}")),
                    Err(e) => {
                        tracing::warn!(error = %e, "resource count: cannot mint a JWT; counting without one");
                        None
                    }
                }
            }
        }
    }
}

/// The namespace prefixes a flow writes store items under: per `PUT /store/items` step,
/// the labels of its body's `"namespace"` up to the first templated one. Empty when the
/// flow writes none, or one whose first label is templated (then every namespace counts).
pub fn store_prefixes(flow: &FlowDef) -> Vec<Vec<String>> {
    let mut prefixes: Vec<Vec<String>> = Vec::new();
    for step in &flow.steps {
        let path = step.path.split('?').next().unwrap_or_default();
        if !step.method.eq_ignore_ascii_case("PUT") || path.trim_end_matches('/') != "/store/items"
        {
            continue;
        }
        let prefix = step
            .body
            .as_deref()
            .map(literal_namespace)
            .unwrap_or_default();
        if prefix.is_empty() {
            return Vec::new();
        }
        prefixes.push(prefix);
    }
    // a prefix under another one is counted by it
    prefixes.sort();
    prefixes.dedup();
    let all = prefixes.clone();
    prefixes.retain(|p| !all.iter().any(|q| q != p && p.starts_with(q)));
    prefixes
}

/// The leading labels of a body template's `"namespace":[…]` that hold no `{template}`.
fn literal_namespace(body: &str) -> Vec<String> {
    let Some(at) = body.find("\"namespace\"") else {
        return Vec::new();
    };
    let rest = body[at + "\"namespace\"".len()..].trim_start();
    let Some(rest) = rest.strip_prefix(':').map(str::trim_start) else {
        return Vec::new();
    };
    let Some(mut rest) = rest.strip_prefix('[') else {
        return Vec::new();
    };
    let mut labels = Vec::new();
    while let Some(r) = rest.trim_start().strip_prefix('"') {
        let Some(end) = r.find('"') else { break };
        let label = &r[..end];
        if label.contains(['{', '\\']) {
            break;
        }
        labels.push(label.to_string());
        match r[end + 1..].trim_start().strip_prefix(',') {
            Some(next) => rest = next,
            None => break,
        }
    }
    labels
}

/// Reads a target's resource counts.
#[derive(Debug, Clone)]
pub struct Counter {
    base: String,
    client: reqwest::Client,
    auth: Auth,
    limits: Limits,
    store_prefixes: Vec<Vec<String>>,
}

impl Counter {
    /// For the target at `base` (`http://host:port`), default limits, every store
    /// namespace.
    pub fn new(base: &str, auth: Auth) -> Counter {
        Counter {
            base: base.trim_end_matches('/').to_string(),
            // idle connections dropped before the servers' own 5 s (`docs/WIRE.md`): the
            // end's count may come hours after the start's
            client: reqwest::Client::builder()
                .pool_idle_timeout(Duration::from_secs(2))
                .build()
                .unwrap_or_default(),
            auth,
            limits: Limits::default(),
            store_prefixes: Vec::new(),
        }
    }

    /// For a run of `plan`: its target, its auth, its flow's store prefixes.
    pub fn for_plan(plan: &Plan, secrets: &BTreeMap<String, Secret>) -> Counter {
        let prefixes = match (&plan.flow.request, plan.flow_def()) {
            (None, Some(flow)) => store_prefixes(&flow),
            _ => Vec::new(),
        };
        Counter::new(&plan.target.url, Auth::from_plan(&plan.auth, secrets))
            .with_store_prefixes(prefixes)
    }

    pub fn with_limits(mut self, limits: Limits) -> Counter {
        self.limits = limits;
        self
    }

    /// Count store items under these prefixes only (empty: every namespace).
    pub fn with_store_prefixes(mut self, prefixes: Vec<Vec<String>>) -> Counter {
        self.store_prefixes = prefixes;
        self
    }

    fn session<'a>(&'a self, auth: Option<&'a str>) -> Session<'a> {
        Session {
            base: &self.base,
            client: &self.client,
            auth,
            limits: self.limits,
            deadline: Instant::now() + self.limits.budget,
        }
    }

    /// `(source, counts)`, or `None` when the target exposes no counts.
    pub async fn count(&self) -> Option<(String, ResourceCounts)> {
        let auth = self.auth.header();
        let s = self.session(auth.as_deref());
        if let Some(counts) = stats(&s).await {
            return Some((STATS.into(), counts));
        }
        let mut counts = ResourceCounts::default();
        let mut put = |kind: &str, slot: &mut Option<u64>, t: Option<Tally>| {
            if let Some(t) = t {
                *slot = Some(t.n);
                if t.capped {
                    tracing::warn!(
                        kind,
                        count = t.n,
                        "resource count capped by its page or time limit: a lower bound"
                    );
                    counts.capped.push(kind.to_string());
                }
            }
        };
        // the cheap ones first, so the time budget goes to what is long to page
        let (mut threads, mut assistants, mut runs, mut store) = (None, None, None, None);
        put("threads", &mut threads, s.count("threads").await);
        put("assistants", &mut assistants, s.count("assistants").await);
        put("runs_active", &mut runs, s.runs_active().await);
        put(
            "store_items",
            &mut store,
            s.store_items(&self.store_prefixes).await,
        );
        counts.threads = threads;
        counts.assistants = assistants;
        counts.runs_active = runs;
        counts.store_items = store;
        if counts.is_empty() {
            return None;
        }
        let under = if self.store_prefixes.is_empty() {
            "every namespace".to_string()
        } else {
            serde_json::to_string(&self.store_prefixes).unwrap_or_default()
        };
        Some((
            format!("search endpoints (store items under {under})"),
            counts,
        ))
    }

    /// Runs pending or running, counted again (`source` as the count's).
    async fn runs_active(&self, source: &str) -> Option<Tally> {
        let auth = self.auth.header();
        let s = self.session(auth.as_deref());
        if source == STATS {
            return stats(&s)
                .await
                .and_then(|c| c.runs_active.map(|n| Tally { n, capped: false }));
        }
        s.runs_active().await
    }
}

/// The reference runtime's own counts, when `GET /stats` has them.
async fn stats(s: &Session<'_>) -> Option<ResourceCounts> {
    let v = s.get("/stats").await?;
    v.get("threads").filter(|t| t.is_u64())?;
    let n = |k: &str| v.get(k).and_then(Value::as_u64);
    Some(ResourceCounts {
        threads: n("threads"),
        assistants: n("assistants"),
        store_items: n("store_items"),
        runs_active: n("runs_in_flight"),
        capped: Vec::new(),
    })
}

/// The check at the end of a run, from the counts taken at its start. Runs still active
/// beyond the start's count get the counter's `settle` time to finish first.
pub async fn check(
    counter: &Counter,
    start: Option<(String, ResourceCounts)>,
) -> Option<ResourceCheck> {
    let (source, start) = start?;
    let (_, mut end) = counter.count().await?;
    if let Some(base) = start.runs_active {
        let until = Instant::now() + counter.limits.settle;
        while end.runs_active.is_some_and(|n| n > base) && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let Some(t) = counter.runs_active(&source).await else {
                break;
            };
            end.runs_active = Some(t.n);
            end.capped.retain(|k| k != "runs_active");
            if t.capped {
                end.capped.push("runs_active".into());
            }
        }
    }
    Some(ResourceCheck::compare(source, start, end))
}

/// The layout of `baseline.json`.
pub const BASELINE_FORMAT: u32 = 1;
/// The start's counts in a soak's checkpoint folder, so that a resumed run (whose first
/// controller took them) still checks the end against them.
pub const BASELINE_FILE: &str = "baseline.json";

/// `baseline.json`: the counts taken when the run started.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineRecord {
    pub format: u32,
    /// Where the counts came from ([`STATS`] or the search endpoints).
    pub source: String,
    pub counts: ResourceCounts,
}

/// Why a checkpoint's baseline cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("--resume {}: {why}; the run's resource baseline cannot be read back (remove the file to resume without the back-to-baseline check)", path.display())]
    Read {
        path: std::path::PathBuf,
        why: String,
    },
}

/// The target's counts at a run's start, and the counter that takes the end's.
#[derive(Debug, Clone)]
pub struct Baseline {
    counter: Counter,
    start: Option<(String, ResourceCounts)>,
}

impl Baseline {
    /// Counts the target now (call it before the load starts). With `dir` (a soak's
    /// checkpoint folder) the counts are also written there, for a resume.
    pub async fn take(counter: Counter, dir: Option<&std::path::Path>) -> Baseline {
        let start = counter.count().await;
        match (&start, dir) {
            (Some((source, counts)), Some(dir)) => {
                let rec = BaselineRecord {
                    format: BASELINE_FORMAT,
                    source: source.clone(),
                    counts: counts.clone(),
                };
                let written = serde_json::to_vec_pretty(&rec)
                    .map_err(|e| e.to_string())
                    .and_then(|b| {
                        barrage_core::results::write_atomic(&dir.join(BASELINE_FILE), &b)
                            .map_err(|e| e.to_string())
                    });
                if let Err(e) = written {
                    tracing::warn!(dir = %dir.display(), error = %e, "resource baseline not written: a resumed run will have no back-to-baseline check");
                }
            }
            (None, _) => {
                tracing::info!("the target exposes no resource counts: no back-to-baseline check")
            }
            _ => {}
        }
        Baseline { counter, start }
    }

    /// The baseline the first controller of a resumed run wrote into `dir` (none written:
    /// the target had no counts then).
    pub fn resumed(counter: Counter, dir: &std::path::Path) -> Result<Baseline, BaselineError> {
        let path = dir.join(BASELINE_FILE);
        let start =
            match super::checkpoint::read_versioned::<BaselineRecord>(&path, BASELINE_FORMAT) {
                Ok(r) => Some((r.source, r.counts)),
                Err(super::checkpoint::ReadFail::Io(e))
                    if e.kind() == std::io::ErrorKind::NotFound =>
                {
                    None
                }
                Err(e) => {
                    let why = match e {
                        super::checkpoint::ReadFail::Io(e) => e.to_string(),
                        super::checkpoint::ReadFail::Format(f) => {
                            format!("format {f}, this barrage writes {BASELINE_FORMAT}")
                        }
                        super::checkpoint::ReadFail::Decode(d) => d,
                    };
                    return Err(BaselineError::Read { path, why });
                }
            };
        Ok(Baseline { counter, start })
    }

    /// The counts the end is compared with (`None`: the target exposed none).
    pub fn start(&self) -> Option<&(String, ResourceCounts)> {
        self.start.as_ref()
    }

    /// The end's counts against the start's (`None`: the target exposes no counts).
    pub async fn check(&self) -> Option<ResourceCheck> {
        check(&self.counter, self.start.clone()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flows_store_prefix_is_its_literal_leading_labels() {
        let agent = barrage_core::plan::builtin_flow("agent").unwrap();
        assert_eq!(store_prefixes(&agent), vec![vec!["barrage".to_string()]]);
        let chain = barrage_core::plan::builtin_flow("chain").unwrap();
        assert!(store_prefixes(&chain).is_empty());
        assert_eq!(
            literal_namespace(r#"{"namespace" : [ "a", "b" ,"vu-{vu}", "c"],"key":"k"}"#),
            vec!["a", "b"]
        );
        assert!(literal_namespace(r#"{"namespace":["{tenant}","x"]}"#).is_empty());
        assert!(literal_namespace(r#"{"key":"k"}"#).is_empty());
        let flow = |bodies: &[&str]| {
            let steps: String = bodies
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    format!(
                        "[[steps]]\nname = \"put{i}\"\nmethod = \"put\"\npath = \"/store/items\"\nbody = '{b}'\n"
                    )
                })
                .collect();
            FlowDef::from_toml_str(&steps).unwrap()
        };
        let nested = flow(&[
            r#"{"namespace":["a","b"],"key":"k","value":{}}"#,
            r#"{"namespace":["a"],"key":"k","value":{}}"#,
            r#"{"namespace":["z","{vu}"],"key":"k","value":{}}"#,
        ]);
        assert_eq!(
            store_prefixes(&nested),
            vec![vec!["a".to_string()], vec!["z".to_string()]]
        );
        let templated = flow(&[
            r#"{"namespace":["a"],"key":"k","value":{}}"#,
            r#"{"namespace":["{vu}"],"key":"k","value":{}}"#,
        ]);
        assert!(store_prefixes(&templated).is_empty());
    }
}

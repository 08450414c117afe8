//! A flow: one iteration of a virtual user, as step definitions (plan data:
//! [`barrage_core::plan::FlowDef`], the built-in `agent` flow by default) compiled once
//! ([`step::compile`]) and run by one iteration runner ([`AgentFlow`], `iteration`).
//!
//! "Engine" in this crate means the executor runtime that runs VUs and iterations
//! ([`crate::sample`] is the seam); this module is what one iteration does.
//!
//! # One iteration
//!
//! ```text
//! AgentFlow::new(plan, secrets) ─ FlowDef ─ compile (templates, checks, waves) ─► [Step] + Schedule
//! iteration: auth header ─► main steps, wave by wave ─(first failure stops them)─► cleanup steps
//!            a wave: one step (on the iteration's buffers), a repeat group (in order),
//!            or several nodes / a fan-out group's copies at once (each on its own buffers)
//!            each step: render path/body ─► http::execute (SSE parsed as it arrives)
//!                       ─► parse JSON (only what checks read: prune) ─► checks ─► captures ─► samples
//! ```
//! With `flow.request` in the plan, the flow is that one request instead (a 2xx passes,
//! the body is drained unparsed, samples tagged `operation=request`, no `agent_flow_*`):
//! what `oha`/`wrk` measure on one URL, run by the same
//! iteration runner.
//!
//! Of each answer, `flow.response_body_limit` bytes are kept for checks and captures; the
//! rest is counted in `data_received` and dropped as it streams. A JSON answer the checks
//! need that is longer fails its step (saying so); an SSE line or event that is longer
//! ends the request (`error=body_limit`). A worker's memory is bounded by VUs × the
//! widest wave or fan-out of the flow × limit.
//!
//! A failed step fails the iteration ([`IterationOutcome::Failed`], the first failure's
//! step and reason); the cleanup steps (delete store item, thread, assistant) still run
//! for every resource that was created. On `ctx.cancel` the iteration returns
//! `Interrupted` at once (the iteration runs in one `select!` on the token, which drops a
//! request or an SSE read in flight), records the request it cut as failed (status `0`,
//! `error=interrupted`) and nothing more, and skips the cleanup: a hard stop leaves those
//! resources behind. The VU loop counts the iteration in `interrupted_iterations`.
//!
//! # Samples (DESIGN.md's names)
//!
//! | metric | kind | tags | value |
//! | --- | --- | --- | --- |
//! | `http_reqs` | Counter | `operation`, `method`, `status`; a request failed below HTTP also `error` ([`crate::http::TransportError::tag`]: `connect`, `timeout`, `body_limit`, `interrupted`, …) | 1 |
//! | `http_req_duration`, `http_req_waiting` | Trend µs | same | send → end of body / → headers |
//! | `http_req_failed` | Rate | same | 1: no response (status `0`), non-2xx, a body that cannot be read as the step expects (not JSON; a stream without any event), or a 2xx that reports a failed run (`__error__`, `event: error`) |
//! | `data_sent`, `data_received` | Counter bytes | same | see [`crate::http`] |
//! | `create_assistant` … `store_search` | Trend µs | `operation` | the step's `http_req_duration` |
//! | `cleanup` | Trend µs | `operation` = `store_delete` / `delete_thread` / `delete_assistant` | one sample per delete |
//! | `stream_first_event` | Trend µs | `operation` | send → first complete SSE event |
//! | `stream_events` | Trend (count) | `operation` | events in the stream |
//! | `stream_first_token` | Trend µs | `operation` | send → first event with AI content (`values`/`updates` with a new AI message, a non-empty `messages` chunk) |
//! | `stream_event_gap` | Trend µs | `operation`, `event` | between consecutive events of one type |
//! | `stream_buffered` | Rate | `operation` | of streams with ≥ 3 events: all within 5 ms, after a first event ≥ 50 ms late (held back) |
//! | `checks` | Rate | `check` = `{operation}: {description}` | 1 passed, 0 failed |
//! | `agent_flow_duration` | Trend µs | — | `ctx.intended_start` → end of cleanup (flow `agent` only) |
//! | `agent_flow_success_rate` | Rate | — | 1 when every step, cleanup included, passed (flow `agent` only) |
//! | `flow_goodput` | Rate | — | 1 when every check of every attempt passed and every request, stream and the flow met its objective (`[slo]`, [`goodput`]); every flow |
//! | a step's `metric` | Trend µs | `operation` + the step's `tags` (templates: `depth={turn}`) | its `http_req_duration` |
//! | `step_retries` | Counter | `operation` | 1 per retry of a step with a `retry` policy |
//! | `step_attempts` | Trend (count) | `operation` | attempts the step took, the first included |
//! | `fanout_wall` | Trend µs | `group` | a fan-out group's first send → its last copy's end |
//! | `parallel_efficiency` | Trend (ratio) | `group` | sum of the copies' times ÷ `fanout_wall` |
//! | `llm_calls`, `llm_service_time`, `runtime_overhead` | Trend (count, µs, µs) | `operation` | a passed step with `llm_calls`: the mock LLM's calls for its run, their summed service time, its latency minus that ([`overhead`]) |
//!
//! GoTrue's token requests are recorded like a step's http samples with
//! `operation=auth` ([`auth`]). The executor engine adds the plan's tags and records
//! `iterations`, `iteration_duration` and `vus`.
//!
//! # What real servers do (docs/WIRE.md), and how the flow copes
//!
//! - A failed run is HTTP 200 with `{"__error__": …}` (`runs/wait`) or an `event: error`
//!   (stream): checked, failing the step and counting in `http_req_failed`.
//! - LangGraph.js answers `runs/wait` as `text/plain`, pretty-printed, after keep-alive
//!   newlines: JSON is parsed whatever the content type, leading whitespace skipped.
//! - SSE: CRLF (py) or LF (js), multi-line `data:` (js), `id:` after `data:` (js), no end
//!   event (end of body = end of stream): [`crate::http::sse`].
//! - Deletes answer 200 (js assistant: `["<id>"]`) or 204: any 2xx passes, body ignored.
//! - `GET /store/items` takes the namespace joined with dots (`barrage.vu-3`); a missing
//!   item is 200 `null` (or 404 elsewhere): either fails the `store_get` check.
//! - Idle keep-alive connections are closed by the servers after ~5 s: the pool drops
//!   them after 4 s and a request failing on a stale connection is sent again once
//!   ([`crate::http`]'s retry rule).
//! - A run on py starts 0.5–1 s late (its queue poll) and on js lasts ~0.5 s longer than
//!   the LLM (stream join): runs take ~0.6–1 s with a 10 ms mock LLM.
pub mod agent;
pub mod auth;
pub mod check;
mod goodput;
pub mod history;
mod http_series;
mod iteration;
mod overhead;
pub mod prune;
mod retry;
mod scan;
mod sse_sink;
pub mod step;
pub mod template;

use std::collections::BTreeMap;
use std::sync::Mutex;

use barrage_core::{Plan, Secret};
use futures_util::future::LocalBoxFuture;

use crate::http::Http;
use crate::sample::{IterationCtx, IterationOutcome, Scenario};
use auth::{Auth, AuthError};

pub use check::{Check, SseSummary};
pub use step::{Capture, Compiled, ResponseKind, Schedule, Step};
pub use template::{Template, VarKind, VarTable};

/// Why a flow cannot be built from a plan; each message names the field and the fix.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("target.url {url:?} is not a usable base URL ({why}); use e.g. http://127.0.0.1:9001")]
    TargetUrl { url: String, why: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("flow step {step}: {why}")]
    Step { step: String, why: String },
    #[error("{0}")]
    Def(String),
}

/// The agent flow, shared by the VUs of one worker: one HTTP client (keep-alive pool),
/// the compiled steps, the authenticator and a pool of per-iteration buffers.
pub struct AgentFlow {
    /// The agent flow (with its `agent_flow_*` samples), not a one-request flow.
    agent: bool,
    http: Http,
    /// The target's base URL without a trailing `/`.
    base: String,
    steps: Vec<Step>,
    /// The main steps' order.
    schedule: Schedule,
    table: VarTable,
    auth: Auth,
    /// The plan's service-level objectives, by step index (`flow_goodput`).
    slo: goodput::Objectives,
    /// `flow.response_body_limit`: the most of a body kept, the longest SSE line/event.
    body_limit: usize,
    /// Buffers of finished iterations, reused by the next ones (no per-VU map needed).
    pool: Mutex<Vec<iteration::IterState>>,
}

impl AgentFlow {
    pub fn new(plan: &Plan, secrets: &BTreeMap<String, Secret>) -> Result<AgentFlow, FlowError> {
        let base = plan.target.url.trim_end_matches('/').to_owned();
        match reqwest::Url::parse(&base) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
            Ok(_) => {
                return Err(FlowError::TargetUrl {
                    url: plan.target.url.clone(),
                    why: "not an http(s) URL with a host".into(),
                })
            }
            Err(e) => {
                return Err(FlowError::TargetUrl {
                    url: plan.target.url.clone(),
                    why: e.to_string(),
                })
            }
        }
        let auth = Auth::new(&plan.auth, secrets)?;
        let mut table = VarTable::new();
        let Compiled { steps, schedule } = compile_plan_flow(plan, &mut table)?;
        let slo = goodput::Objectives::compile(&plan.slo_objectives(), &steps);
        let http = Http::new(crate::http::build_client()?, plan.flow.request_timeout)
            .with_sources(&plan.target.source_addrs);
        Ok(AgentFlow {
            agent: plan.flow.request.is_none() && plan.flow.name == "agent",
            http,
            base,
            steps,
            schedule,
            table,
            auth,
            slo,
            body_limit: usize::try_from(plan.flow.response_body_limit).unwrap_or(usize::MAX),
            pool: Mutex::new(Vec::new()),
        })
    }

    /// The compiled steps, in order.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }
}

impl Scenario for AgentFlow {
    fn iteration<'a>(&'a self, ctx: IterationCtx<'a>) -> LocalBoxFuture<'a, IterationOutcome> {
        Box::pin(self.run_iteration(ctx))
    }
}

/// Compiles the plan's flow as a worker would, without a client: what only compiling
/// finds (a template naming no variable, a body that is not JSON) is reported before a
/// run starts, naming the step and the field.
pub fn check_plan_flow(plan: &Plan) -> Result<(), FlowError> {
    compile_plan_flow(plan, &mut VarTable::new()).map(|_| ())
}

fn compile_plan_flow(plan: &Plan, table: &mut VarTable) -> Result<Compiled, FlowError> {
    agent::constants(&plan.flow, table);
    let def = match &plan.flow.request {
        Some(r) => request_flow(r),
        None => plan.flow_def().ok_or_else(|| {
            FlowError::Def(format!(
                "flow.name: {:?} is neither a [flows.NAME] of the plan nor a built-in flow",
                plan.flow.name
            ))
        })?,
    };
    step::compile(&def, table)
}

/// The one-request flow (`flow.request`): one step, `operation=request`, whose 2xx
/// status passes; the body is read to its end but not parsed, as `oha` or `wrk` would.
fn request_flow(r: &barrage_core::RequestFlow) -> barrage_core::plan::FlowDef {
    barrage_core::plan::FlowDef {
        description: String::new(),
        vars: Default::default(),
        groups: Default::default(),
        steps: vec![barrage_core::plan::StepSpec {
            name: "request".into(),
            method: r.method.clone(),
            path: r.path.clone(),
            body: r.body.clone(),
            kind: ResponseKind::Ignore,
            checks: Vec::new(),
            capture: Default::default(),
            mark: None,
            metric: None,
            tags: Default::default(),
            depends_on: None,
            group: None,
            think_time: std::time::Duration::ZERO,
            retry: None,
            cleanup: false,
            requires: Vec::new(),
            llm_calls: None,
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flow_can_be_shared_across_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<AgentFlow>();
    }

    #[test]
    fn bad_plans_name_the_field() {
        let mut plan = Plan::profile(barrage_core::Profile::Smoke);
        plan.target.url = "not a url".into();
        let err = AgentFlow::new(&plan, &BTreeMap::new()).err().unwrap();
        assert!(err.to_string().contains("target.url"), "{err}");
        plan.target.url = "http://127.0.0.1:9".into();
        plan.auth = barrage_core::AuthConfig::Token {
            token_env: "AUTH_TOKEN".into(),
        };
        let err = AgentFlow::new(&plan, &BTreeMap::new()).err().unwrap();
        assert!(
            err.to_string().contains("`token`") && err.to_string().contains("AUTH_TOKEN"),
            "{err}"
        );
        let secrets = BTreeMap::from([("token".to_string(), Secret::new("abc"))]);
        assert!(AgentFlow::new(&plan, &secrets).is_ok());
    }
}

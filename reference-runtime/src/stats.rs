//! [`Stats`]: the server's own record, served at `GET /stats`, so barrage's tests
//! can compare what barrage counted with what the server saw.
//!
//! Counters are relaxed atomics (one increment per event, no lock). Requests are
//! counted per [`Operation`] once routed, whatever the outcome (a 422 or 404 counts
//! too; a 401 is counted only in `unauthorized`). `/ok`, `/info` and `/stats`
//! themselves are not counted, so reading the record doesn't change it.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Map, Value};

/// One kind of request, named like barrage's flow steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    CreateAssistant,
    GetAssistant,
    DeleteAssistant,
    CreateThread,
    GetThread,
    DeleteThread,
    RunWait,
    RunStream,
    GetState,
    StatelessRun,
    StatelessStream,
    StorePut,
    StoreGet,
    StoreSearch,
    StoreDelete,
}

impl Operation {
    pub const ALL: [Operation; 15] = [
        Self::CreateAssistant,
        Self::GetAssistant,
        Self::DeleteAssistant,
        Self::CreateThread,
        Self::GetThread,
        Self::DeleteThread,
        Self::RunWait,
        Self::RunStream,
        Self::GetState,
        Self::StatelessRun,
        Self::StatelessStream,
        Self::StorePut,
        Self::StoreGet,
        Self::StoreSearch,
        Self::StoreDelete,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::CreateAssistant => "create_assistant",
            Self::GetAssistant => "get_assistant",
            Self::DeleteAssistant => "delete_assistant",
            Self::CreateThread => "create_thread",
            Self::GetThread => "get_thread",
            Self::DeleteThread => "delete_thread",
            Self::RunWait => "run_wait",
            Self::RunStream => "run_stream",
            Self::GetState => "get_state",
            Self::StatelessRun => "stateless_run",
            Self::StatelessStream => "stateless_stream",
            Self::StorePut => "store_put",
            Self::StoreGet => "store_get",
            Self::StoreSearch => "store_search",
            Self::StoreDelete => "store_delete",
        }
    }
}

/// The counters. Live sizes (assistants, threads, store items) are read from the
/// maps when `/stats` is served.
#[derive(Debug, Default)]
pub struct Stats {
    /// Indexed by `Operation as usize`.
    requests: [AtomicU64; Operation::ALL.len()],
    /// Requests refused by the JWT check.
    pub unauthorized: AtomicU64,
    pub runs_started: AtomicU64,
    pub runs_succeeded: AtomicU64,
    pub runs_failed: AtomicU64,
    /// Runs refused because the thread was busy and the request asked for `reject`.
    pub runs_rejected: AtomicU64,
    /// Chat completion requests sent (streamed or not).
    pub llm_calls: AtomicU64,
    pub llm_streamed: AtomicU64,
    /// Calls that ended without a usable answer (connection, timeout, status, body).
    pub llm_errors: AtomicU64,
    pub prompt_tokens: AtomicU64,
    pub completion_tokens: AtomicU64,
    /// SSE events written to clients (metadata, values, messages, error, ...).
    pub sse_events: AtomicU64,
    /// Runs executing now (their thread's lock held, the model being called), and the
    /// most ever at once: what a fan-out test reads to prove its runs overlapped.
    pub runs_in_flight: AtomicU64,
    pub runs_in_flight_peak: AtomicU64,
}

/// Counts a run in `runs_in_flight` while it lives ([`Stats::run_in_flight`]).
pub struct InFlight<'a>(&'a Stats);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.runs_in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Live sizes read at `/stats` time.
pub struct Live {
    pub assistants: usize,
    pub threads: usize,
    pub store_items: usize,
}

impl Stats {
    pub fn hit(&self, op: Operation) {
        self.requests[op as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// One more run executing, until the guard drops; raises the peak.
    pub fn run_in_flight(&self) -> InFlight<'_> {
        let now = self.runs_in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.runs_in_flight_peak.fetch_max(now, Ordering::Relaxed);
        InFlight(self)
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn to_json(&self, live: Live, uptime_s: f64) -> Value {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut requests = Map::new();
        let mut total = 0;
        for op in Operation::ALL {
            let n = get(&self.requests[op as usize]);
            total += n;
            requests.insert(op.name().into(), n.into());
        }
        json!({
            "requests": requests,
            "requests_total": total,
            "unauthorized": get(&self.unauthorized),
            "runs": {
                "started": get(&self.runs_started),
                "succeeded": get(&self.runs_succeeded),
                "failed": get(&self.runs_failed),
                "rejected": get(&self.runs_rejected),
            },
            "runs_in_flight": get(&self.runs_in_flight),
            "runs_in_flight_peak": get(&self.runs_in_flight_peak),
            "llm": {
                "calls": get(&self.llm_calls),
                "streamed": get(&self.llm_streamed),
                "errors": get(&self.llm_errors),
                "prompt_tokens": get(&self.prompt_tokens),
                "completion_tokens": get(&self.completion_tokens),
            },
            "sse_events": get(&self.sse_events),
            "assistants": live.assistants,
            "threads": live.threads,
            "store_items": live.store_items,
            "uptime_s": uptime_s,
        })
    }
}

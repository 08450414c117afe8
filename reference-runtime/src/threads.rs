//! Threads: `POST /threads`, `GET` / `DELETE /threads/{id}`,
//! `GET /threads/{id}/state`, and the per-thread history that runs append to.
//!
//! Shapes follow py: UUIDv7 ids, `status` (`idle`, `busy` while a run holds the
//! thread, `error` after a failed run), `config: {}`, `values: null` until the first
//! run; the state answer has py's keys (`values, next, tasks, metadata, created_at,
//! checkpoint, parent_checkpoint, interrupts, checkpoint_id, parent_checkpoint_id`).
//!
//! Runs on one thread are serialized by [`Thread::run_lock`] (multitask strategy
//! `enqueue`, py's default); a run that asks for `reject` gets 409 when the thread
//! is busy. The history lock ([`Thread::data`]) is only held to copy or append.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::error::{opt_object, opt_str, optional_object_body, ApiError};
use crate::state::{now, AppState};
use crate::stats::Operation;

/// One thread.
pub struct Thread {
    pub data: Mutex<ThreadData>,
    /// Held by the run in progress; queued runs wait on it.
    pub run_lock: Arc<tokio::sync::Mutex<()>>,
}

pub struct ThreadData {
    pub thread_id: String,
    pub created_at: String,
    pub updated_at: String,
    pub state_updated_at: String,
    pub metadata: Map<String, Value>,
    pub status: &'static str,
    /// `None` until a run wrote a checkpoint.
    pub messages: Option<Vec<Value>>,
    pub checkpoint: Option<Checkpoint>,
}

/// The latest checkpoint: written when a run starts (its input) and when it succeeds.
pub struct Checkpoint {
    pub checkpoint_id: String,
    pub parent_checkpoint_id: Option<String>,
    pub created_at: String,
    /// py's checkpoint metadata (run, assistant, graph, model, step).
    pub metadata: Value,
}

impl Thread {
    pub fn lock(&self) -> MutexGuard<'_, ThreadData> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ThreadData {
    fn to_json(&self) -> Value {
        json!({
            "thread_id": self.thread_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "state_updated_at": self.state_updated_at,
            "metadata": self.metadata,
            "status": self.status,
            "config": {},
            "values": self.messages.as_ref().map(|m| json!({"messages": m})),
            "interrupts": {},
        })
    }

    /// The messages so far (empty before the first run).
    pub fn history(&self) -> Vec<Value> {
        self.messages.clone().unwrap_or_default()
    }

    /// Ends a run: the new history, a new checkpoint, the new status.
    pub fn commit(&mut self, messages: Vec<Value>, status: &'static str, metadata: Value) {
        let at = now();
        let parent = self.checkpoint.take().map(|c| c.checkpoint_id);
        self.checkpoint = Some(Checkpoint {
            checkpoint_id: uuid::Uuid::now_v7().to_string(),
            parent_checkpoint_id: parent,
            created_at: at.clone(),
            metadata,
        });
        self.messages = Some(messages);
        self.status = status;
        self.updated_at.clone_from(&at);
        self.state_updated_at = at;
    }

    fn state_json(&self) -> Value {
        let checkpoint_ref = |id: &Option<String>| {
            id.as_ref().map(
                |id| json!({"checkpoint_id": id, "thread_id": self.thread_id, "checkpoint_ns": ""}),
            )
        };
        let cp = self.checkpoint.as_ref();
        let checkpoint_id = cp.map(|c| c.checkpoint_id.clone());
        let parent_id = cp.and_then(|c| c.parent_checkpoint_id.clone());
        json!({
            "values": self.messages.as_ref().map_or_else(|| json!({}), |m| json!({"messages": m})),
            "next": [],
            "tasks": [],
            "metadata": cp.map_or_else(|| json!({}), |c| c.metadata.clone()),
            "created_at": cp.map(|c| c.created_at.clone()),
            "checkpoint": checkpoint_ref(&checkpoint_id)
                .unwrap_or_else(|| json!({"checkpoint_id": null, "thread_id": self.thread_id, "checkpoint_ns": ""})),
            "parent_checkpoint": checkpoint_ref(&parent_id),
            "interrupts": [],
            "checkpoint_id": checkpoint_id,
            "parent_checkpoint_id": parent_id,
        })
    }
}

#[derive(Default)]
pub struct Threads {
    map: RwLock<HashMap<String, Arc<Thread>>>,
}

impl Threads {
    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn get(&self, id: &str) -> Result<Arc<Thread>, ApiError> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| not_found(id))
    }
}

pub fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("Thread with ID {id} not found"))
}

/// `POST /threads`
pub async fn create(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    state.stats.hit(Operation::CreateThread);
    let body = optional_object_body(body)?;
    let metadata = opt_object(&body, "metadata")?.cloned().unwrap_or_default();
    let if_exists = opt_str(&body, "if_exists")?.unwrap_or("raise");
    if !matches!(if_exists, "raise" | "do_nothing") {
        return Err(ApiError::Unprocessable(format!(
            "'if_exists' must be 'raise' or 'do_nothing', got '{if_exists}'"
        )));
    }
    let thread_id = match opt_str(&body, "thread_id")? {
        Some("") => {
            return Err(ApiError::Unprocessable(
                "'thread_id' must not be empty".into(),
            ))
        }
        Some(id) => id.to_owned(),
        None => uuid::Uuid::now_v7().to_string(),
    };
    let at = now();
    let data = ThreadData {
        thread_id: thread_id.clone(),
        created_at: at.clone(),
        updated_at: at.clone(),
        state_updated_at: at,
        metadata,
        status: "idle",
        messages: None,
        checkpoint: None,
    };
    let answer = data.to_json();
    let mut map = state.threads.map.write().unwrap_or_else(|e| e.into_inner());
    if let Some(existing) = map.get(&thread_id) {
        return match if_exists {
            "do_nothing" => Ok(Json(existing.lock().to_json())),
            _ => Err(ApiError::Conflict(format!(
                "Thread with ID {thread_id} already exists"
            ))),
        };
    }
    let thread = Thread {
        data: Mutex::new(data),
        run_lock: Arc::default(),
    };
    map.insert(thread_id, Arc::new(thread));
    Ok(Json(answer))
}

/// `GET /threads/{thread_id}`
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.stats.hit(Operation::GetThread);
    let thread = state.threads.get(&id)?;
    let answer = thread.lock().to_json();
    Ok(Json(answer))
}

/// `GET /threads/{thread_id}/state`
pub async fn get_state(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.stats.hit(Operation::GetState);
    let thread = state.threads.get(&id)?;
    let answer = thread.lock().state_json();
    Ok(Json(answer))
}

/// `DELETE /threads/{thread_id}` → 204. A run in progress finishes on the
/// detached thread; its result is dropped with it.
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.stats.hit(Operation::DeleteThread);
    let removed = state
        .threads
        .map
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id);
    removed
        .map(|_| StatusCode::NO_CONTENT)
        .ok_or_else(|| not_found(&id))
}

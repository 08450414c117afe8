//! Runs: `POST /threads/{id}/runs/wait|stream` and `POST /runs/wait|stream`
//! (stateless), all driven by one engine, [`Run::execute`], which runs the
//! `agent` graph (one node, `call_model`) and reports through a [`Sink`].
//!
//! Wire shapes follow py:
//! - `wait` answers the final state values `{"messages":[...]}` (the thread's whole
//!   history; a stateless run's own messages only), `application/json`, with
//!   `location` / `content-location`. A failed run is still 200:
//!   `{"__error__":{"error":"<Name>","message":"..."}}`. No keep-alive newlines are
//!   sent while waiting (py sends one every 5 s; clients skip them either way).
//! - `stream` is `text/event-stream; charset=utf-8`, `cache-control: no-store`:
//!   `metadata` `{"run_id","attempt":1}` first, then per `stream_mode` (a string or
//!   a list, default `["values"]`): `values` (input state, then final state),
//!   `updates` (`{"call_model":{"messages":[<ai>]}}`), `messages-tuple` (event
//!   `messages`, `[<AIMessageChunk>, <metadata>]` per LLM delta, forwarded as it
//!   arrives), `messages` (`messages/metadata` once, then `messages/partial`
//!   `[<message so far>]` per delta). A failure is `event: error`
//!   `{"error","message"}`. The body ends when the run ends. LF line ends (py: CRLF).
//!   `custom` is accepted and, as for this graph on py, emits nothing; `events`,
//!   `debug`, `tasks` and `checkpoints` are refused with 422.
//! - The LLM is streamed only when a `messages` mode is asked for, as on py (js
//!   always streams).
//!
//! Runs on one thread are serialized (`enqueue`, py's default multitask strategy):
//! a second run waits for the first; `"multitask_strategy":"reject"` gets 409
//! instead when the thread is busy (`interrupt` and `rollback` behave as `enqueue`).
//! A run always completes once started, even if its client goes away, so the
//! thread's history stays consistent.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, OwnedMutexGuard};

use crate::assistants::{model_for, Resolved};
use crate::error::{object_body, opt_object, opt_str, type_name, ApiError};
use crate::llm::LlmError;
use crate::messages::{ai_chunk, ai_message, ai_message_id, input_messages, to_openai};
use crate::sse;
use crate::state::AppState;
use crate::stats::{Operation, Stats};
use crate::threads::Thread;

/// The node our graph runs, as named in `updates` events and chunk metadata.
const NODE: &str = "call_model";

/// SSE frames buffered between the run and a slow client.
const SSE_BUFFER: usize = 64;

/// Which stream modes a run reports.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Modes {
    pub values: bool,
    pub updates: bool,
    pub messages_tuple: bool,
    pub messages: bool,
}

impl Modes {
    /// `stream_mode`: absent → `["values"]`; a string or a list of strings.
    pub fn parse(value: Option<&Value>) -> Result<Self, ApiError> {
        let names: Vec<&Value> = match value {
            None | Some(Value::Null) => {
                return Ok(Self {
                    values: true,
                    ..Self::default()
                })
            }
            Some(Value::Array(list)) => list.iter().collect(),
            Some(one) => vec![one],
        };
        let mut modes = Self::default();
        for name in names {
            match name.as_str() {
                Some("values") => modes.values = true,
                Some("updates") => modes.updates = true,
                Some("messages-tuple") => modes.messages_tuple = true,
                Some("messages") => modes.messages = true,
                Some("custom") => {}
                Some(other @ ("events" | "debug" | "tasks" | "checkpoints")) => {
                    return Err(ApiError::Unprocessable(format!(
                        "stream_mode '{other}' is not supported by the reference runtime; use values, updates, messages, messages-tuple or custom"
                    )))
                }
                Some(other) => {
                    return Err(ApiError::Unprocessable(format!(
                        "Unknown stream_mode '{other}'; use values, updates, messages, messages-tuple or custom"
                    )))
                }
                None => {
                    return Err(ApiError::Unprocessable(format!(
                        "stream_mode must be a string or a list of strings, got {}",
                        type_name(name)
                    )))
                }
            }
        }
        Ok(modes)
    }

    /// Token-level modes need the LLM's answer streamed.
    fn streams_tokens(self) -> bool {
        self.messages || self.messages_tuple
    }
}

/// A run request, validated.
struct RunRequest {
    assistant: Resolved,
    /// New messages, already in LangChain shape with ids.
    input: Vec<Value>,
    modes: Modes,
    /// Model name sent to the LLM, provider prefix stripped.
    model: String,
    /// `multitask_strategy: "reject"`.
    reject_if_busy: bool,
    /// The request's `metadata`, copied into the checkpoint metadata.
    metadata: Map<String, Value>,
}

impl RunRequest {
    fn parse(
        state: &AppState,
        body: Result<Bytes, BytesRejection>,
        streaming: bool,
    ) -> Result<Self, ApiError> {
        let body = object_body(body)?;
        let assistant_id = opt_str(&body, "assistant_id")?
            .ok_or_else(|| ApiError::Unprocessable("Field 'assistant_id' is required".into()))?;
        let input = input_messages(body.get("input"))?;
        let modes = if streaming {
            Modes::parse(body.get("stream_mode"))?
        } else {
            Modes::default()
        };
        let reject_if_busy = match opt_str(&body, "multitask_strategy")? {
            None | Some("enqueue" | "interrupt" | "rollback") => false,
            Some("reject") => true,
            Some(other) => {
                return Err(ApiError::Unprocessable(format!(
                "multitask_strategy '{other}' is not one of reject, enqueue, interrupt, rollback"
            )))
            }
        };
        let run_config = opt_object(&body, "config")?.map(|c| Value::Object(c.clone()));
        let run_context = opt_object(&body, "context")?.map(|c| Value::Object(c.clone()));
        let metadata = opt_object(&body, "metadata")?.cloned().unwrap_or_default();
        let assistant = state.assistants.resolve(assistant_id).ok_or_else(|| {
            ApiError::NotFound(format!("Assistant with ID '{assistant_id}' not found"))
        })?;
        let model = model_for(
            run_config.as_ref(),
            run_context.as_ref(),
            &assistant,
            &state.config.default_model,
        );
        Ok(Self {
            assistant,
            input,
            modes,
            model,
            reject_if_busy,
            metadata,
        })
    }
}

/// Where a run's events go.
enum Sink {
    /// `runs/wait`: only the outcome matters.
    Discard,
    /// `runs/stream`: SSE frames to the response body.
    Sse(mpsc::Sender<Bytes>),
}

/// How a run ended: the final values, or the error name and message.
type Outcome = Result<Value, (&'static str, String)>;

/// One run, ready to execute.
struct Run {
    state: AppState,
    run_id: String,
    /// The thread's id, or a temporary one for a stateless run (as py does).
    thread_id: String,
    thread: Option<Arc<Thread>>,
    /// Taken at request time for `reject`; otherwise taken by `execute`.
    held: Option<OwnedMutexGuard<()>>,
    req: RunRequest,
    sink: Sink,
}

impl Run {
    async fn emit(&self, event: &str, data: impl FnOnce() -> Value) {
        if let Sink::Sse(tx) = &self.sink {
            if tx.send(sse::frame(event, &data())).await.is_ok() {
                Stats::add(&self.state.stats.sse_events, 1);
            }
        }
    }

    async fn execute(mut self) -> Outcome {
        let stats = &self.state.stats;
        Stats::add(&stats.runs_started, 1);
        self.emit("metadata", || json!({"run_id": self.run_id, "attempt": 1}))
            .await;
        if let (Some(thread), None) = (&self.thread, &self.held) {
            self.held = Some(thread.run_lock.clone().lock_owned().await);
        }
        let state = self.state.clone();
        let _in_flight = state.stats.run_in_flight();
        // The input checkpoint, as LangGraph writes one before the first node.
        let mut messages = match &self.thread {
            Some(thread) => {
                let metadata = self.checkpoint_metadata(0, "input");
                let mut data = thread.lock();
                let mut messages = data.history();
                messages.extend(self.req.input.iter().cloned());
                data.commit(messages.clone(), "busy", metadata);
                messages
            }
            None => self.req.input.clone(),
        };
        if self.req.modes.values {
            self.emit("values", || json!({"messages": messages})).await;
        }
        let result = self.call_model(&messages).await;
        let stats = &self.state.stats;
        match result {
            Ok(ai) => {
                messages.push(ai);
                if let Some(thread) = &self.thread {
                    let metadata = self.checkpoint_metadata(1, "loop");
                    thread.lock().commit(messages.clone(), "idle", metadata);
                }
                if self.req.modes.updates {
                    self.emit("updates", || json!({NODE: {"messages": [messages.last()]}}))
                        .await;
                }
                let values = json!({"messages": messages});
                if self.req.modes.values {
                    self.emit("values", || values.clone()).await;
                }
                Stats::add(&stats.runs_succeeded, 1);
                if self.state.config.leak_runs {
                    self.state.leaked.keep(&self.run_id, &values);
                }
                Ok(values)
            }
            Err(err) => {
                Stats::add(&stats.llm_errors, 1);
                Stats::add(&stats.runs_failed, 1);
                tracing::warn!(run_id = %self.run_id, thread_id = %self.thread_id, error = %err, "run failed");
                // As in LangGraph, a failed node writes no checkpoint.
                if let Some(thread) = &self.thread {
                    thread.lock().status = "error";
                }
                let (name, message) = (err.name(), err.public_message());
                self.emit("error", || json!({"error": name, "message": message}))
                    .await;
                Err((name, message))
            }
        }
    }

    /// The graph's one node: the model call.
    async fn call_model(&self, messages: &[Value]) -> Result<Value, LlmError> {
        let state = &self.state;
        let openai: Vec<Value> = messages.iter().map(to_openai).collect();
        let call_id = uuid::Uuid::now_v7().to_string();
        let model = &self.req.model;
        Stats::add(&state.stats.llm_calls, 1);
        let completion = if self.req.modes.streams_tokens() {
            Stats::add(&state.stats.llm_streamed, 1);
            let mut stream = state.llm.stream(model, openai).await?;
            let metadata = self.chunk_metadata();
            if self.req.modes.messages {
                self.emit(
                    "messages/metadata",
                    || json!({ai_message_id(&call_id): {"metadata": metadata}}),
                )
                .await;
            }
            let mut content = String::new();
            while let Some(delta) = stream.next_delta().await? {
                content.push_str(&delta.content);
                if self.req.modes.messages_tuple {
                    self.emit("messages", || {
                        json!([ai_chunk(&delta.content, &delta, &call_id, model), metadata])
                    })
                    .await;
                }
                if self.req.modes.messages {
                    self.emit("messages/partial", || {
                        json!([ai_chunk(&content, &delta, &call_id, model)])
                    })
                    .await;
                }
            }
            stream.into_completion()
        } else {
            state.llm.complete(model, openai).await?
        };
        if let Some(usage) = completion.usage {
            Stats::add(&state.stats.prompt_tokens, usage.prompt_tokens);
            Stats::add(&state.stats.completion_tokens, usage.completion_tokens);
        }
        Ok(ai_message(&completion, &call_id, model))
    }

    /// py's metadata of a `messages` chunk.
    fn chunk_metadata(&self) -> Value {
        let task_ns = format!("{NODE}:{}", uuid::Uuid::new_v4());
        json!({
            "created_by": "system",
            "graph_id": self.req.assistant.graph_id,
            "assistant_id": self.req.assistant.assistant_id,
            "run_attempt": 1,
            "run_id": self.run_id,
            "thread_id": self.thread_id,
            "user_id": "",
            "langgraph_step": 1,
            "langgraph_node": NODE,
            "langgraph_triggers": [format!("branch:to:{NODE}")],
            "langgraph_path": ["__pregel_pull", NODE],
            "langgraph_checkpoint_ns": task_ns,
            "checkpoint_ns": task_ns,
            "ls_provider": "openai",
            "ls_model_name": self.req.model,
            "ls_model_type": "chat",
            "ls_temperature": null,
        })
    }

    /// py's checkpoint metadata for `step` of this run, plus the request's metadata.
    fn checkpoint_metadata(&self, step: u32, source: &str) -> Value {
        let mut metadata = self.req.metadata.clone();
        let own = json!({
            "source": source,
            "step": step,
            "parents": {},
            "run_attempt": 1,
            "run_id": self.run_id,
            "thread_id": self.thread_id,
            "graph_id": self.req.assistant.graph_id,
            "assistant_id": self.req.assistant.assistant_id,
            "model_name": self.req.model,
            "user_id": "",
        });
        if let Value::Object(own) = own {
            metadata.extend(own);
        }
        Value::Object(metadata)
    }
}

/// Validates the request and sets up a run; errors here are real HTTP errors.
fn prepare(
    state: &AppState,
    thread_id: Option<&str>,
    body: Result<Bytes, BytesRejection>,
    sink: Sink,
    streaming: bool,
) -> Result<Run, ApiError> {
    let req = RunRequest::parse(state, body, streaming)?;
    let (thread, held) = match thread_id {
        Some(id) => {
            let thread = state.threads.get(id)?;
            let held = if req.reject_if_busy {
                let guard = thread.run_lock.clone().try_lock_owned().map_err(|_| {
                    Stats::add(&state.stats.runs_rejected, 1);
                    ApiError::Conflict(
                        "Thread is already running a task. Wait for it to finish or choose a different multitask strategy."
                            .into(),
                    )
                })?;
                Some(guard)
            } else {
                None
            };
            (Some(thread), held)
        }
        None => (None, None),
    };
    Ok(Run {
        state: state.clone(),
        run_id: uuid::Uuid::now_v7().to_string(),
        thread_id: thread_id.map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned),
        thread,
        held,
        req,
        sink,
    })
}

fn header_value(s: String) -> HeaderValue {
    HeaderValue::try_from(s).unwrap_or_else(|_| HeaderValue::from_static("/"))
}

async fn wait(
    state: AppState,
    thread_id: Option<&str>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let run = prepare(&state, thread_id, body, Sink::Discard, false)?;
    let base = format!("/threads/{}/runs/{}", run.thread_id, run.run_id);
    // Spawned, so the run completes even if this request is dropped.
    let outcome = tokio::spawn(run.execute())
        .await
        .unwrap_or_else(|e| Err(("InternalError", e.to_string())));
    let body = match outcome {
        Ok(values) => values,
        Err((error, message)) => json!({"__error__": {"error": error, "message": message}}),
    };
    let mut response = Json(body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, header_value(format!("{base}/join")));
    headers.insert(header::CONTENT_LOCATION, header_value(base));
    Ok(response)
}

async fn stream(
    state: AppState,
    thread_id: Option<&str>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (tx, rx) = mpsc::channel::<Bytes>(SSE_BUFFER);
    let run = prepare(&state, thread_id, body, Sink::Sse(tx), true)?;
    let base = format!("/threads/{}/runs/{}", run.thread_id, run.run_id);
    tokio::spawn(run.execute());
    let body = if state.config.buffer_sse {
        // what a buffering proxy does: nothing until the run ends, then all of it
        let mut rx = rx;
        let mut all = Vec::new();
        while let Some(frame) = rx.recv().await {
            all.extend_from_slice(&frame);
        }
        Body::from(all)
    } else {
        Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|frame| (Ok::<_, Infallible>(frame), rx))
        }))
    };
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    headers.insert(header::LOCATION, header_value(format!("{base}/stream")));
    headers.insert(header::CONTENT_LOCATION, header_value(base));
    Ok(response)
}

/// `POST /threads/{thread_id}/runs/wait`
pub async fn thread_wait(
    State(state): State<AppState>,
    Path(thread_id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    state.stats.hit(Operation::RunWait);
    wait(state, Some(&thread_id), body).await
}

/// `POST /threads/{thread_id}/runs/stream`
pub async fn thread_stream(
    State(state): State<AppState>,
    Path(thread_id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    state.stats.hit(Operation::RunStream);
    stream(state, Some(&thread_id), body).await
}

/// `POST /runs/wait`
pub async fn stateless_wait(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    state.stats.hit(Operation::StatelessRun);
    wait(state, None, body).await
}

/// `POST /runs/stream`
pub async fn stateless_stream(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    state.stats.hit(Operation::StatelessStream);
    stream(state, None, body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_mode_forms() {
        let all = |v: bool, u: bool, t: bool, m: bool| Modes {
            values: v,
            updates: u,
            messages_tuple: t,
            messages: m,
        };
        let cases: &[(Option<Value>, Option<Modes>)] = &[
            (None, Some(all(true, false, false, false))),
            (Some(json!("updates")), Some(all(false, true, false, false))),
            (
                Some(json!(["values", "updates"])),
                Some(all(true, true, false, false)),
            ),
            (
                Some(json!(["messages-tuple"])),
                Some(all(false, false, true, false)),
            ),
            (
                Some(json!("messages")),
                Some(all(false, false, false, true)),
            ),
            (
                Some(json!(["custom"])),
                Some(all(false, false, false, false)),
            ),
            (Some(json!("debug")), None),
            (Some(json!("nonsense")), None),
            (Some(json!([1])), None),
        ];
        for (input, want) in cases {
            assert_eq!(Modes::parse(input.as_ref()).ok(), *want, "{input:?}");
        }
    }
}

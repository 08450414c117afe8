//! Assistants: `POST /assistants`, `GET` / `DELETE /assistants/{id}`, and
//! [`Assistants::resolve`], which the run endpoints use to find the graph and the
//! model.
//!
//! Shapes follow py: the answer carries `context` as a copy of
//! `config.configurable` when no context is sent, `version: 1`, `description`;
//! an unknown `graph_id` is 404 (js accepts it unchecked); `DELETE` is 204 (js: 200
//! with the id list). Each graph has a built-in assistant whose id is the graph id
//! (`"agent"`), accepted wherever an assistant id is.
//!
//! With `--assistant-id-from-config` the server behaves like Agent Protocol servers that
//! key assistants by what they run: an assistant created without `assistant_id` gets an
//! id derived from `graph_id` + `config` ([`keyed_id`]; `name`, `metadata` and `context`
//! play no part), so a second `POST` with the same graph and config while the first
//! exists is `409 {"error":"conflict","message":"Assistant '<id>' already exists"}`.
//! Load generators must make each virtual user's config distinct to pass on such servers.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use bytes::Bytes;
use serde_json::{json, Value};

use crate::config::strip_provider;
use crate::error::{object_body, opt_object, opt_str, ApiError};
use crate::state::{now, AppState};
use crate::stats::Operation;

/// The graphs this server runs. Only `agent`: one node, `call_model`.
pub const GRAPHS: &[&str] = &["agent"];

/// One stored assistant.
pub struct Assistant {
    /// The JSON answered by `GET /assistants/{id}`.
    pub object: Value,
    pub graph_id: String,
}

/// What a run needs to know about its assistant.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub assistant_id: String,
    pub graph_id: String,
    /// The assistant's `config`, merged under each run's config.
    pub config: Value,
    /// The assistant's `context`.
    pub context: Value,
}

#[derive(Default)]
pub struct Assistants {
    map: RwLock<HashMap<String, Arc<Assistant>>>,
}

impl Assistants {
    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn get(&self, id: &str) -> Option<Arc<Assistant>> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// A stored assistant, or the built-in one of a graph.
    pub fn resolve(&self, id: &str) -> Option<Resolved> {
        if let Some(a) = self.get(id) {
            return Some(Resolved {
                assistant_id: id.to_owned(),
                graph_id: a.graph_id.clone(),
                config: a.object["config"].clone(),
                context: a.object["context"].clone(),
            });
        }
        GRAPHS.contains(&id).then(|| Resolved {
            assistant_id: id.to_owned(),
            graph_id: id.to_owned(),
            config: json!({}),
            context: json!({}),
        })
    }
}

/// The model a run uses: the run's own `config.configurable.model_name` or
/// `context.model_name`, else the assistant's, else `MODEL_NAME`; `openai:` stripped.
pub fn model_for(
    run_config: Option<&Value>,
    run_context: Option<&Value>,
    assistant: &Resolved,
    default: &str,
) -> String {
    fn from_config(c: Option<&Value>) -> Option<&str> {
        c?.pointer("/configurable/model_name")?.as_str()
    }
    fn from_context(c: Option<&Value>) -> Option<&str> {
        c?.get("model_name")?.as_str()
    }
    from_config(run_config)
        .or_else(|| from_context(run_context))
        .or_else(|| from_config(Some(&assistant.config)))
        .or_else(|| from_context(Some(&assistant.context)))
        .map(strip_provider)
        .filter(|m| !m.is_empty())
        .unwrap_or(default)
        .to_owned()
}

fn builtin_object(graph_id: &str) -> Value {
    json!({
        "assistant_id": graph_id,
        "graph_id": graph_id,
        "config": {},
        "context": {},
        "metadata": {"created_by": "system"},
        "name": graph_id,
        "created_at": null,
        "updated_at": null,
        "version": 1,
        "description": null,
    })
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("Assistant with ID '{id}' not found"))
}

/// `POST /assistants`
pub async fn create(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    state.stats.hit(Operation::CreateAssistant);
    let body = object_body(body)?;
    let graph_id = opt_str(&body, "graph_id")?
        .ok_or_else(|| ApiError::Unprocessable("Field 'graph_id' is required".into()))?;
    if !GRAPHS.contains(&graph_id) {
        return Err(ApiError::NotFound(format!(
            "Graph '{graph_id}' not found. Expected one of: {GRAPHS:?}"
        )));
    }
    let config = opt_object(&body, "config")?.cloned().unwrap_or_default();
    let context = match opt_object(&body, "context")? {
        Some(context) => Value::Object(context.clone()),
        None => config
            .get("configurable")
            .filter(|c| c.is_object())
            .cloned()
            .unwrap_or_else(|| json!({})),
    };
    let metadata = opt_object(&body, "metadata")?.cloned().unwrap_or_default();
    let name = opt_str(&body, "name")?.unwrap_or("Untitled");
    let description = opt_str(&body, "description")?;
    let if_exists = opt_str(&body, "if_exists")?.unwrap_or("raise");
    if !matches!(if_exists, "raise" | "do_nothing") {
        return Err(ApiError::Unprocessable(format!(
            "'if_exists' must be 'raise' or 'do_nothing', got '{if_exists}'"
        )));
    }
    let keyed = state.config.assistant_id_from_config;
    let assistant_id = match opt_str(&body, "assistant_id")? {
        Some("") => {
            return Err(ApiError::Unprocessable(
                "'assistant_id' must not be empty".into(),
            ))
        }
        Some(id) => id.to_owned(),
        None if keyed => keyed_id(graph_id, &Value::Object(config.clone())),
        None => uuid::Uuid::new_v4().to_string(),
    };
    let created = now();
    let object = json!({
        "assistant_id": assistant_id,
        "graph_id": graph_id,
        "config": config,
        "context": context,
        "metadata": metadata,
        "name": name,
        "created_at": created,
        "updated_at": created,
        "version": 1,
        "description": description,
    });
    let mut map = state
        .assistants
        .map
        .write()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(existing) = map.get(&assistant_id) {
        return match if_exists {
            "do_nothing" => Ok(Json(existing.object.clone())),
            _ if keyed => Err(ApiError::KeyedConflict(format!(
                "Assistant '{assistant_id}' already exists"
            ))),
            _ => Err(ApiError::Conflict(format!(
                "Assistant with ID '{assistant_id}' already exists"
            ))),
        };
    }
    map.insert(
        assistant_id,
        Arc::new(Assistant {
            object: object.clone(),
            graph_id: graph_id.to_owned(),
        }),
    );
    Ok(Json(object))
}

/// The id of an assistant of `graph_id` with `config` under `--assistant-id-from-config`:
/// a UUID-shaped hash of the graph and the config written with sorted keys, so equal
/// configs give equal ids whatever the key order of the request.
pub fn keyed_id(graph_id: &str, config: &Value) -> String {
    use std::hash::{Hash, Hasher};
    let mut text = String::from(graph_id);
    text.push('\0');
    canonical(config, &mut text);
    let half = |seed: u8| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        seed.hash(&mut h);
        text.hash(&mut h);
        h.finish()
    };
    uuid::Uuid::from_u64_pair(half(1), half(2)).to_string()
}

/// `value` as JSON with every object's keys sorted.
fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// `GET /assistants/{assistant_id}`
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.stats.hit(Operation::GetAssistant);
    if let Some(a) = state.assistants.get(&id) {
        return Ok(Json(a.object.clone()));
    }
    if GRAPHS.contains(&id.as_str()) {
        return Ok(Json(builtin_object(&id)));
    }
    Err(not_found(&id))
}

/// `DELETE /assistants/{assistant_id}` → 204
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.stats.hit(Operation::DeleteAssistant);
    let removed = state
        .assistants
        .map
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id);
    removed
        .map(|_| StatusCode::NO_CONTENT)
        .ok_or_else(|| not_found(&id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_ids_follow_graph_and_config_only() {
        let a = json!({"configurable": {"model_name": "m", "barrage_tag": "vu-1-iter-0"}});
        let same_reordered =
            json!({"configurable": {"barrage_tag": "vu-1-iter-0", "model_name": "m"}});
        let other_vu = json!({"configurable": {"model_name": "m", "barrage_tag": "vu-2-iter-0"}});
        assert_eq!(keyed_id("agent", &a), keyed_id("agent", &same_reordered));
        assert_ne!(keyed_id("agent", &a), keyed_id("agent", &other_vu));
        assert_ne!(keyed_id("agent", &a), keyed_id("other", &a));
        assert!(uuid::Uuid::parse_str(&keyed_id("agent", &a)).is_ok());
    }

    #[test]
    fn model_precedence() {
        let assistant = Resolved {
            assistant_id: "a".into(),
            graph_id: "agent".into(),
            config: json!({"configurable": {"model_name": "openai:from-assistant"}}),
            context: json!({}),
        };
        let run_config = json!({"configurable": {"model_name": "openai:from-run"}});
        let run_context = json!({"model_name": "from-context"});
        assert_eq!(
            model_for(Some(&run_config), None, &assistant, "d"),
            "from-run"
        );
        assert_eq!(
            model_for(None, Some(&run_context), &assistant, "d"),
            "from-context"
        );
        assert_eq!(model_for(None, None, &assistant, "d"), "from-assistant");
        let bare = Resolved {
            config: json!({}),
            ..assistant
        };
        assert_eq!(
            model_for(None, None, &bare, "default-model"),
            "default-model"
        );
    }
}

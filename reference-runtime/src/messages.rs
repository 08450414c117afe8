//! Chat messages in the shapes the LangGraph Python server serializes (LangChain
//! `HumanMessage` / `AIMessage` / `AIMessageChunk` `model_dump()`), and their
//! conversion to and from the OpenAI chat format.
//!
//! Input messages may be OpenAI-style `{"role":"user","content":...}` or
//! LangChain-style `{"type":"human","content":...}`; both become
//! `{"content","additional_kwargs":{},"response_metadata":{},"type","name","id"}`.
//! We follow py (not js) in giving AI messages `name: null` and
//! `response_metadata.model_name`, and in naming AI messages `lc_run--{call id}-0`.

use serde_json::{json, Map, Value};

use crate::error::{type_name, ApiError};
use crate::llm::{Completion, Delta, Usage};

/// The input state's `messages`: a list, one message, or a bare string (a human
/// message), as LangGraph's `add_messages` accepts. `None`/null → no new messages.
pub fn input_messages(input: Option<&Value>) -> Result<Vec<Value>, ApiError> {
    let Some(input) = input.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let Value::Object(input) = input else {
        return Err(ApiError::Unprocessable(format!(
            "'input' must be an object, got {}",
            type_name(input)
        )));
    };
    match input.get("messages") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, m)| {
                from_input(m)
                    .map_err(|e| ApiError::Unprocessable(format!("input.messages[{i}]: {e}")))
            })
            .collect(),
        Some(one) => {
            Ok(vec![from_input(one).map_err(|e| {
                ApiError::Unprocessable(format!("input.messages: {e}"))
            })?])
        }
    }
}

/// One input message in LangChain's serialized shape, with an id.
pub fn from_input(message: &Value) -> Result<Value, String> {
    let message = match message {
        Value::String(text) => return Ok(base("human", Value::String(text.clone()), None, None)),
        Value::Object(map) => map,
        other => {
            return Err(format!(
                "a message must be an object or a string, got {}",
                type_name(other)
            ))
        }
    };
    let kind = message
        .get("type")
        .or_else(|| message.get("role"))
        .and_then(Value::as_str)
        .ok_or("a message needs a 'role' or 'type'")?;
    let kind = match kind {
        "user" | "human" => "human",
        "assistant" | "ai" => "ai",
        "system" | "developer" => "system",
        "tool" => "tool",
        other => {
            return Err(format!(
                "unsupported message type '{other}'; use user, assistant, system or tool"
            ))
        }
    };
    let content = match message.get("content") {
        Some(c @ (Value::String(_) | Value::Array(_))) => c.clone(),
        Some(Value::Null) | None if kind == "ai" => Value::String(String::new()),
        _ => return Err("a message needs 'content' (a string or a list of content parts)".into()),
    };
    let mut out = base(
        kind,
        content,
        message.get("id").filter(|v| v.is_string()),
        message.get("name"),
    );
    for field in ["additional_kwargs", "response_metadata"] {
        if let Some(v @ Value::Object(_)) = message.get(field) {
            out[field] = v.clone();
        }
    }
    match kind {
        "ai" => {
            for field in ["tool_calls", "invalid_tool_calls"] {
                out[field] = message
                    .get(field)
                    .filter(|v| v.is_array())
                    .cloned()
                    .unwrap_or(json!([]));
            }
            out["usage_metadata"] = message
                .get("usage_metadata")
                .cloned()
                .unwrap_or(Value::Null);
        }
        "tool" => {
            out["tool_call_id"] = message
                .get("tool_call_id")
                .and_then(Value::as_str)
                .ok_or("a tool message needs 'tool_call_id'")?
                .into();
            out["status"] = "success".into();
        }
        _ => {}
    }
    Ok(out)
}

fn base(kind: &str, content: Value, id: Option<&Value>, name: Option<&Value>) -> Value {
    json!({
        "content": content,
        "additional_kwargs": {},
        "response_metadata": {},
        "type": kind,
        "name": name.filter(|v| v.is_string()).cloned().unwrap_or(Value::Null),
        "id": id.cloned().unwrap_or_else(|| uuid::Uuid::new_v4().to_string().into()),
    })
}

/// A stored message as an OpenAI chat message.
pub fn to_openai(message: &Value) -> Value {
    let role = match message.get("type").and_then(Value::as_str) {
        Some("ai") => "assistant",
        Some("system") => "system",
        Some("tool") => "tool",
        _ => "user",
    };
    let mut out = Map::new();
    out.insert("role".into(), role.into());
    out.insert(
        "content".into(),
        message.get("content").cloned().unwrap_or_default(),
    );
    if let Some(name @ Value::String(_)) = message.get("name") {
        out.insert("name".into(), name.clone());
    }
    if let Some(id @ Value::String(_)) = message.get("tool_call_id") {
        out.insert("tool_call_id".into(), id.clone());
    }
    Value::Object(out)
}

/// The id LangChain gives the model's message: `lc_run--{id of the model call}-0`
/// (the model call's own run id, not the graph run's).
pub fn ai_message_id(call_id: &str) -> String {
    format!("lc_run--{call_id}-0")
}

/// The final AI message of a run.
pub fn ai_message(completion: &Completion, call_id: &str, model: &str) -> Value {
    let model_name = if completion.model.is_empty() {
        model
    } else {
        &completion.model
    };
    let mut response_metadata = json!({
        "model_provider": "openai",
        "model_name": model_name,
        "system_fingerprint": completion.system_fingerprint,
        "id": completion.id,
        "service_tier": null,
        "finish_reason": completion.finish_reason,
        "logprobs": null,
    });
    if let Some(u) = completion.usage {
        response_metadata["token_usage"] = json!({
            "completion_tokens": u.completion_tokens,
            "prompt_tokens": u.prompt_tokens,
            "total_tokens": u.total_tokens,
            "completion_tokens_details": null,
            "prompt_tokens_details": null,
        });
    }
    json!({
        "content": completion.content,
        "additional_kwargs": {"refusal": null},
        "response_metadata": response_metadata,
        "type": "ai",
        "name": null,
        "id": ai_message_id(call_id),
        "tool_calls": [],
        "invalid_tool_calls": [],
        "usage_metadata": completion.usage.map(usage_metadata),
    })
}

/// One streamed piece of the AI message (`messages-tuple` mode), or the message
/// so far (`messages` mode, `content` accumulated).
pub fn ai_chunk(content: &str, delta: &Delta, call_id: &str, model: &str) -> Value {
    let mut response_metadata = json!({"model_provider": "openai"});
    if let Some(reason) = &delta.finish_reason {
        response_metadata["finish_reason"] = reason.as_str().into();
        response_metadata["model_name"] = model.into();
        response_metadata["service_tier"] = Value::Null;
    }
    json!({
        "content": content,
        "additional_kwargs": {},
        "response_metadata": response_metadata,
        "type": "AIMessageChunk",
        "name": null,
        "id": ai_message_id(call_id),
        "tool_calls": [],
        "invalid_tool_calls": [],
        "usage_metadata": delta.usage.map(usage_metadata),
        "tool_call_chunks": [],
        "chunk_position": null,
    })
}

fn usage_metadata(u: Usage) -> Value {
    json!({
        "input_tokens": u.prompt_tokens,
        "output_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
        "input_token_details": {},
        "output_token_details": {},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_forms() {
        // (input message, expected type or error fragment)
        let cases: &[(Value, Result<&str, &str>)] = &[
            (json!({"role": "user", "content": "hi"}), Ok("human")),
            (json!({"type": "human", "content": "hi"}), Ok("human")),
            (json!({"role": "assistant", "content": "yo"}), Ok("ai")),
            (
                json!({"role": "system", "content": [{"type": "text", "text": "s"}]}),
                Ok("system"),
            ),
            (json!("bare text"), Ok("human")),
            (
                json!({"role": "tool", "content": "r", "tool_call_id": "c1"}),
                Ok("tool"),
            ),
            (json!({"role": "tool", "content": "r"}), Err("tool_call_id")),
            (
                json!({"role": "wizard", "content": "x"}),
                Err("unsupported"),
            ),
            (json!({"content": "x"}), Err("'role'")),
            (json!({"role": "user"}), Err("content")),
            (json!(42), Err("number")),
        ];
        for (input, want) in cases {
            match (from_input(input), want) {
                (Ok(m), Ok(kind)) => {
                    assert_eq!(m["type"], *kind, "{input}");
                    assert!(m["id"].is_string());
                    assert_eq!(m["additional_kwargs"], json!({}));
                }
                (Err(e), Err(fragment)) => assert!(e.contains(fragment), "{input}: {e}"),
                (got, _) => panic!("{input}: unexpected {got:?}"),
            }
        }
    }

    #[test]
    fn openai_roles_round_trip() {
        for (kind, role) in [("human", "user"), ("ai", "assistant"), ("system", "system")] {
            let m = from_input(&json!({"type": kind, "content": "c"})).unwrap();
            assert_eq!(to_openai(&m), json!({"role": role, "content": "c"}));
        }
    }

    #[test]
    fn ai_message_carries_usage_and_model() {
        let completion = Completion {
            id: "chatcmpl-1".into(),
            content: "hello".into(),
            finish_reason: Some("stop".into()),
            usage: Some(Usage {
                prompt_tokens: 2,
                completion_tokens: 3,
                total_tokens: 5,
            }),
            ..Completion::default()
        };
        let m = ai_message(&completion, "run", "mock-gpt-4o");
        assert_eq!(m["response_metadata"]["model_name"], "mock-gpt-4o");
        assert_eq!(m["response_metadata"]["token_usage"]["total_tokens"], 5);
        assert_eq!(m["usage_metadata"]["output_tokens"], 3);
        assert_eq!(m["id"], "lc_run--run-0");
        assert_eq!(m["tool_calls"], json!([]));
    }
}

//! The agent flow of the seed's k6 script, as step definitions: create assistant → create
//! thread → `runs/wait` → `runs/stream` → state → stateless run → store put/get/search →
//! cleanup (store item, thread, assistant).
//!
//! Variables: constants `graph_id`, `model_name`, `message` (from [`FlowConfig`]),
//! per iteration `vu` and `iter`, captured `assistant_id`, `thread_id` and the marker
//! `store_item`. The store item lives at namespace `["barrage", "vu-{vu}"]`, key `item`
//! (one per VU, overwritten each iteration, so items left by a failed cleanup never pile
//! up), and its value names the iteration so `store_get` proves it read this put.
//!
//! The assistant's `config.configurable` carries `barrage_tag` (the plan's
//! `flow.assistant_tag`, by default `vu-{vu}-iter-{iter}`): servers that key assistants by
//! graph + config answer 409 to a second assistant with an equal config while the first
//! exists (docs/WIRE.md), so every VU's assistant, and a leftover of a failed cleanup,
//! must differ in it. The `name` alone does not count on such servers.
use barrage_core::FlowConfig;
use reqwest::Method;

use super::check::Check;
use super::step::{Capture, ResponseKind, StepDef};
use super::template::{VarKind, VarTable};

/// The per-operation Trend the three deletes share; their http samples keep their own
/// `operation` tags (`store_delete`, `delete_thread`, `delete_assistant`).
pub const CLEANUP: &str = "cleanup";

/// The constants the agent flow's templates use.
pub fn constants(flow: &FlowConfig, table: &mut VarTable) {
    table.add("graph_id", VarKind::Const(flow.graph_id.clone()));
    table.add("model_name", VarKind::Const(flow.model_name.clone()));
    table.add("message", VarKind::Const(flow.message.clone()));
}

fn step(operation: &str, method: Method, path: &str) -> StepDef {
    StepDef {
        operation: operation.into(),
        trend: operation.into(),
        method,
        path: path.into(),
        body: None,
        response: ResponseKind::Json,
        checks: vec![Check::Status2xx],
        captures: Vec::new(),
        cleanup: false,
        requires: Vec::new(),
    }
}

fn with_body(mut s: StepDef, body: &str) -> StepDef {
    s.body = Some(body.into());
    s
}

fn last_message_ai(pointer: &str, min_messages: usize) -> Check {
    Check::LastMessageAi {
        pointer: pointer.into(),
        min_messages,
    }
}

fn cleanup(mut s: StepDef, requires: &str) -> StepDef {
    s.trend = CLEANUP.into();
    s.response = ResponseKind::Ignore;
    s.cleanup = true;
    s.requires = vec![requires.into()];
    s
}

/// The flow's steps, in order.
pub fn steps(flow: &FlowConfig) -> Vec<StepDef> {
    let stream_mode = serde_json::to_string(&flow.stream_mode).unwrap_or_else(|_| "[]".into());
    let run_body = r#"{"assistant_id":"{assistant_id}","input":{"messages":[{"role":"user","content":"{message}"}]}}"#;
    let store_value = r#"{"note":"barrage","vu":{vu},"iteration":{iter}}"#;
    let namespace = r#"["barrage","vu-{vu}"]"#;

    // The tag's text goes in as a JSON string; its `{vu}` / `{iter}` stay template references.
    let tag = match flow.assistant_tag.as_str() {
        "" => String::new(),
        t => format!(r#","barrage_tag":{}"#, serde_json::Value::String(t.into())),
    };
    let mut create_assistant = with_body(
        step("create_assistant", Method::POST, "/assistants"),
        &format!(
            r#"{{"graph_id":"{{graph_id}}","config":{{"configurable":{{"model_name":"{{model_name}}"{tag}}}}},"name":"barrage-vu-{{vu}}","metadata":{{"source":"barrage"}}}}"#
        ),
    );
    create_assistant.checks.push(Check::NonEmptyString {
        pointer: "/assistant_id".into(),
    });
    create_assistant.captures.push(Capture::Json {
        var: "assistant_id".into(),
        pointer: "/assistant_id".into(),
    });

    let mut create_thread = with_body(
        step("create_thread", Method::POST, "/threads"),
        r#"{"metadata":{"source":"barrage"}}"#,
    );
    create_thread.checks.push(Check::NonEmptyString {
        pointer: "/thread_id".into(),
    });
    create_thread.captures.push(Capture::Json {
        var: "thread_id".into(),
        pointer: "/thread_id".into(),
    });

    let mut run_wait = with_body(
        step("run_wait", Method::POST, "/threads/{thread_id}/runs/wait"),
        run_body,
    );
    run_wait.checks.push(Check::NoRunError);
    run_wait.checks.push(last_message_ai("/messages", 2));

    let mut run_stream = with_body(
        step(
            "run_stream",
            Method::POST,
            "/threads/{thread_id}/runs/stream",
        ),
        &format!(
            r#"{{"assistant_id":"{{assistant_id}}","input":{{"messages":[{{"role":"user","content":"{{message}}"}}]}},"stream_mode":{stream_mode}}}"#
        ),
    );
    run_stream.response = ResponseKind::Sse;
    run_stream.checks.extend([
        Check::SseNoEvent {
            event: "error".into(),
        },
        Check::SseHasEvent {
            event: "metadata".into(),
        },
        Check::SseMinEvents { count: 2 },
    ]);

    let mut get_state = step("get_state", Method::GET, "/threads/{thread_id}/state");
    get_state
        .checks
        .push(last_message_ai("/values/messages", 4));

    let mut stateless_run = with_body(step("stateless_run", Method::POST, "/runs/wait"), run_body);
    stateless_run.checks.push(Check::NoRunError);
    stateless_run.checks.push(last_message_ai("/messages", 1));

    let mut store_put = with_body(
        step("store_put", Method::PUT, "/store/items"),
        &format!(r#"{{"namespace":{namespace},"key":"item","value":{store_value}}}"#),
    );
    store_put.response = ResponseKind::Ignore;
    store_put.captures.push(Capture::Created {
        var: "store_item".into(),
    });

    let mut store_get = step(
        "store_get",
        Method::GET,
        "/store/items?namespace=barrage.vu-{vu}&key=item",
    );
    store_get.checks.push(Check::JsonEquals {
        pointer: "/value".into(),
        expected: store_value.into(),
    });

    let mut store_search = with_body(
        step("store_search", Method::POST, "/store/items/search"),
        &format!(r#"{{"namespace_prefix":{namespace},"limit":10,"offset":0}}"#),
    );
    store_search.checks.push(Check::ArrayHas {
        pointer: "/items".into(),
        field: "key".into(),
        value: "item".into(),
    });

    let store_delete = cleanup(
        with_body(
            step("store_delete", Method::DELETE, "/store/items"),
            &format!(r#"{{"namespace":{namespace},"key":"item"}}"#),
        ),
        "store_item",
    );
    let delete_thread = cleanup(
        step("delete_thread", Method::DELETE, "/threads/{thread_id}"),
        "thread_id",
    );
    let delete_assistant = cleanup(
        step(
            "delete_assistant",
            Method::DELETE,
            "/assistants/{assistant_id}",
        ),
        "assistant_id",
    );

    vec![
        create_assistant,
        create_thread,
        run_wait,
        run_stream,
        get_state,
        stateless_run,
        store_put,
        store_get,
        store_search,
        store_delete,
        delete_thread,
        delete_assistant,
    ]
}

#[cfg(test)]
mod tests {
    use super::super::step::{compile, Body};
    use super::*;

    /// The assistant body of VU `vu`, iteration `iter`, as JSON.
    fn assistant_body(flow: &FlowConfig, vu: &str, iter: &str) -> serde_json::Value {
        let mut table = VarTable::new();
        constants(flow, &mut table);
        let steps = compile(steps(flow), &mut table).unwrap();
        let mut vars = table.values();
        vars.set(table.index("vu").unwrap(), vu);
        vars.set(table.index("iter").unwrap(), iter);
        let Body::Template(t) = &steps[0].body else {
            panic!("create_assistant has a templated body")
        };
        let mut buf = Vec::new();
        t.render_json(&vars, &mut buf);
        serde_json::from_slice(&buf).unwrap()
    }

    #[test]
    fn assistant_configs_differ_per_vu_and_iteration_and_the_tag_can_be_dropped() {
        let flow = FlowConfig::default();
        let config = |vu, iter| assistant_body(&flow, vu, iter)["config"].clone();
        assert_ne!(config("1", "0"), config("2", "0"));
        assert_ne!(config("1", "0"), config("1", "1"));
        let custom = FlowConfig {
            assistant_tag: "run-a.{vu}:{iter}".into(),
            ..FlowConfig::default()
        };
        assert_eq!(
            assistant_body(&custom, "4", "2")["config"]["configurable"]["barrage_tag"],
            "run-a.4:2"
        );
        let untagged = FlowConfig {
            assistant_tag: String::new(),
            ..FlowConfig::default()
        };
        assert_eq!(
            assistant_body(&untagged, "4", "2")["config"],
            serde_json::json!({"configurable": {"model_name": "openai:mock-gpt-4o"}})
        );
    }

    #[test]
    fn every_body_renders_to_json_and_every_path_to_a_url() {
        let flow = FlowConfig {
            message: "quote \" backslash \\ newline \n braces {vu} {\"x\"}".into(),
            stream_mode: vec!["values".into(), "updates".into()],
            ..Default::default()
        };
        let mut table = VarTable::new();
        constants(&flow, &mut table);
        let steps = compile(steps(&flow), &mut table).unwrap();
        assert_eq!(steps.len(), 12);
        assert_eq!(steps.iter().filter(|s| s.cleanup).count(), 3);
        let mut vars = table.values();
        for (name, value) in [
            ("vu", "3"),
            ("iter", "7"),
            ("assistant_id", "a-1"),
            ("thread_id", "t-1"),
        ] {
            vars.set(table.index(name).unwrap(), value);
        }
        for s in &steps {
            let mut url = String::from("http://127.0.0.1:9");
            s.path.render_path(&vars, &mut url);
            reqwest::Url::parse(&url).unwrap();
            let mut buf = Vec::new();
            let body: Option<serde_json::Value> = match &s.body {
                Body::None => None,
                Body::Fixed(b) => Some(serde_json::from_slice(b).unwrap()),
                Body::Template(t) => {
                    t.render_json(&vars, &mut buf);
                    Some(serde_json::from_slice(&buf).unwrap_or_else(|e| {
                        panic!("{}: {e}: {}", s.operation, String::from_utf8_lossy(&buf))
                    }))
                }
            };
            match s.operation.as_str() {
                "create_assistant" => {
                    let b = body.unwrap();
                    assert_eq!(b["graph_id"], "agent");
                    assert_eq!(
                        b["config"]["configurable"],
                        serde_json::json!({"model_name": "openai:mock-gpt-4o", "barrage_tag": "vu-3-iter-7"})
                    );
                }
                "run_stream" => {
                    let b = body.unwrap();
                    assert_eq!(b["assistant_id"], "a-1");
                    assert_eq!(b["input"]["messages"][0]["content"], flow.message.as_str());
                    assert_eq!(b["stream_mode"], serde_json::json!(["values", "updates"]));
                }
                "store_put" => {
                    let b = body.unwrap();
                    assert_eq!(b["namespace"], serde_json::json!(["barrage", "vu-3"]));
                    assert_eq!(b["value"]["iteration"], 7);
                }
                "store_get" => assert_eq!(
                    url,
                    "http://127.0.0.1:9/store/items?namespace=barrage.vu-3&key=item"
                ),
                "delete_thread" => assert_eq!(url, "http://127.0.0.1:9/threads/t-1"),
                _ => {}
            }
        }
    }
}

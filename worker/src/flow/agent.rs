//! The plan's variables every flow's templates may use, and the tests of the built-in
//! agent flow (`core/src/plan/flows/agent.toml`: the seed's k6 script as flow data).
//!
//! Constants `graph_id`, `model_name`, `message` (from [`FlowConfig`]); splices
//! `stream_mode` (the JSON array), `history` (`flow.history_bytes` of earlier messages,
//! [`super::history`]) and `assistant_tag_field`: the assistant's
//! `config.configurable.barrage_tag` field (the plan's `flow.assistant_tag`, by default
//! `vu-{vu}-iter-{iter}`, its references kept), or nothing when the tag is `""`. Servers
//! that key assistants by graph + config answer 409 to a second assistant with an equal
//! config while the first exists (docs/WIRE.md), so every VU's assistant, and a leftover
//! of a failed cleanup, must differ in it. The `name` alone does not count on such servers.
use barrage_core::FlowConfig;

use super::template::{VarKind, VarTable};

/// The per-operation Trend the agent flow's three deletes share; their http samples keep
/// their own `operation` tags (`store_delete`, `delete_thread`, `delete_assistant`).
pub const CLEANUP: &str = "cleanup";

/// The plan's variables.
pub fn constants(flow: &FlowConfig, table: &mut VarTable) {
    table.add("graph_id", VarKind::Const(flow.graph_id.clone()));
    table.add("model_name", VarKind::Const(flow.model_name.clone()));
    table.add("message", VarKind::Const(flow.message.clone()));
    let modes = serde_json::to_string(&flow.stream_mode).unwrap_or_else(|_| "[]".into());
    table.add("stream_mode", VarKind::Splice(modes));
    // The tag's text goes in as a JSON string; its `{vu}` / `{iter}` stay references.
    let tag = match flow.assistant_tag.as_str() {
        "" => String::new(),
        t => format!(r#","barrage_tag":{}"#, serde_json::Value::String(t.into())),
    };
    table.add("assistant_tag_field", VarKind::Splice(tag));
    let history = usize::try_from(flow.history_bytes).unwrap_or(usize::MAX);
    table.add(
        "history",
        VarKind::Splice(super::history::generate(history)),
    );
}

#[cfg(test)]
mod tests {
    use super::super::step::{compile, Body, Step};
    use super::*;

    fn steps(flow: &FlowConfig, table: &mut VarTable) -> Vec<Step> {
        constants(flow, table);
        let def = barrage_core::plan::builtin_flow("agent").unwrap();
        compile(&def, table).unwrap().steps
    }

    /// The assistant body of VU `vu`, iteration `iter`, as JSON.
    fn assistant_body(flow: &FlowConfig, vu: &str, iter: &str) -> serde_json::Value {
        let mut table = VarTable::new();
        let steps = steps(flow, &mut table);
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
    fn a_history_goes_before_each_runs_user_message_and_is_sent_in_pieces() {
        let flow = FlowConfig {
            history_bytes: 102_400,
            ..Default::default()
        };
        let mut table = VarTable::new();
        let steps = steps(&flow, &mut table);
        let mut vars = table.values();
        for (name, value) in [("vu", "3"), ("iter", "7"), ("assistant_id", "a-\"1")] {
            vars.set(table.index(name).unwrap(), value);
        }
        let history_len = super::super::history::generate(102_400).len();
        let mut runs = 0;
        for s in &steps {
            let Body::Pieces(pieces) = &s.body else {
                continue;
            };
            runs += 1;
            let mut buf = Vec::new();
            let sent = super::super::template::render_pieces(pieces, &vars, &mut buf).concat();
            assert!(sent.len() > history_len, "{}", s.operation);
            let b: serde_json::Value = serde_json::from_slice(&sent).unwrap();
            assert_eq!(b["assistant_id"], "a-\"1");
            let messages = b["input"]["messages"].as_array().unwrap();
            assert_eq!(messages[0]["role"], "system");
            assert_eq!(messages.last().unwrap()["content"], flow.message.as_str());
            assert!(messages.len() > 40, "{}", messages.len());
        }
        assert_eq!(
            runs, 3,
            "run_wait, run_stream and stateless_run carry the history"
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
        let steps = steps(&flow, &mut table);
        assert_eq!(steps.len(), 12);
        assert_eq!(
            steps.iter().filter(|s| s.trend == CLEANUP).count(),
            3,
            "the deletes share the cleanup Trend"
        );
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
                Body::Pieces(_) => panic!("{}: no history, no pieces", s.operation),
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

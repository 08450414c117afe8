//! `flow`: barrage's 8-step agent flow with every check `check_flow.sh` makes, plus
//! the py shapes WIRE.md documents; and the `/stats` figures it must leave behind.

use serde_json::{json, Value};

use super::{expect, user, Http, StubLlm, ANSWER};

/// What one pass of [`flow`] did, for comparing with `/stats`.
#[derive(Default, Clone, Copy)]
pub struct FlowCounts {
    pub llm_calls: u64,
}

/// barrage's 8-step flow with every check that `check_flow.sh` makes, plus the
/// shapes WIRE.md documents for py.
pub async fn flow(http: &Http, server_base: &str, tag: &str) -> FlowCounts {
    let url = |p: &str| format!("{server_base}{p}");
    // 1. assistant
    let a = http
        .post(&url("/assistants"), &json!({"graph_id": "agent", "config": {"configurable": {"model_name": "openai:stub-model"}}, "name": "bench", "metadata": {"source": "barrage"}}))
        .await;
    expect(&a, 200, "create_assistant");
    assert!(a.content_type().starts_with("application/json"));
    let a = a.json();
    let assistant_id = a["assistant_id"].as_str().expect("assistant_id").to_owned();
    assert_eq!(a["context"], json!({"model_name": "openai:stub-model"}));
    assert_eq!(
        (
            a["version"].clone(),
            a["graph_id"].clone(),
            a["name"].clone()
        ),
        (json!(1), json!("agent"), json!("bench"))
    );
    // 2. thread
    let t = http
        .post(
            &url("/threads"),
            &json!({"metadata": {"source": "barrage"}}),
        )
        .await;
    expect(&t, 200, "create_thread");
    let t = t.json();
    let thread_id = t["thread_id"].as_str().expect("thread_id").to_owned();
    assert_eq!(
        uuid::Uuid::parse_str(&thread_id).unwrap().get_version_num(),
        7
    );
    assert_eq!(
        (
            t["status"].clone(),
            t["values"].clone(),
            t["config"].clone()
        ),
        (json!("idle"), Value::Null, json!({}))
    );
    // 3. run + wait
    let w = http
        .post(
            &url(&format!("/threads/{thread_id}/runs/wait")),
            &json!({"assistant_id": assistant_id, "input": user(&format!("hello {tag}"))}),
        )
        .await;
    expect(&w, 200, "run_wait");
    assert!(w.content_type().starts_with("application/json"));
    let w = w.json();
    let messages = w["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("run_wait answer: {w}"));
    assert_eq!(messages.len(), 2, "{w}");
    let (human, ai) = (&messages[0], &messages[1]);
    assert_eq!(
        (human["type"].clone(), human["content"].clone()),
        (json!("human"), json!(format!("hello {tag}")))
    );
    assert_eq!(
        (human["additional_kwargs"].clone(), human["name"].clone()),
        (json!({}), Value::Null)
    );
    assert!(human["id"].is_string());
    assert_eq!(
        (ai["type"].clone(), ai["content"].clone()),
        (json!("ai"), json!(ANSWER))
    );
    assert_eq!(ai["response_metadata"]["model_name"], "stub-model");
    assert_eq!(ai["response_metadata"]["finish_reason"], "stop");
    assert_eq!(ai["response_metadata"]["token_usage"]["total_tokens"], 10);
    assert_eq!(
        (ai["tool_calls"].clone(), ai["invalid_tool_calls"].clone()),
        (json!([]), json!([]))
    );
    assert_eq!(ai["usage_metadata"]["output_tokens"], 7);
    // 4. run + stream
    let s = http
        .post(&url(&format!("/threads/{thread_id}/runs/stream")), &json!({"assistant_id": assistant_id, "input": user("stream please"), "stream_mode": ["values"]}))
        .await;
    expect(&s, 200, "run_stream");
    assert_eq!(s.content_type(), "text/event-stream; charset=utf-8");
    assert_eq!(s.headers["cache-control"], "no-store");
    assert_eq!(
        s.event_names(),
        ["metadata", "values", "values"],
        "{}",
        s.text()
    );
    let events = s.events();
    assert!(events[0].1["run_id"].is_string());
    assert_eq!(events[0].1["attempt"], 1);
    assert_eq!(
        events[1].1["messages"].as_array().unwrap().len(),
        3,
        "input state"
    );
    assert_eq!(
        events[2].1["messages"].as_array().unwrap().len(),
        4,
        "final state"
    );
    // 5. state
    let st = http.get(&url(&format!("/threads/{thread_id}/state"))).await;
    expect(&st, 200, "get_state");
    let st = st.json();
    let values = st["values"]["messages"].as_array().unwrap();
    assert_eq!(values.len(), 4);
    let kinds: Vec<&str> = values.iter().map(|m| m["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["human", "ai", "human", "ai"]);
    assert_eq!(
        (
            st["next"].clone(),
            st["tasks"].clone(),
            st["interrupts"].clone()
        ),
        (json!([]), json!([]), json!([]))
    );
    assert_eq!(st["checkpoint"]["thread_id"], thread_id.as_str());
    assert_eq!(st["checkpoint"]["checkpoint_ns"], "");
    assert_eq!(st["checkpoint"]["checkpoint_id"], st["checkpoint_id"]);
    assert_eq!(
        st["parent_checkpoint"]["checkpoint_id"],
        st["parent_checkpoint_id"]
    );
    assert!(st["parent_checkpoint_id"].is_string());
    assert_eq!(st["metadata"]["assistant_id"], assistant_id.as_str());
    // 6. stateless
    let sl = http
        .post(
            &url("/runs/wait"),
            &json!({"assistant_id": assistant_id, "input": user("stateless")}),
        )
        .await;
    expect(&sl, 200, "stateless_run");
    let sl = sl.json();
    let kinds: Vec<&str> = sl["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["human", "ai"]);
    // 7. store
    let ns = json!(["barrage", tag]);
    let put = http
        .put(
            &url("/store/items"),
            &json!({"namespace": ns, "key": "item-1", "value": {"note": "hello", "n": 1}}),
        )
        .await;
    expect(&put, 204, "store_put");
    assert!(put.body.is_empty());
    let got = http
        .get(&url(&format!(
            "/store/items?namespace=barrage.{tag}&key=item-1"
        )))
        .await;
    expect(&got, 200, "store_get");
    let got = got.json();
    assert_eq!(
        (
            got["key"].clone(),
            got["value"].clone(),
            got["namespace"].clone()
        ),
        (
            json!("item-1"),
            json!({"note": "hello", "n": 1}),
            ns.clone()
        )
    );
    assert!(got["created_at"].is_string() && got["updated_at"].is_string());
    let found = http
        .post(
            &url("/store/items/search"),
            &json!({"namespace_prefix": ["barrage", tag], "limit": 10, "offset": 0}),
        )
        .await;
    expect(&found, 200, "store_search");
    let found = found.json();
    assert_eq!(found["items"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(
        (
            found["items"][0]["key"].clone(),
            found["items"][0]["score"].clone()
        ),
        (json!("item-1"), Value::Null)
    );
    let filtered = http
        .post(
            &url("/store/items/search"),
            &json!({"namespace_prefix": ["barrage", tag], "filter": {"n": 2}}),
        )
        .await;
    assert_eq!(filtered.json()["items"], json!([]));
    // 8. cleanup
    let body = json!({"namespace": ns, "key": "item-1"});
    expect(
        &http.delete(&url("/store/items"), Some(&body)).await,
        204,
        "store_delete",
    );
    expect(
        &http.delete(&url("/store/items"), Some(&body)).await,
        204,
        "store_delete of an absent item",
    );
    let gone = http
        .get(&url(&format!(
            "/store/items?namespace=barrage.{tag}&key=item-1"
        )))
        .await;
    assert_eq!((gone.status, gone.text()), (200, "null".to_owned()));
    expect(
        &http
            .delete(&url(&format!("/threads/{thread_id}")), None)
            .await,
        204,
        "delete_thread",
    );
    let again = http
        .delete(&url(&format!("/threads/{thread_id}")), None)
        .await;
    expect(&again, 404, "delete_thread again");
    assert!(again.json()["detail"]
        .as_str()
        .unwrap()
        .contains(&thread_id));
    expect(
        &http.get(&url(&format!("/threads/{thread_id}/state"))).await,
        404,
        "state of a deleted thread",
    );
    expect(
        &http
            .delete(&url(&format!("/assistants/{assistant_id}")), None)
            .await,
        204,
        "delete_assistant",
    );
    let again = http
        .delete(&url(&format!("/assistants/{assistant_id}")), None)
        .await;
    expect(&again, 404, "delete_assistant again");
    assert!(again.json()["detail"].is_string());
    FlowCounts { llm_calls: 3 }
}

/// Requests one [`flow`] makes, by the server's operation names.
pub const FLOW_REQUESTS: &[(&str, u64)] = &[
    ("create_assistant", 1),
    ("create_thread", 1),
    ("run_wait", 1),
    ("run_stream", 1),
    ("get_state", 2),
    ("stateless_run", 1),
    ("store_put", 1),
    ("store_get", 2),
    ("store_search", 2),
    ("store_delete", 2),
    ("delete_thread", 2),
    ("delete_assistant", 2),
];

pub fn assert_stats_after_flows(stats: &Value, flows: u64, llm: &StubLlm) {
    for (op, n) in FLOW_REQUESTS {
        assert_eq!(
            stats["requests"][op],
            json!(n * flows),
            "requests.{op}: {stats}"
        );
    }
    let total: u64 = FLOW_REQUESTS.iter().map(|(_, n)| n * flows).sum();
    assert_eq!(stats["requests_total"], json!(total), "{stats}");
    assert_eq!(
        stats["runs"],
        json!({"started": 3 * flows, "succeeded": 3 * flows, "failed": 0, "rejected": 0})
    );
    assert_eq!(stats["llm"]["calls"], json!(llm.calls()), "{stats}");
    assert_eq!(stats["llm"]["calls"], json!(3 * flows));
    assert_eq!(stats["llm"]["errors"], 0);
    assert_eq!(stats["llm"]["completion_tokens"], json!(7 * 3 * flows));
    assert_eq!(
        (
            stats["assistants"].clone(),
            stats["threads"].clone(),
            stats["store_items"].clone()
        ),
        (json!(0), json!(0), json!(0))
    );
}

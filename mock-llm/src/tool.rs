//! Arguments of a mock tool call, filled in from the tool's JSON Schema so that agent
//! frameworks that validate tool input (LangChain's `@tool`, pydantic models) accept them.
//!
//! Every `required` property gets an example value of its type: the first `enum` value if any,
//! else `"mock"` for strings, `1` for integers and numbers, `true` for booleans, `[]` for
//! arrays, `{}` for objects, `null` otherwise. Optional properties are left out.

use serde_json::{Map, Value};

/// The arguments string (a JSON object) for a function with these `parameters`.
pub fn arguments_for(parameters: Option<&Value>) -> String {
    let mut args = Map::new();
    if let Some(schema) = parameters {
        let props = schema.get("properties").and_then(Value::as_object);
        let required = schema.get("required").and_then(Value::as_array);
        if let (Some(props), Some(required)) = (props, required) {
            for name in required.iter().filter_map(Value::as_str) {
                let value = props.get(name).map_or(Value::Null, example_value);
                args.insert(name.to_owned(), value);
            }
        }
    }
    Value::Object(args).to_string()
}

fn example_value(schema: &Value) -> Value {
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    let ty = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        // `"type": ["string", "null"]`: the first non-null type.
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ => "",
    };
    match ty {
        "string" => Value::from("mock"),
        "integer" | "number" => Value::from(1),
        "boolean" => Value::from(true),
        "array" => Value::Array(Vec::new()),
        "object" => Value::Object(Map::new()),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arguments_cases() {
        let cases: Vec<(Option<Value>, &str)> = vec![
            (None, "{}"),
            (Some(json!({})), "{}"),
            (
                Some(json!({"type":"object","properties":{"q":{"type":"string"}}})),
                "{}",
            ),
            (
                Some(
                    json!({"type":"object","properties":{"q":{"type":"string"},"n":{"type":"integer"}},"required":["q"]}),
                ),
                r#"{"q":"mock"}"#,
            ),
            (
                Some(
                    json!({"properties":{"u":{"type":"string","enum":["c","f"]},"b":{"type":["boolean","null"]},"l":{"type":"array"},"o":{"type":"object"},"x":{}},"required":["u","b","l","o","x","missing"]}),
                ),
                r#"{"b":true,"l":[],"missing":null,"o":{},"u":"c","x":null}"#,
            ),
        ];
        for (schema, want) in cases {
            let got = arguments_for(schema.as_ref());
            let got: Value = serde_json::from_str(&got).unwrap();
            let want: Value = serde_json::from_str(want).unwrap();
            assert_eq!(got, want, "{schema:?}");
        }
    }
}

//! The parts of an OpenAI chat-completions request the mock reads.
//!
//! Only what shapes the answer is kept: the model, whether to stream (and with usage), the
//! offered tools, and per message its role and word count. Message contents are counted
//! while parsing (strings, and `text` fields of content parts) and never copied; every
//! other field is skipped.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::tokens::count_words;

/// A chat-completions request body.
#[derive(Debug, Deserialize)]
pub struct ChatRequest<'a> {
    /// Model asked for; empty or absent means the configured one.
    #[serde(borrow, default, deserialize_with = "opt_cow_str")]
    pub model: Option<Cow<'a, str>>,
    /// The conversation; must be present and non-empty.
    #[serde(default)]
    pub messages: Option<Vec<Message>>,
    /// `true` asks for an SSE stream.
    #[serde(default)]
    pub stream: Option<bool>,
    /// `include_usage` asks for a usage chunk before `[DONE]`.
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// Tools the model may call; the first one is the one a tool-call answer names.
    #[serde(default)]
    pub tools: Option<Vec<Tool>>,
    /// `"none"` forbids tool calls; anything else leaves the choice to the configured rate.
    #[serde(default)]
    pub tool_choice: Option<serde_json::Value>,
    /// OpenAI's end-user id: the call log's key when no `x-barrage-key` header is sent.
    #[serde(borrow, default, deserialize_with = "opt_cow_str")]
    pub user: Option<Cow<'a, str>>,
}

/// One message, reduced to what the mock needs.
#[derive(Debug, Deserialize)]
pub struct Message {
    /// Whether the role is `tool` (a tool result): the model then answers in text.
    #[serde(rename = "role", default, deserialize_with = "is_tool_role")]
    pub is_tool: bool,
    /// Words in the content (a string, or the `text` of content parts).
    #[serde(rename = "content", default, deserialize_with = "content_words")]
    pub words: u64,
}

/// `stream_options` of a request.
#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    /// Send a usage chunk (with `choices: []`) before `[DONE]`.
    #[serde(default)]
    pub include_usage: Option<bool>,
}

/// One offered tool.
#[derive(Debug, Deserialize)]
pub struct Tool {
    /// The function definition (`type: "function"` tools).
    #[serde(default)]
    pub function: Option<FunctionDef>,
}

/// A tool's function definition.
#[derive(Debug, Deserialize)]
pub struct FunctionDef {
    /// Function name, echoed in the tool call.
    pub name: String,
    /// JSON Schema of the arguments, used to fill in required arguments.
    #[serde(default)]
    pub parameters: Option<serde_json::Value>,
}

/// Why a request body was refused; the text goes into the 400 answer.
#[derive(Debug, PartialEq, Eq)]
pub struct Invalid {
    /// What was wrong and how to fix it.
    pub message: String,
    /// The offending field, if one is known.
    pub param: Option<&'static str>,
}

impl<'a> ChatRequest<'a> {
    /// Parses and validates a request body.
    pub fn parse(body: &'a [u8]) -> Result<Self, Invalid> {
        // serde would also read a struct from an array; a request is an object.
        if body
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|&b| b != b'{')
        {
            return Err(Invalid {
                message: "the request body must be a JSON object with a 'messages' array".into(),
                param: None,
            });
        }
        let req: ChatRequest<'a> = serde_json::from_slice(body).map_err(|e| Invalid {
            message: format!("could not parse the request body as a chat completion request: {e}"),
            param: None,
        })?;
        match &req.messages {
            Some(m) if !m.is_empty() => Ok(req),
            _ => Err(Invalid {
                message: "'messages' is required and must be a non-empty array of messages".into(),
                param: Some("messages"),
            }),
        }
    }

    /// Whether the answer is an SSE stream.
    pub fn streaming(&self) -> bool {
        self.stream == Some(true)
    }

    /// Whether a stream ends with a usage chunk.
    pub fn include_usage(&self) -> bool {
        self.stream_options.as_ref().and_then(|o| o.include_usage) == Some(true)
    }

    /// Messages in the request.
    pub fn message_count(&self) -> u64 {
        self.messages.as_ref().map_or(0, |m| m.len() as u64)
    }

    /// Words in all message contents.
    pub fn prompt_tokens(&self) -> u64 {
        self.messages.iter().flatten().map(|m| m.words).sum()
    }

    /// The function a tool-call answer may name: the first offered one, unless tool calls
    /// are switched off (`tool_choice: "none"`) or the last message is a tool result.
    pub fn callable_tool(&self) -> Option<&FunctionDef> {
        if matches!(&self.tool_choice, Some(serde_json::Value::String(s)) if s == "none") {
            return None;
        }
        if self
            .messages
            .as_ref()
            .and_then(|m| m.last())
            .is_some_and(|m| m.is_tool)
        {
            return None;
        }
        self.tools
            .iter()
            .flatten()
            .find_map(|t| t.function.as_ref())
    }
}

/// `Option<Cow<str>>` that borrows from the body when the string has no escapes.
fn opt_cow_str<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string or null")
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Borrowed(v)))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_owned())))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v)))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(V)
}

/// `true` when the role string is `tool` (or the legacy `function`).
fn is_tool_role<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a role string")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
            Ok(v == "tool" || v == "function")
        }
        fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
            Ok(false)
        }
    }
    d.deserialize_any(V)
}

/// Word count of a message content of any shape, without copying it.
fn content_words<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_any(Words)
}

/// Counts words in strings; in arrays, the sum over elements; in objects, the words under
/// `text` keys (content parts). Everything else counts 0.
struct Words;

impl<'de> DeserializeSeed<'de> for Words {
    type Value = u64;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_any(Words)
    }
}

impl<'de> Visitor<'de> for Words {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("message content")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        Ok(count_words(v))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<u64, E> {
        Ok(0)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<u64, E> {
        Ok(0)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<u64, E> {
        Ok(0)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<u64, E> {
        Ok(0)
    }
    fn visit_unit<E: de::Error>(self) -> Result<u64, E> {
        Ok(0)
    }
    fn visit_none<E: de::Error>(self) -> Result<u64, E> {
        Ok(0)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u64, A::Error> {
        let mut n = 0;
        while let Some(k) = seq.next_element_seed(Words)? {
            n += k;
        }
        Ok(n)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<u64, A::Error> {
        let mut n = 0;
        while let Some(is_text) = map.next_key_seed(IsTextKey)? {
            if is_text {
                n += map.next_value_seed(Words)?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(n)
    }
}

/// Tells whether an object key is `text`, without allocating it.
struct IsTextKey;

impl<'de> DeserializeSeed<'de> for IsTextKey {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for IsTextKey {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(v == "text")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_cases() {
        // (body, prompt tokens, streaming, include_usage, model)
        let ok: &[(&str, u64, bool, bool, Option<&str>)] = &[
            (
                r#"{"messages":[{"role":"user","content":"hi there"}]}"#,
                2,
                false,
                false,
                None,
            ),
            (
                r#"{"model":"m1","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"system","content":"a b c"},{"role":"user","content":"d"}]}"#,
                4,
                true,
                true,
                Some("m1"),
            ),
            (
                r#"{"model":"m\u00e9","messages":[{"role":"user","content":[{"type":"text","text":"one two"},{"type":"image_url","image_url":{"url":"x y"}}]}]}"#,
                2,
                false,
                false,
                Some("mé"),
            ),
            (
                r#"{"model":null,"stream":null,"stream_options":null,"messages":[{"role":"assistant","content":null,"tool_calls":[]},{"role":"tool","content":"r","tool_call_id":"c"}]}"#,
                1,
                false,
                false,
                None,
            ),
        ];
        for (body, tokens, streaming, usage, model) in ok {
            let req =
                ChatRequest::parse(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e:?}"));
            assert_eq!(req.prompt_tokens(), *tokens, "{body}");
            assert_eq!(req.streaming(), *streaming, "{body}");
            assert_eq!(req.include_usage(), *usage, "{body}");
            assert_eq!(req.model.as_deref(), *model, "{body}");
        }
    }

    #[test]
    fn invalid_bodies() {
        // (body, param)
        let bad: &[(&str, Option<&str>)] = &[
            ("", None),
            ("{", None),
            ("[]", None),
            ("{}", Some("messages")),
            (r#"{"messages":[]}"#, Some("messages")),
            (r#"{"messages":null}"#, Some("messages")),
            (r#"{"messages":"hi"}"#, None),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"stream":"yes"}"#,
                None,
            ),
        ];
        for (body, param) in bad {
            let err = ChatRequest::parse(body.as_bytes()).expect_err(body);
            assert_eq!(err.param, *param, "{body}: {}", err.message);
        }
    }

    #[test]
    fn callable_tool_cases() {
        let tools =
            r#""tools":[{"type":"function","function":{"name":"get_weather","parameters":{}}}]"#;
        // (body, callable tool)
        let cases: Vec<(String, Option<&str>)> = vec![
            (
                format!(r#"{{"messages":[{{"role":"user","content":"x"}}],{tools}}}"#),
                Some("get_weather"),
            ),
            (
                format!(
                    r#"{{"messages":[{{"role":"user","content":"x"}}],{tools},"tool_choice":"none"}}"#
                ),
                None,
            ),
            (
                format!(
                    r#"{{"messages":[{{"role":"user","content":"x"}}],{tools},"tool_choice":"auto"}}"#
                ),
                Some("get_weather"),
            ),
            (
                format!(
                    r#"{{"messages":[{{"role":"tool","content":"x","tool_call_id":"1"}}],{tools}}}"#
                ),
                None,
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"tools":[]}"#.to_owned(),
                None,
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}]}"#.to_owned(),
                None,
            ),
        ];
        for (body, want) in &cases {
            let req = ChatRequest::parse(body.as_bytes()).unwrap();
            assert_eq!(
                req.callable_tool().map(|f| f.name.as_str()),
                *want,
                "{body}"
            );
        }
    }
}

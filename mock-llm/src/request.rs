//! The parts of an OpenAI chat-completions request the mock reads.
//!
//! Only what shapes the answer is kept: the model, whether to stream (and with usage), the
//! offered tools, and per message its role and word count. Message contents are counted
//! while parsing (strings, and `text` fields of content parts) and never copied; every
//! other field is skipped.
//!
//! A body is read twice over only when it is refused. The first reading ([`Fast`]) takes a
//! message's content as a byte string: serde_json then finds the string's end with a vector
//! search, not its byte-by-byte check for control characters, and leaves the UTF-8 check
//! to the word count, which looks at every byte anyway. That is exactly as strict as
//! reading it as text (the [`Strict`] reading) when the body holds no control byte at all
//! (checked first: the only way one gets into a content byte string is an escape, which is
//! allowed), and when the bytes are UTF-8 (a lone surrogate escape, which text refuses,
//! leaves bytes that are not). Anything the first reading refuses (a pretty-printed body
//! with raw newlines, an unusual content, or a bad body) is read again the strict way,
//! which gives the answer, and for a bad body serde_json's own error, as before.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::tokens::{count_words, count_words_utf8};

/// A chat-completions request body, its message contents read as `R` says.
#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "R: Reading"))]
pub struct ChatRequest<'a, R = Strict> {
    /// Model asked for; empty or absent means the configured one.
    #[serde(borrow, default, deserialize_with = "opt_cow_str")]
    pub model: Option<Cow<'a, str>>,
    /// The conversation; must be present and non-empty.
    #[serde(default)]
    pub messages: Option<Vec<Message<R>>>,
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
#[serde(bound(deserialize = "R: Reading"))]
pub struct Message<R = Strict> {
    /// Whether the role is `tool` (a tool result): the model then answers in text.
    #[serde(rename = "role", default, deserialize_with = "is_tool_role")]
    pub is_tool: bool,
    /// Words in the content (a string, or the `text` of content parts).
    #[serde(rename = "content", default, deserialize_with = "R::words")]
    pub words: u64,
    /// How the content was read.
    #[serde(skip)]
    reading: PhantomData<R>,
}

/// How message contents are read and counted.
pub trait Reading {
    /// Words in a message content of any shape, without copying it.
    fn words<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error>;
}

/// Contents read as text, as serde_json checks text (the reading every body can take).
#[derive(Debug)]
pub struct Strict;

/// Contents read as byte strings (see the module's docs): only for bodies without control
/// bytes; refuses what is not UTF-8, and contents that are neither null, a string nor an
/// array.
#[derive(Debug)]
pub struct Fast;

impl Reading for Strict {
    fn words<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        d.deserialize_any(Words::<false>)
    }
}

impl Reading for Fast {
    fn words<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        d.deserialize_option(Words::<true>)
    }
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
        let fast = (!has_control_bytes(body))
            .then(|| serde_json::from_slice::<ChatRequest<'a, Fast>>(body).ok())
            .flatten();
        let req = match fast {
            Some(req) => req.into_strict(),
            None => serde_json::from_slice::<ChatRequest<'a>>(body).map_err(|e| Invalid {
                message: format!(
                    "could not parse the request body as a chat completion request: {e}"
                ),
                param: None,
            })?,
        };
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

impl<'a> ChatRequest<'a, Fast> {
    /// The same request, as the strict reading gives it.
    fn into_strict(self) -> ChatRequest<'a> {
        let messages = self.messages.map(|m| {
            m.into_iter()
                .map(|m| Message {
                    is_tool: m.is_tool,
                    words: m.words,
                    reading: PhantomData,
                })
                .collect()
        });
        ChatRequest {
            model: self.model,
            messages,
            stream: self.stream,
            stream_options: self.stream_options,
            tools: self.tools,
            tool_choice: self.tool_choice,
            user: self.user,
        }
    }
}

/// Whether `body` holds a byte below 0x20 (JSON allows them only as whitespace between
/// tokens, and only tab, newline and carriage return). In blocks, so it runs on vectors.
fn has_control_bytes(body: &[u8]) -> bool {
    body.chunks(4096)
        .any(|block| block.iter().fold(false, |seen, &b| seen | (b < 0x20)))
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

/// Counts words in strings; in arrays, the sum over elements; in objects, the words under
/// `text` keys (content parts). Everything else counts 0. `BYTES`: strings are read as
/// byte strings (the [`Fast`] reading), where a content or `text` value is one.
struct Words<const BYTES: bool>;

/// An array element: any value (content parts are objects).
impl<'de, const BYTES: bool> DeserializeSeed<'de> for Words<BYTES> {
    type Value = u64;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_any(self)
    }
}

/// The value of a `text` key: a string, read as the reading says.
struct TextValue<const BYTES: bool>;

impl<'de, const BYTES: bool> DeserializeSeed<'de> for TextValue<BYTES> {
    type Value = u64;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        if BYTES {
            d.deserialize_option(Words::<true>)
        } else {
            d.deserialize_any(Words::<false>)
        }
    }
}

impl<'de, const BYTES: bool> Visitor<'de> for Words<BYTES> {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("message content")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        Ok(count_words(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<u64, E> {
        count_words_utf8(v).ok_or_else(|| E::custom("a message content is not UTF-8"))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        // The fast reading's non-null value: a string as bytes, or an array.
        d.deserialize_bytes(self)
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
        while let Some(k) = seq.next_element_seed(Words::<BYTES>)? {
            n += k;
        }
        Ok(n)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<u64, A::Error> {
        let mut n = 0;
        while let Some(is_text) = map.next_key_seed(IsTextKey)? {
            if is_text {
                n += map.next_value_seed(TextValue::<BYTES>)?;
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

    /// The words of a body, or its error, by one reading alone.
    fn read_as<'a, R: Reading>(body: &'a [u8]) -> Result<(u64, u64), String> {
        serde_json::from_slice::<ChatRequest<'a, R>>(body)
            .map(|r| {
                let messages = r.messages.unwrap_or_default();
                (
                    messages.len() as u64,
                    messages.iter().map(|m| m.words).sum(),
                )
            })
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_fast_reading_is_as_strict_as_text() {
        let msg =
            |content: &str| format!(r#"{{"messages":[{{"role":"user","content":{content}}}]}}"#);
        // (content as JSON, words, whether the fast reading takes it)
        let valid: &[(&str, u64, bool)] = &[
            (r#""a b c""#, 3, true),
            (r#""a\nb\tc\rd\fe\bf""#, 5, true),
            (r#""x\u00a0y\u3000z\u2028w""#, 4, true),
            (r#""\u00e9t\u00e9 \ud83d\ude00""#, 2, true),
            (r#""\" \\ \/""#, 3, true),
            ("\"h\u{e9}llo w\u{f6}rld\"", 2, true),
            ("null", 0, true),
            (
                r#"[{"type":"text","text":"one\ntwo"},{"type":"text","text":null},{"type":"image_url","image_url":{"url":"a b"}}]"#,
                2,
                true,
            ),
            (r#"["a b", "c"]"#, 3, true),
            // Shapes the fast reading leaves to the strict one.
            ("12", 0, false),
            ("true", 0, false),
            (r#"{"text":"a b"}"#, 2, false),
            (r#"[{"type":"text","text":7}]"#, 0, false),
        ];
        for (content, words, fast) in valid {
            let body = msg(content);
            let strict = read_as::<Strict>(body.as_bytes());
            assert_eq!(strict, Ok((1, *words)), "{body}");
            assert_eq!(read_as::<Fast>(body.as_bytes()).is_ok(), *fast, "{body}");
            if *fast {
                assert_eq!(read_as::<Fast>(body.as_bytes()), strict, "{body}");
            }
            assert_eq!(
                ChatRequest::parse(body.as_bytes()).unwrap().prompt_tokens(),
                *words
            );
        }
        // Bodies the strict reading refuses: the fast one refuses them too, and parse
        // gives serde_json's error of the strict reading.
        let mut bad: Vec<Vec<u8>> = [
            r#""\ud800""#,
            r#""\udc00 x""#,
            r#""\ud800\u0041""#,
            r#""\ud800\n""#,
            r#""\ud800\ud800""#,
            r#""\x""#,
            r#""\u12""#,
            "\"raw\u{1}control\"",
            "\"raw\nnewline\"",
            "\"raw\ttab\"",
            r#"[{"type":"text","text":"\udfff"}]"#,
            r#""unclosed"#,
        ]
        .iter()
        .map(|c| msg(c).into_bytes())
        .collect();
        let mut not_utf8 = msg("\"a \u{e9} b\"").into_bytes();
        let at = not_utf8.iter().position(|&b| b >= 0x80).unwrap();
        not_utf8[at + 1] = b'(';
        bad.push(not_utf8);
        for body in &bad {
            let shown = String::from_utf8_lossy(body);
            let strict = read_as::<Strict>(body).expect_err(&shown);
            if !has_control_bytes(body) {
                assert!(read_as::<Fast>(body).is_err(), "{shown}");
            }
            let got = ChatRequest::parse(body).expect_err(&shown);
            assert!(
                got.message.ends_with(&strict),
                "{shown}: {} / {strict}",
                got.message
            );
        }
        // A pretty-printed body (raw newlines between tokens) takes the strict reading.
        let pretty =
            "{\n  \"messages\": [\n    {\"role\": \"user\", \"content\": \"a\\nb\"}\n  ]\n}";
        assert!(has_control_bytes(pretty.as_bytes()));
        assert_eq!(
            ChatRequest::parse(pretty.as_bytes())
                .unwrap()
                .prompt_tokens(),
            2
        );
    }

    #[test]
    fn control_bytes_are_found_anywhere() {
        let mut body = vec![b'a'; 3 * 4096 + 17];
        assert!(!has_control_bytes(&body));
        for at in [0, 1, 4095, 4096, 8200, body.len() - 1] {
            for b in [0u8, b'\t', b'\n', b'\r', 0x1F] {
                let keep = body[at];
                body[at] = b;
                assert!(has_control_bytes(&body), "{b:#x} at {at}");
                body[at] = keep;
            }
        }
        assert!(!has_control_bytes(" ~\u{7f}\u{e9}".as_bytes()));
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

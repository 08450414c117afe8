//! Answer bodies: the `chat.completion` JSON and the bytes of a `chat.completion.chunk`
//! stream, written from pieces serialized once at startup.
//!
//! A [`Template`] holds the escaped answer text and one preserialized `delta` per word,
//! shared by every stream. Per request only the id, `created`, the model and the usage
//! numbers are written. A stream ([`Frames`]) keeps only its own chunk head and its final
//! frame, and writes each word frame when it is due (head + shared delta + close, one
//! buffer per write): an open stream holds a few hundred bytes however long its answer,
//! which is what lets one process hold tens of thousands of them:
//!
//! ```text
//! frame 0      data: {…"delta":{"role":"assistant","content":"This"}…}
//! frame 1..W-1 data: {…"delta":{"content":" is"}…}            one per word
//! frame W      data: {…"delta":{},"finish_reason":"stop"}…}   (or "tool_calls")
//!              data: {…"choices":[],"usage":{…}}               if include_usage
//!              data: [DONE]
//! ```
//!
//! A tool-call answer has the same frame layout: frame 0 carries the role, the call id and
//! the function name, then one frame per fragment of the arguments string.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::tokens::{argument_pieces, stream_pieces};

/// Largest fragment of a streamed tool-call arguments string, in bytes.
const ARGUMENT_PIECE_BYTES: usize = 8;

/// Answer text and model, serialized once.
#[derive(Debug)]
pub struct Template {
    /// The answer text as a JSON string literal (quoted, escaped).
    content_json: Vec<u8>,
    /// One `delta` object per word; the first also carries the role. Shared by all streams.
    deltas: Arc<Vec<Vec<u8>>>,
    /// The configured model as a JSON string literal.
    default_model_json: Vec<u8>,
    /// Completion tokens of a text answer (its word count).
    text_tokens: u64,
}

/// The per-request fields shared by every object of one answer.
#[derive(Debug)]
pub struct Meta<'a> {
    /// Completion id, `chatcmpl-` + 24 hex digits.
    pub id: Id,
    /// Unix seconds.
    pub created: u64,
    /// The model: the request's, else the configured one.
    pub model: Option<&'a str>,
    /// Prompt tokens counted from the request.
    pub prompt_tokens: u64,
}

/// A tool call the answer makes.
#[derive(Debug)]
pub struct ToolCall {
    /// Call id, `call_` + 24 hex digits.
    pub id: Id,
    /// The function name (first offered tool).
    pub name: String,
    /// The arguments, a JSON object serialized as a string.
    pub arguments: String,
}

impl ToolCall {
    /// Completion tokens of a tool call: one for the name, one per arguments fragment.
    pub fn tokens(&self) -> u64 {
        1 + argument_pieces(&self.arguments, ARGUMENT_PIECE_BYTES).len() as u64
    }
}

/// 24 lowercase hex digits, unique within the process.
#[derive(Debug, Clone, Copy)]
pub struct Id([u8; 24]);

impl Id {
    fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("000000000000000000000000")
    }
}

/// Issues [`Id`]s: a counter scrambled with a per-process random seed, so ids look random,
/// never repeat within a process and cost one atomic add.
#[derive(Debug)]
pub struct Ids {
    seed: u64,
    next: AtomicU64,
}

impl Default for Ids {
    fn default() -> Self {
        Ids {
            seed: rand::random(),
            next: AtomicU64::new(0),
        }
    }
}

impl Ids {
    /// The next id.
    pub fn next(&self) -> Id {
        let n = self.next.fetch_add(1, Relaxed);
        let hi = splitmix64(self.seed ^ n);
        let lo = splitmix64(hi ^ n.rotate_left(32)) as u32;
        let mut out = [0u8; 24];
        hex_into(&mut out[..16], hi);
        hex_into(&mut out[16..], u64::from(lo));
        Id(out)
    }
}

/// SplitMix64 finalizer: a bijection, so distinct counters give distinct ids.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn hex_into(out: &mut [u8], mut v: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in out.iter_mut().rev() {
        *b = HEX[(v & 0xf) as usize];
        v >>= 4;
    }
}

/// Unix time in whole seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A stream's frames, written when due. Frame `i < deltas.len()` is
/// `prefix + deltas[i] + suffix`; the last frame is `tail`.
#[derive(Debug)]
pub struct Frames {
    /// What every word frame starts with: this stream's chunk head up to the delta.
    prefix: Bytes,
    /// The deltas, shared with the template (or a tool call's own).
    deltas: Arc<Vec<Vec<u8>>>,
    /// What every word frame ends with.
    suffix: &'static [u8],
    /// The final frame: the finish chunk, the usage chunk if asked, `[DONE]`.
    tail: Bytes,
}

impl Frames {
    /// Frames from their parts (see the type's docs).
    pub fn new(
        prefix: Bytes,
        deltas: Arc<Vec<Vec<u8>>>,
        suffix: &'static [u8],
        tail: Bytes,
    ) -> Self {
        Frames {
            prefix,
            deltas,
            suffix,
            tail,
        }
    }

    /// Number of frames (the word frames and the final one).
    pub fn count(&self) -> usize {
        self.deltas.len() + 1
    }

    fn frame_len(&self, i: usize) -> usize {
        match self.deltas.get(i) {
            Some(d) => self.prefix.len() + d.len() + self.suffix.len(),
            None => self.tail.len(),
        }
    }

    /// Bytes of every frame.
    pub fn total_len(&self) -> usize {
        (0..self.count()).map(|i| self.frame_len(i)).sum()
    }

    /// Frames `from..to` in one buffer (the final frame alone is not copied).
    pub fn write(&self, from: usize, to: usize) -> Bytes {
        let to = to.min(self.count());
        if from + 1 == to && from == self.deltas.len() {
            return self.tail.clone();
        }
        let mut b = Vec::with_capacity((from..to).map(|i| self.frame_len(i)).sum());
        for i in from..to {
            match self.deltas.get(i) {
                Some(d) => {
                    b.extend_from_slice(&self.prefix);
                    b.extend_from_slice(d);
                    b.extend_from_slice(self.suffix);
                }
                None => b.extend_from_slice(&self.tail),
            }
        }
        Bytes::from(b)
    }
}

impl Template {
    /// Serializes the answer text and the model.
    pub fn new(response: &str, model: &str) -> Self {
        let pieces = stream_pieces(response);
        let mut deltas = Vec::with_capacity(pieces.len().max(1));
        for (i, piece) in pieces.iter().enumerate() {
            let mut d = Vec::with_capacity(piece.len() + 40);
            d.extend_from_slice(if i == 0 {
                br#"{"role":"assistant","content":"#
            } else {
                br#"{"content":"#
            });
            push_json_str(&mut d, piece);
            d.push(b'}');
            deltas.push(d);
        }
        if deltas.is_empty() {
            deltas.push(br#"{"role":"assistant","content":""}"#.to_vec());
        }
        let mut content_json = Vec::new();
        push_json_str(&mut content_json, response);
        let mut default_model_json = Vec::new();
        push_json_str(&mut default_model_json, model);
        Template {
            content_json,
            deltas: Arc::new(deltas),
            default_model_json,
            text_tokens: pieces.len() as u64,
        }
    }

    /// Completion tokens of a text answer.
    pub fn text_tokens(&self) -> u64 {
        self.text_tokens
    }

    /// The `chat.completion` body of a text answer or a tool call.
    pub fn completion(&self, meta: &Meta<'_>, tool: Option<&ToolCall>) -> Bytes {
        let mut b = Vec::with_capacity(self.content_json.len() + 400);
        b.extend_from_slice(br#"{"id":"chatcmpl-"#);
        b.extend_from_slice(meta.id.as_str().as_bytes());
        b.extend_from_slice(br#"","object":"chat.completion","created":"#);
        push_u64(&mut b, meta.created);
        b.extend_from_slice(br#","model":"#);
        self.push_model(&mut b, meta.model);
        b.extend_from_slice(br#","system_fingerprint":null,"choices":[{"index":0,"message":{"role":"assistant","content":"#);
        let completion_tokens = match tool {
            None => {
                b.extend_from_slice(&self.content_json);
                b.extend_from_slice(
                    br#","refusal":null},"logprobs":null,"finish_reason":"stop"}]"#,
                );
                self.text_tokens
            }
            Some(call) => {
                b.extend_from_slice(br#"null,"refusal":null,"tool_calls":[{"id":"call_"#);
                b.extend_from_slice(call.id.as_str().as_bytes());
                b.extend_from_slice(br#"","type":"function","function":{"name":"#);
                push_json_str(&mut b, &call.name);
                b.extend_from_slice(br#","arguments":"#);
                push_json_str(&mut b, &call.arguments);
                b.extend_from_slice(br#"}}]},"logprobs":null,"finish_reason":"tool_calls"}]"#);
                call.tokens()
            }
        };
        push_usage(&mut b, meta.prompt_tokens, completion_tokens);
        b.push(b'}');
        Bytes::from(b)
    }

    /// The frames of a `chat.completion.chunk` stream.
    pub fn stream(&self, meta: &Meta<'_>, tool: Option<&ToolCall>, include_usage: bool) -> Frames {
        // The head every chunk starts with, up to and including `"choices":[`.
        let mut head = Vec::with_capacity(160);
        head.extend_from_slice(br#"data: {"id":"chatcmpl-"#);
        head.extend_from_slice(meta.id.as_str().as_bytes());
        head.extend_from_slice(br#"","object":"chat.completion.chunk","created":"#);
        push_u64(&mut head, meta.created);
        head.extend_from_slice(br#","model":"#);
        self.push_model(&mut head, meta.model);
        head.extend_from_slice(br#","system_fingerprint":null,"choices":["#);

        const OPEN: &[u8] = br#"{"index":0,"delta":"#;
        const CLOSE: &[u8] = b",\"logprobs\":null,\"finish_reason\":null}]}\n\n";

        let deltas = match tool {
            Some(call) => Arc::new(tool_deltas(call)),
            None => Arc::clone(&self.deltas),
        };
        let (finish, completion_tokens) = match tool {
            None => (&br#""stop""#[..], self.text_tokens),
            Some(call) => (&br#""tool_calls""#[..], call.tokens()),
        };
        let mut tail = Vec::with_capacity(2 * head.len() + 200);
        tail.extend_from_slice(&head);
        tail.extend_from_slice(OPEN);
        tail.extend_from_slice(br#"{},"logprobs":null,"finish_reason":"#);
        tail.extend_from_slice(finish);
        tail.extend_from_slice(b"}]}\n\n");
        if include_usage {
            tail.extend_from_slice(&head);
            tail.push(b']');
            push_usage(&mut tail, meta.prompt_tokens, completion_tokens);
            tail.extend_from_slice(b"}\n\n");
        }
        tail.extend_from_slice(b"data: [DONE]\n\n");
        let mut prefix = head;
        prefix.extend_from_slice(OPEN);
        Frames::new(Bytes::from(prefix), deltas, CLOSE, Bytes::from(tail))
    }

    fn push_model(&self, b: &mut Vec<u8>, model: Option<&str>) {
        match model {
            Some(m) => push_json_str(b, m),
            None => b.extend_from_slice(&self.default_model_json),
        }
    }
}

/// The deltas of a streamed tool call: the call header, then one per arguments fragment.
fn tool_deltas(call: &ToolCall) -> Vec<Vec<u8>> {
    let pieces = argument_pieces(&call.arguments, ARGUMENT_PIECE_BYTES);
    let mut out = Vec::with_capacity(pieces.len() + 1);
    let mut first = Vec::with_capacity(160 + call.name.len());
    first.extend_from_slice(
        br#"{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_"#,
    );
    first.extend_from_slice(call.id.as_str().as_bytes());
    first.extend_from_slice(br#"","type":"function","function":{"name":"#);
    push_json_str(&mut first, &call.name);
    first.extend_from_slice(br#","arguments":""}}]}"#);
    out.push(first);
    for piece in pieces {
        let mut d = Vec::with_capacity(64 + piece.len());
        d.extend_from_slice(br#"{"tool_calls":[{"index":0,"function":{"arguments":"#);
        push_json_str(&mut d, piece);
        d.extend_from_slice(b"}}]}");
        out.push(d);
    }
    out
}

/// `,"usage":{...}`
fn push_usage(b: &mut Vec<u8>, prompt: u64, completion: u64) {
    b.extend_from_slice(br#","usage":{"prompt_tokens":"#);
    push_u64(b, prompt);
    b.extend_from_slice(br#","completion_tokens":"#);
    push_u64(b, completion);
    b.extend_from_slice(br#","total_tokens":"#);
    push_u64(b, prompt + completion);
    b.push(b'}');
}

/// Appends `s` as a JSON string literal.
fn push_json_str(b: &mut Vec<u8>, s: &str) {
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *b, s);
}

/// Appends the decimal digits of `n`.
fn push_u64(b: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    b.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn meta(model: Option<&str>) -> Meta<'_> {
        Meta {
            id: Ids::default().next(),
            created: 1_700_000_000,
            model,
            prompt_tokens: 3,
        }
    }

    /// The JSON payloads of an SSE byte string, and whether it ended with [DONE].
    fn events(data: &[u8]) -> (Vec<Value>, bool) {
        let text = std::str::from_utf8(data).unwrap();
        let mut out = Vec::new();
        let mut done = false;
        for event in text.split("\n\n").filter(|e| !e.is_empty()) {
            let payload = event.strip_prefix("data: ").unwrap();
            if payload == "[DONE]" {
                done = true;
            } else {
                out.push(serde_json::from_str(payload).unwrap());
            }
        }
        (out, done)
    }

    #[test]
    fn completion_text_and_usage() {
        let t = Template::new("hello \"quoted\" world", "m0");
        let v: Value = serde_json::from_slice(&t.completion(&meta(None), None)).unwrap();
        assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["model"], "m0");
        assert_eq!(
            v["choices"][0]["message"]["content"],
            "hello \"quoted\" world"
        );
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(v["usage"]["prompt_tokens"], 3);
        assert_eq!(v["usage"]["completion_tokens"], 3);
        assert_eq!(v["usage"]["total_tokens"], 6);
    }

    #[test]
    fn completion_tool_call() {
        let t = Template::new("x", "m0");
        let call = ToolCall {
            id: Ids::default().next(),
            name: "f\"n".into(),
            arguments: r#"{"a":"b"}"#.into(),
        };
        let v: Value =
            serde_json::from_slice(&t.completion(&meta(Some("req")), Some(&call))).unwrap();
        assert_eq!(v["model"], "req");
        let msg = &v["choices"][0]["message"];
        assert!(msg["content"].is_null());
        assert_eq!(msg["tool_calls"][0]["type"], "function");
        assert_eq!(msg["tool_calls"][0]["function"]["name"], "f\"n");
        assert_eq!(
            msg["tool_calls"][0]["function"]["arguments"],
            r#"{"a":"b"}"#
        );
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(v["usage"]["completion_tokens"], call.tokens());
    }

    #[test]
    fn stream_layout() {
        let t = Template::new("one two  three", "m0");
        for include_usage in [false, true] {
            let frames = t.stream(&meta(None), None, include_usage);
            assert_eq!(frames.count(), 4, "3 words + final frame");
            let data = frames.write(0, frames.count());
            assert_eq!(data.len(), frames.total_len());
            let (ev, done) = events(&data);
            assert!(done);
            assert_eq!(ev[0]["choices"][0]["delta"]["role"], "assistant");
            let text: String = ev[..3]
                .iter()
                .map(|e| e["choices"][0]["delta"]["content"].as_str().unwrap())
                .collect();
            assert_eq!(text, "one two  three");
            assert_eq!(ev[3]["choices"][0]["finish_reason"], "stop");
            assert_eq!(ev.len(), if include_usage { 5 } else { 4 });
            if include_usage {
                assert_eq!(ev[4]["choices"].as_array().unwrap().len(), 0);
                assert_eq!(ev[4]["usage"]["completion_tokens"], 3);
            }
            // Every frame is whole events, and frames written apart join to the same bytes.
            let mut joined = Vec::new();
            for i in 0..frames.count() {
                let frame = frames.write(i, i + 1);
                assert!(frame.starts_with(b"data: ") && frame.ends_with(b"\n\n"));
                joined.extend_from_slice(&frame);
            }
            assert_eq!(joined, data);
        }
    }

    #[test]
    fn stream_tool_call_reassembles() {
        let t = Template::new("x", "m0");
        let args = r#"{"city":"Paris","units":"metric"}"#;
        let call = ToolCall {
            id: Ids::default().next(),
            name: "get_weather".into(),
            arguments: args.into(),
        };
        let frames = t.stream(&meta(None), Some(&call), true);
        let (ev, done) = events(&frames.write(0, frames.count()));
        assert!(done);
        let first = &ev[0]["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(first["function"]["name"], "get_weather");
        assert!(first["id"].as_str().unwrap().starts_with("call_"));
        let joined: String = ev[..ev.len() - 2]
            .iter()
            .map(|e| {
                e["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                    .as_str()
                    .unwrap()
            })
            .collect();
        assert_eq!(joined, args);
        assert_eq!(
            ev[ev.len() - 2]["choices"][0]["finish_reason"],
            "tool_calls"
        );
        assert_eq!(
            ev[ev.len() - 1]["usage"]["completion_tokens"],
            call.tokens()
        );
    }

    #[test]
    fn ids_are_distinct_hex() {
        let ids = Ids::default();
        let a: Vec<String> = (0..1000).map(|_| ids.next().as_str().to_owned()).collect();
        let set: std::collections::HashSet<_> = a.iter().collect();
        assert_eq!(set.len(), a.len());
        assert!(a
            .iter()
            .all(|s| s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit())));
    }

    #[test]
    fn push_u64_cases() {
        for n in [0u64, 7, 10, 42, 1_700_000_000, u64::MAX] {
            let mut b = Vec::new();
            push_u64(&mut b, n);
            assert_eq!(b, n.to_string().as_bytes());
        }
    }
}

//! Checks: what a user verifies in an answer ([`Check`], plan data defined in
//! `barrage_core`), evaluated here. Each check is recorded in the `checks` Rate under its
//! name (tag `check`), and a failed one fails its step.
//!
//! Some checks mean the server itself failed the request although it answered 2xx (a run
//! that ended in `__error__`, a stream carrying `event: error`): their failure also counts
//! the request in `http_req_failed` ([`Check::marks_request_failed`]).
pub use barrage_core::plan::Check;
use serde_json::Value;

use super::prune::Need;
use super::template::{Template, UnknownVar, VarTable, Vars};
use crate::http::Exchange;

/// What of a JSON answer `check` reads ([`super::prune`] keeps only that).
pub fn json_need(check: &Check) -> Need {
    match check {
        Check::NoRunError => Need::at("/__error__", Need::All),
        Check::LastMessageAi { pointer, .. } => Need::last_message(pointer),
        c => match c.pointer() {
            Some(p) => Need::at(p, Need::All),
            None => Need::Nothing,
        },
    }
}

/// AI messages in a state's JSON: `"type":"ai"` as py writes it, `"type": "ai"` as js does.
pub fn ai_messages(data: &str) -> usize {
    memchr::memmem::find_iter(data.as_bytes(), b"\"type\":\"ai\"").count()
        + memchr::memmem::find_iter(data.as_bytes(), b"\"type\": \"ai\"").count()
}

/// A message chunk whose `content` is a non-empty string.
fn has_content(data: &str) -> bool {
    let bytes = data.as_bytes();
    [&b"\"content\":\""[..], &b"\"content\": \""[..]]
        .iter()
        .any(|pat| {
            memchr::memmem::find_iter(bytes, pat)
                .any(|at| bytes.get(at + pat.len()).is_some_and(|c| *c != b'"'))
        })
}

/// Whether an event carries AI content (see `builtin::STREAM_FIRST_TOKEN`). `values`
/// events count when they hold more AI messages than the stream's first (input) state;
/// `ai_in_input` is set from that first one. No allocation: byte searches only.
pub fn ai_content(event: &str, data: &str, ai_in_input: &mut Option<usize>) -> bool {
    match event {
        "values" => {
            let n = ai_messages(data);
            match *ai_in_input {
                None => {
                    *ai_in_input = Some(n);
                    false
                }
                Some(before) => n > before,
            }
        }
        "updates" => ai_messages(data) > 0,
        e if e == "messages" || e.starts_with("messages/") => {
            e != "messages/metadata" && has_content(data)
        }
        _ => false,
    }
}

/// What a stream carried, collected while it is read.
#[derive(Debug, Default, Clone)]
pub struct SseSummary {
    pub events: u64,
    /// From the start of the send to the first complete event.
    pub first_event: Option<std::time::Duration>,
    /// From the start of the send to the last complete event.
    pub last_event: Option<std::time::Duration>,
    /// From the start of the send to the first event with AI content ([`ai_content`]).
    pub first_token: Option<std::time::Duration>,
    /// AI messages in the stream's first `values` event (the input state: earlier turns').
    pub ai_in_input: Option<usize>,
    /// When the last event of each name in `names` came (same order).
    pub last_by_name: Vec<std::time::Duration>,
    /// Gaps between consecutive events of one name: (index in `names`, gap). Reused from
    /// stream to stream, so an event costs no allocation once the buffers have grown.
    pub gaps: Vec<(u8, std::time::Duration)>,
    /// Distinct event names, in order of first appearance (at most 32 kept).
    pub names: Vec<String>,
    /// The data of the first `error` event (cut at 300 bytes).
    pub error_data: Option<String>,
}

impl SseSummary {
    pub fn clear(&mut self) {
        self.events = 0;
        self.first_event = None;
        self.last_event = None;
        self.first_token = None;
        self.ai_in_input = None;
        self.last_by_name.clear();
        self.gaps.clear();
        self.names.clear();
        self.error_data = None;
    }

    /// Whether the stream arrived at once although its first event took long (see
    /// `builtin::STREAM_BUFFERED`); `None` for a stream of fewer than 3 events.
    pub fn buffered(&self) -> Option<bool> {
        use barrage_core::metrics::builtin::{STREAM_BUFFERED_WAIT_US, STREAM_BUFFERED_WINDOW_US};
        let (first, last) = (self.first_event?, self.last_event?);
        (self.events >= 3).then(|| {
            (last - first).as_micros() < u128::from(STREAM_BUFFERED_WINDOW_US)
                && first.as_micros() >= u128::from(STREAM_BUFFERED_WAIT_US)
        })
    }

    /// Notes an event named `name` at `at`: a new name is remembered (up to 32), a known
    /// one adds the gap since its previous event (up to 4,096 gaps per stream).
    pub fn note_event(&mut self, name: &str, at: std::time::Duration) {
        match self.names.iter().position(|n| n == name) {
            Some(i) => {
                let gap = at.saturating_sub(self.last_by_name[i]);
                self.last_by_name[i] = at;
                if self.gaps.len() < 4096 {
                    self.gaps.push((i as u8, gap));
                }
            }
            None if self.names.len() < 32 => {
                self.names.push(name.to_owned());
                self.last_by_name.push(at);
            }
            None => {}
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }
}

/// A check ready to run: its name and templates parsed.
#[derive(Debug, Clone)]
pub struct CompiledCheck {
    pub check: Check,
    /// The `check` tag: `{operation}: {description}`.
    pub name: String,
    expected: Option<Template>,
}

/// What a check looks at.
pub struct Answer<'a> {
    pub exchange: &'a Exchange,
    pub json: Option<&'a Value>,
    pub sse: Option<&'a SseSummary>,
    pub vars: &'a Vars,
}

impl CompiledCheck {
    pub fn compile(check: Check, operation: &str, table: &VarTable) -> Result<Self, UnknownVar> {
        let expected = match &check {
            Check::Equals { value, .. } => Some(Template::parse(value, table)?),
            Check::ArrayHas { value, .. } => Some(Template::parse(value, table)?),
            _ => None,
        };
        Ok(CompiledCheck {
            name: format!("{operation}: {}", check.describe()),
            check,
            expected,
        })
    }

    /// `Ok` or why not (the reason names what was found).
    pub fn eval(&self, a: &Answer<'_>) -> Result<(), String> {
        let json = || a.json.ok_or_else(|| "the answer is not JSON".to_string());
        let at = |p: &str| -> Result<&Value, String> {
            super::prune::pointer(json()?, p).ok_or_else(|| format!("no {p} in the answer"))
        };
        match &self.check {
            Check::Status { statuses } => {
                if a.exchange.error.is_none() && statuses.contains(&a.exchange.status) {
                    Ok(())
                } else if let Some(e) = a.exchange.error {
                    Err(e.as_str().into())
                } else {
                    Err(format!("HTTP {}", a.exchange.status))
                }
            }
            Check::Exists { pointer } => at(pointer).map(|_| ()),
            Check::Length { pointer, min, max } => {
                let len = match at(pointer)? {
                    Value::Array(a) => a.len(),
                    Value::Object(o) => o.len(),
                    Value::String(s) => s.chars().count(),
                    other => return Err(format!("{pointer} has no length: {}", short(other))),
                };
                if min.is_some_and(|m| len < m) || max.is_some_and(|m| len > m) {
                    Err(format!("{pointer} has {len} elements"))
                } else {
                    Ok(())
                }
            }
            Check::Status2xx => {
                if a.exchange.is_2xx() {
                    Ok(())
                } else if let Some(e) = a.exchange.error {
                    Err(e.as_str().into())
                } else {
                    Err(format!("HTTP {}", a.exchange.status))
                }
            }
            Check::NonEmpty { pointer } => match at(pointer)? {
                Value::String(s) if !s.is_empty() => Ok(()),
                other => Err(format!("{pointer} is {}", short(other))),
            },
            Check::NoRunError => match json()?.get("__error__") {
                None => Ok(()),
                Some(e) => Err(format!("the run failed: {}", short(e))),
            },
            Check::LastMessageAi {
                pointer,
                min_messages,
            } => {
                let list = at(pointer)?
                    .as_array()
                    .ok_or_else(|| format!("{pointer} is not a list"))?;
                if list.len() < *min_messages {
                    return Err(format!("{pointer} has {} messages", list.len()));
                }
                let last = list.last().ok_or_else(|| format!("{pointer} is empty"))?;
                let ty = last.get("type").and_then(Value::as_str);
                if ty != Some("ai") {
                    return Err(format!("the last message's type is {ty:?}, not \"ai\""));
                }
                match last.get("content") {
                    Some(Value::String(s)) if !s.is_empty() => Ok(()),
                    Some(Value::Array(parts)) if !parts.is_empty() => Ok(()),
                    other => Err(format!(
                        "the last AI message has no content ({})",
                        other.map_or("none".into(), short)
                    )),
                }
            }
            Check::Equals { pointer, .. } => {
                let got = at(pointer)?;
                let mut buf = Vec::new();
                if let Some(t) = &self.expected {
                    t.render_json(a.vars, &mut buf);
                }
                let want: Value = serde_json::from_slice(&buf)
                    .map_err(|e| format!("the expected value is not JSON: {e}"))?;
                if *got == want {
                    Ok(())
                } else {
                    Err(format!(
                        "{pointer} is {}, expected {}",
                        short(got),
                        short(&want)
                    ))
                }
            }
            Check::ArrayHas { pointer, field, .. } => {
                let mut want = String::new();
                if let Some(t) = &self.expected {
                    t.render_raw(a.vars, &mut want);
                }
                let items = at(pointer)?
                    .as_array()
                    .ok_or_else(|| format!("{pointer} is not a list"))?;
                if items
                    .iter()
                    .any(|i| i.get(field).and_then(Value::as_str) == Some(want.as_str()))
                {
                    Ok(())
                } else {
                    Err(format!(
                        "no element of {pointer} ({} items) has {field} {want:?}",
                        items.len()
                    ))
                }
            }
            Check::SseEvent { event } => {
                let s = a.sse.ok_or("not a stream")?;
                if s.has(event) {
                    Ok(())
                } else {
                    Err(format!("no `event: {event}` among {:?}", s.names))
                }
            }
            Check::NoSseEvent { event } => {
                let s = a.sse.ok_or("not a stream")?;
                if !s.has(event) {
                    Ok(())
                } else if event == "error" {
                    Err(format!(
                        "the stream carries `event: error`: {}",
                        s.error_data.as_deref().unwrap_or("")
                    ))
                } else {
                    Err(format!("the stream carries `event: {event}`"))
                }
            }
            Check::MinEvents { count } => {
                let s = a.sse.ok_or("not a stream")?;
                if s.events >= *count {
                    Ok(())
                } else {
                    Err(format!("{} events", s.events))
                }
            }
        }
    }
}

/// A value shown in a reason, cut at 200 characters.
fn short(v: &Value) -> String {
    let mut s = v.to_string();
    if s.len() > 200 {
        let mut cut = 200;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_say_what_of_the_answer_they_read() {
        assert_eq!(json_need(&Check::Status2xx), Need::Nothing);
        assert_eq!(
            json_need(&Check::NoRunError),
            Need::Fields(vec![("__error__".into(), Need::All)])
        );
        let last = Check::LastMessageAi {
            pointer: "/messages".into(),
            min_messages: 1,
        };
        assert_eq!(json_need(&last), Need::last_message("/messages"));
        assert_eq!(
            json_need(&Check::Length {
                pointer: "/items".into(),
                min: Some(1),
                max: None
            }),
            Need::Fields(vec![("items".into(), Need::All)])
        );
    }
}

#[cfg(test)]
mod first_token_tests {
    use super::*;

    #[test]
    fn ai_content_as_py_and_js_write_it() {
        let human = r#"{"messages":[{"content":"hi","type":"human"}]}"#;
        let both = r#"{"messages":[{"content":"hi","type":"human"},{"content":"yo","type":"ai"}]}"#;
        let js = "{\n \"messages\": [{\"content\": \"hi\", \"type\": \"human\"}, {\"content\": \"yo\", \"type\": \"ai\"}]}";
        // values: the input state sets the baseline, a later state with a new AI message counts
        let mut input = None;
        assert!(!ai_content("values", human, &mut input));
        assert_eq!(input, Some(0));
        assert!(ai_content("values", both, &mut input));
        let mut input = None;
        assert!(
            !ai_content("values", both, &mut input),
            "an earlier turn's answer"
        );
        assert!(!ai_content("values", both, &mut input));
        let mut input = Some(0);
        assert!(ai_content("values", js, &mut input));
        // messages-tuple: the first chunk with content, not an empty role chunk
        let mut none = None;
        assert!(!ai_content(
            "messages",
            r#"[{"content":"","type":"AIMessageChunk"},{}]"#,
            &mut none
        ));
        assert!(ai_content(
            "messages",
            r#"[{"content":"This","type":"AIMessageChunk"},{}]"#,
            &mut none
        ));
        assert!(ai_content(
            "messages/partial",
            r#"[{"content": "Th", "type": "ai"}]"#,
            &mut none
        ));
        assert!(!ai_content(
            "messages/metadata",
            r#"{"content":"x"}"#,
            &mut none
        ));
        assert!(ai_content(
            "updates",
            r#"{"call_model":{"messages":[{"type":"ai"}]}}"#,
            &mut none
        ));
        assert!(!ai_content(
            "metadata",
            r#"{"run_id":"x","type":"ai"}"#,
            &mut none
        ));
    }
}

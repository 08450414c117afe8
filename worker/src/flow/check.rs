//! Checks: what a user verifies in an answer, as data. Each check is recorded in the
//! `checks` Rate under its name (tag `check`), and a failed one fails its step.
//!
//! Some checks mean the server itself failed the request although it answered 2xx (a run
//! that ended in `__error__`, a stream carrying `event: error`): their failure also counts
//! the request in `http_req_failed` ([`Check::marks_request_failed`]).
use serde_json::Value;

use super::prune::Need;
use super::template::{Template, UnknownVar, VarTable, Vars};
use crate::http::Exchange;

/// One check of a step's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// The status is 2xx (deletes answer 200 or 204; both pass).
    Status2xx,
    /// The JSON answer has a non-empty string at `pointer` (RFC 6901, e.g. `/assistant_id`).
    NonEmptyString { pointer: String },
    /// The JSON answer is not a failed run (`{"__error__": …}`, sent with status 200).
    NoRunError,
    /// The message list at `pointer` has at least `min_messages` messages and ends with an
    /// AI message with content: jq's `.messages[-1].type == "ai"` and non-empty `.content`.
    LastMessageAi {
        pointer: String,
        min_messages: usize,
    },
    /// The value at `pointer` equals the JSON template `expected`.
    JsonEquals { pointer: String, expected: String },
    /// The array at `pointer` has an element whose `field` is the string template `value`.
    ArrayHas {
        pointer: String,
        field: String,
        value: String,
    },
    /// The stream has an event named `event`.
    SseHasEvent { event: String },
    /// The stream has no event named `event`.
    SseNoEvent { event: String },
    /// The stream has at least `count` events.
    SseMinEvents { count: u64 },
}

impl Check {
    /// What of a JSON answer this check reads ([`super::prune`] keeps only that).
    pub fn json_need(&self) -> Need {
        match self {
            Check::Status2xx
            | Check::SseHasEvent { .. }
            | Check::SseNoEvent { .. }
            | Check::SseMinEvents { .. } => Need::Nothing,
            Check::NoRunError => Need::at("/__error__", Need::All),
            Check::LastMessageAi { pointer, .. } => Need::last_message(pointer),
            Check::NonEmptyString { pointer }
            | Check::JsonEquals { pointer, .. }
            | Check::ArrayHas { pointer, .. } => Need::at(pointer, Need::All),
        }
    }

    /// Short description, the check's name after the operation.
    pub fn describe(&self) -> String {
        match self {
            Check::Status2xx => "status is 2xx".into(),
            Check::NonEmptyString { pointer } => format!("{pointer} is a non-empty string"),
            Check::NoRunError => "no __error__".into(),
            Check::LastMessageAi {
                pointer,
                min_messages,
            } => {
                format!("{pointer} has >= {min_messages} messages, the last an AI one with content")
            }
            Check::JsonEquals { pointer, .. } => format!("{pointer} is the value put"),
            Check::ArrayHas { pointer, field, .. } => format!("{pointer} has the {field}"),
            Check::SseHasEvent { event } => format!("has event: {event}"),
            Check::SseNoEvent { event } => format!("no event: {event}"),
            Check::SseMinEvents { count } => format!(">= {count} events"),
        }
    }

    /// Whether failing it means the server failed the request (counted in `http_req_failed`).
    pub fn marks_request_failed(&self) -> bool {
        matches!(self, Check::NoRunError)
            || matches!(self, Check::SseNoEvent { event } if event == "error")
    }

    pub fn needs_json(&self) -> bool {
        !matches!(
            self,
            Check::Status2xx
                | Check::SseHasEvent { .. }
                | Check::SseNoEvent { .. }
                | Check::SseMinEvents { .. }
        )
    }
}

/// What a stream carried, collected while it is read.
#[derive(Debug, Default, Clone)]
pub struct SseSummary {
    pub events: u64,
    /// From the start of the send to the first complete event.
    pub first_event: Option<std::time::Duration>,
    /// Distinct event names, in order of first appearance (at most 32 kept).
    pub names: Vec<String>,
    /// The data of the first `error` event (cut at 300 bytes).
    pub error_data: Option<String>,
}

impl SseSummary {
    pub fn clear(&mut self) {
        self.events = 0;
        self.first_event = None;
        self.names.clear();
        self.error_data = None;
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
            Check::JsonEquals { expected, .. } => Some(Template::parse(expected, table)?),
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
            Check::Status2xx => {
                if a.exchange.is_2xx() {
                    Ok(())
                } else if let Some(e) = a.exchange.error {
                    Err(e.as_str().into())
                } else {
                    Err(format!("HTTP {}", a.exchange.status))
                }
            }
            Check::NonEmptyString { pointer } => match at(pointer)? {
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
            Check::JsonEquals { pointer, .. } => {
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
            Check::SseHasEvent { event } => {
                let s = a.sse.ok_or("not a stream")?;
                if s.has(event) {
                    Ok(())
                } else {
                    Err(format!("no `event: {event}` among {:?}", s.names))
                }
            }
            Check::SseNoEvent { event } => {
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
            Check::SseMinEvents { count } => {
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
        assert_eq!(Check::Status2xx.json_need(), Need::Nothing);
        assert_eq!(
            Check::NoRunError.json_need(),
            Need::Fields(vec![("__error__".into(), Need::All)])
        );
        let last = Check::LastMessageAi {
            pointer: "/messages".into(),
            min_messages: 1,
        };
        assert_eq!(last.json_need(), Need::last_message("/messages"));
    }
}

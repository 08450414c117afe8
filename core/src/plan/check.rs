//! [`Check`]: what a flow step verifies in an answer, as plan data. The worker evaluates
//! them (`barrage_worker::flow::check`); each is recorded in the `checks` Rate under its
//! name (`{step}: {description}`), and a failed one fails its step.
//!
//! In TOML a check is a table whose `check` key names the kind:
//! ```toml
//! checks = [
//!   { check = "status", in = [200, 201] },
//!   { check = "non_empty", pointer = "/thread_id" },
//!   { check = "equals", pointer = "/value", value = '{"n":{iter}}' },
//!   { check = "length", pointer = "/items", min = 1 },
//!   { check = "sse_event", event = "metadata" },
//! ]
//! ```
use serde::{Deserialize, Serialize};

/// One check of a step's answer. Pointers are RFC 6901 (`/values/messages`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "check", rename_all = "snake_case", deny_unknown_fields)]
pub enum Check {
    /// The status is 2xx (deletes answer 200 or 204; both pass). A step whose checks
    /// name no status check gets this one first.
    #[serde(rename = "status_2xx")]
    Status2xx,
    /// The status is one of these.
    Status {
        #[serde(rename = "in")]
        statuses: Vec<u16>,
    },
    /// The JSON answer has a non-empty string at `pointer`.
    NonEmpty { pointer: String },
    /// The JSON answer has a value (`null` included) at `pointer`.
    Exists { pointer: String },
    /// The JSON answer is not a failed run (`{"__error__": …}`, sent with status 200).
    NoRunError,
    /// The message list at `pointer` has at least `min_messages` messages and ends with an
    /// AI message with content: jq's `.messages[-1].type == "ai"` and non-empty `.content`.
    LastMessageAi {
        pointer: String,
        min_messages: usize,
    },
    /// The value at `pointer` equals the JSON template `value`.
    Equals { pointer: String, value: String },
    /// The array (or object, or string) at `pointer` has between `min` and `max` elements.
    Length {
        pointer: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<usize>,
    },
    /// The array at `pointer` has an element whose `field` is the string template `value`.
    ArrayHas {
        pointer: String,
        field: String,
        value: String,
    },
    /// The stream has an event named `event`.
    SseEvent { event: String },
    /// The stream has no event named `event`.
    NoSseEvent { event: String },
    /// The stream has at least `count` events.
    MinEvents { count: u64 },
}

impl Check {
    /// Short description, the check's name after the step's.
    pub fn describe(&self) -> String {
        match self {
            Check::Status2xx => "status is 2xx".into(),
            Check::Status { statuses } => format!("status in {statuses:?}"),
            Check::NonEmpty { pointer } => format!("{pointer} is a non-empty string"),
            Check::Exists { pointer } => format!("{pointer} exists"),
            Check::NoRunError => "no __error__".into(),
            Check::LastMessageAi {
                pointer,
                min_messages,
            } => {
                format!("{pointer} has >= {min_messages} messages, the last an AI one with content")
            }
            Check::Equals { pointer, .. } => format!("{pointer} is the value put"),
            Check::Length { pointer, min, max } => match (min, max) {
                (Some(a), Some(b)) => format!("{pointer} has {a}..={b} elements"),
                (Some(a), None) => format!("{pointer} has >= {a} elements"),
                (None, Some(b)) => format!("{pointer} has <= {b} elements"),
                (None, None) => format!("{pointer} has a length"),
            },
            Check::ArrayHas { pointer, field, .. } => format!("{pointer} has the {field}"),
            Check::SseEvent { event } => format!("has event: {event}"),
            Check::NoSseEvent { event } => format!("no event: {event}"),
            Check::MinEvents { count } => format!(">= {count} events"),
        }
    }

    /// Whether failing it means the server failed the request (counted in `http_req_failed`).
    pub fn marks_request_failed(&self) -> bool {
        matches!(self, Check::NoRunError)
            || matches!(self, Check::NoSseEvent { event } if event == "error")
    }

    /// Whether it reads the JSON answer.
    pub fn needs_json(&self) -> bool {
        self.pointer().is_some() || matches!(self, Check::NoRunError)
    }

    /// Whether it checks the status (so the implicit `status_2xx` is not added).
    pub fn is_status(&self) -> bool {
        matches!(self, Check::Status2xx | Check::Status { .. })
    }

    /// The JSON pointer it reads, if any.
    pub fn pointer(&self) -> Option<&str> {
        match self {
            Check::NonEmpty { pointer }
            | Check::Exists { pointer }
            | Check::LastMessageAi { pointer, .. }
            | Check::Equals { pointer, .. }
            | Check::Length { pointer, .. }
            | Check::ArrayHas { pointer, .. } => Some(pointer),
            _ => None,
        }
    }

    /// Problems, each naming `field` (e.g. `flows.agent.steps[2] (run_wait).checks[1]`).
    pub(super) fn validate(&self, field: &str, errors: &mut Vec<String>) {
        if let Some(p) = self.pointer() {
            if !p.is_empty() && !p.starts_with('/') {
                errors.push(format!(
                    "{field}.pointer: {p:?} is not a JSON pointer; start it with / (e.g. \"/thread_id\"), or \"\" for the whole answer"
                ));
            }
        }
        match self {
            Check::Status { statuses }
                if statuses.is_empty() || statuses.iter().any(|s| !(100..=599).contains(s)) =>
            {
                errors.push(format!(
                    "{field}.in: {statuses:?} must list HTTP statuses (100..=599), e.g. [200, 201]"
                ))
            }
            Check::Length {
                min: Some(a),
                max: Some(b),
                ..
            } if a > b => errors.push(format!("{field}: min {a} is above max {b}")),
            Check::Length {
                min: None,
                max: None,
                ..
            } => errors.push(format!("{field}: give min, max or both, e.g. min = 1")),
            Check::SseEvent { event } | Check::NoSseEvent { event } if event.is_empty() => errors
                .push(format!(
                    "{field}.event: must not be empty, e.g. \"metadata\""
                )),
            _ => {}
        }
    }
}

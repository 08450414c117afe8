//! The per-call log: one record per chat call, the newest `capacity` kept (a ring buffer),
//! served by `GET /stats/calls`.
//!
//! Why: a runtime's own overhead is a run's latency minus the time the model took for the
//! calls of that run. The mock knows the second part exactly, so it records, per call, when
//! it arrived and how long the mock spent on it (`service_us`: from the request head to the
//! last byte of the answer handed to the connection, queueing and the paced stream
//! included), together with the prompt's size, so a test can also see a conversation grow.
//!
//! A call is matched to a run by its key: the `x-barrage-key` request header if the runtime
//! forwards one, else the request body's `user` field (OpenAI's end-user id, which agent
//! frameworks can set per run), else the last `[barrage-key:KEY]` marker in the prompt
//! ([`prompt_key`]: a flow writes it into its message, and every runtime passes the
//! conversation on; the last one is the newest turn's), else none. Without a key, calls
//! are matched by time: `received_unix_us` against the run's own start and end.
//!
//! A record is written when the answer ends (completed, cut, or dropped by the client), so
//! the log is in completion order; `seq` numbers records in that order and
//! `received_us` gives arrival order. Memory is bounded: `capacity` records of under 200
//! bytes (plus the key); older ones are dropped and counted.
//!
//! `GET /stats/calls?since=SEQ&limit=N&key=K`: records with `seq >= since` (default 0),
//! at most `limit` (default and maximum: the capacity), only those with key `K` if given.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::time::Instant;

/// Longest key kept, in bytes; longer ones are cut (at a character boundary).
pub const MAX_KEY_BYTES: usize = 128;

/// One chat call.
#[derive(Debug, Clone, Serialize)]
pub struct Call {
    /// Position in completion order, from 0.
    pub seq: u64,
    /// The correlation key (`x-barrage-key` header, else the body's `user`), if any.
    pub key: Option<Box<str>>,
    /// Arrival, µs since the server started.
    pub received_us: u64,
    /// Arrival, µs since the Unix epoch (to match a client's clock on the same host).
    pub received_unix_us: u64,
    /// Request body size.
    pub prompt_bytes: u64,
    /// Messages in the request.
    pub messages: u64,
    /// Prompt tokens (whitespace words of the message contents).
    pub prompt_tokens: u64,
    /// Completion tokens of the answer (0 for an error answer).
    pub completion_tokens: u64,
    /// Whether the answer was an SSE stream.
    pub stream: bool,
    /// HTTP status of the answer.
    pub status: u16,
    /// Time waiting for a generation slot (model mode), µs.
    pub queue_us: u64,
    /// Arrival to the first byte of the answer, µs.
    pub first_byte_us: u64,
    /// Arrival to the last byte handed to the connection (or to the drop), µs.
    pub service_us: u64,
    /// `complete`, `cut` (an injected disconnect) or `dropped` (the client went away).
    pub end: End,
}

/// How an answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum End {
    /// Every byte was handed to the connection.
    Complete,
    /// Cut on purpose (injected disconnect).
    Cut,
    /// The connection went away first.
    Dropped,
}

/// The ring buffer of [`Call`]s.
#[derive(Debug)]
pub struct CallLog {
    /// The server's start, the origin of `received_us`.
    started: Instant,
    /// The Unix time of `started`, µs.
    started_unix_us: u64,
    /// Records kept; 0 keeps none.
    capacity: usize,
    /// The records and the next `seq`.
    ring: Mutex<Ring>,
}

#[derive(Debug, Default)]
struct Ring {
    calls: VecDeque<Call>,
    next_seq: u64,
}

/// A query of `/stats/calls`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Query {
    /// First `seq` wanted.
    pub since: u64,
    /// Most records wanted.
    pub limit: Option<usize>,
    /// Only records with this key.
    pub key: Option<String>,
}

impl CallLog {
    /// An empty log keeping `capacity` records.
    pub fn new(capacity: usize) -> Self {
        let started_unix_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        CallLog {
            started: Instant::now(),
            started_unix_us,
            capacity,
            ring: Mutex::new(Ring::default()),
        }
    }

    /// A record for a call that arrived at `at`; finished with [`CallLog::finish`].
    pub fn begin(&self, at: Instant, key: Option<Box<str>>) -> Call {
        let received_us = micros(at.saturating_duration_since(self.started));
        Call {
            seq: 0,
            key,
            received_us,
            received_unix_us: self.started_unix_us.saturating_add(received_us),
            prompt_bytes: 0,
            messages: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
            stream: false,
            status: 200,
            queue_us: 0,
            first_byte_us: 0,
            service_us: 0,
            end: End::Complete,
        }
    }

    /// Stores a finished call, dropping the oldest when full.
    pub fn finish(&self, mut call: Call) {
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        call.seq = ring.next_seq;
        ring.next_seq += 1;
        if self.capacity == 0 {
            return;
        }
        if ring.calls.len() == self.capacity {
            ring.calls.pop_front();
        }
        ring.calls.push_back(call);
    }

    /// `µs since start` of `at`.
    pub fn since_start_us(&self, at: Instant) -> u64 {
        micros(at.saturating_duration_since(self.started))
    }

    /// The `/stats/calls` document.
    pub fn to_json(&self, query: &Query) -> serde_json::Value {
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let limit = query.limit.unwrap_or(self.capacity).min(self.capacity);
        let first_seq = ring.next_seq - ring.calls.len() as u64;
        let skip = query.since.saturating_sub(first_seq);
        let calls: Vec<&Call> = ring
            .calls
            .iter()
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
            .filter(|c| {
                query
                    .key
                    .as_deref()
                    .is_none_or(|k| c.key.as_deref() == Some(k))
            })
            .take(limit)
            .collect();
        serde_json::json!({
            "capacity": self.capacity,
            "total": ring.next_seq,
            "dropped": first_seq,
            "calls": calls,
        })
    }

    /// Counts for `/stats`: (recorded so far, kept now, capacity).
    pub fn counts(&self) -> (u64, usize, usize) {
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        (ring.next_seq, ring.calls.len(), self.capacity)
    }
}

/// Microseconds, saturating.
pub fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The marker a prompt carries its key in: `[barrage-key:KEY]`.
pub const PROMPT_KEY_MARKER: &[u8] = b"[barrage-key:";

/// The key of the last `[barrage-key:KEY]` marker in a request body (KEY: up to
/// [`MAX_KEY_BYTES`] of letters, digits, `.`, `-`, `_`), if any. It runs on every chat
/// request over the whole body (an agent's prompt: hundreds of KB), so the search goes
/// backwards from `[` to `[` with `memrchr` (vector code) and compares the marker only
/// there; `memmem::rfind` has no vector search backwards and cost several times as much.
pub fn prompt_key(body: &[u8]) -> Option<Box<str>> {
    let m = PROMPT_KEY_MARKER;
    let mut end = body.len();
    let at = loop {
        let open = memchr::memrchr(m[0], &body[..end])?;
        if body[open..].starts_with(m) {
            break open + m.len();
        }
        end = open;
    };
    let rest = &body[at..body.len().min(at + MAX_KEY_BYTES + 1)];
    let end = rest.iter().position(|&b| b == b']')?;
    let key = &rest[..end];
    let ok = !key.is_empty()
        && key
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    ok.then(|| std::str::from_utf8(key).ok().map(Box::from))
        .flatten()
}

/// A key as given, cut to [`MAX_KEY_BYTES`]; empty or control-character keys are none.
pub fn clean_key(raw: &str) -> Option<Box<str>> {
    let raw = raw.trim();
    if raw.is_empty() || raw.chars().any(char::is_control) {
        return None;
    }
    let mut end = raw.len().min(MAX_KEY_BYTES);
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    Some(raw[..end].into())
}

impl Query {
    /// Parses `since=SEQ&limit=N&key=K` (percent-encoded); names the bad parameter.
    pub fn parse(query: Option<&str>) -> Result<Query, String> {
        let mut q = Query::default();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value)
                .ok_or_else(|| format!("query parameter {name}: bad percent-encoding"))?;
            match name {
                "since" => {
                    q.since = value.parse().map_err(|_| {
                        format!("since={value:?}: expected a call number (seq) 0 or more")
                    })?;
                }
                "limit" => {
                    q.limit = Some(
                        value
                            .parse()
                            .map_err(|_| format!("limit={value:?}: expected a count 0 or more"))?,
                    );
                }
                "key" => q.key = Some(value),
                _ => {
                    return Err(format!(
                        "unknown query parameter {name:?}; use since, limit, key"
                    ))
                }
            }
        }
        Ok(q)
    }
}

/// Decodes `%XX` escapes and `+` (a space, as forms send it).
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(log: &CallLog, key: Option<&str>, bytes: u64) -> Call {
        let mut c = log.begin(Instant::now(), key.map(Into::into));
        c.prompt_bytes = bytes;
        c
    }

    #[test]
    fn ring_keeps_the_newest_and_counts_the_dropped() {
        let log = CallLog::new(3);
        for i in 0..5 {
            log.finish(call(&log, Some(if i % 2 == 0 { "a" } else { "b" }), i));
        }
        let doc = log.to_json(&Query::default());
        assert_eq!(doc["total"], 5);
        assert_eq!(doc["dropped"], 2);
        let seqs: Vec<u64> = doc["calls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, [2, 3, 4]);
        assert_eq!(doc["calls"][0]["prompt_bytes"], 2);
        assert_eq!(doc["calls"][0]["end"], "complete");

        // (query, seqs)
        let cases: &[(&str, &[u64])] = &[
            ("since=3", &[3, 4]),
            ("since=0&limit=1", &[2]),
            ("key=a", &[2, 4]),
            ("key=b&since=4", &[]),
            ("since=99", &[]),
        ];
        for (q, want) in cases {
            let doc = log.to_json(&Query::parse(Some(q)).unwrap());
            let got: Vec<u64> = doc["calls"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["seq"].as_u64().unwrap())
                .collect();
            assert_eq!(got, *want, "{q}");
        }
        assert_eq!(log.counts(), (5, 3, 3));
    }

    #[test]
    fn zero_capacity_keeps_nothing_but_counts() {
        let log = CallLog::new(0);
        log.finish(call(&log, None, 1));
        assert_eq!(log.counts(), (1, 0, 0));
        assert_eq!(
            log.to_json(&Query::default())["calls"],
            serde_json::json!([])
        );
    }

    #[test]
    fn query_parsing() {
        assert_eq!(
            Query::parse(Some("since=4&limit=2&key=run%2F1+x")).unwrap(),
            Query {
                since: 4,
                limit: Some(2),
                key: Some("run/1 x".into())
            }
        );
        assert_eq!(Query::parse(None).unwrap(), Query::default());
        for bad in ["since=-1", "limit=x", "key=%zz", "foo=1"] {
            let err = Query::parse(Some(bad)).unwrap_err();
            let name = bad.split('=').next().unwrap();
            assert!(err.contains(name), "{bad}: {err}");
        }
    }

    #[test]
    fn prompt_keys_are_the_last_marker() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                r#"{"messages":[{"role":"user","content":"[barrage-key:1.0.3] hi"}]}"#,
                Some("1.0.3"),
            ),
            (
                r#"{"messages":[{"content":"[barrage-key:a] x"},{"content":"ok"},{"content":"[barrage-key:b-2_c] y"}]}"#,
                Some("b-2_c"),
            ),
            (r#"{"messages":[{"content":"hi"}]}"#, None),
            (r#"{"messages":[{"content":"[barrage-key:] x"}]}"#, None),
            (r#"{"messages":[{"content":"[barrage-key:a b] x"}]}"#, None),
            (
                r#"{"messages":[{"content":"[barrage-key:unclosed"}]}"#,
                None,
            ),
            // Other brackets before, between and after markers, and right before one.
            (
                r#"{"messages":[{"content":"[x] [barrage-key:k1] [[barrage-key:k2] [y] [barrage-key"}]}"#,
                Some("k2"),
            ),
            ("[barrage-key:edge]", Some("edge")),
            ("[barrage-key:", None),
            ("[[[[", None),
            ("", None),
        ];
        for (body, want) in cases {
            assert_eq!(prompt_key(body.as_bytes()).as_deref(), *want, "{body}");
        }
        let long = format!("[barrage-key:{}]", "k".repeat(MAX_KEY_BYTES + 1));
        assert_eq!(prompt_key(long.as_bytes()), None, "longer than a key");
        // Many brackets after the marker: each is passed over, the marker still found.
        let brackets = format!("[barrage-key:deep] {}", "[a] [[b".repeat(10_000));
        assert_eq!(prompt_key(brackets.as_bytes()).as_deref(), Some("deep"));
    }

    #[test]
    fn keys_are_cleaned() {
        assert_eq!(clean_key(" run-1 ").as_deref(), Some("run-1"));
        assert_eq!(clean_key(""), None);
        assert_eq!(clean_key("a\nb"), None);
        let long = "é".repeat(100);
        let cut = clean_key(&long).unwrap();
        assert!(cut.len() <= MAX_KEY_BYTES && cut.chars().all(|c| c == 'é'));
    }
}

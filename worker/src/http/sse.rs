//! An incremental Server-Sent Events parser: feed it the body's chunks as they arrive,
//! it calls back once per complete event.
//!
//! Liberal in what it accepts, because Agent Protocol servers differ (see
//! `docs/WIRE.md`):
//!
//! | what | handled |
//! | --- | --- |
//! | line ends | `\r\n` (LangGraph Python), `\n` (LangGraph.js), a lone `\r`; a `\r\n` split across two chunks counts once |
//! | `data:` | several lines of one event are joined with `\n` (js pretty-prints JSON over many lines) |
//! | `id:` | anywhere in the event (js writes it after `data:`); kept as the last event id |
//! | `:` comments, unknown fields, `retry:` | ignored |
//! | `field: value` | one space after the colon is dropped; a line without a colon is a field with an empty value |
//! | end of body | the end of the stream: [`SseParser::finish`] dispatches an event left without its blank line |
//! | an event with a name but no `data:` | dispatched (the WHATWG spec drops it; a load tester should count it) |
//!
//! The parser copies only what spans chunk boundaries and the event's own fields; it
//! allocates nothing per event once its buffers have grown. What it keeps is bounded: a
//! line, or an event's joined `data`, longer than its limit ([`SseParser::set_limit`],
//! the plan's `flow.response_body_limit`) is an error ([`TooLarge`]) and the parser
//! refuses the rest of the stream, instead of a buffer that grows with what the target
//! sends.

use super::exchange::TooLarge;

/// Buffers larger than this are given back on [`SseParser::reset`].
const KEEP_CAPACITY: usize = 64 * 1024;

/// One complete event, borrowed from the parser's buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// The `event:` field, or `message` when there was none.
    pub event: &'a str,
    /// The `data:` lines joined with `\n`.
    pub data: &'a str,
    /// The last `id:` seen so far in the stream (it persists across events, as in the spec).
    pub id: Option<&'a str>,
}

/// The parser's state between chunks.
#[derive(Debug)]
pub struct SseParser {
    /// The longest line, and the longest joined `data`, accepted.
    limit: usize,
    /// A limit was passed: the stream is refused.
    over: bool,
    /// The start of a line whose end has not arrived yet.
    partial: Vec<u8>,
    /// The previous chunk ended with `\r`: a `\n` opening the next one belongs to it.
    pending_cr: bool,
    /// The current event's `event:` field.
    event: String,
    /// The current event's data lines, joined with `\n`.
    data: String,
    /// Whether the current event has any field that makes it an event (`event:` or `data:`).
    has_fields: bool,
    /// Whether `data` holds at least one line (so the next one is preceded by `\n`).
    has_data: bool,
    /// The last event id.
    id: String,
    has_id: bool,
    /// Events dispatched so far.
    events: u64,
}

impl Default for SseParser {
    fn default() -> Self {
        SseParser {
            limit: usize::MAX,
            over: false,
            partial: Vec::new(),
            pending_cr: false,
            event: String::new(),
            data: String::new(),
            has_fields: false,
            has_data: false,
            id: String::new(),
            has_id: false,
            events: 0,
        }
    }
}

impl SseParser {
    /// A parser without a limit.
    pub fn new() -> Self {
        Self::default()
    }

    /// A parser refusing lines and events longer than `limit` bytes.
    pub fn with_limit(limit: usize) -> Self {
        SseParser {
            limit,
            ..Self::default()
        }
    }

    /// Sets the longest line and event accepted from now on.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// Number of events dispatched so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Forgets everything, keeping the buffers' capacity up to a small bound (a huge
    /// stream once must not pin its memory in a pooled parser).
    pub fn reset(&mut self) {
        self.partial.clear();
        self.partial.shrink_to(KEEP_CAPACITY);
        self.data.clear();
        self.data.shrink_to(KEEP_CAPACITY);
        self.event.shrink_to(KEEP_CAPACITY);
        self.id.shrink_to(KEEP_CAPACITY);
        self.over = false;
        self.partial.clear();
        self.pending_cr = false;
        self.event.clear();
        self.data.clear();
        self.has_fields = false;
        self.has_data = false;
        self.id.clear();
        self.has_id = false;
        self.events = 0;
    }

    /// Parses the next chunk of the body; calls `on_event` for every event completed in it.
    /// `Err` once a line or an event is longer than the limit; the parser then refuses
    /// everything until [`SseParser::reset`].
    pub fn feed(
        &mut self,
        mut chunk: &[u8],
        on_event: &mut dyn FnMut(SseEvent<'_>),
    ) -> Result<(), TooLarge> {
        if self.over {
            return Err(TooLarge);
        }
        // An empty chunk must not forget a `\r` that ended the previous one (found by the
        // fuzz test: the `\n` after it then counted as a second, empty line).
        if chunk.is_empty() {
            return Ok(());
        }
        if self.pending_cr {
            self.pending_cr = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        while let Some(pos) = memchr::memchr2(b'\n', b'\r', chunk) {
            let end = chunk[pos];
            let line = &chunk[..pos];
            chunk = &chunk[pos + 1..];
            if end == b'\r' {
                match chunk.first() {
                    Some(b'\n') => chunk = &chunk[1..],
                    Some(_) => {}
                    None => self.pending_cr = true,
                }
            }
            if self.partial.len() + line.len() > self.limit {
                return self.refuse();
            }
            if self.partial.is_empty() {
                self.line(line, on_event)?;
            } else {
                let mut whole = std::mem::take(&mut self.partial);
                whole.extend_from_slice(line);
                let r = self.line(&whole, on_event);
                whole.clear();
                self.partial = whole;
                r?;
            }
        }
        if self.partial.len() + chunk.len() > self.limit {
            return self.refuse();
        }
        self.partial.extend_from_slice(chunk);
        Ok(())
    }

    fn refuse(&mut self) -> Result<(), TooLarge> {
        self.over = true;
        self.partial.clear();
        self.data.clear();
        Err(TooLarge)
    }

    /// The body ended: a line without its end and an event without its blank line count.
    pub fn finish(&mut self, on_event: &mut dyn FnMut(SseEvent<'_>)) -> Result<(), TooLarge> {
        if self.over {
            return Err(TooLarge);
        }
        if !self.partial.is_empty() {
            let whole = std::mem::take(&mut self.partial);
            let r = self.line(&whole, on_event);
            self.partial = whole;
            self.partial.clear();
            r?;
        }
        self.pending_cr = false;
        self.dispatch(on_event);
        Ok(())
    }

    fn line(
        &mut self,
        line: &[u8],
        on_event: &mut dyn FnMut(SseEvent<'_>),
    ) -> Result<(), TooLarge> {
        if line.is_empty() {
            self.dispatch(on_event);
            return Ok(());
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(0) => return Ok(()), // a comment
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"event" => {
                self.event.clear();
                self.event.push_str(&lossy(value));
                self.has_fields = true;
            }
            b"data" => {
                if self.data.len() + 1 + value.len() > self.limit {
                    return self.refuse();
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&lossy(value));
                self.has_data = true;
                self.has_fields = true;
            }
            // The spec ignores ids containing NUL.
            b"id" if !value.contains(&0) => {
                self.id.clear();
                self.id.push_str(&lossy(value));
                self.has_id = true;
            }
            _ => {} // retry and unknown fields
        }
        Ok(())
    }

    fn dispatch(&mut self, on_event: &mut dyn FnMut(SseEvent<'_>)) {
        if !self.has_fields {
            return;
        }
        self.events += 1;
        on_event(SseEvent {
            event: if self.event.is_empty() {
                "message"
            } else {
                &self.event
            },
            data: &self.data,
            id: self.has_id.then_some(self.id.as_str()),
        });
        self.event.clear();
        self.data.clear();
        self.has_fields = false;
        self.has_data = false;
    }
}

/// `bytes` as text: borrowed when valid UTF-8 (the fast check), else with U+FFFD for the
/// invalid sequences.
fn lossy(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (event, data, id) of every event.
    type Got = Vec<(String, String, Option<String>)>;

    fn parse_chunks(chunks: &[&[u8]]) -> Got {
        let mut p = SseParser::new();
        let mut got = Vec::new();
        let mut push = |e: SseEvent<'_>| {
            got.push((
                e.event.to_owned(),
                e.data.to_owned(),
                e.id.map(str::to_owned),
            ))
        };
        for c in chunks {
            p.feed(c, &mut push).unwrap();
        }
        p.finish(&mut push).unwrap();
        assert_eq!(p.events() as usize, got.len());
        got
    }

    fn ev(event: &str, data: &str, id: Option<&str>) -> (String, String, Option<String>) {
        (event.into(), data.into(), id.map(Into::into))
    }

    const PY: &str = "event: metadata\r\ndata: {\"run_id\":\"r1\",\"attempt\":1}\r\n\r\nevent: values\r\ndata: {\"messages\":[]}\r\n\r\n";
    const JS: &str = "event: metadata\ndata: {\ndata:   \"run_id\": \"r1\"\ndata: }\nid: 0\n\nevent: values\ndata: [1,\ndata: 2]\nid: 1\n\n";

    fn cases() -> Vec<(&'static str, &'static str, Got)> {
        vec![
            (
                "py: CRLF, compact",
                PY,
                vec![
                    ev("metadata", "{\"run_id\":\"r1\",\"attempt\":1}", None),
                    ev("values", "{\"messages\":[]}", None),
                ],
            ),
            (
                "js: LF, multi-line data, id after data",
                JS,
                vec![
                    ev("metadata", "{\n  \"run_id\": \"r1\"\n}", Some("0")),
                    ev("values", "[1,\n2]", Some("1")),
                ],
            ),
            (
                "comments and unknown fields are ignored",
                ": keep-alive\n\nretry: 100\nfoo: bar\nevent: a\n: inside\ndata: x\n\n",
                vec![ev("a", "x", None)],
            ),
            (
                "no trailing blank line at EOF",
                "event: values\ndata: {\"done\":true}",
                vec![ev("values", "{\"done\":true}", None)],
            ),
            (
                "no trailing newline after a complete line at EOF",
                "event: metadata\ndata: 1\n",
                vec![ev("metadata", "1", None)],
            ),
            (
                "data without event is a message; no space after colon",
                "data:plain\n\n",
                vec![ev("message", "plain", None)],
            ),
            (
                "only one leading space is dropped",
                "data:  two\n\n",
                vec![ev("message", " two", None)],
            ),
            (
                "lone CR line ends",
                "event: a\rdata: 1\r\revent: b\rdata: 2\r\r",
                vec![ev("a", "1", None), ev("b", "2", None)],
            ),
            (
                "event without data still counts",
                "event: end\n\n",
                vec![ev("end", "", None)],
            ),
            (
                "empty data line makes an empty-string event",
                "data\n\n",
                vec![ev("message", "", None)],
            ),
            (
                "blank lines alone dispatch nothing",
                "\n\n\r\n\n",
                vec![],
            ),
            (
                "error event",
                "event: metadata\ndata: {}\n\nevent: error\ndata: {\"error\":\"E\",\"message\":\"m\"}\n\n",
                vec![
                    ev("metadata", "{}", None),
                    ev("error", "{\"error\":\"E\",\"message\":\"m\"}", None),
                ],
            ),
            (
                "id persists to the next event",
                "id: 7\ndata: a\n\ndata: b\n\n",
                vec![ev("message", "a", Some("7")), ev("message", "b", Some("7"))],
            ),
            ("not SSE at all", "<html>oops</html>", vec![]),
            ("empty body", "", vec![]),
        ]
    }

    #[test]
    fn whole_bodies() {
        for (name, body, want) in cases() {
            assert_eq!(parse_chunks(&[body.as_bytes()]), want, "case {name}");
        }
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        for (name, body, want) in cases() {
            let b = body.as_bytes();
            for i in 0..=b.len() {
                assert_eq!(
                    parse_chunks(&[&b[..i], &b[i..]]),
                    want,
                    "case {name}, split at {i}"
                );
            }
            let bytes: Vec<&[u8]> = b.chunks(1).collect();
            assert_eq!(parse_chunks(&bytes), want, "case {name}, byte by byte");
        }
    }

    #[test]
    fn three_way_splits_of_the_js_stream() {
        let b = JS.as_bytes();
        let want = parse_chunks(&[b]);
        for i in 0..=b.len() {
            for j in i..=b.len() {
                assert_eq!(parse_chunks(&[&b[..i], &b[i..j], &b[j..]]), want, "{i} {j}");
            }
        }
    }

    #[test]
    fn reset_reuses_the_parser() {
        let mut p = SseParser::new();
        let mut n = 0;
        p.feed(b"event: a\ndata: partial", &mut |_| n += 1).unwrap();
        p.reset();
        p.feed(PY.as_bytes(), &mut |_| n += 1).unwrap();
        p.finish(&mut |_| n += 1).unwrap();
        assert_eq!((n, p.events()), (2, 2));
    }

    #[test]
    fn a_line_or_an_event_over_the_limit_is_refused_however_it_is_split() {
        let limit = 64;
        let long_line = format!("data: {}\n\n", "x".repeat(100));
        let long_event: String = (0..20).map(|_| "data: 0123456789\n").collect::<String>() + "\n";
        let endless_line = format!("data: {}", "x".repeat(100));
        for body in [&long_line, &long_event, &endless_line] {
            let b = body.as_bytes();
            for i in [0, 1, 7, 50, b.len()] {
                let mut p = SseParser::with_limit(limit);
                let mut events = 0;
                let r = p
                    .feed(&b[..i], &mut |_| events += 1)
                    .and_then(|()| p.feed(&b[i..], &mut |_| events += 1))
                    .and_then(|()| p.finish(&mut |_| events += 1));
                assert_eq!(r, Err(TooLarge), "{body:?} split at {i}");
                assert_eq!(events, 0);
                assert_eq!(
                    p.feed(b"data: ok\n\n", &mut |_| {}),
                    Err(TooLarge),
                    "stays refused"
                );
            }
        }
        // At the limit is fine.
        let mut p = SseParser::with_limit(limit);
        let line = format!("data: {}\n\n", "x".repeat(limit - 6));
        let mut got = 0;
        p.feed(line.as_bytes(), &mut |_| got += 1).unwrap();
        assert_eq!(got, 1);
    }

    #[test]
    fn an_empty_chunk_between_cr_and_lf_keeps_them_one_line_end() {
        let got = parse_chunks(&[b"data: a\r", b"", b"\ndata: b\n\n"]);
        assert_eq!(got, vec![ev("message", "a\nb", None)]);
    }

    #[test]
    fn reset_gives_back_a_huge_buffer() {
        let mut p = SseParser::new();
        p.feed(&vec![b'x'; 1 << 20], &mut |_| {}).unwrap();
        assert!(p.partial.capacity() >= 1 << 20);
        p.reset();
        assert!(p.partial.capacity() <= KEEP_CAPACITY);
    }

    /// Fuzz: `BARRAGE_FUZZ_CASES` cases (default 256) per property; the committed corpus
    /// (`tests/corpus/sse/*`) is always replayed first.
    mod fuzz {
        use super::*;
        use proptest::prelude::*;
        use proptest::test_runner::TestRunner;

        fn runner() -> TestRunner {
            TestRunner::new(barrage_testkit::fuzz_config(Some(
                "tests/corpus/proptest-regressions/sse.txt",
            )))
        }

        /// Events of `body` fed in pieces cut at `cuts` (sorted, deduplicated by the
        /// caller), with a limit; `None` when the parser refused the stream.
        fn events_split(body: &[u8], cuts: &[usize], limit: usize) -> Option<Got> {
            let mut p = SseParser::with_limit(limit);
            let mut got = Vec::new();
            let mut push = |e: SseEvent<'_>| {
                got.push((
                    e.event.to_owned(),
                    e.data.to_owned(),
                    e.id.map(str::to_owned),
                ))
            };
            let mut from = 0;
            for &c in cuts.iter().chain([&body.len()]) {
                let c = c.clamp(from, body.len());
                p.feed(&body[from..c], &mut push).ok()?;
                from = c;
            }
            p.finish(&mut push).ok()?;
            Some(got)
        }

        fn corpus() -> Vec<(String, Vec<u8>)> {
            barrage_testkit::corpus(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/sse"))
        }

        #[test]
        fn the_corpus_gives_the_same_events_split_anywhere() {
            for (name, body) in corpus() {
                let whole = events_split(&body, &[], usize::MAX);
                for i in 0..=body.len() {
                    assert_eq!(
                        events_split(&body, &[i], usize::MAX),
                        whole,
                        "{name} at {i}"
                    );
                }
                let every: Vec<usize> = (0..body.len()).collect();
                assert_eq!(events_split(&body, &every, usize::MAX), whole, "{name}");
            }
        }

        /// Bytes with many line ends, colons and field names, so the parser's paths are hit.
        fn sse_bytes() -> impl Strategy<Value = Vec<u8>> {
            let piece = prop_oneof![
                Just(b"\n".to_vec()),
                Just(b"\r".to_vec()),
                Just(b"\r\n".to_vec()),
                Just(b"data:".to_vec()),
                Just(b"data: ".to_vec()),
                Just(b"event: ".to_vec()),
                Just(b"id: ".to_vec()),
                Just(b":".to_vec()),
                proptest::collection::vec(any::<u8>(), 0..12),
            ];
            proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
        }

        #[test]
        fn any_bytes_split_anywhere_never_panic_and_give_the_same_events() {
            let strategy = (
                sse_bytes(),
                proptest::collection::vec(any::<usize>(), 0..6),
                prop_oneof![Just(usize::MAX), 1usize..64],
            );
            runner()
                .run(&strategy, |(body, cuts, limit)| {
                    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
                    cuts.sort_unstable();
                    let whole = events_split(&body, &[], limit);
                    prop_assert_eq!(events_split(&body, &cuts, limit), whole);
                    Ok(())
                })
                .unwrap();
        }
    }
}

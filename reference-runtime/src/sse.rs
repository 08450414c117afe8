//! Server-sent events, both ways: [`frame`] writes one event of ours (LF line ends,
//! compact JSON on one `data:` line, no `id:`, like the Python server but with LF,
//! which the Python server sends as CRLF); [`Decoder`] reads the LLM's
//! `text/event-stream` answer (LF or CRLF, multi-line `data:` joined with `\n`).

use bytes::Bytes;
use serde_json::Value;

/// `event: {event}\ndata: {data}\n\n`.
pub fn frame(event: &str, data: &Value) -> Bytes {
    let data = serde_json::to_string(data).unwrap_or_else(|_| "null".into());
    let mut out = String::with_capacity(event.len() + data.len() + 16);
    out.push_str("event: ");
    out.push_str(event);
    out.push_str("\ndata: ");
    out.push_str(&data);
    out.push_str("\n\n");
    Bytes::from(out)
}

/// Incremental SSE parser: feed it bytes as they come, get the `data` of each
/// complete event. Comments, `event:`, `id:` and `retry:` lines are skipped (the
/// OpenAI stream uses only `data:`).
#[derive(Debug, Default)]
pub struct Decoder {
    /// Bytes after the last complete line.
    partial: Vec<u8>,
    /// `data:` lines of the event being read.
    data: Option<String>,
}

impl Decoder {
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<String> {
        self.partial.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(pos) = self.partial[start..].iter().position(|&b| b == b'\n') {
            let end = start + pos;
            let line = &self.partial[start..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let line = String::from_utf8_lossy(line).into_owned();
            start = end + 1;
            self.line(&line, &mut events);
        }
        self.partial.drain(..start);
        events
    }

    /// Called at end of body: an event not closed by a blank line still counts.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.partial);
        let mut events = Vec::new();
        if !rest.is_empty() {
            let line = String::from_utf8_lossy(&rest);
            self.line(line.trim_end_matches('\r'), &mut events);
        }
        events.pop().or_else(|| self.data.take())
    }

    fn line(&mut self, line: &str, events: &mut Vec<String>) {
        if line.is_empty() {
            if let Some(data) = self.data.take() {
                events.push(data);
            }
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        if field == "data" {
            match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_is_one_event_with_lf() {
        let bytes = frame(
            "metadata",
            &serde_json::json!({"attempt": 1, "run_id": "r"}),
        );
        assert_eq!(
            &bytes[..],
            b"event: metadata\ndata: {\"attempt\":1,\"run_id\":\"r\"}\n\n"
        );
    }

    #[test]
    fn decoder_cases() {
        // (chunks fed in order, expected data of the events, expected leftover at finish)
        let cases: &[(&[&str], &[&str], Option<&str>)] = &[
            (&["data: a\n\n"], &["a"], None),
            (&["data: a\r\n\r\ndata: b\r\n\r\n"], &["a", "b"], None),
            (&["da", "ta: {\"x\"", ":1}\n", "\n"], &["{\"x\":1}"], None),
            (&["data: one\ndata: two\n\n"], &["one\ntwo"], None),
            (&[": comment\nevent: e\nid: 3\ndata:x\n\n"], &["x"], None),
            (&["data: [DONE]\n\n"], &["[DONE]"], None),
            (&["data: tail"], &[], Some("tail")),
            (&["data: tail\n"], &[], Some("tail")),
            (&["\n\n\n"], &[], None),
        ];
        for (chunks, want, leftover) in cases {
            let mut decoder = Decoder::default();
            let got: Vec<String> = chunks
                .iter()
                .flat_map(|c| decoder.feed(c.as_bytes()))
                .collect();
            assert_eq!(&got, want, "chunks {chunks:?}");
            assert_eq!(decoder.finish().as_deref(), *leftover, "chunks {chunks:?}");
        }
    }
}

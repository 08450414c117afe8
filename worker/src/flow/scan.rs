//! Finds where a JSON value ends without building it: what [`super::prune`] uses to pass
//! over the parts of an answer no check reads (all but the last message of a thread, each
//! message's metadata), which are almost all the bytes of a long agent answer.
//!
//! It refuses what serde_json's own skipping refuses (the JSON grammar; control characters,
//! bad escapes and `\u` without four hex digits inside strings; numbers by their grammar,
//! not their range; no depth limit, as serde_json has none when it skips) and also invalid
//! UTF-8 in strings, which serde_json refuses only in the strings it builds. It reports
//! only *that* the text is not JSON: the caller asks serde_json for the position and reason.
//!
//! Why not serde_json's skipping: it crosses a string 8 bytes per step, looking for `"`,
//! `\` and control characters at once. Here `memchr2` (SIMD) finds the next `"` or `\`, and
//! one branch-free pass over the bytes in between (which the compiler vectorizes) finds
//! control characters and non-ASCII bytes; only spans holding the latter go through a
//! UTF-8 check.

/// A position in a JSON text. Every method returns `None` where the text is not JSON.
pub(super) struct Scan<'a> {
    pub b: &'a [u8],
    pub at: usize,
    /// The enclosing `[` and `{` of the value being skipped (kept to reuse its memory).
    stack: Vec<u8>,
}

impl<'a> Scan<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Scan {
            b,
            at: 0,
            stack: Vec::new(),
        }
    }

    /// Skips JSON whitespace; the next byte, if any.
    pub fn ws(&mut self) -> Option<u8> {
        while let Some(&c) = self.b.get(self.at) {
            if !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                return Some(c);
            }
            self.at += 1;
        }
        None
    }

    /// Skips whitespace, then expects `c`.
    pub fn eat(&mut self, c: u8) -> Option<()> {
        (self.ws()? == c).then(|| self.at += 1)
    }

    /// At a `"`: skips the string; the bytes between its quotes (escapes as written).
    pub fn string(&mut self) -> Option<&'a [u8]> {
        let b = self.b;
        let start = self.at + 1;
        let mut at = start;
        loop {
            let rest = b.get(at..)?;
            let n = memchr::memchr2(b'"', b'\\', rest)?;
            plain_text(&rest[..n])?;
            at += n;
            if b[at] == b'"' {
                self.at = at + 1;
                return Some(&b[start..at]);
            }
            at += match *b.get(at + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => 2,
                b'u' if b.get(at + 2..at + 6)?.iter().all(u8::is_ascii_hexdigit) => 6,
                _ => return None,
            };
        }
    }

    /// At a digit or `-`: skips a number.
    fn number(&mut self) -> Option<()> {
        let b = self.b;
        let digits = |mut at: usize| {
            while b.get(at).is_some_and(u8::is_ascii_digit) {
                at += 1;
            }
            at
        };
        let mut at = self.at + usize::from(b[self.at] == b'-');
        at = match *b.get(at)? {
            b'0' => at + 1,
            b'1'..=b'9' => digits(at + 1),
            _ => return None,
        };
        if b.get(at) == Some(&b'.') {
            b.get(at + 1).filter(|c| c.is_ascii_digit())?;
            at = digits(at + 1);
        }
        if matches!(b.get(at), Some(b'e' | b'E')) {
            at += 1 + usize::from(matches!(b.get(at + 1), Some(b'+' | b'-')));
            b.get(at).filter(|c| c.is_ascii_digit())?;
            at = digits(at);
        }
        // as serde_json: no digit straight after a leading zero
        (!b.get(at).is_some_and(u8::is_ascii_digit)).then(|| self.at = at)
    }

    /// Skips whitespace, then one whole value.
    pub fn skip(&mut self) -> Option<()> {
        self.stack.clear();
        'value: loop {
            // A value.
            match self.ws()? {
                b'"' => {
                    self.string()?;
                }
                c @ (b'{' | b'[') => {
                    self.at += 1;
                    let close = if c == b'{' { b'}' } else { b']' };
                    if self.ws()? != close {
                        self.stack.push(c);
                        if c == b'{' {
                            self.key()?;
                        }
                        continue 'value;
                    }
                    self.at += 1;
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                b'-' | b'0'..=b'9' => self.number()?,
                _ => return None,
            }
            // After a value: a comma and the next one, or the end of enclosing lists and objects.
            loop {
                let Some(&open) = self.stack.last() else {
                    return Some(());
                };
                match (open, self.ws()?) {
                    (_, b',') => {
                        self.at += 1;
                        if open == b'{' {
                            self.key()?;
                        }
                        continue 'value;
                    }
                    (b'[', b']') | (b'{', b'}') => {
                        self.at += 1;
                        self.stack.pop();
                    }
                    _ => return None,
                }
            }
        }
    }

    /// An object's key and its `:`.
    fn key(&mut self) -> Option<()> {
        if self.ws()? != b'"' {
            return None;
        }
        self.string()?;
        self.eat(b':')
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.b[self.at..]
            .starts_with(word)
            .then(|| self.at += word.len())
    }
}

/// `Some` if `span` (a string's bytes between escapes) holds no control character and is
/// UTF-8. Branch-free over ASCII, so the compiler vectorizes it.
fn plain_text(span: &[u8]) -> Option<()> {
    let (mut low, mut high) = (u8::MAX, 0u8);
    for &c in span {
        low = low.min(c);
        high = high.max(c);
    }
    if low < 0x20 {
        return None;
    }
    if high >= 0x80 {
        std::str::from_utf8(span).ok()?;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where `text`'s first value ends, if it is JSON.
    fn end(text: &str) -> Option<usize> {
        let mut s = Scan::new(text.as_bytes());
        s.skip()?;
        Some(s.at)
    }

    #[test]
    fn skips_what_serde_json_reads_and_refuses_what_it_refuses() {
        for text in [
            r#"{}"#,
            r#"[]"#,
            r#" { "a" : [ 1 , -2.5e+3 , 0 , 0.1 , 1E9 , -0 , true , false , null , "" ] } "#,
            r#"{"a":{"b":{"c":[[[{}]],[]]}},"d":"\"\\\/\b\f\n\r\t\u00e9\uD83C\uDF0D"}"#,
            "\"h\u{e9}llo w\u{f6}rld \u{1f30d} ]}{,:\"",
            r#"[1,[2,[3,[4,[5]]]],{"x":[{"y":{}}]}]"#,
            "123",
            "-0.0e-0",
            // not a value's range: skipped as serde_json skips it
            "1e999",
        ] {
            assert!(
                serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok(),
                "{text}"
            );
            assert_eq!(end(text).map(|e| text[e..].trim()), Some(""), "{text}");
        }
        for bad in [
            "",
            " ",
            "{",
            "[",
            "}",
            "]",
            "[1,]",
            "[,1]",
            "{,}",
            r#"{"a"}"#,
            r#"{"a":}"#,
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{1:2}"#,
            "[1 2]",
            r#"{"a":1 "b":2}"#,
            "01",
            "-",
            "-a",
            "1.",
            ".5",
            "1e",
            "1e+",
            "+1",
            "tru",
            "nul",
            "True",
            r#""abc"#,
            r#""\x""#,
            r#""\u12""#,
            r#""\u12g4""#,
            "\"a\u{1}b\"",
            "\"tab\there\"",
            "\"\\",
            "[1,[2,3]",
            r#"{"a":[1,2}"#,
            r#"[{"a":1]"#,
        ] {
            assert!(
                serde_json::from_str::<serde::de::IgnoredAny>(bad).is_err(),
                "{bad}"
            );
            let ok = end(bad).is_some_and(|e| bad[e..].trim().is_empty());
            assert!(!ok, "{bad:?} was taken for JSON");
        }
        // invalid UTF-8 in a string
        let mut text = b"[\"a".to_vec();
        text.extend_from_slice(&[0xc3, 0x28]);
        text.extend_from_slice(b"\"]");
        assert!(Scan::new(&text).skip().is_none());
    }

    #[test]
    fn stops_at_the_end_of_the_first_value() {
        assert_eq!(end(r#"{"a":[1,{"b":"}"}]} ,"next""#), Some(19));
        assert_eq!(end(r#"  "x\"y" ]"#), Some(8));
        assert_eq!(end("12,3"), Some(2));
        assert_eq!(end("null]"), Some(4));
        // deep nesting: no recursion, no limit (as serde_json's skipping)
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert_eq!(end(&deep), Some(20_000));
    }

    #[test]
    fn strings_give_their_raw_bytes() {
        let mut s = Scan::new(br#""a\"b" "#);
        assert_eq!(s.string(), Some(&br#"a\"b"#[..]));
        assert_eq!(s.at, 6);
        // long spans (past memchr's and the vectorized pass's blocks), with one control byte
        let long = format!("\"{}\"", "word ".repeat(1000));
        assert_eq!(end(&long), Some(long.len()));
        for at in [1, 17, 2500, 4999] {
            let mut bad = long.clone().into_bytes();
            bad[at] = b'\n';
            assert!(Scan::new(&bad).skip().is_none(), "{at}");
        }
    }

    #[test]
    fn short_and_long_strings_agree_with_serde_json_at_every_length() {
        // short and long strings (keys, ids, types and text), with each kind of byte the
        // scan must check (escape, control, non-ASCII, invalid UTF-8) at each place
        let specials: [&[u8]; 6] = [
            b"\\n",
            b"\\q",
            b"\x01",
            "\u{e9}".as_bytes(),
            b"\xff",
            b"\x7f",
        ];
        for len in 0..28 {
            let plain = vec![b'a'; len];
            let mut text = b"[\"".to_vec();
            text.extend_from_slice(&plain);
            text.extend_from_slice(b"\",1]");
            assert_eq!(end_bytes(&text), Some(text.len()), "{len}");
            for special in specials {
                for at in 0..=len {
                    let mut text = b"[\"".to_vec();
                    text.extend_from_slice(&plain[..at]);
                    text.extend_from_slice(special);
                    text.extend_from_slice(&plain[at..]);
                    text.extend_from_slice(b"\",1]");
                    let ok = std::str::from_utf8(&text)
                        .is_ok_and(|t| serde_json::from_str::<serde::de::IgnoredAny>(t).is_ok());
                    let want = ok.then_some(text.len());
                    assert_eq!(end_bytes(&text), want, "{len} {at} {special:?}");
                }
            }
        }
    }

    fn end_bytes(text: &[u8]) -> Option<usize> {
        let mut s = Scan::new(text);
        s.skip()?;
        Some(s.at)
    }
}

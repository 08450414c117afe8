//! Reads a JSON answer into a [`Value`] holding only what the step's checks and captures
//! look at ([`Need`]), so the big parts of an agent answer (each message's metadata, all
//! but the last message, …) are passed over instead of being built and freed.
//!
//! The result answers the checks exactly like the full value: a kept key holds its whole
//! value; a list read by the last-message check ([`Need::last_message`]) keeps its length (the messages before
//! the last are `null`) and its last element's `type` and `content`; anything whose
//! shape differs from the need (an array where an object was expected, …) is kept whole.
//! Skipped parts are still checked for syntax and UTF-8 ([`super::scan`]), so an answer
//! that is not JSON is still refused, with serde_json's own error.
//!
//! The elements of such a list are not read one by one: which one is the last is only
//! known at the `]`, and an agent's thread is almost all message text. Each element is
//! only delimited where it lies, and the last is then read with its need; building every
//! message's `content` to drop all but one was most of the worker's CPU per byte of a long
//! thread. What is left per byte is crossing the skipped strings, which [`super::scan`]
//! does with SIMD rather than serde_json's 8 bytes per step.
use serde::de::Error as _;
use serde_json::{Map, Value};

use super::scan::Scan;

/// What of a JSON value is read.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Need {
    /// Nothing: the value may be skipped (never the root: a root is always read).
    #[default]
    Nothing,
    /// The whole value.
    All,
    /// Of an object, these keys (each with its own need); other keys are skipped.
    Fields(Vec<(String, Need)>),
    /// Of an array, its length and its last element (with this need).
    Last(Box<Need>),
}

impl Need {
    /// Adds `other`: the union of both.
    fn merge(&mut self, other: Need) {
        *self = match (std::mem::take(self), other) {
            (Need::Nothing, n) | (n, Need::Nothing) => n,
            (Need::Fields(mut a), Need::Fields(b)) => {
                for (k, n) in b {
                    match a.iter_mut().find(|(ak, _)| *ak == k) {
                        Some((_, an)) => an.merge(n),
                        None => a.push((k, n)),
                    }
                }
                Need::Fields(a)
            }
            (Need::Last(mut a), Need::Last(b)) => {
                a.merge(*b);
                Need::Last(a)
            }
            _ => Need::All,
        }
    }

    /// `leaf` at RFC 6901 `pointer` (tokens are object keys; `~1` → `/`, `~0` → `~`).
    pub fn at(pointer: &str, leaf: Need) -> Need {
        if pointer.is_empty() {
            return leaf;
        }
        let Some(rest) = pointer.strip_prefix('/') else {
            return Need::All;
        };
        let (token, tail) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let key = token.replace("~1", "/").replace("~0", "~");
        Need::Fields(vec![(key, Need::at(tail, leaf))])
    }

    /// Of a message list at `pointer`, its length and its last message's `type` and
    /// `content` (what [`super::check::Check::LastMessageAi`] reads).
    pub fn last_message(pointer: &str) -> Need {
        let message = Need::Fields(vec![
            ("type".into(), Need::All),
            ("content".into(), Need::All),
        ]);
        Need::at(pointer, Need::Last(Box::new(message)))
    }

    /// The union of what the step's checks (`checks`, each one's need) and JSON captures
    /// (`pointers`) read.
    pub fn of_step(checks: impl IntoIterator<Item = Need>, pointers: &[&str]) -> Need {
        let mut need = Need::Nothing;
        for c in checks {
            need.merge(c);
        }
        for p in pointers {
            need.merge(Need::at(p, Need::All));
        }
        need
    }
}

/// Parses `text` (one JSON value, surrounding whitespace allowed) keeping what `need` reads.
pub fn parse(text: &[u8], need: &Need) -> serde_json::Result<Value> {
    if matches!(need, Need::All | Need::Nothing) {
        return serde_json::from_slice(text);
    }
    let mut s = Scan::new(text);
    let pruned = value(&mut s, need).filter(|_| s.ws().is_none());
    // Not JSON: serde_json says where and why (reading the whole text, as a check would).
    pruned.ok_or_else(|| match serde_json::from_slice::<Value>(text) {
        Err(e) => e,
        Ok(_) => serde_json::Error::custom("the answer is not JSON"),
    })
}

/// `value` at RFC 6901 `pointer`, like [`Value::pointer`] but without allocating a string
/// per token when the pointer has no `~` escape (it runs for every check of every step).
pub fn pointer<'v>(value: &'v Value, pointer: &str) -> Option<&'v Value> {
    if pointer.contains('~') {
        return value.pointer(pointer);
    }
    if pointer.is_empty() {
        return Some(value);
    }
    let mut at = value;
    for token in pointer.strip_prefix('/')?.split('/') {
        at = match at {
            Value::Object(map) => map.get(token)?,
            Value::Array(list) => {
                // as serde_json: decimal digits without a leading zero (a lone "0" is fine)
                if token.is_empty()
                    || !token.bytes().all(|b| b.is_ascii_digit())
                    || (token.len() > 1 && token.starts_with('0'))
                {
                    return None;
                }
                list.get(token.parse::<usize>().ok()?)?
            }
            _ => return None,
        };
    }
    Some(at)
}

/// Reads the value at `s` (after whitespace) keeping what `need` reads; `None` where
/// the text is not JSON.
fn value(s: &mut Scan<'_>, need: &Need) -> Option<Value> {
    match (need, s.ws()?) {
        (Need::Fields(fields), b'{') => object(s, fields),
        (Need::Last(elem), b'[') => last(s, elem),
        _ => whole(s),
    }
}

/// The whole value at `s`, built by serde_json, which says where it ends.
fn whole(s: &mut Scan<'_>) -> Option<Value> {
    let mut values = serde_json::Deserializer::from_slice(&s.b[s.at..]).into_iter::<Value>();
    let v = values.next()?.ok()?;
    s.at += values.byte_offset();
    Some(v)
}

/// At a `{`: the needed fields (the last of duplicate keys wins, as serde_json).
fn object(s: &mut Scan<'_>, fields: &[(String, Need)]) -> Option<Value> {
    s.at += 1;
    let mut out = Map::new();
    if s.ws()? == b'}' {
        s.at += 1;
        return Some(Value::Object(out));
    }
    loop {
        if s.ws()? != b'"' {
            return None;
        }
        let start = s.at;
        let raw = s.string()?;
        let hit = if raw.contains(&b'\\') {
            let key: String = serde_json::from_slice(&s.b[start..s.at]).ok()?;
            fields.iter().find(|(k, _)| *k == key)
        } else {
            fields.iter().find(|(k, _)| k.as_bytes() == raw)
        };
        s.eat(b':')?;
        match hit {
            Some((k, Need::Nothing | Need::All)) => {
                out.insert(k.clone(), whole(s)?);
            }
            Some((k, need)) => {
                out.insert(k.clone(), value(s, need)?);
            }
            None => s.skip()?,
        }
        match s.ws()? {
            b',' => s.at += 1,
            b'}' => break,
            _ => return None,
        }
    }
    s.at += 1;
    Some(Value::Object(out))
}

/// At a `[`: its length (`null`s) and its last element, read with `elem`.
fn last(s: &mut Scan<'_>, elem: &Need) -> Option<Value> {
    s.at += 1;
    let mut out = Vec::new();
    if s.ws()? == b']' {
        s.at += 1;
        return Some(Value::Array(out));
    }
    // Each element is only delimited; which one is the last is known at the `]`.
    let mut at_last;
    loop {
        s.ws()?;
        at_last = s.at;
        out.push(Value::Null);
        s.skip()?;
        match s.ws()? {
            b',' => s.at += 1,
            b']' => break,
            _ => return None,
        }
    }
    let end = s.at + 1;
    s.at = at_last;
    let v = value(s, elem)?;
    s.at = end;
    *out.last_mut()? = v;
    Some(Value::Array(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn last_ai(pointer: &str) -> Need {
        Need::last_message(pointer)
    }

    /// What the no-run-error check reads.
    fn no_run_error() -> Need {
        Need::at("/__error__", Need::All)
    }

    #[test]
    fn keeps_what_the_checks_read_and_skips_the_rest() {
        let text = br#" {"values":{"messages":[{"type":"human","content":"hi","id":"1"},
            {"type":"ai","content":"yo","response_metadata":{"big":[1,2,3]}}],"other":1},
            "next":[],"__error__":null,"a~b/c":"x"} "#;
        let need = Need::of_step([last_ai("/values/messages"), no_run_error()], &["/a~0b~1c"]);
        let v = parse(text, &need).unwrap();
        assert_eq!(
            v,
            json!({"values": {"messages": [null, {"type": "ai", "content": "yo"}]},
                   "__error__": null, "a~b/c": "x"})
        );
        // the checks' pointers answer as on the full value
        let full: Value = serde_json::from_slice(text).unwrap();
        for p in [
            "/values/messages/1/type",
            "/values/messages/1/content",
            "/__error__",
            "/a~0b~1c",
        ] {
            assert_eq!(v.pointer(p), full.pointer(p), "{p}");
        }
        assert_eq!(
            v.pointer("/values/messages")
                .unwrap()
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn unexpected_shapes_are_kept_whole_and_bad_json_is_refused() {
        let need = Need::of_step([last_ai("/messages")], &[]);
        // an object where a list is expected, a list at the root
        let v = parse(br#"{"messages":{"type":"ai","x":1}}"#, &need).unwrap();
        assert_eq!(v, json!({"messages": {"type": "ai", "x": 1}}));
        let v = parse(br#"[1,{"a":2}]"#, &need).unwrap();
        assert_eq!(v, json!([1, {"a": 2}]));
        for bad in [
            &b"{\"messages\":[1,}"[..],
            b"{\"skipped\":[1,2} ",
            b"{} x",
            b"",
        ] {
            assert!(
                parse(bad, &need).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // the whole value where the need says so; duplicate keys: the last wins, as serde_json
        let need = Need::of_step([Need::at("/id", Need::All)], &["/id"]);
        assert_eq!(
            parse(br#"{"id":"a","id":{"b":[1]},"z":2}"#, &need).unwrap(),
            json!({"id": {"b": [1]}})
        );
    }

    /// The last-message check's reading of a list, on the pruned and on the full value.
    fn last_of(v: &Value, p: &str) -> Option<(usize, Option<Value>, Option<Value>)> {
        let list = v.pointer(p)?.as_array()?;
        let last = list.last();
        Some((
            list.len(),
            last.and_then(|m| m.get("type")).cloned(),
            last.and_then(|m| m.get("content")).cloned(),
        ))
    }

    #[test]
    fn only_the_last_element_of_a_list_is_read_whatever_the_elements_hold() {
        let need = Need::of_step([last_ai("/m"), no_run_error()], &[]);
        for text in [
            r#"{"m":[]}"#,
            r#"{"m":[{"type":"ai","content":"only"}]}"#,
            // escapes, brackets and quotes inside strings, unicode as is and escaped
            r#"{"m":[{"type":"human","content":"a\"b\\c ]],}{ \u00e9\n"},
                     {"type":"ai","content":"h\u00e9llo \ud83c\udf0d wörld 🌍 \"]\""}]}"#,
            // nested arrays and objects in skipped and in read elements
            r#"{"m":[{"type":"tool","content":[[1,[2,[3]]],{"x":[{},[]]}],"k":{"a":[null]}},
                     [1,[2]],"s",3.5e-2,null,true,
                     {"content":[{"type":"text","text":"p]"}],"type":"ai","extra":[[[]]]}]}"#,
            // the last element is not a message
            r#"{"m":[{"type":"ai","content":"x"},[1,2]]}"#,
            r#"{"m":[{"type":"ai","content":"x"},"text"]}"#,
            r#"{"m":[{"type":"ai","content":"x"},null]}"#,
            // duplicate keys in the last message: the last wins, as serde_json
            r#"{"m":[{"type":"human"},{"type":"human","type":"ai","content":"a","content":""}]}"#,
            // whitespace everywhere
            " { \"m\" : [ { \"type\" : \"ai\" } , { \"content\" : \"c\" , \"type\" : \"ai\" } ] } ",
        ] {
            let full: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
            let pruned = parse(text.as_bytes(), &need).unwrap_or_else(|e| panic!("{e}: {text}"));
            assert_eq!(last_of(&pruned, "/m"), last_of(&full, "/m"), "{text}");
            assert!(last_of(&pruned, "/m").is_some(), "{text}");
        }
        // a list of lists of messages: the last's last
        let need = Need::at("/m", Need::Last(Box::new(Need::Last(Box::new(Need::All)))));
        let v = parse(br#"{"m":[[1,2],[3,[4,5]],[6,{"z":[7]}]]}"#, &need).unwrap();
        assert_eq!(v, json!({"m": [null, null, [null, {"z": [7]}]]}));
    }

    #[test]
    fn bad_json_in_any_element_of_a_list_is_refused() {
        let need = Need::of_step([last_ai("/m")], &[]);
        for bad in [
            r#"{"m":[{"type":"ai","content":"\x"},{"type":"ai","content":"ok"}]}"#,
            "{\"m\":[{\"content\":\"a\u{1}b\"},{\"type\":\"ai\"}]}",
            r#"{"m":[{"content":"\u12"},{"type":"ai"}]}"#,
            r#"{"m":[{"a":1}{"b":2}]}"#,
            r#"{"m":[{"a":1},]}"#,
            r#"{"m":[,{"a":1}]}"#,
            r#"{"m":[01,{"a":1}]}"#,
            r#"{"m":[tru,{"a":1}]}"#,
            r#"{"m":[{"a":[1,2},{"a":1}]}"#,
            r#"{"m":[{"a":1},{"type":"ai","content":"x"}"#,
            r#"{"m":[{"a":1},{"type":"ai","content":"x}]}"#,
            r#"{"m":[{"type":"ai","content":"x"}]}]"#,
        ] {
            assert!(serde_json::from_str::<Value>(bad).is_err(), "{bad}");
            assert!(parse(bad.as_bytes(), &need).is_err(), "{bad}");
        }
        // invalid UTF-8 inside a list's element
        let mut text = br#"{"m":[{"content":"a"#.to_vec();
        text.extend_from_slice(&[0xff, 0xfe]);
        text.extend_from_slice(br#""},{"type":"ai"}]}"#);
        assert!(parse(&text, &need).is_err());
    }

    /// Answers with one byte changed, dropped or cut short: whatever serde_json reads in
    /// full is read with the same answers to the checks, and nothing serde_json's own
    /// skipping refuses is taken for JSON.
    #[test]
    fn damaged_answers_are_read_as_serde_json_reads_them() {
        let need = Need::of_step([last_ai("/values/messages"), no_run_error()], &["/next"]);
        let text = br#"{"values":{"messages":[{"type":"human","content":"a \"quoted\" \u00e9 word","id":"1",
            "meta":{"n":[1,-2.5e3,0,true,null]}},{"type":"ai","content":"caf\u00e9 ok","x":[[],{}]}]},
            "next":["a",{"b":0.5}],"__error__":null}"#;
        let noise = b"\",]}{[:0ae-.+ \x01\t";
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: usize| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % n as u64) as usize
        };
        let mut read_whole = 0;
        for round in 0..4000 {
            let mut t = text.to_vec();
            let at = next(t.len());
            match round % 3 {
                0 => t[at] = noise[next(noise.len())],
                1 => {
                    t.remove(at);
                }
                _ => t.truncate(at),
            }
            if round % 50 == 0 {
                if let Some(b) = t.get_mut(at) {
                    *b = 0xff;
                }
            }
            let full = serde_json::from_slice::<Value>(&t);
            let pruned = parse(&t, &need);
            let shown = String::from_utf8_lossy(&t);
            if let Ok(full) = &full {
                read_whole += 1;
                let pruned = pruned.as_ref().unwrap_or_else(|e| panic!("{e}: {shown}"));
                for p in ["/values/messages", "/messages"] {
                    assert_eq!(last_of(pruned, p), last_of(full, p), "{shown}");
                }
                for p in ["/__error__", "/next"] {
                    assert_eq!(pruned.pointer(p), full.pointer(p), "{shown}");
                }
            }
            if pruned.is_ok() {
                let skipped = serde_json::from_slice::<serde::de::IgnoredAny>(&t);
                assert!(skipped.is_ok(), "taken for JSON: {shown}");
            }
        }
        // the damage left enough answers whole for the comparison to mean something
        assert!(read_whole > 300, "{read_whole}");
    }

    #[test]
    fn needs_merge() {
        let mut a = Need::at("/x/y", Need::All);
        a.merge(Need::at("/x/z", Need::Last(Box::new(Need::All))));
        a.merge(Need::at("/w", Need::Nothing));
        assert_eq!(
            a,
            Need::Fields(vec![
                (
                    "x".into(),
                    Need::Fields(vec![
                        ("y".into(), Need::All),
                        ("z".into(), Need::Last(Box::new(Need::All)))
                    ])
                ),
                ("w".into(), Need::Nothing),
            ])
        );
        let mut b = Need::at("/x", Need::All);
        b.merge(Need::at("/x/y", Need::All));
        assert_eq!(b, Need::Fields(vec![("x".into(), Need::All)]));
    }

    #[test]
    fn pointer_agrees_with_serde_json() {
        let v: Value = serde_json::from_str(
            r#"{"a":{"b":[10,{"c":"x"}],"":{"e~f":1,"g/h":2}},"0":"zero","l":[1,2,3]}"#,
        )
        .unwrap();
        for p in [
            "",
            "/a",
            "/a/b",
            "/a/b/0",
            "/a/b/1/c",
            "/a/b/2",
            "/a/b/01",
            "/a/b/-",
            "/a/b/",
            "/a/",
            "/a//e~0f",
            "/a//g~1h",
            "/0",
            "/l/00",
            "/l/2",
            "/l/+1",
            "a",
            "/missing",
            "/a/b/1/c/d",
        ] {
            assert_eq!(pointer(&v, p), v.pointer(p), "{p:?}");
        }
    }
}

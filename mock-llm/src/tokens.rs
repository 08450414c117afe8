//! Token accounting: how text is split into stream pieces and how tokens are counted.
//!
//! A "token" here is a whitespace-separated word, as in the Bun anchor. A stream sends one
//! word per chunk together with the whitespace before it, so the pieces concatenate back to
//! the configured text exactly (leading whitespace stays on the first piece, trailing
//! whitespace goes on the last).

/// Number of whitespace-separated words in `text` (Unicode whitespace, as
/// `str::split_whitespace`).
///
/// Every prompt byte goes through here, so it dominated the CPU of large requests: ASCII
/// text (the usual prompt) takes a byte path that counts word starts pairwise, without a
/// loop-carried state, which the compiler vectorizes; other text takes `split_whitespace`.
pub fn count_words(text: &str) -> u64 {
    let bytes = text.as_bytes();
    if !bytes.is_ascii() {
        return text.split_whitespace().count() as u64;
    }
    // ASCII whitespace as `char::is_whitespace` has it: \t \n \x0B \x0C \r and space.
    let ws = |b: u8| b == b' ' || b.wrapping_sub(b'\t') < 5;
    let Some((&head, _)) = bytes.split_first() else {
        return 0;
    };
    // A word starts at i + 1 where byte i is whitespace and byte i + 1 is not. Two
    // offset slices, summed in blocks with narrow counters, so the loop runs on vectors.
    let (prev, next) = (&bytes[..bytes.len() - 1], &bytes[1..]);
    let mut starts = u64::from(!ws(head));
    for (p, n) in prev.chunks(4096).zip(next.chunks(4096)) {
        let block: u32 = p
            .iter()
            .zip(n)
            .map(|(&a, &b)| u32::from(ws(a) & !ws(b)))
            .sum();
        starts += u64::from(block);
    }
    starts
}

/// Splits `text` into one piece per word, each carrying the whitespace before it.
/// Concatenating the pieces gives `text` back. Text without words gives no pieces.
pub fn stream_pieces(text: &str) -> Vec<&str> {
    // End offset of every word.
    let mut ends = Vec::new();
    let mut in_word = false;
    for (i, c) in text.char_indices() {
        let space = c.is_whitespace();
        if in_word && space {
            ends.push(i);
        }
        in_word = !space;
    }
    if in_word {
        ends.push(text.len());
    }
    let Some(last) = ends.len().checked_sub(1) else {
        return Vec::new();
    };
    let mut pieces = Vec::with_capacity(ends.len());
    let mut start = 0;
    for (k, &end) in ends.iter().enumerate() {
        let end = if k == last { text.len() } else { end };
        pieces.push(&text[start..end]);
        start = end;
    }
    pieces
}

/// Splits a tool call's arguments string into pieces of at most `max` bytes (on character
/// boundaries), the way providers stream `function.arguments` in fragments.
pub fn argument_pieces(arguments: &str, max: usize) -> Vec<&str> {
    let max = max.max(1);
    let mut pieces = Vec::new();
    let mut rest = arguments;
    while !rest.is_empty() {
        let mut end = rest.len().min(max);
        while !rest.is_char_boundary(end) {
            end += 1;
        }
        let (head, tail) = rest.split_at(end);
        pieces.push(head);
        rest = tail;
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_pieces_cases() {
        let cases: &[(&str, &[&str])] = &[
            ("", &[]),
            ("   ", &[]),
            ("one", &["one"]),
            ("one two", &["one", " two"]),
            ("one two three.", &["one", " two", " three."]),
            ("  lead", &["  lead"]),
            ("trail  ", &["trail  "]),
            ("a\n\nb\tc", &["a", "\n\nb", "\tc"]),
            ("  x  y  ", &["  x", "  y  "]),
            ("héllo wörld", &["héllo", " wörld"]),
        ];
        for (text, want) in cases {
            let got = stream_pieces(text);
            assert_eq!(&got, want, "pieces of {text:?}");
            assert_eq!(got.concat().trim(), text.trim(), "{text:?}");
            if !want.is_empty() {
                assert_eq!(got.concat(), *text, "{text:?} must round-trip");
            }
            assert_eq!(got.len() as u64, count_words(text), "{text:?}");
        }
    }

    #[test]
    fn default_response_has_42_pieces() {
        let pieces = stream_pieces(crate::config::DEFAULT_RESPONSE);
        assert_eq!(pieces.len(), 42);
        assert_eq!(pieces[0], "This");
        assert_eq!(pieces[1], " is");
        assert_eq!(pieces.concat(), crate::config::DEFAULT_RESPONSE);
    }

    #[test]
    fn count_words_cases() {
        let cases: &[(&str, u64)] = &[
            ("", 0),
            (" ", 0),
            ("a", 1),
            ("a b", 2),
            (" a  b\n c ", 3),
            ("x\u{3000}y", 2),
            ("a\x0Bb\x0Cc\rd\te", 5),
            ("\x1Fa", 1),
            ("a\u{a0}b c", 3),
        ];
        for (text, want) in cases {
            assert_eq!(count_words(text), *want, "{text:?}");
            assert_eq!(
                count_words(text),
                text.split_whitespace().count() as u64,
                "{text:?}"
            );
        }
        // Every ASCII byte next to a letter: the byte path agrees with split_whitespace.
        for b in 0u8..128 {
            let c = char::from(b);
            for text in [format!("a{c}b"), format!("{c}a{c}"), format!("{c}{c}")] {
                assert_eq!(
                    count_words(&text),
                    text.split_whitespace().count() as u64,
                    "{text:?}"
                );
            }
        }
    }

    #[test]
    fn argument_pieces_cases() {
        let cases: &[(&str, usize, &[&str])] = &[
            ("", 4, &[]),
            ("{}", 4, &["{}"]),
            ("{\"a\":1}", 4, &["{\"a\"", ":1}"]),
            ("ééé", 3, &["éé", "é"]),
            ("abc", 0, &["a", "b", "c"]),
        ];
        for (args, max, want) in cases {
            let got = argument_pieces(args, *max);
            assert_eq!(&got, want, "{args:?} / {max}");
            assert_eq!(got.concat(), *args);
        }
    }
}

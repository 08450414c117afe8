//! Token accounting: how text is split into stream pieces and how tokens are counted.
//!
//! A "token" here is a whitespace-separated word, as in the Bun anchor. A stream sends one
//! word per chunk together with the whitespace before it, so the pieces concatenate back to
//! the configured text exactly (leading whitespace stays on the first piece, trailing
//! whitespace goes on the last).

/// Number of whitespace-separated words in `text` (Unicode whitespace, as
/// `str::split_whitespace`).
///
/// Every prompt byte goes through here, so it set the CPU of large requests. The text is
/// taken in pieces of about [`PIECE`] bytes (cut on character boundaries, the whitespace
/// state carried across): an ASCII piece (the usual prompt) is counted by [`ascii_starts`],
/// a loop the compiler turns into vector code; a piece with other characters is counted
/// character by character, so one `é` or `\u{3000}` in a long prompt costs only its piece.
pub fn count_words(text: &str) -> u64 {
    count_in_pieces(text.as_bytes(), |at, end| text.get(at..end)).unwrap_or_default()
}

/// [`count_words`] of text given as bytes, which are checked to be UTF-8 on the way (only
/// its non-ASCII pieces cost anything): `None` when they are not.
pub fn count_words_utf8(bytes: &[u8]) -> Option<u64> {
    count_in_pieces(bytes, |at, end| std::str::from_utf8(&bytes[at..end]).ok())
}

/// Counts the words of `bytes` piece by piece; `text_of(at, end)` gives a non-ASCII
/// piece as text (`None`: not UTF-8). Pieces end before a byte that starts a character,
/// so a UTF-8 text's pieces are UTF-8, and text whose pieces all are, is.
fn count_in_pieces<'t>(
    bytes: &'t [u8],
    mut text_of: impl FnMut(usize, usize) -> Option<&'t str>,
) -> Option<u64> {
    let mut words = 0;
    // Whether the byte before the current piece is whitespace (the text's start counts).
    let mut after_space = true;
    let mut at = 0;
    while at < bytes.len() {
        let mut end = (at + PIECE).min(bytes.len());
        // UTF-8 continuation bytes are 0b10xx_xxxx.
        while end < bytes.len() && bytes[end] & 0xC0 == 0x80 {
            end += 1;
        }
        let piece = &bytes[at..end];
        if piece.is_ascii() {
            words += ascii_starts(piece, after_space);
            after_space = piece.last().copied().is_some_and(ascii_space);
        } else {
            for c in text_of(at, end)?.chars() {
                let space = c.is_whitespace();
                words += u64::from(after_space && !space);
                after_space = space;
            }
        }
        at = end;
    }
    Some(words)
}

/// Bytes [`count_words`] looks at in one go: small enough that a non-ASCII character costs
/// little, large enough that the per-piece checks vanish beside the counting.
const PIECE: usize = 4096;

/// ASCII whitespace as `char::is_whitespace` has it: `\t \n \x0B \x0C \r` and space.
fn ascii_space(b: u8) -> bool {
    b == b' ' || b.wrapping_sub(b'\t') < 5
}

/// Word starts in an ASCII `piece` (non-empty) whose previous byte was whitespace when
/// `after_space`. A word starts at `i + 1` where byte `i` is whitespace and byte `i + 1` is
/// not: two offset slices compared lane by lane, with no state carried from one byte to the
/// next, summed in narrow (`u8`) counters over short blocks, so the loop runs on vectors.
fn ascii_starts(piece: &[u8], after_space: bool) -> u64 {
    let Some((&head, _)) = piece.split_first() else {
        return 0;
    };
    let mut starts = u64::from(after_space && !ascii_space(head));
    let (prev, next) = (&piece[..piece.len() - 1], &piece[1..]);
    // A block of 128 pairs holds at most 64 word starts: its u8 sum cannot overflow.
    for (p, n) in prev.chunks(128).zip(next.chunks(128)) {
        let block = p.iter().zip(n).fold(0u8, |sum, (&a, &b)| {
            sum.wrapping_add(u8::from(ascii_space(a) & !ascii_space(b)))
        });
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

    /// Long texts, where the piece and block paths run: every kind of character at every
    /// offset around a piece's end and a block's end, against `split_whitespace`.
    #[test]
    fn count_words_across_pieces_and_blocks() {
        let kinds = [
            " ",
            "\t",
            "\n",
            "\x0B",
            "\x0C",
            "\r",
            "\x1F",
            "x",
            "é",
            "\u{85}",
            "\u{a0}",
            "\u{1680}",
            "\u{2000}",
            "\u{200b}",
            "\u{2028}",
            "\u{3000}",
            "\u{1F600}",
        ];
        for ends_at in [128, 129, PIECE, 2 * PIECE] {
            for offset in ends_at - 4..ends_at + 4 {
                for kind in kinds {
                    for fill in ["a", " ", "a "] {
                        let mut text = fill.repeat(offset / fill.len() + 1);
                        text.truncate(offset);
                        text.push_str(kind);
                        text.push_str(&fill.repeat(PIECE / fill.len()));
                        assert_eq!(
                            count_words(&text),
                            text.split_whitespace().count() as u64,
                            "{kind:?} at {offset} after {fill:?}"
                        );
                    }
                }
            }
        }
        // Mixed texts from a fixed pseudo-random sequence, up to three pieces long.
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        for round in 0..200 {
            let mut text = String::new();
            let len = (round * 61) % (3 * PIECE + 7);
            while text.len() < len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let k = (state % 64) as usize;
                // Mostly letters and spaces, as prompts are; now and then anything else.
                text.push_str(match k {
                    0..=29 => "w",
                    30..=44 => " ",
                    _ => kinds[k % kinds.len()],
                });
            }
            assert_eq!(
                count_words(&text),
                text.split_whitespace().count() as u64,
                "round {round}: {text:?}"
            );
        }
    }

    #[test]
    fn count_words_utf8_checks_the_bytes() {
        let valid = [
            "",
            "a b",
            "héllo wörld",
            "x\u{3000}y\u{a0}z",
            "\u{1F600} \u{1F600}",
        ];
        for text in valid {
            assert_eq!(
                count_words_utf8(text.as_bytes()),
                Some(count_words(text)),
                "{text:?}"
            );
        }
        let long = "word ".repeat(2 * PIECE);
        let invalid: &[&[u8]] = &[
            b"\xFF",
            b"a \xC3",
            b"\xC3\x28",
            // A lone surrogate as WTF-8 (what a JSON byte string keeps of `\ud800`).
            b"x \xED\xA0\x80 y",
            b"\xF4\x90\x80\x80",
        ];
        for bad in invalid {
            assert_eq!(count_words_utf8(bad), None, "{bad:?}");
            // Far into a long text, after ASCII pieces, and across a piece's end.
            for at in [PIECE - 2, PIECE - 1, PIECE, PIECE + 1, PIECE + 3000] {
                let mut text = long.as_bytes().to_vec();
                text.splice(at..at, bad.iter().copied());
                assert_eq!(count_words_utf8(&text), None, "{bad:?} at {at}");
            }
        }
        // A valid character cut by a piece's end is still valid.
        for at in [PIECE - 2, PIECE - 1, PIECE] {
            let mut text = long.clone();
            text.insert_str(at, "\u{1F600}\u{3000}");
            assert_eq!(count_words_utf8(text.as_bytes()), Some(count_words(&text)));
            assert_eq!(count_words(&text), text.split_whitespace().count() as u64);
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

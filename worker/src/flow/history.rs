//! `{history}`: the plan's `flow.history_bytes` of conversation before a run's user
//! message, as an agent's client sends it (tens of thousands of tokens: 100–500 KB of
//! JSON per call).
//!
//! The text is JSON messages, each followed by a comma, so a flow splices it first in a
//! messages array (`"messages":[{history}{"role":"user",…}]`) and an empty history leaves
//! the body as it was. It opens with a system prompt, then alternates user and assistant
//! turns of varied lengths (prose of common words, as a tokenizer or the mock LLM's word
//! count sees a real conversation), and is exactly `flow.history_bytes` long. It is made
//! once per run, deterministically (the same plan sends the same bytes), in the plain
//! roles every Agent Protocol server accepts (no tool messages, whose pairing rules differ
//! between servers). Bodies holding it are sent from the compiled step without a copy per
//! request ([`super::step::Body::Pieces`]).

/// Words the turns are made of; none needs JSON escaping or looks like a `{reference}`.
const WORDS: &[&str] = &[
    "the",
    "agent",
    "calls",
    "a",
    "tool",
    "to",
    "read",
    "file",
    "and",
    "then",
    "writes",
    "summary",
    "of",
    "what",
    "it",
    "found",
    "in",
    "repository",
    "user",
    "asked",
    "for",
    "list",
    "open",
    "issues",
    "with",
    "their",
    "labels",
    "search",
    "returned",
    "results",
    "from",
    "index",
    "next",
    "step",
    "is",
    "check",
    "tests",
    "before",
    "merging",
    "change",
    "function",
    "returns",
    "error",
    "when",
    "input",
    "empty",
    "so",
    "we",
    "add",
    "guard",
    "at",
    "start",
    "plan",
    "has",
    "three",
    "parts",
    "first",
    "fetch",
    "data",
    "second",
    "parse",
    "third",
    "report",
    "numbers",
    "table",
    "shows",
    "latency",
    "p95",
    "under",
    "load",
    "rising",
    "after",
    "deploy",
    "rollback",
    "fixed",
    "regression",
    "query",
    "database",
    "took",
    "seconds",
    "because",
    "missing",
    "cache",
    "hit",
    "rate",
    "dropped",
    "below",
    "target",
    "threshold",
    "alert",
    "fired",
    "on",
    "call",
    "engineer",
    "acknowledged",
    "page",
    "within",
    "minutes",
    "context",
    "window",
    "holds",
    "previous",
    "messages",
    "model",
    "answers",
    "based",
    "on",
    "history",
    "stream",
    "tokens",
    "back",
    "client",
    "renders",
    "them",
    "as",
    "they",
    "arrive",
    "thread",
    "state",
    "keeps",
    "every",
    "turn",
    "checkpoint",
    "saved",
    "per",
    "node",
    "graph",
    "runs",
    "until",
    "end",
    "condition",
    "met",
    "observation:",
    "result:",
    "thought:",
    "action:",
    "done.",
    "yes,",
    "no,",
    "however,",
    "also",
    "note",
    "that",
    "this",
    "may",
    "take",
    "longer",
    "than",
    "expected",
    "if",
    "server",
    "busy",
];

/// `{"role":"` + role + `","content":"` + content + `"},`
fn overhead(role: &str) -> usize {
    r#"{"role":"","content":""},"#.len() + role.len()
}

/// A small deterministic generator (xorshift64*): the same history for the same size.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Appends exactly `len` bytes of prose.
fn prose(rng: &mut Rng, len: usize, out: &mut String) {
    let end = out.len() + len;
    let mut words_in_sentence = 0;
    while out.len() < end {
        let word = WORDS[rng.below(WORDS.len())];
        out.push_str(word);
        words_in_sentence += 1;
        if words_in_sentence > 8 && rng.below(6) == 0 {
            out.push('.');
            words_in_sentence = 0;
        }
        out.push(' ');
    }
    out.truncate(end);
}

/// The longest and shortest turn contents, by role.
fn turn_len(rng: &mut Rng, role: &str) -> usize {
    match role {
        "system" => 2_000,
        "user" => 150 + rng.below(1_200),
        _ => 400 + rng.below(3_600),
    }
}

/// The smallest history: one message with a little content.
pub const MIN_BYTES: usize = 64;

/// `bytes` of JSON messages, each followed by a comma (nothing for 0); at least
/// [`MIN_BYTES`] otherwise (the plan accepts 256 and more).
pub fn generate(bytes: usize) -> String {
    let mut out = String::with_capacity(bytes);
    if bytes == 0 {
        return out;
    }
    let bytes = bytes.max(MIN_BYTES);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ bytes as u64);
    let mut role = "system";
    // A turn after this one needs at least this much room: else this one takes it all.
    let room_for_another = overhead("assistant") + 16;
    loop {
        let remaining = bytes - out.len();
        let wanted = turn_len(&mut rng, role);
        let last = remaining < overhead(role) + wanted + room_for_another;
        let content = if last {
            remaining - overhead(role)
        } else {
            wanted
        };
        out.push_str(r#"{"role":""#);
        out.push_str(role);
        out.push_str(r#"","content":""#);
        prose(&mut rng, content, &mut out);
        out.push_str(r#""},"#);
        if last {
            break;
        }
        role = if role == "user" { "assistant" } else { "user" };
    }
    debug_assert_eq!(out.len(), bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(history: &str) -> Vec<serde_json::Value> {
        let array = format!(r#"[{history}{{"role":"user","content":"now"}}]"#);
        serde_json::from_str(&array).unwrap_or_else(|e| panic!("{e}: {array:.200}"))
    }

    #[test]
    fn the_history_is_exactly_its_size_and_a_conversation() {
        assert_eq!(generate(0), "");
        for bytes in [256, 1_000, 4_099, 102_400, 512_000] {
            let h = generate(bytes);
            assert_eq!(h.len(), bytes);
            let m = messages(&h);
            assert_eq!(m[0]["role"], "system", "{bytes}");
            assert_eq!(m.last().unwrap()["content"], "now");
            let roles: Vec<&str> = m[1..m.len() - 1]
                .iter()
                .map(|x| x["role"].as_str().unwrap())
                .collect();
            for pair in roles.windows(2) {
                assert_ne!(pair[0], pair[1], "turns alternate: {roles:?}");
            }
            if bytes >= 102_400 {
                assert!(m.len() > 40, "{bytes}: {} messages", m.len());
                let words = h.split_whitespace().count();
                assert!(words > bytes / 10, "{bytes}: {words} words");
            }
            assert_eq!(h, generate(bytes), "deterministic");
            assert!(!h.contains('\\') && !h.contains("{history"));
        }
    }
}

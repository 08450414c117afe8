//! Text with `{name}` references (paths, JSON bodies, expected values), parsed once and
//! rendered per request into reused buffers.
//!
//! A reference is `{` + a lowercase identifier + `}` naming a variable of the
//! [`VarTable`]: a constant from the plan (`graph_id`, `model_name`, `message`), a
//! per-iteration value (`vu`, `iter`) or a value captured from an earlier step
//! (`assistant_id`, `thread_id`). Anything else in braces (JSON's `{"…`) is literal; an
//! identifier that names no variable is an error, so a typo cannot pass silently.
//! Values are percent-encoded in paths and JSON-escaped in bodies.
use std::fmt;

use bytes::Bytes;

/// Where a variable's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarKind {
    /// Fixed for the whole run (from the plan).
    Const(String),
    /// Set by the iteration runner at the start of each iteration (`vu`, `iter`).
    Iteration,
    /// Captured from a step's answer.
    Captured,
    /// Template text spliced where it is referenced, as written (not escaped), its own
    /// references resolved: a JSON fragment from the plan (`stream_mode`'s array, the
    /// assistant's `,"barrage_tag":"vu-{vu}-…"` field). Expanded once, at parse.
    Splice(String),
}

/// The variables a flow knows, by slot.
#[derive(Debug, Clone, Default)]
pub struct VarTable {
    vars: Vec<(String, VarKind)>,
}

/// Slot of `vu` (1-based global VU number).
pub const VU: usize = 0;
/// Slot of `iter` (the VU's iteration number, 0-based).
pub const ITER: usize = 1;

impl VarTable {
    /// `vu` and `iter`.
    pub fn new() -> Self {
        VarTable {
            vars: vec![
                ("vu".into(), VarKind::Iteration),
                ("iter".into(), VarKind::Iteration),
            ],
        }
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        self.vars.iter().position(|(n, _)| n == name)
    }

    /// Adds (or finds) a variable; its slot.
    pub fn add(&mut self, name: &str, kind: VarKind) -> usize {
        if let Some(i) = self.index(name) {
            self.vars[i].1 = kind;
            return i;
        }
        self.vars.push((name.to_owned(), kind));
        self.vars.len() - 1
    }

    pub fn len(&self) -> usize {
        self.vars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    pub fn name(&self, slot: usize) -> &str {
        &self.vars[slot].0
    }

    pub fn is_const(&self, slot: usize) -> bool {
        matches!(self.vars[slot].1, VarKind::Const(_) | VarKind::Splice(_))
    }

    /// Fresh values: constants filled in, the rest unset.
    pub fn values(&self) -> Vars {
        let mut v = Vars {
            values: vec![String::new(); self.vars.len()],
            set: vec![false; self.vars.len()],
            constant: vec![false; self.vars.len()],
        };
        for (i, (_, kind)) in self.vars.iter().enumerate() {
            if let VarKind::Const(c) = kind {
                v.values[i].push_str(c);
                v.set[i] = true;
                v.constant[i] = true;
            }
        }
        v
    }
}

/// Variable values of one iteration; the strings are reused across iterations.
#[derive(Debug, Clone)]
pub struct Vars {
    values: Vec<String>,
    set: Vec<bool>,
    constant: Vec<bool>,
}

impl Vars {
    /// Unsets every non-constant value (keeping the strings' capacity).
    pub fn clear(&mut self) {
        for i in 0..self.values.len() {
            if !self.constant[i] {
                self.values[i].clear();
                self.set[i] = false;
            }
        }
    }

    pub fn set(&mut self, slot: usize, value: &str) {
        self.values[slot].clear();
        self.values[slot].push_str(value);
        self.set[slot] = true;
    }

    /// The value's string, to write into directly (then it counts as set).
    pub fn slot_mut(&mut self, slot: usize) -> &mut String {
        self.set[slot] = true;
        let s = &mut self.values[slot];
        s.clear();
        s
    }

    /// Takes `other`'s values (same table), keeping this one's strings' capacity.
    pub fn copy_from(&mut self, other: &Vars) {
        for i in 0..self.values.len() {
            self.values[i].clear();
            self.values[i].push_str(&other.values[i]);
            self.set[i] = other.set[i];
        }
    }

    /// Unsets a value (a group's cleanup deleted its resource).
    pub fn unset(&mut self, slot: usize) {
        if !self.constant[slot] {
            self.values[slot].clear();
            self.set[slot] = false;
        }
    }

    pub fn get(&self, slot: usize) -> Option<&str> {
        self.set[slot].then(|| self.values[slot].as_str())
    }

    pub fn is_set(&self, slot: usize) -> bool {
        self.set[slot]
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(Box<str>),
    Var(usize),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    segs: Vec<Seg>,
}

/// A reference naming no variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownVar(pub String);

impl fmt::Display for UnknownVar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown variable {{{}}}", self.0)
    }
}

impl Template {
    pub fn parse(text: &str, table: &VarTable) -> Result<Template, UnknownVar> {
        let mut segs = Vec::new();
        let mut lit = String::new();
        Self::parse_into(text, table, &mut segs, &mut lit, 0)?;
        if !lit.is_empty() {
            segs.push(Seg::Lit(lit.into()));
        }
        Ok(Template { segs })
    }

    fn parse_into(
        text: &str,
        table: &VarTable,
        segs: &mut Vec<Seg>,
        lit: &mut String,
        depth: usize,
    ) -> Result<(), UnknownVar> {
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            lit.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let ident_len = after
                .bytes()
                .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
                .count();
            let is_reference = ident_len > 0
                && after.as_bytes()[0].is_ascii_lowercase()
                && after.as_bytes().get(ident_len) == Some(&b'}');
            if is_reference {
                let name = &after[..ident_len];
                let slot = table
                    .index(name)
                    .ok_or_else(|| UnknownVar(name.to_owned()))?;
                rest = &after[ident_len + 1..];
                if let VarKind::Splice(text) = &table.vars[slot].1 {
                    // a splice holding itself (directly or not) would never end
                    if depth >= 4 {
                        return Err(UnknownVar(format!("{name} (spliced too deep)")));
                    }
                    Self::parse_into(text, table, segs, lit, depth + 1)?;
                    continue;
                }
                if !lit.is_empty() {
                    segs.push(Seg::Lit(std::mem::take(lit).into()));
                }
                segs.push(Seg::Var(slot));
            } else {
                lit.push('{');
                rest = after;
            }
        }
        lit.push_str(rest);
        Ok(())
    }

    /// The variable slots it uses.
    pub fn vars(&self) -> impl Iterator<Item = usize> + '_ {
        self.segs.iter().filter_map(|s| match s {
            Seg::Var(v) => Some(*v),
            Seg::Lit(_) => None,
        })
    }

    /// True when every variable it uses is a constant: it can be rendered once.
    pub fn is_constant(&self, table: &VarTable) -> bool {
        self.vars().all(|v| table.is_const(v))
    }

    /// Appends the template with values percent-encoded (for paths and query strings).
    pub fn render_path(&self, vars: &Vars, out: &mut String) {
        for seg in &self.segs {
            match seg {
                Seg::Lit(s) => out.push_str(s),
                Seg::Var(v) => percent_encode(vars.get(*v).unwrap_or(""), out),
            }
        }
    }

    /// Appends the template with values JSON-escaped (the template supplies the quotes).
    pub fn render_json(&self, vars: &Vars, out: &mut Vec<u8>) {
        for seg in &self.segs {
            match seg {
                Seg::Lit(s) => out.extend_from_slice(s.as_bytes()),
                Seg::Var(v) => json_escape(vars.get(*v).unwrap_or(""), out),
            }
        }
    }

    /// Appends the template with values as they are.
    pub fn render_raw(&self, vars: &Vars, out: &mut String) {
        for seg in &self.segs {
            match seg {
                Seg::Lit(s) => out.push_str(s),
                Seg::Var(v) => out.push_str(vars.get(*v).unwrap_or("")),
            }
        }
    }
}

/// A piece of a body sent without being copied per request ([`Template::json_pieces`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Text fixed for the run (literals and constants, JSON-escaped), shared.
    Text(Bytes),
    /// A per-iteration or captured variable, JSON-escaped per request.
    Var(usize),
}

impl Template {
    /// The template as [`Piece`]s: literal text and the constants' values (escaped) merged
    /// into fixed pieces, so that only what changes per iteration is rendered per request
    /// and a large fixed part (a `{history}`) goes to the socket from where it is.
    pub fn json_pieces(&self, table: &VarTable) -> Vec<Piece> {
        let constants = table.values();
        let mut pieces = Vec::new();
        let mut text: Vec<u8> = Vec::new();
        for seg in &self.segs {
            match seg {
                Seg::Lit(s) => text.extend_from_slice(s.as_bytes()),
                Seg::Var(v) if table.is_const(*v) => {
                    json_escape(constants.get(*v).unwrap_or(""), &mut text)
                }
                Seg::Var(v) => {
                    if !text.is_empty() {
                        pieces.push(Piece::Text(Bytes::from(std::mem::take(&mut text))));
                    }
                    pieces.push(Piece::Var(*v));
                }
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(Bytes::from(text)));
        }
        pieces
    }
}

/// Renders the variables of `pieces` into `buf` (cleared first) and gives the body's
/// slices in order: the fixed pieces where they are, the variables from `buf`.
pub fn render_pieces<'a>(pieces: &'a [Piece], vars: &Vars, buf: &'a mut Vec<u8>) -> Vec<&'a [u8]> {
    buf.clear();
    let mut ends = Vec::with_capacity(pieces.len());
    for p in pieces {
        if let Piece::Var(v) = p {
            json_escape(vars.get(*v).unwrap_or(""), buf);
            ends.push(buf.len());
        }
    }
    let buf: &'a Vec<u8> = buf;
    let mut start = 0;
    let mut ends = ends.into_iter();
    pieces
        .iter()
        .map(|p| match p {
            Piece::Text(t) => &t[..],
            Piece::Var(_) => {
                let end = ends.next().unwrap_or(start);
                let s = &buf[start..end];
                start = end;
                s
            }
        })
        .collect()
}

fn percent_encode(value: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
}

fn json_escape(value: &str, out: &mut Vec<u8>) {
    if !value.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.extend_from_slice(value.as_bytes());
        return;
    }
    // serde_json writes a quoted string; keep what is between the quotes.
    if let Ok(quoted) = serde_json::to_vec(value) {
        out.extend_from_slice(&quoted[1..quoted.len() - 1]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> VarTable {
        let mut t = VarTable::new();
        t.add("thread_id", VarKind::Captured);
        t.add("message", VarKind::Const("say \"hi\"\n{vu}".into()));
        t
    }

    #[test]
    fn references_and_literal_braces() {
        let t = table();
        let tpl = Template::parse(
            r#"{"thread":"{thread_id}","vu":{vu},"msg":"{message}","x":{"y":1}}"#,
            &t,
        )
        .unwrap();
        let mut vars = t.values();
        vars.set(VU, "7");
        vars.set(t.index("thread_id").unwrap(), "a/b c");
        let mut json = Vec::new();
        tpl.render_json(&vars, &mut json);
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["thread"], "a/b c");
        assert_eq!(v["vu"], 7);
        assert_eq!(v["msg"], "say \"hi\"\n{vu}");
        assert_eq!(v["x"]["y"], 1);
        assert!(!tpl.is_constant(&t));

        let path = Template::parse("/threads/{thread_id}/state", &t).unwrap();
        let mut s = String::from("http://h");
        path.render_path(&vars, &mut s);
        assert_eq!(s, "http://h/threads/a%2Fb%20c/state");
        assert!(Template::parse("{message}", &t).unwrap().is_constant(&t));
    }

    #[test]
    fn unknown_references_are_errors() {
        assert_eq!(
            Template::parse("/threads/{thread}", &table()),
            Err(UnknownVar("thread".into()))
        );
        // not identifiers: literal, rendered as written
        let t = table();
        let literal = Template::parse("{Thread} { x} {1} {", &t).unwrap();
        let mut s = String::new();
        literal.render_path(&t.values(), &mut s);
        assert_eq!(s, "{Thread} { x} {1} {");
        let mut json = Vec::new();
        literal.render_json(&t.values(), &mut json);
        assert_eq!(json, b"{Thread} { x} {1} {");
    }

    #[test]
    fn splices_are_expanded_as_written_with_their_references() {
        let mut t = table();
        t.add("field", VarKind::Splice(r#","tag":"v{vu}""#.into()));
        t.add("modes", VarKind::Splice(r#"["values"]"#.into()));
        let tpl = Template::parse(r#"{"a":1{field},"m":{modes}}"#, &t).unwrap();
        let mut vars = t.values();
        vars.set(VU, "3");
        let mut json = Vec::new();
        tpl.render_json(&vars, &mut json);
        assert_eq!(json, br#"{"a":1,"tag":"v3","m":["values"]}"#);
        t.add("me", VarKind::Splice("{me}".into()));
        assert!(Template::parse("{me}", &t).is_err());
    }

    #[test]
    fn pieces_send_what_the_template_renders() {
        let mut t = table();
        t.add("big", VarKind::Splice("x".repeat(1000)));
        let tpl = Template::parse(
            r#"{"t":"{thread_id}","m":"{message}","b":"{big}","v":{vu},"i":{iter}}"#,
            &t,
        )
        .unwrap();
        let pieces = tpl.json_pieces(&t);
        // literals and constants merged: text, thread_id, text, vu, text, iter, text
        assert_eq!(pieces.len(), 7, "{pieces:?}");
        let mut vars = t.values();
        for (slot, value) in [(VU, "12"), (ITER, "3")] {
            vars.set(slot, value);
        }
        vars.set(t.index("thread_id").unwrap(), "a\"b");
        let mut whole = Vec::new();
        tpl.render_json(&vars, &mut whole);
        let mut buf = vec![b'?'; 7];
        let sent: Vec<u8> = render_pieces(&pieces, &vars, &mut buf).concat();
        assert_eq!(
            String::from_utf8(sent).unwrap(),
            String::from_utf8(whole).unwrap()
        );
    }

    #[test]
    fn clear_keeps_constants() {
        let t = table();
        let mut v = t.values();
        v.set(VU, "1");
        v.clear();
        assert_eq!(v.get(VU), None);
        assert_eq!(v.get(t.index("message").unwrap()), Some("say \"hi\"\n{vu}"));
    }
}

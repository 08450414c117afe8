//! A flow compiled for running: each step of a [`FlowDef`] ([`barrage_core::plan::StepSpec`])
//! becomes a [`Step`] (templates parsed, checks compiled, captures given slots), and the
//! order of the main steps becomes a [`Schedule`] of waves. Done once per run; an error
//! names the step and the field.
use std::ops::Range;
use std::time::Duration;

use barrage_core::plan::{Check, FlowDef, RetryPolicy, StepKind};
use bytes::Bytes;
use reqwest::Method;

use super::check::{json_need, CompiledCheck};
use super::template::{Piece, Template, VarKind, VarTable};
use super::FlowError;

/// What the answer's body is read as: JSON (whatever the content type says, after any
/// leading whitespace; an empty body reads as `null`), SSE (parsed as it arrives), or
/// not looked at.
pub use barrage_core::plan::StepKind as ResponseKind;

/// Where a captured value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capture {
    /// The string (or number) at a JSON pointer of the answer, e.g. `/assistant_id`.
    Json { var: String, pointer: String },
    /// Set (to `1`) when the step passed: marks a resource created (a store item).
    Created { var: String },
}

/// How a body is produced per request.
#[derive(Debug, Clone)]
pub enum Body {
    None,
    /// Rendered once (no per-iteration variable): cloning it is a reference count.
    Fixed(Bytes),
    Template(Template),
    /// A template with at least [`PIECES_MIN`] bytes of fixed text (a `{history}`): sent
    /// as pieces, its fixed text from where it is (no copy per request), only its
    /// variables rendered per request.
    Pieces(Vec<Piece>),
}

/// Fixed text from which a templated body is sent as [`Body::Pieces`]: above it, a copy
/// per request costs more than a write of several buffers (the HTTP client's limit for
/// copying a body next to its head is the same, so such a body is never copied there).
pub const PIECES_MIN: usize = crate::http::INLINE_BODY_MAX;

/// Extra tags of a step's Trend sample.
#[derive(Debug, Clone, Default)]
pub enum StepTags {
    /// Only `operation`.
    #[default]
    None,
    /// Fixed values: the series is resolved once.
    Fixed(Vec<(String, String)>),
    /// Values from templates (`{turn}`): rendered per sample.
    Templated(Vec<(String, Template)>),
}

/// A compiled step.
#[derive(Debug, Clone)]
pub struct Step {
    /// The `operation` tag of its samples, and its name in failures.
    pub operation: String,
    /// The Trend its duration goes to (its name unless the flow says `metric`).
    pub trend: String,
    pub tags: StepTags,
    pub method: Method,
    pub path: Template,
    pub body: Body,
    pub response: ResponseKind,
    pub checks: Vec<CompiledCheck>,
    /// (slot, how).
    pub captures: Vec<(usize, Capture)>,
    pub cleanup: bool,
    /// In a group: a cleanup step then runs at the end of each turn or copy of it.
    pub grouped: bool,
    pub requires: Vec<usize>,
    /// The answer is parsed as JSON only when a check or capture reads it.
    pub needs_json: bool,
    /// What of the JSON answer the checks and captures read ([`super::prune`]).
    pub json_need: super::prune::Need,
    pub retry: Option<RetryPolicy>,
    pub think_time: Duration,
    /// The mock LLM's call log URL for this step's run (runtime overhead, [`super::overhead`]).
    pub llm_calls: Option<Template>,
}

/// How a group's steps run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupMode {
    /// N times, one after the other.
    Repeat(u32),
    /// N copies at the same time.
    FanOut(u32),
}

/// A group of consecutive steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    /// The slot of its index variable.
    pub slot: usize,
    pub mode: GroupMode,
}

/// One unit of a wave: a step, or a group of steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Indices into the flow's steps.
    pub steps: Range<usize>,
    pub group: Option<Group>,
}

/// The main steps in waves: every node of a wave starts when the waves before it ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schedule {
    pub waves: Vec<Vec<Node>>,
}

impl Schedule {
    /// Whether every wave is one step (the agent flow): run in order, nothing copied.
    pub fn is_sequential(&self) -> bool {
        self.waves
            .iter()
            .all(|w| w.len() == 1 && w[0].group.is_none())
    }
}

/// A flow ready to run.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub steps: Vec<Step>,
    pub schedule: Schedule,
}

/// Adds the flow's variables (its `vars`, every capture and mark, the groups' indices) to
/// `table`, then compiles the steps and their schedule against it. `flow` is validated
/// ([`FlowDef::validate`]); what only compiling finds (a template naming no variable, a
/// body that is not JSON) is an error naming the step and the field.
pub fn compile(flow: &FlowDef, table: &mut VarTable) -> Result<Compiled, FlowError> {
    let mut problems = Vec::new();
    flow.validate("flow", &mut problems);
    if !problems.is_empty() {
        return Err(FlowError::Def(problems.join("; ")));
    }
    for (name, value) in &flow.vars {
        table.add(name, VarKind::Const(value.clone()));
    }
    for s in &flow.steps {
        for var in s.capture.keys().chain(&s.mark) {
            table.add(var, VarKind::Captured);
        }
    }
    for name in flow.groups.keys() {
        table.add(name, VarKind::Iteration);
    }
    let table = &*table;
    let steps = flow
        .steps
        .iter()
        .map(|d| compile_step(d, table))
        .collect::<Result<Vec<_>, _>>()?;
    let schedule = schedule(flow, table);
    Ok(Compiled { steps, schedule })
}

fn compile_step(d: &barrage_core::plan::StepSpec, table: &VarTable) -> Result<Step, FlowError> {
    let bad = |field: &str, why: String| FlowError::Step {
        step: d.name.clone(),
        why: format!("{field}: {why}"),
    };
    let method = Method::from_bytes(d.method.as_bytes())
        .map_err(|_| bad("method", format!("{:?} is not an HTTP method", d.method)))?;
    let path = Template::parse(&d.path, table).map_err(|e| bad("path", e.to_string()))?;
    let body = match &d.body {
        None => Body::None,
        Some(text) => {
            let t = Template::parse(text, table).map_err(|e| bad("body", e.to_string()))?;
            // Rendered with sample values, the body must be JSON: a typo shows at start.
            let mut sample = table.values();
            for slot in t.vars() {
                if !sample.is_set(slot) {
                    sample.set(slot, "1");
                }
            }
            let mut buf = Vec::new();
            t.render_json(&sample, &mut buf);
            if let Err(e) = serde_json::from_slice::<serde_json::Value>(&buf) {
                return Err(bad(
                    "body",
                    format!(
                        "not JSON once its variables are filled in ({e}): {}",
                        String::from_utf8_lossy(&buf)
                    ),
                ));
            }
            if t.is_constant(table) {
                Body::Fixed(Bytes::from(buf))
            } else {
                let pieces = t.json_pieces(table);
                let fixed: usize = pieces
                    .iter()
                    .map(|p| match p {
                        Piece::Text(b) => b.len(),
                        Piece::Var(_) => 0,
                    })
                    .sum();
                if fixed >= PIECES_MIN {
                    Body::Pieces(pieces)
                } else {
                    Body::Template(t)
                }
            }
        }
    };
    let mut defs: Vec<Check> = Vec::with_capacity(d.checks.len() + 1);
    if !d.checks.iter().any(Check::is_status) {
        defs.push(Check::Status2xx);
    }
    defs.extend(d.checks.iter().cloned());
    let checks = defs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            CompiledCheck::compile(c.clone(), &d.name, table)
                .map_err(|e| bad(&format!("checks[{i}]"), e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut captures: Vec<(usize, Capture)> = d
        .capture
        .iter()
        .map(|(var, pointer)| {
            (
                table.index(var).unwrap_or(0),
                Capture::Json {
                    var: var.clone(),
                    pointer: pointer.clone(),
                },
            )
        })
        .collect();
    if let Some(m) = &d.mark {
        captures.push((
            table.index(m).unwrap_or(0),
            Capture::Created { var: m.clone() },
        ));
    }
    let requires = d
        .requires
        .iter()
        .map(|r| {
            table
                .index(r)
                .ok_or_else(|| bad("requires", format!("unknown variable {r:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let tags = if d.tags.is_empty() {
        StepTags::None
    } else {
        let parsed = d
            .tags
            .iter()
            .map(|(k, v)| {
                Template::parse(v, table)
                    .map(|t| (k.clone(), t))
                    .map_err(|e| bad(&format!("tags.{k}"), e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if parsed.iter().all(|(_, t)| t.is_constant(table)) {
            let values = table.values();
            StepTags::Fixed(
                parsed
                    .into_iter()
                    .map(|(k, t)| {
                        let mut s = String::new();
                        t.render_raw(&values, &mut s);
                        (k, s)
                    })
                    .collect(),
            )
        } else {
            StepTags::Templated(parsed)
        }
    };
    let llm_calls = d
        .llm_calls
        .as_deref()
        .map(|u| Template::parse(u, table).map_err(|e| bad("llm_calls", e.to_string())))
        .transpose()?;
    let needs_json =
        d.kind == StepKind::Json && (defs.iter().any(Check::needs_json) || !d.capture.is_empty());
    let pointers: Vec<&str> = d.capture.values().map(String::as_str).collect();
    let json_need = super::prune::Need::of_step(defs.iter().map(json_need), &pointers);
    Ok(Step {
        operation: d.name.clone(),
        trend: d.metric.clone().unwrap_or_else(|| d.name.clone()),
        tags,
        method,
        path,
        body,
        response: d.kind,
        checks,
        captures,
        cleanup: d.cleanup,
        grouped: d.group.is_some(),
        requires,
        needs_json,
        json_need,
        retry: d.retry.clone(),
        think_time: d.think_time,
        llm_calls,
    })
}

/// The main steps in waves: a node's wave is one after the latest wave of what it
/// depends on (by default the step before it); `depends_on` names only earlier steps, so
/// one pass in list order suffices.
fn schedule(flow: &FlowDef, table: &VarTable) -> Schedule {
    let steps = &flow.steps;
    // nodes: runs of main steps, a group's steps together
    let mut nodes: Vec<Node> = Vec::new();
    let mut i = 0;
    while i < steps.len() {
        if steps[i].cleanup {
            i += 1;
            continue;
        }
        let mut end = i + 1;
        let group = steps[i].group.as_ref().and_then(|g| {
            while end < steps.len() && steps[end].group.as_ref() == Some(g) {
                end += 1;
            }
            let def = flow.groups.get(g)?;
            let mode = match (def.repeat, def.fan_out) {
                (_, Some(n)) => GroupMode::FanOut(n),
                (Some(n), None) => GroupMode::Repeat(n),
                (None, None) => GroupMode::Repeat(1),
            };
            Some(Group {
                name: g.clone(),
                slot: table.index(g).unwrap_or(0),
                mode,
            })
        });
        nodes.push(Node {
            steps: i..end,
            group,
        });
        i = end;
    }
    let node_of = |step: usize| nodes.iter().position(|n| n.steps.contains(&step));
    let mut level: Vec<usize> = Vec::with_capacity(nodes.len());
    for (n, node) in nodes.iter().enumerate() {
        let mut l = 0;
        for s in node.steps.clone() {
            let deps: Vec<usize> = match &steps[s].depends_on {
                Some(names) => names
                    .iter()
                    .filter_map(|d| steps.iter().position(|o| &o.name == d))
                    .collect(),
                None => (0..s)
                    .rev()
                    .find(|&j| !steps[j].cleanup)
                    .into_iter()
                    .collect(),
            };
            for d in deps {
                if let Some(dn) = node_of(d).filter(|&dn| dn != n) {
                    l = l.max(level[dn] + 1);
                }
            }
        }
        level.push(l);
    }
    let mut waves: Vec<Vec<Node>> = vec![Vec::new(); level.iter().max().map_or(0, |m| m + 1)];
    for (node, l) in nodes.into_iter().zip(level) {
        waves[l].push(node);
    }
    Schedule { waves }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(text: &str) -> FlowDef {
        FlowDef::from_toml_str(text).unwrap()
    }

    fn waves(f: &FlowDef) -> Vec<Vec<Vec<String>>> {
        let c = compile(f, &mut VarTable::new()).unwrap();
        c.schedule
            .waves
            .iter()
            .map(|w| {
                w.iter()
                    .map(|n| {
                        n.steps
                            .clone()
                            .map(|i| c.steps[i].operation.clone())
                            .collect()
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn steps_run_in_order_unless_depends_on_says_otherwise() {
        let seq = flow("[[steps]]\nname = \"a\"\npath = \"/a\"\n[[steps]]\nname = \"b\"\npath = \"/b\"\n[[steps]]\nname = \"z\"\npath = \"/z\"\nkind = \"ignore\"\ncleanup = true\nrequires = [\"vu\"]");
        assert_eq!(waves(&seq), vec![vec![vec!["a"]], vec![vec!["b"]]]);
        let diamond = flow(
            "[[steps]]\nname = \"a\"\npath = \"/a\"\n\
             [[steps]]\nname = \"b\"\npath = \"/b\"\ndepends_on = [\"a\"]\n\
             [[steps]]\nname = \"c\"\npath = \"/c\"\ndepends_on = [\"a\"]\n\
             [[steps]]\nname = \"d\"\npath = \"/d\"\ndepends_on = [\"b\", \"c\"]",
        );
        assert_eq!(
            waves(&diamond),
            vec![vec![vec!["a"]], vec![vec!["b"], vec!["c"]], vec![vec!["d"]]]
        );
        let c = compile(&diamond, &mut VarTable::new()).unwrap();
        assert!(!c.schedule.is_sequential());
        let grouped = flow(
            "groups = { turn = { repeat = 3 } }\n\
             [[steps]]\nname = \"a\"\npath = \"/a\"\n\
             [[steps]]\nname = \"b\"\npath = \"/b/{turn}\"\ngroup = \"turn\"\n\
             [[steps]]\nname = \"c\"\npath = \"/c\"\ngroup = \"turn\"\n\
             [[steps]]\nname = \"d\"\npath = \"/d\"",
        );
        assert_eq!(
            waves(&grouped),
            vec![vec![vec!["a"]], vec![vec!["b", "c"]], vec![vec!["d"]]]
        );
    }

    #[test]
    fn compile_errors_name_the_step_and_the_field() {
        let cases = [
            ("path = \"/x/{nope}\"", "step a: path: unknown variable {nope}"),
            ("path = \"/x\"\nbody = '{\"a\":{nope}}'", "step a: body: unknown variable"),
            ("path = \"/x\"\nbody = '{\"a\":}'", "step a: body: not JSON"),
            (
                "path = \"/x\"\nchecks = [{ check = \"equals\", pointer = \"/a\", value = \"{nope}\" }]",
                "step a: checks[1]: unknown variable {nope}",
            ),
            ("path = \"/x\"\ntags = { d = \"{nope}\" }", "step a: tags.d: unknown"),
        ];
        for (step, needle) in cases {
            let f = flow(&format!("[[steps]]\nname = \"a\"\n{step}"));
            let err = compile(&f, &mut VarTable::new()).unwrap_err().to_string();
            assert!(err.contains(needle), "{needle:?} not in {err:?}");
        }
    }

    #[test]
    fn a_step_without_a_status_check_gets_status_2xx_and_tags_compile_once() {
        let f = flow(
            "vars = { kind = \"x\" }\n[[steps]]\nname = \"a\"\npath = \"/x\"\ntags = { k = \"{kind}\" }\n\
             [[steps]]\nname = \"b\"\npath = \"/x\"\nchecks = [{ check = \"status\", in = [404] }]\ntags = { v = \"{vu}\" }",
        );
        let c = compile(&f, &mut VarTable::new()).unwrap();
        assert_eq!(c.steps[0].checks[0].check, Check::Status2xx);
        assert!(
            matches!(&c.steps[0].tags, StepTags::Fixed(t) if t == &[("k".to_string(), "x".to_string())])
        );
        assert_eq!(c.steps[1].checks.len(), 1);
        assert!(matches!(&c.steps[1].tags, StepTags::Templated(_)));
    }
}

//! A step as data ([`StepDef`]: operation, method, path and body templates, checks,
//! captures) and its compiled form ([`Step`]) that an iteration runs.
use bytes::Bytes;
use reqwest::Method;

use super::check::{Check, CompiledCheck};
use super::template::{Template, VarKind, VarTable};
use super::FlowError;

/// What the answer's body is read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseKind {
    /// JSON, whatever the content type says (LangGraph.js sends `text/plain`) and after any
    /// leading whitespace (its keep-alive newlines). An empty body reads as `null`.
    Json,
    /// Server-Sent Events, parsed as they arrive ([`crate::http::sse`]).
    Sse,
    /// Not looked at (deletes: 200 with a body or 204 without).
    Ignore,
}

/// Where a captured value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capture {
    /// The string (or number) at a JSON pointer of the answer, e.g. `/assistant_id`.
    Json { var: String, pointer: String },
    /// Set (to `1`) when the step passed: marks a resource created (a store item).
    Created { var: String },
}

impl Capture {
    pub fn var(&self) -> &str {
        match self {
            Capture::Json { var, .. } | Capture::Created { var } => var,
        }
    }
}

/// One request of a flow, as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepDef {
    /// The `operation` tag of the step's http samples, and its name in failures.
    pub operation: String,
    /// The per-operation Trend the step's duration goes to (`create_assistant`, …; the
    /// cleanup deletes share `cleanup`).
    pub trend: String,
    pub method: Method,
    /// Path and query after the base URL, with `{var}` references.
    pub path: String,
    /// JSON body template, sent with `content-type: application/json`.
    pub body: Option<String>,
    pub response: ResponseKind,
    pub checks: Vec<Check>,
    /// Values taken from the answer for later steps, when the step passed.
    pub captures: Vec<Capture>,
    /// A cleanup step runs after the main steps, even after a failure, when every
    /// variable of `requires` was captured (the resource exists).
    pub cleanup: bool,
    pub requires: Vec<String>,
}

/// How a body is produced per request.
#[derive(Debug, Clone)]
pub enum Body {
    None,
    /// Rendered once (no per-iteration variable): cloning it is a reference count.
    Fixed(Bytes),
    Template(Template),
}

/// A compiled step.
#[derive(Debug, Clone)]
pub struct Step {
    pub operation: String,
    pub trend: String,
    pub method: Method,
    pub path: Template,
    pub body: Body,
    pub response: ResponseKind,
    pub checks: Vec<CompiledCheck>,
    /// (slot, how).
    pub captures: Vec<(usize, Capture)>,
    pub cleanup: bool,
    pub requires: Vec<usize>,
    /// The answer is parsed as JSON only when a check or capture reads it.
    pub needs_json: bool,
    /// What of the JSON answer the checks and captures read ([`super::prune`]).
    pub json_need: super::prune::Need,
}

/// Adds every step's captures to `table`, then compiles the steps against it.
pub fn compile(defs: Vec<StepDef>, table: &mut VarTable) -> Result<Vec<Step>, FlowError> {
    for d in &defs {
        for c in &d.captures {
            table.add(c.var(), VarKind::Captured);
        }
    }
    let table = &*table;
    defs.into_iter()
        .map(|d| {
            let bad = |what: &str, e: super::template::UnknownVar| FlowError::Step {
                step: d.operation.clone(),
                why: format!("{what}: {e}"),
            };
            let path = Template::parse(&d.path, table).map_err(|e| bad("path", e))?;
            let body = match &d.body {
                None => Body::None,
                Some(text) => {
                    let t = Template::parse(text, table).map_err(|e| bad("body", e))?;
                    if t.is_constant(table) {
                        let mut buf = Vec::new();
                        t.render_json(&table.values(), &mut buf);
                        Body::Fixed(Bytes::from(buf))
                    } else {
                        Body::Template(t)
                    }
                }
            };
            let checks = d
                .checks
                .iter()
                .map(|c| CompiledCheck::compile(c.clone(), &d.operation, table))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad("check", e))?;
            let requires = d
                .requires
                .iter()
                .map(|r| {
                    table.index(r).ok_or_else(|| FlowError::Step {
                        step: d.operation.clone(),
                        why: format!("requires unknown variable {r:?}"),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let captures = d
                .captures
                .iter()
                .map(|c| (table.index(c.var()).unwrap_or(0), c.clone()))
                .collect();
            let needs_json = d.response == ResponseKind::Json
                && (d.checks.iter().any(Check::needs_json)
                    || d.captures.iter().any(|c| matches!(c, Capture::Json { .. })));
            let pointers: Vec<&str> = d
                .captures
                .iter()
                .filter_map(|c| match c {
                    Capture::Json { pointer, .. } => Some(pointer.as_str()),
                    Capture::Created { .. } => None,
                })
                .collect();
            let json_need =
                super::prune::Need::of_step(d.checks.iter().map(Check::json_need), &pointers);
            Ok(Step {
                operation: d.operation,
                trend: d.trend,
                method: d.method,
                path,
                body,
                response: d.response,
                checks,
                captures,
                cleanup: d.cleanup,
                requires,
                needs_json,
                json_need,
            })
        })
        .collect()
}

//! Every `summary.json` a test produces is checked against the documented schema
//! (`docs/summary.schema.json`, generated from core's `Summary` type): a field the docs do not
//! describe, or a described field missing, fails the test that produced it.
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// `docs/summary.schema.json` of this checkout.
pub fn schema_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("docs")
        .join("summary.schema.json")
}

fn validator() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        let path = schema_path();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run core's schema test with BARRAGE_BLESS=1)",
                path.display()
            )
        });
        let schema: Value = serde_json::from_str(&text).expect("the schema is JSON");
        jsonschema::validator_for(&schema).expect("the schema compiles")
    })
}

/// The schema's complaints about `doc`, one line each (empty: valid).
pub fn schema_errors(doc: &Value) -> Vec<String> {
    validator()
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect()
}

/// Panics with every violation when `doc` does not match `docs/summary.schema.json`.
pub fn assert_valid_summary(doc: &Value, what: &str) {
    let errors = schema_errors(doc);
    assert!(
        errors.is_empty(),
        "{what} does not match docs/summary.schema.json:\n  {}",
        errors.join("\n  ")
    );
}

/// Reads a `summary.json`, checks it against the schema, returns it.
pub fn read_summary(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
    assert_valid_summary(&doc, &path.display().to_string());
    doc
}

/// The one `*.summary.json` in `dir`, read and checked (panics when there is not exactly one).
pub fn only_summary(dir: &Path) -> Value {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".summary.json"))
        .collect();
    assert_eq!(found.len(), 1, "summaries in {}: {found:?}", dir.display());
    read_summary(&found[0])
}

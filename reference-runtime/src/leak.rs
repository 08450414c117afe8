//! `--leak-runs`: a memory leak on purpose. Agent servers that keep finished runs (their
//! messages, their outputs) forever grow without bound under a soak; this option makes the
//! reference runtime do that, so barrage's soak trend (`target_rss` rising) can be tested
//! against a target that is known to leak, and against the same target without it.
//!
//! Every successful run's final values are serialised and kept; `/stats` reports how many
//! and how many bytes (`leaked_runs`), so a test can tell the leak from other growth.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde_json::{json, Value};

/// The runs kept forever (empty unless `--leak-runs`).
#[derive(Debug, Default)]
pub struct LeakedRuns {
    runs: Mutex<Vec<Box<str>>>,
    bytes: AtomicU64,
}

impl LeakedRuns {
    /// Keeps one run's id and final values, never to be freed.
    pub fn keep(&self, run_id: &str, values: &Value) {
        let kept: Box<str> = format!("{run_id} {values}").into_boxed_str();
        self.bytes.fetch_add(kept.len() as u64, Ordering::Relaxed);
        // a poisoned lock only means another run panicked mid-push: keep leaking
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        runs.push(kept);
    }

    /// `{"runs": N, "bytes": B}` for `/stats`.
    pub fn to_json(&self) -> Value {
        let runs = self.runs.lock().unwrap_or_else(|e| e.into_inner()).len();
        json!({"runs": runs, "bytes": self.bytes.load(Ordering::Relaxed)})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_runs_are_counted() {
        let l = LeakedRuns::default();
        assert_eq!(l.to_json(), json!({"runs": 0, "bytes": 0}));
        l.keep("r1", &json!({"messages": ["hi"]}));
        l.keep("r2", &json!({"messages": []}));
        let v = l.to_json();
        assert_eq!(v["runs"], 2);
        assert_eq!(
            v["bytes"],
            ("r1 {\"messages\":[\"hi\"]}".len() + "r2 {\"messages\":[]}".len()) as u64
        );
    }
}

//! The summary's record of the target's agent resources at a soak's start and end: what the
//! run's cleanup should have given back (threads, assistants, store items) and runs that
//! should have finished. Agent servers are known to fail here (runs left pending, threads
//! never deleted), and a soak is where it adds up. The counting itself is the controller's
//! (`barrage_controller::soak::resources`); this is the verdict and its wording.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Agent resources the target holds: what a run creates and its cleanup deletes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceCounts {
    pub threads: Option<u64>,
    pub assistants: Option<u64>,
    pub store_items: Option<u64>,
    /// Runs pending or running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs_active: Option<u64>,
    /// Kinds (`threads`, `assistants`, `store_items`, `runs_active`) whose count stopped at
    /// the counter's page or time limit: their figure is a lower bound.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capped: Vec<String>,
}

impl ResourceCounts {
    /// Whether no kind was counted.
    pub fn is_empty(&self) -> bool {
        self.threads.is_none()
            && self.assistants.is_none()
            && self.store_items.is_none()
            && self.runs_active.is_none()
    }

    fn is_capped(&self, kind: &str) -> bool {
        self.capped.iter().any(|c| c == kind)
    }

    /// `(kind, count)` of every kind, counted or not.
    pub fn kinds(&self) -> [(&'static str, Option<u64>); 4] {
        [
            ("threads", self.threads),
            ("assistants", self.assistants),
            ("store_items", self.store_items),
            ("runs_active", self.runs_active),
        ]
    }
}

/// Did the target return to its baseline? (Agent servers are known to leave runs pending
/// and threads undeleted.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceCheck {
    /// Where the counts came from: `GET /stats`, or the Agent Protocol search endpoints.
    pub source: String,
    pub start: ResourceCounts,
    pub end: ResourceCounts,
    /// What was left beyond the start's count, e.g. `threads: 12 more than at the start`;
    /// empty when everything returned to baseline.
    pub left: Vec<String>,
    /// Kinds that could not be judged because a count stopped at its page or time limit,
    /// each with its figures; empty when every count was complete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capped: Vec<String>,
}

impl ResourceCheck {
    /// Compares the counts at the start and the end. A capped count is a lower bound: an
    /// end above an exact start is still a leak (of at least the difference), and an exact
    /// end not above a capped start is back to baseline; the rest (a capped end not above
    /// the start, an end above a capped start) cannot be judged and is named in `capped`.
    pub fn compare(source: impl Into<String>, start: ResourceCounts, end: ResourceCounts) -> Self {
        let mut left = Vec::new();
        let mut capped = Vec::new();
        for ((name, a), (_, b)) in start.kinds().into_iter().zip(end.kinds()) {
            let (Some(a), Some(b)) = (a, b) else {
                continue;
            };
            let (a_cap, b_cap) = (start.is_capped(name), end.is_capped(name));
            let plus = |capped: bool| if capped { "+" } else { "" };
            let figures = format!("{a}{} → {b}{}", plus(a_cap), plus(b_cap));
            if !a_cap && b > a {
                let at_least = if b_cap { "at least " } else { "" };
                left.push(format!(
                    "{name}: {at_least}{} more than at the start ({figures})",
                    b - a
                ));
            } else if b_cap || (a_cap && b > a) {
                capped.push(format!(
                    "{name}: not judged, a count stopped at its limit ({figures}; + marks a lower bound)"
                ));
            }
        }
        ResourceCheck {
            source: source.into(),
            start,
            end,
            left,
            capped,
        }
    }
}

/// The check's lines in the human summary.
pub fn describe(r: &ResourceCheck) -> Vec<String> {
    let head = if r.left.is_empty() {
        format!("resources ({}): back to their start counts", r.source)
    } else {
        format!("resources ({}): LEFT {}", r.source, r.left.join(", "))
    };
    std::iter::once(head)
        .chain(r.capped.iter().map(|c| format!("resources: {c}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(t: u64, a: u64) -> ResourceCounts {
        ResourceCounts {
            threads: Some(t),
            assistants: Some(a),
            ..Default::default()
        }
    }

    #[test]
    fn resources_left_behind_are_named() {
        let r = ResourceCheck::compare("GET /stats", c(2, 1), c(14, 1));
        assert_eq!(r.left, vec!["threads: 12 more than at the start (2 → 14)"]);
        assert!(r.capped.is_empty());
        assert!(ResourceCheck::compare("x", c(2, 1), c(2, 0))
            .left
            .is_empty());
        let runs = ResourceCounts {
            runs_active: Some(3),
            ..c(2, 1)
        };
        let r = ResourceCheck::compare("x", c(2, 1), runs);
        // not counted at the start: not compared
        assert!(r.left.is_empty(), "{r:?}");
        let r = ResourceCheck::compare(
            "x",
            ResourceCounts {
                runs_active: Some(0),
                ..c(2, 1)
            },
            ResourceCounts {
                runs_active: Some(3),
                ..c(2, 1)
            },
        );
        assert_eq!(
            r.left,
            vec!["runs_active: 3 more than at the start (0 → 3)"]
        );
    }

    #[test]
    fn capped_counts_are_lower_bounds() {
        let cap = |mut r: ResourceCounts, kind: &str| {
            r.capped.push(kind.into());
            r
        };
        // an exact start and a capped end above it: a leak of at least the difference
        let r = ResourceCheck::compare("x", c(5, 1), cap(c(100, 1), "threads"));
        assert_eq!(
            r.left,
            vec!["threads: at least 95 more than at the start (5 → 100+)"]
        );
        assert!(r.capped.is_empty());
        // a capped start: nothing can be said of an end above it, nor of one at its cap
        for end in [c(150, 1), cap(c(100, 1), "threads")] {
            let r = ResourceCheck::compare("x", cap(c(100, 1), "threads"), end);
            assert!(r.left.is_empty(), "{r:?}");
            assert_eq!(r.capped.len(), 1, "{r:?}");
            assert!(r.capped[0].starts_with("threads: not judged"), "{r:?}");
        }
        // a capped start and an exact end below it: back to baseline for sure
        let r = ResourceCheck::compare("x", cap(c(100, 1), "threads"), c(40, 1));
        assert!(r.left.is_empty() && r.capped.is_empty(), "{r:?}");
        let lines = describe(&ResourceCheck::compare(
            "s",
            cap(c(100, 1), "threads"),
            cap(c(100, 3), "threads"),
        ));
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].contains("LEFT assistants: 2 more"), "{lines:?}");
        assert!(lines[1].contains("threads: not judged"), "{lines:?}");
    }
}

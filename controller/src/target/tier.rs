//! Resource tiers: a CPU quota and a memory limit with a name, the seed's realistic
//! single-pod allocations (XS/S/M/L) built in, more defined in a sweep file.
use super::cgroup::parse_memory;
use barrage_core::telemetry::Limits;
use serde::Deserialize;

/// A named pair of limits.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Tier {
    /// Lower case; names result files (`{runtime}-{tier}.summary.json`).
    pub name: String,
    /// CPU cores (0.25 = a quarter of one core).
    pub cpus: f64,
    /// Memory limit: `256M`, `1G`, bytes.
    pub memory: String,
}

/// The seed's tiers: name, cores, memory.
pub const BUILTIN: [(&str, f64, &str); 4] = [
    ("xs", 0.25, "256M"),
    ("s", 0.5, "512M"),
    ("m", 1.0, "1G"),
    ("l", 2.0, "2G"),
];

impl Tier {
    /// A built-in tier by name (any case).
    pub fn builtin(name: &str) -> Option<Tier> {
        let n = name.to_ascii_lowercase();
        BUILTIN.iter().find(|t| t.0 == n).map(|t| Tier {
            name: t.0.into(),
            cpus: t.1,
            memory: t.2.into(),
        })
    }

    /// The limits, validated: a positive CPU count, a parseable memory size.
    pub fn limits(&self) -> Result<Limits, String> {
        if !(self.cpus.is_finite() && self.cpus >= 0.01 && self.cpus <= 1024.0) {
            return Err(format!(
                "tier {}: cpus = {} is not a CPU count; use e.g. 0.25 or 2",
                self.name, self.cpus
            ));
        }
        let memory = parse_memory(&self.memory).map_err(|e| format!("tier {}: {e}", self.name))?;
        Ok(Limits {
            cpu_cores: Some(self.cpus),
            memory_bytes: Some(memory),
        })
    }

    /// Whole cores the target is pinned to: its quota rounded up.
    pub fn cores_needed(&self) -> usize {
        (self.cpus.ceil() as usize).max(1)
    }
}

/// `n` cores for a target, taken from the top of `0..total`, leaving at least one core for
/// the load generator; `None` when the machine has too few cores to keep them apart.
pub fn target_cores(n: usize, total: usize) -> Option<Vec<usize>> {
    (total > n).then(|| (total - n..total).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_tiers() {
        let xs = Tier::builtin("XS").unwrap();
        assert_eq!(
            xs.limits().unwrap(),
            Limits {
                cpu_cores: Some(0.25),
                memory_bytes: Some(256 << 20)
            }
        );
        assert_eq!(xs.cores_needed(), 1);
        assert_eq!(Tier::builtin("l").unwrap().cores_needed(), 2);
        assert!(Tier::builtin("xxl").is_none());
        let bad = Tier {
            name: "z".into(),
            cpus: 0.0,
            memory: "1G".into(),
        };
        assert!(bad.limits().unwrap_err().contains("not a CPU count"));
    }

    #[test]
    fn cores_apart_from_the_load() {
        assert_eq!(target_cores(1, 2), Some(vec![1]));
        assert_eq!(target_cores(2, 8), Some(vec![6, 7]));
        assert_eq!(target_cores(2, 2), None);
    }
}

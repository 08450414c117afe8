//! Open-model arrival processes: when each global iteration of an arrival-rate schedule is
//! due, for evenly spaced (`uniform`, k6's behaviour), `poisson` and `gamma` arrivals.
//!
//! The executor's rate curve λ(t) (constant or ramping) fixes how many arrivals are
//! expected by time `t`: Λ(t) = ∫₀ᵗ λ. A process places iteration `i` at `Λ⁻¹(xᵢ)`, where
//! `xᵢ` is the iteration's position in that "count space"
//! ([`ExecutorConfig::time_at_count`]):
//!
//! | `arrival`  | `xᵢ`                      | gap `gⱼ` between `xⱼ` and `xⱼ₊₁`                          |
//! |------------|---------------------------|-----------------------------------------------------------|
//! | `uniform`  | `i`                       | 1                                                         |
//! | `poisson`  | `g₀ + … + gᵢ₋₁`           | Exp(1)                                                    |
//! | `gamma`    | `g₀ + … + gᵢ₋₁`           | Gamma(shape `b`, scale `1/b`): mean 1, CV `1/√b`           |
//!
//! At a constant rate `r` a gap in time is `gⱼ / r`: vLLM's `--burstiness b` draws
//! `gamma(shape = b, scale = 1/(r·b))`, the same law, and `b = 1` is Poisson (the gamma
//! process then draws exactly the Poisson gaps). On a ramp the change of time keeps a
//! Poisson process Poisson, with intensity λ(t); a gamma process keeps its shape in count
//! space.
//!
//! **Split across workers without changing the merged process.** Gap `gⱼ` is drawn from a
//! counter-based generator keyed by `(seed, j)` alone, so it does not depend on which worker
//! draws it or what was drawn before. Every worker walks `j = 0, 1, 2, …` ([`Schedule`]),
//! summing the gaps in the same order (bit-identical `xᵢ` everywhere), and starts only the
//! iterations its segment owns (`Segment::owns_iteration`, the Weyl rule). The union of the
//! workers' iterations is therefore exactly the single worker's schedule, and a rerun with
//! the same seed repeats it. The generator is written here (SplitMix64 over the key, then
//! Marsaglia–Tsang for the gamma law), so a dependency update can never change a schedule.
use crate::executor::ExecutorConfig;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The seed of the random processes when the plan gives none: fixed, so reruns repeat.
pub const DEFAULT_SEED: u64 = 0x6261_7272_6167_6521; // "barrage!"

/// How arrivals are spaced around the executor's rate curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArrivalProcess {
    /// Evenly spaced at the current rate (k6's arrival-rate executors).
    #[default]
    Uniform,
    /// Exponential gaps: independent arrivals, as real users make them.
    Poisson,
    /// Gamma gaps with shape `burstiness`: below 1 burstier than Poisson, above 1 more regular.
    Gamma,
}

impl ArrivalProcess {
    pub fn name(self) -> &'static str {
        match self {
            ArrivalProcess::Uniform => "uniform",
            ArrivalProcess::Poisson => "poisson",
            ArrivalProcess::Gamma => "gamma",
        }
    }
}

/// The arrival settings of an arrival-rate executor: `arrival`, `burstiness`, `seed` in the
/// plan's `[scenario]` (flattened into the executor's own fields).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Arrivals {
    /// The process; `uniform` when left out.
    #[serde(default, skip_serializing_if = "is_uniform")]
    pub arrival: ArrivalProcess,
    /// `gamma` only: the shape (vLLM's `--burstiness`); 1.0 when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burstiness: Option<f64>,
    /// `poisson`/`gamma` only: the generator's seed; [`DEFAULT_SEED`] when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

fn is_uniform(p: &ArrivalProcess) -> bool {
    *p == ArrivalProcess::Uniform
}

impl Arrivals {
    pub fn poisson(seed: u64) -> Self {
        Arrivals {
            arrival: ArrivalProcess::Poisson,
            burstiness: None,
            seed: Some(seed),
        }
    }

    pub fn gamma(burstiness: f64, seed: u64) -> Self {
        Arrivals {
            arrival: ArrivalProcess::Gamma,
            burstiness: Some(burstiness),
            seed: Some(seed),
        }
    }

    /// The gamma shape of the gaps: 1 for Poisson, `burstiness` for gamma, `None` when
    /// arrivals are evenly spaced.
    pub fn shape(&self) -> Option<f64> {
        match self.arrival {
            ArrivalProcess::Uniform => None,
            ArrivalProcess::Poisson => Some(1.0),
            ArrivalProcess::Gamma => Some(self.burstiness.unwrap_or(1.0)),
        }
    }

    pub fn seed(&self) -> u64 {
        self.seed.unwrap_or(DEFAULT_SEED)
    }

    /// What the executor's one-line description adds: nothing for uniform arrivals.
    pub fn describe(&self) -> String {
        match self.arrival {
            ArrivalProcess::Uniform => String::new(),
            ArrivalProcess::Poisson => format!(", poisson arrivals (seed {})", self.seed()),
            ArrivalProcess::Gamma => format!(
                ", gamma arrivals, burstiness {} (seed {})",
                self.burstiness.unwrap_or(1.0),
                self.seed()
            ),
        }
    }

    /// Every problem, each naming the field (under `prefix`) and the fix.
    pub fn validate(&self, prefix: &str, errors: &mut Vec<String>) {
        if let Some(b) = self.burstiness {
            if self.arrival != ArrivalProcess::Gamma {
                errors.push(format!(
                    "{prefix}.burstiness: only arrival = \"gamma\" has a burstiness (arrival is \"{}\"); set arrival = \"gamma\" or remove burstiness",
                    self.arrival.name()
                ));
            } else if !(b.is_finite() && b > 0.0) {
                errors.push(format!(
                    "{prefix}.burstiness: {b} must be a number > 0 (1.0 = Poisson, below 1 burstier, above 1 more regular)"
                ));
            }
        }
        if self.seed.is_some() && self.arrival == ArrivalProcess::Uniform {
            errors.push(format!(
                "{prefix}.seed: uniform arrivals are not random, so a seed changes nothing; set arrival = \"poisson\" or \"gamma\", or remove seed"
            ));
        }
    }

    /// The unit-mean gap in count space between global iterations `j` and `j + 1`.
    /// `shape` is [`Arrivals::shape`]; a function of `(seed, j)` alone.
    pub fn gap(shape: f64, seed: u64, j: u64) -> f64 {
        let mut draws = Draws::new(seed, j);
        if shape == 1.0 {
            return -draws.unit().ln();
        }
        draws.gamma(shape) / shape
    }
}

/// The plan keys only arrival-rate executors accept, for the closed-model error message.
pub const KEYS: [&str; 3] = ["arrival", "burstiness", "seed"];

/// The errors for a closed-model executor given arrival keys, one per key; empty when
/// `table` (the plan's `[scenario]`) is fine. Serde would only say "unknown field"; this names the fix.
pub fn closed_model_misuse(table: &toml::Table) -> Vec<String> {
    let executor = table.get("executor").and_then(|e| e.as_str()).unwrap_or("");
    if executor.ends_with("arrival-rate") || executor.is_empty() {
        return vec![];
    }
    KEYS.iter()
        .filter(|k| table.contains_key(**k))
        .map(|k| {
            format!(
                "scenario.{k}: only the arrival-rate executors (constant-arrival-rate, ramping-arrival-rate) pace arrivals; executor \"{executor}\" runs VUs back to back, so remove {k} or switch the executor"
            )
        })
        .collect()
}

/// Walks the global arrival schedule of an arrival-rate executor, iteration by iteration.
/// Every worker walks all iterations (owned or not), so every worker computes the same
/// due time for the same iteration.
#[derive(Debug, Clone)]
pub struct Schedule {
    cfg: ExecutorConfig,
    /// `None`: uniform (x = i exactly); else the gamma shape of the gaps.
    shape: Option<f64>,
    seed: u64,
    /// The current iteration.
    i: u64,
    /// Its position in count space.
    x: f64,
}

impl Schedule {
    /// The schedule of `cfg`, positioned at iteration 0; `None` for closed-model executors.
    pub fn new(cfg: &ExecutorConfig) -> Option<Schedule> {
        let arrivals = cfg.arrivals()?;
        Some(Schedule {
            cfg: cfg.clone(),
            shape: arrivals.shape(),
            seed: arrivals.seed(),
            i: 0,
            x: 0.0,
        })
    }

    /// The current iteration's global index.
    pub fn index(&self) -> u64 {
        self.i
    }

    /// When the current iteration is due (from stage time 0), or `None` once the schedule
    /// is over (this and every later iteration fall after its end).
    pub fn due(&self) -> Option<Duration> {
        self.cfg.time_at_count(self.x)
    }

    /// Moves to the next iteration.
    pub fn advance(&mut self) {
        match self.shape {
            None => self.x = (self.i + 1) as f64,
            Some(shape) => self.x += Arrivals::gap(shape, self.seed, self.i),
        }
        self.i += 1;
    }
}

impl Iterator for Schedule {
    type Item = (u64, Duration);

    /// The current iteration and its due time, then moves on; `None` once over.
    fn next(&mut self) -> Option<(u64, Duration)> {
        let at = self.due()?;
        let i = self.i;
        self.advance();
        Some((i, at))
    }
}

/// SplitMix64's finalizer: a bijection of `u64` that mixes every bit into every other.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The random numbers of one gap: a SplitMix64 stream whose start is keyed by (seed, j).
struct Draws {
    state: u64,
}

impl Draws {
    fn new(seed: u64, j: u64) -> Self {
        // for one seed, distinct j give distinct keys (mix is a bijection)
        Draws {
            state: mix(mix(seed).wrapping_add(j.wrapping_mul(GOLDEN))),
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        mix(self.state)
    }

    /// Uniform in the open interval (0, 1): never 0, so `ln` is finite.
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.unit(), self.unit());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Gamma(shape, 1) by Marsaglia–Tsang; shapes below 1 by the boost
    /// `Gamma(k) = Gamma(k + 1) · U^(1/k)`.
    fn gamma(&mut self, shape: f64) -> f64 {
        if shape < 1.0 {
            let boost = self.unit().powf(1.0 / shape);
            return self.gamma(shape + 1.0) * boost;
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        // each try is accepted with probability > 0.95; 64 failures in a row never happen
        // in practice, and the bound keeps the walk finite whatever the numbers
        for _ in 0..64 {
            let x = self.normal();
            let v = 1.0 + c * x;
            if v <= 0.0 {
                continue;
            }
            let v = v * v * v;
            let u = self.unit();
            if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v;
            }
        }
        d
    }
}

#[cfg(test)]
#[path = "arrivals_tests.rs"]
mod tests;

//! Execution segments: exact shares of the VU space, as in k6.
//!
//! Worker *i* owns `[a_i, b_i)` of `[0, 1)`. When the plan wants `V` VUs, the worker runs
//! `floor(V·b_i) − floor(V·a_i)` of them, so the workers' counts always add up to `V`
//! exactly, whatever `V` and however many workers:
//!
//! ```text
//!  V = 5, three workers        0 ───── 1/3 ───── 2/3 ───── 1
//!  floor(5·b) − floor(5·a):      1          2          2      = 5
//!  V = 3:                        1          1          1      = 3
//!  V = 1:                        0          0          1      = 1
//! ```
//!
//! Arrival-rate executors split *iterations*: iteration `i` (0-based, in the global schedule)
//! sits at the point `p_i = frac(i·φ)` of `[0, 1)` (a Weyl sequence with the golden ratio,
//! computed exactly in 64-bit fixed point) and belongs to the one segment containing `p_i`.
//! The segments partition `[0, 1)`, so every iteration has exactly one owner, and the Weyl
//! sequence spreads them evenly: a segment of width `w` owns `w·n ± O(log n)` of `n`.
use serde::{Deserialize, Serialize};
use std::fmt;

/// An exact fraction `num/den` with `0 <= num <= den`, `den > 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fraction {
    pub num: u64,
    pub den: u64,
}

impl Fraction {
    pub const ZERO: Fraction = Fraction { num: 0, den: 1 };
    pub const ONE: Fraction = Fraction { num: 1, den: 1 };

    pub fn new(num: u64, den: u64) -> Result<Self, String> {
        if den == 0 {
            return Err(format!("fraction {num}/{den}: denominator must be > 0"));
        }
        if num > den {
            return Err(format!("fraction {num}/{den} must lie in [0, 1]"));
        }
        Ok(Fraction { num, den })
    }

    /// `floor(v · self)`, exact.
    pub fn floor_mul(self, v: u64) -> u64 {
        ((v as u128 * self.num as u128) / self.den as u128) as u64
    }

    pub fn as_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }

    fn lt(self, other: Fraction) -> bool {
        (self.num as u128 * other.den as u128) < (other.num as u128 * self.den as u128)
    }
}

impl fmt::Display for Fraction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

/// The share `[start, end)` of the VU space that one worker owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub start: Fraction,
    pub end: Fraction,
}

impl Segment {
    /// The whole VU space: a standalone worker.
    pub const FULL: Segment = Segment {
        start: Fraction::ZERO,
        end: Fraction::ONE,
    };

    pub fn new(start: Fraction, end: Fraction) -> Result<Self, String> {
        let start = Fraction::new(start.num, start.den)?;
        let end = Fraction::new(end.num, end.den)?;
        if end.lt(start) {
            return Err(format!(
                "segment [{start}, {end}): start must not exceed end"
            ));
        }
        Ok(Segment { start, end })
    }

    /// `n` equal, adjacent segments covering `[0, 1)`.
    pub fn split_even(n: usize) -> Vec<Segment> {
        let n = n.max(1) as u64;
        (0..n)
            .map(|i| Segment {
                start: Fraction { num: i, den: n },
                end: Fraction { num: i + 1, den: n },
            })
            .collect()
    }

    /// How many of `v` units (VUs, iterations) this segment owns.
    pub fn scale(&self, v: u64) -> u64 {
        self.end.floor_mul(v) - self.start.floor_mul(v)
    }

    /// Global index of the first of this segment's units when the space holds `v`.
    pub fn offset(&self, v: u64) -> u64 {
        self.start.floor_mul(v)
    }

    /// Whether global iteration `i` (0-based) of an arrival-rate schedule is this segment's.
    pub fn owns_iteration(&self, i: u64) -> bool {
        // p = frac(i·φ) as a 64-bit fixed-point fraction p / 2^64
        let p = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) as u128;
        let at_or_after = |f: Fraction| p * f.den as u128 >= (f.num as u128) << 64;
        at_or_after(self.start) && (self.end.num == self.end.den || !at_or_after(self.end))
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {})", self.start, self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_for_any_worker_count() {
        for n in [1usize, 2, 3, 4, 7, 10, 64] {
            let segs = Segment::split_even(n);
            for v in 0..=200u64 {
                let total: u64 = segs.iter().map(|s| s.scale(v)).sum();
                assert_eq!(total, v, "n={n} v={v}");
            }
        }
    }

    #[test]
    fn ramp_1_3_5_over_1_2_3_7_workers() {
        // (V, workers) -> per-worker counts
        let cases: &[(u64, usize, &[u64])] = &[
            (1, 1, &[1]),
            (3, 1, &[3]),
            (5, 1, &[5]),
            (1, 2, &[0, 1]),
            (3, 2, &[1, 2]),
            (5, 2, &[2, 3]),
            (1, 3, &[0, 0, 1]),
            (3, 3, &[1, 1, 1]),
            (5, 3, &[1, 2, 2]),
            (5, 7, &[0, 1, 1, 0, 1, 1, 1]),
        ];
        for (v, n, want) in cases {
            let got: Vec<u64> = Segment::split_even(*n)
                .iter()
                .map(|s| s.scale(*v))
                .collect();
            assert_eq!(&got, want, "V={v} n={n}");
        }
    }

    #[test]
    fn each_iteration_has_exactly_one_owner() {
        for n in [1usize, 2, 3, 7] {
            let segs = Segment::split_even(n);
            for i in 0..500u64 {
                let owners = segs.iter().filter(|s| s.owns_iteration(i)).count();
                assert_eq!(owners, 1, "n={n} i={i}");
            }
        }
    }

    #[test]
    fn iterations_spread_evenly() {
        for n in [2usize, 3, 7] {
            for s in Segment::split_even(n) {
                let owned = (0..7000u64).filter(|i| s.owns_iteration(*i)).count() as i64;
                assert!((owned - 7000 / n as i64).abs() <= 20, "n={n} owned={owned}");
            }
        }
    }

    #[test]
    fn uneven_segments_still_add_up() {
        let segs = [
            Segment::new(Fraction { num: 0, den: 1 }, Fraction { num: 1, den: 7 }).unwrap(),
            Segment::new(Fraction { num: 1, den: 7 }, Fraction { num: 3, den: 5 }).unwrap(),
            Segment::new(Fraction { num: 3, den: 5 }, Fraction { num: 1, den: 1 }).unwrap(),
        ];
        for v in 0..300 {
            assert_eq!(segs.iter().map(|s| s.scale(v)).sum::<u64>(), v);
        }
    }

    #[test]
    fn rejects_bad_fractions() {
        assert!(Fraction::new(1, 0).is_err());
        assert!(Fraction::new(3, 2).is_err());
        assert!(Segment::new(Fraction { num: 2, den: 3 }, Fraction { num: 1, den: 3 }).is_err());
    }
}
